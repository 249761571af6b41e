"""Trading sessions: the Globex day (from 17:00 Central), RTH (08:30-15:15 Central), and the
trading day a market time belongs to (the journal's days and the recordings' files).

Live, the sessions come from the contract's own trading and liquid hours (IB's strings, parsed
by `broker.contracts` and handed over as epoch spans); offline, or beyond the few days IB lists,
from the CME equity-futures rule below. The rule knows weekends but no holidays: a holiday
simply has no trades, and an early close ends nothing early.

Reset rules (what each feature does at a boundary) are documented in `features/__init__.py`.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, time, timedelta
from typing import Final
from zoneinfo import ZoneInfo

CENTRAL: Final = ZoneInfo("America/Chicago")
GLOBEX_OPEN: Final = time(17, 0)  # the Globex day starts the evening before its trade date
GLOBEX_CLOSE: Final = time(16, 0)
RTH_OPEN: Final = time(8, 30)
RTH_CLOSE: Final = time(15, 15)
_SUNDAY: Final = 6
_FRIDAY: Final = 4


@dataclass(frozen=True, slots=True)
class Span:
    """[start, end) in epoch seconds."""

    start: float
    end: float

    def __contains__(self, t: float) -> bool:
        return self.start <= t < self.end


def _at(day: datetime, at: time) -> float:
    return datetime.combine(day.date(), at, CENTRAL).timestamp()


def cme_globex_at(t: float) -> Span | None:
    """The CME equity Globex session containing `t` (Sun-Thu 17:00 to next day 16:00 CT)."""
    local = datetime.fromtimestamp(t, CENTRAL)
    opened = local if local.time() >= GLOBEX_OPEN else local - timedelta(days=1)
    if opened.weekday() in (_FRIDAY, _FRIDAY + 1):  # Friday and Saturday evenings: closed
        return None
    span = Span(_at(opened, GLOBEX_OPEN), _at(opened + timedelta(days=1), GLOBEX_CLOSE))
    return span if t in span else None


def cme_rth_at(t: float) -> Span | None:
    """Regular trading hours containing `t` (Mon-Fri 08:30-15:15 CT)."""
    local = datetime.fromtimestamp(t, CENTRAL)
    if local.weekday() > _FRIDAY:
        return None
    span = Span(_at(local, RTH_OPEN), _at(local, RTH_CLOSE))
    return span if t in span else None


class _SpanList:
    def __init__(self, spans: Sequence[tuple[float, float]], until: float | None) -> None:
        ordered = sorted(spans)
        self.starts = [s for s, _ in ordered]
        self.ends = [e for _, e in ordered]
        end = max([*self.ends, until or -math.inf])
        self.horizon = (self.starts[0], end) if ordered else None

    def at(self, t: float) -> Span | None:
        i = bisect.bisect_right(self.starts, t) - 1
        if i >= 0 and t < self.ends[i]:
            return Span(self.starts[i], self.ends[i])
        return None

    def covers(self, t: float) -> bool:
        return self.horizon is not None and self.horizon[0] <= t < self.horizon[1]


class SessionSchedule:
    """Where the Globex day and RTH begin and end; the contract's hours when known.

    `trading` and `rth` are (start, end) epoch spans, e.g. from IB's `tradingHours` and
    `liquidHours`, and `until` the end of the last day they speak for (a day IB lists as CLOSED
    has no span but is still covered); instants outside fall back to the CME rule.
    """

    def __init__(
        self,
        trading: Sequence[tuple[float, float]] = (),
        rth: Sequence[tuple[float, float]] = (),
        until: float | None = None,
    ) -> None:
        self.update(trading, rth, until)

    def update(
        self,
        trading: Sequence[tuple[float, float]],
        rth: Sequence[tuple[float, float]],
        until: float | None = None,
    ) -> None:
        """Take newer hours (contract details are refreshed, the front month rolls)."""
        self._trading = _SpanList(trading, until)
        self._rth = _SpanList(rth, until)

    def globex_at(self, t: float) -> Span | None:
        """The Globex session containing `t`, None in the daily break, weekends and holidays."""
        return self._trading.at(t) if self._trading.covers(t) else cme_globex_at(t)

    def rth_at(self, t: float) -> Span | None:
        """The RTH session containing `t`, or None outside regular hours."""
        return self._rth.at(t) if self._rth.covers(t) else cme_rth_at(t)

    def trading_day(self, t: float) -> str:
        """The CME trading day of market time `t` (ISO date): the date its Globex session ends
        on; outside a session, the date of `t` itself."""
        span = self.globex_at(t)
        end = span.end if span is not None else t
        return datetime.fromtimestamp(end, CENTRAL).date().isoformat()
