"""VWAP and its standard deviation from running sums of v, p*v and p^2*v.

Sums are kept in ticks relative to a reference tick (the first one folded in), so the
variance E[p^2] - E[p]^2 is taken of small numbers and loses no precision; they become prices
of the instrument only when read.
"""

from __future__ import annotations

import math
from typing import NamedTuple

from daemon.core.instrument import Instrument


class VwapBands(NamedTuple):
    vwap: float
    sd: float  # volume-weighted standard deviation of price around the VWAP

    @property
    def upper1(self) -> float:
        return self.vwap + self.sd

    @property
    def lower1(self) -> float:
        return self.vwap - self.sd

    @property
    def upper2(self) -> float:
        return self.vwap + 2 * self.sd

    @property
    def lower2(self) -> float:
        return self.vwap - 2 * self.sd


class Moments:
    """Volume-weighted sums of `instrument`'s ticks; fold footprints in, read VWAP and SD out."""

    __slots__ = ("_per_point", "instrument", "ref", "v", "v_t", "v_t2")

    def __init__(self, instrument: Instrument) -> None:
        self.instrument = instrument
        self._per_point = float(instrument.ticks_per_point)
        self.ref: int | None = None
        self.v = 0.0
        self.v_t = 0.0
        self.v_t2 = 0.0

    def copy(self) -> Moments:
        other = Moments(self.instrument)
        other.ref, other.v, other.v_t, other.v_t2 = self.ref, self.v, self.v_t, self.v_t2
        return other

    def add_footprint(self, footprint: dict[int, list[float]]) -> None:
        ref = self.ref
        v = v_t = v_t2 = 0.0
        for tick, level in footprint.items():
            if ref is None:
                ref = tick
            volume = level[0] + level[1] + level[2]
            d = tick - ref
            v += volume
            v_t += volume * d
            v_t2 += volume * d * d
        self.ref = ref
        self.v += v
        self.v_t += v_t
        self.v_t2 += v_t2

    def vwap(self) -> float | None:
        if self.ref is None or not self.v > 0:
            return None
        return (self.ref + self.v_t / self.v) / self._per_point

    def bands(self) -> VwapBands | None:
        """VWAP and SD, or None before any volume."""
        if self.ref is None or not self.v > 0:
            return None
        mean = self.v_t / self.v
        variance = max(self.v_t2 / self.v - mean * mean, 0.0)  # rounding may dip below 0
        per_point = self._per_point
        return VwapBands((self.ref + mean) / per_point, math.sqrt(variance) / per_point)
