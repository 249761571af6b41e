"""Soak: the daemon trading a multi-day replay at high speed through periodic gateway restarts.

    python -m bench.soak [--sessions 5] [--speed 600] [--restart-every 60] [--warmup 60]
                         [--sample 1.0] [--json]

ibsim (its own process) replays the first session of the real ES trades file as ``--sessions``
consecutive CME sessions at ``--speed`` market seconds per wall second and restarts itself
(every client dropped, port closed ``--down`` s) every ``--restart-every`` s from a scenario
file. The full daemon (``python -m daemon run --config config/soak.toml``: trading on, the
default strategy tuned like the demo) runs against it until the replay ends. Every
``--sample`` s the daemon's /proc/<pid> (RSS, open descriptors, CPU), its status.json (state,
reconnects, asyncio tasks, loop-lag histogram) and /proc/stat (CPU the hypervisor stole) are
sampled. A baseline process runs the daemon's lag probe on an otherwise idle uvloop loop
meanwhile: the lag the machine alone causes.

Printed: a table over time, then a verdict per bound of the issue (RSS growth after warm-up
≤ 5 MB, no descriptor or task growth, loop lag p99 ≤ 10 ms, every gateway restart recovered),
comparing READY samples just after warm-up with READY samples at the end. Exit status 1 when
a bound is not met (a soak check, not a unit test), 3 when the lag bound could not be judged
because the baseline probe alone exceeded it. Loopback only; children are stopped (SIGTERM,
then SIGKILL) and get SIGTERM if this process dies.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import math
import os
import platform
import shutil
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import IO, Any
from zoneinfo import ZoneInfo

from bench.ibsim_throughput import machine_cpu, process_cpu
from daemon.runtime.status import LoopLagHistogram, write_atomic
from daemon.runtime.supervisor import LAG_PROBE_S
from ibsim.market import load_trades_csv
from ibsim.market.replay import repeat_sessions

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "data" / "es_trades_2013-09-01_02.csv.gz"
CONFIG = ROOT / "config" / "soak.toml"
CENTRAL = ZoneInfo("America/Chicago")
DAEMON_ID = 11
RSS_BOUND_MB = 5.0
LAG_BOUND_MS = 10  # an edge of the daemon's loop-lag histogram
LAG_QUANTILE = 0.99
WINDOW_S = 60.0  # READY samples compared: the first minute after warm-up and the last minute
# The default warm-up: one market day, in which the bounded buffers fill (1,000 one-minute
# bars are 16.7 hours) and every kind of event (session change, restart, backfill) happened once.
SESSION_S = 86400.0
TAIL_S = 10.0  # sampling goes on this long after the replay's last trade
STOP_TIMEOUT_S = 20.0
EX_INCONCLUSIVE = 3


def rss_mb(pid: int) -> float | None:
    try:
        pages = int(Path(f"/proc/{pid}/statm").read_text().split()[1])
    except (OSError, IndexError, ValueError):
        return None
    return pages * os.sysconf("SC_PAGE_SIZE") / 2**20


def open_fds(pid: int) -> int | None:
    try:
        return len(os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        return None


def rss_split_mb(pid: int) -> tuple[float, float] | None:
    """(anonymous, file-backed) resident memory from /proc/<pid>/status."""
    fields: dict[str, float] = {}
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            name, _, value = line.partition(":")
            if name in ("RssAnon", "RssFile"):
                fields[name] = int(value.split()[0]) / 1024
    except (OSError, ValueError, IndexError):
        return None
    if len(fields) != 2:
        return None
    return fields["RssAnon"], fields["RssFile"]


def read_json(path: Path) -> dict[str, Any]:
    try:
        doc: dict[str, Any] = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return {}
    return doc


@dataclass(slots=True)
class Sample:
    """One look at the daemon at wall time `t` (seconds since the gateway started)."""

    t: float
    rss_mb: float | None
    rss_split: tuple[float, float] | None  # (anonymous, file-backed) MB
    fds: int | None
    cpu_s: float | None  # the daemon's CPU seconds so far
    machine: tuple[float, float] | None  # (busy, stolen) core-seconds since boot
    baseline_lag: dict[str, Any] | None  # the baseline probe's histogram (cumulative)
    state: str | None = None
    state_since: float | None = None  # epoch of the daemon's last connection-state change
    reconnects: int = 0
    tasks: int | None = None
    python_blocks: int | None = None  # live blocks of Python's allocator
    lag: dict[str, Any] | None = None  # the daemon's loop-lag histogram (cumulative)
    trades: int = 0
    session_volume: float | None = None
    trading: str | None = None

    @classmethod
    def take(cls, t: float, pid: int, status: dict[str, Any], baseline: dict[str, Any]) -> Sample:
        s = cls(
            t,
            rss_mb(pid),
            rss_split_mb(pid),
            open_fds(pid),
            process_cpu(pid),
            machine_cpu(),
            baseline.get("loop_lag"),
        )
        if status:
            s.state = status.get("state")
            with contextlib.suppress(KeyError, TypeError, ValueError):
                s.state_since = datetime.fromisoformat(status["since"]).timestamp()
            s.reconnects = int(status.get("reconnect_count") or 0)
            process = status.get("process") or {}
            s.tasks = process.get("tasks")
            s.python_blocks = process.get("python_blocks")
            s.lag = process.get("loop_lag")
            s.trades = int(status.get("trades_total") or 0)
            s.session_volume = status.get("session_volume")
            s.trading = (status.get("trading") or {}).get("state")
        return s


# --- figures from samples (pure) ---------------------------------------------------------------


def lag_period(before: dict[str, Any] | None, after: dict[str, Any] | None) -> dict[str, Any]:
    """Probes between two histogram snapshots: how many, how many above the bound, the p99 edge
    (nearest rank; inf when above every edge)."""
    if after is None:
        return {"probes": 0, "above_bound": 0, "p99_le_ms": None}
    b_le = before["le_ms"] if before else {}
    probes = after["probes"] - (before["probes"] if before else 0)
    le = {float(k): v - b_le.get(k, 0) for k, v in after["le_ms"].items()}
    need = math.ceil(LAG_QUANTILE * probes)
    p99 = next((edge for edge, n in sorted(le.items()) if n >= need), math.inf)
    return {
        "probes": probes,
        "above_bound": probes - le.get(float(LAG_BOUND_MS), 0),
        "p99_le_ms": None if probes == 0 else p99,
    }


def lag_met(period: dict[str, Any]) -> bool:
    return bool(period["probes"]) and period["above_bound"] <= period["probes"] * (1 - LAG_QUANTILE)


def last_with(samples: Sequence[Sample], until: float, name: str) -> dict[str, Any] | None:
    """The latest histogram `name` ("lag" or "baseline_lag") sampled at or before `until`."""
    for s in reversed(samples):
        value: dict[str, Any] | None = getattr(s, name)
        if s.t <= until and value is not None:
            return value
    return None


def ready(samples: Sequence[Sample], start: float, end: float) -> list[Sample]:
    return [s for s in samples if start <= s.t < end and s.state == "READY"]


def mode(values: Sequence[float]) -> float:
    return Counter(values).most_common(1)[0][0]


def slope_per_hour(points: Sequence[tuple[float, float]]) -> float | None:
    """Least-squares slope of (seconds, value) points, per hour."""
    if len(points) < 2:
        return None
    mean_t = statistics.fmean(t for t, _ in points)
    mean_v = statistics.fmean(v for _, v in points)
    var = sum((t - mean_t) ** 2 for t, _ in points)
    if var == 0:
        return None
    return sum((t - mean_t) * (v - mean_v) for t, v in points) / var * 3600


def steal_cores(a: Sample, b: Sample) -> float | None:
    if a.machine is None or b.machine is None or b.t <= a.t:
        return None
    return (b.machine[1] - a.machine[1]) / (b.t - a.t)


@dataclass
class Restart:
    at: float  # wall seconds after the gateway started when it closed its port
    reopened: float  # ... when it listened again
    recovered: bool = False
    to_ready_s: float | None = None  # reopen -> the daemon READY again (its own timestamp)


def recoveries(
    samples: Sequence[Sample], restarts: list[Restart], epoch0: float, end: float
) -> None:
    """A restart is recovered when the daemon is READY on a new connection before the next one."""
    for i, r in enumerate(restarts):
        nxt = restarts[i + 1].at if i + 1 < len(restarts) else end
        before = [s.reconnects for s in samples if s.t <= r.at]
        base = before[-1] if before else 0
        for s in samples:
            if r.at < s.t <= nxt and s.state == "READY" and s.reconnects > base:
                r.recovered = True
                if s.state_since is not None:
                    r.to_ready_s = s.state_since - (epoch0 + r.reopened)
                break


def sessions_seen(samples: Sequence[Sample]) -> int:
    """Sessions the daemon's features counted: one, plus each reset of the session volume."""
    volumes = [s.session_volume for s in samples if s.session_volume is not None]
    if not volumes:
        return 0
    return 1 + sum(1 for a, b in itertools.pairwise(volumes) if b < a / 2)


