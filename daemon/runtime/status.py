"""`<state_dir>/status.json`: what the daemon is doing, written atomically every second.

Readers (`orderflowd status`, monitoring, a trader's `cat`) never see a half-written file:
each snapshot goes to a temporary file in the same directory and is renamed over the old one.
Its `process` object (memory, descriptors, tasks, event-loop lag) is what a soak run samples.

A file outlives its writer, so each snapshot carries the writer's `pid` (and its start time)
and a `heartbeat` (wall time of the write) with `interval_s`: `judge` tells a reader whether
the daemon behind the file is running, stopped, dead or hung.
"""

from __future__ import annotations

import asyncio
import bisect
import json
import os
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cache
from pathlib import Path
from typing import Any, Final, Literal

from daemon.broker.connection import ConnectionStatus
from daemon.broker.marketdata import FeedStats
from daemon.flow.extractor import FlowState
from daemon.settings import mask_account

STATUS_FILE = "status.json"


DISABLED_TRADING: dict[str, Any] = {"enabled": False, "state": "DISABLED"}

# Upper edges of the loop-lag buckets, in ms; 10 ms is the soak bound, so it is an edge.
LAG_EDGES_MS: Final = (1, 2, 5, 10, 20, 50, 100, 250, 1000)
PROC_SELF: Final = Path("/proc/self")
PROC: Final = Path("/proc")
# A heartbeat older than this many write intervals (and at least HUNG_MIN_S: one status write
# may wait up to 5 s on the gateway's clock request) means the daemon is hung.
HUNG_AFTER_INTERVALS: Final = 5
HUNG_MIN_S: Final = 10.0


class LoopLagHistogram:
    """Every event-loop lag probe since start, counted in fixed buckets.

    The counts only grow, so a reader that diffs two snapshots gets the exact bucket counts of
    the probes in between, whoever else reads the file: a period's p99 is at most 10 ms exactly
    when no more than 1 % of its probes fall above the 10 ms edge.
    """

    def __init__(self, edges_ms: Sequence[float] = LAG_EDGES_MS) -> None:
        if not edges_ms or list(edges_ms) != sorted(set(edges_ms)) or edges_ms[0] <= 0:
            raise ValueError(f"lag bucket edges must be positive and increasing, got {edges_ms}")
        self.edges_ms = tuple(edges_ms)
        self._edges_s = [e / 1000 for e in edges_ms]
        self._counts = [0] * (len(edges_ms) + 1)  # per bucket; the last one is above every edge
        self.probes = 0
        self.max_s = 0.0

    def record(self, lag_s: float) -> None:
        """Count one probe's lag (seconds); a lag equal to an edge falls in that edge's bucket."""
        self._counts[bisect.bisect_left(self._edges_s, lag_s)] += 1
        self.probes += 1
        self.max_s = max(self.max_s, lag_s)

    def as_status(self) -> dict[str, Any]:
        """`le_ms`: probes that lagged at most each edge (cumulative, Prometheus style)."""
        le: dict[str, int] = {}
        total = 0
        for edge, count in zip(self.edges_ms, self._counts, strict=False):
            total += count
            le[f"{edge:g}"] = total
        return {"probes": self.probes, "max_s": round(self.max_s, 4), "le_ms": le}


def rss_mb(proc: Path = PROC_SELF) -> float | None:
    """Resident memory in MB (2^20 bytes) from `<proc>/statm`; None where there is no procfs."""
    try:
        pages = int((proc / "statm").read_text().split()[1])
    except (OSError, IndexError, ValueError):
        return None
    return round(pages * os.sysconf("SC_PAGE_SIZE") / 2**20, 3)


def open_fds(proc: Path = PROC_SELF) -> int | None:
    """Open file descriptors, from `<proc>/fd`; None where there is no procfs."""
    try:
        return len(os.listdir(proc / "fd"))
    except OSError:
        return None


def running_tasks() -> int | None:
    """Tasks of the running event loop that are not done; None outside a loop."""
    try:
        return len(asyncio.all_tasks())
    except RuntimeError:
        return None


def process_figures(lag: LoopLagHistogram, proc: Path = PROC_SELF) -> dict[str, Any]:
    """The `process` object of status.json: memory, descriptors, tasks and loop lag.

    `python_blocks` (live blocks of Python's allocator) tells a leak of Python objects, which
    grows it, from RSS the allocators keep after a peak, which does not.
    """
    return {
        "rss_mb": rss_mb(proc),
        "python_blocks": sys.getallocatedblocks(),
        "open_fds": open_fds(proc),
        "tasks": running_tasks(),
        "loop_lag": lag.as_status(),
    }


def process_start(pid: int, proc: Path = PROC) -> int | None:
    """When *pid* started, in clock ticks since boot (`/proc/<pid>/stat`); None if unknown.

    A pid and its start time name one process: a pid reused by another program differs.
    """
    fields = _stat_fields(pid, proc)
    try:
        return int(fields[19]) if fields else None  # field 22 of stat(5); fields start at 3
    except (IndexError, ValueError):
        return None


