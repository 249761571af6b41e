"""Average-cost position and PnL: hand-computed fills, a day rebuilt from executions, bad input,
and the property that a round trip realizes exactly what was sold minus what was bought."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from daemon.core.instrument import Instrument
from daemon.trading.journal import ExecRow, Journal
from daemon.trading.ledger import DayLedger, Ledger, normalize_side

ES_MULTIPLIER = Instrument.of_product("ES").multiplier

ES = 495512563  # front month
NEXT = 551601561  # the next one, after a roll
DAY = "2026-11-22"
BEFORE = "2026-11-21"
T0 = 1_795_000_000.0


def test_es_round_trip_realizes_ticks_times_multiplier() -> None:
    ledger = Ledger(ES_MULTIPLIER)
    assert ledger.apply("BUY", 1, 5000.00) == 0.0
    assert (ledger.position, ledger.avg_price) == (1, 5000.0)
    assert ledger.apply("SELL", 1, 5001.25) == 62.5  # 5 ticks x $12.50
    assert (ledger.position, ledger.avg_price, ledger.realized) == (0, None, 62.5)


def test_adding_averages_and_a_partial_close_keeps_the_average() -> None:
    ledger = Ledger(ES_MULTIPLIER)
    ledger.apply("BUY", 1, 5000.0)
    assert ledger.apply("BUY", 3, 5002.0) == 0.0
    assert ledger.avg_price == 5001.5  # (5000 + 3 x 5002) / 4
    assert ledger.apply("SELL", 2, 5003.0) == 150.0  # 2 x 1.5 points x 50
    assert (ledger.position, ledger.avg_price) == (2, 5001.5)
    assert ledger.apply("SELL", 2, 5000.0) == -150.0
    assert (ledger.position, ledger.realized) == (0, 0.0)
    assert ledger.avg_price is None


def test_a_short_gains_when_the_price_falls() -> None:
    ledger = Ledger(ES_MULTIPLIER)
    ledger.apply("SLD", 2, 5000.0)
    assert (ledger.position, ledger.avg_price) == (-2, 5000.0)
    assert ledger.apply("BOT", 1, 4999.0) == 50.0
    assert ledger.unrealized(4998.0) == 100.0  # -1 x (4998 - 5000) x 50


def test_a_flip_closes_the_old_side_then_opens_the_rest_at_the_fill_price() -> None:
    ledger = Ledger(ES_MULTIPLIER)
    ledger.apply("BUY", 2, 5000.0)
    assert ledger.apply("SELL", 5, 5001.0) == 100.0  # closes 2 at +1 point
    assert (ledger.position, ledger.avg_price) == (-3, 5001.0)
    assert ledger.apply("BUY", 4, 5002.0) == -150.0  # closes 3 short at -1 point, opens 1 long
    assert (ledger.position, ledger.avg_price, ledger.realized) == (1, 5002.0, -50.0)


def test_commissions_are_summed_apart_and_net_subtracts_them() -> None:
    ledger = Ledger(ES_MULTIPLIER)
    ledger.apply("BUY", 2, 5000.0, commission=4.5)
    ledger.apply("SELL", 1, 5002.0, commission=2.25)
    assert (ledger.realized, ledger.commissions) == (100.0, 6.75)
    assert ledger.unrealized(5001.0) == 50.0
    assert ledger.net(5001.0) == 100.0 - 6.75 + 50.0


def test_unrealized_is_unknown_without_a_mark_unless_flat() -> None:
    ledger = Ledger(ES_MULTIPLIER)
    assert ledger.unrealized(None) == 0.0
    assert ledger.net(None) == 0.0
    ledger.apply("BUY", 1, 5000.0, commission=2.25)
    assert ledger.unrealized(None) is None
    assert ledger.net(None) is None
    ledger.apply("SELL", 1, 5000.5, commission=2.25)
    assert ledger.net(None) == 25.0 - 4.5


def test_another_multiplier() -> None:
    micro = Ledger(multiplier=5.0)  # MES
    micro.apply("BUY", 3, 5000.0)
    assert micro.apply("SELL", 3, 5001.0) == 15.0


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("buy", 1, 5000.0), "side must be BUY, SELL, BOT or SLD, got 'buy'"),
        (("", 1, 5000.0), "side must be BUY, SELL, BOT or SLD, got ''"),
        (("BUY", 0, 5000.0), "shares must be an int > 0, got 0"),
        (("BUY", -1, 5000.0), "shares must be an int > 0, got -1"),
        (("BUY", 1.0, 5000.0), "shares must be an int > 0, got 1.0"),
        (("BUY", True, 5000.0), "shares must be an int > 0, got True"),
        (("BUY", 1, float("nan")), "price must be finite, got nan"),
        (("BUY", 1, float("inf")), "price must be finite, got inf"),
        (("BUY", 1, 5000.0, float("nan")), "commission must be finite, got nan"),
    ],
)
def test_bad_fills_raise_and_change_nothing(args: tuple[Any, ...], message: str) -> None:
    ledger = Ledger(ES_MULTIPLIER)
    ledger.apply("BUY", 1, 5000.0, 2.25)
    with pytest.raises(ValueError, match=message):
        ledger.apply(*args)
    assert (ledger.position, ledger.avg_price, ledger.realized, ledger.commissions) == (
        1, 5000.0, 0.0, 2.25,
    )  # fmt: skip


def test_bad_multiplier_and_mark() -> None:
    with pytest.raises(ValueError, match="multiplier must be a positive finite number"):
        Ledger(0.0)
    ledger = Ledger(ES_MULTIPLIER)
    ledger.apply("BUY", 1, 5000.0)
    with pytest.raises(ValueError, match="mark must be finite"):
        ledger.unrealized(float("nan"))


def test_normalize_side() -> None:
    assert [normalize_side(s) for s in ("BUY", "BOT", "SELL", "SLD")] == [
        "BUY", "BUY", "SELL", "SELL",
    ]  # fmt: skip
    with pytest.raises(ValueError, match="got 'LONG'"):
        normalize_side("LONG")


TICKS = st.integers(min_value=18_000, max_value=22_000)  # price in ticks: 4500.00..5500.00
FILLS = st.lists(
    st.tuples(st.sampled_from(["BUY", "SELL"]), st.integers(min_value=1, max_value=20), TICKS),
    max_size=40,
)


def closed(fills: list[tuple[str, int, int]], close_ticks: int) -> list[tuple[str, int, int]]:
    """The fills plus one that brings the position back to flat."""
    net = sum(shares if side == "BUY" else -shares for side, shares, _ in fills)
    if net == 0:
        return fills
    return [*fills, ("SELL" if net > 0 else "BUY", abs(net), close_ticks)]


@settings(max_examples=300, deadline=None)
@given(FILLS, TICKS)
def test_a_sequence_ending_flat_realizes_sold_minus_bought(
    fills: list[tuple[str, int, int]], close_ticks: int
) -> None:
    ledger = Ledger(ES_MULTIPLIER)
    bought = sold = 0.0
    for side, shares, ticks in closed(fills, close_ticks):
        ledger.apply(side, shares, ticks * 0.25)
        value = shares * ticks * 0.25 * ES_MULTIPLIER
        if side == "BUY":
            bought += value
        else:
            sold += value
    assert (ledger.position, ledger.avg_price, ledger.unrealized(None)) == (0, None, 0.0)
    # Averages divide, so allow float rounding relative to the money traded.
    assert ledger.realized == pytest.approx(sold - bought, abs=1e-9 * (bought + sold + 1.0))


@settings(max_examples=200, deadline=None)
@given(FILLS, TICKS)
def test_net_at_a_mark_equals_closing_there(fills: list[tuple[str, int, int]], mark: int) -> None:
    """Unrealized at a mark is what closing at that mark would realize."""
    ledger, closing = Ledger(ES_MULTIPLIER), Ledger(ES_MULTIPLIER)
    for side, shares, ticks in fills:
        ledger.apply(side, shares, ticks * 0.25, commission=1.0)
        closing.apply(side, shares, ticks * 0.25, commission=1.0)
    if closing.position:
        closing.apply("SELL" if closing.position > 0 else "BUY", abs(closing.position), mark * 0.25)
    assert ledger.position == sum(s if d == "BUY" else -s for d, s, _ in fills)
    net = ledger.net(mark * 0.25)
    assert net is not None
    assert net == pytest.approx(closing.net(None), abs=1e-6)


# --- DayLedger ----------------------------------------------------------------------------


def execution(exec_id: str, side: str, shares: int, price: float, **changes: Any) -> ExecRow:
    row = ExecRow(
        exec_id=exec_id, order_ref=None, perm_id=None, order_id=None, client_id=None,
        time=T0 + len(exec_id), day=DAY, con_id=ES, account="DU1234567", side=side,
        shares=shares, price=price, cum_qty=shares, avg_price=price, commission=2.25,
    )  # fmt: skip
    return replace(row, **changes)


def test_a_day_counts_its_own_fills_and_marks_a_carried_position_at_its_cost() -> None:
    executions = [
        execution("y1", "BUY", 2, 5000.0, day=BEFORE, time=T0 - 80_000),
        execution("d1", "SELL", 1, 5004.0, time=T0 + 10),
        execution("d2", "BUY", 1, 5003.0, time=T0 + 20, commission=None),
    ]
    day = DayLedger.from_executions(
        reversed(executions), DAY, ES_MULTIPLIER
    )  # sorted by time inside
    # Yesterday's buy is not today's commission; today's sell realizes against its cost.
    assert day.realized == 200.0  # 1 x 4 points x 50
    assert day.commissions == 2.25
    assert day.pending_commissions == 1
    assert day.positions() == {ES: 2}
    assert day.ledger(ES).avg_price == 5001.5  # (5000 + 5003) / 2
    assert day.unrealized({ES: 5002.0}) == 50.0  # 2 x 0.5 x 50
    assert day.net({ES: 5002.0}) == 200.0 - 2.25 + 50.0
    assert day.unrealized({}) is None
    assert day.net({}) is None


def test_a_roll_day_keeps_one_ledger_per_contract() -> None:
    day = DayLedger.from_executions(
        [
            execution("a1", "BUY", 1, 5000.0, day=BEFORE, time=T0 - 80_000),
            execution("a2", "SELL", 1, 5001.0, time=T0),
            execution("b1", "BUY", 1, 5040.0, con_id=NEXT, time=T0 + 1),
        ],
        DAY,
        ES_MULTIPLIER,
    )
    assert day.realized == 50.0
    assert day.commissions == 4.5
    assert day.positions() == {NEXT: 1}
    assert day.unrealized({NEXT: 5041.0}) == 50.0  # the flat contract needs no mark
    assert day.ledger(12345).position == 0


def test_a_later_day_does_not_count() -> None:
    day = DayLedger(BEFORE, ES_MULTIPLIER)
    assert day.apply(execution("d1", "BUY", 1, 5000.0)) == 0.0
    assert day.apply(execution("d2", "SELL", 1, 5001.0)) == 50.0  # returned, not counted
    assert (day.realized, day.commissions, day.positions()) == (0.0, 0.0, {})


def test_executions_of_two_accounts_are_refused_with_masked_ids() -> None:
    day = DayLedger(DAY, ES_MULTIPLIER)
    day.apply(execution("d1", "BUY", 1, 5000.0))
    with pytest.raises(ValueError, match=r"several accounts: \*{5}4567 and \*{5}9999"):
        day.apply(execution("d2", "SELL", 1, 5001.0, account="DU0009999"))


def test_a_day_rebuilt_from_the_journal(tmp_path: Path) -> None:
    with Journal(tmp_path / "j.sqlite", synchronous="normal") as journal:
        journal.record_execution(execution("e1", "BOT", 1, 5000.00, commission=None))
        journal.record_execution(execution("e2", "SLD", 1, 5001.25, commission=None))
        journal.set_commission("e1", 2.25, None)
        day = DayLedger.from_executions(journal.executions(con_id=ES), DAY, ES_MULTIPLIER)
    assert (day.realized, day.commissions, day.pending_commissions) == (62.5, 2.25, 1)
    assert day.net({}) == 60.25
