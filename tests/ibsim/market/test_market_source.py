"""Price grid and depth helpers shared by the market sources."""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ibsim.market import draw_depth, price_to_tick, tick_to_price


@settings(derandomize=True)
@given(st.integers(-(2**40), 2**40))
def test_tick_round_trip(index: int) -> None:
    price = tick_to_price(index)
    assert price == index * 0.25
    assert price_to_tick(price) == index


@pytest.mark.parametrize("price", [1640.1, 1640.125, float("nan"), float("inf")])
def test_off_grid_prices_are_rejected(price: float) -> None:
    with pytest.raises(ValueError, match="price"):
        price_to_tick(price)


def test_depth_draws_are_seeded_positive_and_heavy_ish() -> None:
    draws = [draw_depth(random.Random(9)) for _ in range(3)]
    assert draws[0] == draws[1] == draws[2]
    rng = random.Random(3)
    sizes = sorted(draw_depth(rng) for _ in range(20_000))
    assert all(type(s) is int and s >= 1 for s in sizes)
    assert 60 <= sizes[10_000] <= 100  # median about 80
    assert sizes[-200] > 3 * sizes[10_000]  # a tail of much bigger levels
