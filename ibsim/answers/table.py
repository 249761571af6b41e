"""Every request id a client can send, and how this gateway answers it.

The ids are those of ibapi 9.81 (`message.OUT`), `@stoqey/ib` (`OUT_MSG_ID`, the same 1-99) and
ib_async 2.x (`client.py`, which adds 100-104). `docs/ibsim-messages.md` renders this table; a
test checks the page, the session's handlers and the clients' ids against it.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass


class Answer(enum.StrEnum):
    DATA = "data"  # answered with data ibsim has
    EMPTY = "empty"  # answered with the empty result / end message TWS sends when there is none
    REFUSED = "refused"  # answered with the error TWS sends for it
    NONE = "no reply"  # TWS itself sends nothing back (cancels, settings, idle subscriptions)


@dataclass(frozen=True, slots=True)
class Request:
    msg_id: int
    name: str
    answer: Answer
    reply: str  # what is sent back, with the errors it can end in


_D, _E, _R, _N = Answer.DATA, Answer.EMPTY, Answer.REFUSED, Answer.NONE
_UNKNOWN = "200 unknown contract"

REQUESTS: dict[int, Request] = {
    r.msg_id: r
    for r in (
        Request(1, "REQ_MKT_DATA", _D, f"ticks every 250 ms, 81, 58; {_UNKNOWN}; 354/10089/10167"),
        Request(2, "CANCEL_MKT_DATA", _N, "-"),
        Request(3, "PLACE_ORDER", _D, "5, 3, 11, 59; 321, 200, 103, 104, 110, 201, 334, 387, 391"),
        Request(4, "CANCEL_ORDER", _D, "3 Cancelled, 202; 10148 done order; 10147 unknown order"),
        Request(5, "REQ_OPEN_ORDERS", _D, "5, 3 per order, 53"),
        Request(6, "REQ_ACCT_DATA", _D, "6, 7, 8, 54"),
        Request(7, "REQ_EXECUTIONS", _D, "11, 59 per fill, 55"),
        Request(8, "REQ_IDS", _D, "9"),
        Request(9, "REQ_CONTRACT_DATA", _D, f"10 per contract, 52; {_UNKNOWN}"),
        Request(10, "REQ_MKT_DEPTH", _R, "10092 (no depth for CME futures here)"),
        Request(11, "CANCEL_MKT_DEPTH", _N, "-"),
        Request(12, "REQ_NEWS_BULLETINS", _N, "nothing until a bulletin (there are none)"),
        Request(13, "CANCEL_NEWS_BULLETINS", _N, "-"),
        Request(14, "SET_SERVER_LOGLEVEL", _N, "-"),
        Request(15, "REQ_AUTO_OPEN_ORDERS", _N, "-"),
        Request(16, "REQ_ALL_OPEN_ORDERS", _D, "5, 3 per order, 53"),
        Request(17, "REQ_MANAGED_ACCTS", _D, "15"),
        Request(18, "REQ_FA", _R, "321 (not an FA account)"),
        Request(19, "REPLACE_FA", _R, "321 (not an FA account)"),
        Request(
            20, "REQ_HISTORICAL_DATA", _D, f"17, then 90 with keepUpToDate; {_UNKNOWN}; 162; 321"
        ),
        Request(21, "EXERCISE_OPTIONS", _R, "200 (no options listed)"),
        Request(22, "REQ_SCANNER_SUBSCRIPTION", _E, "20 with no rows"),
        Request(23, "CANCEL_SCANNER_SUBSCRIPTION", _N, "-"),
        Request(24, "REQ_SCANNER_PARAMETERS", _E, "19, an XML document with no scan types"),
        Request(25, "CANCEL_HISTORICAL_DATA", _N, "- (ends keepUpToDate updates)"),
        Request(49, "REQ_CURRENT_TIME", _D, "49"),
        Request(50, "REQ_REAL_TIME_BARS", _D, f"50 every 5 s; {_UNKNOWN}; 420"),
        Request(51, "CANCEL_REAL_TIME_BARS", _N, "-"),
        Request(52, "REQ_FUNDAMENTAL_DATA", _R, "430 (no fundamentals for futures)"),
        Request(53, "CANCEL_FUNDAMENTAL_DATA", _N, "-"),
        Request(54, "REQ_CALC_IMPLIED_VOLAT", _R, "200 (no options listed)"),
        Request(55, "REQ_CALC_OPTION_PRICE", _R, "200 (no options listed)"),
        Request(56, "CANCEL_CALC_IMPLIED_VOLAT", _N, "-"),
        Request(57, "CANCEL_CALC_OPTION_PRICE", _N, "-"),
        Request(58, "REQ_GLOBAL_CANCEL", _D, "3 Cancelled, 202 per order"),
        Request(59, "REQ_MARKET_DATA_TYPE", _N, "- (58 on each later subscription)"),
        Request(61, "REQ_POSITIONS", _D, "61 per position, 62"),
        Request(62, "REQ_ACCOUNT_SUMMARY", _D, "63, 64"),
        Request(63, "CANCEL_ACCOUNT_SUMMARY", _N, "-"),
        Request(64, "CANCEL_POSITIONS", _N, "-"),
        Request(65, "VERIFY_REQUEST", _R, "66 failed (API verification is not enabled)"),
        Request(66, "VERIFY_MESSAGE", _R, "66 failed (API verification is not enabled)"),
        Request(67, "QUERY_DISPLAY_GROUPS", _D, "67 with groups 1-7"),
        Request(68, "SUBSCRIBE_TO_GROUP_EVENTS", _D, "68 with the group's contract"),
        Request(69, "UPDATE_DISPLAY_GROUP", _D, "68 to the group's subscribers"),
        Request(70, "UNSUBSCRIBE_FROM_GROUP_EVENTS", _N, "-"),
        Request(71, "START_API", _D, "9, 15, farm status (once, at connect)"),
        Request(72, "VERIFY_AND_AUTH_REQUEST", _R, "70 failed (API verification is not enabled)"),
        Request(73, "VERIFY_AND_AUTH_MESSAGE", _R, "70 failed (API verification is not enabled)"),
        Request(74, "REQ_POSITIONS_MULTI", _D, "71 per position, 72"),
        Request(75, "CANCEL_POSITIONS_MULTI", _N, "-"),
        Request(76, "REQ_ACCOUNT_UPDATES_MULTI", _D, "73, 74"),
        Request(77, "CANCEL_ACCOUNT_UPDATES_MULTI", _N, "-"),
        Request(78, "REQ_SEC_DEF_OPT_PARAMS", _E, "76 (no options listed)"),
        Request(79, "REQ_SOFT_DOLLAR_TIERS", _E, "77 with no tiers"),
        Request(80, "REQ_FAMILY_CODES", _D, "78, one per account"),
        Request(81, "REQ_MATCHING_SYMBOLS", _D, "79: the listed products' indexes, or no rows"),
        Request(82, "REQ_MKT_DEPTH_EXCHANGES", _E, "80 with no exchanges"),
        Request(83, "REQ_SMART_COMPONENTS", _E, "82 with no components"),
        Request(84, "REQ_NEWS_ARTICLE", _R, "10276 (no news subscription)"),
        Request(85, "REQ_NEWS_PROVIDERS", _E, "85 with no providers"),
        Request(86, "REQ_HISTORICAL_NEWS", _R, "10276 (no news subscription)"),
        Request(87, "REQ_HEAD_TIMESTAMP", _D, f"88: the first trade or quote; {_UNKNOWN}; 162"),
        Request(88, "REQ_HISTOGRAM_DATA", _D, f"89: volume at price; {_UNKNOWN}; 162; 321"),
        Request(89, "CANCEL_HISTOGRAM_DATA", _N, "-"),
        Request(90, "CANCEL_HEAD_TIMESTAMP", _N, "-"),
        Request(91, "REQ_MARKET_RULE", _D, "93 for rules 67, 9010, 9100; 321 for another rule"),
        Request(92, "REQ_PNL", _D, "94 at once, then each second it changes; 321 unknown account"),
        Request(93, "CANCEL_PNL", _N, "-"),
        Request(94, "REQ_PNL_SINGLE", _D, "95 at once, then each second it changes; 200; 321"),
        Request(95, "CANCEL_PNL_SINGLE", _N, "-"),
        Request(96, "REQ_HISTORICAL_TICKS", _D, f"96/97/98; {_UNKNOWN}; 162; 321"),
        Request(
            97, "REQ_TICK_BY_TICK_DATA", _D, f"99 per event; {_UNKNOWN}; 354/10089/10189/10190"
        ),
        Request(98, "CANCEL_TICK_BY_TICK_DATA", _N, "-"),
        Request(99, "REQ_COMPLETED_ORDERS", _D, "101 per order of the day, 102"),
        Request(100, "REQ_WSH_META_DATA", _R, "10276 (no Wall Street Horizon subscription)"),
        Request(101, "CANCEL_WSH_META_DATA", _N, "-"),
        Request(102, "REQ_WSH_EVENT_DATA", _R, "10276 (no Wall Street Horizon subscription)"),
        Request(103, "CANCEL_WSH_EVENT_DATA", _N, "-"),
        Request(104, "REQ_USER_INFO", _D, "107 with an empty white-branding id"),
    )
}


def markdown_table() -> str:
    """The table as `docs/ibsim-messages.md` shows it."""
    rows = ["| id | request | answer | what ibsim sends back |", "|---|---|---|---|"]
    rows += [f"| {r.msg_id} | {r.name} | {r.answer} | {r.reply} |" for r in REQUESTS.values()]
    return "\n".join(rows) + "\n"
