"""The order-flow extractor's cost: offline replay speed, live cost per event, memory.

    python -m bench.flow_extractor [--data PATH] [--passes 5]

1. offline replay: `orderflowd replay`'s path (parse `time_ct,price,size` lines → guards →
   tick rule → features → one row per bar) over the real ES file, trades/s, against a baseline
   in the same run that only parses the lines (the floor any replay pays), and the extractor
   alone over pre-parsed events;
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
import os
import platform
import statistics
import sys
import time
import tracemalloc
from collections.abc import Callable, Sequence
from pathlib import Path

from daemon.flow.events import MarketEvent, QuoteEvent, TradeEvent
from daemon.flow.extractor import OrderFlow
from daemon.flow.replay import parse_trades
from daemon.settings import DataSettings, FlowSettings
from ibsim.market import ReplaySource, load_trades_csv
from ibsim.model import QuoteTick

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "es_trades_2013-09-01_02.csv.gz"
TARGET_TRADES_PER_S = 500_000


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
    extractor = OrderFlow(flow, data, quotes=False)
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
    extractor = OrderFlow(flow, data, quotes=False)
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


def quantiles(costs: list[int]) -> tuple[float, float]:
    ordered = sorted(costs)
    return statistics.median(ordered) / 1000, ordered[int(len(ordered) * 0.99)] / 1000


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--passes", type=int, default=5)
    args = parser.parse_args(argv)
    if not args.data.exists():
        print(f"no data at {args.data}: nothing to measure")
        return 0
    flow, data = FlowSettings(), DataSettings()
    print(
        f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
        f"Python {sys.version.split()[0]}; data {args.data.name}"
    )

    lines = read_lines(args.data)
    trades = len(lines) - 1
    events = list(parse_trades(lines, "bench"))
    parse_rate = best_rate(trades, lambda: parse_only(lines), args.passes)
    replay_rate = best_rate(trades, lambda: replay(lines, flow, data), args.passes)
    extract_rate = best_rate(trades, lambda: extract_only(events, flow, data), args.passes)
    print(f"\noffline replay, {trades} trades, best of {args.passes}, per CPU-second:")
    print(f"  parse only (baseline)      {parse_rate:12,.0f} trades/s")
    print(
        f"  parse + extract (replay)   {replay_rate:12,.0f} trades/s   "
        f"{replay_rate / parse_rate:.2f} x baseline, target {TARGET_TRADES_PER_S:,}"
    )
    print(f"  extract only               {extract_rate:12,.0f} trades/s")

    stream = wire_stream(args.data)
    counted = [0]

    def count(_: MarketEvent) -> None:
        counted[0] += 1

    base = per_event_ns(stream, count)
    live = OrderFlow(flow, data)
    cost = per_event_ns(stream, live.on_event)
    b50, b99 = quantiles(base)
    c50, c99 = quantiles(cost)
    print(f"\nlive path, {len(stream)} events (trades + quotes), per event:")
    print(f"  counting callback (baseline)  median {b50:6.2f} us  p99 {b99:6.2f} us")
    print(
        f"  OrderFlow.on_event            median {c50:6.2f} us  p99 {c99:6.2f} us   "
        f"{c50 / b50:.1f} x / {c99 / b99:.1f} x baseline"
    )
    snap_costs = []
    for _ in range(200):
        start = time.perf_counter_ns()
        live.state()
        snap_costs.append(time.perf_counter_ns() - start)
    s50, s99 = quantiles(snap_costs)
    print(f"  OrderFlow.state() (1/s live)  median {s50:6.1f} us  p99 {s99:6.1f} us")

    tracemalloc.start()
    extractor = OrderFlow(flow, data)
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
    print(
        f"\nmemory over {days} replayed days (traced Python heap, after each day, "
        f"bars_kept {flow.bars_kept}, bars held {bars}):"
    )
    print(
        "  "
        + "  ".join(f"{s / 1e6:.2f} MB" for s in samples)
        + f"   growth after day 1: {(samples[-1] - samples[0]) / 1e6:+.3f} MB"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
