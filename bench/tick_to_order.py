"""Tick-to-order latency: from the trade that triggers an entry to its placeOrder at the gateway.

    python -m bench.tick_to_order [--cycles 200] [--period 0.25] [--rate 5000] [--json]

An in-process ibsim gateway serves a background feed of quotes and trades at ``--rate``
messages/s to one client in a child process. Each cycle applies a trade of 77 contracts (the
trigger; ``time.perf_counter()`` just before ``Gateway.apply``), waits for the first
placeOrder the gateway processes (its ``observers`` get "order"; timestamp there), and half a
period later a trade of 78 contracts that cancels the entry. Three runs, each on a fresh gateway:

1. baseline: a bare ib_async client (this module with ``--baseline-client``) that calls
   ``ib.placeOrder`` from its tick-by-tick AllLast callback on a size-77 trade: the client
   library's floor for the same path;
2. the daemon (``python -m daemon run``, strategy ``bench.strategies:Trigger``), journal_sync
   "normal": feed → flow → strategy → risk → journal → bracket (the parent arrives first);
3. the same with journal_sync "full" (an fsync per journal write).

Figures are printed, never asserted; compare each run with the baseline of the same run.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import os
import platform
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import IO, Any
from zoneinfo import ZoneInfo

from ib_async import IB, Contract, LimitOrder, Trade

from bench.ibsim_throughput import Window
from ibsim import contracts
from ibsim.gateway import Gateway, GatewayConfig
from ibsim.market import ListSource
from ibsim.model import QuoteTick, Side, TradeTick

ROOT = Path(__file__).resolve().parent.parent
HOST = "127.0.0.1"
# Friday 2026-11-20 08:30 CT: RTH has just opened, ESZ6 is the front month.
T0 = datetime(2026, 11, 20, 8, 30, tzinfo=ZoneInfo("US/Central")).timestamp()
BID, ASK, TICK = 5000.0, 5000.25, 0.25
ARM, DISARM = 77, 78  # trade sizes the background feed never prints (it prints 1..3)
DAEMON_ID, BASELINE_ID = 7, 8
TARGET_P99_MS = 5.0
ORDER_WAIT_S = 0.25  # a trigger with no order by then counts as "no order"
READY_TIMEOUT_S = 60.0  # client connected, reconciled, data OK
CLEAR_WAIT_S = 0.5  # bound on waiting for the previous cycle's cancel at the gateway
STOP_TIMEOUT_S = 15.0
PACE_S = 0.001  # the feed wakes up about this often and sends what is due
MAX_BATCH = 100  # at most this many background messages in one loop turn
OTHERS_NOTE = 0.25  # cores used by other processes worth a note


def progress(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100) of a non-empty list."""
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]


# --- the gateway side: background feed, triggers, arrivals ---


class Feed:
    """Background quotes and trades at a fixed message rate, paced with the loop clock; the
    gateway's clock follows the wall clock from T0."""

    PATTERN = ("q", "q", "q", "q", "t", "q", "q", "q", "q", "q")  # 9 quotes : 1 trade

    def __init__(self, gw: Gateway, rate: float) -> None:
        self.gw = gw
        self.rate = rate
        self.sent = 0
        self._wall0 = time.perf_counter()

    def now(self) -> float:
        t = T0 + time.perf_counter() - self._wall0
        self.gw.clock.advance_to(t)
        return t

    def trade(self, size: int) -> None:
        """A buyer lifts the offer: ``size`` contracts at the ask."""
        self.gw.apply(TradeTick(self.now(), ASK, size, Side.BUY))

    def _next(self, t: float) -> QuoteTick | TradeTick:
        n = self.sent
        kind = self.PATTERN[n % len(self.PATTERN)]
        if kind == "q":
            return QuoteTick(t, BID, ASK, 10 + n % 50, 10 + (n * 7) % 50)
        k = n // len(self.PATTERN)  # sizes 1..3, buyers and sellers in turn
        size = 1 + k % 3
        return TradeTick(t, ASK, size, Side.BUY) if k % 2 else TradeTick(t, BID, size, Side.SELL)

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        start = loop.time()
        while True:
            due = int((loop.time() - start) * self.rate) - self.sent
            if due > MAX_BATCH:  # fell behind (a stall): do not catch up in one burst
                start += (due - MAX_BATCH) / self.rate
                due = MAX_BATCH
            t = self.now()
            for _ in range(due):
                self.gw.apply(self._next(t))
                self.sent += 1
            await asyncio.sleep(PACE_S)


