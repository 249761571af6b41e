from __future__ import annotations

from datetime import UTC, date, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ibsim.calendar import (
    CENTRAL,
    Session,
    is_exchange_holiday,
    is_open,
    liquid_hours,
    liquid_session,
    next_open,
    session_bounds,
    trading_day_start,
    trading_hours,
    trading_session,
    trading_sessions,
)


def ct(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> float:
    """Epoch seconds of a Central wall-clock time."""
    return datetime(year, month, day, hour, minute, tzinfo=CENTRAL).timestamp()


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> float:
    return datetime(year, month, day, hour, minute, tzinfo=UTC).timestamp()


# Captured from a real IB Gateway for ES (contract details) during the week of Memorial Day 2025.
MEMORIAL_DAY_TRADING_HOURS = (
    "20250521:1700-20250522:1600;20250522:1700-20250523:1600;20250524:CLOSED;"
    "20250525:1700-20250526:1200;20250526:1700-20250527:1600;20250527:1700-20250528:1600"
)
MEMORIAL_DAY_LIQUID_HOURS = (
    "20250522:0830-20250522:1600;20250523:0830-20250523:1600;20250524:CLOSED;"
    "20250525:1700-20250526:1200;20250527:0830-20250527:1600"
)


def test_memorial_day_2025_reproduces_gateway_capture() -> None:
    # The capture lists trading sessions through 05-28 but liquid ones only through 05-27: the
    # default 6-day window taken during trade date 05-22 before 08:30 CT produces exactly that.
    now = ct(2025, 5, 22, 2, 0)
    assert trading_hours(now) == MEMORIAL_DAY_TRADING_HOURS
    assert liquid_hours(now) == MEMORIAL_DAY_LIQUID_HOURS


def test_hours_window_during_rth_includes_the_last_days_liquid_session() -> None:
    now = ct(2025, 5, 22, 10, 0)
    assert trading_hours(now) == MEMORIAL_DAY_TRADING_HOURS
    assert liquid_hours(now) == MEMORIAL_DAY_LIQUID_HOURS + ";20250528:0830-20250528:1600"


def test_hours_on_saturday_start_with_closed_day() -> None:
    assert trading_hours(ct(2025, 5, 24, 12, 0), days=2) == (
        "20250524:CLOSED;20250525:1700-20250526:1200"
    )


def test_hours_on_sunday_before_open_start_with_mondays_session() -> None:
    assert trading_hours(ct(2025, 5, 25, 12, 0), days=1) == "20250525:1700-20250526:1200"


def test_labor_day_2013_early_close_and_evening_reopen() -> None:
    labor_day = trading_session(date(2013, 9, 2))
    assert labor_day == Session(
        date(2013, 9, 2),
        datetime(2013, 9, 1, 17, 0, tzinfo=CENTRAL),
        datetime(2013, 9, 2, 12, 0, tzinfo=CENTRAL),
    )
    assert liquid_session(date(2013, 9, 2)) == labor_day
    tuesday = trading_session(date(2013, 9, 3))
    assert tuesday is not None
    assert tuesday.open == datetime(2013, 9, 2, 17, 0, tzinfo=CENTRAL)
    assert is_exchange_holiday(date(2013, 9, 2))
    assert is_open(ct(2013, 9, 2, 11, 59))
    assert not is_open(ct(2013, 9, 2, 12, 0))
    assert next_open(ct(2013, 9, 2, 12, 0)) == ct(2013, 9, 2, 17, 0)
    # The replay window 2013-09-01 17:00 -> 2013-09-02 23:59 CT.
    assert trading_hours(ct(2013, 9, 1, 17, 0), days=2) == (
        "20130901:1700-20130902:1200;20130902:1700-20130903:1600"
    )


def test_good_friday_2024_is_closed() -> None:
    assert trading_session(date(2024, 3, 29)) is None
    assert trading_hours(ct(2024, 3, 28, 12, 0), days=4) == (
        "20240327:1700-20240328:1600;20240329:CLOSED;20240330:CLOSED;20240331:1700-20240401:1600"
    )
    assert not is_open(ct(2024, 3, 29, 10, 0))
    assert next_open(ct(2024, 3, 28, 16, 0)) == ct(2024, 3, 31, 17, 0)


def test_christmas_on_sunday_2022_observed_monday() -> None:
    assert trading_session(date(2022, 12, 26)) is None
    assert trading_sessions(date(2022, 12, 23), 5) == [
        Session(
            date(2022, 12, 23),
            datetime(2022, 12, 22, 17, 0, tzinfo=CENTRAL),
            datetime(2022, 12, 23, 16, 0, tzinfo=CENTRAL),
        ),
        date(2022, 12, 24),
        date(2022, 12, 26),
        Session(
            date(2022, 12, 27),
            datetime(2022, 12, 26, 17, 0, tzinfo=CENTRAL),
            datetime(2022, 12, 27, 16, 0, tzinfo=CENTRAL),
        ),
    ]
    assert next_open(ct(2022, 12, 23, 16, 0)) == ct(2022, 12, 26, 17, 0)


def test_christmas_on_thursday_2025_listed_closed_then_evening_session() -> None:
    assert trading_hours(ct(2025, 12, 25, 9, 0), days=1) == (
        "20251225:CLOSED;20251225:1700-20251226:1600"
    )


@pytest.mark.parametrize(
    ("day", "close"),
    [
        (date(2024, 1, 15), "20240115:1200"),  # MLK Day
        (date(2024, 2, 19), "20240219:1200"),  # Presidents Day
        (date(2022, 6, 20), "20220620:1200"),  # Juneteenth on Sunday, observed Monday
        (date(2026, 7, 3), "20260703:1200"),  # July 4th on Saturday, observed Friday
        (date(2024, 11, 28), "20241128:1200"),  # Thanksgiving
        (date(2024, 11, 29), "20241129:1215"),  # the day after
    ],
)
def test_early_closes(day: date, close: str) -> None:
    session = trading_session(day)
    assert session is not None
    assert f"{session.close:%Y%m%d:%H%M}" == close


def test_day_after_thanksgiving_is_a_short_business_day_not_a_holiday() -> None:
    assert not is_exchange_holiday(date(2024, 11, 29))
    assert liquid_session(date(2024, 11, 29)) == Session(
        date(2024, 11, 29),
        datetime(2024, 11, 29, 8, 30, tzinfo=CENTRAL),
        datetime(2024, 11, 29, 12, 15, tzinfo=CENTRAL),
    )


def test_juneteenth_only_from_2022() -> None:
    assert not is_exchange_holiday(date(2020, 6, 19))
    assert is_exchange_holiday(date(2023, 6, 19))


def test_new_years_day_rules() -> None:
    assert trading_session(date(2024, 1, 1)) is None
    assert trading_session(date(2023, 1, 2)) is None  # Jan 1 on Sunday
    assert trading_session(date(2021, 12, 31)) is not None  # Jan 1 2022 on Saturday: not observed


def test_sunday_open_across_dst_transitions() -> None:
    # 2024-03-10: CDT starts at 02:00, so 17:00 local is 22:00 UTC (CST would be 23:00).
    march = trading_session(date(2024, 3, 11))
    assert march is not None
    assert march.open_utc == utc(2024, 3, 10, 22, 0)
    assert march.close_utc == utc(2024, 3, 11, 21, 0)
    # 2024-11-03: back to CST, 17:00 local is 23:00 UTC.
    november = trading_session(date(2024, 11, 4))
    assert november is not None
    assert november.open_utc == utc(2024, 11, 3, 23, 0)
    assert next_open(utc(2024, 11, 2, 12, 0)) == utc(2024, 11, 3, 23, 0)


@pytest.mark.parametrize(
    ("hour", "minute", "expected"),
    [(15, 59, True), (16, 0, False), (16, 30, False), (17, 0, True)],
)
def test_is_open_around_the_daily_break(hour: int, minute: int, expected: bool) -> None:
    assert is_open(ct(2025, 5, 21, hour, minute)) is expected


def test_session_bounds_after_the_break_belongs_to_next_trade_date() -> None:
    session = session_bounds(ct(2025, 5, 21, 17, 0))
    assert session is not None
    assert session.trade_date == date(2025, 5, 22)
    assert session_bounds(ct(2025, 5, 21, 16, 30)) is None


def test_next_open_across_a_weekend() -> None:
    assert next_open(ct(2025, 5, 16, 16, 0)) == ct(2025, 5, 18, 17, 0)
    assert next_open(ct(2025, 5, 17, 9, 0)) == ct(2025, 5, 18, 17, 0)
    assert next_open(ct(2025, 5, 16, 12, 0)) == ct(2025, 5, 16, 12, 0)


@settings(derandomize=True, max_examples=500)
@given(st.floats(min_value=utc(2010, 1, 1), max_value=utc(2040, 12, 31)))
def test_open_bounds_and_next_open_agree(t: float) -> None:
    assert is_open(t) == (session_bounds(t) is not None)
    opens_at = next_open(t)
    assert opens_at >= t
    assert is_open(opens_at)
    if not is_open(t):
        assert not is_open((t + opens_at) / 2)


@pytest.mark.parametrize(
    ("now", "start"),
    [
        ((2026, 11, 18, 9, 0), (2026, 11, 17, 17, 0)),  # Wednesday morning: Tuesday's open
        ((2026, 11, 18, 16, 59), (2026, 11, 17, 17, 0)),  # the maintenance break
        ((2026, 11, 18, 17, 0), (2026, 11, 18, 17, 0)),  # Thursday's trade date opens
        ((2026, 11, 20, 18, 0), (2026, 11, 19, 17, 0)),  # Friday evening: still Friday's day
        ((2026, 11, 21, 12, 0), (2026, 11, 19, 17, 0)),  # Saturday too
        ((2026, 11, 22, 17, 30), (2026, 11, 22, 17, 0)),  # Sunday's open starts Monday's day
    ],
)
def test_the_trading_day_starts_at_its_globex_open(
    now: tuple[int, ...], start: tuple[int, ...]
) -> None:
    assert trading_day_start(ct(*now)) == ct(*start)
