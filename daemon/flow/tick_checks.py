"""The value checks under the tick guards: why a tick is rejected (`Reason`), IB's unset
markers, the fast-path bound, and what is wrong with a quote that missed the fast path."""

from __future__ import annotations

import enum
import sys
from collections.abc import Callable
from typing import Final

# IB's "no value" markers (ibapi `common.py`, ib_async `util.py`); any of them in a price or a
# size is UNSET. Kept here as floats because daemon.flow imports neither client library.
UNSET_DOUBLE: Final = sys.float_info.max
UNSET_INTEGER: Final = 2**31 - 1
UNSET_LONG: Final = 2**63 - 1
UNSET_DECIMAL: Final = 2**127 - 1
UNSET_MARKERS: Final = frozenset(
    float(v) for v in (UNSET_DOUBLE, UNSET_INTEGER, UNSET_LONG, UNSET_DECIMAL)
)

# Fast-path bound: every usable price or size is below the smallest unset marker. Values at or
# above it are either a marker (UNSET) or absurd (BAD_PRICE / BAD_SIZE).
HUGE: Final = float(UNSET_INTEGER)


class Reason(enum.StrEnum):
    """Why a tick was rejected; the values are the keys of status.json `rejected_ticks`."""

    BAD_PRICE = "bad_price"  # NaN, inf, <= 0 (incl. -1)
    UNSET = "unset"  # IB's unset markers in price or size
    BAD_SIZE = "bad_size"  # trade size NaN/inf/<= 0 (quote sizes: NaN/inf/negative only)
    OFF_GRID = "off_grid"
    CROSSED = "crossed_quote"  # bid > ask
    LOCKED = "locked_quote"  # bid == ask
    STALE_QUOTE = "stale_quote"  # quote's exchange_time older than newest seen - quote_stale_s
    SPIKE = "spike"  # unconfirmed spike
    DUPLICATE = "duplicate"
    VOLUME_RESET = "volume_reset"  # cumulative volume went backwards (counted, re-baselined)


def price_reason(price: float) -> Reason:
    """Why `price` failed the fast check `0 < price < HUGE`."""
    return Reason.UNSET if price in UNSET_MARKERS else Reason.BAD_PRICE


def size_reason(size: float) -> Reason:
    """Why a size failed its fast check."""
    return Reason.UNSET if size in UNSET_MARKERS else Reason.BAD_SIZE


def judge_quote(
    bid: float,
    ask: float,
    bid_size: float,
    ask_size: float,
    stale: bool,
    tick_of: Callable[[float], int | None],
) -> Reason | tuple[int, int]:
    """The quote's (bid_tick, ask_tick), or the first thing wrong with it; `stale`: its time is
    older than the guard allows, `tick_of` maps a positive finite price to its tick or None."""
    for price in (bid, ask):
        if not 0.0 < price < HUGE:
            return price_reason(price)
    for size in (bid_size, ask_size):
        if not 0.0 <= size < HUGE:
            return size_reason(size)
    bid_tick = tick_of(bid)
    ask_tick = tick_of(ask)
    if bid_tick is None or ask_tick is None:
        return Reason.OFF_GRID
    if bid_tick > ask_tick:
        return Reason.CROSSED
    if bid_tick == ask_tick:
        return Reason.LOCKED
    if stale:
        return Reason.STALE_QUOTE
    return bid_tick, ask_tick
