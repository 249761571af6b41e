"""End-to-end tick throughput: the whole daemon against a bare ib_async client, same ibsim stream.

    python -m bench.e2e_throughput [--pairs 3] [--seconds 10] [--warmup 3] [--json]

Each run starts a fresh gateway process (`python -m ibsim --speed 0`: the unpaced synthetic
market of `bench.ibsim_throughput`, seed 1 from Friday 2026-11-20 08:30 CT) and one consumer
in its own process, subscribed to tick-by-tick AllLast + BidAsk on the front month:

- daemon: `python -m daemon run` with trading disabled and default data settings (tick-by-tick
  AllLast + BidAsk, plus the reqMktData volume check it always adds, and a backfill at start);
- bare: an ib_async `IB` (this module with `--bare-client`, uvloop like the daemon):
  `connectAsync`, the same two `reqTickByTickData`, ticks counted on `ticker.updateEvent`.

Why an unpaced gateway: the gateway writes as fast as the consumer reads and pauses its market
when a client's write buffer passes 8 MiB (backpressure), so nothing is dropped and the rate a
consumer reaches is the most it can sustain, as long as the gateway is not the bottleneck
(`bench.ibsim_throughput` shows ibsim offers more than an ib_async client can decode; here the
gateway's CPU share is printed and a run where it, not the consumer, was saturated is flagged).
A paced ramp would need a "keeps up" criterion (queues that do not grow), several steps per
consumer, and a source whose rate is the synthetic market's bursts times the speed, never a
steady rate. "The same stream": every run restarts the gateway, so both consumers get the
identical event sequence from its first event; only how fast they take it differs.

Counting: each consumer reports its own count with its own monotonic clock, both taken at
the same instant in its loop, and the rate is count over that clock, so it does not matter
when the benchmark reads it. The daemon: the next `status.json` written after each edge of
the window (`ticks_total`, `trades_total`, `uptime_s`; written once a second when its loop is
free). The bare client: it answers a line on its stdin with its count. The control socket
(`orderflowd status`) would do for the daemon too, but its reply takes several loop turns,
and under a firehose one turn of the daemon's loop lasts seconds (see the lag column). The
daemon's `ticks_total` also counts one volume sample per socket read that carried one (a few
a second): negligible.

Runs alternate (bare, daemon, bare, daemon, ...) so that drift in the machine's load hits
both. Caveat: at this rate the market clock runs about 10,000 times faster than the wall
clock (the synthetic market averages ~10 events a second), so bars close and sessions change
far more often than live; the work per tick is the same. Figures are printed, never asserted;
only the ratio within one run means anything on a shared machine. Loopback only; every child
process is stopped when its run ends (SIGTERM, then SIGKILL), also on errors and Ctrl-C.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import IO, Any

from ib_async import IB
from ib_async.objects import TickByTickAllLast
from ib_async.ticker import Ticker

from bench.ibsim_throughput import (
    BUSY_SHARE,
    HOST,
    _die_with_parent,
    default_loop,
    front_month,
    gateway_process,
    ib_contract,
    loop_factory,
    machine_cpu,
    process_cpu,
    progress,
)
from daemon.runtime.status import STATUS_FILE

ROOT = Path(__file__).resolve().parent.parent
DAEMON_ID, BARE_ID = 11, 12
TARGET_RATIO = 0.85  # daemon ticks/s over bare ib_async ticks/s (the target)
READY_TIMEOUT_S = 60.0  # consumer connected, subscribed, ticks flowing (daemon: warmed up)
SAMPLE_TIMEOUT_S = 60.0  # a saturated loop answers late; the answer carries its own clock
STOP_TIMEOUT_S = 20.0
OTHERS_NOTE = 0.25  # cores used by other processes worth a note


# --- one sample, one run ---


@dataclass(frozen=True, slots=True)
class Sample:
    """A consumer's own count and clock at one instant, plus what the daemon adds."""

    clock: float  # the consumer's monotonic seconds (any origin)
    ticks: int
    trades: int
    warming_up: bool = False
    loop_lag_s: float = 0.0
    health: str | None = None