# --- processes ----------------------------------------------------------------------------------


def _die_with_parent() -> None:
    """In the child before exec: SIGTERM it if the soak dies without stopping it."""
    if sys.platform == "linux":
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def _child(
    cmd: list[str], stdout: int | IO[bytes], stderr: int | IO[bytes]
) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, *cmd],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        stdin=subprocess.DEVNULL,
        stdout=stdout,
        stderr=stderr,
        preexec_fn=_die_with_parent,
    )


def _stop(proc: subprocess.Popen[bytes]) -> int:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    return proc.returncode


def _tail(path: Path, chars: int = 3000) -> str:
    with contextlib.suppress(OSError):
        return path.read_text(errors="replace")[-chars:]
    return ""


async def lag_probe(path: Path) -> None:
    """The baseline: the daemon's lag probe alone on a loop, its histogram written every second."""
    loop = asyncio.get_running_loop()
    histogram = LoopLagHistogram()
    written = loop.time()
    while True:
        start = loop.time()
        await asyncio.sleep(LAG_PROBE_S)
        now = loop.time()
        histogram.record(max(0.0, now - start - LAG_PROBE_S))
        if now - written >= 1.0:
            write_atomic(path, {"loop_lag": histogram.as_status()})
            written = now


def journal_counts(state_dir: Path) -> tuple[int, int]:
    """(orders, fills) in the daemon's journal so far, read-only."""
    path = state_dir / "journal.sqlite"
    if not path.exists():
        return 0, 0
    try:
        with contextlib.closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as db:
            orders = db.execute("SELECT COUNT(*) FROM orders").fetchone()[0]
            fills = db.execute("SELECT COUNT(*) FROM executions").fetchone()[0]
    except sqlite3.Error:
        return 0, 0
    return int(orders), int(fills)


