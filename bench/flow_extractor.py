"""The order-flow extractor's cost: offline replay speed, live cost per event, memory.

    python -m bench.flow_extractor [--data PATH] [--passes 5] [--json]

1. offline replay: `orderflowd replay`'s path (parse `time_ct,price,size` lines → guards →
   tick rule → features → one row per bar) over the real ES file, trades/s, against a baseline
   in the same run that only parses the lines (the floor any replay pays), and the extractor
   alone over pre-parsed events; then the command itself (`python -m daemon replay --ticks
   FILE --out /dev/null`, wall clock, best of 3), and its start-up alone (a one-trade file);
2. live path: per-event cost of `OrderFlow.on_event` on the tick-by-tick stream ibsim replays
   (BidAsk + AllLast with whole-second times, as the wire carries them), median and p99, against
   a baseline callback of the same run that only counts events (what the feed log did before);
3. memory: traced Python memory sampled while the extractor runs the whole replayed day
   several times over (bars ring-bounded by `flow.bars_kept`): after the first pass, at the end.

Figures are printed, never asserted; compare ratios across runs (the machine is shared).
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from daemon.core.instrument import Instrument
from daemon.flow.events import MarketEvent, QuoteEvent, TradeEvent
from daemon.flow.extractor import OrderFlow
from daemon.flow.replay import parse_trades
from daemon.settings import DataSettings, FlowSettings
from ibsim.market import ReplaySource, load_trades_csv
from ibsim.model import QuoteTick

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data" / "es_trades_2013-09-01_02.csv.gz"
ES = Instrument.of_product("ES")  # the data is ES trades
TARGET_TRADES_PER_S = 500_000
CLI_PASSES = 3


def read_lines(path: Path) -> list[str]:
    with gzip.open(path, "rt", encoding="utf-8", newline="") as f:
        return f.readlines()


def best_rate(count: int, run: Callable[[], object], passes: int) -> float:
    """Best of `passes` runs, in items per second of process CPU time."""
    best = float("inf")
    for _ in range(passes):
        start = time.process_time()
        run()
        best = min(best, time.process_time() - start)
    return count / best


def replay(lines: Sequence[str], flow: FlowSettings, data: DataSettings) -> OrderFlow:
    extractor = OrderFlow(flow, data, instrument=ES, quotes=False)
    on_event = extractor.on_event
    for ev in parse_trades(lines, "bench"):
        on_event(ev)
    extractor.flush()
    return extractor


def parse_only(lines: Sequence[str]) -> int:
    n = 0
    for _ in parse_trades(lines, "bench"):
        n += 1
    return n


def extract_only(events: Sequence[MarketEvent], flow: FlowSettings, data: DataSettings) -> None:
    extractor = OrderFlow(flow, data, instrument=ES, quotes=False)
    on_event = extractor.on_event
    for ev in events:
        on_event(ev)
    extractor.flush()


def wire_stream(path: Path) -> list[MarketEvent]:
    """ibsim's replay as the daemon receives it: whole-second times, seqs in arrival order."""
    out: list[MarketEvent] = []
    for seq, ev in enumerate(ReplaySource(load_trades_csv(path)).events(), 1):
        t = float(int(ev.time))
        if isinstance(ev, QuoteTick):
            out.append(QuoteEvent(seq, ev.bid, ev.ask, ev.bid_size, ev.ask_size, t, t))
        else:
            out.append(TradeEvent(seq, ev.price, float(ev.size), t, t))
    return out


def per_event_ns(events: Sequence[MarketEvent], sink: Callable[[MarketEvent], None]) -> list[int]:
    clock = time.perf_counter_ns
    costs = []
    append = costs.append
    for ev in events:
        start = clock()
        sink(ev)
        append(clock() - start)
    return costs


def cli_replay_seconds(path: Path, passes: int = CLI_PASSES) -> float:
    """Best wall-clock seconds of `python -m daemon replay --ticks path --out /dev/null`."""
    cmd = [sys.executable, "-m", "daemon", "replay", "--ticks", str(path), "--out", os.devnull]
    best = float("inf")
    for _ in range(passes):
        start = time.perf_counter()
        subprocess.run(cmd, cwd=ROOT, check=True, capture_output=True, timeout=120)
        best = min(best, time.perf_counter() - start)
    return best


def cli_startup_seconds() -> float:
    """The same command over a one-trade file: interpreter start-up, imports, config."""
    with tempfile.TemporaryDirectory(prefix="ofd-replay-") as tmp:
        path = Path(tmp) / "one.csv"
        path.write_text("time_ct,price,size\n2013-09-02 08:30:00.000,1640.25,1\n")
        return cli_replay_seconds(path)


