"""One chaos run: gateway, daemon, faults in seeded rounds, recovery clocks, then the verdict."""

from __future__ import annotations

import asyncio
import random
import statistics
import time
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from chaos.daemon import DaemonProcess, Status, healthy, unhealthy
from chaos.faults import CATALOGUE, CLIENT_ID, PREFIX, RESTART_DELAY_S, Injected, Target
from chaos.judge import Check, CloseWatch, LifeEnds, PositionWatch, gateway_position, judge
from daemon.runtime.control import CONTROL_SOCKET, ControlError, send_command
from ibsim.gateway import Gateway, GatewayConfig
from ibsim.market import ReplaySource, load_trades_csv

MAX_POSITION = 2  # risk.max_position (the default)
STATUS_INTERVAL_S = 0.1
SLOW_RECOVERY_S = 5.0  # slower recoveries say what held them back
SILENT_MARKET_S = 20.0  # wall seconds without a replayed trade: stale data is then expected

# The default strategy, tuned to trade often on the thin holiday tape (compare config/demo.toml):
# every order path (entries, exits, flips, timeouts) gets exercised under faults.
DAEMON_CONFIG = """\
[ib]
port = {port}
client_id = {client_id}
connect_timeout = 5.0
[flow]
stacked_levels = 2
[trading]
enabled = true
[strategy.params]
stop_ticks = 4
target_ticks = 6
offset_ticks = 1
min_bar_volume = 30.0
min_delta_ratio = 0.05
trend_bars = 2
cooldown_bars = 1
max_hold_bars = 5
reverse_on_opposite = true
[risk]
max_position = {max_position}
daily_loss_limit = 1000000.0
[logging]
format = "json"
file = "daemon.jsonl"
[paths]
state_dir = "{state}"
log_dir = "{logs}"
[status]
interval_s = {interval}
[metrics]
enabled = false
[execution]
order_ref_prefix = "{prefix}"
[data]
stale_after_s = {stale}
reconnect_after_stale_s = {reconnect}
"""
STALE_AFTER_S = 4.0  # data.stale_after_s: a frozen feed is seen within seconds
RECONNECT_AFTER_STALE_S = 10.0


@dataclass(frozen=True)
class ChaosConfig:
    data: Path
    workdir: Path
    seed: int = 1
    duration_s: float = 25 * 60.0  # faults are injected until then; one round at least
    speed: float = 60.0  # market seconds per wall second
    kinds: tuple[str, ...] = tuple(CATALOGUE)
    rounds: int | None = None  # stop after this many rounds of `kinds` (else by duration)
    warmup_s: float = 5.0  # healthy trading before the first fault
    # Healthy time between a recovery and the next fault. At least the connection's
    # Backoff.stable_after (3 s), so that each fault meets a daemon at rest, not a compound.
    gap_s: tuple[float, float] = (3.0, 8.0)
    recover_timeout_s: float = 90.0
    order_wait_s: float = 60.0
    fault_scale: float = 1.0  # multiplies fault durations (outages, stalls, restarts)


@dataclass
class Outcome:
    kind: str
    detail: str
    at: float  # seconds into the run
    recovered_s: float | None  # None: not within recover_timeout_s
    blocker: str = ""  # the condition that held recovery back the most polls


@dataclass
class Report:
    outcomes: list[Outcome] = field(default_factory=list)
    skipped: Counter[str] = field(default_factory=Counter)
    checks: list[Check] = field(default_factory=list)
    unprotected_s: float = 0.0
    # Each stretch with an unprotected position: (seconds into the run, how long, what the
    # status said when it began) — the longest are printed, so a long one can be looked into.
    unprotected_spans: list[tuple[float, float, str]] = field(default_factory=list)
    halts: Counter[str] = field(default_factory=Counter)
    operator_resumes: Counter[str] = field(default_factory=Counter)  # by fault kind
    lives: int = 0
    crashes: list[int] = field(default_factory=list)  # exit codes of lives that ended by themselves
    final_exit: int | None = None
    wall_s: float = 0.0
    orders: int = 0
    fills: int = 0

    @property
    def failures(self) -> list[str]:
        bad = [f"{c.name}: {c.value} ({c.detail})" for c in self.checks if not c.ok]
        bad += [
            f"{o.kind} at {o.at:.1f} s not recovered ({o.blocker})"
            for o in self.outcomes
            if o.recovered_s is None
        ]
        if self.crashes:
            bad.append(f"the daemon ended by itself {len(self.crashes)} time(s): {self.crashes}")
        if self.final_exit not in (0, None):
            bad.append(f"daemon exit code {self.final_exit} on SIGTERM")
        return bad

    def by_kind(self) -> dict[str, list[Outcome]]:
        groups: dict[str, list[Outcome]] = defaultdict(list)
        for o in self.outcomes:
            groups[o.kind].append(o)
        return groups


