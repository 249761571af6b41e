"""Diagonal and stacked imbalances, computed by hand on small footprints."""

from __future__ import annotations

from daemon.flow.features.footprint import diagonal_imbalances, stacked_runs


def level(bid: float, ask: float, unclassified: float = 0.0) -> list[float]:
    return [bid, ask, unclassified]


def test_buy_imbalance_compares_ask_with_bid_one_tick_below() -> None:
    footprint = {
        10: level(2, 0),
        11: level(1, 6),  # 6 >= 3 * 2 (bid at 10): buy imbalance
        12: level(0, 3),  # 3 >= 3 * 1 (bid at 11): buy imbalance, exactly at the ratio
        13: level(0, 2),  # 2 >= 3 * 0 but 2 < min volume 3: none
    }
    buys, sells = diagonal_imbalances(footprint, ratio=3.0, min_volume=3.0)
    assert buys == [11, 12]
    assert sells == []


def test_just_below_ratio_is_no_imbalance() -> None:
    footprint = {10: level(3, 0), 11: level(0, 8.9)}
    assert diagonal_imbalances(footprint, 3.0, 0.0) == ([], [])


def test_sell_imbalance_compares_bid_with_ask_one_tick_above() -> None:
    footprint = {
        20: level(12, 0),  # 12 >= 3 * 4 (ask at 21): sell imbalance
        21: level(5, 4),  # 5 < 3 * 2 (ask at 22): none
        22: level(0, 2),
    }
    # 22: ask 2 >= 3 * 5? no. 21: ask 4 >= 3 * 12? no.
    assert diagonal_imbalances(footprint, 3.0, 3.0) == ([], [20])


def test_zero_weak_side_counts_once_min_volume_is_met() -> None:
    # Nothing traded one tick below/above: the weak side is 0.
    footprint = {30: level(0, 4), 40: level(7, 0)}
    assert diagonal_imbalances(footprint, 3.0, 3.0) == ([30], [40])
    # 1 against 0 is no imbalance with the default minimum of 3 ...
    assert diagonal_imbalances({30: level(1, 1)}, 3.0, 3.0) == ([], [])
    # ... and is one when the minimum is 0; an empty strong side never is.
    assert diagonal_imbalances({30: level(1, 1)}, 3.0, 0.0) == ([30], [30])
    assert diagonal_imbalances({30: level(0, 0, 5)}, 3.0, 0.0) == ([], [])


def test_unclassified_volume_takes_no_side() -> None:
    footprint = {50: level(0, 0, 100), 51: level(0, 3)}
    assert diagonal_imbalances(footprint, 3.0, 3.0) == ([51], [])


def test_stacked_runs_need_enough_adjacent_ticks() -> None:
    assert stacked_runs([1, 2, 3, 5, 6, 8, 9, 10, 11], 3) == [(1, 3), (8, 11)]
    assert stacked_runs([1, 2, 4, 5], 3) == []
    assert stacked_runs([1, 2, 4, 5], 2) == [(1, 2), (4, 5)]
    assert stacked_runs([], 3) == []
    assert stacked_runs([7, 8, 9], 3) == [(7, 9)]


def test_stacked_buy_imbalances_in_a_footprint() -> None:
    # Each level: 9 bought, 3 sold. Buy at p: 9 >= 3 * 3 (bid at p - 1); at the lowest
    # level the bid below is 0. Sell at p: 3 >= 3 * 9? never; at the top 3 >= 0 and >= 3.
    footprint = {tick: level(3, 9) for tick in (20, 21, 22, 23)}
    buys, sells = diagonal_imbalances(footprint, 3.0, 3.0)
    assert buys == [20, 21, 22, 23]
    assert sells == [23]
    assert stacked_runs(buys, 3) == [(20, 23)]
    assert stacked_runs(sells, 3) == []