def _stat_fields(pid: int, proc: Path) -> list[str] | None:
    """The fields of `/proc/<pid>/stat` after the command name (state first)."""
    try:
        text = (proc / str(pid) / "stat").read_text()
    except OSError:
        return None
    _, sep, rest = text.rpartition(")")  # the name may hold spaces and parentheses
    return rest.split() if sep else None


@cache
def _own_start(pid: int) -> int | None:
    return process_start(pid)


def own_start() -> int | None:
    """This process's start time (see `process_start`), read once per pid."""
    return _own_start(os.getpid())


@dataclass
class StatusInputs:
    """Everything a snapshot is built from."""

    connection: ConnectionStatus
    feed: FeedStats
    started_wall: float
    started_mono: float
    trading: dict[str, Any] = field(default_factory=lambda: dict(DISABLED_TRADING))
    flow: FlowState | None = None
    loop_lag_s: float = 0.0
    process: dict[str, Any] | None = None  # `process_figures()`
    interval_s: float | None = None  # `[status] interval_s`: how often the file is rewritten
    pid: int = field(default_factory=os.getpid)
    pid_start: int | None = field(default_factory=own_start)


def _iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).isoformat(timespec="milliseconds")


def _rounded(value: float | None, digits: int = 4) -> float | None:
    return None if value is None else round(value, digits)


def flow_summary(flow: FlowState | None) -> dict[str, Any]:
    """The order-flow part of status.json: health, the headline features, how data was judged."""
    if flow is None:
        return {"data_health": None, "rejected_ticks": {}}
    f = flow.features
    return {
        "data_health": flow.health.value,
        "rejected_ticks": dict(sorted(flow.rejected.items())),
        "warming_up": flow.warming_up,
        "session_partial": f.session_partial,
        "volume_gap": flow.volume_gap,
        "volume_gaps": flow.volume_gaps,
        "missing_volume": flow.missing_volume,
        "quote_stale": flow.quote_stale,
        "last": f.last,
        "bid": f.bid,
        "ask": f.ask,
        "session_volume": f.session_volume,
        "cvd_session": f.cvd_session,
        "cvd_rth": f.cvd_rth,
        "delta_windows": {str(k): v for k, v in f.delta_windows.items()},
        "vwap": _rounded(f.vwap),
        "vwap_sd": _rounded(f.vwap_sd),
        "poc": f.poc,
        "value_area": [f.val, f.vah] if f.val is not None else None,
        "book_imbalance": _rounded(f.book_imbalance),
        "microprice": _rounded(f.microprice),
        "trades_per_s": _rounded(f.trades_per_s, 3),
        "volume_by_method": {k: round(v, 2) for k, v in flow.volume_by_method.items()},
    }


def snapshot(
    inputs: StatusInputs, now_mono: float, now_wall: float | None = None
) -> dict[str, Any]:
    """The JSON document, as plain data; its `heartbeat` is *now_wall* (default: the clock)."""
    conn, feed = inputs.connection, inputs.feed
    last_tick_age = None if feed.last_tick is None else round(now_mono - feed.last_tick, 3)
    return {
        "state": conn.state.value,
        "pid": inputs.pid,
        "pid_start": inputs.pid_start,
        "heartbeat": round(time.time() if now_wall is None else now_wall, 3),
        "interval_s": inputs.interval_s,
        "connected": conn.state.value in ("SYNCING", "READY", "DEGRADED"),
        "since": _iso(conn.since),
        "started": _iso(inputs.started_wall),
        "uptime_s": round(now_mono - inputs.started_mono, 3),
        "reconnect_count": conn.reconnect_count,
        "last_error": (
            {"code": conn.last_error[0], "message": conn.last_error[1]} if conn.last_error else None
        ),
        "server_version": conn.server_version,
        "port": conn.port,
        "client_id": conn.client_id,
        "accounts": [mask_account(a) for a in conn.accounts],
        "ib_connected": conn.ib_connected,
        "farms": dict(sorted(conn.farms.items())),
        "contract": feed.contract,
        "data_mode": feed.mode.value if feed.mode else None,
        "data_stale": feed.stale,
        "last_tick_age_s": last_tick_age,
        "ticks_total": feed.ticks_total,
        "trades_total": feed.trades,
        "resubscribe_count": feed.resubscribes,
        "rolls": feed.rolls,
        "gateway_clock_offset_s": round(feed.clock_offset_s, 3),
        **flow_summary(inputs.flow),
        "loop_lag_s": round(inputs.loop_lag_s, 4),
        "process": inputs.process,
        "trading": inputs.trading,
    }


