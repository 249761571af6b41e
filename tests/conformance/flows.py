"""The conformance flows: each one written once, as the requests a client sends and what a real TWS
answers, and run by every client's driver (tests/conformance/drivers, node/).

A driver gets `spec()` as JSON on its standard input, runs the flows in this order on one
connection (client id 1) to an ibsim started for it, and prints one JSON line per flow:
`{"flow": NAME, "obs": {...}}` (what the client showed its user, normalised: prices and sizes
as numbers, times as epoch seconds, unset values as null), `{"flow": NAME, "unsupported":
REASON}` when the client has no API for it, or `{"flow": NAME, "error": TEXT}`. The driver
only observes; every judgement is in the `check` of the flow below, the same for all clients.

Later flows build on earlier ones (the front month found by `contract_details`, the bracket's
fills, the resting order that `reconnect` must find again), so the order of `FLOWS` matters.
Order prices are set from the bid of a fresh snapshot (`offset` in ticks of 0.25): far below
it an order rests, below it a sell is marketable.

`requests` lists the ids of ibsim/answers/table.py a flow sends; test_coverage.py holds every
request ibsim answers with data to a flow here (or to `EXEMPT`, with the reason).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from itertools import islice, pairwise
from typing import Any

from ibsim.historical import parse_ib_time
from ibsim.market import SyntheticSource
from ibsim.model import QuoteTick, TradeTick

# The market every run trades: a seeded synthetic ES tape from Friday 2026-11-20 08:30 CT, when
# ESZ6 is the front month, served at SPEED data seconds per wall second.
START_TEXT = "20261120 08:30:00 US/Central"
START = parse_ib_time(START_TEXT)
SEED = 7
SPEED = 30.0
ACCOUNT = "DU1234567"
TICK = 0.25
MULTIPLIER = 50
COMMISSION = 2.25  # per contract, as IB charges ES on the tiered schedule's first tier
FARMS = {2104, 2106, 2158}  # market data, HMDS and sec-def farm "connection is OK"
EXPIRIES = ["ESZ6", "ESH7", "ESM7", "ESU7"]
# third Fridays; June 2027's is Juneteenth observed (NYSE closed, no SOQ): the Thursday
LAST_TRADE_DATES = ["20261218", "20270319", "20270617", "20270917"]
ES_FUTURE = {"symbol": "ES", "secType": "FUT", "exchange": "CME", "currency": "USD"}
UNKNOWN_STOCK = {"symbol": "ZZZZQ", "secType": "STK", "exchange": "SMART", "currency": "USD"}

Obs = dict[str, Any]

# ib_insync 0.9.86 and ib_async 2.1 end reqUserInfoAsync without the value (their
# wrapper.userInfo is `_endReq(reqId)`): the request completes, the id is not shown.
DROPS_WHITE_BRANDING_ID = {"ib_insync", "ib_async"}
# ...and show an unset realizedPNL in a commission report as 0.0 (wrapper.commissionReport).
UNSET_PNL_AS_ZERO = {"ib_insync", "ib_async"}
# ...and stamp tick-by-tick ticks with the time they were received (wrapper.lastTime), not the
# time in the message: against TWS the two agree, against ibsim's data clock they do not.
STAMPS_TICKS_ON_RECEIPT = {"ib_insync", "ib_async"}
# @stoqey/ib 1.6.10 leaves lastTradeDateOrContractMonth as TWS sends it, "20261218 08:30
# US/Central" (the form of a real gateway's CONTRACT_DATA): its decoder splits on the literal
# text "\s+", where IB's clients split on whitespace into the date and lastTradeTime.
LAST_TRADE_DATE_UNSPLIT = {"stoqey"}


@dataclass(frozen=True)
class Tape:
    """What the market served first, straight from the seeded source (not from ibsim)."""

    first_price: float  # the first quote's bid: CLOSE until a whole session has been seen
    trades: list[tuple[int, float, int]]  # (epoch second, price, size), the first ones
    quotes: list[tuple[int, float, float, int, int]]  # (second, bid, ask, bid size, ask size)

    @classmethod
    def first(cls, n: int = 50) -> Tape:
        trades: list[tuple[int, float, int]] = []
        quotes: list[tuple[int, float, float, int, int]] = []
        first_price = math.nan
        for event in islice(SyntheticSource(SEED, START).events(), 20 * n):
            if isinstance(event, QuoteTick):
                if math.isnan(first_price):
                    first_price = event.bid
                quotes.append(
                    (int(event.time), event.bid, event.ask, event.bid_size, event.ask_size)
                )
            elif isinstance(event, TradeTick):
                trades.append((int(event.time), event.price, event.size))
        return cls(first_price, trades[:n], quotes[:n])


@dataclass(frozen=True)
class Ctx:
    """What a check may compare against: the run, the tape, and the run's other flows."""

    client: str
    server_version: int
    tape: Tape
    obs: Mapping[str, Obs]


