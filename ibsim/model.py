"""Domain types shared by the simulator's parts (market, contracts, matching, wire).

Times are UTC epoch seconds as floats; prices are floats on the instrument's tick grid;
sizes and quantities are ints (ES trades whole contracts).
"""

from __future__ import annotations

import dataclasses
import enum
from dataclasses import dataclass
from typing import Any

TICK_SIZE = 0.25
ES_MULTIPLIER = 50

UNSET_INTEGER = 2**31 - 1
UNSET_DOUBLE = 1.7976931348623157e308


class Side(enum.StrEnum):
    """Aggressor side of a trade, or side of an order."""

    BUY = "BUY"
    SELL = "SELL"


@dataclass(frozen=True, slots=True)
class TradeTick:
    """One print on the tape, with the side that crossed the spread (the simulator knows it)."""

    time: float
    price: float
    size: int
    aggressor: Side


@dataclass(frozen=True, slots=True)
class QuoteTick:
    """Top of book after a change."""

    time: float
    bid: float
    ask: float
    bid_size: int
    ask_size: int


MarketEvent = TradeTick | QuoteTick


@dataclass(frozen=True, slots=True)
class FutureSpec:
    """One listed futures contract as the gateway describes it."""

    con_id: int
    symbol: str  # "ES"
    local_symbol: str  # "ESZ6"
    expiry: str  # lastTradeDateOrContractMonth "YYYYMMDD"
    contract_month: str  # "YYYYMM"
    last_trade_time: str  # "08:30" (Central)
    exchange: str = "CME"
    currency: str = "USD"
    trading_class: str = "ES"
    multiplier: float = ES_MULTIPLIER  # an int where whole: the wire shows "50", MYM's "0.5"
    min_tick: float = TICK_SIZE
    time_zone_id: str = "US/Central"
    long_name: str = "E-mini S&P 500"
    under_con_id: int = 11004968
    trading_hours: str = ""
    liquid_hours: str = ""
    market_rule_id: int = 67  # the price increments (reqMarketRule), `products.MARKET_RULES`


class OrderType(enum.StrEnum):
    MKT = "MKT"
    LMT = "LMT"
    STP = "STP"
    STP_LMT = "STP LMT"
    TRAIL = "TRAIL"
    TRAIL_LIMIT = "TRAIL LIMIT"
    MIT = "MIT"
    LIT = "LIT"


class OrderStatus(enum.StrEnum):
    PENDING_SUBMIT = "PendingSubmit"
    PRE_SUBMITTED = "PreSubmitted"
    SUBMITTED = "Submitted"
    PENDING_CANCEL = "PendingCancel"
    CANCELLED = "Cancelled"
    API_CANCELLED = "ApiCancelled"
    FILLED = "Filled"
    INACTIVE = "Inactive"

    @property
    def done(self) -> bool:
        return self in _DONE_STATUSES


_DONE_STATUSES = frozenset(
    {OrderStatus.CANCELLED, OrderStatus.API_CANCELLED, OrderStatus.FILLED, OrderStatus.INACTIVE}
)


@dataclass(slots=True)
class OrderRequest:
    """The parts of a PLACE_ORDER message the simulator acts on (others are echoed as defaults)."""

    client_id: int
    order_id: int
    con_id: int
    action: Side
    total_quantity: int
    order_type: OrderType
    lmt_price: float | None = None
    aux_price: float | None = None  # trigger (STP, STP LMT, MIT, LIT); TRAIL: trailing amount
    tif: str = "DAY"
    oca_group: str = ""
    oca_type: int = 0
    account: str = ""
    order_ref: str = ""
    transmit: bool = True
    parent_id: int = 0
    outside_rth: bool = False
    what_if: bool = False
    good_till_date: str = ""  # as the client wrote it (GTD)
    trailing_percent: float | None = None  # TRAIL / TRAIL LIMIT, instead of an amount
    trail_stop_price: float | None = None  # initial stop of a trailing order
    lmt_price_offset: float | None = None  # TRAIL LIMIT: limit = stop -/+ offset


@dataclass(slots=True)
class Order:
    """A working or finished order inside the simulated gateway."""

    request: OrderRequest
    perm_id: int
    status: OrderStatus
    filled: int = 0
    avg_fill_price: float = 0.0
    last_fill_price: float = 0.0
    triggered: bool = False  # stop, trailing and if-touched orders: has the trigger fired
    completed_time: float | None = None
    why_held: str = ""
    trail_stop: float | None = None  # trailing orders: the stop price now
    expires_at: float | None = None  # DAY / GTD: when the order is cancelled if still working

    @property
    def remaining(self) -> int:
        return self.request.total_quantity - self.filled

    @property
    def key(self) -> tuple[int, int]:
        return (self.request.client_id, self.request.order_id)


@dataclass(frozen=True, slots=True)
class Execution:
    """One fill of one order."""

    exec_id: str
    time: float
    client_id: int
    order_id: int
    perm_id: int
    con_id: int
    account: str
    side: Side
    shares: int
    price: float
    cum_qty: int
    avg_price: float
    order_ref: str
    commission: float
    realized_pnl: float | None  # None until the fill closes part of a position
    liquidity: int  # 1 added, 2 removed


@dataclass(slots=True)
class Position:
    account: str
    con_id: int
    quantity: int = 0
    avg_cost: float = 0.0  # per contract, multiplier included, as IB reports it
    realized_pnl: float = 0.0


@dataclass(frozen=True, slots=True)
class OrderEvent:
    """The order's state changed: the wire sends OPEN_ORDER (if live) and ORDER_STATUS."""

    order: Order


@dataclass(frozen=True, slots=True)
class FillEvent:
    """An order filled (partly): the wire sends EXECUTION_DATA then COMMISSION_REPORT.

    `corrects` is set when the execution is a correction: the execId it replaces.
    """

    order: Order
    execution: Execution
    corrects: str | None = None


@dataclass(frozen=True, slots=True)
class OrderError:
    """An ERR_MSG about an order (reqId = orderId) to the owning client."""

    client_id: int
    order_id: int
    code: int
    message: str


EngineEvent = OrderEvent | FillEvent | OrderError


@dataclass(slots=True)
class Faults:
    """Order faults armed by the scenario runner and consumed by the engine (201 rejects)."""

    reject_next_orders: int = 0


def as_plain(obj: Any) -> Any:
    """Dataclasses, enums and containers as JSON-ready builtins."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: as_plain(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, enum.Enum):
        return obj.value
    if isinstance(obj, list | tuple):
        return [as_plain(x) for x in obj]
    return obj
