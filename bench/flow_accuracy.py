"""Aggressor classification accuracy against ibsim's recorded true aggressor, on real ES trades.

    python -m bench.flow_accuracy [--data PATH] [--seed 0] [--quote-stale-s 5] [--json]

The replay (`ibsim.market.ReplaySource` over the real trades file) decides each trade's aggressor
and synthesizes quotes around it; the classifiers see what the wire would carry and are scored
against that decision:

1. tick-by-tick: BidAsk + AllLast in stream order, times truncated to whole seconds as the wire
   does, through `daemon.flow.classify.TickClassifier`: per-trade accuracy, the share and
   accuracy of each method, with the old-quote correction as shipped, off, and in its naive form
   (any trade at the previous ask/bid right after the quote moved, without the "the previous
   trade printed elsewhere" condition); plus trades only (no quotes: the tick rule);
2. snapshot: 250 ms samples emulated as `ibsim.feed.MarketFeed.flush` builds them (bid/ask,
   last, cumulative volume, one RTVolume per sample carrying the interval's whole volume at the
   last price, `single` only for one trade), through `SnapshotClassifier`, with RTVolume and
   without it (every contract then is BVC residual): per-method volume accuracy and the error of
   1-minute bar delta against the true delta;
3. speed: `TickClassifier.trade` calls per second against a loop that only allocates the
   `Print` (the baseline of the same run: the machine is shared).

Figures are printed, never asserted. The replay's quotes are consistent by construction (every
trade prints at the touch, quotes never race trades), so the tick-by-tick figure is an upper
bound for real IB data, where BidAsk and trades arrive on separate streams.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import platform
import sys
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from daemon.flow.classify import (
    OLD_QUOTE_WINDOW_S,
    TICK_ZERO,
    SnapshotClassifier,
    TickClassifier,
)
from daemon.flow.prints import Method, Print
from ibsim.feed import SNAPSHOT_INTERVAL
from ibsim.market import ReplaySource, load_trades_csv, price_to_tick
from ibsim.model import MarketEvent, QuoteTick, Side, TradeTick

REPO = Path(__file__).resolve().parent.parent
DATA = Path("/work/shared/data/es_trades_2013-09-01_02.csv.gz")
TARGET = 0.99  # per-trade accuracy in tick-by-tick mode (the target)
BAR_S = 60
SPEED_EVENTS = 200_000


@dataclass(frozen=True, slots=True)
class Tbt:
    """One tick-by-tick event as the classifier gets it: ticks, whole-second time."""

    time: float
    tick: int
    ask: int  # 0 for a trade
    size: int
    buy: bool  # the true aggressor (trades only)


def wire_events(events: Iterable[MarketEvent]) -> list[Tbt]:
    out: list[Tbt] = []
    for e in events:
        t = float(int(e.time))
        if isinstance(e, QuoteTick):
            out.append(Tbt(t, price_to_tick(e.bid), price_to_tick(e.ask), 0, False))
        else:
            out.append(Tbt(t, price_to_tick(e.price), 0, e.size, e.aggressor is Side.BUY))
    return out


# --- tick-by-tick ---


@dataclass(slots=True)
class MethodScore:
    trades: int = 0
    right: int = 0


@dataclass(slots=True)
class TbtScore:
    name: str
    trades: int = 0
    right: int = 0
    volume: int = 0
    right_volume: int = 0
    methods: dict[str, MethodScore] = field(default_factory=dict)

    def add(self, method: str, size: int, right: bool) -> None:
        self.trades += 1
        self.volume += size
        m = self.methods.setdefault(method, MethodScore())
        m.trades += 1
        if right:
            self.right += 1
            self.right_volume += size
            m.right += 1

    @property
    def accuracy(self) -> float:
        return self.right / self.trades if self.trades else math.nan


def method_key(p: Print) -> str:
    """The method, with the tick rule's zero ticks apart from its up- and downticks."""
    if p.method is Method.TICK:
        return "tick zero" if p.confidence == TICK_ZERO else "tick move"
    return p.method.value


def score_tbt(name: str, events: Sequence[Tbt], stale_s: float, *, old_quote: bool) -> TbtScore:
    clf = TickClassifier(stale_s, old_quote=old_quote)
    score = TbtScore(name)
    for e in events:
        if e.size == 0:
            clf.quote(e.tick, e.ask, e.time)
        else:
            p = clf.trade(e.time, e.tick, e.size)
            right = p.buy > 0.0 if e.buy else p.sell > 0.0
            score.add(method_key(p), e.size, right)
    return score