Check = Callable[[Obs, Ctx], None]


@dataclass(frozen=True)
class Flow:
    name: str
    requests: frozenset[int]  # request ids (ibsim/answers/table.py) the flow sends
    tws: str  # what a real TWS does, the behaviour the check holds every client to
    check: Check
    params: Mapping[str, Any] = field(default_factory=dict)


def on_grid(price: float) -> bool:
    return math.isfinite(price) and abs(price / TICK - round(price / TICK)) < 1e-9


def ohlc_ok(bar: Obs) -> bool:
    o, h, lo, c = bar["open"], bar["high"], bar["low"], bar["close"]
    return all(on_grid(p) for p in (o, h, lo, c)) and lo <= min(o, c) <= max(o, c) <= h


def in_session(t: float) -> bool:
    """An epoch second within the data the runs can reach (the first hours after START)."""
    return START <= t <= START + 6 * 3600


def codes_for(errors: list[list[Any]], req_id: int) -> list[int]:
    return [code for rid, code, *_ in errors if rid == req_id]


# --- checks, in flow order ---


def check_connect(o: Obs, ctx: Ctx) -> None:
    assert o["server_version"] == ctx.server_version
    assert o["accounts"] == [ACCOUNT]
    assert o["managed_accounts"] == [ACCOUNT]  # the explicit reqManagedAccts
    assert isinstance(o["next_valid_id"], int)
    assert o["next_valid_id"] >= 1
    assert o["req_ids_next"] >= o["next_valid_id"]  # reqIds never goes back
    assert set(o["farm_codes"]) >= FARMS, o["farm_codes"]
    assert in_session(o["current_time"]), o["current_time"]


def check_contract_details(o: Obs, ctx: Ctx) -> None:
    details = o["details"]
    assert [d["localSymbol"] for d in details] == EXPIRIES
    dates = LAST_TRADE_DATES
    if ctx.client in LAST_TRADE_DATE_UNSPLIT:
        dates = [f"{d} 08:30 US/Central" for d in dates]
    assert [d["lastTradeDate"] for d in details] == dates
    assert len({d["conId"] for d in details}) == 4
    assert all(d["conId"] > 0 for d in details)
    for d in details:
        assert (d["symbol"], d["secType"], d["exchange"], d["currency"]) == (
            "ES",
            "FUT",
            "CME",
            "USD",
        )
        assert d["multiplier"] == "50"
        assert d["tradingClass"] == "ES"
        assert d["minTick"] == TICK
        assert d["timeZoneId"] == "US/Central"
        assert d["marketRuleIds"] == "67,67"
        assert d["longName"] == "E-mini S&P 500"
        assert {"LMT", "MKT", "STP"} <= set(d["orderTypes"].split(","))
    # Friday 2026-11-20's session: Thursday 17:00 to Friday 16:00 CT, liquid from 08:30
    assert details[0]["tradingHours"].startswith("20261119:1700-20261120:1600")
    assert "20261120:0830-20261120:1600" in details[0]["liquidHours"]


