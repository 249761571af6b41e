"""What has already traded: the tape behind `reqHistoricalTicks` and `reqHistoricalData`.

The feed appends every event it serves, so history and the live stream come from the same
source and a client warming up mid-session sees exactly what it would have seen live.
Bounded: past `max_events` the oldest half is dropped (a soak must not grow without end).
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Generic, Protocol, TypeVar

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
T_co = TypeVar("T_co", TradeTick, QuoteTick, covariant=True)


class Series(Protocol[T_co]):
    """What the historical services read of a tape: the live one or a derived one."""

    def window(self, start: float | None, end: float | None, count: int) -> Sequence[T_co]: ...

    def between(self, start: float, end: float) -> Sequence[T_co]: ...

    def first(self) -> T_co | None: ...

    def before(self, t: float) -> T_co | None: ...


class Tape(Protocol):
    """Trades and quotes of one contract, as `History` and `curve.DerivedHistory` hold them."""

    @property
    def trades(self) -> Series[TradeTick]: ...

    @property
    def quotes(self) -> Series[QuoteTick]: ...


class TimeSeries(Generic[T]):
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

    def first(self) -> T | None:
        return self._items[0] if self._items else None

    def before(self, t: float) -> T | None:
        """The last item strictly before `t` (the one in force at `t`)."""
        i = bisect.bisect_left(self._times, t)
        return self._items[i - 1] if i else None

    def forward(self, start: float | None, end: float | None) -> Iterator[T]:
        """Items from `start` on, up to and including `end`, oldest first."""
        lo = 0 if start is None else bisect.bisect_left(self._times, start)
        hi = len(self._items) if end is None else bisect.bisect_right(self._times, end)
        return (self._items[i] for i in range(lo, hi))

    def backward(self, end: float | None) -> Iterator[T]:
        """Items up to and including `end`, newest first."""
        hi = len(self._items) if end is None else bisect.bisect_right(self._times, end)
        return (self._items[i] for i in range(hi - 1, -1, -1))

    @property
    def last_time(self) -> float:
        return self._times[-1] if self._times else -math.inf

    def __len__(self) -> int:
        return len(self._items)


class History:
    """Trades and quotes served so far, for one contract."""

    def __init__(self, max_events: int = 2_000_000) -> None:
        self.trades: TimeSeries[TradeTick] = TimeSeries(max_events)
        self.quotes: TimeSeries[QuoteTick] = TimeSeries(max_events)

    def bars(self, start: float, end: float, bar_seconds: int) -> list[Bar]:
        """Time bars of trades in [start, end), aligned to multiples of `bar_seconds`."""
        return bars_of(self, start, end, bar_seconds)

    @property
    def last_time(self) -> float:
        """Time of the latest event served (-inf before the first)."""
        return max(self.trades.last_time, self.quotes.last_time)


def bars_of(tape: Tape, start: float, end: float, bar_seconds: int) -> list[Bar]:
    """Time bars of the trades of `tape` in [start, end), aligned to multiples of
    `bar_seconds`; a bucket without trades has no bar."""
    out: list[Bar] = []
    first = math.floor(start / bar_seconds) * bar_seconds
    current: list[TradeTick] = []
    bucket = first
    for trade in tape.trades.between(first, end):
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