class Arrivals:
    """Gateway observer: perf_counter() of every placeOrder processed since the last trigger."""

    def __init__(self) -> None:
        self.times: list[float] = []
        self.first: asyncio.Future[float] | None = None

    def __call__(self, event: str) -> None:
        if event != "order":
            return
        now = time.perf_counter()
        self.times.append(now)
        if self.first is not None and not self.first.done():
            self.first.set_result(now)

    def expect(self) -> asyncio.Future[float]:
        self.times = []
        self.first = asyncio.get_running_loop().create_future()
        return self.first


class WireCounter:
    """Counts the messages a gateway session hands to its socket (wraps its ``send``)."""

    def __init__(self, session: Any) -> None:
        self.count = 0
        send = session.send

        def counted(data: bytes) -> None:
            self.count += 1
            send(data)

        session.send = counted


@dataclass(slots=True)
class Run:
    """One measured run: latencies (None = no order), feed rate, CPU use in cores."""

    name: str
    latencies: list[float | None] = field(default_factory=list)  # seconds
    bracket: list[float] = field(default_factory=list)  # trigger -> 3rd placeOrder, seconds
    leftovers: int = 0  # cycles that began with the previous entry still working
    wire_rate: float = 0.0
    client_cpu: float | None = None
    gateway_cpu: float = 0.0  # this process: the gateway, its feed and the bench
    others_cpu: float | None = None  # every other process on the machine
    seconds: float = 0.0
    notes: list[str] = field(default_factory=list)

    @property
    def measured(self) -> list[float]:
        return [x for x in self.latencies if x is not None]

    @property
    def missing(self) -> int:
        return sum(1 for x in self.latencies if x is None)

    def stat_ms(self, q: float) -> float | None:
        values = self.measured
        return percentile(values, q) * 1000 if values else None


async def until(predicate: Callable[[], bool], limit: float, what: str, step: float = 0.05) -> None:
    """Poll ``predicate`` every ``step`` s; TimeoutError naming ``what`` after ``limit`` s."""
    deadline = time.monotonic() + limit
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError(f"no {what} after {limit:g} s")
        await asyncio.sleep(step)


async def sleep_until(loop_time: float) -> None:
    delay = loop_time - asyncio.get_running_loop().time()
    if delay > 0:
        await asyncio.sleep(delay)


async def cycle(
    gw: Gateway, feed: Feed, arrivals: Arrivals, client_id: int, period: float
) -> tuple[float | None, float | None, bool]:
    """One arm/disarm cycle: (trigger -> 1st placeOrder, -> 3rd, began with leftovers)."""
    loop = asyncio.get_running_loop()
    begin = loop.time()
    leftover = bool(gw.engine.open_orders(client_id))
    if leftover:
        with contextlib.suppress(TimeoutError):
            await until(lambda: not gw.engine.open_orders(client_id), CLEAR_WAIT_S, "", 0.005)
    first = arrivals.expect()
    trigger = time.perf_counter()
    feed.trade(ARM)
    latency: float | None
    try:
        latency = await asyncio.wait_for(first, ORDER_WAIT_S) - trigger
    except TimeoutError:
        latency = None
    await sleep_until(begin + period / 2)
    third = arrivals.times[2] - trigger if len(arrivals.times) >= 3 else None
    feed.trade(DISARM)
    await sleep_until(begin + period)
    return latency, third, leftover


