"""Order faults: corrected executions, orders the client never sent, forged order messages.

`correct_execution` and `place_foreign_order` act on the broker's book (the matching engine)
and reach clients like any fill or order. The `inject_*` methods are pure wire forgeries, what a
proxy can make up: one message to one client session, nothing behind it in the engine.

`OrderFaults` is a mixin of `ibsim.gateway.Gateway` (the attributes annotated on it are the
gateway's).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING

from ibsim.matching import MatchingEngine
from ibsim.model import (
    EngineEvent,
    Execution,
    FillEvent,
    FutureSpec,
    Order,
    OrderRequest,
    OrderStatus,
    OrderType,
    Side,
)

if TYPE_CHECKING:
    from ibsim.clock import SimClock
    from ibsim.gateway import GatewayConfig
    from ibsim.session import ClientSession

log = logging.getLogger("ibsim.orderfaults")

FORGED_EXEC_PREFIX = "0000f00d"  # forged execIds never collide with the engine's
FORGED_PERM_ID_START = 1_999_000_000
_SIDES = {"BUY": Side.BUY, "BOT": Side.BUY, "SELL": Side.SELL, "SLD": Side.SELL}


def _side(text: str) -> Side:
    try:
        return _SIDES[text.upper()]
    except KeyError:
        raise ValueError(f"side {text!r} is not BUY, SELL, BOT or SLD") from None


class OrderFaults:
    """Executions corrected, foreign orders, forged executions and order messages."""

    config: GatewayConfig
    engine: MatchingEngine
    front: FutureSpec
    clock: SimClock
    dispatch: Callable[[Iterable[EngineEvent]], None]
    session_of: Callable[[int], ClientSession | None]

    def _init_order_faults(self) -> None:
        self._forged = 0

    def correct_execution(
        self, exec_id: str | None = None, *, price: float | None = None, shares: int | None = None
    ) -> str | None:
        """IB corrects a fill: a new execution whose execId's last number is one higher.

        `exec_id` None corrects the most recent execution; unchanged values are kept. The
        correction replaces the original in the book (position, average cost, commission) and
        goes live to the owning client (EXECUTION_DATA reqId -1, COMMISSION_REPORT) with
        position updates; `reqExecutions` then answers both. Returns the new execId, None when
        there is no execution; an unknown `exec_id` is a KeyError.
        """
        events = self.engine.correct(exec_id, price=price, shares=shares)
        if not events:
            return None
        self.dispatch(events)
        fill = events[0]
        assert isinstance(fill, FillEvent)
        log.info("execution %s corrected by %s", fill.corrects, fill.execution.exec_id)
        return fill.execution.exec_id

    def place_foreign_order(
        self,
        client_id: int,
        order_ref: str,
        action: str,
        quantity: int,
        order_type: str = "MKT",
        lmt_price: float | None = None,
        account: str | None = None,
        *,
        order_id: int | None = None,
    ) -> int:
        """A real order on the front month that the connected client never sent; its order id.

        Placed under `client_id` (another instance; or the connected client's own id: an order
        of an earlier life), it works, fills and moves the account's position like any order,
        and its messages go to the session owning `client_id`, if any. MKT or LMT; the id is
        that client's next unused one unless `order_id` is given.
        """
        kind = OrderType(order_type.upper())
        if kind not in (OrderType.MKT, OrderType.LMT):
            raise ValueError(f"order_type must be MKT or LMT, got {order_type!r}")
        if kind is OrderType.LMT and lmt_price is None:
            raise ValueError("a LMT foreign order needs lmt_price")
        if quantity < 1:
            raise ValueError(f"quantity must be at least 1, got {quantity}")
        oid = self.engine.next_order_id(client_id) if order_id is None else order_id
        request = OrderRequest(
            client_id=client_id,
            order_id=oid,
            con_id=self.front.con_id,
            action=_side(action),
            total_quantity=quantity,
            order_type=kind,
            lmt_price=lmt_price,
            account=account or self.config.accounts[0],
            order_ref=order_ref,
        )
        events = self.engine.place(request)
        self.dispatch(events)
        if self.engine.order(client_id, oid) is None:
            raise ValueError(f"foreign order refused by the engine: {events}")
        log.info("foreign order %d:%d %s %s %d", client_id, oid, order_ref, action, quantity)
        return oid

    def _live_session(self, client_id: int) -> ClientSession | None:
        session = self.session_of(client_id)
        return None if session is None or session.closed else session

    def inject_execution(
        self,
        client_id: int,
        *,
        order_id: int,
        order_ref: str,
        side: str,
        shares: int,
        price: float,
        perm_id: int | None = None,
        exec_id: str | None = None,
        exec_client_id: int | None = None,
        account: str | None = None,
    ) -> str | None:
        """A forged live fill (EXECUTION_DATA reqId -1, COMMISSION_REPORT) on the front month
        to the session of `client_id` only; nothing changes at the broker.

        `exec_client_id` is the clientId inside the execution (default `client_id`); a fresh
        execId and permId are made up unless given. Returns the execId, None when no session
        has that client id.
        """
        session = self._live_session(client_id)
        if session is None:
            return None
        self._forged += 1
        ex = Execution(
            exec_id=exec_id or f"{FORGED_EXEC_PREFIX}.{self._forged:08x}.01.01",
            time=self.clock.now(),
            client_id=client_id if exec_client_id is None else exec_client_id,
            order_id=order_id,
            perm_id=FORGED_PERM_ID_START + self._forged if perm_id is None else perm_id,
            con_id=self.front.con_id,
            account=account or self.config.accounts[0],
            side=_side(side),
            shares=shares,
            price=price,
            cum_qty=shares,
            avg_price=price,
            order_ref=order_ref,
            commission=self.config.commission_per_contract * shares,
            realized_pnl=None,
            liquidity=2,
        )
        session.send(session.enc.execution(-1, self.front, ex))
        session.send(session.enc.commission_report(ex))
        log.info("forged execution %s sent to client %d", ex.exec_id, client_id)
        return ex.exec_id

    def inject_order_status(
        self,
        client_id: int,
        *,
        order_id: int,
        status: str,
        filled: int,
        remaining: int,
        avg_fill_price: float,
        perm_id: int,
        parent_id: int = 0,
    ) -> bool:
        """A forged ORDER_STATUS to the session of `client_id` only (`status` one of TWS's:
        Submitted, Filled, Cancelled, ...); False when no session has that client id."""
        order_status = OrderStatus(status)
        session = self._live_session(client_id)
        if session is None:
            return False
        request = OrderRequest(
            client_id=client_id,
            order_id=order_id,
            con_id=self.front.con_id,
            action=Side.BUY,
            total_quantity=filled + remaining,
            order_type=OrderType.MKT,
            parent_id=parent_id,
        )
        order = Order(request, perm_id, order_status, filled, avg_fill_price, avg_fill_price)
        session.send(session.enc.order_status(order))
        return True

    def inject_open_order(
        self,
        client_id: int,
        *,
        order_id: int,
        order_ref: str,
        action: str,
        quantity: int,
        order_type: str = "LMT",
        lmt_price: float | None = None,
        aux_price: float | None = None,
        status: str = "Submitted",
        perm_id: int | None = None,
        parent_id: int = 0,
        account: str | None = None,
    ) -> bool:
        """A forged OPEN_ORDER on the front month to the session of `client_id` only; False
        when no session has that client id. A fresh permId is made up unless given."""
        order_status = OrderStatus(status)
        kind = OrderType(order_type.upper())
        session = self._live_session(client_id)
        if session is None:
            return False
        self._forged += 1
        request = OrderRequest(
            client_id=client_id,
            order_id=order_id,
            con_id=self.front.con_id,
            action=_side(action),
            total_quantity=quantity,
            order_type=kind,
            lmt_price=lmt_price,
            aux_price=aux_price,
            account=account or self.config.accounts[0],
            order_ref=order_ref,
            parent_id=parent_id,
        )
        perm = FORGED_PERM_ID_START + self._forged if perm_id is None else perm_id
        session.send(session.enc.open_order(self.front, Order(request, perm, order_status), None))
        return True
