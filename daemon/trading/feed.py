"""The strategy's input: market events through the order flow, closed bars and trades to the
strategy, and its intents checked before the trader acts on them.

Called from the decoder, so synchronous and fast. A strategy that raises is not called again
until the operator resumes (`Alarms.strategy_failed`); an intent that is not well formed is
refused and counted (`invalid_intent`), never acted on; a journal that fails while an intent is
acted on halts trading.
"""

from __future__ import annotations

from collections.abc import Callable

import structlog

from daemon.flow.events import MarketEvent
from daemon.flow.extractor import FlowState, OrderFlow
from daemon.flow.features import Bar
from daemon.trading.alarms import Alarms
from daemon.trading.journal import JournalError
from daemon.trading.model import Intent, StrategyView, TradeUpdate, intent_problem
from daemon.trading.risk import RiskManager
from daemon.trading.strategy import Strategy

log = structlog.get_logger("daemon.trading.feed")

__all__ = ["StrategyFeed"]


class StrategyFeed:
    """Market events → flow → strategy → intents (see the module docstring)."""

    def __init__(
        self,
        flow: OrderFlow,
        strategy: Strategy,
        alarms: Alarms,
        risk: RiskManager,
        *,
        view: Callable[[float, FlowState | None], StrategyView],
        act: Callable[[Intent, float, FlowState | None], None],
    ) -> None:
        self.flow = flow
        self.strategy = strategy
        self.alarms = alarms
        self.risk = risk
        self._view = view
        self._act = act
        self._trades_seen = 0
        self._volume_seen = 0.0

    def on_event(self, ev: MarketEvent) -> None:
        """Every market event: into the extractor; accepted trades to a strategy that wants them."""
        flow = self.flow
        flow.on_event(ev)
        if flow.trades == self._trades_seen or self.alarms.strategy_error is not None:
            return
        try:
            wants = self.strategy.wants_trades
        except Exception as exc:
            self.alarms.strategy_failed(exc, "wants_trades")
            return
        if not wants:
            return
        count = flow.trades - self._trades_seen
        self._trades_seen = flow.trades
        volume = sum(flow.volume_by_method.values())
        size, self._volume_seen = volume - self._volume_seen, volume
        last = flow.features.last_price
        t = flow.last_trade_time
        if last is None or t is None:
            return
        update = TradeUpdate(time=t, price=last, size=size, trades=count)
        try:
            intent = self.strategy.on_trade(update, self._view(t, None))
        except Exception as exc:
            self.alarms.strategy_failed(exc, "on_trade")
            return
        if intent is not None:
            self._checked(intent, t, None)

    def on_bar(self, bar: Bar) -> None:
        """A closed bar: the strategy decides with the full flow state."""
        if self.alarms.strategy_error is not None:
            return
        state = self.flow.state()
        try:
            intent = self.strategy.on_bar(bar, self._view(bar.end, state))
        except Exception as exc:
            self.alarms.strategy_failed(exc, "on_bar")
            return
        if intent is not None:
            self._checked(intent, bar.end, state)

    def _checked(self, intent: Intent, now: float, state: FlowState | None) -> None:
        """A strategy's intent, checked first; a journal that fails on the way halts trading."""
        problem = intent_problem(intent)
        if problem is not None:
            self.risk.refusals["invalid_intent"] += 1
            self.risk.last_refusals.append((now, "invalid_intent", problem))
            log.error(
                "intent_invalid",
                problem=problem,
                intent=repr(intent),
                rate_limited=True,
                rate_key="intent_invalid",
            )
            return
        try:
            self._act(intent, now, state)
        except JournalError as exc:
            self.alarms.journal_failed(exc)
