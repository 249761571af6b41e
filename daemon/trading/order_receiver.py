"""Receiving: what the broker says about our orders, taken in and journaled.

The gateway's events (open and completed orders, statuses, executions, commissions, order
errors) arrive one by one, live and in reply to requests alike. Executions are journaled by
execId (`FillReceiver`: a redelivered fill is recognised and counted once, a correction replaces
the version it corrects); an order's status is whatever the broker last said. A fill that
cannot be true (`fills.fill_problem`), any message about an order the journal does not know
(`ownership`) and any message about ours the gateway could not read is never counted: it is
reported as an anomaly, and so is an event this module fails to take in (it never raises into
the gateway).
"""

from __future__ import annotations

from collections.abc import Callable

import structlog

from daemon.broker import tws_errors
from daemon.core.gateway import (
    CommissionReport,
    ExecutionReport,
    OrderError,
    OrderEvent,
    OrderGateway,
    OrderReport,
    Problems,
    StatusReport,
    Unreadable,
)
from daemon.core.orders import Order, Role, Status
from daemon.settings import ExecutionSettings
from daemon.trading.fill_receiver import FillReceiver, FillReport
from daemon.trading.journal import Journal, JournalError
from daemon.trading.order_book import OrderBook
from daemon.trading.ownership import Verdict, intent_of

__all__ = ["FillReport", "OrderReceiver"]

log = structlog.get_logger("daemon.trading.execution")