def status_line(doc: dict[str, Any]) -> str:
    """One line for sd_notify STATUS= and the debug console, e.g. `READY ESZ6 tick-by-tick …`."""
    parts = [doc["state"]]
    if doc.get("contract"):
        parts.append(doc["contract"])
    if doc.get("data_mode"):
        parts.append(doc["data_mode"])
    age = doc.get("last_tick_age_s")
    parts.append("no ticks yet" if age is None else f"last tick {age:.1f}s ago")
    if doc.get("data_stale"):
        parts.append("STALE")
    if doc.get("data_health") not in (None, "OK"):
        parts.append(f"data {doc['data_health']}")
    if doc.get("last") is not None:
        parts.append(f"last {doc['last']:g}")
    if doc.get("cvd_session") is not None and doc.get("data_health") is not None:
        parts.append(f"CVD {doc['cvd_session']:+g}")
    if doc.get("reconnect_count"):
        parts.append(f"reconnects {doc['reconnect_count']}")
    trading = doc.get("trading") or {}
    if trading.get("enabled"):
        parts.append(trading.get("state", "?"))
        position = trading.get("position")
        parts.append("pos unknown" if position is None else f"pos {position:+d}")
        if trading.get("net_pnl") is not None:
            parts.append(f"PnL {trading['net_pnl']:+.2f}")
    return " ".join(parts)


def write_atomic(path: Path, doc: dict[str, Any]) -> None:
    """Write JSON so that readers see either the old or the new file, never a mix."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(doc, f, indent=2)
            f.write("\n")
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def read_status(state_dir: Path) -> dict[str, Any]:
    """The last snapshot; FileNotFoundError when the daemon never ran with this state_dir."""
    data: dict[str, Any] = json.loads((state_dir / STATUS_FILE).read_text(encoding="utf-8"))
    return data


Verdict = Literal["running", "stopped", "dead", "hung"]


@dataclass(frozen=True)
class Liveness:
    """What a reader can tell about the daemon behind a status.json, in plain words."""

    verdict: Verdict
    detail: str
    heartbeat_age_s: float | None

    def as_dict(self) -> dict[str, Any]:
        return {
            "verdict": self.verdict,
            "detail": self.detail,
            "heartbeat_age_s": self.heartbeat_age_s,
        }


def hung_after_s(interval_s: Any) -> float:
    """Heartbeat age beyond which a live writer counts as hung."""
    interval = interval_s if isinstance(interval_s, int | float) and interval_s > 0 else 1.0
    return max(HUNG_AFTER_INTERVALS * float(interval), HUNG_MIN_S)


def judge(
    doc: dict[str, Any],
    *,
    mtime: float | None = None,
    now: float | None = None,
    proc: Path = PROC,
) -> Liveness:
    """Running, stopped (STOPPED written at shutdown), dead (its process is gone) or hung.

    The heartbeat is the document's `heartbeat`, else *mtime* (a file from before heartbeats);
    without a `pid` the process cannot be checked and only the heartbeat's age counts.
    """
    wall = time.time() if now is None else now
    beat = doc.get("heartbeat")
    beat = beat if isinstance(beat, int | float) else mtime
    age = None if beat is None else round(max(0.0, wall - beat), 3)
    written = "never written" if age is None else f"written {_ago(age)} ago"
    state = doc.get("state", "?")
    if state == "STOPPED":
        return Liveness("stopped", f"the daemon is stopped (STOPPED at shutdown, {written})", age)
    last = f"its last status ({state}, {written}) is stale"
    pid = doc.get("pid")
    if type(pid) is int and pid > 0:
        gone = _gone(pid, doc.get("pid_start"), proc)
        if gone is not None:
            return Liveness("dead", f"the daemon is dead: {gone}; {last}", age)
        if _state(pid, proc) in ("T", "t"):
            why = f"process {pid} is stopped (SIGSTOP or a debugger) and does nothing"
            return Liveness("hung", f"the daemon is hung: {why}; {last}", age)
    limit = hung_after_s(doc.get("interval_s"))
    if age is not None and age > limit:
        who = f"process {pid} is alive but" if type(pid) is int else "it"
        why = f"{who} has not rewritten status.json for {_ago(age)} (late after {limit:g} s)"
        return Liveness("hung", f"the daemon is hung: {why}; {last}", age)
    return Liveness("running", f"the daemon is running ({state}, status {written})", age)


def _gone(pid: int, recorded_start: Any, proc: Path) -> str | None:
    """Why process *pid* is not the daemon that wrote the file, or None while it is."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return f"process {pid} no longer exists"
    except PermissionError:
        pass  # alive, another user's (the service runs as its own user)
    if _state(pid, proc) in ("Z", "X"):
        return f"process {pid} has exited"
    start = process_start(pid, proc)
    if isinstance(recorded_start, int) and start is not None and start != recorded_start:
        return f"process {pid} is another program now (the pid was reused)"
    return None


def _state(pid: int, proc: Path) -> str | None:
    fields = _stat_fields(pid, proc)
    return fields[0] if fields else None


def _ago(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s" if seconds >= 10 else f"{seconds:.1f} s"
    if seconds < 2 * 3600:
        return f"{seconds / 60:.0f} min"
    if seconds < 2 * 86400:
        return f"{seconds / 3600:.0f} h"
    return f"{seconds / 86400:.0f} days"
