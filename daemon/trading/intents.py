"""Intents into orders: journaled, planned, sent; a reversal waits as an explicit `Flip`.

An intent gets the trading day's next ref and is committed before anything is sent. The planner
(`core.planner`) turns it, the position and the working orders into cancels, target moves, exit
orders and a bracket, or a `Flip` that waits until the exits and cancels it sent have ended;
the `Dispatcher` sends each action through the risk checks. A waiting flip is looked at again
once a second (`resume_flip`) until it goes on with its intent, expires, or is abandoned.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import structlog

from daemon.core.instrument import Instrument
from daemon.core.orders import OrderType
from daemon.core.planner import Book, Flip, Plan, Quote, Want, heading, plan_flip, plan_intent
from daemon.flow.extractor import FlowState, OrderFlow
from daemon.settings import ExecutionSettings
from daemon.trading.context import Context
from daemon.trading.dispatch import Dispatcher
from daemon.trading.journal import Journal
from daemon.trading.model import EntryType, Intent, Refusal
from daemon.trading.pnl import DayPnl
from daemon.trading.sync import BrokerSync

log = structlog.get_logger("daemon.trading.intents")

__all__ = ["Intents"]


class Intents:
    """A strategy's (or a flatten's) intent from the journal to the broker."""

    def __init__(
        self,
        settings: ExecutionSettings,
        journal: Journal,
        flow: OrderFlow,
        sync: BrokerSync,
        pnl: DayPnl,
        dispatcher: Dispatcher,
        context: Context,
        *,
        enabled: bool,
        instrument: Callable[[], Instrument],
        wall: Callable[[], float],
    ) -> None:
        self.settings = settings
        self.journal = journal
        self.flow = flow
        self.sync = sync
        self.pnl = pnl
        self.dispatcher = dispatcher
        self.context = context
        self.enabled = enabled
        self._instrument = instrument
        self._wall = wall
        self._flip: tuple[Flip, str] | None = None  # a flip waiting, and its intent's ref
        self.paused_by: Callable[[], str | None] = lambda: None  # why intents wait, if they do

    def handle(self, intent: Intent, now: float, state: FlowState | None) -> None:
        """Turn an intent into cancels, an exit or a bracket (`planner`); each order passes the
        risk checks on its way out."""
        if not self.enabled:
            return
        position = self.sync.position
        if position is None:
            log.info("intent_ignored", reason="position not trusted", target=intent.target)
            return
        paused = self.paused_by()
        if paused is not None:
            log.info("intent_ignored", reason=paused, target=intent.target, rate_limited=True)
            return
        book = self.dispatcher.book(position)
        if intent.target == heading(book) and self._flip is None:
            return
        ref = self._journal(intent, now)
        log.info("intent", ref=ref, target=intent.target, position=position, reason=intent.reason)
        self._flip = None
        self._carry_out(self._plan(intent, book, now), ref, now, state)

    def resume_flip(self, now: float) -> None:
        """A waiting flip: wait on, give up, or go on with its intent."""
        if self._flip is None:
            return
        flip, ref = self._flip
        timeout = self.settings.entry_timeout_s
        position = self.sync.position
        if position is None:
            if now - flip.since > timeout:
                self._flip = None
                self.journal.set_intent_status(ref, "done", "flip expired before flat")
            return
        broker = self.sync.broker_position()
        if broker is not None and broker != position and now - flip.since <= timeout:
            return  # a fill one side has not heard of yet: its entry would be refused now
        plan = plan_flip(
            flip,
            self.dispatcher.book(position),
            self._quote(),
            self._instrument(),
            exit_through_ticks=self.settings.exit_through_ticks,
            now=now,
            timeout_s=timeout,
        )
        if plan.flip is flip:
            return  # exits and cancels still on their way
        self._flip = None
        if plan.detail == "exit ended before flat":
            log.warning("flip_abandoned", ref=ref, position=position, target=flip.want.target)
        self._carry_out(plan, ref, now, None)

    def roll_into_front(
        self,
        target: int,
        stop_ticks: int,
        target_ticks: int,
        reason: str,
        now: float,
        journaled: Callable[[str], None],
    ) -> str | None:
        """Open the position a roll carries (``target``) in the front month: at market, with a
        bracket, through every risk check but the roll day's (it restores what was held).
        ``journaled`` hears the intent's ref before anything is sent. Returns the ref; None
        when the front month already heads there (nothing sent)."""
        position = self.sync.position
        if position is None:
            raise RuntimeError("roll_into_front needs a trusted position")
        book = self.dispatcher.book(position)
        if target == heading(book):
            return None
        intent = Intent(target, stop_ticks, target_ticks, EntryType.MKT, reason=reason)
        ref = self._journal(intent, now)
        journaled(ref)
        log.info("intent", ref=ref, target=target, position=position, reason=reason)
        self._carry_out(self._plan(intent, book, now), ref, now, None, roll=True)
        return ref

    def _plan(self, intent: Intent, book: Book, now: float) -> Plan:
        return plan_intent(
            _want(intent),
            book,
            self._quote(),
            self._instrument(),
            exit_through_ticks=self.settings.exit_through_ticks,
            now=now,
        )

    def journal_closing(self, reason: str) -> str:
        """Journal a closing intent (target flat, at market); its ref."""
        closing = Intent(0, 0, 0, EntryType.MKT, reason=reason)
        return self._journal(closing, self.flow.features.clock or self._wall(), "sent")

    def _quote(self) -> Quote:
        bid, ask = self.flow.features.quote
        return Quote(bid, ask)

    def _carry_out(
        self, plan: Plan, ref: str, now: float, state: FlowState | None, *, roll: bool = False
    ) -> None:
        """The plan's actions (see `dispatch`), then the intent's status. A roll's opening
        is exempt from the roll day's rule."""
        ctx = self.context.risk_context(now, state)
        if roll:
            ctx = dataclasses.replace(ctx, roll_day=False)
        if not self.dispatcher.send(plan.actions, ref, ctx):
            return
        if plan.outcome == "waiting":
            assert plan.flip is not None
            self._flip = (plan.flip, ref)
        elif plan.outcome == "refused":
            rule, _, detail = plan.detail.partition(": ")
            self.dispatcher.refused(ref, Refusal(rule, detail))
        else:
            self.journal.set_intent_status(ref, plan.outcome, plan.detail)

    def _journal(self, intent: Intent, now: float, status: str = "new") -> str:
        """Give the intent the day's next ref and commit it; returns the ref."""
        self.pnl.roll(now)
        day = self.pnl.day
        ref = self.journal.next_intent_ref(self.settings.order_ref_prefix, day)
        self.journal.record_intent(
            ref,
            time=self._wall(),
            day=day,
            target=intent.target,
            entry=intent.entry.value,
            offset_ticks=intent.offset_ticks,
            stop_ticks=intent.stop_ticks,
            target_ticks=intent.target_ticks,
            reason=intent.reason,
            status=status,
        )
        return ref


def _want(intent: Intent) -> Want:
    return Want(
        intent.target,
        OrderType(intent.entry.value),
        intent.offset_ticks,
        intent.stop_ticks,
        intent.target_ticks,
    )
