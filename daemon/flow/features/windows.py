"""Rolling delta over the last N seconds and trade intensity, from per-second buckets.

A window of N seconds at clock second S holds the prints of seconds S-N+1 .. S: the current
(partial) second counts whole. Each finished second that traded is queued with the running
totals (delta, volume, trades) up to its end; a window's sum is the running total now minus
the one just before the window, found by bisection on read. Rolling a second is O(1) whatever
the trade rate or the number of windows; quiet gaps cost nothing. The totals restart from zero
whenever the queue empties (the daily break), so they never grow large enough to lose
precision.
"""

from __future__ import annotations

import bisect
import math
from collections import deque
from collections.abc import Sequence

_NONE = -(2**62)  # no bucket open yet


class RollingFlow:
    """Per-second buckets of delta, volume and trades; the hot path adds to the open bucket."""

    __slots__ = (
        "_base",
        "_buckets",
        "_longest",
        "_total_delta",
        "_total_trades",
        "_total_volume",
        "delta",
        "intensity_seconds",
        "second",
        "trades",
        "volume",
    )

    def __init__(self, delta_windows: Sequence[int], intensity_window: float) -> None:
        self.intensity_seconds = max(1, math.ceil(intensity_window))
        self._longest = max([*delta_windows, self.intensity_seconds])
        # finished seconds that traded: (second, total delta, total volume, total trades)
        self._buckets: deque[tuple[int, float, float, int]] = deque()
        self._base: tuple[int, float, float, int] = (_NONE, 0.0, 0.0, 0)  # before buckets[0]
        self._total_delta = 0.0  # running totals through the last queued bucket
        self._total_volume = 0.0
        self._total_trades = 0
        self.second = _NONE  # the open bucket
        self.delta = 0.0
        self.volume = 0.0
        self.trades = 0

    def roll(self, second: int) -> None:
        """Finish the open bucket and open `second` (> the open one)."""
        buckets = self._buckets
        if self.trades:  # seconds without trades are never queued
            self._total_delta += self.delta
            self._total_volume += self.volume
            self._total_trades += self.trades
            buckets.append((self.second, self._total_delta, self._total_volume, self._total_trades))
            self.delta = self.volume = 0.0
            self.trades = 0
        self.second = second
        oldest = second - self._longest  # this second and older are in no window
        while buckets and buckets[0][0] <= oldest:
            self._base = buckets.popleft()
        if not buckets:
            self._base = (_NONE, 0.0, 0.0, 0)
            self._total_delta = self._total_volume = 0.0
            self._total_trades = 0

    def advance(self, second: int) -> None:
        if second > self.second:
            self.roll(second)

    def _before(self, window: int) -> tuple[int, float, float, int]:
        """The running totals just before the window's first second."""
        buckets = self._buckets
        i = bisect.bisect_left(buckets, (self.second - window + 1,))
        return buckets[i - 1] if i else self._base

    def delta_over(self, window: int) -> float:
        before = self._before(window)
        return self._total_delta - before[1] + self.delta

    def intensity(self) -> tuple[float, float]:
        """(trades per second, contracts per second) over the intensity window."""
        seconds = self.intensity_seconds
        before = self._before(seconds)
        trades = self._total_trades - before[3] + self.trades
        volume = self._total_volume - before[2] + self.volume if trades else 0.0
        return trades / seconds, volume / seconds
