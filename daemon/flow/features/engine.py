"""`Features`: every order-flow feature, fed print by print, across session boundaries.

The clock is the newest event time seen; an older print counts at the clock (it joins the open
bar, never a closed one). The Globex and RTH sessions in force come from `ActiveSessions`, cached
until they may change. One "wake" time, the earliest of their recheck, the open bar's end and
the next second, is all a print compares against.

Prints and quotes come as tick indexes of the instrument; prices go out on its grid.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable

from daemon.core.instrument import Instrument
from daemon.flow.features.active_sessions import ActiveSessions
from daemon.flow.features.bars import Bar, BarClock, VolumeBars, finish, new_bar, refresh_totals
from daemon.flow.features.book import TopOfBook
from daemon.flow.features.snapshot import FlowSnapshot, flow_snapshot
from daemon.flow.features.totals import SessionTotals
from daemon.flow.features.windows import RollingFlow
from daemon.flow.prints import Print
from daemon.flow.sessions import SessionSchedule
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
        self._sessions = ActiveSessions(schedule)
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
        self._wake = _NEVER  # the earliest of: recheck, the open bar's end, the next second
        self._session = SessionTotals(None, instrument)
        self._rth_totals: SessionTotals | None = None
        self._partial = False

    # --- events ---------------------------------------------------------------------------------

    def listen_bars(self, on_bar: Callable[[Bar], None] | None) -> None:
        """Closed bars go to ``on_bar`` from now on."""
        self._on_bar = on_bar

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
        rth_span = self._sessions.rth
        if self._rth_totals is not None and rth_span is not None:
            in_rth = bar if bar is not None and bar.rth else None
            rth = self._rth_totals.view(in_rth, flow.value_area)
        intensity = None
        origin = self._origin
        if time is not None and origin is not None and time - origin >= windows.intensity_seconds:
            intensity = windows.intensity()
        return flow_snapshot(
            time=time,
            last=self.last_price,
            book=self._book,
            session_start=totals.start,
            in_session=self._sessions.globex is not None,
            session=session,
            rth_start=None if rth_span is None else rth_span.start,
            rth=rth,
            delta_windows={w: windows.delta_over(w) for w in flow.delta_windows_s},
            intensity=intensity,
            partial=self._partial,
        )

    def _catch_up(self, t: float) -> None:
        """Everything due by `t`: session boundaries, the open bar's end, the one-second bucket.

        `_wake` is the earliest time anything is due again, so a print checks one number.
        """
        if t >= self._sessions.recheck:
            self._cross(t)
        if self._bar is not None and t >= self._bar_end:
            self._close_time_bar(self._bar_end)
        second = int(t)  # floor: epoch seconds are positive
        windows = self._windows
        if second != windows.second:
            windows.roll(second)
        self._wake = min(self._sessions.recheck, self._bar_end, second + 1.0)

    # --- bars -----------------------------------------------------------------------------------

    def _open_time_bar(self, t: float, tick: int, delta: float) -> Bar:
        sessions = self._sessions
        start, end = sessions.segment(*self._bar_clock.bounds(t), t)
        globex, rth = sessions.globex, sessions.rth
        session = globex.start if globex is not None else None
        bar = new_bar("time", start, end, tick, session, rth is not None, self._instrument)
        bar.delta_min = bar.delta_max = delta  # the running delta after the opening print
        self._bar = bar
        self._bar_end = end
        self._wake = min(self._wake, end)
        return bar

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
        """Recheck the sessions at `t`; act on any boundary crossed."""
        first = self._origin is None
        if first:
            self._origin = t
        crossing = self._sessions.cross(t)
        if crossing is None:
            return
        globex, rth = self._sessions.globex, self._sessions.rth
        volume_bars = self._volume_bars
        if volume_bars is not None:
            if crossing.globex:
                volume_bars.close()
            volume_bars.session = None if globex is None else globex.start
            volume_bars.rth = rth is not None
        if self._bar is not None:
            self._close_time_bar(min(self._bar_end, max(crossing.earliest, self._bar.start)))
        if crossing.globex and globex is not None:
            self._session = SessionTotals(globex.start, self._instrument)
            if not first:  # seen from its start: complete unless told otherwise again
                self._partial = False
        if crossing.rth:
            self._rth_totals = (
                SessionTotals(rth.start, self._instrument) if rth is not None else None
            )
