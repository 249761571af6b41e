"""Volume profile: volume per tick, point of control and value area.

Point of control (POC): the tick with the most volume; among equal volumes the one nearest the
middle of the profile's range, then the lower one. Value area: starting from the POC, add one
traded tick at a time on the side whose next traded tick has more volume (ticks that traded
nothing are stepped over; an exhausted side loses); on a tie add both. Stop as soon as the area
holds at least `share` of the profile's volume. VAH/VAL are its highest and lowest ticks.
"""

from __future__ import annotations

import bisect
from collections.abc import Mapping
from typing import NamedTuple


class ValueArea(NamedTuple):
    poc: int
    high: int  # VAH tick
    low: int  # VAL tick


def add_footprint(profile: dict[int, float], footprint: dict[int, list[float]]) -> None:
    """Fold a footprint's per-tick volume (all three columns) into `profile`."""
    get = profile.get
    for tick, level in footprint.items():
        profile[tick] = get(tick, 0.0) + level[0] + level[1] + level[2]


def point_of_control(profile: Mapping[int, float]) -> int | None:
    """The POC tick, or None when the profile holds no volume."""
    if not profile:
        return None
    top = max(profile.values())
    if not top > 0:
        return None
    tied = [tick for tick, volume in profile.items() if volume == top]
    if len(tied) == 1:
        return tied[0]
    twice_mid = min(profile) + max(profile)  # compare 2 * distance: stays in integers
    return min(tied, key=lambda tick: (abs(2 * tick - twice_mid), tick))


def value_area(profile: Mapping[int, float], share: float) -> ValueArea | None:
    """POC, VAH and VAL ticks of `profile`, or None when it holds no volume."""
    poc = point_of_control(profile)
    if poc is None:
        return None
    ticks = sorted(tick for tick, volume in profile.items() if volume > 0)
    volumes = [profile[tick] for tick in ticks]
    target = share * sum(volumes)
    top = len(ticks) - 1
    low = high = bisect.bisect_left(ticks, poc)  # indexes into `ticks`
    included = volumes[low]
    while included < target and (low > 0 or high < top):
        above = volumes[high + 1] if high < top else -1.0
        below = volumes[low - 1] if low > 0 else -1.0
        if above >= below:
            high += 1
            included += above
        if below >= above:
            low -= 1
            included += below
    return ValueArea(poc, ticks[high], ticks[low])
