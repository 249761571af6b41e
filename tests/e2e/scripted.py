"""A strategy the end-to-end tests drive: intents queued by the test, one per accepted trade."""

from __future__ import annotations

from collections import deque

from pydantic import BaseModel, ConfigDict, Field

from daemon.flow.features import Bar
from daemon.settings import FlowSettings
from daemon.trading.model import EntryType, Intent, StrategyView, TradeUpdate


class Scripted:
    """On each accepted trade, the next queued intent (only when the view is trusted)."""

    class Params(BaseModel):
        model_config = ConfigDict(frozen=True, extra="forbid")

        enter_once: int = Field(
            default=0, description="Target of one intent at the first trusted trade; 0 = none."
        )
        stop_ticks: int = Field(default=8, description="Stop distance of every intent.")
        target_ticks: int = Field(default=12, description="Target distance of every intent.")

    wants_trades = True

    def __init__(self, params: Params, flow: FlowSettings) -> None:
        self.params = params
        self.queue: deque[Intent] = deque()
        self.entered = False
        self.seen_untrusted = 0
        self.error: Exception | None = None  # raised by on_trade and on_bar once set
        self.calls = 0  # on_trade and on_bar calls since the error was set

    def intent(
        self,
        target: int,
        *,
        entry: str = "LMT",
        offset_ticks: int = 0,
        stop_ticks: int | None = None,
        reason: str = "scripted",
    ) -> Intent:
        return Intent(
            target=target,
            stop_ticks=self.params.stop_ticks if stop_ticks is None else stop_ticks,
            target_ticks=self.params.target_ticks,
            entry=EntryType(entry),
            offset_ticks=offset_ticks,
            reason=reason,
        )

    def on_trade(self, trade: TradeUpdate, view: StrategyView) -> Intent | None:
        self._fail()
        if not view.trusted:
            self.seen_untrusted += 1
            return None
        if self.params.enter_once and not self.entered:
            self.entered = True
            return self.intent(self.params.enter_once, reason="enter_once")
        return self.queue.popleft() if self.queue else None

    def on_bar(self, bar: Bar, view: StrategyView) -> Intent | None:
        self._fail()
        return None

    def _fail(self) -> None:
        if self.error is not None:
            self.calls += 1
            raise self.error