def check_unknown_contract(o: Obs, ctx: Ctx) -> None:
    assert o["details"] == []
    assert o["bars"] == []
    assert 200 in codes_for(o["errors"], o["details_req_id"]), o["errors"]
    assert 200 in codes_for(o["errors"], o["bars_req_id"]), o["errors"]


def check_snapshot(o: Obs, ctx: Ctx) -> None:
    t = o["ticks"]
    assert o["snapshot_end"] is True
    prices = ("bid", "ask", "last", "high", "low", "close", "open")
    sizes = ("bidSize", "askSize", "lastSize", "volume")
    assert set(prices + sizes) <= set(t), t
    assert all(on_grid(t[name]) for name in prices), t
    assert all(t[name] > 0 for name in sizes), t
    assert t["bid"] < t["ask"]
    assert t["low"] <= t["last"] <= t["high"]
    assert t["low"] <= t["open"] <= t["high"]
    # no whole session seen yet: CLOSE is the first price of the data
    assert t["close"] == ctx.tape.first_price


def check_tick_by_tick(o: Obs, ctx: Ctx) -> None:
    last, quotes = o["all_last"], o["bid_ask"]
    n = o["count"]
    assert len(last) >= n
    assert len(quotes) >= n
    assert all(on_grid(x["price"]) and x["size"] > 0 for x in last)
    assert all(x["bid"] < x["ask"] and on_grid(x["bid"]) and on_grid(x["ask"]) for x in quotes)
    assert all(x["bidSize"] > 0 and x["askSize"] > 0 for x in quotes)
    for ticks in (last, quotes):
        times = [x["time"] for x in ticks]
        assert times == sorted(times)
        if ctx.client not in STAMPS_TICKS_ON_RECEIPT:
            assert all(in_session(t) for t in times), times


def check_historical_bars(o: Obs, ctx: Ctx) -> None:
    bars = o["bars"]
    assert bars, "no bars"
    times = [b["time"] for b in bars]
    assert times == sorted(set(times))
    assert all(t % 5 == 0 and in_session(t) for t in times)
    assert all(ohlc_ok(b) and b["volume"] > 0 for b in bars)
    keep = o["keep_up_to_date"]
    assert keep["bars"]
    assert all(ohlc_ok(b) for b in keep["bars"])
    update = keep["update"]
    assert ohlc_ok(update)
    assert update["time"] % 5 == 0
    assert update["time"] >= keep["bars"][-1]["time"]  # the bar in progress, or a later one


def check_historical_ticks(o: Obs, ctx: Ctx) -> None:
    trades = [(x["time"], x["price"], x["size"]) for x in o["trades"]]
    assert len(trades) >= 1
    assert len(trades) >= min(o["count"], len(ctx.tape.trades))
    assert trades == ctx.tape.trades[: len(trades)]  # the tape itself, from its first trade
    quotes = [(x["time"], x["bid"], x["ask"], x["bidSize"], x["askSize"]) for x in o["bid_ask"]]
    assert len(quotes) >= 1
    assert quotes == ctx.tape.quotes[: len(quotes)]


def check_head_timestamp(o: Obs, ctx: Ctx) -> None:
    assert o["head"] == ctx.tape.trades[0][0]  # the first trade


def check_histogram(o: Obs, ctx: Ctx) -> None:
    rows = o["rows"]
    assert rows
    assert all(on_grid(r["price"]) and r["size"] > 0 for r in rows)
    prices = [r["price"] for r in rows]
    assert len(set(prices)) == len(prices)


def check_market_rule(o: Obs, ctx: Ctx) -> None:
    assert o["increments"] == [{"lowEdge": 0.0, "increment": TICK}]


