"""The supervisor: one event loop, the components in order, signals, health and sd_notify.

The components are one ordered list (`_components`): started in order, stopped in reverse by
`lifecycle`, the trading shutdown policy first on its own budget (`TRADING_STOP_S`), the others
after it on a shared one (`COMPONENTS_STOP_S`). The exit code says whether a supervised task
failed, and whether the shutdown policy was carried out and confirmed (else `EX_UNAVAILABLE`).

READY=1 is sent as soon as the supervisor runs (a gateway outage at boot must not fail the
unit); WATCHDOG=1 only while the loop is responsive and every supervised task is alive, not
when the gateway is up; STATUS= carries the one-line status; STOPPING=1 on shutdown.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import structlog

from daemon.broker.connection import Connection, LiveAccountRefusedError
from daemon.broker.ib.client import IbClient
from daemon.broker.marketdata import MarketData
from daemon.core.instrument import Instrument, InstrumentError
from daemon.flow.extractor import OrderFlow
from daemon.flow.sessions import SessionSchedule
from daemon.recording import Recorder
from daemon.runtime import heap
from daemon.runtime import status as status_mod
from daemon.runtime.control import CONTROL_SOCKET, ControlServer
from daemon.runtime.lifecycle import Budget, Component, Lifecycle, supervised
from daemon.runtime.logs import flush_suppressed, reopen_log_files
from daemon.runtime.metrics import MetricsServer, read_sample
from daemon.runtime.monitor import FlowLog, Monitor
from daemon.runtime.pacing_store import PACING_FILE, PacingStore
from daemon.runtime.statedir import secure_state_dir
from daemon.runtime.systemd import Notifier
from daemon.runtime.warmstart import WarmStart
from daemon.settings import EX_CONFIG, Settings
from daemon.trading.instance import InstanceConflictError
from daemon.trading.journal import Journal
from daemon.trading.strategy import load_strategy
from daemon.trading.trader import Trader

log = structlog.get_logger("daemon.runtime.supervisor")

# Under systemd's TimeoutStopSec=20: the trading policy (a flatten: cancels, the position, the
# closing fill, the position again) gets its own budget, the other components theirs after it.
TRADING_STOP_S = 12.0
COMPONENTS_STOP_S = 5.0
LAG_PROBE_S = 0.25
MAX_HEALTHY_LAG_S = 1.0
EX_SOFTWARE = 70
EX_UNAVAILABLE = 69  # the shutdown policy could not be carried out and confirmed at the broker
JOURNAL_FILE = "journal.sqlite"


class Supervisor:
    """Owns the loop's lifetime: start components in order, watch them, stop them in reverse."""

    def __init__(
        self,
        settings: Settings,
        *,
        allow_live: bool = False,
        notifier: Notifier | None = None,
        debug: bool = False,
        exit_after: float | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        secure_state_dir(Path(settings.paths.state_dir))  # 0700/0600 before anything is written
        self.settings = settings
        self.notifier = notifier or Notifier()
        self.debug = debug
        self.exit_after = exit_after
        self._clock = clock
        # The one client object of the process, with its send throttle (every message).
        self.client = IbClient(
            max_messages_per_second=settings.execution.max_messages_per_second, clock=clock
        )
        self.conn = Connection(self.client, settings.ib, allow_live=allow_live)
        self.schedule = SessionSchedule()
        self.trader: Trader | None = None
        self.flow = OrderFlow(
            settings.flow,
            settings.data,
            self.schedule,
            instrument=Instrument.of_product(settings.instrument.symbol),
            on_reject=FlowLog.rejected,
        )
        self.warm_start = WarmStart(self.conn, self.flow, settings.data)
        self.market = MarketData(
            self.conn,
            settings.instrument,
            settings.data,
            self._on_market,
            flow=self.flow,
            on_contract=self._on_contract,
        )
        self.warm_start.attach(self.market)
        state_dir = Path(settings.paths.state_dir)
        PacingStore(state_dir / PACING_FILE).attach(self.warm_start.pacer)
        self.recorder = Recorder(
            state_dir, settings.instrument.symbol, settings.recording, self.schedule
        )
        self.journal: Journal | None = None
        if settings.trading.enabled:
            strategy = load_strategy(settings.strategy, settings.flow)
            self.journal = Journal(
                state_dir / JOURNAL_FILE, synchronous=settings.trading.journal_sync
            )
            self.trader = Trader(
                settings, self.conn, self.flow, self.market, self.schedule, self.journal, strategy
            )
            self.flow.listen_bars(self.trader.feed.on_bar)  # bars go on down, not back up here
        self.control = ControlServer(state_dir / CONTROL_SOCKET, self._command)
        self.metrics = MetricsServer(
            settings.metrics,
            lambda: read_sample(
                self.conn.status, self.market.stats, self.flow, self.lag_histogram, self.trader
            ),
        )
        self.status_path = Path(settings.paths.state_dir) / status_mod.STATUS_FILE
        self.loop_lag = 0.0
        self.lag_histogram = status_mod.LoopLagHistogram()
        # Full collections while disconnected, not as lag in the middle of trading.
        self.conn.on_disconnect(heap.collect_soon)
        self._stop = asyncio.Event()
        self._stop_reason = ""
        self._trading_stopped = False
        self._tasks: dict[str, asyncio.Task[Any]] = {}
        self._started_wall = time.time()
        self._started_mono = clock()
        self.monitor = Monitor(
            self.market,
            self.flow,
            self.schedule,
            self.trader,
            self.client.sweep_finished,
            self.notifier,
            interval_s=settings.status.interval_s,
            write_status=self.write_status,
            healthy=self.healthy,
            debug=debug,
            clock=clock,
        )

    def _on_market(self, ev: Any) -> None:
        self.recorder.add(ev)
        if self.trader is not None:
            self.trader.feed.on_event(ev)
        else:
            self.flow.on_event(ev)

    def _on_contract(self, instrument: Instrument) -> None:
        """The front contract as the broker describes it: the flow's grid follows (the same
        for a roll; another one after data would mis-price everything, so it halts)."""
        if self.trader is not None:
            self.trader.sync.route_to_front()
        try:
            self.flow.set_instrument(instrument)
        except InstrumentError as exc:
            log.error("instrument_grid_changed", contract=instrument.name, detail=str(exc))
            if self.trader is not None:
                self.trader.alarms.anomaly("instrument", f"grid:{instrument.name}", str(exc))

    async def _command(self, cmd: str, args: dict[str, Any]) -> dict[str, Any]:
        """The control channel: halt / resume / flatten / status."""
        if cmd == "status":
            return {"ok": True, **self.write_status()}
        if self.trader is None:
            return {"ok": False, "error": "trading is disabled (trading.enabled = false)"}
        if self._trading_stopped:
            return {"ok": False, "error": "orderflowd is stopping: its shutdown policy has run"}
        reply = await self.trader.command(cmd, args)
        self.write_status()
        return reply

    def request_stop(self, reason: str) -> None:
        if not self._stop.is_set():
            log.info("stop_requested", reason=reason)
            self._stop_reason = reason
            self._stop.set()

    # --- run ---

    async def run(self) -> int:
        """Run until a signal, `exit_after`, or a fatal error; returns the exit code."""
        asyncio.set_event_loop(asyncio.get_running_loop())  # aeventkit: see DESIGN.md
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.add_signal_handler(sig, self.request_stop, sig.name)
        with contextlib.suppress(NotImplementedError, RuntimeError):
            # logrotate's "reopen your log file"; never death, not even when the terminal of
            # a foreground run goes away (the positions it manages are still there).
            loop.add_signal_handler(signal.SIGHUP, reopen_log_files)
        lifecycle = Lifecycle(self._components())
        await lifecycle.start()
        self.notifier.notify("READY=1", f"STATUS={self._line()}")
        log.info(
            "started",
            state_dir=str(self.settings.paths.state_dir),
            ports=list(self.settings.ib.candidate_ports),
            client_id=self.settings.ib.client_id,
        )
        if self.exit_after is not None:
            loop.call_later(self.exit_after, self.request_stop, "exit_after")
        stopper = asyncio.create_task(self._stop.wait())
        done, _ = await asyncio.wait(
            {stopper, *self._tasks.values()}, return_when=asyncio.FIRST_COMPLETED
        )
        code = self._exit_code(done - {stopper})
        policy_done = await self._shutdown(lifecycle)
        stopper.cancel()
        if code == 0 and not policy_done:
            return EX_UNAVAILABLE
        return code

    def _components(self) -> list[Component]:
        """Everything the supervisor runs, in start order; `Lifecycle` stops them in reverse.

        The control socket starts first: it is also what refuses a second daemon on this state
        directory, before anything else of it runs. The trading policy stops first, on its own
        budget, while the connection, the market data and the monitor (status.json, the
        watchdog) still run; everything else shares one budget after it.
        """
        rest = Budget(COMPONENTS_STOP_S)
        journal = self.journal
        components = [Component("journal", None, journal.close, rest)] if journal else []
        components += [
            Component("control", self.control.start, self.control.stop, rest),
            Component("status", None, self.write_status, rest),  # the last status.json
            supervised("loop_lag", self._measure_lag, self._tasks, rest),
            supervised("monitor", self.monitor.run, self._tasks, rest),
            supervised("connection", self.conn.run, self._tasks, rest, self.conn.stop),
            Component("recorder", self.recorder.start, self.recorder.close, rest),
            Component("market", None, self.market.stop, rest),
            Component("warm_start", None, self.warm_start.stop, rest),
            Component("metrics", self.metrics.start, self.metrics.stop, rest),
        ]
        if self.trader is not None:
            trading = Budget(TRADING_STOP_S + 1.0)
            components.append(Component("trading", None, self._stop_trading, trading))
        return components

    async def _stop_trading(self) -> bool:
        """The shutdown policy (see `operator`); the operator's commands end with it."""
        assert self.trader is not None
        try:
            return await self.trader.shutdown(TRADING_STOP_S)
        finally:
            self._trading_stopped = True

    def _exit_code(self, ended: set[asyncio.Task[Any]]) -> int:
        for task in ended:
            if task.cancelled():
                continue
            exc = task.exception()
            if isinstance(exc, LiveAccountRefusedError):
                log.error("live_account_refused", reason=str(exc))
                return EX_CONFIG
            if isinstance(exc, InstanceConflictError):
                log.error("instance_conflict", reason=str(exc))
                return EX_CONFIG
            if exc is not None:
                log.error("component_failed", component=task.get_name(), error=repr(exc))
                return EX_SOFTWARE
            log.error("component_ended", component=task.get_name())
            return EX_SOFTWARE
        return 0

    async def _shutdown(self, lifecycle: Lifecycle) -> bool:
        """Stop every component in reverse order, each whatever the others did; False when the
        trading shutdown policy could not be carried out and confirmed."""
        self.notifier.notify("STOPPING=1", "STATUS=stopping")
        log.info("stopping", reason=self._stop_reason or "component ended")
        stopped = await lifecycle.stop()
        policy_done = stopped.get("trading", True)
        flush_suppressed(force=True)
        log.info(
            "stopped",
            shutdown_policy_done=policy_done,
            failed=[name for name, done in stopped.items() if not done],
        )
        return policy_done

    # --- supervised tasks ---

    async def _measure_lag(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            start = loop.time()
            await asyncio.sleep(LAG_PROBE_S)
            self.loop_lag = max(0.0, loop.time() - start - LAG_PROBE_S)
            self.lag_histogram.record(self.loop_lag)

    def healthy(self) -> bool:
        """Loop responsive and every supervised task alive (the gateway may well be down)."""
        alive = all(not t.done() for t in self._tasks.values())
        return alive and self.loop_lag < MAX_HEALTHY_LAG_S

    # --- status ---

    def _inputs(self) -> status_mod.StatusInputs:
        return status_mod.StatusInputs(
            connection=self.conn.status,
            feed=self.market.stats,
            flow=self.flow.state(),
            started_wall=self._started_wall,
            started_mono=self._started_mono,
            loop_lag_s=self.loop_lag,
            process=status_mod.process_figures(self.lag_histogram),
            trading=(
                self.trader.status() if self.trader is not None else status_mod.DISABLED_TRADING
            ),
            interval_s=self.settings.status.interval_s,
        )

    def _line(self) -> str:
        return status_mod.status_line(status_mod.snapshot(self._inputs(), self._clock()))

    def write_status(self) -> dict[str, Any]:
        doc = status_mod.snapshot(self._inputs(), self._clock())
        try:
            status_mod.write_atomic(self.status_path, doc)
        except OSError as exc:
            log.warning(
                "status_write_failed", path=str(self.status_path), error=str(exc), rate_limited=True
            )
        return doc
