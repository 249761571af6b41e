"""SessionCalendar on real ES hours strings, expiry parsing, front-month selection and roll."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from ib_async import Contract, ContractDetails, Future, Position

from daemon.broker.contracts import (
    Listing,
    NoContractError,
    SessionCalendar,
    expiry_time,
    next_after,
    roll_time,
    select_front,
    stranded_positions,
)
from daemon.broker.ib.contracts import listing_from_details, position_from

CT = ZoneInfo("US/Central")

# ESM5 as a real gateway sent it (TWS_PROTOCOL.md §8): Memorial Day 2025-05-26 closes at 12:00.
REAL_TRADING = (
    "20250521:1700-20250522:1600;20250522:1700-20250523:1600;20250524:CLOSED;"
    "20250525:1700-20250526:1200;20250526:1700-20250527:1600;20250527:1700-20250528:1600"
)
REAL_LIQUID = (
    "20250522:0830-20250522:1600;20250523:0830-20250523:1600;20250524:CLOSED;"
    "20250525:1700-20250526:1200;20250527:0830-20250527:1600;20250527:1700-20250528:1600"
)
# ibsim's hours for a request at 2026-11-20 08:30 CT (Thanksgiving 2026-11-26 closes at 12:00).
NOV_TRADING = (
    "20261119:1700-20261120:1600;20261121:CLOSED;20261122:1700-20261123:1600;"
    "20261123:1700-20261124:1600;20261124:1700-20261125:1600;20261125:1700-20261126:1200"
)


def ct(
    year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0
) -> datetime:
    return datetime(year, month, day, hour, minute, second, tzinfo=CT)


@pytest.fixture
def real() -> SessionCalendar:
    return SessionCalendar(REAL_TRADING, REAL_LIQUID, "US/Central")


# --- SessionCalendar ---


@pytest.mark.parametrize(
    ("when", "is_open", "is_liquid"),
    [
        (ct(2025, 5, 21, 16, 59), False, False),  # before the first listed session
        (ct(2025, 5, 21, 17, 0), True, False),  # Globex open, overnight
        (ct(2025, 5, 22, 8, 29), True, False),
        (ct(2025, 5, 22, 8, 30), True, True),  # RTH open
        (ct(2025, 5, 22, 15, 59, 59), True, True),
        (ct(2025, 5, 22, 16, 0), False, False),  # daily maintenance break
        (ct(2025, 5, 22, 16, 30), False, False),
        (ct(2025, 5, 22, 17, 0), True, False),
        (ct(2025, 5, 23, 16, 0), False, False),  # Friday close: the weekend starts
        (ct(2025, 5, 24, 12, 0), False, False),  # Saturday CLOSED
        (ct(2025, 5, 25, 16, 59), False, False),
        (ct(2025, 5, 25, 17, 0), True, True),  # IB calls the holiday session liquid
        (ct(2025, 5, 26, 11, 59), True, True),
        (ct(2025, 5, 26, 12, 0), False, False),  # Memorial Day early close
        (ct(2025, 5, 26, 16, 0), False, False),
        (ct(2025, 5, 26, 17, 0), True, False),
        (ct(2025, 5, 27, 10, 0), True, True),
        (ct(2025, 5, 28, 16, 0), False, False),  # past the listed window
    ],
)
def test_open_and_liquid(
    real: SessionCalendar, when: datetime, is_open: bool, is_liquid: bool
) -> None:
    assert real.is_open(when) is is_open
    assert real.is_liquid(when) is is_liquid
    assert (real.session_at(when) is not None) is is_open


@pytest.mark.parametrize(
    ("when", "next_open", "next_close"),
    [
        (ct(2025, 5, 22, 10, 0), ct(2025, 5, 22, 17, 0), ct(2025, 5, 22, 16, 0)),
        (ct(2025, 5, 22, 16, 0), ct(2025, 5, 22, 17, 0), ct(2025, 5, 23, 16, 0)),
        (ct(2025, 5, 22, 17, 0), ct(2025, 5, 22, 17, 0), ct(2025, 5, 23, 16, 0)),
        (ct(2025, 5, 23, 16, 0), ct(2025, 5, 25, 17, 0), ct(2025, 5, 26, 12, 0)),
        (ct(2025, 5, 24, 9, 0), ct(2025, 5, 25, 17, 0), ct(2025, 5, 26, 12, 0)),
        (ct(2025, 5, 26, 9, 0), ct(2025, 5, 26, 17, 0), ct(2025, 5, 26, 12, 0)),
        (ct(2025, 5, 26, 12, 0), ct(2025, 5, 26, 17, 0), ct(2025, 5, 27, 16, 0)),
        (ct(2025, 5, 27, 17, 0), ct(2025, 5, 27, 17, 0), ct(2025, 5, 28, 16, 0)),
        (ct(2025, 5, 27, 18, 0), None, ct(2025, 5, 28, 16, 0)),
        (ct(2025, 5, 28, 16, 0), None, None),
    ],
)
def test_next_open_and_close(
    real: SessionCalendar, when: datetime, next_open: datetime | None, next_close: datetime | None
) -> None:
    assert real.next_open(when) == next_open
    assert real.next_close(when) == next_close


def test_session_at_and_window(real: SessionCalendar) -> None:
    assert real.session_at(ct(2025, 5, 26, 3, 0)) == (
        ct(2025, 5, 25, 17, 0),
        ct(2025, 5, 26, 12, 0),
    )
    start, _ = real.sessions()[0]
    assert start == ct(2025, 5, 21, 17, 0)
    assert start.tzinfo == CT
    assert len(real.sessions()) == 5
    assert real.valid_until == ct(2025, 5, 28, 16, 0)


def test_instants_in_any_zone() -> None:
    # DST began 2026-03-08: 17:00 CT is 23:00 UTC the Thursday before, 22:00 UTC that Sunday.
    calendar = SessionCalendar(
        "20260305:1700-20260306:1600;20260307:CLOSED;20260308:1700-20260309:1600", "", "US/Central"
    )
    assert calendar.is_open(datetime(2026, 3, 5, 23, 0, tzinfo=UTC))
    assert not calendar.is_open(datetime(2026, 3, 5, 22, 59, tzinfo=UTC))
    assert calendar.is_open(datetime(2026, 3, 8, 22, 0, tzinfo=UTC))
    assert not calendar.is_open(datetime(2026, 3, 8, 21, 59, tzinfo=UTC))
    assert calendar.next_open(datetime(2026, 3, 7, tzinfo=UTC)) == ct(2026, 3, 8, 17, 0)
    assert not calendar.is_liquid(datetime(2026, 3, 6, 15, 0, tzinfo=UTC))


def test_empty_segments_are_ignored_and_touching_sessions_merge() -> None:
    calendar = SessionCalendar(
        ";;20250521:1700-20250522:1600; ;20250522:1600-20250522:1700;", "", "US/Central"
    )
    assert calendar.sessions() == [(ct(2025, 5, 21, 17, 0), ct(2025, 5, 22, 17, 0))]
    assert calendar.is_open(ct(2025, 5, 22, 16, 30))


def test_empty_strings_know_nothing() -> None:
    calendar = SessionCalendar("", "", "US/Central")
    now = ct(2025, 5, 22, 10, 0)
    assert not calendar.is_open(now)
    assert calendar.next_open(now) is None
    assert calendar.next_close(now) is None
    assert calendar.valid_until is None


@pytest.mark.parametrize(
    "segment",
    [
        "20250521:1700-20250522",
        "20250521:1700",
        "garbage",
        "20250524:OPEN",
        "20251321:1700-20251322:1600",
        "20250521:2500-20250522:1600",
        "20250522:1600-20250521:1700",
        "2025-05-21:1700-20250522:1600",
        "20250521:1700-20250521:1700",
    ],
)
def test_bad_segment_is_named(segment: str) -> None:
    with pytest.raises(ValueError, match="tradingHours") as info:
        SessionCalendar(f"20250520:1700-20250521:1600;{segment}", "", "US/Central")
    assert repr(segment) in str(info.value)


def test_bad_liquid_segment_is_named() -> None:
    with pytest.raises(ValueError, match=r"liquidHours segment '20250522:08'"):
        SessionCalendar(REAL_TRADING, "20250522:08", "US/Central")


def test_bad_zone_and_naive_instants() -> None:
    with pytest.raises(ValueError, match="Mars/Olympus"):
        SessionCalendar(REAL_TRADING, REAL_LIQUID, "Mars/Olympus")
    with pytest.raises(ValueError, match="naive"):
        SessionCalendar(REAL_TRADING, REAL_LIQUID, "US/Central").is_open(datetime(2025, 5, 22))


def test_from_details() -> None:
    cd = ContractDetails(
        tradingHours=REAL_TRADING, liquidHours=REAL_LIQUID, timeZoneId="US/Central"
    )
    assert SessionCalendar.from_details(listing_from_details(cd)).is_liquid(ct(2025, 5, 22, 9, 0))


# --- expiries, front month and roll ---


def es(
    local: str,
    last_trade: str,
    con_id: int,
    *,
    last_trade_time: str = "08:30",
    zone: str = "US/Central",
    hours: str = NOV_TRADING,
) -> Listing:
    contract = Future(
        "ES", last_trade, "CME", localSymbol=local, currency="USD", conId=con_id, multiplier="50"
    )
    return listing_from_details(
        ContractDetails(
            contract=contract, tradingHours=hours, timeZoneId=zone, lastTradeTime=last_trade_time
        )
    )


ESU6 = es("ESU6", "20260918", 1)
ESZ6 = es("ESZ6", "20261218", 2)
ESH7 = es("ESH7", "20270319", 3)
ESM7 = es("ESM7", "20270617", 4)
ESU7 = es("ESU7", "20270917", 5)
LISTING = [ESU7, ESH7, ESZ6, ESM7]  # deliberately out of order


def local(cd: Listing) -> str:
    assert cd.contract is not None
    return cd.contract.localSymbol


def test_expiry_time_forms() -> None:
    assert expiry_time(ESZ6) == ct(2026, 12, 18, 8, 30)
    unsplit = es("ESM5", "20250620 08:30 US/Central", 9, last_trade_time="", zone="")
    assert expiry_time(unsplit) == ct(2025, 6, 20, 8, 30)
    with_seconds = es("ESM5", "20250620", 9, last_trade_time="08:30:00")
    assert expiry_time(with_seconds) == ct(2025, 6, 20, 8, 30)
    no_time = es("ESM5", "20250620", 9, last_trade_time="")
    assert expiry_time(no_time) == ct(2025, 6, 20)
    month_only = es("ESM5", "202506", 9)
    month_only = dataclasses.replace(month_only, real_expiration_date="20250620")
    assert expiry_time(month_only) == ct(2025, 6, 20, 8, 30)


@pytest.mark.parametrize(
    ("last_trade", "last_trade_time", "zone"),
    [
        ("2026DEC", "08:30", "US/Central"),
        ("", "08:30", "US/Central"),
        ("202612", "08:30", "US/Central"),  # month only, no realExpirationDate
        ("20261318", "08:30", "US/Central"),
        ("20261218", "8h30", "US/Central"),
        ("20261218", "25:00", "US/Central"),
        ("20261218", "08:30", ""),
        ("20261218", "08:30", "Nowhere/Land"),
    ],
)
def test_unparseable_expiry_names_the_contract(
    last_trade: str, last_trade_time: str, zone: str
) -> None:
    bad = es("ESZ6", last_trade, 2, last_trade_time=last_trade_time, zone=zone)
    with pytest.raises(ValueError, match="ESZ6"):
        expiry_time(bad)
    with pytest.raises(ValueError, match="ESZ6"):
        select_front([ESH7, bad], ct(2026, 11, 20, 8, 30))


def test_roll_time_is_the_session_open_of_the_roll_date() -> None:
    # 2026-12-18 minus 8 days is trade date 2026-12-10, whose session opens 12-09 17:00 CT.
    assert roll_time(ESZ6, 8) == ct(2026, 12, 9, 17, 0)
    assert roll_time(ESZ6, 0) == ct(2026, 12, 17, 17, 0)
    assert roll_time(ESH7, 8) == ct(2027, 3, 10, 17, 0)  # across the DST change
    assert roll_time(es("ESZ6", "20261218", 2, hours=""), 8) == ct(2026, 12, 10)
    with pytest.raises(ValueError, match="roll_days"):
        roll_time(ESZ6, -1)


def test_roll_time_reports_bad_hours_with_the_contract() -> None:
    with pytest.raises(ValueError, match=r"ESZ6.*tradingHours segment 'x'"):
        roll_time(es("ESZ6", "20261218", 2, hours="x"), 8)


@pytest.mark.parametrize(
    ("when", "front"),
    [
        (ct(2026, 11, 20, 8, 30), "ESZ6"),
        (ct(2026, 12, 9, 12, 0), "ESZ6"),
        (ct(2026, 12, 9, 16, 59, 59), "ESZ6"),
        (ct(2026, 12, 9, 17, 0), "ESH7"),  # the roll: trade date 2026-12-10 has opened
        (ct(2026, 12, 10, 8, 30), "ESH7"),
        (ct(2026, 12, 18, 9, 0), "ESH7"),  # ESZ6 expired
        (ct(2027, 3, 10, 16, 59), "ESH7"),
        (ct(2027, 3, 10, 17, 0), "ESM7"),
    ],
)
def test_select_front(when: datetime, front: str) -> None:
    assert local(select_front(LISTING, when)) == front
    assert local(select_front(LISTING, when.astimezone(UTC))) == front


def test_select_front_roll_days() -> None:
    assert (
        local(select_front(LISTING, ct(2026, 12, 14, 10, 0), roll_days_before_expiry=3)) == "ESZ6"
    )
    assert (
        local(select_front(LISTING, ct(2026, 12, 14, 17, 0), roll_days_before_expiry=3)) == "ESH7"
    )
    assert (
        local(select_front(LISTING, ct(2026, 12, 17, 12, 0), roll_days_before_expiry=0)) == "ESZ6"
    )


def test_select_front_drops_expired_contracts() -> None:
    assert local(select_front([ESU6, *LISTING], ct(2026, 9, 1, 10, 0))) == "ESU6"
    assert local(select_front([ESU6, *LISTING], ct(2026, 11, 20, 8, 30))) == "ESZ6"
    just_before = ct(2026, 12, 18, 8, 29)
    assert local(select_front([ESZ6], just_before, roll_days_before_expiry=0)) == "ESZ6"
    with pytest.raises(NoContractError, match="no unexpired contract"):
        select_front([ESU6, ESZ6], ct(2026, 12, 18, 8, 30))
    with pytest.raises(NoContractError):
        select_front([], ct(2026, 12, 18, 8, 30))


def test_select_front_keeps_the_last_contract_when_nothing_to_roll_into() -> None:
    assert local(select_front([ESZ6], ct(2026, 12, 15, 10, 0))) == "ESZ6"


def test_select_front_refuses_naive_time() -> None:
    with pytest.raises(ValueError, match="naive"):
        select_front(LISTING, datetime(2026, 11, 20, 8, 30))


def test_next_after() -> None:
    assert next_after(LISTING, ESZ6) is ESH7
    assert next_after(LISTING, ESH7) is ESM7
    assert next_after(LISTING, ESU7) is None
    assert next_after(LISTING, ESU6) is ESZ6


def position(contract: Contract, quantity: float) -> object:
    return position_from(Position("DU1234567", contract, quantity, 250_000.0))


def test_stranded_positions() -> None:
    assert ESZ6.contract is not None
    assert ESH7.contract is not None
    old = position(ESZ6.contract, 2.0)
    short_old = position(ESU6.contract or Contract(), -1.0)
    held = [
        old,
        short_old,
        position(ESH7.contract, 1.0),  # the front itself
        position(Future("ES", "20260320", "CME", conId=7), 0.0),  # flat
        position(Future("NQ", "20261218", "CME", conId=8), 1.0),  # other symbol
        position(Contract(secType="FOP", symbol="ES", conId=9), 3.0),  # an option on ES
    ]
    assert stranded_positions(held, ESH7.contract.conId, "ES") == [old, short_old]
    assert stranded_positions([], ESH7.contract.conId, "ES") == []


def test_roll_date_arithmetic_uses_calendar_days() -> None:
    for days in range(15):
        rolled = roll_time(ESZ6, days)
        assert rolled.date() == (ct(2026, 12, 18) - timedelta(days=days + 1)).date()
        assert rolled.hour == 17
