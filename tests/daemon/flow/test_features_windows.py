"""Rolling delta windows and trade intensity over per-second buckets."""

from __future__ import annotations

import pytest

from daemon.flow.features.windows import RollingFlow

T = 1_700_000_000  # an epoch second


def add(flow: RollingFlow, second: int, delta: float, volume: float) -> None:
    flow.advance(second)
    flow.delta += delta
    flow.volume += volume
    flow.trades += 1


def test_window_holds_the_last_n_seconds_including_the_current_one() -> None:
    flow = RollingFlow([60, 300], 10.0)
    add(flow, T, 5.0, 5.0)
    add(flow, T + 30, -2.0, 2.0)
    flow.advance(T + 59)
    assert flow.delta_over(60) == 3.0  # seconds T .. T+59
    flow.advance(T + 60)
    assert flow.delta_over(60) == -2.0  # T has left
    assert flow.delta_over(300) == 3.0
    add(flow, T + 61, 1.0, 1.0)
    assert flow.delta_over(60) == -1.0
    flow.advance(T + 100)
    assert flow.delta_over(60) == 1.0  # T+41 .. T+100
    flow.advance(T + 299)
    assert flow.delta_over(300) == 4.0
    flow.advance(T + 300)
    assert flow.delta_over(300) == -1.0
    flow.advance(T + 10_000)  # a long gap: everything expired
    assert flow.delta_over(60) == 0.0
    assert flow.delta_over(300) == 0.0


def test_intensity_counts_trades_and_contracts_per_second() -> None:
    flow = RollingFlow([60], 10.0)
    for i in range(5):
        add(flow, T + i, 1.0, 2.0)
    add(flow, T + 4, -1.0, 10.0)  # two trades in second T+4
    assert flow.intensity() == (0.6, 2.0)  # 6 trades, 20 contracts over 10 s
    flow.advance(T + 10)  # T has left the 10 s window
    assert flow.intensity() == pytest.approx((0.5, 1.8))
    flow.advance(T + 14)
    assert flow.intensity() == (0.0, 0.0)


def test_intensity_window_rounds_up_to_whole_seconds() -> None:
    flow = RollingFlow([60], 2.5)
    assert flow.intensity_seconds == 3
    add(flow, T, 0.0, 3.0)
    assert flow.intensity() == pytest.approx((1 / 3, 1.0))


def test_ring_reuse_after_many_seconds_stays_exact() -> None:
    flow = RollingFlow([3], 1.0)
    for i in range(1000):
        add(flow, T + i, 1.0 if i % 2 else -1.0, 1.0)
    # seconds T+997 .. T+999: +1 (odd), -1, +1
    assert flow.delta_over(3) == 1.0
    assert flow.intensity() == (1.0, 1.0)
