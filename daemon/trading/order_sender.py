"""Sending orders: journaled first, then through the `OrderGateway`.

Every order is written to the journal (status ``Journaled``) and committed *before* it goes on
the wire, with an orderRef unique to it (``<intent>-P``/``-S``/``-T``). A bracket is parent
(LMT or MKT) + target (LMT) + stop (STP) in one OCA group; only the last carries
``transmit=True``, so nothing reaches the exchange half-built. Order ids come from the
gateway. Changes are modifies (same order id), never cancel-and-replace.
"""

from __future__ import annotations

from collections.abc import Callable

import structlog

from daemon.core.gateway import OrderGateway
from daemon.core.orders import ROLE_SUFFIX, Order, OrderType, Role, Side
from daemon.settings import ExecutionSettings
from daemon.trading.journal import Journal
from daemon.trading.order_book import OrderBook

log = structlog.get_logger("daemon.trading.execution")

CANCEL_AGAIN_S = 5.0  # wall seconds before a cancel still unanswered is sent again


class OrderSender:
    """Journals and sends orders, modifies and cancels (see the module docstring)."""

    def __init__(
        self,
        gateway: OrderGateway,
        book: OrderBook,
        journal: Journal,
        settings: ExecutionSettings,
        wall: Callable[[], float],
    ) -> None:
        self.gateway = gateway
        self.book = book
        self.journal = journal
        self.settings = settings
        self._wall = wall
        self.messages_sent = 0

    def _new_order(
        self,
        ref: str,
        role: Role,
        intent_ref: str | None,
        parent: Order | None,
        action: Side,
        quantity: int,
        order_type: OrderType,
        lmt_price: float | None,
        aux_price: float | None,
        tif: str,
        oca_group: str,
        now: float,
        con_id: int = 0,
    ) -> Order:
        return Order(
            ref=ref,
            role=role,
            intent_ref=intent_ref,
            parent_ref=parent.ref if parent else None,
            client_id=self.gateway.client_id,
            order_id=self.gateway.next_order_id(),
            action=action,
            quantity=quantity,
            order_type=order_type,
            lmt_price=lmt_price,
            aux_price=aux_price,
            tif=tif,
            oca_group=oca_group,
            created=now,
            con_id=con_id or self.gateway.con_id,
        )

    def send_bracket(
        self,
        intent_ref: str,
        action: Side,
        quantity: int,
        entry_type: OrderType,
        entry_price: float | None,
        stop_price: float,
        target_price: float,
        now: float,
    ) -> list[Order]:
        """Journal, then send, a bracket; returns [parent, target, stop]."""
        exit_action = action.opposite
        oca = f"{intent_ref}-oca"
        child_tif = self.settings.child_tif
        parent = self._new_order(
            f"{intent_ref}-{ROLE_SUFFIX[Role.ENTRY]}", Role.ENTRY, intent_ref, None, action,
            quantity, entry_type, entry_price, None, "DAY", "", now,
        )  # fmt: skip
        target = self._new_order(
            f"{intent_ref}-{ROLE_SUFFIX[Role.TARGET]}", Role.TARGET, intent_ref, parent,
            exit_action, quantity, OrderType.LMT, target_price, None, child_tif, oca, now,
        )  # fmt: skip
        stop = self._new_order(
            f"{intent_ref}-{ROLE_SUFFIX[Role.STOP]}", Role.STOP, intent_ref, parent,
            exit_action, quantity, OrderType.STP, None, stop_price, child_tif, oca, now,
        )  # fmt: skip
        bracket = [parent, target, stop]
        self._journal_and_send(bracket)
        return bracket

    def send_close(
        self,
        ref: str,
        role: Role,
        intent_ref: str | None,
        action: Side,
        quantity: int,
        lmt_price: float | None,
        now: float,
        *,
        journal: bool = True,
        con_id: int = 0,
    ) -> Order:
        """Journal, then send, one closing order (MKT when ``lmt_price`` is None) in
        ``con_id`` (0: the contract traded now). Without ``journal`` it is sent unjournaled:
        only a flatten whose journal failed does that."""
        order_type = OrderType.MKT if lmt_price is None else OrderType.LMT
        rec = self._new_order(
            ref, role, intent_ref, None, action, quantity, order_type, lmt_price, None, "DAY", "",
            now, con_id,
        )  # fmt: skip
        self._journal_and_send([rec], journal=journal)
        return rec

    def _journal_and_send(self, records: list[Order], *, journal: bool = True) -> None:
        if journal:
            self.journal.record_orders(records)
        for rec in records:
            self.book.index(rec)
        last = len(records) - 1
        for i, rec in enumerate(records):
            self.gateway.place(rec, transmit=i == last, parent_order_id=self.book.parent_id(rec))
            self.messages_sent += 1
        log.info(
            "orders_sent",
            refs=[r.ref for r in records],
            action=records[0].action.value,
            quantity=records[0].quantity,
            types=[r.order_type.value for r in records],
            prices=[r.price for r in records],
        )

    def modify(
        self, rec: Order, *, lmt_price: float | None = None, quantity: int | None = None
    ) -> None:
        """Change a working order in place (same order id): price or quantity."""
        if not rec.live:
            return  # done at the broker: a modify would only earn an error
        if not self._owned_by_this_connection(rec, "modify"):
            return
        if lmt_price is not None:
            rec.lmt_price = lmt_price
        if quantity is not None:
            rec.quantity = quantity
        self.journal.update_order(
            rec.ref, time=self._wall(), detail=f"modify lmt={rec.lmt_price} qty={rec.quantity}"
        )
        self.gateway.modify(rec, parent_order_id=self.book.parent_id(rec))
        self.messages_sent += 1
        log.info("order_modified", ref=rec.ref, lmt_price=rec.lmt_price, quantity=rec.quantity)

    def cancel(self, rec: Order, reason: str) -> bool:
        """Ask the broker to cancel `rec`; False when its cancel is still on the way.

        Until the broker answers, the order stays live here, and the checks that want it gone
        run every second: without this, a slow answer would bring a cancel a second, each
        after the first refused with 10147 (not found) and counted against the pacing.
        """
        now = self._wall()
        sent = self.book.cancel_sent_at(rec.ref)
        if sent is not None and now - sent < CANCEL_AGAIN_S:
            return False
        if not self._owned_by_this_connection(rec, "cancel"):
            return False
        self.book.note_cancel(rec.ref, now)
        self.gateway.cancel(rec)
        self.messages_sent += 1
        log.info("order_cancel_sent", ref=rec.ref, reason=reason, again=sent is not None)
        return True

    def _owned_by_this_connection(self, rec: Order, what: str) -> bool:
        """IB lets a client change only its own orders: under a fallback client id the same
        order id would name another order (a modify would even place a new one)."""
        connected = self.gateway.client_id
        if rec.client_id == connected:
            return True
        log.error(
            "order_of_another_client_id",
            ref=rec.ref,
            what=what,
            order_client_id=rec.client_id,
            connected_as=connected,
            action="not sent; it goes through once connected as that client id again, or "
            "cancel it in TWS",
            rate_limited=True,
            rate_key=f"other_client_{rec.ref}",
        )
        return False