class OrderReceiver:
    """Takes in the gateway's events (see the module docstring)."""

    def __init__(
        self,
        gateway: OrderGateway,
        book: OrderBook,
        journal: Journal,
        settings: ExecutionSettings,
        *,
        on_fill: Callable[[FillReport], None],
        on_order: Callable[[Order, Status], None],
        on_reject: Callable[[Order | None, int, str], None],
        on_anomaly: Callable[[str, str, str], None],
        on_journal_error: Callable[[JournalError], None],
        market_price: Callable[[], float | None],
        day_of: Callable[[float], str],
        wall: Callable[[], float],
    ) -> None:
        self.gateway = gateway
        self.book = book
        self.journal = journal
        self.settings = settings
        self._on_order = on_order
        self._on_reject = on_reject
        self._on_anomaly = on_anomaly
        self._on_journal_error = on_journal_error
        self._wall = wall
        self._fills = FillReceiver(
            journal,
            settings,
            on_fill=on_fill,
            on_anomaly=on_anomaly,
            set_status=self.set_status,
            market_price=market_price,
            day_of=day_of,
            wall=wall,
        )
        self._handlers: dict[type, Callable[..., None]] = {
            OrderReport: self._open_order,
            StatusReport: self._order_status,
            ExecutionReport: self._execution,
            CommissionReport: self._commission,
            OrderError: self._order_error,
            Unreadable: self._unreadable,
        }

    @property
    def new_fills(self) -> int:
        """Executions journaled for the first time."""
        return self._fills.new_fills

    def on_event(self, event: OrderEvent) -> None:
        """A message we could not take in is a doubt about an order or a fill: it halts
        trading (an anomaly) instead of breaking the gateway or passing in silence."""
        handler = self._handlers[type(event)]
        try:
            handler(event)
        except JournalError as exc:  # the message was not journaled: say so, halt
            self._on_journal_error(exc)
        except Exception as exc:
            log.error("broker_message_failed", handler=handler.__name__, error=repr(exc))
            detail = f"a broker message could not be taken in ({handler.__name__}): {exc!r}"
            self._on_anomaly("message_failed", f"{handler.__name__}:{exc!r}"[:200], detail)

    def _unreadable(self, ev: Unreadable) -> None:
        log.error("broker_message_failed", handler=ev.what, error=ev.detail)
        detail = f"a broker message could not be read ({ev.what}): {ev.detail}"
        self._on_anomaly("message_failed", f"{ev.what}:{ev.detail}"[:200], detail)

    def _unread(self, rec: Order, what: str, problems: Problems) -> None:
        """Fields of a message about ``rec`` the gateway could not read: an anomaly."""
        for field, word in problems:
            if field == "status":
                log.warning("order_status_unknown", ref=rec.ref, status=word, rate_limited=True)
        words = _words(problems)
        detail = f"{what} about order {rec.ref} could not be read: {words}"
        self._on_anomaly("message_failed", f"{what}:{rec.ref}:{words}"[:200], detail)

    def _stranger(
        self, what: str, client_id: int, order_id: int, perm_id: int, ref: str
    ) -> Verdict:
        """The verdict on a message about an order neither memory nor the journal knows; an
        anomaly is reported (once per order: the caller's callback dedupes by key)."""
        ownership = self.book.ownership
        verdict = ownership.verdict(client_id, ref)
        if verdict is Verdict.ANOMALY:
            detail = ownership.describe(what, client_id, order_id, perm_id, ref)
            key = f"perm:{perm_id}" if perm_id else f"order:{client_id}:{order_id}:{ref}"
            self._on_anomaly("unknown_order", key, detail)
        return verdict

    # --- orders and statuses ---

    def _open_order(self, ev: OrderReport) -> None:
        book = self.book
        rec = book.find(ev.client_id, ev.order_id, ev.perm_id, ev.ref)
        if rec is None:
            what = f"an open or completed order ({ev.status or 'no status'})"
            verdict = self._stranger(what, ev.client_id, ev.order_id, ev.perm_id, ev.ref)
            if verdict is not Verdict.PROVABLY_OURS:
                return
            rec = self._adopt(ev)
            if rec is None:
                return
        book.seen_at_broker.add(rec.ref)
        if ev.problems:
            self._unread(rec, "an open or completed order", ev.problems)
        if ev.perm_id and rec.perm_id != ev.perm_id:
            book.bind_perm(rec, ev.perm_id)
            self.journal.update_order(rec.ref, perm_id=ev.perm_id, time=self._wall())
        ids = (ev.client_id, ev.order_id)
        ours = ev.client_id in book.ownership.client_ids  # never rebound to another client
        if ours and ev.order_id and (rec.client_id, rec.order_id) != ids:
            book.bind_id(rec, ev.client_id, ev.order_id)
            self.journal.update_order(rec.ref, order_id=ev.order_id, time=self._wall())
        if ev.quantity and ev.quantity == int(ev.quantity):
            rec.quantity = int(ev.quantity)
        if ev.status is not None:
            # A completed order (reqCompletedOrders at reconnect) carries its filled quantity:
            # fills made while we were away must count for the order, not only the position.
            done = ev.filled or 0
            self.set_status(rec, ev.status, max(rec.filled, done), rec.avg_fill_price)

    def _adopt(self, ev: OrderReport) -> Order | None:
        """An order of ours from an earlier life that the journal lost (its intent is there)."""
        parent = self.book.by_id(ev.client_id, ev.parent_id) if ev.parent_id else None
        rec = _adopted(ev, None if parent is None else parent.ref)
        if rec is None:
            detail = (
                f"an order of ours to adopt ({ev.ref}) could not be read: {_words(ev.problems)}"
            )
            self._on_anomaly("message_failed", f"adopt:{ev.ref}"[:200], detail)
            return None
        status = ev.status or ""
        self.journal.record_orders([rec])
        self.journal.record_event(
            "adopt", self._wall(), ref=rec.ref, perm_id=ev.perm_id, status=status
        )
        self.book.index(rec)
        log.warning("order_adopted", ref=rec.ref, perm_id=ev.perm_id, status=status)
        return rec

    def _order_status(self, ev: StatusReport) -> None:
        rec = self.book.find(ev.client_id, ev.order_id, ev.perm_id, "")
        if rec is None:
            what = f"a status ({ev.status or ''})"
            self._stranger(what, ev.client_id, ev.order_id, ev.perm_id, "")
            return
        self.book.seen_at_broker.add(rec.ref)
        if ev.problems:
            self._unread(rec, "a status", ev.problems)
        if ev.perm_id and rec.perm_id != ev.perm_id:
            self.book.bind_perm(rec, ev.perm_id)
            self.journal.update_order(rec.ref, perm_id=ev.perm_id, time=self._wall())
        if ev.status is not None:
            avg = ev.avg_fill_price if ev.filled else None
            self.set_status(rec, ev.status, int(ev.filled), avg)

    def set_status(self, rec: Order, status: Status, filled: int, avg: float | None) -> None:
        if status is rec.status and filled == rec.filled:
            return
        if not rec.may_become(status):  # a late message about an order already done, say
            log.info("order_status_ignored", ref=rec.ref, status=status, current=rec.status)
            return
        old = rec.move_to(status)
        if not rec.live:
            self.book.settle(rec)
        rec.filled = max(rec.filled, min(filled, rec.quantity))
        if avg is not None:
            rec.avg_fill_price = avg
        self.journal.update_order(
            rec.ref,
            status=status,
            filled=rec.filled,
            remaining=rec.remaining,
            avg_fill_price=rec.avg_fill_price,
            time=self._wall(),
        )
        if old is not status:
            log.info(
                "order_status",
                ref=rec.ref,
                status=status.value,
                previous=old.value,
                filled=rec.filled,
            )
        self._on_order(rec, old)

    # --- executions ---

    def _execution(self, ex: ExecutionReport) -> None:
        rec = self.book.find(ex.client_id, ex.order_id, ex.perm_id, ex.ref)
        if rec is None:
            side = ex.side.value if ex.side else "?"
            what = f"an execution {ex.exec_id} ({side} {ex.shares} @ {ex.price})"
            self._stranger(what, ex.client_id, ex.order_id, ex.perm_id, ex.ref)
            return  # an order nobody journaled: its fills are never ours (see ownership)
        if ex.side is None:
            self._unread(rec, f"execution {ex.exec_id}", ex.problems)
            return
        self._fills.take(rec, ex)

    def _commission(self, ev: CommissionReport) -> None:
        if ev.commission is not None:
            self.journal.set_commission(ev.exec_id, ev.commission, ev.realized_pnl)

    # --- errors about our order ids ---

    def _order_error(self, ev: OrderError) -> None:
        code, message = ev.code, ev.message
        if ev.order_id <= 0 or (
            code not in tws_errors.ORDER_REJECTS and code != tws_errors.ORDER_CANCELLED
        ):
            return
        rec = self.book.by_id(self.gateway.client_id, ev.order_id)
        if rec is None:
            return
        if code == tws_errors.ORDER_CANCELLED:
            # Asked for by us (the order or its parent), or not: an OCA sibling filled, or IB's
            # own doing (a DAY order at the close, margin). The order's status says the rest.
            asked = self.book.cancel_asked
            was_asked = rec.ref in asked or rec.parent_ref in asked
            log.info("order_cancelled", ref=rec.ref, asked=was_asked, message=message)
            return
        acknowledged = rec.perm_id is not None
        if (acknowledged and code in tws_errors.ORDER_TOO_LATE) or (
            code in tws_errors.ORDER_DONE_AT_BROKER
        ):
            # Acknowledged before (or the broker names its state), so this answered a modify or
            # cancel of it, not the order. What it became is for the broker's own word to say:
            # the position check (`upkeep`) asks again when our position and the broker's differ.
            log.info(
                "order_request_too_late",
                ref=rec.ref,
                code=code,
                message=message,
                acknowledged=acknowledged,
            )
            self.journal.record_event(
                "too_late", self._wall(), ref=rec.ref, code=code, message=message
            )
            return
        log.warning("order_rejected", ref=rec.ref, code=code, message=message)
        self.journal.record_event("reject", self._wall(), ref=rec.ref, code=code, message=message)
        if rec.perm_id is None and rec.status in (Status.JOURNALED, Status.PENDING_SUBMIT):
            # Refused before the broker ever acknowledged it: the error is its final word. (An
            # acknowledged order that gets an error, e.g. a refused modify, keeps its status.)
            self.set_status(rec, Status.INACTIVE, rec.filled, rec.avg_fill_price)
        self._on_reject(rec, code, message)


def _words(problems: Problems) -> str:
    return ", ".join(f"{field} {word!r}" for field, word in problems)


def _adopted(ev: OrderReport, parent_ref: str | None) -> Order | None:
    """The order an open or completed order of ours describes; None when it cannot be read."""
    if ev.action is None or ev.order_type is None:
        return None
    parsed = intent_of(ev.ref)
    intent_ref, role = (None, Role.ADOPTED) if parsed is None else parsed
    return Order(
        ref=ev.ref,
        role=role,
        intent_ref=intent_ref,
        parent_ref=parent_ref,
        client_id=ev.client_id,
        order_id=ev.order_id,
        action=ev.action,
        quantity=int(ev.quantity),
        order_type=ev.order_type,
        lmt_price=ev.lmt_price,
        aux_price=ev.aux_price,
        tif=ev.tif,
        oca_group=ev.oca_group,
        perm_id=ev.perm_id or None,
    )