class StatusWatch:
    """Samples status.json all run long: time with an unprotected position, halts and reasons."""

    def __init__(self, daemon: DaemonProcess, report: Report) -> None:
        self.daemon = daemon
        self.report = report
        self._halted = False
        self._span: tuple[float, str] | None = None  # an unprotected stretch: start, first word

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        start = last = loop.time()
        while True:
            await asyncio.sleep(STATUS_INTERVAL_S)
            now = loop.time()
            trading = self.daemon.status().get("trading") or {}
            if trading.get("unprotected"):
                self.report.unprotected_s += now - last
                if self._span is None:
                    self._span = (now - start, _describe_unprotected(trading))
            elif self._span is not None:
                began, what = self._span
                self.report.unprotected_spans.append((began, now - start - began, what))
                self._span = None
            halted = trading.get("state") == "HALTED"
            if halted and not self._halted:
                self.report.halts[str(trading.get("reason"))] += 1
            self._halted = halted
            last = now


def _describe_unprotected(trading: dict[str, Any]) -> str:
    orders = ", ".join(
        f"{o.get('ref')} {o.get('role')} {o.get('status')}"
        for o in trading.get("working_orders") or []
    )
    return (
        f"position {trading.get('position')}, account {trading.get('account_position')}, "
        f"state {trading.get('state')} ({trading.get('reason')}); working: {orders or 'none'}"
    )


def write_config(workdir: Path, port: int) -> Path:
    path = workdir / "chaos.toml"
    path.write_text(
        DAEMON_CONFIG.format(
            port=port,
            max_position=MAX_POSITION,
            state=workdir / "state",
            logs=workdir / "logs",
            interval=STATUS_INTERVAL_S,
            client_id=CLIENT_ID,
            prefix=PREFIX,
            stale=STALE_AFTER_S,
            reconnect=RECONNECT_AFTER_STALE_S,
        )
    )
    return path


class MarketSilence:
    """True while the replayed tape has had no trade for a while: the daemon is then right to
    call its data stale (the data file stops 10:30-17:00 CT on Labor Day, for one)."""

    def __init__(self, gw: Gateway, speed: float) -> None:
        self.gw = gw
        self.speed = speed

    def __call__(self) -> bool:
        last = self.gw.history.trades.window(None, None, 1)
        if not last:
            return False
        return (self.gw.clock.now() - last[0].time) / self.speed > SILENT_MARKET_S


class Recovery:
    """The recovery predicate of one fault, remembering what held it back the longest."""

    def __init__(
        self,
        injected: Injected,
        wall_end: float,
        daemon: DaemonProcess,
        silent: Callable[[], bool],
    ) -> None:
        self.injected = injected
        self.wall_end = wall_end
        self.daemon = daemon
        self.silent = silent
        self.blockers: Counter[str] = Counter()
        self.ok = False  # the last document judged was a recovery

    def __call__(self, doc: Status) -> bool:
        self.ok = False
        if self.daemon.status_mtime() <= self.wall_end:
            self.blockers["status not rewritten"] += 1
            return False
        if not self.injected.noticed(doc):
            self.blockers["not noticed yet"] += 1
            return False
        reasons = unhealthy(doc, market_silent=self.silent())
        self.blockers.update(reasons)
        self.ok = not reasons
        return self.ok

    def main_blocker(self) -> str:
        return self.blockers.most_common(1)[0][0] if self.blockers else ""


def _schedule(config: ChaosConfig, rng: random.Random) -> list[str]:
    """One round: every kind once, in a seeded order."""
    kinds = list(config.kinds)
    rng.shuffle(kinds)
    return kinds


async def _settle(daemon: DaemonProcess, limit_s: float) -> None:
    """After the market stops: the daemon connected and reconciled on a fresh status."""
    since = time.time()
    await daemon.until(
        lambda doc: (
            daemon.status_mtime() > since + 0.5
            and doc.get("state") in ("READY", "DEGRADED")
            and (doc.get("trading") or {}).get("reconciled") is True
        ),
        limit_s,
    )


