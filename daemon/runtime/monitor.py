"""The supervisor's once-per-interval loop, and the order flow's summary in the log.

`Monitor.run` checks the market data, follows the front contract's sessions, advances the
market clock (which closes quiet bars) and the trader's periodic work, writes status.json and
STATUS=, sends WATCHDOG=1 while the daemon is healthy, logs the flow now and then, and flushes
the rate-limited logs. A step that fails is logged and the loop goes on: a full disk or a
strategy that raises must not end the monitor (the status would freeze and the shutdown policy
be skipped).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import structlog

from daemon.broker.contracts import SessionCalendar
from daemon.broker.marketdata import MarketData
from daemon.flow.extractor import OrderFlow
from daemon.flow.guards import Reason
from daemon.flow.sessions import SessionSchedule
from daemon.runtime import status as status_mod
from daemon.runtime.logs import flush_suppressed
from daemon.runtime.systemd import Notifier
from daemon.trading.trader import Trader

log = structlog.get_logger("daemon.runtime.monitor")

__all__ = ["FLOW_LOG_EVERY_S", "FlowLog", "Monitor"]

FLOW_LOG_EVERY_S = 10.0
DEBUG_LINE_EVERY_S = 5.0


class FlowLog:
    """A summary of the order flow every few seconds, and rejected ticks at a bounded rate."""

    def __init__(self, flow: OrderFlow, every_s: float = FLOW_LOG_EVERY_S) -> None:
        self.flow = flow
        self.every_s = every_s
        self._last_log = -1e18
        self._trades = 0

    def maybe_log(self, now: float) -> None:
        if now - self._last_log < self.every_s:
            return
        self._last_log = now
        state = self.flow.state()
        f = state.features
        log.info(
            "flow",
            health=state.health.value,
            trades=state.trades - self._trades,
            last=f.last,
            cvd=f.cvd_session,
            vwap=None if f.vwap is None else round(f.vwap, 2),
            session_volume=f.session_volume,
            partial=f.session_partial,
        )
        self._trades = state.trades

    @staticmethod
    def rejected(reason: Reason, event: object) -> None:
        log.warning(
            "tick_rejected",
            reason=reason.value,
            tick=repr(event),
            rate_limited=True,
            rate_key=reason.value,
        )


class Monitor:
    """The loop (see the module docstring); `run` is one of the supervisor's tasks."""

    def __init__(
        self,
        market: MarketData,
        flow: OrderFlow,
        schedule: SessionSchedule,
        trader: Trader | None,
        sweep_finished: Callable[[], int],
        notifier: Notifier,
        *,
        interval_s: float,
        write_status: Callable[[], dict[str, Any]],
        healthy: Callable[[], bool],
        debug: bool,
        clock: Callable[[], float],
    ) -> None:
        self.market = market
        self.flow = flow
        self.schedule = schedule
        self.trader = trader
        self._sweep_finished = sweep_finished  # finished trades out of the client's memory
        self.notifier = notifier
        self.interval_s = interval_s
        self._write_status = write_status
        self._healthy = healthy
        self.debug = debug
        self._clock = clock
        self.flow_log = FlowLog(flow)
        self._calendar: SessionCalendar | None = None
        self._last_ping = -1e18
        self._last_line = 0.0

    async def run(self) -> None:
        interval = self.interval_s
        watchdog = self.notifier.watchdog_interval()
        while True:
            try:
                await self.market.check()
            except (TimeoutError, ConnectionError) as exc:
                log.warning("market_check_failed", error=repr(exc))
            except Exception as exc:
                self._failed("market_check", exc)
            try:
                self._follow_market()
            except Exception as exc:
                self._failed("follow_market", exc)
            self._sweep_finished()
            now = self._clock()
            doc = self._write_status()
            line = status_mod.status_line(doc)
            self.notifier.notify(f"STATUS={line}")
            if watchdog is not None and now - self._last_ping >= watchdog and self._healthy():
                self.notifier.notify("WATCHDOG=1")
                self._last_ping = now
            if self.debug and now - self._last_line >= DEBUG_LINE_EVERY_S:
                self._last_line = now
                log.info("status", line=line)
            self.flow_log.maybe_log(now)
            flush_suppressed()
            await asyncio.sleep(min(interval, watchdog) if watchdog else interval)

    def _follow_market(self) -> None:
        """Sessions from the front contract's hours; the market clock closes quiet bars."""
        calendar = self.market.calendar
        if calendar is not None and calendar is not self._calendar:
            self._calendar = calendar
            until = calendar.valid_until
            self.schedule.update(
                calendar.trading_spans(),
                calendar.liquid_spans(),
                None if until is None else until.timestamp(),
            )
        if self.market.contract is not None:
            now = self.market.market_now().timestamp()
            self.flow.advance(now)
            if self.trader is not None:
                self.trader.tick(now)

    def _failed(self, step: str, exc: Exception) -> None:
        log.error(
            "monitor_step_failed",
            step=step,
            error=repr(exc),
            exc_info=exc,
            rate_limited=True,
            rate_key=f"monitor_{step}",
        )
