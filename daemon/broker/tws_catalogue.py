"""The catalogue of TWS error / message codes the daemon meets: one `TwsCode` per code, with
what it means (after IB's public message-code list) and what it asks of us (this daemon's
policy). `daemon.broker.tws_errors` builds on it and is where other code looks codes up.
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
