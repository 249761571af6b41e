"""The TWS error / message codes the daemon meets, and what each one asks of us.

The catalogue itself (one `TwsCode` per code: meaning after IB's public message-code list,
action by this daemon's policy) is `daemon.broker.tws_catalogue`, its names importable from
here; this module looks codes up, names the code sets the daemon acts on, holds the operator's
fixes and renders the catalogue's page. ib_async's own warning/error split (which decides
whether it cancels a local Trade) is mirrored separately by `ib_async_treats_as_warning`,
because it differs from IB's severity in places.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

from daemon.broker.tws_catalogue import CODES as CODES
from daemon.broker.tws_catalogue import Category as Category
from daemon.broker.tws_catalogue import Severity as Severity
from daemon.broker.tws_catalogue import TwsCode as TwsCode

_CME_SUBSCRIPTION = (
    'subscribe to "CME Real-Time (NP,L1)" on the live login and share it with the paper '
    "account (Client Portal: Settings → Market Data Subscriptions; Settings → Paper Trading "
    "Account)"
)
_FIXES = {
    321: 'untick "Read-Only API" in TWS (File/Edit → Global Configuration → API → Settings; '
    "IB Gateway: Configure → Settings → API → Settings) and press Apply",
    326: "close the other API session using this client id (or wait for TWS to drop it), or "
    "set ib.client_id to a free id",
    354: _CME_SUBSCRIPTION,
    502: 'start TWS or IB Gateway and log in; tick "Enable ActiveX and Socket Clients" (TWS: '
    "File/Edit → Global Configuration → API → Settings) and check that its socket port is "
    "ib.port",
    2103: "the market data farm is down: wait a minute and rerun; if it persists, check TWS's "
    "Data Connections window and the network",
    2119: "the market data farm is still connecting: wait a minute and rerun; if it persists, "
    "check TWS's Data Connections window and the network",
    10089: 'sign the "Market Data API Acknowledgement" and ' + _CME_SUBSCRIPTION,
    10167: "delayed data never drives trading: " + _CME_SUBSCRIPTION,
    10189: "check the CME real-time subscription and that no other session of this user runs "
    'on another IP; or set data.mode = "snapshot"',
    10190: "cancel other tick-by-tick subscriptions (TWS Time & Sales windows, other API "
    'clients of this login), or set data.mode = "snapshot"',
    10197: "log out the other session of this user (TWS, Client Portal, mobile), or share the "
    "live login's market data with the paper account",
}
FIXES: Mapping[int, str] = MappingProxyType(_FIXES)
"""What an operator does about a code, where it needs a person (used by `orderflowd doctor`)."""

# --- the code sets the daemon acts on, by owner (`daemon.broker.ib.errors` routes by reqId) ---

CLIENT_ID_IN_USE = 326  # the connection: the attempt ends, the same id is tried again
CONNECTIVITY_LOST = 1100  # the connection: DEGRADED
RESTORED_DATA_LOST = 1101  # the connection: resubscribe
RESTORED_DATA_KEPT = 1102  # the connection: verify freshness
SOCKET_PORT_RESET = 1300  # the connection: recycle
ORDER_CANCELLED = 202  # an order: cancelled (by us, an OCA sibling, or IB)
READ_ONLY_API = 321
DELAYED_DATA = 10167

FARMS: Mapping[int, str] = MappingProxyType(
    {2103: "market_data", 2104: "market_data", 2108: "market_data", 2119: "market_data"}
    | {2105: "historical", 2106: "historical", 2107: "historical"}
    | {2157: "secdef", 2158: "secdef"}
)
"""Farm messages (data health, not the order connection), by code: the farm they are about."""
MARKET_DATA_FARMS = frozenset(code for code, farm in FARMS.items() if farm == "market_data")
MARKET_DATA_FARM_UP = frozenset({2104, 2108})  # connected, or idle but available
MARKET_DATA_FARM_DOWN = frozenset({2103, 2119})  # broken, or still connecting
OWN_EVENT = frozenset({*FARMS, CONNECTIVITY_LOST, RESTORED_DATA_LOST, RESTORED_DATA_KEPT, 202})
"""Codes logged by an event of their own (`farm_status`, `ib_connectivity_*`, `order_cancelled`)
instead of `tws_message`."""

TICK_BY_TICK_REFUSALS = frozenset({10189, 10190, 354, 10089})
"""A market-data subscription refused: tick-by-tick falls back to reqMktData (snapshots)."""
NO_SUBSCRIPTION = frozenset({354, 10089})  # no real-time subscription for the contract
MARKET_DATA_REFUSALS = frozenset({*NO_SUBSCRIPTION, DELAYED_DATA, 10197})
"""No usable real-time data for the login (the doctor fails the check)."""

ORDER_TOO_LATE = frozenset({103, 104, 135, 161, 10147, 10148})
"""Answers to a cancel or modify of an acknowledged order that came too late: a fill or a
cancel crossed the request on the wire; the order itself was never refused."""
ORDER_DONE_AT_BROKER = frozenset({104, 161, 10148})
"""Those that name the order's state at the broker ("Can't modify a filled order", "cannot be
cancelled, state: Filled"): the broker has the order, whether or not its acknowledgement ever
reached us, so they are too late even for an order never acknowledged, never its refusal."""
ORDER_REJECTS = frozenset(
    {103, 104, 105, 110, 135, 161, 200, 201, 203, READ_ONLY_API, 382, 383, 10147, 10148}
)
"""An order (or its modify) refused."""

_REQUEST_NOTICES = frozenset({165})  # HMDS messages: the request goes on


# ib_async's wrapper.error() warning set; 110 is an error there for what-if requests and for
# orders still PendingSubmit, which this default classification cannot know.
_IB_ASYNC_WARNINGS = frozenset({105, 110, 165, 321, 329, 399, 404, 434, 492, 10167})


def _in_warning_range(code: int) -> bool:
    return 2100 <= code < 2200


def lookup(code: int) -> TwsCode:
    """The catalogue entry for `code`, or a generic UNKNOWN entry (2100-2199 warn, else error)."""
    entry = CODES.get(code)
    if entry is not None:
        return entry
    return TwsCode(
        code,
        "unknown",
        Severity.WARNING if _in_warning_range(code) else Severity.ERROR,
        Category.UNKNOWN,
        f"Code {code} is not in the catalogue; see IB's message codes.",
        "log it with its text; if it carries an order id, reconcile that order",
    )


def is_farm(code: int) -> bool:
    """Whether `code` reports a data farm's state (data health, not the order connection)."""
    return lookup(code).category is Category.FARM


def is_request_notice(code: int) -> bool:
    """Whether `code` about a request is a notice that does not end it (farms, 165)."""
    return code in _REQUEST_NOTICES or _in_warning_range(code)


def is_connectivity(code: int) -> bool:
    """Whether `code` is about the link between client, TWS and IB."""
    return lookup(code).category is Category.CONNECTIVITY


def ib_async_treats_as_warning(code: int) -> bool:
    """Whether ib_async logs `code` as a warning (and leaves a matching order live)."""
    return code in _IB_ASYNC_WARNINGS or _in_warning_range(code)


def render_markdown() -> str:
    """The catalogue as a Markdown table, sorted by code."""

    def cell(text: str) -> str:
        return text.replace("|", "\\|")

    lines = [
        "| Code | Name | Severity | Category | Meaning | Action |",
        "|---:|---|---|---|---|---|",
    ]
    for entry in sorted(CODES.values(), key=lambda e: e.code):
        lines.append(
            f"| {entry.code} | `{entry.name}` | {entry.severity.value} | {entry.category.value} "
            f"| {cell(entry.meaning)} | {cell(entry.action)} |"
        )
    return "\n".join(lines) + "\n"