def check_realtime_bars(o: Obs, ctx: Ctx) -> None:
    bars = o["bars"]
    assert len(bars) >= o["count"]
    times = [b["time"] for b in bars]
    assert all(t % 5 == 0 and in_session(t) for t in times)
    assert all(b - a == 5 for a, b in pairwise(times)), times
    assert all(ohlc_ok(b) and b["volume"] >= 0 for b in bars)


def check_matching_symbols(o: Obs, ctx: Ctx) -> None:
    symbols = o["matching"]
    assert symbols
    assert symbols[0]["symbol"] == "ES"
    assert symbols[0]["secType"] == "IND"
    assert symbols[0]["primaryExchange"] == "CME"
    assert "FUT" in symbols[0]["derivativeSecTypes"]


def check_family_codes(o: Obs, ctx: Ctx) -> None:
    assert [f["accountID"] for f in o["family_codes"]] == [ACCOUNT]


def check_user_info(o: Obs, ctx: Ctx) -> None:
    assert o["completed"] is True
    if ctx.client in DROPS_WHITE_BRANDING_ID:
        assert o["white_branding_id"] is None
    else:
        assert o["white_branding_id"] == ""  # no white-branding id


def check_account(o: Obs, ctx: Ctx) -> None:
    summary = {(r["account"], r["tag"]): r for r in o["summary"]}
    for tag in ("NetLiquidation", "TotalCashValue", "BuyingPower"):
        row = summary[(ACCOUNT, tag)]
        assert row["currency"] == "USD"
        assert float(row["value"]) > 0
    values = {(r["key"], r["currency"]): r["value"] for r in o["updates"]}
    assert float(values[("NetLiquidation", "USD")]) > 0
    assert o["download_end"] == ACCOUNT


def check_bracket(o: Obs, ctx: Ctx) -> None:
    qty = o["qty"]
    assert o["status"] == {"parent": "Filled", "target": "Filled", "stop": "Cancelled"}
    execs = o["executions"]
    assert [(e["orderId"], e["side"], e["shares"]) for e in execs] == [
        (o["ids"]["parent"], "BOT", qty),
        (o["ids"]["target"], "SLD", qty),
    ]
    assert all(on_grid(e["price"]) and e["account"] == ACCOUNT for e in execs)
    buy, sell = execs[0]["price"], execs[1]["price"]
    assert sell >= o["target_price"]  # a marketable limit fills at its price or better
    reports = {r["execId"]: r for r in o["commissions"]}
    assert set(reports) == {e["execId"] for e in execs}
    opening, closing = (reports[e["execId"]] for e in execs)
    assert opening["commission"] == closing["commission"] == COMMISSION * qty
    assert opening["currency"] == "USD"
    # an opening fill realizes nothing: TWS sends the unset double (node-ib issue #123)
    unset = 0.0 if ctx.client in UNSET_PNL_AS_ZERO else None
    assert opening["realizedPNL"] == unset
    expected = (sell - buy) * MULTIPLIER * qty - 2 * COMMISSION * qty
    assert math.isclose(closing["realizedPNL"], expected, abs_tol=1e-6)
    # reqExecutions with this client's filter returns the same fills
    assert {e["execId"] for e in o["req_executions"]} == set(reports)


def check_cancel_filled(o: Obs, ctx: Ctx) -> None:
    assert 10148 in codes_for(o["errors"], o["order_id"]), o["errors"]
    assert o["status"] == "Filled"  # the fill stands


def check_ioc(o: Obs, ctx: Ctx) -> None:
    assert o["status"] == "Cancelled"
    assert o["filled"] == 0
    assert o["fills"] == 0


def check_cancel(o: Obs, ctx: Ctx) -> None:
    assert o["status_before"] == "Submitted"
    assert o["status"] == "Cancelled"
    assert 202 in codes_for(o["errors"], o["order_id"]), o["errors"]