async def measure(
    name: str,
    spawn: Callable[[int], subprocess.Popen[bytes]],
    ready: Callable[[Gateway, subprocess.Popen[bytes]], Awaitable[None]],
    client_id: int,
    args: argparse.Namespace,
) -> Run:
    """A fresh gateway with the background feed, the client spawned against it, the cycles."""
    gw = Gateway(
        GatewayConfig(host=HOST, port=0, client_id_release_delay=0.0),
        ListSource.one_quote(T0, BID, ASK),
        speed=math.inf,
    )
    port = await gw.start()
    feed = Feed(gw, args.rate)
    feeding = asyncio.create_task(feed.run())
    arrivals = Arrivals()
    gw.observers.append(arrivals)
    proc = spawn(port)
    run = Run(name)
    try:
        started = time.perf_counter()
        await ready(gw, proc)
        progress(f"  ready after {time.perf_counter() - started:.1f} s")
        session = gw.session_of(client_id)
        assert session is not None, "the client is not connected"
        for _ in range(args.warmup_cycles):
            await cycle(gw, feed, arrivals, client_id, args.period)
        wire = WireCounter(session)
        window = Window(proc.pid)
        for _ in range(args.cycles):
            latency, third, leftover = await cycle(gw, feed, arrivals, client_id, args.period)
            run.latencies.append(latency)
            if third is not None:
                run.bracket.append(third)
            run.leftovers += leftover
        usage = window.close()
        run.seconds = usage.seconds
        run.gateway_cpu, run.client_cpu, run.others_cpu = usage.own, usage.gateway, usage.others
        if usage.steal is not None and usage.steal >= 0.01:
            run.notes.append(f"the hypervisor stole {_pct(usage.steal)} of a core")
        run.wire_rate = wire.count / run.seconds
    finally:
        feeding.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await feeding
        await stop(proc)
        # Let the session see the client's EOF first: Gateway.stop() flushes open sessions, and
        # a write to a socket the peer already closed raises.
        with contextlib.suppress(TimeoutError):
            await until(lambda: all(s.closed for s in gw.sessions), 2.0, "", 0.01)
        await gw.stop()
    return run


