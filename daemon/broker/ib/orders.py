"""The live `OrderGateway`: orders to IB through ib_async's client, IB's order messages back.

Sending goes straight through `ib.client` (placeOrder, cancelOrder) so that ib_async's local
guesses (it marks an order Cancelled on some errors) never stand in for the broker's word.
Receiving taps the decoder's wrapper calls `openOrder`, `orderStatus`, `completedOrder`,
`execDetails` and `commissionReport`, live and in reply to requests alike, and turns each into
one event of `daemon.core.gateway` before ib_async sees it: IB's words become `Status`, `Side`
and `OrderType` here, numbers become plain floats (IB's unset double None where it means "not
set"), and what cannot be read is named in the event's `problems` (or the whole message becomes
`Unreadable`): nothing raised here reaches the decoder. Errors about this connection's order
ids come from the error router as `OrderError`s.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import structlog
from ib_async import IB, Contract
from ib_async import Order as IbOrder
from ib_async.util import UNSET_DOUBLE

from daemon.broker.ib.errors import ErrorRouter
from daemon.core.gateway import (
    CommissionReport,
    ExecutionReport,
    OrderError,
    OrderEvent,
    OrderReport,
    StatusReport,
    Unreadable,
)
from daemon.core.orders import Order, OrderType, Side, Status

log = structlog.get_logger("daemon.broker.ib.orders")

_EXEC_SIDES = {"BOT": Side.BUY, "SLD": Side.SELL, "BUY": Side.BUY, "SELL": Side.SELL}


class IbOrderGateway:
    """Orders of one `IB` connection (see the module docstring)."""

    def __init__(self, ib: IB, errors: ErrorRouter) -> None:
        self.ib = ib
        self._listener: Callable[[OrderEvent], None] = _nobody
        self._contract: Contract | None = None
        self._contracts: dict[int, Contract] = {}  # every contract routed to, by conId
        self._account = ""
        errors.orders = self._order_error
        self._tap_wrapper()

    # --- the OrderGateway ---

    @property
    def client_id(self) -> int:
        return int(self.ib.client.clientId)

    def next_order_id(self) -> int:
        return int(self.ib.client.getReqId())

    def listen(self, listener: Callable[[OrderEvent], None]) -> None:
        self._listener = listener

    @property
    def con_id(self) -> int:
        return 0 if self._contract is None else int(self._contract.conId)

    def route(self, contract: object, account: str) -> None:
        """Where new orders go from now on: the contract (a broker contract handle; None:
        nowhere yet) and the account (set at each session and at a roll)."""
        assert contract is None or isinstance(contract, Contract), "not a contract of IB"
        self._contract, self._account = contract, account
        if contract is not None:
            self._contracts[contract.conId] = contract

    def place(self, order: Order, *, transmit: bool, parent_order_id: int) -> None:
        place: Callable[[int, Contract, IbOrder], None] = self.ib.client.placeOrder
        contract = self._contract_of(order)
        place(order.order_id, contract, self._ib_order(order, transmit, parent_order_id))

    def _contract_of(self, order: Order) -> Contract:
        """The order's own contract: once routed to, else named by its conId on the traded
        one's exchange (all IB needs); the traded one when the order's is not known."""
        assert self._contract is not None, "no contract to trade"
        if not order.con_id or order.con_id == self._contract.conId:
            return self._contract
        known = self._contracts.get(order.con_id)
        if known is not None:
            return known
        return Contract(conId=order.con_id, exchange=self._contract.exchange)

    def modify(self, order: Order, *, parent_order_id: int = 0) -> None:
        self.place(order, transmit=True, parent_order_id=parent_order_id)

    def cancel(self, order: Order) -> None:
        cancel: Callable[[int, str], None] = self.ib.client.cancelOrder
        cancel(order.order_id, "")

    def _ib_order(self, rec: Order, transmit: bool, parent_order_id: int) -> IbOrder:
        order = IbOrder(
            orderId=rec.order_id,
            clientId=rec.client_id,
            action=rec.action.value,
            totalQuantity=rec.quantity,
            orderType=rec.order_type.value,
            tif=rec.tif,
            orderRef=rec.ref,
            transmit=transmit,
            parentId=parent_order_id,
            outsideRth=True,
            account=self._account,
        )
        if rec.lmt_price is not None:
            order.lmtPrice = rec.lmt_price
        if rec.aux_price is not None:
            order.auxPrice = rec.aux_price
        if rec.oca_group:
            order.ocaGroup = rec.oca_group
            order.ocaType = 1
        return order

    # --- receiving ---

    def _order_error(self, order_id: int, code: int, message: str) -> None:
        self._emit("error", lambda: OrderError(order_id, code, message))

    def _emit(self, what: str, read: Callable[[], OrderEvent]) -> None:
        """Read a message into an event and hand it on; a message that cannot be read at all
        becomes `Unreadable` (the listener guards itself)."""
        try:
            event = read()
        except Exception as exc:
            log.error("broker_message_unreadable", message=what, error=repr(exc))
            event = Unreadable(what, f"{exc!r}"[:200])
        self._listener(event)

    def _tap_wrapper(self) -> None:
        wrapper = self.ib.wrapper
        original_open = wrapper.openOrder
        original_status = wrapper.orderStatus
        original_completed = wrapper.completedOrder
        original_exec = wrapper.execDetails
        original_commission = wrapper.commissionReport

        def open_order(orderId: int, contract: Contract, order: IbOrder, orderState: Any) -> None:
            self._emit("openOrder", lambda: _order_report(order, orderState.status, False))
            original_open(orderId, contract, order, orderState)

        def order_status(
            orderId: int, status: str, filled: float, remaining: float, avgFillPrice: float,
            permId: int, parentId: int, lastFillPrice: float, clientId: int, whyHeld: str,
            mktCapPrice: float = 0.0,
        ) -> None:  # fmt: skip
            self._emit(
                "orderStatus",
                lambda: _status_report(clientId, orderId, permId, status, filled, avgFillPrice),
            )
            original_status(
                orderId, status, filled, remaining, avgFillPrice, permId, parentId,
                lastFillPrice, clientId, whyHeld, mktCapPrice,
            )  # fmt: skip

        def completed_order(contract: Contract, order: IbOrder, orderState: Any) -> None:
            self._emit("completedOrder", lambda: _order_report(order, orderState.status, True))
            original_completed(contract, order, orderState)

        def exec_details(reqId: int, contract: Contract, execution: Any) -> None:
            self._emit("execDetails", lambda: _execution_report(contract, execution))
            original_exec(reqId, contract, execution)

        def commission_report(report: Any) -> None:
            self._emit("commissionReport", lambda: _commission_report(report))
            original_commission(report)

        # The decoder looks these up on the wrapper instance at every message.
        wrapper.openOrder = open_order  # type: ignore[method-assign]
        wrapper.orderStatus = order_status  # type: ignore[method-assign]
        wrapper.completedOrder = completed_order  # type: ignore[method-assign]
        wrapper.execDetails = exec_details  # type: ignore[method-assign]
        wrapper.commissionReport = commission_report  # type: ignore[method-assign,assignment]


def _nobody(event: OrderEvent) -> None:
    """No executor listens (a connection without trading)."""


# --- IB's words and numbers, read ---


def _number(value: float | Decimal | None) -> float | None:
    """A price or amount; None for IB's unset double, NaN or nothing."""
    if value is None:
        return None
    number = float(value)
    return None if number >= UNSET_DOUBLE or math.isnan(number) else number


