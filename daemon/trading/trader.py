"""The trader: the trading parts wired together, and what passes between them.

Market events go through the `feed` (the flow, then the strategy) and come out as intents;
`intents` journals each, has the planner turn it into actions, and the `dispatcher` sends them
through the risk checks to the executor. The broker's answers come back here: fills rebuild the
PnL, statuses close intents, rejects count against the risk limits, and each wakes whoever
waits for the broker. Beside that flow, each part with what it needs passed in: `sync`
(reconcile on connect, the trusted position), `pnl` (the day's PnL), `operator` (commands, the
loss limit, the shutdown policy), `upkeep` and `journal_check` (the once-a-second care),
`report` (the status document). The supervisor calls `feed`, `tick`, `status`, `command` and
`shutdown`.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from daemon.broker.connection import Connection
from daemon.broker.marketdata import MarketData
from daemon.core.orders import Order, Role, Status
from daemon.flow.extractor import FlowState, OrderFlow
from daemon.flow.prints import Health
from daemon.flow.sessions import SessionSchedule
from daemon.settings import Settings
from daemon.trading.alarms import Alarms
from daemon.trading.closing import BrokerPositions, Closer
from daemon.trading.context import Context
from daemon.trading.dispatch import Dispatcher
from daemon.trading.execution import Executor, FillReport
from daemon.trading.feed import StrategyFeed
from daemon.trading.instance import PrefixClaim
from daemon.trading.intents import Intents
from daemon.trading.journal import Journal, JournalError
from daemon.trading.model import Intent, StrategyView, TradingState
from daemon.trading.operator import Operator
from daemon.trading.ownership import Ownership
from daemon.trading.pnl import DayPnl
from daemon.trading.risk import RiskManager
from daemon.trading.roll import Roller
from daemon.trading.status import TradingStatus
from daemon.trading.strategy import Strategy
from daemon.trading.sync import BrokerSync
from daemon.trading.tasks import Background, Changes
from daemon.trading.upkeep import JournalCheck, OrderUpkeep, PositionWatch, unprotected

_ACCEPTED = frozenset({Status.PRE_SUBMITTED, Status.SUBMITTED, Status.FILLED})


class Trader:
    """The trading parts, built from the settings and wired together (see the module docstring)."""

    def __init__(
        self,
        settings: Settings,
        conn: Connection,
        flow: OrderFlow,
        market: MarketData,
        schedule: SessionSchedule,
        journal: Journal,
        strategy: Strategy,
        *,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
    ) -> None:
        self.enabled = settings.trading.enabled
        self.conn = conn
        self.flow = flow
        self.journal = journal
        self.strategy = strategy
        self._wall = wall
        execution = settings.execution
        self.risk = RiskManager(settings.risk, clock=clock, on_state=self._on_state)
        self.background = Background()
        self.changes = Changes()
        self.alarms = Alarms(  # an alarm cancels entries (through the operator, built below)
            self.risk, self._event, lambda: self.operator.cancel_entries_soon("alarm"), wall
        )
        gateway = conn.client.orders
        self.executor = Executor(
            gateway,
            journal,
            execution,
            on_fill=self._on_fill,
            on_order=self._on_order,
            on_reject=self._on_reject,
            on_anomaly=self.alarms.anomaly,
            on_journal_error=self.alarms.journal_failed,
            ownership=Ownership(
                execution.order_ref_prefix,
                (settings.ib.client_id, *settings.ib.fallback_client_ids),
                lambda ref: journal.intent(ref) is not None,
            ),
            market_price=lambda: flow.features.last_price,
            day_of=schedule.trading_day,
            wall=wall,
        )
        self.positions = BrokerPositions(conn.client, lambda: conn.account or "")
        # The closer calls back into parts that need it first: its lambdas find them when run.
        self.closer = Closer(
            self.executor,
            self.risk,
            self.positions,
            execution.confirm_timeout_s,
            lambda: self.sync.con_id(),
            lambda: self.position,
            lambda: self.dispatcher.exiting() - self.closer.pending_exits,
            lambda: self.context.risk_context(flow.features.clock or 0.0, None),
            lambda reason: self.intents.journal_closing(reason),
            self.changes.until,
            held_elsewhere=lambda: self.sync.held_elsewhere(),
        )
        self.dispatcher = Dispatcher(
            conn, self.executor, self.closer, self.risk, journal, self.background, self._event
        )
        self.pnl = DayPnl(
            journal,
            schedule,
            con_id=lambda: market.con_id,
            instrument=lambda: market.instrument,
            mark=lambda: flow.features.last_price,
            on_new_day=self.risk.new_day,
        )
        claim = PrefixClaim(execution.order_ref_prefix, settings.ib.host)
        self.sync = BrokerSync(
            conn,
            self.executor,
            journal,
            self.positions,
            claim,
            self.pnl,
            self.risk,
            self.alarms,
            self.changes,
            symbol=settings.instrument.symbol,
            wait_s=execution.reconcile_timeout_s,
            contract=lambda: market.front,
            route=gateway.route,
            record_event=self._event,
            wall=wall,
        )
        self.context = Context(
            settings,
            conn,
            flow,
            market,
            schedule,
            self.risk,
            self.executor,
            self.dispatcher,
            self.sync,
        )
        self.intents = Intents(
            execution,
            journal,
            flow,
            self.sync,
            self.pnl,
            self.dispatcher,
            self.context,
            enabled=self.enabled,
            instrument=lambda: market.instrument,
            wall=wall,
        )
        self.operator = Operator(
            settings.trading,
            conn,
            self.risk,
            self.executor,
            self.closer,
            self.alarms,
            self.sync,
            claim,
            self.background,
            self.changes,
            confirm_s=execution.confirm_timeout_s,
            cancel=self.dispatcher.cancel,
            status=self.status,
            record_event=self._event,
            wall=wall,
        )
        self.upkeep = OrderUpkeep(
            self.executor,
            self.risk,
            self.positions,
            self.sync,
            entry_timeout_s=execution.entry_timeout_s,
            closing=lambda: bool(self.dispatcher.exiting()) or self.operator.flattening,
            cancel=self.dispatcher.cancel,
            record_event=self._event,
            wall=wall,
        )
        self.position_watch = PositionWatch(self.sync, self.background.spawn, self._event, wall)
        self.roller = Roller(
            settings.instrument.on_roll,
            journal,
            self.sync,
            self.executor,
            self.closer,
            self.intents,
            self.alarms,
            spawn=self.background.spawn,
            record_event=self._event,
            data_ok=lambda: flow.health is Health.OK,
            within_s=4 * execution.confirm_timeout_s,
            wall=wall,
        )
        self.intents.paused_by = lambda: "a roll is being carried out" if self.roller.busy else None
        self.journal_check = JournalCheck(
            journal, self.alarms, settings.trading.journal_check_s, wall
        )
        self.report = TradingStatus(
            self.enabled,
            self.risk,
            self.pnl,
            self.sync,
            self.executor,
            self.positions,
            self.alarms,
            self.operator,
            self.roller,
        )
        self.feed = StrategyFeed(
            flow, strategy, self.alarms, self.risk, view=self.view, act=self.intents.handle
        )
        conn.on_session(self.sync.on_session)
        conn.on_disconnect(self.sync.on_disconnect)

    # --- what the strategy and the tests ask ---

    @property
    def position(self) -> int | None:
        """Our position in the front contract; None when it cannot be trusted."""
        return self.sync.position

    def working_entries(self) -> int:
        return self.dispatcher.working_entries()

    def unprotected(self) -> int:
        """Contracts of the position no live stop at the broker would close (0 = all covered)."""
        return unprotected(self.position, self.executor.live_here())

    def view(self, t: float, state: FlowState | None) -> StrategyView:
        return self.context.view(t, state)

    def handle_intent(self, intent: Intent, now: float, state: FlowState | None) -> None:
        """An intent as if the strategy had returned it (see `intents`)."""
        self.intents.handle(intent, now, state)

    # --- the broker's answers ---

    def _on_fill(self, fill: FillReport) -> None:
        self.risk.record_fill()
        self.pnl.rebuild()
        self.changes.set()

    def _on_order(self, rec: Order, old: Status) -> None:
        if rec.status in _ACCEPTED and old in (Status.JOURNALED, Status.PENDING_SUBMIT):
            self.risk.record_accepted()
        if rec.role is Role.ENTRY and not rec.live and rec.intent_ref:
            self.journal.set_intent_status(rec.intent_ref, "done", f"entry {rec.status}")
        self.changes.set()

    def _on_reject(self, rec: Order | None, code: int, message: str) -> None:
        if rec is not None and rec.role in (Role.STOP, Role.TARGET):
            return  # a child follows its parent's fate; count the bracket once
        if rec is not None and rec.intent_ref:
            self.journal.set_intent_status(rec.intent_ref, "rejected", f"{code}: {message}")
        if self.risk.record_reject(code, message):
            self.operator.cancel_entries_soon("rejects")

    def _on_state(self, old: TradingState, new: TradingState, reason: str) -> None:
        kind = {"HALTED": "halt", "REDUCING": "reduce", "ACTIVE": "resume"}[new.value]
        self._event(kind, previous=old.value, reason=reason)

    def _event(self, kind: str, **detail: Any) -> None:
        """A journal event at wall time, and at the time of the last trade seen (`market_time`:
        where a report places it, also in a replay that runs faster than the wall clock). An
        event the journal cannot take never stops what it records: it raises the alarm."""
        market_time = self.flow.last_trade_time
        try:
            self.journal.record_event(kind, self._wall(), market_time=market_time, **detail)
        except JournalError as exc:
            self.alarms.journal_failed(exc)

    # --- periodic work (the supervisor's monitor calls it once a second) ---

    def tick(self, now: float) -> None:
        """Entry timeouts, strays, a pending flip, the daily loss limit, the day's PnL in the
        journal, the journal's disk check: each step on its own, the orders' safety first, so
        that a journal that fails (and halts trading) never stops the others."""
        self.pnl.roll(now)
        self.executor.forget_finished()
        if not self.enabled:
            return
        steps: list[Callable[[], None]] = [
            lambda: self._orders_tick(now),
            self._pnl_tick,
            self.journal_check.run,
        ]
        for step in steps:
            try:
                step()
            except JournalError as exc:
                self.alarms.journal_failed(exc)

    def _orders_tick(self, now: float) -> None:
        if not self.conn.ready:
            return
        self.upkeep.run(now)
        self.position_watch.run()
        self.roller.tick(now)
        self.intents.resume_flip(now)

    def _pnl_tick(self) -> None:
        net = self.pnl.net() if self.position is not None else None
        self.operator.watch_loss(net)
        self.pnl.record(net, self._wall())

    # --- the supervisor's side ---

    def status(self) -> dict[str, Any]:
        """The trading section of status.json (see `status`)."""
        return self.report.document()

    async def command(self, cmd: str, args: dict[str, Any]) -> dict[str, Any]:
        """The operator's halt / resume / flatten / status (see `operator`)."""
        return await self.operator.command(cmd, args)

    async def shutdown(self, within: float = 12.0) -> bool:
        """SIGTERM's policy (see `operator`); False when not carried out and confirmed."""
        return await self.operator.shutdown(within)
