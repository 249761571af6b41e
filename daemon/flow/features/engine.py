"""`Features`: every order-flow feature, fed print by print, across session boundaries.

The clock is the newest event time seen; an older print counts at the clock (it joins the open
bar, never a closed one). Session state is cached with the time it stays valid: inside a span
until the span's end; outside, until the next whole minute (session boundaries are whole
minutes: IB lists HHMM, the CME rule whole hours), which also lets a new time bar find any
boundary inside its span by probing whole minutes. One "wake" time, the earliest of that
recheck, the open bar's end and the next second, is all a print compares against.

Prints and quotes come as tick indexes of the instrument; prices go out on its grid.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable

from daemon.core.instrument import Instrument
from daemon.flow.features.bars import Bar, BarClock, VolumeBars, finish, new_bar, refresh_totals
from daemon.flow.features.book import TopOfBook
from daemon.flow.features.snapshot import FlowSnapshot
from daemon.flow.features.totals import SessionTotals
from daemon.flow.features.windows import RollingFlow
from daemon.flow.prints import Print
from daemon.flow.sessions import SessionSchedule, Span
from daemon.settings import FlowSettings

_NEVER = -math.inf


class Features:
    """Bars, footprints, CVD, VWAP, profiles, rolling windows and book features.

    `on_bar` is called with every bar as it closes (time and volume bars), after its totals
    and imbalances are filled in.
    """

    def __init__(
        self,
        flow: FlowSettings,
        schedule: SessionSchedule,
        on_bar: Callable[[Bar], None] | None = None,
        *,
        instrument: Instrument,
    ) -> None:
        self._instrument = instrument
        self._per_point = float(instrument.ticks_per_point)  # hot path: tick / per_point
        self._flow = flow
        self._schedule = schedule
        self._on_bar = on_bar
        self.time_bars: deque[Bar] = deque(maxlen=flow.bars_kept)
        self.volume_bars: deque[Bar] = deque(maxlen=flow.bars_kept)
        self._bar_clock = BarClock(flow.bar)
        self._bar: Bar | None = None  # the open time bar
        self._bar_end = math.inf  # its end; inf when none is open
        self._last_tick: int | None = None
        self._volume_bars = (
            VolumeBars(flow.volume_bar, self._volume_bar_closed, instrument)
            if flow.volume_bar
            else None
        )
        self._windows = RollingFlow(flow.delta_windows_s, flow.intensity_window_s)
        self._book = TopOfBook(instrument)
        self._clock = _NEVER
        self._origin: float | None = None  # the first event time: windows are full after it
        self._globex: Span | None = None
        self._globex_until = _NEVER  # recheck the Globex session at this time
        self._rth: Span | None = None
        self._rth_until = _NEVER
        self._recheck = _NEVER
        self._wake = _NEVER  # the earliest of: recheck, the open bar's end, the next second
        self._segment_since = _NEVER  # the latest session boundary crossed
        self._session = SessionTotals(None, instrument)
        self._rth_totals: SessionTotals | None = None
        self._partial = False

    # --- events ---------------------------------------------------------------------------------

    def on_print(self, p: Print) -> None:
        """One classified print: the hot path."""
        t = p.time
        if t > self._clock:
            self._clock = t
        else:
            t = self._clock
        tick = p.tick
        buy = p.buy
        sell = p.sell
        size = p.size
        delta = buy - sell
        bar = self._bar
        if t >= self._wake or bar is None:
            self._catch_up(t)
            bar = self._bar
            if bar is None:
                bar = self._open_time_bar(t, tick, delta)
        footprint = bar.footprint
        level = footprint.get(tick)
        if level is None:
            footprint[tick] = level = [0.0, 0.0, 0.0]
            price = tick / self._per_point
            if price > bar.high:
                bar.high = price
            elif price < bar.low:
                bar.low = price
        level[0] += sell
        level[1] += buy
        level[2] += size - buy - sell
        running = bar.delta + delta
        bar.delta = running
        if running > bar.delta_max:
            bar.delta_max = running
        elif running < bar.delta_min:
            bar.delta_min = running
        bar.trades += 1
        self._last_tick = tick  # the open bar's close, set on it when read or closed
        windows = self._windows
        windows.delta += delta
        windows.volume += size
        windows.trades += 1
        if self._volume_bars is not None:
            self._volume_bars.add(t, tick, size, buy, sell)

    def on_quote(
        self, bid_tick: int, ask_tick: int, bid_size: float, ask_size: float, time: float
    ) -> None:
        """A validated top of book; its time moves the clock like `advance`."""
        self._book.update(bid_tick, ask_tick, bid_size, ask_size, time)
        self.advance(time)

    def advance(self, t: float) -> None:
        """The clock moved to `t`: close a time bar that ended, cross session boundaries."""
        if t > self._clock:
            self._clock = t
        if self._clock >= self._wake:
            self._catch_up(self._clock)

    def flush(self) -> None:
        """End of input: close the open time and volume bars (each reaches `on_bar`)."""
        if self._bar is not None:
            self._close_time_bar(self._bar_end)
        if self._volume_bars is not None:
            self._volume_bars.close()
        self._wake = _NEVER

    def mark_partial(self, partial: bool) -> None:
        """Session features lack history (or no longer do); cleared when a new session starts."""
        self._partial = partial

    # --- reads ----------------------------------------------------------------------------------

    @property
    def open_bar(self) -> Bar | None:
        """The time bar being built, its totals brought up to date (read-only use)."""
        bar = self._bar
        if bar is not None:
            self._update_close(bar)
            refresh_totals(bar, self._instrument)
        return bar

    @property
    def last_price(self) -> float | None:
        """Price of the last accepted print, O(1)."""
        return None if self._last_tick is None else self._instrument.tick_price(self._last_tick)

    @property
    def quote(self) -> tuple[float | None, float | None]:
        """The last accepted bid and ask, O(1); None where there is none yet."""
        return self._book.bid, self._book.ask

    @property
    def clock(self) -> float | None:
        """The newest event time seen (prints, quotes, advance); None before any."""
        return None if self._clock == _NEVER else self._clock

    @property
    def cvd_session(self) -> float:
        """Session CVD now, O(1): the session's closed bars plus the open bar if it is in it."""
        bar, totals = self._bar, self._session
        if bar is not None and bar.session is not None and bar.session == totals.start:
            return totals.cvd + bar.delta
        return totals.cvd

    def snapshot(self) -> FlowSnapshot:
        """All features now; O(price levels of the session)."""
        flow = self._flow
        time = self._clock if self._clock != _NEVER else None
        windows = self._windows
        if time is not None:
            windows.advance(int(time))
        bar = self._bar
        if bar is not None:
            self._update_close(bar)
        totals = self._session
        in_totals = bar is not None and bar.session is not None and bar.session == totals.start
        session = totals.view(bar if in_totals else None, flow.value_area)
        rth = None
        if self._rth_totals is not None and self._rth is not None:
            in_rth = bar if bar is not None and bar.rth else None
            rth = self._rth_totals.view(in_rth, flow.value_area)
        trades_per_s = contracts_per_s = None
        origin = self._origin
        if time is not None and origin is not None and time - origin >= windows.intensity_seconds:
            trades_per_s, contracts_per_s = windows.intensity()
        bands = session.bands
        rth_bands = rth.bands if rth is not None else None
        book = self._book
        return FlowSnapshot(
            time=time,
            last=self.last_price,
            bid=book.bid,
            ask=book.ask,
            session_start=totals.start,
            in_session=self._globex is not None,
            session_volume=session.volume,
            session_buy_volume=session.buy_volume,
            session_sell_volume=session.sell_volume,
            session_unclassified=session.unclassified,
            cvd_session=session.cvd,
            rth=self._rth is not None,
            rth_start=None if self._rth is None else self._rth.start,
            cvd_rth=None if rth is None else rth.cvd,
            rth_volume=None if rth is None else rth.volume,
            delta_windows={w: windows.delta_over(w) for w in flow.delta_windows_s},
            vwap=None if bands is None else bands.vwap,
            vwap_sd=None if bands is None else bands.sd,
            vwap_upper1=None if bands is None else bands.upper1,
            vwap_lower1=None if bands is None else bands.lower1,
            vwap_upper2=None if bands is None else bands.upper2,
            vwap_lower2=None if bands is None else bands.lower2,
            rth_vwap=None if rth_bands is None else rth_bands.vwap,
            rth_vwap_sd=None if rth_bands is None else rth_bands.sd,
            poc=session.poc,
            vah=session.vah,
            val=session.val,
            rth_poc=None if rth is None else rth.poc,
            rth_vah=None if rth is None else rth.vah,
            rth_val=None if rth is None else rth.val,
            book_imbalance=book.imbalance(),
            microprice=book.microprice(),
            trades_per_s=trades_per_s,
            contracts_per_s=contracts_per_s,
            session_partial=self._partial,
        )

    def _catch_up(self, t: float) -> None:
        """Everything due by `t`: session boundaries, the open bar's end, the one-second bucket.

        `_wake` is the earliest time anything is due again, so a print checks one number.
        """
        if t >= self._recheck:
            self._cross(t)
        if self._bar is not None and t >= self._bar_end:
            self._close_time_bar(self._bar_end)
        second = int(t)  # floor: epoch seconds are positive
        windows = self._windows
        if second != windows.second:
            windows.roll(second)
        self._wake = min(self._recheck, self._bar_end, second + 1.0)

    # --- bars -----------------------------------------------------------------------------------

    def _open_time_bar(self, t: float, tick: int, delta: float) -> Bar:
        start, end = self._segment_bounds(t)
        globex, rth = self._globex, self._rth
        session = globex.start if globex is not None else None
        bar = new_bar("time", start, end, tick, session, rth is not None, self._instrument)
        bar.delta_min = bar.delta_max = delta  # the running delta after the opening print
        self._bar = bar
        self._bar_end = end
        self._wake = min(self._wake, end)
        return bar

    def _segment_bounds(self, t: float) -> tuple[float, float]:
        """The aligned bar around `t`, cut to the stretch with the session state of `t`.

        Boundaries fall on whole minutes, so probing the whole minutes inside the bar finds
        them (none for bars of a minute or less): the bar then never spans one, whatever the
        cadence of events.
        """
        start, end = self._bar_clock.bounds(t)
        state = (self._globex, self._rth)
        for span in state:
            if span is not None:
                start, end = max(start, span.start), min(end, span.end)
        start = max(start, self._segment_since)
        minute = (math.floor(t) // 60 + 1) * 60.0
        while minute < end:
            if self._state_at(minute) != state:
                end = minute
                break
            minute += 60.0
        minute = math.floor(t) // 60 * 60.0
        while minute > start:
            if self._state_at(minute - 60.0) != state:
                start = minute
                break
            minute -= 60.0
        return start, end

    def _state_at(self, t: float) -> tuple[Span | None, Span | None]:
        return self._schedule.globex_at(t), self._schedule.rth_at(t)

    def _update_close(self, bar: Bar) -> None:
        if self._last_tick is not None:
            bar.close = self._instrument.tick_price(self._last_tick)

    def _close_time_bar(self, end: float) -> None:
        bar = self._bar
        if bar is None:
            return
        self._bar = None
        self._bar_end = math.inf
        bar.end = end
        self._update_close(bar)
        finish(bar, self._flow, self._instrument)
        if bar.session is not None and bar.session == self._session.start:
            self._session.fold(bar)
        if bar.rth and self._rth_totals is not None:
            self._rth_totals.fold(bar)
        self.time_bars.append(bar)
        if self._on_bar is not None:
            self._on_bar(bar)

    def _volume_bar_closed(self, bar: Bar) -> None:
        finish(bar, self._flow, self._instrument)
        self.volume_bars.append(bar)
        if self._on_bar is not None:
            self._on_bar(bar)

    # --- sessions -------------------------------------------------------------------------------

    def _cross(self, t: float) -> None:
        """Recheck the Globex and RTH sessions at `t`; act on any boundary crossed."""
        first = self._origin is None
        if first:
            self._origin = t
        earliest, latest = math.inf, _NEVER  # boundaries crossed since the last check
        globex_changed = rth_changed = False
        if t >= self._globex_until:
            globex = self._schedule.globex_at(t)
            if globex != self._globex:
                globex_changed = True
                for boundary in _boundaries(self._globex, globex):
                    earliest, latest = min(earliest, boundary), max(latest, boundary)
                self._globex = globex
            self._globex_until = globex.end if globex is not None else _next_minute(t)
        if t >= self._rth_until:
            rth = self._schedule.rth_at(t)
            if rth != self._rth:
                rth_changed = True
                for boundary in _boundaries(self._rth, rth):
                    earliest, latest = min(earliest, boundary), max(latest, boundary)
                self._rth = rth
            self._rth_until = rth.end if rth is not None else _next_minute(t)
        self._recheck = min(self._globex_until, self._rth_until)
        if not (globex_changed or rth_changed):
            return
        volume_bars = self._volume_bars
        if volume_bars is not None:
            if globex_changed:
                volume_bars.close()
            volume_bars.session = None if self._globex is None else self._globex.start
            volume_bars.rth = self._rth is not None
        if self._bar is not None:
            self._close_time_bar(min(self._bar_end, max(earliest, self._bar.start)))
        self._segment_since = latest
        if globex_changed and self._globex is not None:
            self._session = SessionTotals(self._globex.start, self._instrument)
            if not first:  # seen from its start: complete unless told otherwise again
                self._partial = False
        if rth_changed:
            self._rth_totals = (
                SessionTotals(self._rth.start, self._instrument) if self._rth is not None else None
            )


def _boundaries(old: Span | None, new: Span | None) -> list[float]:
    """When the state changed from `old` to `new`: the old span's end, the new one's start.

    A new span cannot begin before the old one ended (a contract's listed hours handing over
    to the CME rule may disagree about that).
    """
    times = []
    if old is not None:
        times.append(old.end)
    if new is not None:
        times.append(new.start if old is None else max(new.start, old.end))
    return times


def _next_minute(t: float) -> float:
    """Session boundaries fall on whole minutes (IB lists HHMM; the CME rule is whole hours)."""
    return (math.floor(t) // 60 + 1) * 60.0
