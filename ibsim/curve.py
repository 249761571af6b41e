"""The listed back months: each follows the front month at a calendar spread, thinner.

The source serves one contract, the front month. A deferred expiry `k` steps out (1 for the
next quarterly) is derived from it, event by event:

- Price: the front's price plus the calendar spread, `reference x carry x years between the two
  last trade dates`, rounded to the tick. It is fixed for a session (recomputed at each session
  roll from the front's settlement), so the spread does not jitter with every quote. `carry` is
  the annual cost of carry (rates minus dividend yield), a parameter: positive puts the back
  months above the front, as with 2020s rates; 2010s data had it slightly negative.
- Book: the front's top of book shifted by the spread, each displayed size scaled by
  `activity ** (k / 2)` (at least 1).
- Trades: a deterministic `activity ** k` share of the front's prints (chosen by a hash of the
  print, so the live stream and the history derived later agree), each scaled like the book
  (so no print is larger than the level it takes). With the default 0.02 the first deferred
  month sees 2 % of the front's prints and the further ones next to none, as on CME outside the
  roll weeks.

What is not modelled: the roll (volume moving to the next month in the days before expiry),
spread trading of its own, and back-month prices that do not follow the front.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from itertools import islice

from ibsim.calendar import CENTRAL
from ibsim.feed import MarketFeed
from ibsim.history import History, TimeSeries
from ibsim.model import FutureSpec, QuoteTick, TradeTick
from ibsim.products import snap, ticks_per_point

DEFAULT_CARRY = 0.03  # per year
DEFAULT_ACTIVITY = 0.02
_MASK = (1 << 64) - 1


def _unit(*parts: int) -> float:
    """A deterministic uniform [0, 1) from integers (a splitmix64-style mix)."""
    h = 0x9E3779B97F4A7C15
    for part in parts:
        h = ((h ^ (part & _MASK)) * 0xBF58476D1CE4E5B9) & _MASK
        h ^= h >> 31
        h = (h * 0x94D049BB133111EB) & _MASK
        h ^= h >> 29
    return (h >> 11) / float(1 << 53)


def years_between(a: FutureSpec, b: FutureSpec) -> float:
    def day(spec: FutureSpec) -> datetime:
        return datetime.strptime(spec.expiry, "%Y%m%d").replace(tzinfo=CENTRAL)

    return (day(b) - day(a)).days / 365.0


@dataclass(slots=True)
class BackMonth:
    """One derived deferred contract: how its events follow the front's."""

    spec: FutureSpec
    rank: int  # 1 = the next quarterly after the front
    years: float  # between the front's and this contract's last trade dates
    carry: float
    activity: float
    offset: float = 0.0  # points added to every front price this session
    feed: MarketFeed = field(init=False)
    per_point: int = field(init=False)  # ticks per point of the product

    def __post_init__(self) -> None:
        self.feed = MarketFeed(self.spec)
        self.per_point = ticks_per_point(self.spec.min_tick)

    @property
    def keep(self) -> float:
        return self.activity**self.rank

    @property
    def depth(self) -> float:
        return float(self.activity ** (self.rank / 2))

    def reprice(self, reference: float) -> None:
        """Set the session's calendar spread from the front's reference (settlement) price."""
        raw = reference * self.carry * self.years
        self.offset = snap(raw, self.spec.min_tick)

    def shifted(self, price: float) -> float:
        """A front price moved by the spread: a grid price stays exactly on the grid (in floats
        2300.1 + 1.2 is 2301.2999999999997), a bad one (off-grid, NaN) stays as bad."""
        moved = price + self.offset
        scaled = moved * self.per_point
        if math.isfinite(scaled) and abs(scaled - round(scaled)) < 1e-6:
            return round(scaled) / self.per_point
        return moved

    def quote(self, q: QuoteTick) -> QuoteTick:
        d = self.depth
        return QuoteTick(
            q.time,
            self.shifted(q.bid),
            self.shifted(q.ask),
            max(1, round(q.bid_size * d)),
            max(1, round(q.ask_size * d)),
        )

    def trade(self, tr: TradeTick) -> TradeTick | None:
        """The derived print, or None when this contract did not trade then."""
        draw = _unit(int(tr.time * 1_000_000), int(tr.price * self.per_point), tr.size, self.rank)
        if draw >= self.keep:
            return None
        size = max(1, round(tr.size * self.depth))
        return TradeTick(tr.time, self.shifted(tr.price), size, tr.aggressor)


class _DerivedTrades:
    """The front's trade series seen through a back month (a `history.Series`)."""

    def __init__(self, front: TimeSeries[TradeTick], month: BackMonth) -> None:
        self._front = front
        self._month = month

    def _kept(self, trades: Iterable[TradeTick]) -> Iterator[TradeTick]:
        for tr in trades:
            derived = self._month.trade(tr)
            if derived is not None:
                yield derived

    def window(self, start: float | None, end: float | None, count: int) -> list[TradeTick]:
        if start is not None:
            return list(islice(self._kept(self._front.forward(start, end)), count))
        newest_first = list(islice(self._kept(self._front.backward(end)), count))
        return newest_first[::-1]

    def between(self, start: float, end: float) -> list[TradeTick]:
        return list(self._kept(self._front.between(start, end)))

    def first(self) -> TradeTick | None:
        return next(self._kept(self._front.forward(None, None)), None)

    def before(self, t: float) -> TradeTick | None:
        return next((d for d in self._kept(self._front.backward(t)) if d.time < t), None)


class _DerivedQuotes:
    """The front's quote series seen through a back month (a `history.Series`)."""

    def __init__(self, front: TimeSeries[QuoteTick], month: BackMonth) -> None:
        self._front = front
        self._month = month

    def window(self, start: float | None, end: float | None, count: int) -> list[QuoteTick]:
        return [self._month.quote(q) for q in self._front.window(start, end, count)]

    def between(self, start: float, end: float) -> list[QuoteTick]:
        return [self._month.quote(q) for q in self._front.between(start, end)]

    def first(self) -> QuoteTick | None:
        q = self._front.first()
        return None if q is None else self._month.quote(q)

    def before(self, t: float) -> QuoteTick | None:
        q = self._front.before(t)
        return None if q is None else self._month.quote(q)


class DerivedHistory:
    """A back month's tape, derived from the front's history when asked for (nothing stored).

    Prices use the back month's current session spread throughout.
    """

    def __init__(self, front: History, month: BackMonth) -> None:
        self._trades = _DerivedTrades(front.trades, month)
        self._quotes = _DerivedQuotes(front.quotes, month)

    @property
    def trades(self) -> _DerivedTrades:
        return self._trades

    @property
    def quotes(self) -> _DerivedQuotes:
        return self._quotes
