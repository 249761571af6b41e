"""CME Globex schedule for E-mini S&P 500 futures (ES), and IB's hours strings for it.

This is an approximation of CME's equity index schedule, computed by rule for any year:

- Trade date D (Mon-Fri) trades from 17:00 CT the calendar day before to 16:00 CT on D, so
  Monday's session opens Sunday 17:00. 16:00-17:00 is the daily maintenance break; the market is
  closed from Friday 16:00 to Sunday 17:00.
- Full closes (trade date CLOSED): New Year's Day, Good Friday, Christmas.
- Early closes at 12:00 CT (the session that opened the evening before ends at noon; the next one
  opens at 17:00 that day as usual): MLK Day, Presidents Day, Memorial Day, Juneteenth (from
  2022), Independence Day, Labor Day, Thanksgiving. The day after Thanksgiving closes at 12:15.
- A holiday on Saturday is observed the Friday before, on Sunday the Monday after. New Year's Day
  on a Saturday is not observed (as on US stock exchanges, the year-end Friday stays open).
- Not modelled: Christmas Eve and July 3 early closes, one-off closures, the pre-2021
  15:15-15:30 pause.

IB hours strings (contract details `tradingHours` / `liquidHours`) list one entry per trade date,
keyed by the session's open: `YYYYMMDD:HHMM-YYYYMMDD:HHMM`, or `YYYYMMDD:CLOSED` for a closed
trade date (Saturdays and full holidays); Sundays never get an entry.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from functools import cache
from zoneinfo import ZoneInfo

CENTRAL = ZoneInfo("America/Chicago")

SESSION_OPEN = time(17, 0)
SESSION_CLOSE = time(16, 0)
RTH_OPEN = time(8, 30)
# IB reports ES liquid hours until 16:00 (not the 15:15 cash close); one place to change it.
RTH_CLOSE = time(16, 0)
HOLIDAY_CLOSE = time(12, 0)
THANKSGIVING_FRIDAY_CLOSE = time(12, 15)

# Span of the hours strings. A real gateway capture taken during trade date D before 08:30 CT
# lists trading sessions through D+6 and liquid sessions through D+5, which is exactly what a
# window of [now, now + 6 days) produces.
HOURS_WINDOW_DAYS = 6

_DAY = timedelta(days=1)
_MONDAY, _THURSDAY, _FRIDAY, _SATURDAY, _SUNDAY = 0, 3, 4, 5, 6


@dataclass(frozen=True, slots=True)
class Session:
    """One continuous trading span of a trade date; `open`/`close` are aware Central datetimes."""

    trade_date: date
    open: datetime
    close: datetime

    @property
    def open_utc(self) -> float:
        """The open as epoch seconds."""
        return self.open.timestamp()

    @property
    def close_utc(self) -> float:
        """The close as epoch seconds."""
        return self.close.timestamp()

    def contains(self, t_utc: float) -> bool:
        """Whether epoch time `t_utc` falls in [open, close)."""
        return self.open_utc <= t_utc < self.close_utc


def _easter(year: int) -> date:
    """Easter Sunday by the anonymous Gregorian algorithm (Meeus/Jones/Butcher)."""
    a = year % 19
    b, c = divmod(year, 100)
    d, e = divmod(b, 4)
    f = (b + 8) // 25
    g = (b - f + 1) // 3
    h = (19 * a + b - d - g + 15) % 30
    i, k = divmod(c, 4)
    weekday_shift = (32 + 2 * e + 2 * i - h - k) % 7
    m = (a + 11 * h + 22 * weekday_shift) // 451
    month, day = divmod(h + weekday_shift - 7 * m + 114, 31)
    return date(year, month, day + 1)


def _nth_weekday(year: int, month: int, weekday: int, n: int) -> date:
    first = date(year, month, 1)
    return first + timedelta(days=(weekday - first.weekday()) % 7 + 7 * (n - 1))


def _last_weekday(year: int, month: int, weekday: int) -> date:
    following = date(year + 1, 1, 1) if month == 12 else date(year, month + 1, 1)
    last = following - _DAY
    return last - timedelta(days=(last.weekday() - weekday) % 7)


def _observed(d: date) -> date:
    if d.weekday() == _SATURDAY:
        return d - _DAY
    if d.weekday() == _SUNDAY:
        return d + _DAY
    return d


def _thanksgiving(year: int) -> date:
    return _nth_weekday(year, 11, _THURSDAY, 4)


@cache
def _holidays(year: int) -> dict[date, time | None]:
    """Observed holidays of `year`: early close time, or None for a full close."""
    early = [
        _nth_weekday(year, 1, _MONDAY, 3),  # Martin Luther King Jr. Day
        _nth_weekday(year, 2, _MONDAY, 3),  # Presidents Day
        _last_weekday(year, 5, _MONDAY),  # Memorial Day
        date(year, 7, 4),
        _nth_weekday(year, 9, _MONDAY, 1),  # Labor Day
        _thanksgiving(year),
    ]
    if year >= 2022:
        early.append(date(year, 6, 19))
    holidays: dict[date, time | None] = {_observed(d): HOLIDAY_CLOSE for d in early}
    holidays[_easter(year) - 2 * _DAY] = None  # Good Friday
    holidays[_observed(date(year, 12, 25))] = None
    new_year = date(year, 1, 1)
    if new_year.weekday() != _SATURDAY:
        holidays[_observed(new_year)] = None
    return holidays


def is_exchange_holiday(d: date) -> bool:
    """Whether `d` is an observed exchange holiday (full or early close)."""
    return d in _holidays(d.year)


def _close_time(trade_date: date) -> time | None:
    """When trade date `trade_date` closes; None if it has no session."""
    if trade_date.weekday() >= _SATURDAY:
        return None
    holidays = _holidays(trade_date.year)
    if trade_date in holidays:
        return holidays[trade_date]
    if trade_date == _thanksgiving(trade_date.year) + _DAY:
        return THANKSGIVING_FRIDAY_CLOSE
    return SESSION_CLOSE


def _at(d: date, t: time) -> datetime:
    return datetime.combine(d, t, tzinfo=CENTRAL)


def trading_session(trade_date: date) -> Session | None:
    """The Globex session of `trade_date`, or None when that date does not trade."""
    close = _close_time(trade_date)
    if close is None:
        return None
    return Session(trade_date, _at(trade_date - _DAY, SESSION_OPEN), _at(trade_date, close))


def trading_day_start(now_utc: float) -> float:
    """When the trade date `now_utc` belongs to began: its Globex open (17:00 Central).

    What TWS calls "today" for completed orders and executions. A 17:00 on Friday or Saturday
    opens no session, so over a weekend the day is still Friday's.
    """
    local = datetime.fromtimestamp(now_utc, CENTRAL)
    start = datetime.combine(local.date(), SESSION_OPEN)
    if local.time() < SESSION_OPEN:
        start -= _DAY
    while start.weekday() in (_FRIDAY, _SATURDAY):
        start -= _DAY
    return start.replace(tzinfo=CENTRAL).timestamp()


def liquid_session(trade_date: date) -> Session | None:
    """The liquid (regular trading hours) session of `trade_date`, or None when it does not trade.

    On an early-close holiday IB reports the whole short session as liquid.
    """
    close = _close_time(trade_date)
    if close is None:
        return None
    if is_exchange_holiday(trade_date):
        return trading_session(trade_date)
    return Session(trade_date, _at(trade_date, RTH_OPEN), _at(trade_date, min(close, RTH_CLOSE)))


def trading_sessions(start: date, days: int, *, liquid: bool = False) -> list[Session | date]:
    """Trade dates from `start` over `days` calendar days: a Session, or the date when closed.

    Sundays are skipped (they are not trade dates; Monday's session opens on Sunday).
    With `liquid`, the liquid sessions are returned instead of the full ones.
    """
    session_of = liquid_session if liquid else trading_session
    result: list[Session | date] = []
    for offset in range(days):
        d = start + timedelta(days=offset)
        if d.weekday() != _SUNDAY:
            result.append(session_of(d) or d)
    return result


def _hours(now_utc: float, days: int, liquid: bool) -> str:
    """Entries overlapping [now, now + days): sessions not yet closed that open before the end,
    and closed trade dates whose calendar day overlaps the window."""
    end_utc = now_utc + days * 86400
    first = datetime.fromtimestamp(now_utc, CENTRAL).date()
    last = datetime.fromtimestamp(end_utc, CENTRAL).date() + _DAY
    parts: list[str] = []
    for entry in trading_sessions(first, (last - first).days + 1, liquid=liquid):
        if isinstance(entry, Session):
            if entry.close_utc > now_utc and entry.open_utc < end_utc:
                parts.append(f"{entry.open:%Y%m%d:%H%M}-{entry.close:%Y%m%d:%H%M}")
        elif (
            _at(entry, time()).timestamp() < end_utc
            and _at(entry + _DAY, time()).timestamp() > now_utc
        ):
            parts.append(f"{entry:%Y%m%d}:CLOSED")
    return ";".join(parts)


def trading_hours(now_utc: float, days: int = HOURS_WINDOW_DAYS) -> str:
    """IB `tradingHours` for the `days` from epoch time `now_utc` (starting at the trade date in
    progress)."""
    return _hours(now_utc, days, liquid=False)


def liquid_hours(now_utc: float, days: int = HOURS_WINDOW_DAYS) -> str:
    """IB `liquidHours` for the `days` from epoch time `now_utc`."""
    return _hours(now_utc, days, liquid=True)


def session_bounds(t_utc: float) -> Session | None:
    """The trading session containing epoch time `t_utc`, or None if the market is closed."""
    local_date = datetime.fromtimestamp(t_utc, CENTRAL).date()
    for trade_date in (local_date, local_date + _DAY):
        session = trading_session(trade_date)
        if session is not None and session.contains(t_utc):
            return session
    return None


def is_open(t_utc: float) -> bool:
    """Whether the market trades at epoch time `t_utc`."""
    return session_bounds(t_utc) is not None


def next_open(t_utc: float) -> float:
    """Epoch time of the next session open at or after `t_utc`; `t_utc` itself if open."""
    if is_open(t_utc):
        return t_utc
    trade_date = datetime.fromtimestamp(t_utc, CENTRAL).date()
    # The longest closure (a holiday next to a weekend) is far shorter than two weeks.
    for _ in range(14):
        session = trading_session(trade_date)
        if session is not None and session.open_utc >= t_utc:
            return session.open_utc
        trade_date += _DAY
    raise AssertionError(f"no session opens within two weeks of {t_utc}")
