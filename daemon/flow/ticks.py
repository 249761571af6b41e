"""The ES price grid: prices as integer tick indexes, so no float ever becomes a dict key."""

from __future__ import annotations

from typing import Final

TICK_SIZE: Final = 0.25
TICKS_PER_POINT: Final = 4
_GRID_TOLERANCE: Final = 1e-6


def tick_index(price: float) -> int | None:
    """`price` as a multiple of the tick size, or None when it is off the grid (or NaN/inf)."""
    scaled = price * TICKS_PER_POINT
    if scaled != scaled or scaled in (float("inf"), float("-inf")):
        return None
    index = round(scaled)
    return index if abs(scaled - index) <= _GRID_TOLERANCE else None


def tick_price(index: int) -> float:
    """The price of tick `index` (exact: 0.25 is a power of two)."""
    return index / TICKS_PER_POINT