def check_modify(o: Obs, ctx: Ctx) -> None:
    assert o["status"] == "Submitted"
    assert o["lmt_before"] != o["lmt_after"]
    assert o["lmt_after"] == o["new_price"]
    assert o["perm_after"] == o["perm_before"]
    assert o["perm_before"] > 0
    assert o["open_order_lmt"] == o["new_price"]  # reqOpenOrders shows the new price


def check_global_cancel(o: Obs, ctx: Ctx) -> None:
    assert o["status_before"] == ["Submitted", "Submitted"]
    assert o["status"] == ["Cancelled", "Cancelled"]


def check_positions(o: Obs, ctx: Ctx) -> None:
    conid = ctx.obs["contract_details"]["details"][0]["conId"]
    rows = [p for p in o["positions"] if p["conId"] == conid]
    assert len(rows) == 1, o["positions"]
    (row,) = rows
    assert row["account"] == ACCOUNT
    assert row["position"] == o["qty"]
    # IB's avgCost for a future: the fill price times the multiplier, plus the commission
    assert math.isclose(row["avgCost"], o["fill_price"] * MULTIPLIER + COMMISSION, abs_tol=1e-6)


def check_pnl(o: Obs, ctx: Ctx) -> None:
    pnl, single = o["pnl"], o["single"]
    realized = ctx.obs["bracket"]["commissions"]
    closed = sum(r["realizedPNL"] or 0.0 for r in realized)
    assert math.isclose(pnl["realizedPnL"], closed, abs_tol=0.01)
    assert math.isfinite(pnl["dailyPnL"])
    assert math.isfinite(pnl["unrealizedPnL"])
    position = ctx.obs["positions"]
    assert single["pos"] == position["qty"]
    mark = single["value"] / (single["pos"] * MULTIPLIER)
    assert on_grid(mark)
    avg_cost = position["fill_price"] * MULTIPLIER + COMMISSION
    assert math.isclose(single["unrealizedPnL"], single["value"] - single["pos"] * avg_cost)
    assert math.isfinite(single["dailyPnL"])


def check_orders(o: Obs, ctx: Ctx) -> None:
    ref = o["order_ref"]
    mine = [x for x in o["open"] if x["orderRef"] == ref]
    assert [(x["status"], x["permId"]) for x in mine] == [("Submitted", o["perm_id"])]
    assert ref in {x["orderRef"] for x in o["all_open"]}
    bracket = ctx.obs["bracket"]
    perm = bracket["perm_ids"]
    done = {x["permId"]: x["status"] for x in o["completed"]}
    assert done.get(perm["parent"]) == "Filled"
    assert done.get(perm["target"]) == "Filled"
    assert done.get(perm["stop"]) == "Cancelled"
    assert o["perm_id"] not in done  # a working order is not completed


def check_duplicate_client_id(o: Obs, ctx: Ctx) -> None:
    assert 326 in o["codes"], o["codes"]
    assert o["connected"] is False
    assert o["first_still_works"] is True


def check_reconnect(o: Obs, ctx: Ctx) -> None:
    orders = ctx.obs["orders"]
    assert o["server_version"] == ctx.server_version
    assert orders["perm_id"] in o["open_perm_ids"]
    assert o["next_valid_id"] > orders["order_id"]  # never an id already used
    conid = ctx.obs["contract_details"]["details"][0]["conId"]
    assert o["positions"].get(str(conid)) == ctx.obs["positions"]["qty"]
    bracket_execs = {e["execId"] for e in ctx.obs["bracket"]["executions"]}
    assert bracket_execs <= set(o["exec_ids"])