async def stop(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM, then SIGKILL after STOP_TIMEOUT_S; the gateway keeps serving meanwhile."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            await until(lambda: proc.poll() is not None, STOP_TIMEOUT_S, "exit", 0.02)
        except TimeoutError:
            proc.kill()
            proc.wait()


def _die_with_parent() -> None:
    """In the child before exec: SIGTERM it if the benchmark dies without stopping it."""
    if sys.platform == "linux":
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def _child(cmd: list[str], stderr: IO[bytes]) -> subprocess.Popen[bytes]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.Popen(
        cmd,
        cwd=ROOT,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=stderr,
        preexec_fn=_die_with_parent,
    )


def _tail(log: IO[bytes]) -> str:
    log.flush()
    log.seek(0)
    return log.read().decode(errors="replace")[-3000:]


def _exited(proc: subprocess.Popen[bytes], log: IO[bytes], what: str) -> None:
    if proc.poll() is not None:
        raise RuntimeError(f"{what} exited with {proc.returncode}; its stderr:\n{_tail(log)}")


# --- the daemon ---


def daemon_config(directory: Path, port: int, journal_sync: str) -> Path:
    """A TOML config: trading on, the Trigger strategy, risk limits no measured entry hits."""
    config = directory / "bench.toml"
    config.write_text(
        f"""
[ib]
port = {port}
client_id = {DAEMON_ID}
connect_timeout = 5.0
[data]
backfill = false
[trading]
enabled = true
journal_sync = "{journal_sync}"
[strategy]
path = "bench.strategies:Trigger"
[strategy.params]
arm_size = {ARM}
disarm_size = {DISARM}
[risk]
max_position = 5
max_working_orders = 100
max_orders_per_second = 100
max_orders_per_minute = 6000
efficiency_grace_messages = 1000000
[paths]
state_dir = "{directory / "state"}"
log_dir = "{directory / "logs"}"
[logging]
format = "json"
[metrics]
enabled = false
"""
    )
    return config


def filesystem(path: Path) -> str:
    """The type of the filesystem holding ``path`` (from /proc/mounts), or "unknown"."""
    best, kind = "", "unknown"
    with contextlib.suppress(OSError):
        for line in Path("/proc/mounts").read_text().splitlines():
            fields = line.split()
            mount = fields[1]
            inside = str(path.resolve()).startswith(mount.rstrip("/") + "/")
            if inside and len(mount) > len(best):
                best, kind = mount, fields[2]
    return kind


def daemon_status(state_dir: Path) -> dict[str, Any]:
    try:
        doc: dict[str, Any] = json.loads((state_dir / "status.json").read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return {}
    return doc


def daemon_ready(doc: dict[str, Any]) -> bool:
    trading = doc.get("trading") or {}
    return trading.get("reconciled") is True and doc.get("data_health") == "OK"


async def daemon_run(journal_sync: str, args: argparse.Namespace) -> Run:
    with tempfile.TemporaryDirectory(prefix="ofd-t2o-") as tmp, tempfile.TemporaryFile() as log:
        directory = Path(tmp)

        def spawn(port: int) -> subprocess.Popen[bytes]:
            config = daemon_config(directory, port, journal_sync)
            return _child([sys.executable, "-m", "daemon", "run", "--config", str(config)], log)

        async def ready(gw: Gateway, proc: subprocess.Popen[bytes]) -> None:
            def ok() -> bool:
                _exited(proc, log, "the daemon")
                return daemon_ready(daemon_status(directory / "state")) and (
                    gw.feed.tick_by_tick_count() >= 2
                )

            try:
                await until(ok, READY_TIMEOUT_S, "reconciled daemon with data health OK")
            except TimeoutError as exc:
                doc = daemon_status(directory / "state")
                raise RuntimeError(f"{exc}; status: {doc}; stderr:\n{_tail(log)}") from None

        run = await measure(f"daemon, journal {journal_sync}", spawn, ready, DAEMON_ID, args)
        run.notes += daemon_notes(directory / "state")
        return run


def daemon_notes(state_dir: Path) -> list[str]:
    """What in the daemon's final status and journal explains triggers without an order."""
    doc = daemon_status(state_dir)
    notes = []
    if doc.get("volume_gaps"):
        notes.append(
            f"the daemon flagged {doc['volume_gaps']} volume gap(s) (data DEGRADED, no entries; "
            f"missing_volume {doc.get('missing_volume')})"
        )
    if doc.get("rejected_ticks"):
        notes.append(f"the daemon rejected ticks: {doc['rejected_ticks']}")
    with contextlib.suppress(sqlite3.Error):
        with contextlib.closing(sqlite3.connect(state_dir / "journal.sqlite")) as db:
            refused = db.execute("SELECT detail FROM intents WHERE status = 'refused'").fetchall()
        if refused:
            notes.append(f"risk refused {len(refused)} intent(s), first: {refused[0][0]}")
    return notes


# --- the baseline: a bare ib_async client ---


async def baseline_run(args: argparse.Namespace) -> Run:
    con_id = front_con_id()
    with tempfile.TemporaryFile() as log:

        def spawn(port: int) -> subprocess.Popen[bytes]:
            cmd = [sys.executable, "-m", "bench.tick_to_order", "--baseline-client", str(port)]
            return _child([*cmd, "--con-id", str(con_id)], log)

        async def ready(gw: Gateway, proc: subprocess.Popen[bytes]) -> None:
            def ok() -> bool:
                _exited(proc, log, "the baseline client")
                return gw.feed.tick_by_tick_count() >= 2

            await until(ok, READY_TIMEOUT_S, "tick-by-tick subscriptions of the baseline client")

        return await measure("baseline: bare ib_async", spawn, ready, BASELINE_ID, args)


def front_con_id() -> int:
    return contracts.listed_futures(T0)[0].con_id


async def baseline_client(port: int, con_id: int) -> None:
    """Subscribe AllLast + BidAsk; placeOrder on a trade of ARM contracts, cancel on DISARM."""
    asyncio.set_event_loop(asyncio.get_running_loop())  # aeventkit schedules on this loop
    ib = IB()
    await ib.connectAsync(HOST, port, clientId=BASELINE_ID, timeout=10)
    [contract] = await ib.qualifyContractsAsync(Contract(conId=con_id, exchange="CME"))
    if not isinstance(contract, Contract):
        raise RuntimeError(f"conId {con_id}: the gateway gave no unique contract ({contract})")
    working: list[Trade] = []
    wrapper = ib.wrapper
    original = wrapper.tickByTickAllLast

    def all_last(
        reqId: int,
        tickType: int,
        tick_time: int,
        price: float,
        size: float,
        attrib: Any,
        exchange: str,
        specialConditions: str,
    ) -> None:
        # The order goes out from the decoder's callback for this very message: the earliest
        # point a client sees the trade (the daemon taps the same call).
        if size == ARM:
            working.append(ib.placeOrder(contract, LimitOrder("BUY", 1, price - 8 * TICK)))
        elif size == DISARM:
            for trade in working:
                ib.cancelOrder(trade.order)
            working.clear()
        original(reqId, tickType, tick_time, price, size, attrib, exchange, specialConditions)

    # A tap, as the daemon's MarketData does; mypy cannot type a replaced method.
    wrapper.tickByTickAllLast = all_last  # type: ignore[method-assign,assignment]
    ib.reqTickByTickData(contract, "AllLast")
    ib.reqTickByTickData(contract, "BidAsk")  # decode the same stream as the daemon
    await asyncio.Event().wait()  # until SIGTERM


# --- report ---


@dataclass(slots=True)
class Machine:
    platform: str
    cpus: int | None
    python: str
    load: list[float] = field(default_factory=list)


def _ms(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.2f}"


def _pct(share: float | None) -> str:
    return "n/a" if share is None else f"{share * 100:.0f}%"


def render(machine: Machine, runs: list[Run], args: argparse.Namespace) -> str:
    load = " -> ".join(f"{x:.2f}" for x in machine.load) or "n/a"
    lines = [
        "tick-to-order latency: trigger trade applied in ibsim -> its first placeOrder "
        "processed by ibsim (loopback)",
        f"machine: {machine.platform}, {machine.cpus} CPUs, {machine.python}, "
        f"load avg (1 min) {load}",
        f"{args.cycles} cycles (+{args.warmup_cycles} warm-up) every {args.period:g} s per run; "
        f"background feed {args.rate:,.0f} msg/s offered (9 quotes : 1 trade); daemon journal "
        f"on {filesystem(Path(tempfile.gettempdir()))}",
        "",
        f"{'run':<28}{'wire msg/s':>11}{'p50':>7}{'p90':>7}{'p99':>7}{'max':>7}"
        f"{'no order':>9}{'client':>8}{'ibsim':>7}{'others':>8}",
    ]
    for r in runs:
        lines.append(
            f"{r.name:<28}{r.wire_rate:>11,.0f}{_ms(r.stat_ms(50)):>7}{_ms(r.stat_ms(90)):>7}"
            f"{_ms(r.stat_ms(99)):>7}{_ms(r.stat_ms(100)):>7}{r.missing:>9}"
            f"{_pct(r.client_cpu):>8}{_pct(r.gateway_cpu):>7}{_cores(r.others_cpu):>8}"
        )
    lines += [
        "latencies in ms; wire: messages/s the gateway sent that client; client, ibsim: CPU in "
        "% of a core; others: cores used by every other process",
        "",
    ]
    base = runs[0]
    for r in runs[1:]:
        diffs = []
        for q in (50, 90, 99):
            a, b = r.stat_ms(q), base.stat_ms(q)
            diffs.append("n/a" if a is None or b is None else f"{a - b:+.2f}")
        bracket = ""
        if r.bracket:
            b50, b99 = (percentile(r.bracket, q) * 1000 for q in (50, 99))
            bracket = f"; whole bracket (3rd placeOrder) p50 {b50:.2f}, p99 {b99:.2f}"
        lines.append(
            f"{r.name} - baseline: p50 {diffs[0]}, p90 {diffs[1]}, p99 {diffs[2]} ms{bracket}"
        )
    lines.append("")
    for r in runs[1:]:
        p99 = r.stat_ms(99)
        verdict = "n/a" if p99 is None else ("met" if p99 <= TARGET_P99_MS else "NOT met")
        lines.append(f"target p99 <= {TARGET_P99_MS:g} ms, {r.name}: {verdict} ({_ms(p99)} ms)")
    for r in runs:
        if r.missing:
            lines.append(f"WARNING: {r.name}: {r.missing} trigger(s) got no order")
        if r.leftovers:
            lines.append(
                f"note: {r.name}: {r.leftovers} cycle(s) began with the previous entry still "
                "working at the gateway (a strategy already long by its working entry sends none)"
            )
        if r.wire_rate < 0.95 * args.rate:
            lines.append(
                f"note: {r.name}: the feed reached {r.wire_rate:,.0f} of {args.rate:,.0f} "
                "msg/s (the gateway's loop could not keep the pace)"
            )
        if r.others_cpu is not None and r.others_cpu >= OTHERS_NOTE:
            lines.append(
                f"note: {r.name}: other processes used {r.others_cpu:.2f} cores meanwhile; "
                "compare with the baseline, not across runs"
            )
        lines += [f"note: {r.name}: {n}" for n in r.notes]
    return "\n".join(lines)


def figures(runs: list[Run]) -> dict[str, Any]:
    """Each run's latencies in ms and what explains them, as plain data (`--json`)."""
    out: dict[str, Any] = {"target_p99_ms": TARGET_P99_MS, "runs": []}
    for r in runs:
        bracket = [percentile(r.bracket, q) * 1000 for q in (50, 99)] if r.bracket else None
        out["runs"].append(
            {
                "name": r.name,
                "cycles": len(r.latencies),
                "p50_ms": r.stat_ms(50),
                "p90_ms": r.stat_ms(90),
                "p99_ms": r.stat_ms(99),
                "max_ms": r.stat_ms(100),
                "no_order": r.missing,
                "leftovers": r.leftovers,
                "bracket_p50_ms": None if bracket is None else bracket[0],
                "bracket_p99_ms": None if bracket is None else bracket[1],
                "wire_msg_per_s": r.wire_rate,
                "client_cpu": r.client_cpu,
                "ibsim_cpu": r.gateway_cpu,
                "others_cpu": r.others_cpu,
                "notes": r.notes,
            }
        )
    return out


def _cores(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.2f}"


def _loadavg() -> float | None:
    with contextlib.suppress(OSError):
        return os.getloadavg()[0]
    return None


async def run_all(args: argparse.Namespace) -> tuple[list[Run], list[float]]:
    asyncio.set_event_loop(asyncio.get_running_loop())
    loads = [x for x in (_loadavg(),) if x is not None]
    runs: list[Run] = []
    total = args.cycles + args.warmup_cycles
    progress(f"baseline: bare ib_async client, {total} cycles ...")
    runs.append(await baseline_run(args))
    for sync in ("normal", "full"):
        progress(f"daemon, journal_sync={sync}, {total} cycles ...")
        runs.append(await daemon_run(sync, args))
    loads += [x for x in (_loadavg(),) if x is not None]
    return runs, loads


@contextlib.contextmanager
def _quiet_ibsim_logs() -> Iterator[None]:
    import logging

    logger = logging.getLogger("ibsim")
    level = logger.level
    logger.setLevel(logging.WARNING)
    try:
        yield
    finally:
        logger.setLevel(level)


def _run(coro: Any) -> Any:
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is a dependency on Linux
        factory = None
    else:
        factory = uvloop.new_event_loop
    with asyncio.Runner(loop_factory=factory) as runner:
        return runner.run(coro)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m bench.tick_to_order",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--cycles", type=int, default=200, help="measured cycles per run (200)")
    p.add_argument("--warmup-cycles", type=int, default=3, help="unmeasured cycles first (3)")
    p.add_argument("--period", type=float, default=0.25, help="seconds per cycle (0.25)")
    p.add_argument("--rate", type=float, default=5000.0, help="background msg/s (5000)")
    p.add_argument("--json", action="store_true", help="print the figures as JSON instead")
    p.add_argument("--baseline-client", type=int, metavar="PORT", help=argparse.SUPPRESS)
    p.add_argument("--con-id", type=int, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.baseline_client is not None:
        if args.con_id is None:
            p.error("--baseline-client needs --con-id")
        _run(baseline_client(args.baseline_client, args.con_id))
        return 0
    if args.cycles < 1:
        p.error(f"--cycles must be at least 1, got {args.cycles}")
    if args.warmup_cycles < 0:
        p.error(f"--warmup-cycles must be >= 0, got {args.warmup_cycles}")
    if args.period < 0.02:
        p.error(f"--period must be at least 0.02 s, got {args.period}")
    if not 0 <= args.rate <= 50_000:
        p.error(f"--rate must be in [0, 50000] msg/s, got {args.rate}")
    machine = Machine(
        platform=platform.platform(),
        cpus=os.cpu_count(),
        python=f"Python {platform.python_version()}",
    )
    with _quiet_ibsim_logs():
        runs, machine.load = _run(run_all(args))
    print(json.dumps(figures(runs), indent=2) if args.json else render(machine, runs, args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
