"""Catalogue of the TWS error / message codes the daemon meets, with what each one asks of us.

Meanings follow IB's public message-code list; actions are this daemon's policy. ib_async's own
warning/error split (which decides whether it cancels a local Trade) is mirrored separately by
`ib_async_treats_as_warning`, because it differs from IB's severity in places.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType


class Severity(enum.Enum):
    """How bad a code is for the daemon (not how ib_async classifies it)."""

    INFO = "info"
    WARNING = "warning"
    ERROR = "error"
    CRITICAL = "critical"


class Category(enum.Enum):
    """What part of the system a code is about."""

    CONNECTIVITY = "connectivity"
    FARM = "farm"
    MARKET_DATA = "market_data"
    ORDER = "order"
    PACING = "pacing"
    CLIENT_ID = "client_id"
    CONTRACT = "contract"
    HISTORICAL = "historical"
    API = "api"
    UNKNOWN = "unknown"


@dataclass(frozen=True, slots=True)
class TwsCode:
    """One TWS code: what it means and what to do about it."""

    code: int
    name: str
    severity: Severity
    category: Category
    meaning: str
    action: str

    @property
    def known(self) -> bool:
        """Whether the code is in the catalogue (not a generic stand-in)."""
        return self.category is not Category.UNKNOWN


_I, _W, _E, _C = Severity.INFO, Severity.WARNING, Severity.ERROR, Severity.CRITICAL
_CONN, _FARM, _MD = Category.CONNECTIVITY, Category.FARM, Category.MARKET_DATA
_ORDER, _HIST = Category.ORDER, Category.HISTORICAL

_ENTRIES = (
    TwsCode(
        100,
        "max_message_rate_exceeded",
        _C,
        Category.PACING,
        "The client sent more than 50 messages per second.",
        "throttle outgoing requests below the limit; TWS is likely to drop the connection next, "
        "so expect a reconnect and reconcile",
    ),
    TwsCode(
        103,
        "duplicate_order_id",
        _E,
        _ORDER,
        "An order used an id not above every id this client used before.",
        "the order was not placed: refresh the next valid id, reconcile, and never reuse ids",
    ),
    TwsCode(
        105,
        "modified_order_mismatch",
        _E,
        _ORDER,
        "A modification changed more than price or quantity of an open order.",
        "the original order is still live: reconcile against open orders before retrying",
    ),
    TwsCode(
        110,
        "price_not_on_tick",
        _E,
        _ORDER,
        "A price does not conform to the contract's minimum price variation.",
        "round prices to minTick (0.25 for ES) before sending; reconcile, since ib_async may "
        "show a live order as ValidationError or a new one as Cancelled",
    ),
    TwsCode(
        135,
        "order_not_found",
        _E,
        _ORDER,
        "A cancel or modify named an order id TWS does not know.",
        "the order is already gone or was never placed: reconcile open and completed orders",
    ),
    TwsCode(
        160,
        "order_size_zero",
        _E,
        _ORDER,
        "An order was sent with a size of zero.",
        "a sizing bug: refuse to send zero-quantity orders and report it",
    ),
    TwsCode(
        161,
        "not_cancellable",
        _W,
        _ORDER,
        "A cancel was attempted on an order that is not in a cancellable state.",
        "the order is filled, cancelled or has a cancel pending: reconcile, do not resend",
    ),
    TwsCode(
        162,
        "historical_data_error",
        _E,
        _HIST,
        "The historical data service refused or failed a query (including pacing violations).",
        "the request ended: back off before retrying and never trade on the missing bars",
    ),
    TwsCode(
        200,
        "no_security_definition",
        _E,
        Category.CONTRACT,
        "No contract matches the request, or the description is ambiguous.",
        "check symbol, exchange, currency and expiry in config; the request ended empty",
    ),
    TwsCode(
        201,
        "order_rejected",
        _E,
        _ORDER,
        "IB rejected the order; the message carries the reason.",
        "log the reason, count the reject and reconcile; do not resubmit the same order blindly",
    ),
    TwsCode(
        202,
        "order_cancelled",
        _W,
        _ORDER,
        "An active order was cancelled, by request or by IB.",
        "expected after our own cancel; otherwise log the reason and check the bracket is whole",
    ),
    TwsCode(
        321,
        "request_validation_error",
        _E,
        Category.API,
        "TWS failed to validate an API request (for example the API is read-only).",
        "if the text mentions Read-Only, untick 'Read-Only API' in TWS; a modified order stays "
        "live, so reconcile",
    ),
    TwsCode(
        326,
        "client_id_in_use",
        _E,
        Category.CLIENT_ID,
        "Another client is connected with this client id; TWS closes the socket.",
        "another client holds this client id: wait and retry the same id (then the configured "
        "fallbacks); never pick a random one",
    ),
    TwsCode(
        354,
        "market_data_not_subscribed",
        _E,
        _MD,
        "The account has no live market data subscription for the contract.",
        "subscribe to CME data in Account Management; without live data place no new entries",
    ),
    TwsCode(
        366,
        "historical_query_not_found",
        _W,
        _HIST,
        "A historical data request id is unknown (already finished or cancelled).",
        "drop the local record of that request; nothing to cancel",
    ),
    TwsCode(
        502,
        "cannot_connect",
        _C,
        _CONN,
        "The client library could not open the socket to TWS (never sent by TWS).",
        "check TWS/Gateway runs with API enabled on the configured host, port and trusted IPs; "
        "retry with backoff",
    ),
    TwsCode(
        504,
        "not_connected",
        _E,
        _CONN,
        "A request was made while the client is not connected (never sent by TWS).",
        "send nothing until reconnected, then resubscribe and reconcile",
    ),
    TwsCode(
        1100,
        "connectivity_lost",
        _C,
        _CONN,
        "TWS lost its connection to IB's servers.",
        "go DEGRADED: no new orders until 1101/1102; orders at IB keep working, keep the socket",
    ),
    TwsCode(
        1101,
        "connectivity_restored_data_lost",
        _W,
        _CONN,
        "TWS reconnected to IB; market data subscriptions were lost.",
        "resubscribe everything from the subscription registry and reconcile before READY",
    ),
    TwsCode(
        1102,
        "connectivity_restored_data_kept",
        _I,
        _CONN,
        "TWS reconnected to IB; market data subscriptions were kept.",
        "verify data freshness and reconcile; no resubscription needed",
    ),
    TwsCode(
        1300,
        "socket_port_reset",
        _C,
        _CONN,
        "The TWS API port was changed; this connection is dropped.",
        "reconnect on the new port named in the message and fix the configured port",
    ),
    TwsCode(
        2103,
        "market_data_farm_broken",
        _W,
        _FARM,
        "A market data farm connection is broken.",
        "mark market data unhealthy (no new entries) until 2104; the order connection is fine",
    ),
    TwsCode(
        2104,
        "market_data_farm_ok",
        _I,
        _FARM,
        "A market data farm connection is OK.",
        "mark the farm healthy; data is trusted again once fresh ticks arrive",
    ),
    TwsCode(
        2105,
        "hmds_farm_broken",
        _W,
        _FARM,
        "A historical data (HMDS) farm connection is broken.",
        "historical requests will fail until 2106; live trading is unaffected",
    ),
    TwsCode(
        2106,
        "hmds_farm_ok",
        _I,
        _FARM,
        "A historical data (HMDS) farm connection is OK.",
        "none: informational, normal at connect",
    ),
    TwsCode(
        2107,
        "hmds_farm_inactive",
        _I,
        _FARM,
        "A historical data farm connection is idle but available on demand.",
        "none: informational",
    ),
    TwsCode(
        2108,
        "market_data_farm_inactive",
        _I,
        _FARM,
        "A market data farm connection is idle but available on demand.",
        "none while no data is needed; if subscribed, rely on the staleness check",
    ),
    TwsCode(
        2110,
        "tws_server_connectivity_broken",
        _W,
        _CONN,
        "Connectivity between TWS and IB's servers is broken and will be restored automatically.",
        "treat like 1100: DEGRADED with no new entries until connectivity is restored",
    ),
    TwsCode(
        2119,
        "market_data_farm_connecting",
        _I,
        _FARM,
        "A market data farm is connecting.",
        "wait for 2104 before trusting data",
    ),
    TwsCode(
        2157,
        "secdef_farm_broken",
        _W,
        _FARM,
        "The security definition farm connection is broken.",
        "contract lookups may fail or stall until 2158: defer front-month selection and rolls",
    ),
    TwsCode(
        2158,
        "secdef_farm_ok",
        _I,
        _FARM,
        "The security definition farm connection is OK.",
        "none: informational, normal at connect",
    ),
    TwsCode(
        10089,
        "api_market_data_subscription_required",
        _E,
        _MD,
        "The requested market data needs an additional subscription for API use.",
        "enable the API market data subscription in Account Management; place no new entries",
    ),
    TwsCode(
        10090,
        "partial_market_data_subscription",
        _W,
        _MD,
        "Part of the requested market data is not subscribed; other ticks still flow.",
        "check which tick types are missing; trade only if the ones the strategy needs arrive",
    ),
    TwsCode(
        10147,
        "cancel_order_not_found",
        _W,
        _ORDER,
        "The order to be cancelled was not found.",
        "it is already done or unknown: reconcile open and completed orders, do not retry",
    ),
    TwsCode(
        10148,
        "cancel_order_not_cancellable",
        _W,
        _ORDER,
        "The order cannot be cancelled in its state (Filled, Cancelled, PendingCancel).",
        "a fill or a cancel crossed the request: the order's status says the rest, do not retry",
    ),
    TwsCode(
        10167,
        "delayed_market_data",
        _E,
        _MD,
        "Live data is not subscribed; delayed market data is shown instead.",
        "delayed data must never drive trading: mark data untrusted and place no new entries",
    ),
    TwsCode(
        10189,
        "tick_by_tick_failed",
        _E,
        _MD,
        "A tick-by-tick request failed (no permission, or session on another IP).",
        "fall back to reqMktData with RTVolume and retry tick-by-tick later",
    ),
    TwsCode(
        10190,
        "tick_by_tick_limit_reached",
        _E,
        _MD,
        "The maximum number of tick-by-tick subscriptions is reached.",
        "cancel unused tick-by-tick subscriptions (other clients count too) or fall back to "
        "reqMktData",
    ),
    TwsCode(
        10197,
        "competing_live_session",
        _E,
        _MD,
        "No market data because the same user has a competing live session.",
        "log out the other session (or share data to paper); place no new entries meanwhile",
    ),
)

CODES: Mapping[int, TwsCode] = MappingProxyType({entry.code: entry for entry in _ENTRIES})
"""Every catalogued code, by number."""

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