def _quantity(value: float | Decimal | None) -> int | None:
    """A whole quantity; None for IB's unset value or nonsense."""
    number = _number(value)
    if number is None or not math.isfinite(number) or number < 0:
        return None
    return int(number)


def _status(word: str, problems: list[tuple[str, str]]) -> Status | None:
    if not word:
        return None
    status = Status.from_broker(word)
    if status is None:
        problems.append(("status", word))
    return status


def _order_report(order: IbOrder, word: str, completed: bool) -> OrderReport:
    problems: list[tuple[str, str]] = []
    status = _status(word, problems)
    try:
        action: Side | None = Side(order.action)
    except ValueError:
        action = None
        problems.append(("action", str(order.action)))
    try:
        order_type: OrderType | None = OrderType(order.orderType)
    except ValueError:
        order_type = None
        problems.append(("order type", str(order.orderType)))
    return OrderReport(
        client_id=order.clientId,
        order_id=order.orderId,
        perm_id=order.permId,
        ref=order.orderRef or "",
        status=status,
        action=action,
        quantity=float(order.totalQuantity),
        order_type=order_type,
        lmt_price=_number(order.lmtPrice),
        aux_price=_number(order.auxPrice),
        tif=order.tif or "DAY",
        oca_group=order.ocaGroup or "",
        parent_id=order.parentId,
        filled=_quantity(getattr(order, "filledQuantity", None)),
        completed=completed,
        problems=tuple(problems),
    )


def _status_report(
    client_id: int, order_id: int, perm_id: int, word: str, filled: float, avg: float
) -> StatusReport:
    problems: list[tuple[str, str]] = []
    status = _status(word, problems)
    return StatusReport(
        client_id, order_id, perm_id, status, float(filled), _number(avg), tuple(problems)
    )


def _execution_report(contract: Contract, ex: Any) -> ExecutionReport:
    side = _EXEC_SIDES.get(ex.side)
    problems = () if side is not None else (("side", str(ex.side)),)
    when = ex.time.timestamp() if hasattr(ex.time, "timestamp") else None
    return ExecutionReport(
        exec_id=ex.execId,
        client_id=ex.clientId,
        order_id=ex.orderId,
        perm_id=ex.permId,
        ref=ex.orderRef or "",
        side=side,
        shares=float(ex.shares),
        price=float(ex.price),
        cum_qty=float(ex.cumQty),
        avg_price=float(ex.avgPrice),
        time=when,
        con_id=contract.conId,
        account=ex.acctNumber,
        problems=problems,
    )


def _commission_report(report: Any) -> CommissionReport:
    return CommissionReport(report.execId, _number(report.commission), _number(report.realizedPNL))