async def run(config: ChaosConfig, progress: Any = print) -> Report:
    """The whole run; `progress` gets one line per fault."""
    rng = random.Random(config.seed)
    report = Report()
    config.workdir.mkdir(parents=True, exist_ok=True)
    trades = load_trades_csv(config.data)
    gw = Gateway(GatewayConfig(port=0), ReplaySource(trades, seed=config.seed), speed=config.speed)
    await gw.start()
    daemon = DaemonProcess(
        write_config(config.workdir, gw.port),
        config.workdir / "state",
        config.workdir / "daemon.out",
    )
    watch = PositionWatch(gw)
    closes = CloseWatch(gw, CLIENT_ID)
    lives = LifeEnds()

    def life_ended() -> None:
        mtime = daemon.status_mtime()
        lives.record(
            daemon.status(),
            time.time() - mtime,
            gateway_position(gw),
            watch.quiet_s(),
        )

    daemon.on_end = life_ended
    orders = Counter[str]()
    gw.observers.append(lambda name: orders.update([name]))
    status_task: asyncio.Task[None] | None = None
    crash_task: asyncio.Task[None] | None = None
    loop = asyncio.get_running_loop()
    start = loop.time()
    try:
        await daemon.start()
        status_task = asyncio.create_task(StatusWatch(daemon, report).run())
        crash_task = asyncio.create_task(daemon.watch_crashes(RESTART_DELAY_S))
        if await daemon.until(healthy, config.recover_timeout_s) is None:
            raise RuntimeError(f"the daemon never became healthy; see {daemon.log_path}")
        await asyncio.sleep(config.warmup_s)
        silent = MarketSilence(gw, config.speed)
        target = Target(gw, daemon, rng, config.order_wait_s, config.fault_scale, silent)
        rounds = 0
        while config.rounds is None or rounds < config.rounds:
            if config.rounds is None and rounds and loop.time() - start >= config.duration_s:
                break
            for kind in _schedule(config, rng):
                if config.rounds is None and rounds and loop.time() - start >= config.duration_s:
                    break
                await _one_fault(kind, target, config, report, start, progress)
            rounds += 1
        gw.stop_market()
        await _settle(daemon, config.recover_timeout_s)
        crash_task.cancel()
        report.final_exit = await daemon.terminate()
    finally:
        for task in (status_task, crash_task):
            if task is not None:
                task.cancel()
        if daemon.running:
            await daemon.terminate()
        await gw.stop()
    watch.close()
    closes.close()
    report.lives = daemon.lives
    report.crashes = daemon.crashes
    report.orders, report.fills = orders["order"], orders["fill"]
    report.checks = judge(
        gw,
        config.workdir / "state" / "journal.sqlite",
        prefix=PREFIX,
        max_position=MAX_POSITION,
        watch=watch,
        closes=closes,
        lives=lives,
    )
    report.wall_s = loop.time() - start
    return report


async def _one_fault(
    kind: str,
    target: Target,
    config: ChaosConfig,
    report: Report,
    start: float,
    progress: Any,
) -> None:
    loop = asyncio.get_running_loop()
    daemon = target.daemon
    before = (
        await daemon.until(
            lambda doc: healthy(doc, market_silent=target.silent()), config.recover_timeout_s
        )
        or daemon.status()
    )
    at = loop.time() - start
    injected = await CATALOGUE[kind](target, before)
    if injected is None:
        report.skipped[kind] += 1
        why = (
            "the replayed market is silent"
            if target.silent()
            else f"no order within {config.order_wait_s:.0f} s"
        )
        progress(f"[{at:7.1f} s] {kind}: {why}, skipped")
        return
    wall_end = time.time() - (loop.time() - injected.ended)
    recovery = Recovery(injected, wall_end, daemon, target.silent)
    deadline = loop.time() + config.recover_timeout_s
    doc = await daemon.until(
        lambda d: recovery(d) or halted_for_a_person(d), deadline - loop.time()
    )
    resumed = False
    if doc is not None and not recovery.ok:
        # Rejects and broker anomalies halt trading by design, with no retry loop; the trader
        # resumes once the cause (a read-only API, a forged message) is understood, as
        # `orderflowd resume` does (after an anomaly the daemon asks the broker again first).
        resumed = await asyncio.to_thread(_operator_resume, daemon)
        report.operator_resumes[kind] += 1
        doc = await daemon.until(recovery, max(0.0, deadline - loop.time()))
    recovered = None if doc is None else loop.time() - injected.ended
    blocker = recovery.main_blocker()
    report.outcomes.append(Outcome(kind, injected.detail, at, recovered, blocker))
    verdict = "NOT RECOVERED" if recovered is None else f"recovered in {recovered:.2f} s"
    if resumed:
        verdict += " after an operator resume"
    if blocker and (recovered is None or recovered > SLOW_RECOVERY_S):
        verdict += f" (waiting mostly on {blocker})"
    progress(f"[{at:7.1f} s] {kind}: {injected.detail} -> {verdict}")
    await asyncio.sleep(target.rng.uniform(*config.gap_s))


