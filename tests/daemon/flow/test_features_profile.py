"""Volume profile: POC, value area expansion and tie-breaks, by hand."""

from __future__ import annotations

import pytest

from daemon.flow.features.profile import (
    ValueArea,
    add_footprint,
    point_of_control,
    value_area,
)


def test_value_area_expands_towards_the_bigger_side() -> None:
    profile = {98: 10.0, 99: 20.0, 100: 10.0, 101: 30.0, 102: 25.0, 103: 5.0}
    # total 100, target 70. From POC 101 (30): 102 (25) > 100 (10) -> 55; 100 (10) > 103 (5)
    # -> 65; 99 (20) > 103 (5) -> 85 >= 70: stop.
    assert value_area(profile, 0.70) == ValueArea(poc=101, high=102, low=99)


def test_value_area_tie_adds_both_sides() -> None:
    profile = {9: 4.0, 10: 10.0, 11: 4.0}
    assert value_area(profile, 0.70) == ValueArea(10, 11, 9)


def test_value_area_steps_over_empty_ticks_and_stops_at_exhausted_sides() -> None:
    # POC at the bottom: only upwards; 11 and 13 traded nothing and are stepped over.
    profile = {10: 10.0, 11: 0.0, 12: 5.0, 14: 6.0}
    assert value_area(profile, 0.70) == ValueArea(10, 12, 10)
    # 9 and 12 are the next traded ticks: 9 (3) < 12 (4) -> 12; then 9 (3) > 13 (1) -> 9.
    profile = {9: 3.0, 10: 10.0, 12: 4.0, 13: 1.0}
    assert value_area(profile, 0.90) == ValueArea(10, 12, 9)


def test_value_area_stops_at_the_poc_when_it_holds_enough() -> None:
    assert value_area({5: 80.0, 6: 10.0, 7: 10.0}, 0.70) == ValueArea(5, 5, 5)


def test_poc_tie_goes_to_the_middle_then_the_lower_tick() -> None:
    assert point_of_control({1: 5.0, 2: 3.0, 3: 5.0, 4: 1.0, 5: 5.0}) == 3
    assert point_of_control({1: 5.0, 2: 5.0}) == 1
    assert point_of_control({1: 5.0, 2: 1.0, 3: 1.0, 4: 5.0, 6: 1.0}) == 4  # mid 3.5


def test_empty_profile_is_undefined() -> None:
    assert point_of_control({}) is None
    assert value_area({}, 0.7) is None
    assert value_area({3: 0.0}, 0.7) is None


def test_add_footprint_sums_all_columns() -> None:
    profile = {10: 1.0}
    add_footprint(profile, {10: [1.0, 2.0, 3.0], 11: [0.0, 4.0, 0.0]})
    assert profile == {10: 7.0, 11: 4.0}
    assert sum(profile.values()) == pytest.approx(11.0)