def sample_from_status(doc: dict[str, Any]) -> Sample:
    """A `Sample` from the daemon's status reply; ValueError naming a missing or odd field."""
    try:
        return Sample(
            clock=float(doc["uptime_s"]),
            ticks=int(doc["ticks_total"]),
            trades=int(doc["trades_total"]),
            warming_up=bool(doc.get("warming_up")),
            loop_lag_s=float(doc.get("loop_lag_s") or 0.0),
            health=doc.get("data_health"),
        )
    except KeyError as exc:
        raise ValueError(f"daemon status lacks {exc.args[0]!r}") from None
    except (TypeError, ValueError) as exc:
        raise ValueError(f"daemon status has an unreadable count or clock: {exc}") from None


def sample_from_line(line: str) -> Sample:
    """A `Sample` from one line of the bare client; ValueError naming what is wrong."""
    try:
        doc = json.loads(line)
        return Sample(clock=float(doc["t"]), ticks=int(doc["ticks"]), trades=int(doc["trades"]))
    except json.JSONDecodeError:
        raise ValueError(f"bare client answered {line[:80]!r}, not JSON") from None
    except KeyError as exc:
        raise ValueError(f"bare client sample lacks {exc.args[0]!r}") from None
    except (TypeError, ValueError) as exc:
        raise ValueError(f"bare client sample is unreadable: {exc}") from None


@dataclass(slots=True)
class Run:
    """One consumer over one window: its rate, and CPU shares in cores over the window."""

    consumer: str  # "bare" | "daemon"
    seconds: float  # on the consumer's clock
    ticks: int
    trades: int
    consumer_cpu: float | None
    gateway_cpu: float | None
    others_cpu: float | None
    steal: float | None
    loop_lag_max_s: float = 0.0  # daemon: the larger loop lag of the two samples
    notes: list[str] = field(default_factory=list)

    @property
    def rate(self) -> float:
        return self.ticks / self.seconds

    @property
    def trade_share(self) -> float:
        return self.trades / self.ticks if self.ticks else 0.0

    @property
    def per_cpu_s(self) -> float | None:
        """Ticks per CPU-second of the consumer: discounts time other processes took."""
        if not self.consumer_cpu:
            return None
        return self.ticks / (self.consumer_cpu * self.seconds)

    @property
    def gateway_limited(self) -> bool:
        """The gateway, not the consumer, was the saturated side."""
        gw, own = self.gateway_cpu, self.consumer_cpu
        return gw is not None and own is not None and gw >= BUSY_SHARE > own


def window_run(consumer: str, first: Sample, last: Sample, usage: Usage) -> Run:
    """The run between two samples of one consumer; ValueError if they do not make a window."""
    seconds = last.clock - first.clock
    ticks = last.ticks - first.ticks
    if seconds <= 0 or ticks < 0:
        raise ValueError(
            f"{consumer}: samples do not make a window ({seconds:.3f} s, {ticks} ticks)"
        )
    run = Run(
        consumer=consumer,
        seconds=seconds,
        ticks=ticks,
        trades=last.trades - first.trades,
        consumer_cpu=usage.consumer,
        gateway_cpu=usage.gateway,
        others_cpu=usage.others,
        steal=usage.steal,
        loop_lag_max_s=max(first.loop_lag_s, last.loop_lag_s),
    )
    if first.warming_up or last.warming_up:
        run.notes.append("the daemon was still warming up (backfill) in the window")
    if last.health not in (None, "OK"):
        run.notes.append(f"the daemon's data health was {last.health} at the end")
    if run.gateway_limited:
        run.notes.append("the gateway, not the consumer, was saturated")
    elif usage.consumer is not None and usage.consumer < BUSY_SHARE:
        run.notes.append(
            f"the consumer had {_pct(usage.consumer)} of a core (preempted by other load or "
            "the hypervisor): its per CPU-s figure is the steadier one"
        )
    return run


