"""Orders at the broker: brackets out, the broker's word in, the journal written first.

The executor speaks to the broker only through an `OrderGateway` (`daemon.core.gateway`): the
live one is IB's (`daemon.broker.ib.orders`), a simulated one can stand in. Its parts:
`order_book` (our orders in memory, found again in the journal), `order_sender` (journal, then
place / modify / cancel) and `order_receiver` (the gateway's events, journaled; anything that
does not add up is an anomaly). This class holds them together and is what the trader's parts
call.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable

import structlog

from daemon.core.gateway import OrderGateway
from daemon.core.orders import Order, OrderType, Role, Side, Status
from daemon.settings import ExecutionSettings
from daemon.trading.journal import Journal, JournalError
from daemon.trading.order_book import FORGET_AFTER_S, OrderBook
from daemon.trading.order_receiver import FillReport, OrderReceiver
from daemon.trading.order_sender import CANCEL_AGAIN_S, OrderSender
from daemon.trading.ownership import Ownership

__all__ = ["CANCEL_AGAIN_S", "FORGET_AFTER_S", "Executor", "FillReport"]

log = structlog.get_logger("daemon.trading.execution")


class Executor:
    """Sends orders, follows what the broker says about them, and journals both."""

    def __init__(
        self,
        gateway: OrderGateway,
        journal: Journal,
        settings: ExecutionSettings,
        *,
        on_fill: Callable[[FillReport], None],
        on_order: Callable[[Order, Status], None],
        on_reject: Callable[[Order | None, int, str], None],
        on_anomaly: Callable[[str, str, str], None],
        on_journal_error: Callable[[JournalError], None],
        ownership: Ownership,
        market_price: Callable[[], float | None],
        day_of: Callable[[float], str],
        wall: Callable[[], float] = time.time,
    ) -> None:
        self.gateway = gateway
        self.journal = journal
        self.settings = settings
        self.prefix = settings.order_ref_prefix + "-"
        self.ownership = ownership
        self._wall = wall
        self.book = OrderBook(journal, ownership)
        self.sender = OrderSender(gateway, self.book, journal, settings, wall)
        self.receiver = OrderReceiver(
            gateway,
            self.book,
            journal,
            settings,
            on_fill=on_fill,
            on_order=on_order,
            on_reject=on_reject,
            on_anomaly=on_anomaly,
            on_journal_error=on_journal_error,
            market_price=market_price,
            day_of=day_of,
            wall=wall,
        )
        self.book.load()
        gateway.listen(self.receiver.on_event)

    # --- state ---

    @property
    def orders(self) -> dict[str, Order]:
        """Our orders in memory, by ref."""
        return self.book.orders

    @property
    def seen_at_broker(self) -> set[str]:
        """Refs the broker reported since the last connect."""
        return self.book.seen_at_broker

    @property
    def messages_sent(self) -> int:
        return self.sender.messages_sent

    @property
    def new_fills(self) -> int:
        """Executions journaled for the first time."""
        return self.receiver.new_fills

    def live(self) -> list[Order]:
        """Orders not done, oldest first, in every contract."""
        return self.book.live()

    @property
    def con_id(self) -> int:
        """The contract traded now (0: none yet)."""
        return self.gateway.con_id

    def trades_now(self, rec: Order) -> bool:
        """``rec`` is in the contract traded now (or in one not known: journaled before
        orders had their contract, so the front one of its day)."""
        return not rec.con_id or rec.con_id == self.gateway.con_id

    def live_here(self) -> list[Order]:
        """Live orders in the contract traded now: what its position and its planner see.
        Those of a contract rolled out of keep working at the broker, untouched."""
        return [r for r in self.book.live() if self.trades_now(r)]

    def recall(self, ref: str) -> Order | None:
        """An order of ours the journal has but memory does not (done before this process)."""
        return self.book.recall(ref)

    def children(self, parent_ref: str) -> list[Order]:
        return self.book.children(parent_ref)

    def find(self, client_id: int, order_id: int, perm_id: int, ref: str) -> Order | None:
        """An order of ours by its ids or ref, in memory or else in the journal."""
        return self.book.find(client_id, order_id, perm_id, ref)

    def forget_finished(self, keep_s: float = FORGET_AFTER_S) -> int:
        """Drop brackets finished for `keep_s` from memory (see `OrderBook.forget_finished`)."""
        return self.book.forget_finished(self._wall(), keep_s)

    def forget_session(self) -> None:
        """A new socket: what the broker reported must be heard again."""
        self.book.forget_session()

    # --- sending ---

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
        return self.sender.send_bracket(
            intent_ref, action, quantity, entry_type, entry_price, stop_price, target_price, now
        )

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
        ``con_id`` (0: the contract traded now)."""
        return self.sender.send_close(
            ref, role, intent_ref, action, quantity, lmt_price, now, journal=journal, con_id=con_id
        )

    def modify(
        self, rec: Order, *, lmt_price: float | None = None, quantity: int | None = None
    ) -> None:
        """Change a working order in place (same order id): price or quantity."""
        self.sender.modify(rec, lmt_price=lmt_price, quantity=quantity)

    def cancel(self, rec: Order, reason: str) -> bool:
        """Ask the broker to cancel `rec`; False when its cancel is still on the way."""
        return self.sender.cancel(rec, reason)

    # --- reconcile support ---

    def abandon(self, records: Iterable[Order], why: str) -> None:
        """Journaled but never acknowledged, and unknown at the broker: they were never sent."""
        self._end(records, Status.ABANDONED, why)

    def lose(self, records: Iterable[Order], why: str) -> None:
        """Acknowledged once, unknown to the broker now: not working, whatever we last heard."""
        self._end(records, Status.LOST, why)

    def _end(self, records: Iterable[Order], status: Status, why: str) -> None:
        for rec in records:
            if not rec.may_become(status):
                log.error("order_end_refused", ref=rec.ref, status=rec.status, wanted=status)
                continue
            rec.move_to(status)
            self.book.settle(rec)
            self.journal.update_order(rec.ref, status=status, time=self._wall(), detail=why)
            log.warning("order_ended", ref=rec.ref, status=status.value, reason=why)
