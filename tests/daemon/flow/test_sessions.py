"""Sessions: the CME rule (Globex day from 17:00 CT, RTH 08:30-15:15 CT) and contract hours."""

from __future__ import annotations

from datetime import datetime

import pytest

from daemon.flow.sessions import CENTRAL, SessionSchedule, Span, cme_globex_at, cme_rth_at


def ct(text: str) -> float:
    return datetime.fromisoformat(text).replace(tzinfo=CENTRAL).timestamp()


@pytest.mark.parametrize(
    ("at", "start", "end"),
    [
        ("2026-11-19 17:00", "2026-11-19 17:00", "2026-11-20 16:00"),  # Thu evening opens Fri
        ("2026-11-20 08:30", "2026-11-19 17:00", "2026-11-20 16:00"),
        ("2026-11-20 15:59:59", "2026-11-19 17:00", "2026-11-20 16:00"),
        ("2026-11-22 17:00", "2026-11-22 17:00", "2026-11-23 16:00"),  # Sunday open
        ("2013-09-01 17:00:00.083", "2013-09-01 17:00", "2013-09-02 16:00"),  # CDT
    ],
)
def test_globex_day(at: str, start: str, end: str) -> None:
    assert cme_globex_at(ct(at)) == Span(ct(start), ct(end))


@pytest.mark.parametrize(
    "at",
    [
        "2026-11-20 16:00",  # daily maintenance break
        "2026-11-20 16:59:59",
        "2026-11-20 17:00",  # Friday evening: closed for the weekend
        "2026-11-21 12:00",  # Saturday
        "2026-11-22 16:59",  # Sunday before the open
    ],
)
def test_globex_closed(at: str) -> None:
    assert cme_globex_at(ct(at)) is None


def test_rth() -> None:
    assert cme_rth_at(ct("2026-11-20 08:30")) == Span(
        ct("2026-11-20 08:30"), ct("2026-11-20 15:15")
    )
    assert cme_rth_at(ct("2026-11-20 08:29:59")) is None
    assert cme_rth_at(ct("2026-11-20 15:15")) is None
    assert cme_rth_at(ct("2026-11-21 10:00")) is None  # Saturday


def test_contract_hours_win_where_they_speak_and_the_rule_elsewhere() -> None:
    # A holiday-shortened day as IB would list it: Globex until 12:00, no RTH span at all.
    trading = [(ct("2026-11-25 17:00"), ct("2026-11-26 12:00"))]
    rth = [(ct("2026-11-25 08:30"), ct("2026-11-25 15:15"))]
    schedule = SessionSchedule(trading, rth, until=ct("2026-11-27 00:00"))
    assert schedule.globex_at(ct("2026-11-26 11:00")) == Span(*trading[0])
    assert schedule.globex_at(ct("2026-11-26 12:30")) is None  # early close from the hours
    assert schedule.rth_at(ct("2026-11-26 09:00")) is None  # listed as CLOSED
    # Outside what the hours list: the CME rule.
    assert schedule.globex_at(ct("2026-12-01 09:00")) == cme_globex_at(ct("2026-12-01 09:00"))
    schedule.update([], [])
    assert schedule.globex_at(ct("2026-11-26 12:30")) == cme_globex_at(ct("2026-11-26 12:30"))


@pytest.mark.parametrize(
    ("at", "day"),
    [
        ("2026-11-19 17:00", "2026-11-20"),  # the Thursday evening opens Friday's day
        ("2026-11-20 15:59", "2026-11-20"),
        ("2026-11-20 16:30", "2026-11-20"),  # the daily break: the date of the time itself
        ("2026-11-22 17:00", "2026-11-23"),  # Sunday's open is Monday's day
        ("2026-11-21 12:00", "2026-11-21"),  # Saturday: no session
    ],
)
def test_the_trading_day_is_the_date_its_session_ends_on(at: str, day: str) -> None:
    assert SessionSchedule().trading_day(ct(at)) == day


def test_the_trading_day_follows_the_contract_hours() -> None:
    schedule = SessionSchedule([(ct("2026-11-25 17:00"), ct("2026-11-26 12:00"))])
    assert schedule.trading_day(ct("2026-11-25 18:00")) == "2026-11-26"
