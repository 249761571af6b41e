from __future__ import annotations

from datetime import date, datetime

import pytest

from ibsim import calendar
from ibsim.contracts import (
    FIRST_YEAR,
    LAST_YEAR,
    MONTH_CODES,
    ContractQuery,
    by_con_id,
    last_trade_date,
    listed_futures,
    resolve,
)
from ibsim.model import FutureSpec


def ct(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> float:
    """Epoch seconds of a Central wall-clock time."""
    return datetime(year, month, day, hour, minute, tzinfo=calendar.CENTRAL).timestamp()


NOV_2026 = ct(2026, 11, 22, 12, 0)


def symbols(specs: list[FutureSpec]) -> list[tuple[str, str]]:
    return [(s.local_symbol, s.expiry) for s in specs]


def test_listing_in_november_2026() -> None:
    assert symbols(listed_futures(NOV_2026)) == [
        ("ESZ6", "20261218"),
        ("ESH7", "20270319"),
        # Juneteenth 2027 falls on Saturday and is observed on Friday 18 June, the third Friday.
        ("ESM7", "20270617"),
        ("ESU7", "20270917"),
    ]


def test_listed_contract_description() -> None:
    front = listed_futures(NOV_2026, count=1)[0]
    assert front.symbol == "ES"
    assert front.contract_month == "202612"
    assert front.last_trade_time == "08:30"
    assert front.trading_class == "ES"
    assert front.multiplier == 50
    assert front.min_tick == 0.25
    assert front.time_zone_id == "US/Central"
    assert front.long_name == "E-mini S&P 500"
    assert front.under_con_id == 11004968
    assert 100_000_000 <= front.con_id <= 999_999_999


def test_listing_at_replay_start_2013() -> None:
    listing = listed_futures(ct(2013, 9, 1, 17, 0))
    assert symbols(listing)[0] == ("ESU3", "20130920")
    assert [s.local_symbol for s in listing] == ["ESU3", "ESZ3", "ESH4", "ESM4"]


def test_hours_come_from_the_calendar() -> None:
    now = ct(2013, 9, 1, 17, 0)
    for spec in listed_futures(now):
        assert spec.trading_hours == calendar.trading_hours(now)
        assert spec.liquid_hours == calendar.liquid_hours(now)
    assert listed_futures(now)[0].trading_hours.startswith("20130901:1700-20130902:1200;")


def test_juneteenth_third_friday_moves_last_trade_date() -> None:
    assert last_trade_date(2026, 6) == date(2026, 6, 18)
    assert last_trade_date(2026, 3) == date(2026, 3, 20)


@pytest.mark.parametrize(("minute", "listed"), [(29, True), (31, False)])
def test_expiry_day_rollover(minute: int, listed: bool) -> None:
    now = ct(2026, 12, 18, 8, minute)
    fronts = [s.local_symbol for s in listed_futures(now, count=2)]
    assert fronts == (["ESZ6", "ESH7"] if listed else ["ESH7", "ESM7"])
    december = ContractQuery(symbol="ES", sec_type="FUT", expiry="202612")
    assert (resolve(december, now) != []) is listed


def test_resolve_unqualified_is_the_listing() -> None:
    query = ContractQuery(symbol="ES", sec_type="FUT", exchange="CME")
    assert resolve(query, NOV_2026) == listed_futures(NOV_2026)


def test_resolve_by_local_symbol() -> None:
    found = resolve(ContractQuery(sec_type="FUT", local_symbol="esh7"), NOV_2026)
    assert symbols(found) == [("ESH7", "20270319")]


def test_resolve_local_symbol_of_expired_contract() -> None:
    query = ContractQuery(symbol="ES", sec_type="FUT", local_symbol="ESU6")
    # Without include_expired the next live ESU6 is a decade away.
    assert symbols(resolve(query, NOV_2026)) == [("ESU6", "20360919")]
    expired = ContractQuery(symbol="ES", sec_type="FUT", local_symbol="ESU6", include_expired=True)
    assert symbols(resolve(expired, NOV_2026)) == [("ESU6", "20260918")]


def test_resolve_by_contract_month_and_by_last_trade_date() -> None:
    by_month = resolve(ContractQuery(symbol="ES", sec_type="FUT", expiry="202703"), NOV_2026)
    by_date = resolve(ContractQuery(symbol="ES", sec_type="FUT", expiry="20270319"), NOV_2026)
    assert symbols(by_month) == symbols(by_date) == [("ESH7", "20270319")]
    assert resolve(ContractQuery(symbol="ES", sec_type="FUT", expiry="20270318"), NOV_2026) == []
    assert resolve(ContractQuery(symbol="ES", sec_type="FUT", expiry="202704"), NOV_2026) == []


def test_expired_contracts_need_include_expired() -> None:
    query = ContractQuery(symbol="ES", sec_type="FUT", expiry="202609")
    assert resolve(query, NOV_2026) == []
    with_expired = ContractQuery(symbol="ES", sec_type="FUT", expiry="202609", include_expired=True)
    assert symbols(resolve(with_expired, NOV_2026)) == [("ESU6", "20260918")]


def test_con_id_round_trip() -> None:
    front = listed_futures(NOV_2026)[0]
    assert by_con_id(front.con_id, NOV_2026) == front
    assert resolve(ContractQuery(con_id=front.con_id), NOV_2026) == [front]
    assert by_con_id(front.con_id + 1) is None
    assert by_con_id(11004968) is None


def resolve_con_id(local_symbol: str, now: float) -> int:
    (spec,) = resolve(ContractQuery(symbol="ES", sec_type="FUT", local_symbol=local_symbol), now)
    return spec.con_id


def test_con_id_lookup_of_an_old_contract() -> None:
    old = by_con_id(resolve_con_id("ESU3", ct(2013, 9, 1, 17, 0)))
    assert old is not None
    assert (old.local_symbol, old.expiry, old.trading_hours) == ("ESU3", "20130920", "")
    assert resolve(ContractQuery(con_id=old.con_id), NOV_2026) == []
    assert resolve(ContractQuery(con_id=old.con_id, include_expired=True), NOV_2026) != []


def test_con_id_must_agree_with_other_fields() -> None:
    front = listed_futures(NOV_2026)[0]
    assert resolve(ContractQuery(con_id=front.con_id, local_symbol="ESH7"), NOV_2026) == []


@pytest.mark.parametrize(
    "query",
    [
        ContractQuery(symbol="ZN", sec_type="FUT", exchange="CBOT"),  # not in the family
        ContractQuery(symbol="NQ", sec_type="FUT", exchange="CBOT"),  # NQ is on CME
        ContractQuery(symbol="YM", sec_type="FUT", exchange="CME"),  # YM is on CBOT
        ContractQuery(symbol="ES", sec_type="STK", exchange="CME"),
        ContractQuery(symbol="ES", sec_type="FUT", exchange="SMART"),
        ContractQuery(symbol="ES", sec_type="FUT", currency="EUR"),
        ContractQuery(symbol="ES", sec_type="FUT", trading_class="MES"),
        ContractQuery(symbol="ES", sec_type="", expiry="202612"),
        ContractQuery(symbol="", sec_type="FUT", expiry="202612"),
        ContractQuery(symbol="ES", sec_type="FUT", local_symbol="NQZ6"),
        ContractQuery(con_id=123456789),
    ],
)
def test_unresolvable_queries(query: ContractQuery) -> None:
    assert resolve(query, NOV_2026) == []


def test_globex_is_accepted_as_cme() -> None:
    query = ContractQuery(symbol="ES", sec_type="FUT", exchange="GLOBEX", expiry="202612")
    assert symbols(resolve(query, NOV_2026)) == [("ESZ6", "20261218")]


def test_con_ids_unique_and_invertible_2010_to_2040() -> None:
    specs = []
    for year in range(FIRST_YEAR, LAST_YEAR + 1):
        for month in MONTH_CODES:
            query = ContractQuery(
                symbol="ES", sec_type="FUT", expiry=f"{year}{month:02d}", include_expired=True
            )
            (spec,) = resolve(query, NOV_2026)
            specs.append(spec)
    con_ids = [s.con_id for s in specs]
    assert len(set(con_ids)) == len(con_ids) == 4 * (LAST_YEAR - FIRST_YEAR + 1)
    assert all(100_000_000 <= c <= 999_999_999 for c in con_ids)
    assert all(by_con_id(s.con_id, NOV_2026) == s for s in specs)