# --- CPU over a window ---


@dataclass(frozen=True, slots=True)
class Usage:
    """CPU in cores (1.0 = one core for the whole window) of the processes of one run."""

    consumer: float | None
    gateway: float | None
    others: float | None
    steal: float | None


class CpuWindow:
    """CPU seconds of the consumer, the gateway and the whole machine between two instants."""

    def __init__(self, consumer_pid: int, gateway_pid: int) -> None:
        self._pids = (consumer_pid, gateway_pid)
        self._start = self._read()

    def _read(self) -> tuple[float, float | None, float | None, tuple[float, float] | None]:
        return (
            time.monotonic(),
            process_cpu(self._pids[0]),
            process_cpu(self._pids[1]),
            machine_cpu(),
        )

    def close(self) -> Usage:
        wall1, own1, gw1, machine1 = self._read()
        wall0, own0, gw0, machine0 = self._start
        elapsed = wall1 - wall0
        own = None if own0 is None or own1 is None else (own1 - own0) / elapsed
        gw = None if gw0 is None or gw1 is None else (gw1 - gw0) / elapsed
        others = steal = None
        if machine0 is not None and machine1 is not None:
            busy = (machine1[0] - machine0[0]) / elapsed
            others = max(0.0, busy - (own or 0.0) - (gw or 0.0))
            steal = (machine1[1] - machine0[1]) / elapsed
        return Usage(consumer=own, gateway=gw, others=others, steal=steal)


# --- consumers ---


class Consumer:
    """A consumer process: spawn against a port, wait until it takes ticks, sample, stop."""

    name = ""

    def __init__(self, port: int, workdir: Path, log: IO[bytes]) -> None:
        self.port = port
        self.workdir = workdir
        self.log = log
        self.proc = self.spawn()

    def spawn(self) -> subprocess.Popen[bytes]:
        raise NotImplementedError

    def sample(self) -> Sample:
        raise NotImplementedError

    def ready(self, sample: Sample) -> bool:
        return sample.ticks > 0

    def wait_ready(self) -> None:
        deadline = time.monotonic() + READY_TIMEOUT_S
        while time.monotonic() < deadline:
            self.check_alive()
            if self.ready(self.sample()):
                return
            time.sleep(0.2)
        raise TimeoutError(
            f"{self.name}: not taking ticks after {READY_TIMEOUT_S:g} s; stderr:\n{self.tail()}"
        )

    def check_alive(self) -> None:
        if self.proc.poll() is not None:
            raise RuntimeError(
                f"{self.name} exited with {self.proc.returncode}; stderr:\n{self.tail()}"
            )

    def tail(self) -> str:
        self.log.flush()
        self.log.seek(0)
        return self.log.read().decode(errors="replace")[-3000:]

    def stop(self) -> None:
        stop_process(self.proc)


