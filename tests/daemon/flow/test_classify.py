"""Aggressor classification: hand-computed cases, ibsim's consistent replay, and properties."""

from __future__ import annotations

import math
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from daemon.flow.classify import (
    BVC_SCALE,
    BVC_SIGMA_MIN_SAMPLES,
    BVC_SIGN_ONLY,
    NO_PRICE,
    OLD_QUOTE,
    QUOTE_AT,
    QUOTE_THROUGH,
    SNAPSHOT_AGGREGATE,
    SNAPSHOT_SINGLE,
    TICK_MOVE,
    TICK_ZERO,
    SnapshotClassifier,
    TickClassifier,
    buy_fraction,
)
from daemon.flow.prints import Method, Print
from ibsim.market import RawTrade, ReplaySource, price_to_tick
from ibsim.model import QuoteTick, Side

PHI_1 = 0.8413447460685429  # standard normal CDF at 1
PHI_2 = 0.9772498680518208  # ... at 2


def side(p: Print) -> tuple[float, float, Method, float]:
    return p.buy, p.sell, p.method, p.confidence


# --- tick-by-tick: quote rule ---


@pytest.fixture
def tbt() -> TickClassifier:
    c = TickClassifier(quote_stale_s=5.0)
    c.quote(100, 101, 0.0)
    return c


def test_trade_at_ask_is_a_buy(tbt: TickClassifier) -> None:
    p = tbt.trade(0.0, 101, 3.0)
    assert (p.time, p.tick, p.size) == (0.0, 101, 3.0)
    assert side(p) == (3.0, 0.0, Method.QUOTE, QUOTE_AT)


def test_trade_at_bid_is_a_sell(tbt: TickClassifier) -> None:
    assert side(tbt.trade(0.0, 100, 2.0)) == (0.0, 2.0, Method.QUOTE, QUOTE_AT)


def test_trades_through_the_touch_are_surer(tbt: TickClassifier) -> None:
    assert side(tbt.trade(0.0, 103, 1.0)) == (1.0, 0.0, Method.QUOTE, QUOTE_THROUGH)
    assert side(tbt.trade(0.0, 98, 1.0)) == (0.0, 1.0, Method.QUOTE, QUOTE_THROUGH)


def test_inside_the_spread_falls_back_to_the_tick_rule() -> None:
    c = TickClassifier(quote_stale_s=5.0)
    c.quote(100, 104, 0.0)
    assert side(c.trade(0.0, 104, 1.0)) == (1.0, 0.0, Method.QUOTE, QUOTE_AT)
    assert side(c.trade(0.0, 102, 1.0)) == (0.0, 1.0, Method.TICK, TICK_MOVE)  # downtick
    assert side(c.trade(0.0, 102, 1.0)) == (0.0, 1.0, Method.TICK, TICK_ZERO)  # carries
    assert side(c.trade(0.0, 103, 1.0)) == (1.0, 0.0, Method.TICK, TICK_MOVE)  # uptick


def test_zero_tick_carries_the_side_the_quote_rule_decided(tbt: TickClassifier) -> None:
    tbt.quote(100, 102, 0.0)
    tbt.trade(0.0, 100, 1.0)  # a sell at the bid
    tbt.trade(0.0, 101, 1.0)  # uptick inside the spread: buy
    tbt.quote(99, 102, 0.0)
    tbt.trade(0.0, 99, 1.0)  # sell at the bid
    tbt.quote(98, 101, 0.0)
    assert side(tbt.trade(0.0, 99, 4.0)) == (0.0, 4.0, Method.TICK, TICK_ZERO)


def test_first_trade_without_quote_or_previous_trade_is_unclassified() -> None:
    p = TickClassifier(quote_stale_s=5.0).trade(10.0, 100, 5.0)
    assert side(p) == (0.0, 0.0, Method.NONE, 0.0)
    assert p.unclassified == 5.0


