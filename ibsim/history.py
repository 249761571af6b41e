"""What has already traded: the tape behind `reqHistoricalTicks` and `reqHistoricalData`.

The feed appends every event it serves, so history and the live stream come from the same
source and a client warming up mid-session sees exactly what it would have seen live.
Bounded: past `max_events` the oldest half is dropped (a soak must not grow without end).
"""

from __future__ import annotations

import bisect
import math
from dataclasses import dataclass
from typing import Generic, TypeVar

from ibsim.model import QuoteTick, TradeTick

MAX_TICKS_PER_REQUEST = 1000


@dataclass(frozen=True, slots=True)
class Bar:
    start: float
    open: float
    high: float
    low: float
    close: float
    volume: int
    wap: float
    count: int


T = TypeVar("T", TradeTick, QuoteTick)


class _Series(Generic[T]):
    __slots__ = ("_items", "_max", "_times")

    def __init__(self, max_events: int) -> None:
        self._times: list[float] = []
        self._items: list[T] = []
        self._max = max_events

    def append(self, item: T) -> None:
        self._times.append(item.time)
        self._items.append(item)
        if len(self._items) > self._max:
            half = len(self._items) // 2
            del self._times[:half]
            del self._items[:half]

    def window(self, start: float | None, end: float | None, count: int) -> list[T]:
        """Up to `count` items: from `start` forward, or else ending at `end` backward."""
        count = max(0, min(count, MAX_TICKS_PER_REQUEST))
        if start is not None:
            lo = bisect.bisect_left(self._times, start)
            hi = len(self._items) if end is None else bisect.bisect_right(self._times, end)
            return self._items[lo : min(hi, lo + count)]
        hi = len(self._items) if end is None else bisect.bisect_right(self._times, end)
        return self._items[max(0, hi - count) : hi]

    def between(self, start: float, end: float) -> list[T]:
        lo = bisect.bisect_left(self._times, start)
        hi = bisect.bisect_left(self._times, end)
        return self._items[lo:hi]

    def __len__(self) -> int:
        return len(self._items)


class History:
    """Trades and quotes served so far, for one contract."""

    def __init__(self, max_events: int = 2_000_000) -> None:
        self.trades: _Series[TradeTick] = _Series(max_events)
        self.quotes: _Series[QuoteTick] = _Series(max_events)

    def bars(self, start: float, end: float, bar_seconds: int) -> list[Bar]:
        """Time bars of trades in [start, end), aligned to multiples of `bar_seconds`."""
        out: list[Bar] = []
        first = math.floor(start / bar_seconds) * bar_seconds
        current: list[TradeTick] = []
        bucket = first
        for trade in self.trades.between(first, end):
            b = math.floor(trade.time / bar_seconds) * bar_seconds
            if b != bucket and current:
                out.append(_bar(bucket, current))
                current = []
            bucket = b
            current.append(trade)
        if current:
            out.append(_bar(bucket, current))
        return out


def _bar(start: float, trades: list[TradeTick]) -> Bar:
    volume = sum(t.size for t in trades)
    prices = [t.price for t in trades]
    wap = sum(t.price * t.size for t in trades) / volume
    return Bar(start, prices[0], max(prices), min(prices), prices[-1], volume, wap, len(trades))