def stop_process(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM, then SIGKILL after STOP_TIMEOUT_S."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    for stream in (proc.stdin, proc.stdout):
        if stream is not None:
            with contextlib.suppress(OSError):
                stream.close()


def _child(cmd: list[str], log: IO[bytes], *, pipes: bool = False) -> subprocess.Popen[bytes]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.Popen(
        cmd,
        cwd=ROOT,
        env=env,
        stdin=subprocess.PIPE if pipes else subprocess.DEVNULL,
        stdout=subprocess.PIPE if pipes else subprocess.DEVNULL,
        stderr=log,
        preexec_fn=_die_with_parent,
    )


def daemon_config(directory: Path, port: int) -> Path:
    """Trading off (the default), default data settings but no backfill, no metrics port.

    The backfill is a start-up step, not the steady state measured here, and under a firehose
    its history replies queue behind megabytes of ticks: it would hold live ticks for minutes.
    """
    config = directory / "e2e.toml"
    config.write_text(
        f"""
[ib]
port = {port}
client_id = {DAEMON_ID}
connect_timeout = 5.0
[data]
backfill = false
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


class DaemonConsumer(Consumer):
    name = "daemon"

    def spawn(self) -> subprocess.Popen[bytes]:
        config = daemon_config(self.workdir, self.port)
        return _child([sys.executable, "-m", "daemon", "run", "--config", str(config)], self.log)

    def sample(self) -> Sample:
        """The first status.json the daemon writes after this call."""
        path = self.workdir / "state" / STATUS_FILE
        called = time.time_ns()
        deadline = time.monotonic() + SAMPLE_TIMEOUT_S
        while time.monotonic() < deadline:
            self.check_alive()
            with contextlib.suppress(OSError, ValueError):  # not written yet
                if path.stat().st_mtime_ns >= called:
                    return sample_from_status(json.loads(path.read_text()))
            time.sleep(0.02)
        raise TimeoutError(f"daemon: no new {STATUS_FILE} within {SAMPLE_TIMEOUT_S:g} s")

    def ready(self, sample: Sample) -> bool:
        return sample.ticks > 0 and not sample.warming_up


class BareConsumer(Consumer):
    name = "bare ib_async"

    def spawn(self) -> subprocess.Popen[bytes]:
        cmd = [sys.executable, "-m", "bench.e2e_throughput", "--bare-client", str(self.port)]
        return _child(cmd, self.log, pipes=True)

    def sample(self) -> Sample:
        proc = self.proc
        assert proc.stdin is not None
        assert proc.stdout is not None
        proc.stdin.write(b"\n")
        proc.stdin.flush()
        line = proc.stdout.readline()
        if not line:
            self.check_alive()
            raise RuntimeError(f"bare client closed its stdout; stderr:\n{self.tail()}")
        return sample_from_line(line.decode())


class CountingHandler:
    """The bare client's handler: tick-by-tick ticks (and trades among them) per update."""

    def __init__(self) -> None:
        self.ticks = 0
        self.trades = 0

    def on_update(self, ticker: Ticker) -> None:
        ticks = ticker.tickByTicks
        self.ticks += len(ticks)
        for tick in ticks:
            if type(tick) is TickByTickAllLast:
                self.trades += 1


async def bare_client(port: int) -> None:
    """Connect, subscribe AllLast + BidAsk, count; answer each stdin line with a sample."""
    loop = asyncio.get_running_loop()
    asyncio.set_event_loop(loop)  # aeventkit schedules on the policy's loop
    ib = IB()
    await ib.connectAsync(HOST, port, clientId=BARE_ID, timeout=10)
    contract = ib_contract(front_month())
    counter = CountingHandler()
    tickers = [ib.reqTickByTickData(contract, "AllLast"), ib.reqTickByTickData(contract, "BidAsk")]
    for ticker in {id(t): t for t in tickers}.values():  # both streams share one Ticker
        ticker.updateEvent += counter.on_update
    closed = asyncio.Event()
    stdin, stdout = sys.stdin.buffer, sys.stdout

    def answer() -> None:
        if not stdin.readline():
            loop.remove_reader(stdin.fileno())
            closed.set()
            return
        doc = {"t": time.monotonic(), "ticks": counter.ticks, "trades": counter.trades}
        stdout.write(json.dumps(doc) + "\n")
        stdout.flush()

    loop.add_reader(stdin.fileno(), answer)
    stop = asyncio.Event()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    waiters = {asyncio.ensure_future(closed.wait()), asyncio.ensure_future(stop.wait())}
    await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
    for waiter in waiters:
        waiter.cancel()
    ib.disconnect()


# --- one measured run ---


def measure(kind: str, seconds: float, warmup: float) -> Run:
    """A fresh gateway, one consumer of `kind` ("bare" | "daemon"), one window."""
    cls: type[Consumer] = DaemonConsumer if kind == "daemon" else BareConsumer
    with (
        tempfile.TemporaryDirectory(prefix="ofd-e2e-") as tmp,
        tempfile.TemporaryFile() as log,
        gateway_process() as gw,
    ):
        consumer = cls(gw.port, Path(tmp), log)
        try:
            consumer.wait_ready()
            time.sleep(warmup)
            first = consumer.sample()
            cpu = CpuWindow(consumer.proc.pid, gw.proc.pid)
            time.sleep(seconds)
            last = consumer.sample()
            usage = cpu.close()
            consumer.check_alive()
        finally:
            # The gateway first: a consumer whose socket is closed stops at once, one that is
            # still flooded may take many seconds (see the report's notes).
            gw.proc.terminate()
            consumer.stop()
    return window_run(kind, first, last, usage)


# --- the whole comparison ---


@dataclass(slots=True)
class Machine:
    platform: str
    cpus: int | None
    python: str
    loop: str
    load: list[float] = field(default_factory=list)


@dataclass(slots=True)
class Report:
    machine: Machine
    seconds: float
    warmup: float
    runs: list[Run]

    def of(self, kind: str) -> list[Run]:
        return [r for r in self.runs if r.consumer == kind]

    def mean_rate(self, kind: str) -> float:
        return statistics.fmean(r.rate for r in self.of(kind))

    def mean_per_cpu_s(self, kind: str) -> float | None:
        values = [r.per_cpu_s for r in self.of(kind)]
        known = [v for v in values if v is not None]
        return statistics.fmean(known) if known and len(known) == len(values) else None

    @property
    def ratio(self) -> float:
        return self.mean_rate("daemon") / self.mean_rate("bare")

    @property
    def ratio_per_cpu_s(self) -> float | None:
        d, b = self.mean_per_cpu_s("daemon"), self.mean_per_cpu_s("bare")
        return None if d is None or not b else d / b

    @property
    def pair_ratios(self) -> list[float]:
        return [d.rate / b.rate for b, d in zip(self.of("bare"), self.of("daemon"), strict=False)]

    def figures(self) -> dict[str, Any]:
        return {
            "bare_ticks_per_s": self.mean_rate("bare"),
            "daemon_ticks_per_s": self.mean_rate("daemon"),
            "ratio": self.ratio,
            "pair_ratios": self.pair_ratios,
            "ratio_per_cpu_s": self.ratio_per_cpu_s,
            "target_ratio": TARGET_RATIO,
        }

    def as_json(self) -> dict[str, Any]:
        data = asdict(self)
        for row, run in zip(data["runs"], self.runs, strict=True):
            row.update(ticks_per_s=run.rate, per_cpu_s=run.per_cpu_s, trade_share=run.trade_share)
        data["figures"] = self.figures()
        return data


def _pct(share: float | None) -> str:
    return "n/a" if share is None else f"{share * 100:.0f}%"


def render(r: Report) -> str:
    m = r.machine
    load = " -> ".join(f"{x:.2f}" for x in m.load) or "n/a"
    lines = [
        "end-to-end throughput: unpaced ibsim (synthetic, seed 1, backpressure at 8 MiB) -> "
        "one consumer, tick-by-tick AllLast + BidAsk",
        f"machine: {m.platform}, {m.cpus} CPUs, {m.python}, consumer loop {m.loop}, "
        f"load avg (1 min) {load}",
        f"{len(r.runs)} runs alternating bare / daemon, each {r.seconds:g} s after {r.warmup:g} s "
        "warm-up on a fresh gateway",
        "",
        f"{'run':<18}{'ticks/s':>10}{'trades':>8}{'per CPU-s':>11}{'consumer':>10}{'ibsim':>7}"
        f"{'others':>8}{'lag':>7}",
    ]
    for i, run in enumerate(r.runs, 1):
        per_cpu = "n/a" if run.per_cpu_s is None else f"{run.per_cpu_s:,.0f}"
        others = "n/a" if run.others_cpu is None else f"{run.others_cpu:.2f}"
        lag = f"{run.loop_lag_max_s:.1f}s" if run.consumer == "daemon" else ""
        lines.append(
            f"{f'{i}. {run.consumer}':<18}{run.rate:>10,.0f}{run.trade_share:>8.1%}{per_cpu:>11}"
            f"{_pct(run.consumer_cpu):>10}{_pct(run.gateway_cpu):>7}{others:>8}{lag:>7}"
        )
    per_cpu_ratio = r.ratio_per_cpu_s
    verdict = "met" if r.ratio >= TARGET_RATIO else "NOT met"
    pairs = ", ".join(f"{x:.2f}" for x in r.pair_ratios)
    lines += [
        "trades: share of ticks that were trades (the same stream gives the same share); "
        "consumer, ibsim: CPU in % of a core; others: cores used by every other process; "
        "lag: the daemon's own loop-lag probe",
        "",
        f"bare ib_async {r.mean_rate('bare'):,.0f} ticks/s, daemon {r.mean_rate('daemon'):,.0f} "
        f"ticks/s: ratio {r.ratio:.2f} (pairs {pairs})"
        + ("" if per_cpu_ratio is None else f"; per consumer CPU-second {per_cpu_ratio:.2f}"),
        f"target: daemon / bare >= {TARGET_RATIO}: {verdict}",
    ]
    for i, run in enumerate(r.runs, 1):
        lines += [f"note: run {i} ({run.consumer}): {n}" for n in run.notes]
        if run.steal is not None and run.steal >= 0.01:
            lines.append(f"note: run {i} ({run.consumer}): the hypervisor stole {_pct(run.steal)}")
    busy = [run.others_cpu for run in r.runs if run.others_cpu is not None]
    if busy and max(busy) >= OTHERS_NOTE:
        lines.append(
            f"note: other processes used up to {max(busy):.2f} cores during the windows; "
            "compare the ratio, not the absolute figures"
        )
    return "\n".join(lines)


def _loadavg() -> list[float]:
    with contextlib.suppress(OSError):
        return [os.getloadavg()[0]]
    return []


def run(pairs: int, seconds: float, warmup: float) -> Report:
    machine = Machine(
        platform=platform.platform(),
        cpus=os.cpu_count(),
        python=f"Python {platform.python_version()}",
        loop=default_loop(),
        load=_loadavg(),
    )
    runs = []
    for i in range(pairs):
        for kind in ("bare", "daemon"):
            progress(f"pair {i + 1}/{pairs}: {kind}, {warmup:g} s warm-up + {seconds:g} s ...")
            runs.append(measure(kind, seconds, warmup))
    machine.load += _loadavg()
    return Report(machine, seconds, warmup, runs)


def _run_bare_client(port: int) -> None:
    with asyncio.Runner(loop_factory=loop_factory(default_loop())) as runner:
        runner.run(bare_client(port))


@contextlib.contextmanager
def _no_sigpipe_noise() -> Iterator[None]:
    """A consumer killed mid-sample must not take the benchmark down with SIGPIPE."""
    previous: Callable[..., Any] | int | None = signal.getsignal(signal.SIGPIPE)
    signal.signal(signal.SIGPIPE, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGPIPE, previous or signal.SIG_DFL)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m bench.e2e_throughput",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--pairs", type=int, default=3, help="bare + daemon run pairs (default 3)")
    p.add_argument("--seconds", type=float, default=10.0, help="measured seconds (default 10)")
    p.add_argument("--warmup", type=float, default=3.0, help="warm-up seconds (default 3)")
    p.add_argument("--json", action="store_true", help="print JSON instead of the table")
    p.add_argument("--bare-client", type=int, metavar="PORT", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.bare_client is not None:
        _run_bare_client(args.bare_client)
        return 0
    if args.pairs < 1:
        p.error(f"--pairs must be at least 1, got {args.pairs}")
    if args.seconds <= 0 or args.warmup < 0:
        p.error("--seconds must be > 0 and --warmup >= 0")
    with _no_sigpipe_noise():
        report = run(args.pairs, args.seconds, args.warmup)
    print(json.dumps(report.as_json(), indent=2) if args.json else render(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
