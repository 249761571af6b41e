"""`ActiveSessions`: the Globex and RTH spans in force at the clock, and the boundaries crossed.

Each span is cached with the time it stays valid: inside a span until the span's end; outside,
until the next whole minute (session boundaries are whole minutes: IB lists HHMM, the CME rule
whole hours), which also lets a new time bar find any boundary inside its span by probing
whole minutes.
"""

from __future__ import annotations

import math
from typing import NamedTuple

from daemon.flow.sessions import SessionSchedule, Span

_NEVER = -math.inf


class Crossing(NamedTuple):
    """What a recheck found changed."""

    globex: bool  # the Globex session changed (started, ended or rolled)
    rth: bool  # RTH changed
    earliest: float  # the earliest boundary crossed since the previous check


class ActiveSessions:
    """The Globex session and RTH span at the clock (None outside), rechecked when due."""

    __slots__ = ("_globex_until", "_rth_until", "_schedule", "_since", "globex", "recheck", "rth")

    def __init__(self, schedule: SessionSchedule) -> None:
        self._schedule = schedule
        self.globex: Span | None = None
        self.rth: Span | None = None
        self._globex_until = _NEVER  # recheck the Globex session at this time
        self._rth_until = _NEVER
        self.recheck = _NEVER
        """The earliest time either span may change: `cross` is due from then."""
        self._since = _NEVER  # the latest session boundary crossed

    def cross(self, t: float) -> Crossing | None:
        """Recheck the Globex and RTH sessions at `t`; what changed, or None."""
        earliest, latest = math.inf, _NEVER  # boundaries crossed since the last check
        globex_changed = rth_changed = False
        if t >= self._globex_until:
            globex = self._schedule.globex_at(t)
            if globex != self.globex:
                globex_changed = True
                for boundary in _boundaries(self.globex, globex):
                    earliest, latest = min(earliest, boundary), max(latest, boundary)
                self.globex = globex
            self._globex_until = globex.end if globex is not None else _next_minute(t)
        if t >= self._rth_until:
            rth = self._schedule.rth_at(t)
            if rth != self.rth:
                rth_changed = True
                for boundary in _boundaries(self.rth, rth):
                    earliest, latest = min(earliest, boundary), max(latest, boundary)
                self.rth = rth
            self._rth_until = rth.end if rth is not None else _next_minute(t)
        self.recheck = min(self._globex_until, self._rth_until)
        if not (globex_changed or rth_changed):
            return None
        self._since = latest
        return Crossing(globex_changed, rth_changed, earliest)

    def segment(self, start: float, end: float, t: float) -> tuple[float, float]:
        """The bar [start, end) around `t`, cut to the stretch with the session state of `t`.

        Boundaries fall on whole minutes, so probing the whole minutes inside the bar finds
        them (none for bars of a minute or less): the bar then never spans one, whatever the
        cadence of events.
        """
        state = (self.globex, self.rth)
        for span in state:
            if span is not None:
                start, end = max(start, span.start), min(end, span.end)
        start = max(start, self._since)
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
