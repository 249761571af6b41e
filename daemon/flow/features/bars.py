"""Bars: the `Bar` record, time-bar alignment, and the volume-bar builder.

A bar always holds at least one print (no empty bars). While a bar is open only its footprint,
high/low, running delta and trade count move per print; the totals (volume, buy, sell,
unclassified), VWAP and POC are derived from the footprint by `refresh_totals` when the bar
closes or is read, and the imbalances by `finish` at close. Prices are the instrument's: a tick
index divided by its ticks per point (a whole number, so 23453 / 10 is exactly 2345.3).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, time, timedelta

from daemon.core.instrument import Instrument
from daemon.flow.features.footprint import ASK, BID, diagonal_imbalances, stacked_runs
from daemon.flow.features.profile import point_of_control
from daemon.flow.sessions import CENTRAL
from daemon.settings import FlowSettings


@dataclass(slots=True)
class Bar:
    """One time or volume bar of prints, with its footprint. Prices are the instrument's
    `tick_price`s; footprint and imbalance keys are its tick indexes."""

    kind: str  # "time" | "volume"
    start: float  # time bars: aligned start, or the session boundary after it; volume: 1st print
    end: float  # time bars: aligned end, or the session boundary before it; volume: last print
    open: float
    high: float
    low: float
    close: float
    volume: float = 0.0
    buy_volume: float = 0.0
    sell_volume: float = 0.0
    unclassified: float = 0.0
    delta: float = 0.0  # buy - sell, running
    delta_min: float = 0.0  # extremes of the running delta after each print of the bar
    delta_max: float = 0.0
    trades: int = 0  # prints; a volume-bar split counts the print in every bar it reaches
    footprint: dict[int, list[float]] = field(default_factory=dict)  # tick -> [bid, ask, uncl.]
    buy_imbalances: list[int] = field(default_factory=list)  # ticks, filled at close
    sell_imbalances: list[int] = field(default_factory=list)
    stacked_buy: list[tuple[int, int]] = field(default_factory=list)  # (low_tick, high_tick)
    stacked_sell: list[tuple[int, int]] = field(default_factory=list)
    vwap: float | None = None  # of the bar's prints
    poc: float | None = None  # price with the most volume (tie rule as in `profile`)
    session: float | None = None  # start of the Globex session it belongs to; None: no session
    rth: bool = False  # inside RTH (time bars wholly; volume bars at their first print)


def new_bar(
    kind: str,
    start: float,
    end: float,
    tick: int,
    session: float | None,
    rth: bool,
    instrument: Instrument,
) -> Bar:
    price = instrument.tick_price(tick)
    return Bar(kind, start, end, price, price, price, price, session=session, rth=rth)


def add_to_bar(bar: Bar, tick: int, size: float, buy: float, sell: float, per_point: float) -> None:
    """One print (or part of one) into an open bar; the volume bars' path. `per_point`: the
    instrument's ticks per point, as a float."""
    footprint = bar.footprint
    level = footprint.get(tick)
    if level is None:
        footprint[tick] = level = [0.0, 0.0, 0.0]
        price = tick / per_point
        if price > bar.high:
            bar.high = price
        elif price < bar.low:
            bar.low = price
    level[0] += sell
    level[1] += buy
    level[2] += size - buy - sell
    bar.close = tick / per_point
    running = bar.delta + buy - sell
    bar.delta = running
    if bar.trades == 0:
        bar.delta_min = bar.delta_max = running
    elif running > bar.delta_max:
        bar.delta_max = running
    elif running < bar.delta_min:
        bar.delta_min = running
    bar.trades += 1


def refresh_totals(bar: Bar, instrument: Instrument) -> None:
    """Volume, buy, sell, unclassified, VWAP and POC of `bar` from its footprint."""
    buy = sell = unclassified = weighted = 0.0
    volumes: dict[int, float] = {}
    for tick, level in bar.footprint.items():
        sell += level[BID]
        buy += level[ASK]
        unclassified += level[2]
        volume = level[0] + level[1] + level[2]
        volumes[tick] = volume
        weighted += volume * tick
    total = buy + sell + unclassified
    bar.buy_volume, bar.sell_volume, bar.unclassified, bar.volume = buy, sell, unclassified, total
    bar.vwap = weighted / total / instrument.ticks_per_point if total > 0 else None
    poc = point_of_control(volumes)
    bar.poc = None if poc is None else instrument.tick_price(poc)