FLOWS: list[Flow] = [
    Flow(
        "connect",
        frozenset({71, 17, 8, 49}),
        "answers the handshake with its version, then nextValidId, managedAccounts and the "
        "farm notices 2104/2106/2158; reqManagedAccts, reqIds and reqCurrentTime answer at once",
        check_connect,
        {"client_id": 1},
    ),
    Flow(
        "contract_details",
        frozenset({9}),
        "an unqualified ES future lists every quarterly expiry it trades, nearest first, with "
        "its hours in the exchange's zone",
        check_contract_details,
        {"contract": ES_FUTURE},
    ),
    Flow(
        "unknown_contract",
        frozenset({9, 20}),
        "error 200 'No security definition has been found' with the request's id, for contract "
        "details (which then end empty) and for historical data (not 162: ib_async #49, "
        "ib_insync #658)",
        check_unknown_contract,
        {"contract": UNKNOWN_STOCK},
    ),
    Flow(
        "snapshot",
        frozenset({1}),
        "a snapshot sends every field it has — bid/ask/last with sizes, volume, high, low, "
        "open and CLOSE (the previous settlement) — then tickSnapshotEnd",
        check_snapshot,
    ),
    Flow(
        "tick_by_tick",
        frozenset({97, 98}),
        "AllLast: one message per trade; BidAsk: one per quote change, the first at once",
        check_tick_by_tick,
        {"count": 5},
    ),
    Flow(
        "historical_bars",
        frozenset({20, 25}),
        "TRADES bars of the window ending now, on the bar grid; with keepUpToDate the bar in "
        "progress keeps coming (historicalDataUpdate) until cancelHistoricalData",
        check_historical_bars,
        {"duration": "1800 S", "bar_size": "5 secs", "what": "TRADES"},
    ),
    Flow(
        "historical_ticks",
        frozenset({96}),
        "the ticks from startDateTime on, at least numberOfTicks when there are that many",
        check_historical_ticks,
        {"start": START_TEXT, "count": 10},
    ),
    Flow(
        "head_timestamp",
        frozenset({87}),
        "the time of the earliest trade it has (formatDate 2: epoch seconds)",
        check_head_timestamp,
        {"what": "TRADES"},
    ),
    Flow(
        "histogram",
        frozenset({88}),
        "the volume traded at each price over the period",
        check_histogram,
        {"period": "1 day"},
    ),
    Flow(
        "market_rule",
        frozenset({91}),
        "the price increments of the rule named in marketRuleIds: ES trades in 0.25 at every price",
        check_market_rule,
        {"rule_id": 67},
    ),
    Flow(
        "realtime_bars",
        frozenset({50, 51}),
        "a 5-second bar every 5 seconds, on the 5-second grid, none skipped",
        check_realtime_bars,
        {"count": 2},
    ),
    Flow(
        "matching_symbols",
        frozenset({81}),
        "reqMatchingSymbols('ES') lists the ES index, with FUT among its derivative types",
        check_matching_symbols,
        {"pattern": "ES"},
    ),
    Flow(
        "family_codes",
        frozenset({80}),
        "one family code per managed account",
        check_family_codes,
    ),
    Flow(
        "user_info",
        frozenset({104}),
        "reqUserInfo answers the white-branding id, empty for a retail account",
        check_user_info,
    ),
    Flow(
        "account",
        frozenset({62, 63, 6}),
        "the account summary's tags, then accountSummaryEnd; account updates' values, then "
        "accountDownloadEnd with the account",
        check_account,
        {"tags": "NetLiquidation,TotalCashValue,BuyingPower"},
    ),
    Flow(
        "bracket",
        frozenset({3, 7}),
        "a bracket (MKT parent, LMT target, STP stop, the last one transmitting) fills the "
        "parent, then the marketable target, and cancels the stop (the children are one "
        "OCA group); an execution and a commission report per fill, realizedPNL unset on the "
        "opening one",
        check_bracket,
        {"qty": 1, "target_offset": -8, "stop_offset": -80},
    ),
    Flow(
        "cancel_filled",
        frozenset({4}),
        "cancelling a filled order: error 10148 'cannot be cancelled, state: Filled'",
        check_cancel_filled,
    ),
    Flow(
        "ioc",
        frozenset({3}),
        "an IOC limit that cannot fill at once is cancelled with nothing filled",
        check_ioc,
        {"offset": -160},
    ),
    Flow(
        "cancel",
        frozenset({3, 4}),
        "a resting order is Submitted; its cancel is confirmed by Cancelled and error 202",
        check_cancel,
        {"offset": -160},
    ),
    Flow(
        "modify",
        frozenset({3, 5}),
        "placing again under the same order id changes the working order (same permId)",
        check_modify,
        {"offset": -160, "new_offset": -164},
    ),
    Flow(
        "global_cancel",
        frozenset({58}),
        "reqGlobalCancel cancels every working order",
        check_global_cancel,
        {"offsets": [-160, -164]},
    ),
    Flow(
        "positions",
        frozenset({3, 61}),
        "after a fill, reqPositions shows the position with IB's avgCost (price x multiplier "
        "+ commission), then positionEnd",
        check_positions,
        {"qty": 1},
    ),
    Flow(
        "pnl",
        frozenset({92, 94}),
        "reqPnL: daily, unrealized and the day's realized PnL; reqPnLSingle: the position, "
        "its unrealized PnL and value at the mark",
        check_pnl,
    ),
    Flow(
        "orders",
        frozenset({3, 5, 16, 99}),
        "reqOpenOrders / reqAllOpenOrders: the working orders; reqCompletedOrders: the day's "
        "filled and cancelled ones",
        check_orders,
        {"offset": -160, "order_ref": "conf-rest"},
    ),
    Flow(
        "duplicate_client_id",
        frozenset({71}),
        "a second connection with a client id in use: error 326, and that socket is closed; "
        "the first connection is untouched",
        check_duplicate_client_id,
        {"client_id": 1},
    ),
    Flow(
        "reconnect",
        frozenset({71, 5, 61, 7}),
        "orders keep working while the client is away; connecting again with the same id "
        "gets them back, with the position, the day's executions and a fresh nextValidId",
        check_reconnect,
        {"client_id": 1},
    ),
]