def halted_for_a_person(doc: Status) -> bool:
    """Halted for what a trader would look at and then resume: rejects, a broker anomaly, an
    operator's flatten."""
    trading = doc.get("trading") or {}
    reason = str(trading.get("reason"))
    wanted = ("rejects", "anomaly", "flatten: operator")
    return trading.get("state") == "HALTED" and any(w in reason for w in wanted)


def _operator_resume(daemon: DaemonProcess) -> bool:
    """`orderflowd resume --reason chaos` through the control socket; True if it took."""
    try:
        reply = send_command(daemon.state_dir / CONTROL_SOCKET, "resume", "chaos", timeout=90.0)
    except (ControlError, OSError):
        return False
    return bool(reply.get("ok"))


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def format_report(report: Report, config: ChaosConfig) -> str:
    lines = [
        f"chaos: seed {config.seed}, {report.wall_s / 60:.1f} min at {config.speed:g}x, "
        f"{len(report.outcomes)} faults, {report.lives} daemon lives, "
        f"{report.orders} order messages and {report.fills} fills at the gateway",
        "",
        f"{'fault':<26}{'injected':>9}{'recovered':>10}{'p50 s':>8}{'max s':>8}{'skipped':>9}",
    ]
    groups = report.by_kind()
    for kind in config.kinds:
        outs = groups.get(kind, [])
        times = [o.recovered_s for o in outs if o.recovered_s is not None]
        p50 = f"{statistics.median(times):.2f}" if times else "-"
        worst = f"{max(times):.2f}" if times else "-"
        lines.append(
            f"{kind:<26}{len(outs):>9}{len(times):>10}{p50:>8}{worst:>8}"
            f"{report.skipped.get(kind, 0):>9}"
        )
    all_times = [o.recovered_s for o in report.outcomes if o.recovered_s is not None]
    if all_times:
        lines.append(
            f"{'all':<26}{len(report.outcomes):>9}{len(all_times):>10}"
            f"{statistics.median(all_times):>8.2f}{max(all_times):>8.2f}"
            f"{sum(report.skipped.values()):>9}"
        )
    lines.append("")
    for check in report.checks:
        mark = "ok  " if check.ok else "FAIL"
        lines.append(f"{mark} {check.name}: {check.value} ({check.detail})")
    lines.append(f"     time with an unprotected position: {report.unprotected_s:.1f} s")
    for began, seconds, what in sorted(report.unprotected_spans, key=lambda s: -s[1])[:3]:
        lines.append(f"       {seconds:.1f} s from {began:.1f} s: {what}")
    halts = ", ".join(f"{r} x{n}" for r, n in report.halts.items()) or "none"
    lines.append(f"     halts: {halts}")
    resumes = ", ".join(f"{k} x{n}" for k, n in report.operator_resumes.items()) or "none"
    lines.append(f"     operator resumes (after reject, anomaly and flatten halts): {resumes}")
    lines.append(f"     daemon lives: {report.lives}, ended by themselves: {len(report.crashes)}")
    lines.append("")
    headline = {c.name: c.value for c in report.checks}
    lines.append(f"duplicate orders: {headline['duplicate orders']}")
    lines.append(f"lost fills: {headline['lost fills']}")
    failures = report.failures
    lines.append("")
    lines.append("chaos: PASS" if not failures else "chaos: FAIL\n  " + "\n  ".join(failures))
    return "\n".join(lines)
