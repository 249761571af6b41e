"""The market source interface and the helpers shared by the sources."""

from __future__ import annotations

import math
import random
from collections.abc import Iterator, Sequence
from typing import Protocol, runtime_checkable

from ibsim.model import TICK_SIZE, MarketEvent, QuoteTick
from ibsim.products import grid_index, grid_price

# Displayed size of a freshly formed price level: log-normal, median 80 contracts, about 5 % below
# 25 and 5 % above 270, which is the right order for ES top of book.
_DEPTH_LOG_MEDIAN = math.log(80.0)
_DEPTH_LOG_SIGMA = 0.75


@runtime_checkable
class MarketSource(Protocol):
    """A stream of market events in data time.

    `events()` yields trades and top-of-book quotes with non-decreasing times; the first event is
    a `QuoteTick`, so the book is known before the first trade. Every trade is consistent with the
    latest quote before it: a BUY prints at the ask, a SELL at the bid, and the aggressed side shows
    at least the trade's size. Each call to `events()` starts the stream again from the beginning.
    """

    @property
    def start_time(self) -> float:
        """UTC epoch seconds of the first event."""
        ...

    def events(self) -> Iterator[MarketEvent]:
        """Iterate the stream from its beginning."""
        ...


def price_to_tick(price: float, tick: float = TICK_SIZE) -> int:
    """Tick index of a price on the `tick` grid; ValueError if the price is off the grid."""
    if not math.isfinite(price):
        raise ValueError(f"price {price!r} is not finite")
    index = grid_index(price, tick)
    if index is None:
        raise ValueError(f"price {price!r} is not a multiple of {tick}")
    return index


def tick_to_price(index: int, tick: float = TICK_SIZE) -> float:
    """Price of a tick index: the double nearest the grid price (exact for a 0.25 tick)."""
    return grid_price(index, tick)


def draw_depth(rng: random.Random) -> int:
    """Displayed size of a newly formed price level (heavy-ish tailed, at least 1)."""
    return int(math.exp(rng.gauss(_DEPTH_LOG_MEDIAN, _DEPTH_LOG_SIGMA))) + 1


class ListSource:
    """A finite, known market (tests, rehearsals): callers move prices with `Gateway.apply`."""

    def __init__(self, events: Sequence[MarketEvent]) -> None:
        if not events:
            raise ValueError("a ListSource needs at least one event")
        self._events = list(events)
        self.start_time = self._events[0].time

    def events(self) -> Iterator[MarketEvent]:
        yield from self._events

    @classmethod
    def one_quote(cls, time: float, bid: float = 5000.0, ask: float = 5000.25) -> ListSource:
        """A single quote, 10 lots each side: the clock stays at `time` when served unpaced."""
        return cls([QuoteTick(time, bid, ask, 10, 10)])