def test_trades_only_is_the_tick_rule() -> None:
    c = TickClassifier(quote_stale_s=5.0)
    got = [side(c.trade(float(t), tick, 1.0)) for t, tick in enumerate([100, 100, 101, 101, 100])]
    assert got == [
        (0.0, 0.0, Method.NONE, 0.0),
        (0.0, 0.0, Method.NONE, 0.0),  # a zero tick with no side to carry yet
        (1.0, 0.0, Method.TICK, TICK_MOVE),
        (1.0, 0.0, Method.TICK, TICK_ZERO),
        (0.0, 1.0, Method.TICK, TICK_MOVE),
    ]


def test_stale_quote_uses_the_tick_rule(tbt: TickClassifier) -> None:
    assert side(tbt.trade(0.0, 102, 1.0))[2] is Method.QUOTE
    # 5 s old is still fresh; at the ask, but a downtick.
    assert side(tbt.trade(5.0, 101, 1.0)) == (1.0, 0.0, Method.QUOTE, QUOTE_AT)
    tbt.trade(5.0, 102, 1.0)
    # 6 s old is stale: the tick rule calls the downtick to the ask a sell.
    assert side(tbt.trade(6.0, 101, 1.0)) == (0.0, 1.0, Method.TICK, TICK_MOVE)
    tbt.quote(100, 101, 6.0)  # the same quote again refreshes it
    assert side(tbt.trade(6.0, 101, 1.0)) == (1.0, 0.0, Method.QUOTE, QUOTE_AT)


# --- tick-by-tick: the old-quote correction ---


def test_old_ask_lifted_is_a_buy(tbt: TickClassifier) -> None:
    tbt.trade(0.0, 100, 1.0)  # sell at the bid
    tbt.quote(101, 102, 1.0)  # the ask at 101 went: its trade report is late
    assert side(tbt.trade(1.0, 101, 2.0)) == (2.0, 0.0, Method.OLD_QUOTE, OLD_QUOTE)


def test_old_bid_hit_is_a_sell(tbt: TickClassifier) -> None:
    tbt.trade(0.0, 101, 1.0)
    tbt.quote(99, 100, 0.0)
    assert side(tbt.trade(0.0, 100, 2.0)) == (0.0, 2.0, Method.OLD_QUOTE, OLD_QUOTE)


def test_old_quote_is_the_one_at_the_last_trade_across_several_moves(
    tbt: TickClassifier,
) -> None:
    tbt.trade(0.0, 100, 1.0)
    tbt.quote(101, 102, 0.0)
    tbt.quote(102, 103, 1.0)
    # Below the new bid (the quote rule would say sell), exactly at the ask of the last trade.
    assert side(tbt.trade(1.0, 101, 1.0)) == (1.0, 0.0, Method.OLD_QUOTE, OLD_QUOTE)


def test_no_correction_when_the_level_just_traded(tbt: TickClassifier) -> None:
    tbt.trade(0.0, 101, 1.0)  # a buy took the ask out ...
    tbt.quote(101, 102, 0.0)
    # ... and a seller hits the new bid at the same price: the move is explained.
    assert side(tbt.trade(0.0, 101, 1.0)) == (0.0, 1.0, Method.QUOTE, QUOTE_AT)


def test_no_correction_after_a_trade_in_between(tbt: TickClassifier) -> None:
    tbt.trade(0.0, 100, 1.0)
    tbt.quote(101, 102, 1.0)
    tbt.trade(1.0, 102, 1.0)
    assert side(tbt.trade(1.0, 101, 1.0)) == (0.0, 1.0, Method.QUOTE, QUOTE_AT)


def test_no_correction_long_after_the_quote_moved(tbt: TickClassifier) -> None:
    tbt.trade(0.0, 100, 1.0)
    tbt.quote(101, 102, 1.0)
    assert side(tbt.trade(3.0, 101, 1.0)) == (0.0, 1.0, Method.QUOTE, QUOTE_AT)