def finish(bar: Bar, flow: FlowSettings, instrument: Instrument) -> None:
    """Totals and imbalances of a bar that just closed."""
    refresh_totals(bar, instrument)
    buys, sells = diagonal_imbalances(
        bar.footprint, flow.imbalance_ratio, flow.imbalance_min_volume
    )
    bar.buy_imbalances, bar.sell_imbalances = buys, sells
    bar.stacked_buy = stacked_runs(buys, flow.stacked_levels)
    bar.stacked_sell = stacked_runs(sells, flow.stacked_levels)


class BarClock:
    """Time-bar boundaries: multiples of `seconds` from US/Central midnight.

    A DST day is 23 or 25 hours long: its last bar ends at the next midnight, so a bar length
    that does not divide the day is cut short there.
    """

    __slots__ = ("_day_end", "_day_start", "seconds")

    def __init__(self, seconds: int) -> None:
        self.seconds = seconds
        self._day_start = 0.0
        self._day_end = 0.0

    def bounds(self, t: float) -> tuple[float, float]:
        """[start, end) of the aligned bar containing `t`."""
        if not self._day_start <= t < self._day_end:
            day = datetime.fromtimestamp(t, CENTRAL).date()
            self._day_start = datetime.combine(day, time(0), CENTRAL).timestamp()
            self._day_end = datetime.combine(day + timedelta(days=1), time(0), CENTRAL).timestamp()
        start = self._day_start + (t - self._day_start) // self.seconds * self.seconds
        return start, min(start + self.seconds, self._day_end)


def _fit(size: float, buy: float, sell: float) -> tuple[float, float]:
    """(buy, sell) trimmed so that buy + sell <= size after float rounding."""
    excess = buy + sell - size
    if excess > 0:
        if buy >= sell:
            buy -= excess
        else:
            sell -= excess
    return buy, sell


def _split(size: float, buy: float, sell: float, room: float) -> tuple[float, float]:
    """The (buy, sell) share of `room` contracts out of a print, proportional to its parts."""
    share = room / size
    return _fit(room, buy * share, sell * share)


class VolumeBars:
    """Builds bars of exactly `contracts` each; a print that overflows is split across bars.

    Volumes are compared with a relative tolerance of 1e-9, so float rounding of split parts
    never leaves a sliver bar. `session` and `rth` (set by the owner as the clock crosses
    session boundaries) tag each bar at its first print.
    """

    __slots__ = (
        "_filled",
        "_full",
        "_instrument",
        "_on_close",
        "_per_point",
        "bar",
        "contracts",
        "rth",
        "session",
    )

    def __init__(
        self, contracts: int, on_close: Callable[[Bar], None], instrument: Instrument
    ) -> None:
        self._instrument = instrument
        self._per_point = float(instrument.ticks_per_point)
        self.contracts = float(contracts)
        self._full = contracts * (1 - 1e-9)  # a bar this full is closed
        self._on_close = on_close
        self._filled = 0.0
        self.bar: Bar | None = None
        self.session: float | None = None
        self.rth = False

    def add(self, t: float, tick: int, size: float, buy: float, sell: float) -> None:
        bar = self.bar
        filled = self._filled + size
        if bar is not None and filled < self._full:  # the common case: it fits, bar stays open
            self._filled = filled
            bar.end = t
            add_to_bar(bar, tick, size, buy, sell, self._per_point)
            return
        while True:
            bar = self.bar
            if bar is None:
                bar = self.bar = new_bar(
                    "volume", t, t, tick, self.session, self.rth, self._instrument
                )
                self._filled = 0.0
            bar.end = t
            room = self.contracts - self._filled
            if self._filled + size <= self.contracts * (1 + 1e-9):
                buy, sell = _fit(size, buy, sell)
                add_to_bar(bar, tick, size, buy, sell, self._per_point)
                self._filled += size
                if self._filled >= self._full:
                    self.close()
                return
            part_buy, part_sell = _split(size, buy, sell, room)
            add_to_bar(bar, tick, room, part_buy, part_sell, self._per_point)
            self.close()
            size -= room
            buy = max(buy - part_buy, 0.0)
            sell = max(sell - part_sell, 0.0)

    def close(self) -> None:
        """Close the open bar, full or not (a session boundary, the end of input)."""
        bar = self.bar
        if bar is not None:
            self.bar = None
            self._on_close(bar)
