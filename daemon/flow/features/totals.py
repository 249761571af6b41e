"""Running totals of one session (Globex day or RTH): volumes, CVD, VWAP sums, profile.

Bars are folded in when they close (O(price levels) per bar); a read combines the closed
totals with the open bar's footprint, so the per-print path never touches them.
"""

from __future__ import annotations

from typing import NamedTuple

from daemon.core.instrument import Instrument
from daemon.flow.features.bars import Bar, refresh_totals
from daemon.flow.features.profile import add_footprint, value_area
from daemon.flow.features.vwap import Moments, VwapBands


class SessionView(NamedTuple):
    volume: float
    buy_volume: float
    sell_volume: float
    unclassified: float
    cvd: float
    bands: VwapBands | None
    poc: float | None
    vah: float | None
    val: float | None


class SessionTotals:
    """Closed bars' totals for the session starting at `start` (None: no session yet); prices
    on `instrument`'s grid."""

    __slots__ = (
        "buy_volume",
        "cvd",
        "instrument",
        "moments",
        "profile",
        "sell_volume",
        "start",
        "unclassified",
        "volume",
    )

    def __init__(self, start: float | None, instrument: Instrument) -> None:
        self.start = start
        self.instrument = instrument
        self.volume = 0.0
        self.buy_volume = 0.0
        self.sell_volume = 0.0
        self.unclassified = 0.0
        self.cvd = 0.0  # sum of the bars' running deltas
        self.profile: dict[int, float] = {}
        self.moments = Moments(instrument)

    def fold(self, bar: Bar) -> None:
        """Add a closed bar (its totals already refreshed)."""
        self.volume += bar.volume
        self.buy_volume += bar.buy_volume
        self.sell_volume += bar.sell_volume
        self.unclassified += bar.unclassified
        self.cvd += bar.delta
        add_footprint(self.profile, bar.footprint)
        self.moments.add_footprint(bar.footprint)

    def view(self, open_bar: Bar | None, value_share: float) -> SessionView:
        """The totals including `open_bar` (which must belong to this session), if any."""
        volume, buy, sell = self.volume, self.buy_volume, self.sell_volume
        unclassified, cvd = self.unclassified, self.cvd
        profile, moments = self.profile, self.moments
        if open_bar is not None:
            refresh_totals(open_bar, self.instrument)
            volume += open_bar.volume
            buy += open_bar.buy_volume
            sell += open_bar.sell_volume
            unclassified += open_bar.unclassified
            cvd += open_bar.delta
            profile = dict(profile)
            add_footprint(profile, open_bar.footprint)
            moments = moments.copy()
            moments.add_footprint(open_bar.footprint)
        area = value_area(profile, value_share)
        price = self.instrument.tick_price
        return SessionView(
            volume,
            buy,
            sell,
            unclassified,
            cvd,
            moments.bands(),
            None if area is None else price(area.poc),
            None if area is None else price(area.high),
            None if area is None else price(area.low),
        )