BY_NAME = {f.name: f for f in FLOWS}

# (client, flow) whose client has no API that shows the answer; the driver must say so, and a
# driver saying so for a pair not listed here fails.
UNSUPPORTED: dict[tuple[str, str], str] = {
    ("ib_async", "family_codes"): "ib_async 2.1 has no IB method for reqFamilyCodes and its "
    "wrapper.familyCodes is a no-op: the answer never reaches the user",
    ("ib_insync", "family_codes"): "ib_insync 0.9.86 has no IB method for reqFamilyCodes and "
    "its wrapper.familyCodes is a no-op: the answer never reaches the user",
    ("ibapi", "user_info"): "ibapi 9.81 has no reqUserInfo (it came with API 10.x)",
}

# Requests ibsim answers with data that no flow sends, and why.
EXEMPT: dict[int, str] = {
    67: "display groups link TWS windows by colour: with no TWS window to link there is nothing "
    "for a flow to observe beyond the answer, which tests/ibsim/test_message_table.py checks "
    "(ib_async and ib_insync have no wrapper method for 67/68 at all)",
    68: "display groups (see 67)",
    69: "display groups (see 67)",
    74: "reqPositionsMulti: ib_async and ib_insync drop its answer (wrapper.positionMulti is a "
    "no-op); flow 'positions' reads the same positions with reqPositions (61), and "
    "tests/ibsim/test_message_table.py checks the answer",
    76: "reqAccountUpdatesMulti: ib_async and ib_insync send it at every connect, so every run "
    "of theirs goes through it; flow 'account' reads the same values with reqAccountUpdates (6)",
}


def spec(host: str, port: int) -> dict[str, Any]:
    """What a driver reads on its standard input."""
    return {
        "host": host,
        "port": port,
        "account": ACCOUNT,
        "tick": TICK,
        "timeout": 15.0,
        "flows": [{"name": f.name, "params": dict(f.params)} for f in FLOWS],
    }