# --- the run ------------------------------------------------------------------------------------


@dataclass
class Row:
    t: float
    market: str
    state: str
    rss_mb: float | None
    fds: int | None
    tasks: int | None
    python_blocks: int | None
    lag_p99_le_ms: float | None
    lag_above: int
    baseline_p99_le_ms: float | None
    steal_cores: float | None
    reconnects: int
    trades: int
    orders: int
    fills: int
    cpu_pct: float | None


@dataclass
class Run:
    args: dict[str, Any]
    machine: dict[str, Any]
    duration_s: float
    samples: list[Sample] = field(default_factory=list)
    rows: list[Row] = field(default_factory=list)
    restarts: list[Restart] = field(default_factory=list)
    daemon_exit: int | None = None
    daemon_died: bool = False
    ibsim_cpu_s: float | None = None
    load: list[float] = field(default_factory=list)
    logs: str = ""


def scenario(path: Path, every: float, down: float, duration: float) -> list[Restart]:
    """Gateway restarts every `every` s while at least `every` / 2 of the replay remains."""
    restarts = []
    at = every
    while at <= duration - every / 2:
        restarts.append(Restart(at, at + down))
        at += every
    path.write_text(
        "".join(
            f'[[fault]]\nat = {r.at:.1f}\nkind = "restart"\nseconds = {down}\n\n' for r in restarts
        )
    )
    return restarts


