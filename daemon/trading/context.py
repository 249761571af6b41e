"""What the strategy and the risk checks are shown at a moment.

The strategy sees a `StrategyView` (data health, the connection, the trading state, our
position when trusted, entries working); each order the trader sends is checked against a
`RiskContext` (the quote, the session's end, whether it is a roll day, the orders working).
"""

from __future__ import annotations

from datetime import timedelta

from daemon.broker import contracts
from daemon.broker.connection import Connection
from daemon.broker.marketdata import MarketData
from daemon.core.orders import Status
from daemon.flow.extractor import FlowState, OrderFlow
from daemon.flow.sessions import SessionSchedule
from daemon.settings import Settings
from daemon.trading.dispatch import Dispatcher
from daemon.trading.execution import Executor
from daemon.trading.model import StrategyView
from daemon.trading.risk import RiskContext, RiskManager
from daemon.trading.sync import BrokerSync

__all__ = ["Context"]

_DAY_S = timedelta(days=1).total_seconds()


class Context:
    """Builds the strategy's view and the risk checks' context."""

    def __init__(
        self,
        settings: Settings,
        conn: Connection,
        flow: OrderFlow,
        market: MarketData,
        schedule: SessionSchedule,
        risk: RiskManager,
        executor: Executor,
        dispatcher: Dispatcher,
        sync: BrokerSync,
    ) -> None:
        self.settings = settings
        self.conn = conn
        self.flow = flow
        self.market = market
        self.schedule = schedule
        self.risk = risk
        self.executor = executor
        self.dispatcher = dispatcher
        self.sync = sync
        self._roll_key: tuple[int, ...] | None = None
        self._roll_starts: list[float] = []

    def view(self, t: float, state: FlowState | None) -> StrategyView:
        health = state.health if state is not None else self.flow.health
        return StrategyView(
            time=t,
            health=health,
            connected=self.conn.ready,
            trading_state=self.risk.state,
            position=self.sync.position,
            working_entries=self.dispatcher.working_entries(),
            flow=state,
        )

    def risk_context(self, now: float, state: FlowState | None) -> RiskContext:
        bid, ask = self.flow.features.quote
        span = self.schedule.globex_at(now)
        return RiskContext(
            now=now,
            position=self.sync.position,
            broker_position=self.sync.broker_position(),
            working_entries=self.dispatcher.working_entries(),
            working_orders=sum(
                1 for r in self.executor.live() if r.status is not Status.JOURNALED or r.perm_id
            ),
            bid=bid,
            ask=ask,
            health=state.health if state is not None else self.flow.health,
            connection_ready=self.conn.ready,
            reconciled=self.sync.reconciled,
            session_end=None if span is None else span.end,
            roll_day=self._roll_day_at(now),
            tick_size=self.market.instrument.tick_size,
        )

    def _roll_day_at(self, now: float) -> bool:
        if not self.settings.risk.no_entry_on_roll_day:
            return False
        details = self.market.details
        key = tuple(d.con_id for d in details)
        if key != self._roll_key:  # roll times change only with the listed contracts
            self._roll_key = key
            roll_days = self.settings.instrument.roll_days_before_expiry
            self._roll_starts = []
            for cd in details:
                try:
                    self._roll_starts.append(contracts.roll_time(cd, roll_days).timestamp())
                except (ValueError, AttributeError):
                    continue
        return any(start <= now < start + _DAY_S for start in self._roll_starts)
