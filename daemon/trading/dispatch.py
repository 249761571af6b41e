"""The orders as the planner sees them, and its actions out to the broker via the risk checks.

`book` is the position with every order the executor knows, the targets already moved through
the market and the exit orders still being sized. Each action is checked and counted: cancels
(an order still only in the journal is left alone while disconnected), target moves (a modify
that takes a bracket's target through the market, remembered in `exits_sent` as an exit on its
way), exit orders (sized from the broker's position by the `Closer`, in the background), and
the entry bracket. A refusal is journaled on its intent and as an event.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from daemon.broker.connection import Connection
from daemon.core.orders import Order, Status
from daemon.core.planner import Action, Book, CancelOrder, MoveTarget, PlaceBracket, PlaceExit
from daemon.trading.closing import Closer
from daemon.trading.execution import Executor
from daemon.trading.journal import Journal
from daemon.trading.model import Refusal
from daemon.trading.risk import OrderCheck, OrderKind, RiskContext, RiskManager
from daemon.trading.tasks import Background

__all__ = ["Dispatcher"]


class Dispatcher:
    """The planner's book of orders, and what it decided sent as far as the risk checks allow."""

    def __init__(
        self,
        conn: Connection,
        executor: Executor,
        closer: Closer,
        risk: RiskManager,
        journal: Journal,
        background: Background,
        record_event: Callable[..., None],
    ) -> None:
        self.conn = conn
        self.executor = executor
        self.closer = closer
        self.risk = risk
        self.journal = journal
        self.background = background
        self._event = record_event
        self.exits_sent: set[str] = set()  # targets moved through the market

    def book(self, position: int) -> Book:
        """What the planner sees: ``position`` and every order the executor knows in the
        contract traded now."""
        return Book(
            position,
            [r for r in self.executor.orders.values() if self.executor.trades_now(r)],
            frozenset(self.exits_sent),
            self.closer.pending_exits,
        )

    def working_entries(self) -> int:
        """Signed contracts in entries sent and not filled yet (on every trade a strategy
        sees: the live orders only, not the finished ones kept in memory)."""
        return Book(0, self.executor.live_here()).working_entries()

    def exiting(self) -> int:
        """Signed contracts that exits already sent will close (moved targets, exit orders, and
        exit orders still being sized from the broker's position)."""
        live = self.executor.live_here()
        return Book(0, live, frozenset(self.exits_sent), self.closer.pending_exits).exiting()

    def send(self, actions: Sequence[Action], ref: str, ctx: RiskContext) -> bool:
        """The actions of intent ``ref`` in order; False when its bracket was refused (the
        intent is then marked refused, and nothing after it is sent)."""
        for action in actions:
            if isinstance(action, CancelOrder):
                rec = self.executor.orders.get(action.ref)
                if rec is not None:
                    self.cancel(rec, f"intent {ref} {action.reason}")
            elif isinstance(action, MoveTarget):
                self._move_target(action, ctx)
            elif isinstance(action, PlaceExit):
                release = self.closer.reserve_exit(action.action, action.quantity)
                exit_task = self.closer.send_exit(ref, action.action, action.quantity, action.price)
                self.background.spawn(exit_task).add_done_callback(release)
            elif not self._send_bracket(action, ref, ctx):
                return False
        return True

    def cancel(self, rec: Order, reason: str) -> None:
        if rec.status is Status.JOURNALED and rec.perm_id is None and not self.conn.ready:
            return
        if self.executor.cancel(rec, reason):
            self.risk.record_sent(1)

    def refused(self, ref: str, refusal: Refusal, *, counted: bool = False) -> None:
        if not counted:  # refused by the planner, not by risk.check: count it here
            self.risk.refusals[refusal.rule] += 1
        self.journal.set_intent_status(ref, "refused", f"{refusal.rule}: {refusal.detail}")
        self._event("refusal", ref=ref, rule=refusal.rule, detail=refusal.detail)

    def _move_target(self, move: MoveTarget, ctx: RiskContext) -> None:
        target = self.executor.orders.get(move.ref)
        if target is None:
            return
        check = OrderCheck(OrderKind.MODIFY, move.action, move.quantity, move.price)
        if self.risk.check(check, ctx) is not None:
            return
        self.executor.modify(target, lmt_price=move.price)
        self.exits_sent.add(target.ref)
        self.risk.record_sent(1)

    def _send_bracket(self, bracket: PlaceBracket, ref: str, ctx: RiskContext) -> bool:
        """The entry bracket, if risk allows; False (the intent refused) when it does not."""
        check = OrderCheck(
            OrderKind.ENTRY,
            bracket.action,
            bracket.quantity,
            bracket.entry_price,
            messages=3,
            new_orders=3,
        )
        refusal = self.risk.check(check, ctx)
        if refusal is not None:
            self.refused(ref, refusal, counted=True)
            return False
        self.executor.send_bracket(
            ref,
            bracket.action,
            bracket.quantity,
            bracket.entry_type,
            bracket.entry_price,
            bracket.stop_price,
            bracket.target_price,
            ctx.now,
        )
        self.risk.record_sent(3)
        return True