def score_naive(events: Sequence[Tbt], stale_s: float) -> TbtScore:
    """The old-quote correction as first specified: the first trade after the quote moved, within
    a second, exactly at the previous ask (bid) and below the new ask (above the new bid), is a
    buy (sell), whatever printed before; "previous" is the quote just before the change."""
    clf = TickClassifier(stale_s, old_quote=False)
    score = TbtScore("naive old-quote")
    bid = ask = prev_bid = prev_ask = 0
    flip_time = quote_time = -math.inf
    moved = False
    for e in events:
        if e.size == 0:
            if (e.tick, e.ask) != (bid, ask):
                prev_bid, prev_ask, bid, ask = bid, ask, e.tick, e.ask
                flip_time, moved = e.time, True
            quote_time = e.time
            clf.quote(e.tick, e.ask, e.time)
            continue
        p = clf.trade(e.time, e.tick, e.size)
        method, buy = method_key(p), p.buy > 0.0 if p.method is not Method.NONE else None
        fresh = (
            moved and e.time - quote_time <= stale_s and e.time - flip_time <= OLD_QUOTE_WINDOW_S
        )
        if fresh and e.tick == prev_ask and e.tick < ask:
            method, buy = Method.OLD_QUOTE.value, True
        elif fresh and e.tick == prev_bid and e.tick > bid:
            method, buy = Method.OLD_QUOTE.value, False
        moved = False
        score.add(method, e.size, buy is e.buy)
    return score


def score_trades_only(events: Sequence[Tbt]) -> TbtScore:
    clf = TickClassifier(0.0)
    score = TbtScore("trades only (tick rule)")
    for e in events:
        if e.size:
            p = clf.trade(e.time, e.tick, e.size)
            score.add(method_key(p), e.size, p.buy > 0.0 if e.buy else p.sell > 0.0)
    return score


# --- snapshot ---


@dataclass(frozen=True, slots=True)
class Sample:
    """What one emulated 250 ms reqMktData sample hands the classifier, plus the truth."""

    time: float
    quote: tuple[int, int, float, float] | None
    last_tick: int | None
    volume_increment: float | None
    prints: list[tuple[int, float, float, bool]]
    true_buy: int
    true_sell: int