def market_label(start_utc: float, t: float, speed: float) -> str:
    return datetime.fromtimestamp(start_utc + t * speed, CENTRAL).strftime("%a %H:%M")


def soak(args: argparse.Namespace, work: Path) -> Run:
    replay = repeat_sessions(load_trades_csv(args.ticks), args.sessions)
    start_utc = replay[0].time_utc
    duration = (replay[-1].time_utc - start_utc) / args.speed + TAIL_S
    scenario_file = work / "scenario.toml"
    run = Run(
        args={k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
        machine={
            "platform": platform.platform(),
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
        },
        duration_s=duration,
        restarts=scenario(scenario_file, args.restart_every, args.down, duration),
    )
    state_dir, probe_file = work / "state", work / "baseline.json"
    gw_log, daemon_log = work / "ibsim.log", work / "daemon.log"
    helpers: list[subprocess.Popen[bytes]] = []  # stopped after the daemon
    daemon: subprocess.Popen[bytes] | None = None
    with gw_log.open("wb") as gw_err, daemon_log.open("wb") as d_err:
        try:
            helpers.append(
                _child(
                    ["-m", "bench.soak", "--lag-probe", str(probe_file)],
                    subprocess.DEVNULL,
                    subprocess.DEVNULL,
                )
            )
            gateway = _child(
                [
                    *("-m", "ibsim", "--port", "0", "--source", "replay"),
                    *("--ticks", str(args.ticks), "--sessions", str(args.sessions)),
                    *("--speed", str(args.speed), "--scenario", str(scenario_file)),
                ],
                subprocess.PIPE,
                gw_err,
            )
            helpers.append(gateway)
            assert gateway.stdout is not None
            port = gateway.stdout.readline().strip().decode()
            epoch0, t0 = time.time(), time.monotonic()  # the scenario's clock starts now
            if not port.isdigit():
                raise RuntimeError(f"ibsim did not start:\n{_tail(gw_log)}")
            daemon = _child(
                [
                    *("-m", "daemon", "run", "--config", str(CONFIG), "--port", port),
                    *("--client-id", str(DAEMON_ID), "--state-dir", str(state_dir)),
                    *(x for item in args.set for x in ("--set", item)),
                ],
                subprocess.DEVNULL,
                d_err,
            )
            run.load.append(os.getloadavg()[0])
            gw_cpu0 = process_cpu(gateway.pid)
            sample_loop(run, args, daemon, state_dir, probe_file, t0, start_utc)
            gw_cpu1 = process_cpu(gateway.pid)
            run.load.append(os.getloadavg()[0])
            if gw_cpu0 is not None and gw_cpu1 is not None:
                run.ibsim_cpu_s = gw_cpu1 - gw_cpu0
        finally:
            if daemon is not None:
                run.daemon_died = daemon.poll() is not None
                run.daemon_exit = _stop(daemon)
            for helper in reversed(helpers):
                _stop(helper)
    end = run.samples[-1].t if run.samples else 0.0
    recoveries(run.samples, run.restarts, epoch0, end)
    if run.daemon_died:
        run.logs = _tail(daemon_log)
    if args.keep:
        with (work / "samples.jsonl").open("w") as f:
            for s in run.samples:
                f.write(json.dumps(asdict(s)) + "\n")
    return run


def sample_loop(
    run: Run,
    args: argparse.Namespace,
    daemon: subprocess.Popen[bytes],
    state_dir: Path,
    probe_file: Path,
    t0: float,
    start_utc: float,
) -> None:
    next_row = args.table_every
    row_from: Sample | None = None
    for tick in itertools.count(1):
        time.sleep(max(0.0, t0 + tick * args.sample - time.monotonic()))
        t = time.monotonic() - t0
        if daemon.poll() is not None:
            return
        sample = Sample.take(
            t, daemon.pid, read_json(state_dir / "status.json"), read_json(probe_file)
        )
        run.samples.append(sample)
        end = t >= run.duration_s
        if t >= next_row or end:
            row = make_row(run.samples, row_from, state_dir, start_utc, args.speed)
            run.rows.append(row)
            if not args.json:
                print(format_row(row), flush=True)
            row_from = sample
            next_row += args.table_every
        if end:
            return


def make_row(
    samples: list[Sample], since: Sample | None, state_dir: Path, start_utc: float, speed: float
) -> Row:
    s = samples[-1]
    period = lag_period(since.lag if since else None, last_with(samples, s.t, "lag"))
    base = lag_period(
        since.baseline_lag if since else None, last_with(samples, s.t, "baseline_lag")
    )
    cpu = None
    if since is not None and since.cpu_s is not None and s.cpu_s is not None:
        cpu = 100 * (s.cpu_s - since.cpu_s) / max(s.t - since.t, 1e-9)
    orders, fills = journal_counts(state_dir)
    return Row(
        t=s.t,
        market=market_label(start_utc, s.t, speed),
        state=s.state or "-",
        rss_mb=s.rss_mb,
        fds=s.fds,
        tasks=s.tasks,
        python_blocks=s.python_blocks,
        lag_p99_le_ms=period["p99_le_ms"],
        lag_above=period["above_bound"],
        baseline_p99_le_ms=base["p99_le_ms"],
        steal_cores=steal_cores(since or samples[0], s),
        reconnects=s.reconnects,
        trades=s.trades,
        orders=orders,
        fills=fills,
        cpu_pct=cpu,
    )


# --- verdicts and output ------------------------------------------------------------------------


def _num(v: float | None, fmt: str) -> str:
    return "-" if v is None else format(v, fmt)


def _le(ms: float | None) -> str:
    if ms is None:
        return "-"
    return ">1000" if math.isinf(ms) else f"<={ms:g}"


HEADER = (
    f"{'wall':>6} {'market':>9} {'state':>10} {'RSS MB':>7} {'py kblk':>7} {'fds':>4} {'tasks':>5} "
    f"{'lag p99':>8} {'>10ms':>5} {'base p99':>8} {'steal':>5} {'reconn':>6} {'trades':>7} "
    f"{'orders':>6} {'fills':>5} {'CPU%':>4}"
)


def format_row(r: Row) -> str:
    kblocks = None if r.python_blocks is None else r.python_blocks / 1000
    return (
        f"{int(r.t) // 60:>3}:{int(r.t) % 60:02d} {r.market:>9} {r.state:>10} "
        f"{_num(r.rss_mb, '.1f'):>7} {_num(kblocks, '.0f'):>7} {_num(r.fds, 'd'):>4} "
        f"{_num(r.tasks, 'd'):>5} "
        f"{_le(r.lag_p99_le_ms):>8} {r.lag_above:>5} {_le(r.baseline_p99_le_ms):>8} "
        f"{_num(r.steal_cores, '.2f'):>5} {r.reconnects:>6} {r.trades:>7} {r.orders:>6} "
        f"{r.fills:>5} {_num(r.cpu_pct, '.0f'):>4}"
    )


def compare(
    first: list[Sample], last: list[Sample], after: list[Sample], pick: str, bound: float
) -> dict[str, Any]:
    """Growth of one figure between two windows of READY samples: the median for memory, the
    most common value for counts (a descriptor open for a moment must not count)."""
    a = [getattr(s, pick) for s in first if getattr(s, pick) is not None]
    b = [getattr(s, pick) for s in last if getattr(s, pick) is not None]
    if not a or not b:
        return {"met": False, "note": "no READY samples in a compared window"}
    summary = statistics.median if pick in ("rss_mb", "python_blocks") else mode
    base, final = summary(a), summary(b)
    values = [getattr(s, pick) for s in after if getattr(s, pick) is not None]
    return {
        "met": final - base <= bound,
        "baseline": base,
        "final": final,
        "growth": final - base,
        "min": min(values),
        "max": max(values),
    }


def baseline_start(warmup: float, end: float, day_s: float) -> float:
    """Start of the window compared with the last one: the same market time of day, as many
    whole days earlier as the warm-up allows (memory follows the session's phase), else the
    first window after the warm-up."""
    days = math.floor((end - WINDOW_S - warmup) / day_s)
    return end - WINDOW_S - days * day_s if days >= 1 else warmup


def verdicts(run: Run, warmup: float, day_s: float) -> dict[str, dict[str, Any]]:
    samples = run.samples
    end = samples[-1].t if samples else 0.0
    start = baseline_start(warmup, end, day_s)
    first = ready(samples, start, start + WINDOW_S)
    last = ready(samples, end - WINDOW_S, end + 1)
    after = [s for s in samples if s.t >= warmup and s.state == "READY"]
    out = {
        "rss": compare(first, last, after, "rss_mb", RSS_BOUND_MB),
        "fds": compare(first, last, after, "fds", 0),
        "tasks": compare(first, last, after, "tasks", 0),
    }
    out["python_blocks"] = compare(first, last, after, "python_blocks", math.inf)
    for name, index in (("rss_anon", 0), ("rss_file", 1)):
        a = [s.rss_split[index] for s in first if s.rss_split]
        b = [s.rss_split[index] for s in last if s.rss_split]
        out["rss"][name + "_growth"] = (
            statistics.median(b) - statistics.median(a) if a and b else None
        )
    out["rss"]["windows_s"] = [start, end - WINDOW_S]
    out["rss"]["mb_per_hour"] = slope_per_hour(
        [(s.t, s.rss_mb) for s in after if s.rss_mb is not None]
    )
    lag = lag_period(last_with(samples, warmup, "lag"), last_with(samples, end, "lag"))
    base = lag_period(
        last_with(samples, warmup, "baseline_lag"), last_with(samples, end, "baseline_lag")
    )
    final = last_with(samples, end, "lag")
    lag["max_since_start_ms"] = None if final is None else final["max_s"] * 1000
    lag["baseline"] = base
    lag["met"] = lag_met(lag)
    lag["inconclusive"] = not lag["met"] and base["probes"] > 0 and not lag_met(base)
    pairs = list(itertools.pairwise(s for s in samples if s.t >= warmup))
    stolen = [x for x in (steal_cores(a, b) for a, b in pairs) if x is not None]
    lag["steal_cores_mean"] = statistics.fmean(stolen) if stolen else None
    lag["steal_cores_max"] = max(stolen) if stolen else None
    out["lag"] = lag
    recovered = [r for r in run.restarts if r.recovered]
    times = [r.to_ready_s for r in recovered if r.to_ready_s is not None]
    out["restarts"] = {
        "met": bool(run.restarts) and len(recovered) == len(run.restarts),
        "restarts": len(run.restarts),
        "recovered": len(recovered),
        "to_ready_p50_s": statistics.median(times) if times else None,
        "to_ready_max_s": max(times) if times else None,
        "reconnects": samples[-1].reconnects if samples else 0,
    }
    out["daemon"] = {"met": not run.daemon_died, "exit": run.daemon_exit}
    return out


def render(run: Run, v: dict[str, dict[str, Any]]) -> str:
    a = run.args
    rss, lag, rs = v["rss"], v["lag"], v["restarts"]

    def verdict(name: str) -> str:
        if name == "lag" and lag["inconclusive"]:
            return "NOT judged (the machine alone exceeds it)"
        return "met" if v[name]["met"] else "NOT met"

    last = run.samples[-1] if run.samples else None
    own = [s.cpu_s for s in run.samples if s.cpu_s is not None]
    daemon_cpu = None
    if len(own) > 1 and last is not None:
        daemon_cpu = 100 * (own[-1] - own[0]) / max(last.t, 1e-9)
    ibsim_cpu = None if run.ibsim_cpu_s is None or last is None else 100 * run.ibsim_cpu_s / last.t
    others = None
    if len(run.samples) > 1 and last is not None and last.machine and run.samples[0].machine:
        first = run.samples[0]
        busy = last.machine[0] - first.machine[0] if first.machine else 0.0
        spent = (own[-1] - own[0] if len(own) > 1 else 0.0) + (run.ibsim_cpu_s or 0.0)
        others = max(0.0, (busy - spent) / max(last.t - first.t, 1e-9))
    windows = rss.get("windows_s") or [a["warmup"], 0.0]
    lines = [
        "",
        f"after warm-up ({a['warmup']:g} s): READY samples of the {WINDOW_S:g} s from "
        f"{windows[0]:.0f} s and from {windows[1]:.0f} s compared (the same market time of day "
        "when the run is long enough):",
    ]
    if "baseline" in rss:
        lines.append(
            f"  RSS growth <= {RSS_BOUND_MB:g} MB: {verdict('rss')} ({rss['baseline']:.1f} -> "
            f"{rss['final']:.1f} MB median, {rss['growth']:+.2f} MB; range {rss['min']:.1f}.."
            f"{rss['max']:.1f}; trend {_num(rss['mb_per_hour'], '+.1f')} MB/h)"
        )
        blocks = v["python_blocks"]
        if "baseline" in blocks:
            lines.append(
                f"    of it anonymous {_num(rss['rss_anon_growth'], '+.2f')} MB, file-backed "
                f"{_num(rss['rss_file_growth'], '+.2f')} MB; Python allocator blocks "
                f"{blocks['baseline'] / 1000:.0f}k -> {blocks['final'] / 1000:.0f}k "
                f"({100 * blocks['growth'] / blocks['baseline']:+.1f}%)"
            )
    else:
        lines.append(f"  RSS growth <= {RSS_BOUND_MB:g} MB: NOT met ({rss['note']})")
    for name, label in (("fds", "open descriptors"), ("tasks", "asyncio tasks")):
        f = v[name]
        if "baseline" in f:
            lines.append(
                f"  {label} growth 0: {verdict(name)} ({f['baseline']:g} -> {f['final']:g} most "
                f"common; range {f['min']:g}..{f['max']:g})"
            )
        else:
            lines.append(f"  {label} growth 0: NOT met ({f['note']})")
    base = lag["baseline"]
    lines.append(
        f"  loop lag p99 <= {LAG_BOUND_MS} ms: {verdict('lag')} (daemon p99 "
        f"{_le(lag['p99_le_ms'])} ms, {lag['above_bound']} of {lag['probes']} probes above "
        f"{LAG_BOUND_MS} ms, max since start {_num(lag['max_since_start_ms'], '.0f')} ms; "
        f"baseline probe p99 {_le(base['p99_le_ms'])} ms, {base['above_bound']} of "
        f"{base['probes']} above; hypervisor steal {_num(lag['steal_cores_mean'], '.2f')} "
        f"cores on average, {_num(lag['steal_cores_max'], '.2f')} at most)"
    )
    lines.append(
        f"  gateway restarts recovered: {verdict('restarts')} ({rs['recovered']} of "
        f"{rs['restarts']} READY again before the next; reopen -> READY p50 "
        f"{_num(rs['to_ready_p50_s'], '.2f')} s, max {_num(rs['to_ready_max_s'], '.2f')} s; "
        f"daemon reconnects {rs['reconnects']})"
    )
    if run.daemon_died:
        lines.append(f"  daemon: DIED (exit {run.daemon_exit}); its log ends:\n{run.logs}")
    lines += [
        "",
        f"sessions the daemon counted (session volume resets + 1): {sessions_seen(run.samples)} "
        f"of {a['sessions']}; trading state at the end: {last.trading if last else '-'}",
        f"load: daemon {_num(daemon_cpu, '.0f')}% of a core, ibsim {_num(ibsim_cpu, '.0f')}%, "
        f"other processes {_num(others, '.2f')} cores on average; load average "
        + " -> ".join(f"{x:.2f}" for x in run.load),
    ]
    return "\n".join(lines)


def exit_code(v: dict[str, dict[str, Any]]) -> int:
    failed = [k for k, x in v.items() if not x["met"]]
    if failed == ["lag"] and v["lag"]["inconclusive"]:
        return EX_INCONCLUSIVE
    return 1 if failed else 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m bench.soak",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--sessions", type=int, default=5, help="sessions replayed (5)")
    p.add_argument("--speed", type=float, default=600.0, help="market s per wall s (600)")
    p.add_argument("--restart-every", type=float, default=60.0, help="wall s between restarts")
    p.add_argument("--down", type=float, default=1.0, help="port closed per restart, s (1)")
    p.add_argument(
        "--warmup",
        type=float,
        help="wall s not judged (default: one market day, 86400 / speed: 144 s at 600x)",
    )
    p.add_argument("--sample", type=float, default=1.0, help="wall s between samples (1)")
    p.add_argument("--table-every", type=float, default=60.0, help="wall s per table row (60)")
    p.add_argument("--ticks", type=Path, default=DATA, help="trades file (data/...csv.gz)")
    p.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="passed to the daemon, e.g. --set data.backfill=false (repeatable)",
    )
    p.add_argument("--keep", action="store_true", help="keep state, logs and samples.jsonl")
    p.add_argument("--json", action="store_true", help="print JSON instead of the table")
    p.add_argument("--lag-probe", type=Path, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.lag_probe is not None:
        import uvloop

        with contextlib.suppress(KeyboardInterrupt):
            uvloop.run(lag_probe(args.lag_probe))
        return 0
    if args.sessions < 1:
        p.error(f"--sessions must be at least 1, got {args.sessions}")
    for name in ("speed", "restart_every", "sample", "table_every"):
        if not getattr(args, name) > 0:
            p.error(f"--{name.replace('_', '-')} must be > 0, got {getattr(args, name)}")
    if args.warmup is None:
        args.warmup = SESSION_S / args.speed
    if args.warmup < 0 or args.down < 0:
        p.error("--warmup and --down must be >= 0")
    if not args.ticks.exists():
        p.error(f"--ticks {args.ticks}: no such file")
    work = Path(tempfile.mkdtemp(prefix="ofd-soak-"))
    try:
        if not args.json:
            print(
                f"soak: {args.sessions} sessions at {args.speed:g}x, gateway restart every "
                f"{args.restart_every:g} s (down {args.down:g} s), warm-up {args.warmup:g} s, "
                f"sample every {args.sample:g} s\nmachine: {platform.platform()}, "
                f"{os.cpu_count()} CPUs, Python {platform.python_version()}\n\n{HEADER}",
                flush=True,
            )
        run = soak(args, work)
        v = verdicts(run, args.warmup, SESSION_S / args.speed)
        if args.json:
            doc = {**asdict(run), "verdicts": v}
            doc.pop("samples")
            print(json.dumps(doc, indent=2, default=str))
        else:
            print(render(run, v))
    finally:
        if args.keep:
            print(f"soak: state, logs and samples kept in {work}", file=sys.stderr)
        else:
            shutil.rmtree(work, ignore_errors=True)
    return exit_code(v)


if __name__ == "__main__":
    sys.exit(main())