def test_correction_can_be_switched_off() -> None:
    c = TickClassifier(quote_stale_s=5.0, old_quote=False)
    c.quote(100, 101, 0.0)
    c.trade(0.0, 100, 1.0)
    c.quote(101, 102, 1.0)
    assert side(c.trade(1.0, 101, 1.0)) == (0.0, 1.0, Method.QUOTE, QUOTE_AT)


def test_reset_forgets_quotes_and_tick_rule_state(tbt: TickClassifier) -> None:
    tbt.trade(0.0, 101, 1.0)
    tbt.reset()
    assert side(tbt.trade(1.0, 101, 1.0)) == (0.0, 0.0, Method.NONE, 0.0)
    assert side(tbt.trade(1.0, 102, 1.0)) == (1.0, 0.0, Method.TICK, TICK_MOVE)


def test_every_trade_of_ibsims_replay_is_classified_right() -> None:
    """ibsim's replay keeps quotes consistent with its decided aggressors (trade at the touch,
    quote updates after the trade): the quote rule, with the old-quote correction on, must get
    every trade. The naive correction gets the trades after a level traded out wrong."""
    rng = random.Random(7)
    price, trades = 1650.0, []
    for i in range(3000):
        price += rng.choice((-0.25, 0.0, 0.0, 0.25))
        for _ in range(rng.choice((1, 1, 2, 5))):
            trades.append(RawTrade(1_378_000_000.0 + i // 3, price, rng.randint(1, 40)))
    c = TickClassifier(quote_stale_s=5.0)
    wrong = total = 0
    for e in ReplaySource(trades, seed=3).events():
        t = float(int(e.time))
        if isinstance(e, QuoteTick):
            c.quote(price_to_tick(e.bid), price_to_tick(e.ask), t)
            continue
        p = c.trade(t, price_to_tick(e.price), float(e.size))
        total += 1
        wrong += (p.buy > 0) != (e.aggressor is Side.BUY) or p.unclassified != 0
    assert total == len(trades)
    assert wrong == 0


# --- snapshot ---


def test_snapshot_prints_use_the_previous_samples_quote() -> None:
    c = SnapshotClassifier()
    first = c.sample(0.25, (100, 101, 10.0, 10.0), 100, None, [(100, 2.0, 0.2, True)])
    assert [side(p) for p in first] == [(0.0, 0.0, Method.NONE, 0.0)]  # no quote, no price yet
    # 101 is the bid now, but it was the ask when the print happened.
    out = c.sample(0.5, (101, 102, 10.0, 10.0), 101, 3.0, [(101, 3.0, 0.4, True)])
    assert [(p.time, p.tick, p.size) for p in out] == [(0.4, 101, 3.0)]
    assert side(out[0]) == (3.0, 0.0, Method.QUOTE, SNAPSHOT_SINGLE)
    out = c.sample(0.75, (100, 101, 10.0, 10.0), 100, 7.0, [(101, 7.0, 0.7, False)])
    assert [side(p) for p in out] == [(0.0, 7.0, Method.QUOTE, SNAPSHOT_AGGREGATE)]


def test_snapshot_print_inside_the_previous_spread_uses_the_tick_rule() -> None:
    c = SnapshotClassifier()
    c.sample(0.25, (100, 104, 1.0, 1.0), 101, None, [])
    out = c.sample(0.5, (100, 104, 1.0, 1.0), 102, 2.0, [(102, 2.0, 0.3, True)])
    assert [side(p) for p in out] == [(2.0, 0.0, Method.TICK, TICK_MOVE)]
    out = c.sample(0.75, None, 102, 1.0, [(102, 1.0, 0.6, False)])
    assert [side(p) for p in out] == [(1.0, 0.0, Method.TICK, TICK_ZERO * 0.8)]
    # The previous sample had no valid quote: the tick rule again.
    out = c.sample(1.0, (100, 101, 1.0, 1.0), 101, 1.0, [(101, 1.0, 0.9, True)])
    assert [side(p) for p in out] == [(0.0, 1.0, Method.TICK, TICK_MOVE)]


def _sigma_one(c: SnapshotClassifier) -> int:
    """Feed price changes of +-1 tick with volume until sigma is known (exactly 1); returns the
    last price. The residuals meanwhile are split by the sign of the change alone."""
    c.sample(0.0, None, 100, None, [])
    tick = 100
    for i in range(BVC_SIGMA_MIN_SAMPLES):
        tick += 1 if i % 2 == 0 else -1
        out = c.sample(float(i + 1), None, tick, 1.0, [])
        up = i % 2 == 0
        assert [side(p) for p in out] == [
            (1.0 if up else 0.0, 0.0 if up else 1.0, Method.BVC, BVC_SIGN_ONLY)
        ]
    return tick


def test_snapshot_residual_is_split_by_bvc() -> None:
    c = SnapshotClassifier()
    tick = _sigma_one(c)
    out = c.sample(30.0, (99, 100, 1.0, 1.0), tick + 1, 10.0, [])
    assert len(out) == 1
    p = out[0]
    assert (p.time, p.tick, p.size, p.method) == (30.0, tick + 1, 10.0, Method.BVC)
    assert p.buy == pytest.approx(10 * PHI_1, abs=1e-12)
    assert p.sell == pytest.approx(10 * (1 - PHI_1), abs=1e-12)
    assert p.confidence == pytest.approx(BVC_SCALE * (2 * PHI_1 - 1), abs=1e-12)
    assert buy_fraction(-2, 1.0) == pytest.approx(1 - PHI_2, abs=1e-12)


def test_snapshot_residual_beside_prints() -> None:
    c = SnapshotClassifier()
    tick = _sigma_one(c)
    out = c.sample(30.0, None, tick - 1, 10.0, [(tick - 1, 4.0, 29.9, True)])
    assert [(p.tick, p.size, p.method) for p in out] == [
        (tick - 1, 4.0, Method.TICK),
        (tick - 1, 6.0, Method.BVC),
    ]
    assert out[1].buy == pytest.approx(6 * (1 - PHI_1), abs=1e-12)


def test_bvc_without_sigma_uses_the_sign_and_an_even_split_for_no_change() -> None:
    c = SnapshotClassifier()
    c.sample(0.0, None, 100, None, [])
    assert [side(p) for p in c.sample(1.0, None, 99, 4.0, [])] == [
        (0.0, 4.0, Method.BVC, BVC_SIGN_ONLY)
    ]
    assert [side(p) for p in c.sample(2.0, None, 99, 4.0, [])] == [(2.0, 2.0, Method.BVC, 0.0)]


def test_unknown_increment_classifies_only_the_prints() -> None:
    c = SnapshotClassifier()
    c.sample(0.0, (100, 101, 1.0, 1.0), 100, None, [])
    out = c.sample(0.25, (100, 101, 1.0, 1.0), 100, None, [(100, 2.0, 0.1, True)])
    assert [(p.size, p.sell, p.method) for p in out] == [(2.0, 2.0, Method.QUOTE)]


def test_increment_smaller_than_the_prints_leaves_no_negative_residual() -> None:
    c = SnapshotClassifier()
    c.sample(0.0, (100, 101, 1.0, 1.0), 100, None, [])
    out = c.sample(0.25, None, 101, 1.0, [(101, 2.0, 0.1, True), (101, 3.0, 0.2, False)])
    assert [(p.size, p.buy) for p in out] == [(2.0, 2.0), (3.0, 3.0)]


def test_no_price_reference_leaves_the_residual_unclassified() -> None:
    c = SnapshotClassifier()
    out = c.sample(0.0, (100, 101, 1.0, 1.0), None, 5.0, [])
    assert [(p.tick, p.size, *side(p)) for p in out] == [
        (NO_PRICE, 5.0, 0.0, 0.0, Method.NONE, 0.0)
    ]
    # A price, but none before it to measure a change against: still unclassified.
    out = c.sample(0.25, None, 100, 3.0, [])
    assert [(p.tick, p.size, p.method) for p in out] == [(100, 3.0, Method.NONE)]
    # Now there is a change to go by.
    out = c.sample(0.5, None, 101, 3.0, [])
    assert [(p.tick, p.buy, p.method) for p in out] == [(101, 3.0, Method.BVC)]


def test_snapshot_reset_forgets_quote_and_prices() -> None:
    c = SnapshotClassifier()
    c.sample(0.0, (100, 101, 1.0, 1.0), 100, None, [])
    c.reset()
    out = c.sample(0.25, None, None, 2.0, [(101, 2.0, 0.1, True)])
    assert [side(p) for p in out] == [(0.0, 0.0, Method.NONE, 0.0)]


# --- properties ---


def _check(p: Print) -> None:
    for x in (p.time, p.size, p.buy, p.sell, p.confidence):
        assert not math.isnan(x)
    assert p.buy >= 0.0
    assert p.sell >= 0.0
    assert 0.0 <= p.confidence <= 1.0
    assert p.unclassified >= -1e-9 * max(1.0, p.size)


ticks = st.integers(min_value=1, max_value=40)
sizes = st.one_of(st.integers(1, 500).map(float), st.floats(1e-6, 1e4))
quote_op = st.tuples(st.just("quote"), ticks, st.integers(1, 5), st.integers(0, 7))
trade_op = st.tuples(st.just("trade"), ticks, sizes, st.integers(0, 7))
reset_op = st.tuples(st.just("reset"), st.just(0), st.just(0), st.just(0))


@settings(max_examples=300, deadline=None)
@given(st.lists(st.one_of(quote_op, trade_op, trade_op, reset_op), max_size=60), st.booleans())
def test_tick_classifier_properties(ops: list[tuple[str, int, float, int]], old: bool) -> None:
    c = TickClassifier(quote_stale_s=2.0, old_quote=old)
    now = 0.0
    total = classified = 0.0
    for kind, tick, x, dt in ops:
        now += dt
        if kind == "quote":
            c.quote(tick, tick + int(x), now)
        elif kind == "trade":
            p = c.trade(now, tick, x)
            _check(p)
            assert (p.time, p.tick, p.size) == (now, tick, x)
            total += x
            classified += p.buy + p.sell + p.unclassified
        else:
            c.reset()
    assert classified == pytest.approx(total, abs=1e-9)


prints_st = st.lists(st.tuples(ticks, sizes, st.floats(0, 1), st.booleans()), max_size=4)
samples_st = st.lists(
    st.tuples(
        st.one_of(st.none(), st.tuples(ticks, st.integers(1, 4))),
        st.one_of(st.none(), ticks),
        st.one_of(st.none(), st.integers(-50, 2000).map(float), st.floats(-1e3, 1e4)),
        prints_st,
        st.booleans(),
    ),
    max_size=60,
)


@settings(max_examples=300, deadline=None)
@given(samples_st)
def test_snapshot_classifier_properties(
    samples: list[
        tuple[
            tuple[int, int] | None,
            int | None,
            float | None,
            list[tuple[int, float, float, bool]],
            bool,
        ]
    ],
) -> None:
    c = SnapshotClassifier()
    for i, (q, last, increment, prints, reset) in enumerate(samples):
        if reset:
            c.reset()
        quote = None if q is None else (q[0], q[0] + q[1], 1.0, 1.0)
        out = c.sample(i * 0.25, quote, last, increment, prints)
        printed = sum(size for _, size, _, _ in prints)
        expected = printed if increment is None else max(increment, printed)
        assert sum(p.size for p in out) == pytest.approx(expected, abs=1e-9, rel=1e-12)
        assert sum(p.buy + p.sell + p.unclassified for p in out) == pytest.approx(
            expected, abs=1e-9, rel=1e-12
        )
        for p in out:
            _check(p)
            assert p.size > 0.0
