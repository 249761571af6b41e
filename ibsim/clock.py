"""The simulator's clock: data time advancing with wall time at a speed factor.

Market sources carry their own timestamps (a replay file from 2013, a synthetic day starting
at `--start`); the gateway's notion of "now" follows the source, so expiries, trading hours,
`reqCurrentTime` and execution times agree with the data being served.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable


class SimClock:
    """Maps a monotonic wall clock to simulated epoch seconds: sim = origin + speed * elapsed."""

    def __init__(
        self, origin: float, speed: float = 1.0, wall: Callable[[], float] = time.monotonic
    ) -> None:
        if not speed > 0:
            raise ValueError(f"speed must be > 0, got {speed}")
        self._wall = wall
        self._speed = speed
        self._origin = origin
        self._wall0 = wall()

    @property
    def speed(self) -> float:
        return self._speed

    def now(self) -> float:
        """Simulated UTC epoch seconds."""
        if math.isinf(self._speed):
            return self._origin
        return self._origin + (self._wall() - self._wall0) * self._speed

    def wall_delay(self, sim_time: float) -> float:
        """Wall seconds until `sim_time` is reached (≤ 0 when it has passed)."""
        if math.isinf(self._speed):
            return 0.0
        return (sim_time - self.now()) / self._speed

    def advance_to(self, sim_time: float) -> None:
        """Jump forward (never back), e.g. when an unpaced source runs ahead of wall time."""
        if self._speed == math.inf:  # unpaced: called per event, so no wall-clock reads
            if sim_time > self._origin:
                self._origin = sim_time
            return
        if sim_time > self.now():
            self._origin = sim_time
            self._wall0 = self._wall()
