"""The order gateway: what the executor asks of a broker, and what the broker says back.

`OrderGateway` is all the executor knows of a broker: ids, place / modify / cancel, and typed
events delivered to one listener. The live implementation speaks to IB (`daemon.broker.ib`);
a simulated one can fill against a matching engine. Events carry the core vocabulary (`Status`,
`Side`, `OrderType`) and plain numbers: a broker's words are read at its edge, and what could
not be read is listed in `problems` as (field, the broker's word) (or, when nothing could, the
message is sent as `Unreadable`), never raised into the code that decodes the broker's
messages.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from daemon.core.orders import Order, OrderType, Side, Status

__all__ = [
    "CommissionReport",
    "ExecutionReport",
    "OrderError",
    "OrderEvent",
    "OrderGateway",
    "OrderReport",
    "Position",
    "Problems",
    "StatusReport",
    "Unreadable",
]


Problems = tuple[tuple[str, str], ...]  # (field, the broker's word) that could not be read


@dataclass(frozen=True, slots=True)
class OrderReport:
    """An open order (``completed`` False) or a completed one, as the broker describes it."""

    client_id: int  # 0 on a completed order (the broker does not say)
    order_id: int
    perm_id: int
    ref: str  # the orderRef ("" when none)
    status: Status | None  # None: no status word, or one listed in `problems`
    action: Side | None
    quantity: float
    order_type: OrderType | None
    lmt_price: float | None
    aux_price: float | None
    tif: str
    oca_group: str
    parent_id: int
    filled: int | None  # the filled quantity a completed order carries; None when unset
    completed: bool = False
    problems: Problems = ()


@dataclass(frozen=True, slots=True)
class StatusReport:
    """An order's status (orderStatus)."""

    client_id: int
    order_id: int
    perm_id: int
    status: Status | None
    filled: float
    avg_fill_price: float | None
    problems: Problems = ()


@dataclass(frozen=True, slots=True)
class ExecutionReport:
    """One execution (a fill, or a correction of one) as the broker reports it."""

    exec_id: str
    client_id: int
    order_id: int
    perm_id: int
    ref: str
    side: Side | None
    shares: float  # as sent: judged by the receiver (fills.fill_problem)
    price: float
    cum_qty: float
    avg_price: float
    time: float | None  # epoch seconds; None when the broker's time could not be read
    con_id: int
    account: str
    problems: Problems = ()


@dataclass(frozen=True, slots=True)
class CommissionReport:
    """The commission (and realized PnL, when the broker sets it) of one execution."""

    exec_id: str
    commission: float | None
    realized_pnl: float | None


@dataclass(frozen=True, slots=True)
class OrderError:
    """An error or notice the broker sent about one of this connection's order ids."""

    order_id: int
    code: int
    message: str


@dataclass(frozen=True, slots=True)
class Unreadable:
    """A broker message about orders or fills that could not be read at all."""

    what: str  # the message's name (openOrder, execDetails, ...)
    detail: str


OrderEvent = (
    OrderReport | StatusReport | ExecutionReport | CommissionReport | OrderError | Unreadable
)


@dataclass(frozen=True, slots=True)
class Position:
    """One position of the login, as the broker reports it."""

    account: str
    con_id: int
    symbol: str
    sec_type: str
    local_symbol: str
    quantity: float


class OrderGateway(Protocol):
    """Orders to a broker, and its word about them back (see the module docstring)."""

    @property
    def client_id(self) -> int:
        """The client id orders are placed under now."""
        ...

    @property
    def con_id(self) -> int:
        """The contract new orders trade (0: none yet); an order keeps its own for good."""
        ...

    def next_order_id(self) -> int:
        """A fresh order id (never reused)."""
        ...

    def place(self, order: Order, *, transmit: bool, parent_order_id: int) -> None:
        """Send ``order`` for its contract (``order.con_id``; 0: the one traded now); only
        ``transmit`` releases it (and the untransmitted ones before it) to the market."""
        ...

    def modify(self, order: Order, *, parent_order_id: int = 0) -> None:
        """Send the working ``order`` again with its new price or quantity (same order id)."""
        ...

    def cancel(self, order: Order) -> None:
        """Ask the broker to cancel ``order``."""
        ...

    def listen(self, listener: Callable[[OrderEvent], None]) -> None:
        """Deliver every event to ``listener`` (one listener; a later call replaces it)."""
        ...