def quantiles(costs: list[int]) -> tuple[float, float]:
    ordered = sorted(costs)
    return statistics.median(ordered) / 1000, ordered[int(len(ordered) * 0.99)] / 1000


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--passes", type=int, default=5)
    parser.add_argument("--json", action="store_true", help="print the figures as JSON instead")
    args = parser.parse_args(argv)
    if not args.data.exists():
        print(json.dumps({"absent": str(args.data)}) if args.json else f"no data at {args.data}")
        return 0
    flow, data = FlowSettings(), DataSettings()
    figures: dict[str, Any] = {}

    def out(*text: object) -> None:
        if not args.json:
            print(*text)

    out(
        f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
        f"Python {sys.version.split()[0]}; data {args.data.name}"
    )

    lines = read_lines(args.data)
    trades = len(lines) - 1
    events = list(parse_trades(lines, "bench"))
    parse_rate = best_rate(trades, lambda: parse_only(lines), args.passes)
    replay_rate = best_rate(trades, lambda: replay(lines, flow, data), args.passes)
    extract_rate = best_rate(trades, lambda: extract_only(events, flow, data), args.passes)
    cli_s, startup_s = cli_replay_seconds(args.data), cli_startup_seconds()
    figures.update(
        trades=trades,
        parse_trades_per_cpu_s=parse_rate,
        replay_trades_per_cpu_s=replay_rate,
        extract_trades_per_cpu_s=extract_rate,
        target_trades_per_s=TARGET_TRADES_PER_S,
        cli_seconds=cli_s,
        cli_startup_seconds=startup_s,
        cli_trades_per_s=trades / cli_s,
    )
    out(f"\noffline replay, {trades} trades, best of {args.passes}, per CPU-second:")
    out(f"  parse only (baseline)      {parse_rate:12,.0f} trades/s")
    out(
        f"  parse + extract (replay)   {replay_rate:12,.0f} trades/s   "
        f"{replay_rate / parse_rate:.2f} x baseline, target {TARGET_TRADES_PER_S:,}"
    )
    out(f"  extract only               {extract_rate:12,.0f} trades/s")
    out(
        f"  orderflowd replay command  {trades / cli_s:12,.0f} trades/s   wall clock, "
        f"{cli_s:.2f} s (best of {CLI_PASSES}), of which start-up {startup_s:.2f} s"
    )

    stream = wire_stream(args.data)
    counted = [0]

    def count(_: MarketEvent) -> None:
        counted[0] += 1

    base = per_event_ns(stream, count)
    live = OrderFlow(flow, data, instrument=ES)
    cost = per_event_ns(stream, live.on_event)
    b50, b99 = quantiles(base)
    c50, c99 = quantiles(cost)
    out(f"\nlive path, {len(stream)} events (trades + quotes), per event:")
    out(f"  counting callback (baseline)  median {b50:6.2f} us  p99 {b99:6.2f} us")
    out(
        f"  OrderFlow.on_event            median {c50:6.2f} us  p99 {c99:6.2f} us   "
        f"{c50 / b50:.1f} x / {c99 / b99:.1f} x baseline"
    )
    snap_costs = []
    for _ in range(200):
        start = time.perf_counter_ns()
        live.state()
        snap_costs.append(time.perf_counter_ns() - start)
    s50, s99 = quantiles(snap_costs)
    out(f"  OrderFlow.state() (1/s live)  median {s50:6.1f} us  p99 {s99:6.1f} us")
    figures.update(
        events=len(stream),
        on_event_median_us=c50,
        on_event_p99_us=c99,
        baseline_median_us=b50,
        baseline_p99_us=b99,
        state_median_us=s50,
    )

    tracemalloc.start()
    extractor = OrderFlow(flow, data, instrument=ES)
    samples = []
    days = 4
    for day in range(days):
        shift = day * 7 * 86400.0  # the same day a week later: new sessions, new bars
        for ev in stream:
            if isinstance(ev, TradeEvent):
                extractor.on_event(
                    TradeEvent(
                        ev.seq + day * 10**7,
                        ev.price,
                        ev.size,
                        ev.exchange_time + shift,
                        ev.received,
                    )
                )
            else:
                assert isinstance(ev, QuoteEvent)
                extractor.on_event(
                    QuoteEvent(
                        ev.seq + day * 10**7,
                        ev.bid,
                        ev.ask,
                        ev.bid_size,
                        ev.ask_size,
                        ev.exchange_time + shift,
                        ev.received,
                    )
                )
        samples.append(tracemalloc.get_traced_memory()[0])
    tracemalloc.stop()
    bars = len(extractor.features.time_bars)
    figures.update(
        heap_mb_after_each_day=[x / 1e6 for x in samples],
        heap_growth_after_day_1_mb=(samples[-1] - samples[0]) / 1e6,
    )
    out(
        f"\nmemory over {days} replayed days (traced Python heap, after each day, "
        f"bars_kept {flow.bars_kept}, bars held {bars}):"
    )
    out(
        "  "
        + "  ".join(f"{s / 1e6:.2f} MB" for s in samples)
        + f"   growth after day 1: {(samples[-1] - samples[0]) / 1e6:+.3f} MB"
    )
    if args.json:
        print(json.dumps(figures, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
