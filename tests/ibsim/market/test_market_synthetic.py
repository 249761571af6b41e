"""The synthetic ES market generator."""

from __future__ import annotations

import itertools
import statistics
from collections import Counter
from collections.abc import Callable, Iterable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ibsim.market import MarketSource, SyntheticSource
from ibsim.market.synthetic import _is_plain, _quote_maker, _trade_maker
from ibsim.model import MarketEvent, QuoteTick, Side, TradeTick

StreamChecker = Callable[[Iterable[MarketEvent]], list[TradeTick]]
T0 = 1_767_225_600.0  # 2026-01-01 00:00 UTC


def _take(source: SyntheticSource, n: int) -> list[MarketEvent]:
    return list(itertools.islice(source.events(), n))


@pytest.fixture(scope="module")
def long_stream() -> list[MarketEvent]:
    """Half a million events of seed 42: several simulated hours."""
    return _take(SyntheticSource(seed=42, start_time=T0), 500_000)


@settings(derandomize=True, deadline=None, max_examples=40)
@given(seed=st.integers(0, 2**64), start_tick=st.integers(400, 40_000))
def test_any_seed_is_consistent(stream_checker: StreamChecker, seed: int, start_tick: int) -> None:
    source = SyntheticSource(seed, T0, start_price=start_tick * 0.25)
    events = _take(source, 5_000)
    first = events[0]
    assert isinstance(first, QuoteTick)
    assert (first.time, first.bid, first.ask) == (T0, start_tick * 0.25, start_tick * 0.25 + 0.25)
    assert stream_checker(events)


def test_long_stream_is_consistent(
    stream_checker: StreamChecker, long_stream: list[MarketEvent]
) -> None:
    trades = stream_checker(long_stream)
    assert len(trades) > 100_000
    assert {t.aggressor for t in trades} == {Side.BUY, Side.SELL}


def test_same_seed_same_stream() -> None:
    source = SyntheticSource(seed=5, start_time=T0)
    first = _take(source, 20_000)
    assert _take(source, 20_000) == first
    assert _take(SyntheticSource(seed=5, start_time=T0), 20_000) == first
    assert _take(SyntheticSource(seed=6, start_time=T0), 20_000) != first


def test_is_a_market_source() -> None:
    source = SyntheticSource(seed=1, start_time=T0, start_price=4321.5)
    assert isinstance(source, MarketSource)
    assert source.start_time == T0


@pytest.mark.parametrize("price", [5000.1, 0.25, 0.0, float("nan")])
def test_rejects_bad_start_price(price: float) -> None:
    with pytest.raises(ValueError, match="price"):
        SyntheticSource(seed=1, start_time=T0, start_price=price)


def test_spread_is_one_tick_almost_always_and_mid_steps_by_one_tick(
    long_stream: list[MarketEvent],
) -> None:
    quotes = [e for e in long_stream if isinstance(e, QuoteTick)]
    spreads = Counter(round((q.ask - q.bid) / 0.25) for q in quotes)
    assert set(spreads) == {1, 2}
    assert spreads[1] / len(quotes) > 0.98
    mids = [q.bid + q.ask for q in quotes]  # twice the mid, to stay on the grid
    steps = Counter(abs(b - a) for a, b in itertools.pairwise(mids))
    assert max(steps) <= 0.5  # a mid move is at most one tick
    assert steps[0.5] > 1_000


def test_trade_sizes_are_heavy_tailed(long_stream: list[MarketEvent]) -> None:
    sizes = [e.size for e in long_stream if isinstance(e, TradeTick)]
    small = sum(1 <= s <= 5 for s in sizes) / len(sizes)
    big = sum(50 <= s <= 300 for s in sizes) / len(sizes)
    assert small > 0.8
    assert 0.001 < big < 0.05
    assert statistics.median(sizes) <= 2


def test_arrivals_come_in_bursts_and_quiet_spells(long_stream: list[MarketEvent]) -> None:
    trades = [e for e in long_stream if isinstance(e, TradeTick)]
    span = trades[-1].time - trades[0].time
    assert 2.0 < len(trades) / span < 8.0  # mean rate: a few trades a second
    # Order arrivals (sweeps print several trades at one time count once) per whole second.
    per_second = Counter(int(t.time) for t in {t.time: t for t in trades}.values())
    counts = [per_second.get(s, 0) for s in range(int(trades[0].time), int(trades[-1].time))]
    assert sum(c >= 20 for c in counts) > 100  # bursts of 20-50 a second
    assert sum(c <= 2 for c in counts) / len(counts) > 0.5  # most seconds are quiet


def test_sweeps_take_out_levels_and_move_the_price(long_stream: list[MarketEvent]) -> None:
    trades = [e for e in long_stream if isinstance(e, TradeTick)]
    sweeps = [
        (a, b)
        for a, b in itertools.pairwise(trades)
        if a.time == b.time and a.aggressor == b.aggressor
    ]
    assert len(sweeps) > 100
    for a, b in sweeps:
        assert b.price == a.price + (0.25 if a.aggressor is Side.BUY else -0.25)


def test_displayed_sizes_are_tens_to_hundreds(long_stream: list[MarketEvent]) -> None:
    sizes = sorted(q.bid_size for q in long_stream if isinstance(q, QuoteTick))
    assert 20 <= sizes[len(sizes) // 2] <= 300
    assert sizes[len(sizes) * 99 // 100] < 2_000


def test_fast_makers_build_equal_objects() -> None:
    assert _quote_maker()(1.5, 10.0, 10.25, 3, 4) == QuoteTick(1.5, 10.0, 10.25, 3, 4)
    assert _trade_maker()(1.5, 10.0, 3, Side.SELL) == TradeTick(1.5, 10.0, 3, Side.SELL)
    assert _is_plain(QuoteTick, ("time", "bid", "ask", "bid_size", "ask_size"))
    assert not _is_plain(QuoteTick, ("time", "bid", "ask"))
    assert not _is_plain(int, ())
