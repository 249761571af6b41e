"""Snapshot samples (`reqMktData`) taken apart for the tick guard: quote, last, cumulative
volume and RtVolume prints, each judged on its own.

NaN there follows ib_async's convention, "not sent / empty level": a NaN bid, ask, size, last
or volume is absent, not counted. Every other bad value is counted once per sample.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

from daemon.flow.events import DataMode, RtPrint, SnapshotEvent
from daemon.flow.tick_checks import HUGE, UNSET_MARKERS, Reason, price_reason, size_reason

Reject = Callable[[Reason, object], object]
"""A rejection counted against the event it came with."""


@dataclass(slots=True)
class SnapshotCheck:
    """What a SnapshotEvent leaves after the guard."""

    quote: tuple[int, int, float, float] | None  # (bid_tick, ask_tick, bid_size, ask_size)
    last_tick: int | None  # valid last price as a tick index (not spike-checked)
    volume_increment: float | None  # None for the first sample and after a reset
    prints: list[tuple[int, float, float, bool]]  # accepted RtPrints: (tick, size, time, single)


class SampleGuard:
    """The part of `TickGuard` only samples need: the cumulative volume baseline and the
    RtVolume print count. The quote, last and prints are judged by the tick guard's own rules,
    through the callables it passes in: `count` (a rejection), `reject_trade` (one on the trade
    stream), `take_quote` (bid, ask, sizes, time, event → ticks or None, counted), `tick_of` and
    `judge_print` (spike logic: the prints to take now, in order)."""

    __slots__ = (
        "_count",
        "_judge_print",
        "_print_reset",
        "_print_total",
        "_reject_trade",
        "_take_quote",
        "_tick_of",
        "volume",
    )

    def __init__(
        self,
        *,
        count: Reject,
        reject_trade: Reject,
        take_quote: Callable[[float, float, float, float, float, object], tuple[int, int] | None],
        tick_of: Callable[[float], int | None],
        judge_print: Callable[[RtPrint, int, float], list[tuple[RtPrint, int, float]]],
    ) -> None:
        self._count = count
        self._reject_trade = reject_trade
        self._take_quote = take_quote
        self._tick_of = tick_of
        self._judge_print = judge_print
        self.volume: float | None = None
        """The cumulative volume baseline; None before the first valid volume."""
        self._print_total = float("-inf")  # newest RtPrint total volume seen on a valid print
        self._print_reset = False  # a volume reset was seen: the next lower print total is new

    def check(self, ev: SnapshotEvent) -> SnapshotCheck:
        """Judge each part of a sample on its own; one count per problem per sample.

        A sample in tick-by-tick mode serves volume reconciliation only: its quote, last and
        prints duplicate the BidAsk/AllLast feeds, so they are neither judged nor counted twice.
        """
        increment = self._check_volume(ev)
        if ev.mode is DataMode.TICK_BY_TICK:
            return SnapshotCheck(quote=None, last_tick=None, volume_increment=increment, prints=[])
        return SnapshotCheck(
            quote=self._check_quote(ev),
            last_tick=self._check_last(ev),
            volume_increment=increment,
            prints=self._check_prints(ev),
        )

    def _check_quote(self, ev: SnapshotEvent) -> tuple[int, int, float, float] | None:
        bid, ask, bid_size, ask_size = ev.bid, ev.ask, ev.bid_size, ev.ask_size
        if bid != bid or ask != ask or bid_size != bid_size or ask_size != ask_size:
            return None  # NaN: no quote in this sample (ib_async's empty level)
        ticks = self._take_quote(bid, ask, bid_size, ask_size, ev.exchange_time, ev)
        return None if ticks is None else (ticks[0], ticks[1], bid_size, ask_size)

    def _check_last(self, ev: SnapshotEvent) -> int | None:
        last = ev.last
        if last != last:
            return None
        if not 0.0 < last < HUGE:
            self._reject_trade(price_reason(last), ev)
            return None
        tick = self._tick_of(last)
        if tick is None:
            self._reject_trade(Reason.OFF_GRID, ev)
        return tick

    def _check_volume(self, ev: SnapshotEvent) -> float | None:
        """The volume increment; None for the first sample, a missing volume or a reset."""
        volume = ev.volume
        if volume != volume:
            return None
        if not 0.0 <= volume < HUGE:
            self._count(size_reason(volume), ev)
            return None
        previous = self.volume
        self.volume = volume
        if previous is None:
            return None
        if volume < previous:
            self._count(Reason.VOLUME_RESET, ev)
            self._print_reset = True
            return None
        return volume - previous

    def _check_prints(self, ev: SnapshotEvent) -> list[tuple[int, float, float, bool]]:
        accepted: list[tuple[int, float, float, bool]] = []
        reject = self._reject_trade
        for p in ev.prints:
            total = p.total_volume
            if total <= self._print_total:
                if not self._print_reset:
                    reject(Reason.DUPLICATE, p)
                    continue
                # After a volume reset, the first print counted from zero again re-baselines
                # (prints of the old count may still come first in the same sample).
                self._print_reset = False
            price = p.price
            if not 0.0 < price < HUGE:
                reject(price_reason(price), p)
                continue
            size = p.size
            if not 0.0 < size < HUGE:
                reject(size_reason(size), p)
                continue
            if total in UNSET_MARKERS:
                reject(Reason.UNSET, p)
                continue
            tick = self._tick_of(price)
            if tick is None:
                reject(Reason.OFF_GRID, p)
                continue
            if math.isfinite(total):
                self._print_total = total
            for item, item_tick, time in self._judge_print(p, tick, p.time):
                accepted.append((item_tick, item.size, time, item.single))
        return accepted
