"""Daemon resilience figures: reconnect-to-first-tick, RSS across reconnects, idle CPU.

    python -m bench.daemon_reconnect [--cycles 100] [--idle-seconds 10] [--json]

1. Gateway restarts (port closed 0.2 s, then back): time from the gateway accepting connections
   again to the first quote and the first trade after the daemon's resubscription, with the
   daemon's backoff pinned at 50 ms so that the figure is the daemon's own work.
2. RSS of the process running the daemon's connection and market data after cycle 1 and after
   the last cycle (the gateway runs in a separate process so its memory does not count).
3. Idle CPU of a real `orderflowd run` process connected to a gateway with no ticks.
Figures are printed, never asserted.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import math
import os
import platform
import random
import statistics
import subprocess
import sys
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path

from daemon.broker.connection import Backoff, Connection, Heartbeat
from daemon.broker.ib.client import IbClient
from daemon.broker.marketdata import MarketData
from daemon.flow.events import MarketEvent, QuoteEvent, TradeEvent
from daemon.runtime.logs import configure_logging
from daemon.settings import DataSettings, IbSettings, InstrumentSettings

START = "20261120 08:30:00 US/Central"
NEXT_DOWN_S = 5.0  # no disconnect this long after the last one: the scenario's restarts are over


def rss_mb(pid: int | None = None) -> float:
    pages = int(Path(f"/proc/{pid or 'self'}/statm").read_text().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE") / 2**20


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def start_gateway(*extra: str) -> tuple[subprocess.Popen[str], int]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "ibsim", "--port", "0", *extra],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    assert proc.stdout is not None
    return proc, int(proc.stdout.readline())


def restart_scenario(cycles: int) -> Path:
    """One gateway restart a second from t = 2 s, the port closed for 0.2 s each time."""
    path = Path(f"/tmp/ofd-bench-{os.getpid()}.toml")
    path.write_text(
        "".join(
            f'[[fault]]\nat = {2.0 + i:.1f}\nkind = "restart"\nseconds = 0.2\n'
            for i in range(cycles)
        )
    )
    return path


async def reconnect_cycles(cycles: int, scenario: Path) -> dict[str, float]:
    asyncio.set_event_loop(asyncio.get_running_loop())
    gw, port = start_gateway(
        "--source",
        "synthetic",
        "--seed",
        "5",
        "--start",
        START,
        "--speed",
        "20",
        "--scenario",
        str(scenario),
    )
    events: list[tuple[float, MarketEvent]] = []
    changed = asyncio.Event()

    def sink(event: MarketEvent) -> None:
        events.append((time.perf_counter(), event))
        changed.set()

    def went_down() -> None:
        downs.append(time.perf_counter())
        changed.set()

    def seen_after(moment: float, kind: type) -> bool:
        return any(t > moment and isinstance(e, kind) for t, e in events)

    async def until(predicate: Callable[[], bool], limit: float = 30.0) -> None:
        async with asyncio.timeout(limit):
            while not predicate():
                changed.clear()
                await changed.wait()

    conn = Connection(
        IbClient(),
        IbSettings(port=port, client_id=4, connect_timeout=5.0),
        backoff=Backoff(initial=0.05, cap=0.05, jitter=0.0, stable_after=3600.0),
        heartbeat=Heartbeat(idle=30.0, probe=5.0),
        rng=random.Random(0),
    )
    md = MarketData(conn, InstrumentSettings(), DataSettings(), sink)
    downs: list[float] = []
    conn.on_disconnect(went_down)
    task = asyncio.create_task(conn.run())
    to_quote: list[float] = []
    to_trade: list[float] = []
    rss_points: list[float] = []  # after cycle 1 and after the middle cycle
    heap_points: list[float] = []  # Python heap (tracemalloc) at the same points
    tracemalloc.start()
    try:
        for cycle in range(cycles):
            try:  # restarts come a second apart; one that found the daemon still down is lost
                await until(lambda: len(downs) > cycle, NEXT_DOWN_S)  # noqa: B023 - awaited here
            except TimeoutError:
                break  # the scenario is over: fewer cycles measured than restarts (printed)
            down = downs[cycle]
            reopened = down + 0.2  # the scenario closes the port for 0.2 s
            await until(lambda: seen_after(down, TradeEvent) and seen_after(down, QuoteEvent))  # noqa: B023
            after = [(t, e) for t, e in events if t > down]
            first_quote = next(t for t, e in after if isinstance(e, QuoteEvent))
            first_trade = next(t for t, e in after if isinstance(e, TradeEvent))
            to_quote.append(first_quote - reopened)
            to_trade.append(first_trade - reopened)
            events.clear()
            if cycle in (0, cycles // 2):
                gc.collect()
                rss_points.append(rss_mb())
                heap_points.append(tracemalloc.get_traced_memory()[0] / 2**20)
        gc.collect()
        rss_points.append(rss_mb())
        heap_points.append(tracemalloc.get_traced_memory()[0] / 2**20)
        tracemalloc.stop()
        tickers = len(conn.client.ib.wrapper.reqId2Ticker)
    finally:
        await md.stop()
        await conn.stop()
        await asyncio.wait({task}, timeout=10)
        gw.terminate()
        gw.wait(timeout=10)
    measured = len(to_quote)
    if not measured:
        raise RuntimeError("no gateway restart reached the daemon: nothing measured")
    return {
        "cycles": measured,
        "restarts": cycles,
        "reconnects": conn.status.reconnect_count,
        "quote_p50_ms": statistics.median(to_quote) * 1000,
        "quote_max_ms": max(to_quote) * 1000,
        "trade_p50_ms": statistics.median(to_trade) * 1000,
        "trade_max_ms": max(to_trade) * 1000,
        "rss_after_1_mb": rss_points[0],
        "rss_mid_mb": rss_points[1] if len(rss_points) == 3 else math.nan,
        "rss_after_last_mb": rss_points[-1],
        "heap_after_1_mb": heap_points[0],
        "heap_after_last_mb": heap_points[-1],
        "ib_async_tickers": tickers,
    }


def idle_cpu(seconds: float) -> dict[str, float]:
    gw, port = start_gateway("--source", "replay", "--ticks", _one_trade_file(), "--speed", "1")
    state = Path(f"/tmp/ofd-bench-idle-{os.getpid()}")
    daemon = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "daemon",
            "run",
            "--port",
            str(port),
            "--client-id",
            "6",
            "--state-dir",
            str(state),
            "--log-format",
            "json",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        time.sleep(3.0)  # start-up and connect are not idle
        before, t0 = cpu_seconds(daemon.pid), time.monotonic()
        time.sleep(seconds)
        used, elapsed = cpu_seconds(daemon.pid) - before, time.monotonic() - t0
        rss = rss_mb(daemon.pid)
    finally:
        daemon.terminate()
        daemon.wait(timeout=15)
        gw.terminate()
        gw.wait(timeout=10)
    return {"idle_cpu_pct": 100 * used / elapsed, "idle_seconds": elapsed, "daemon_rss_mb": rss}


def _one_trade_file() -> str:
    """A replay holding one trade: the gateway's market stays quiet afterwards."""
    path = Path(f"/tmp/ofd-bench-quiet-{os.getpid()}.csv")
    path.write_text("time_ct,price,size\n2026-11-20 08:30:00.000,5000.25,1\n")
    return str(path)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--cycles", type=int, default=100)
    parser.add_argument("--idle-seconds", type=float, default=10.0)
    parser.add_argument("--json", action="store_true", help="print the figures as JSON instead")
    args = parser.parse_args(argv)
    if args.cycles < 2:
        parser.error(f"--cycles must be at least 2, got {args.cycles}")
    # With --json the figures say how the reconnects went; the expected "connection refused"
    # lines of every restart would only bury the output of `python -m bench`.
    configure_logging("console", "CRITICAL" if args.json else "WARNING")
    out = (lambda *_: None) if args.json else print
    out(
        f"machine: {platform.platform()}, {os.cpu_count()} CPUs, Python {platform.python_version()}"
    )
    scenario = restart_scenario(args.cycles)
    try:
        r = asyncio.run(reconnect_cycles(args.cycles, scenario))
    finally:
        scenario.unlink(missing_ok=True)
    lost = r["restarts"] - r["cycles"]
    out(
        f"gateway restarts: {r['restarts']}, measured: {r['cycles']}, daemon reconnects: "
        f"{r['reconnects']:.0f}"
        + (f" ({lost} restart(s) found the daemon still down: lost)" if lost else "")
    )
    out(
        f"reopen -> first quote: p50 {r['quote_p50_ms']:.1f} ms, max {r['quote_max_ms']:.1f} ms"
        " (backoff pinned at 50 ms)"
    )
    out(
        f"reopen -> first trade: p50 {r['trade_p50_ms']:.1f} ms, max {r['trade_max_ms']:.1f} ms"
        " (synthetic market, ~80 trades/s)"
    )
    out(
        f"RSS after cycle 1: {r['rss_after_1_mb']:.1f} MB, cycle {r['cycles'] // 2}: "
        f"{r['rss_mid_mb']:.1f} MB, cycle {r['cycles']}: {r['rss_after_last_mb']:.1f} MB "
        f"(growth {r['rss_after_last_mb'] - r['rss_after_1_mb']:+.2f} MB; second half "
        f"{r['rss_after_last_mb'] - r['rss_mid_mb']:+.2f} MB)"
    )
    out(
        f"Python heap (tracemalloc) after cycle 1: {r['heap_after_1_mb']:.2f} MB, after cycle "
        f"{r['cycles']}: {r['heap_after_last_mb']:.2f} MB; ib_async tickers held: "
        f"{r['ib_async_tickers']:.0f}"
    )
    i = idle_cpu(args.idle_seconds)
    out(
        f"idle CPU of `orderflowd run` with no ticks: {i['idle_cpu_pct']:.2f}% of a core over "
        f"{i['idle_seconds']:.1f} s (RSS {i['daemon_rss_mb']:.1f} MB)"
    )
    if args.json:
        per_reconnect = (r["rss_after_last_mb"] - r["rss_after_1_mb"]) / max(1, r["cycles"] - 1)
        print(json.dumps({**r, **i, "rss_growth_per_reconnect_mb": per_reconnect}, indent=2))


if __name__ == "__main__":
    main()