def emulate_samples(events: Iterable[MarketEvent], start: float, rt_volume: bool) -> list[Sample]:
    """Sample the stream every `SNAPSHOT_INTERVAL` of data time as `MarketFeed.flush` does: a
    sample only when something changed; the whole interval's volume in one RTVolume at the last
    price. (Replayed at 1x, data time is the gateway's wall time.)"""
    out: list[Sample] = []
    quote: tuple[int, int, float, float] | None = None
    last: int | None = None
    last_time = 0.0
    seen_volume = False
    interval = -1
    changed = False
    size = trades = buy = sell = 0

    def flush(k: int) -> None:
        nonlocal changed, size, trades, buy, sell, seen_volume
        if changed:
            prints: list[tuple[int, float, float, bool]] = []
            if rt_volume and size and last is not None:
                prints.append((last, float(size), last_time, trades == 1))
            increment = (float(size) if seen_volume else None) if size or seen_volume else None
            out.append(
                Sample(
                    start + (k + 1) * SNAPSHOT_INTERVAL, quote, last, increment, prints, buy, sell
                )
            )
            seen_volume = seen_volume or size > 0
        changed = False
        size = trades = buy = sell = 0

    for e in events:
        k = int((e.time - start) // SNAPSHOT_INTERVAL)
        if k != interval:
            flush(interval)
            interval = k
        changed = True
        if isinstance(e, QuoteTick):
            quote = (
                price_to_tick(e.bid),
                price_to_tick(e.ask),
                float(e.bid_size),
                float(e.ask_size),
            )
        else:
            last, last_time = price_to_tick(e.price), int(e.time * 1000) / 1000
            size += e.size
            trades += 1
            if e.aggressor is Side.BUY:
                buy += e.size
            else:
                sell += e.size
    flush(interval)
    return out


@dataclass(slots=True)
class SnapScore:
    name: str
    volume: float = 0.0
    methods: dict[str, list[float]] = field(default_factory=dict)  # volume, right volume
    bars: dict[int, list[float]] = field(default_factory=dict)  # est delta, true delta, volume

    def error(self) -> tuple[float, float, float, int]:
        """Bar delta: mean absolute error (contracts), that over mean bar volume, correlation."""
        rows = [b for b in self.bars.values() if b[2] > 0]
        n = len(rows)
        mae = sum(abs(e - t) for e, t, _ in rows) / n
        mean_volume = sum(v for _, _, v in rows) / n
        return mae, mae / mean_volume, correlation([r[0] for r in rows], [r[1] for r in rows]), n


def score_snapshot(name: str, samples: Sequence[Sample], trades: Sequence[TradeTick]) -> SnapScore:
    clf = SnapshotClassifier()
    score = SnapScore(name)
    bars = score.bars
    for tr in trades:
        bar = bars.setdefault(int(tr.time // BAR_S), [0.0, 0.0, 0.0])
        bar[1] += tr.size if tr.aggressor is Side.BUY else -tr.size
        bar[2] += tr.size
    for s in samples:
        out = clf.sample(s.time, s.quote, s.last_tick, s.volume_increment, s.prints)
        # At most one print per emulated sample, and when there is one it holds all the volume.
        tb, ts = float(s.true_buy), float(s.true_sell)
        for p in out:
            right = min(p.buy, tb) + min(p.sell, ts)
            tb, ts = max(tb - p.buy, 0.0), max(ts - p.sell, 0.0)
            key = p.method.value
            if p.method is not Method.BVC:
                single = any(single for *_, single in s.prints)
                key += " single" if single else " aggregate"
            m = score.methods.setdefault(key, [0.0, 0.0])
            m[0] += p.size
            m[1] += right
            score.volume += p.size
            bars.setdefault(int(p.time // BAR_S), [0.0, 0.0, 0.0])[0] += p.buy - p.sell
    return score


def tbt_bar_score(events: Sequence[Tbt], stale_s: float, trades: Sequence[TradeTick]) -> SnapScore:
    """Tick-by-tick classification put in the same 1-minute bars (the reference figure)."""
    clf = TickClassifier(stale_s)
    score = SnapScore("tick-by-tick (reference)")
    prints: list[Print] = []
    for e in events:
        if e.size == 0:
            clf.quote(e.tick, e.ask, e.time)
        else:
            prints.append(clf.trade(e.time, e.tick, e.size))
    for tr, p in zip(trades, prints, strict=True):
        bar = score.bars.setdefault(int(tr.time // BAR_S), [0.0, 0.0, 0.0])
        bar[0] += p.buy - p.sell
        bar[1] += tr.size if tr.aggressor is Side.BUY else -tr.size
        bar[2] += tr.size
    return score


def correlation(xs: Sequence[float], ys: Sequence[float]) -> float:
    n = len(xs)
    mx, my = sum(xs) / n, sum(ys) / n
    sxy = sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True))
    sxx = sum((x - mx) ** 2 for x in xs)
    syy = sum((y - my) ** 2 for y in ys)
    return sxy / math.sqrt(sxx * syy) if sxx and syy else math.nan


# --- speed ---


def speed(events: Sequence[Tbt], stale_s: float) -> tuple[float, float]:
    """(TickClassifier events/s, baseline events/s): the baseline only allocates the Print."""
    stream = list(_cycle(events, SPEED_EVENTS))
    quote_method = Method.QUOTE

    def baseline() -> None:
        for e in stream:
            if e.size:
                Print(e.time, e.tick, e.size, e.size, 0.0, quote_method, 0.95)

    def classify() -> None:
        clf = TickClassifier(stale_s)
        trade, quote = clf.trade, clf.quote
        for e in stream:
            if e.size:
                trade(e.time, e.tick, e.size)
            else:
                quote(e.tick, e.ask, e.time)

    return _best_rate(classify, len(stream)), _best_rate(baseline, len(stream))


def _cycle(events: Sequence[Tbt], n: int) -> Iterator[Tbt]:
    while n > 0:
        chunk = events[:n]
        yield from chunk
        n -= len(chunk)


def _best_rate(fn: Callable[[], None], n: int, repeats: int = 5) -> float:
    best = math.inf
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return n / best


# --- report ---


def source_state() -> str:
    """Hash of the code measured: the classifier and the replay that decides the truth."""
    digest = hashlib.sha1()
    for rel in ("daemon/flow/classify.py", "ibsim/market/replay.py"):
        digest.update((REPO / rel).read_bytes())
    return digest.hexdigest()[:10]


def _pct(x: float) -> str:
    return "n/a" if math.isnan(x) else f"{100 * x:.3f}%"


def render_tbt(scores: Sequence[TbtScore], lines: list[str]) -> None:
    lines.append(f"{'variant':<34}{'trades':>8}{'accuracy':>10}{'by volume':>11}  by method")
    for s in scores:
        parts = []
        for name, m in sorted(s.methods.items(), key=lambda kv: -kv[1].trades):
            share = m.trades / s.trades
            parts.append(f"{name} {100 * share:.2f}% of trades at {_pct(m.right / m.trades)}")
        lines.append(
            f"{s.name:<34}{s.trades:>8,}{_pct(s.accuracy):>10}"
            f"{_pct(s.right_volume / s.volume):>11}  " + "; ".join(parts)
        )


def render_snapshot(scores: Sequence[SnapScore], lines: list[str]) -> None:
    header = f"{'variant':<34}{'bars':>6}{'MAE ct':>8}{'MAE/vol':>9}{'corr':>7}"
    lines.append(header + "  volume accuracy by method")
    for s in scores:
        mae, rel, corr, n = s.error()
        parts = [
            f"{name} {100 * v / s.volume:.1f}% of volume at {_pct(r / v)}"
            for name, (v, r) in sorted(s.methods.items(), key=lambda kv: -kv[1][0])
            if v
        ]
        lines.append(
            f"{s.name:<34}{n:>6}{mae:>8.1f}{100 * rel:>8.1f}%{corr:>7.3f}  "
            + ("; ".join(parts) or "-")
        )


def figures(
    tbt: Sequence[TbtScore], snapshot: Sequence[SnapScore], rate: float, base: float
) -> dict[str, object]:
    """The headline figures as plain data (`--json`); the first tick-by-tick variant is the
    classifier as shipped."""
    snaps = {}
    for s in snapshot:
        mae, rel, corr, bars = s.error()
        right = sum(r for _, r in s.methods.values())
        snaps[s.name] = {
            "volume_accuracy": right / s.volume if s.volume else None,
            "bars": bars,
            "bar_delta_mae": mae,
            "bar_delta_mae_over_volume": rel,
            "bar_delta_corr": corr,
        }
    return {
        "trades": tbt[0].trades,
        "tick_by_tick_accuracy": tbt[0].accuracy,
        "tick_by_tick_volume_accuracy": tbt[0].right_volume / tbt[0].volume,
        "target": TARGET,
        "variants": {t.name: t.accuracy for t in tbt},
        "snapshot": snaps,
        "classifier_events_per_s": rate,
        "baseline_events_per_s": base,
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m bench.flow_accuracy",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--data", type=Path, default=DATA, help=f"trades file (default {DATA})")
    p.add_argument("--seed", type=int, default=0, help="replay seed (default 0)")
    p.add_argument(
        "--quote-stale-s", type=float, default=5.0, help="quote staleness (default 5, as config)"
    )
    p.add_argument("--json", action="store_true", help="print the figures as JSON instead")
    args = p.parse_args(argv)
    if not args.data.exists():
        absent = f"flow accuracy: {args.data} is absent; nothing to measure"
        print(json.dumps({"absent": str(args.data)}) if args.json else absent)
        return 0

    raw = load_trades_csv(args.data)
    source = ReplaySource(raw, seed=args.seed)
    events = list(source.events())
    trades = [e for e in events if isinstance(e, TradeTick)]
    wire = wire_events(events)
    stale = args.quote_stale_s

    t0 = time.perf_counter()
    tbt = [
        score_tbt("as shipped (refined old-quote)", wire, stale, old_quote=True),
        score_tbt("old-quote correction off", wire, stale, old_quote=False),
        score_tbt("quotes never stale", wire, math.inf, old_quote=True),
        score_naive(wire, stale),
        score_trades_only(wire),
    ]
    snapshot = [
        score_snapshot(
            "snapshot, RTVolume", emulate_samples(events, source.start_time, True), trades
        ),
        score_snapshot(
            "snapshot, volume only (all BVC)",
            emulate_samples(events, source.start_time, False),
            trades,
        ),
        tbt_bar_score(wire, stale, trades),
    ]
    scoring_s = time.perf_counter() - t0
    rate, base = speed(wire, stale)
    if args.json:
        print(json.dumps(figures(tbt, snapshot, rate, base), indent=2))
        return 0

    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else math.nan
    lines = [
        f"flow accuracy: {args.data.name}, {len(trades):,} trades, {len(events) - len(trades):,} "
        f"quotes, replay seed {args.seed}, quote_stale_s {stale:g}",
        f"machine: {platform.platform()}, {os.cpu_count()} CPUs, "
        f"{platform.python_implementation()} {platform.python_version()}, load avg (1 min) "
        f"{load:.2f}",
        f"code: classify.py + replay.py sha1 {source_state()}; scoring took {scoring_s:.1f} s",
        "",
        "tick-by-tick, per trade against ibsim's true aggressor (times truncated to seconds):",
    ]
    render_tbt(tbt, lines)
    shipped = tbt[0].accuracy
    lines += [
        f"target: >= {100 * TARGET:g}% per trade in tick-by-tick mode: "
        f"{'met' if shipped >= TARGET else 'NOT met'} ({_pct(shipped)})",
        "",
        f"snapshot ({1000 * SNAPSHOT_INTERVAL:g} ms samples), {BAR_S} s bar delta against the "
        "true delta (MAE/vol: error over mean bar volume):",
    ]
    render_snapshot(snapshot, lines)
    lines += [
        "",
        f"speed: TickClassifier {rate:,.0f} events/s (quotes + trades), baseline (Print "
        f"allocation only, trades) {base:,.0f}/s: ratio {rate / base:.2f} "
        f"(best of 5 x {SPEED_EVENTS:,} events)",
    ]
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
