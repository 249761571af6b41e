"""A seeded, endless synthetic futures market: top-of-book quotes and trades with their true
aggressor, on any tick grid (ES's 0.25 by default; `tick_size` for the other products).

Model, in data time:

- Book events arrive as a Poisson process whose rate switches between a quiet and a busy regime
  (exponentially distributed regime lengths), giving bursts of 20-50 trades/s between quiet spells
  of one or two trades/s; the long-run mean is about four trades/s.
- A book event is a trade with probability `P_TRADE`, else an add or cancel of displayed size at
  the bid or ask. A cancel that empties a level moves it one tick away.
- The aggressor tends to repeat (`P_SAME_SIDE`); trade sizes are discrete Pareto (mostly 1-5,
  sometimes 50-300). A trade larger than the aggressed level sweeps it: one print per level, all
  at one time, the level moving one tick each time it is taken out.
- The spread is one tick; when a level is taken out it is sometimes two ticks (never more) for a
  few ms until a new level fills the gap. Fresh levels show `draw_depth` contracts (tens to a few
  hundred).
"""

from __future__ import annotations

import dataclasses
import math
import random
from collections.abc import Callable, Iterator
from typing import Any

from ibsim.market.source import draw_depth, price_to_tick
from ibsim.model import TICK_SIZE, MarketEvent, QuoteTick, Side, TradeTick
from ibsim.products import ticks_per_point

P_TRADE = 0.4
P_SAME_SIDE = 0.75
QUIET_TRADES_PER_S = 1.5
BUSY_TRADES_PER_S = 35.0
QUIET_MEAN_S = 25.0
BUSY_MEAN_S = 2.5
TRADE_SIZE_ALPHA = 1.25
MAX_TRADE_SIZE = 500
# After a level is taken out, the bid (or ask) follows at once with this probability; otherwise
# the spread stays two ticks until the gap fills after a mean of GAP_FILL_MEAN_S.
P_FOLLOW = 0.7
GAP_FILL_MEAN_S = 0.004
P_ADD = 0.5  # a size change adds rather than cancels
CHANGE_EXPONENT = -0.8  # size changes are discrete Pareto with tail index 1.25 ...
MAX_CHANGE = 50  # ... capped, so that resting sizes do not drift off to thousands


class SyntheticSource:
    """Endless seeded microstructure; the same seed and arguments give the identical stream.

    The first event is a quote at `start_time` with the bid at `start_price`; every price is on
    the `tick_size` grid.
    """

    def __init__(
        self,
        seed: int,
        start_time: float,
        start_price: float = 5000.0,
        tick_size: float = TICK_SIZE,
    ) -> None:
        if not math.isfinite(start_time):
            raise ValueError(f"start_time {start_time!r} is not finite")
        tick = price_to_tick(start_price, tick_size)
        if tick < 2:
            raise ValueError(f"start_price {start_price!r} is below {2 * tick_size}")
        self.seed = seed
        self.start_time = start_time
        self.start_price = start_price
        self.tick_size = tick_size
        self._start_tick = tick

    def events(self) -> Iterator[MarketEvent]:
        """The stream from its first event (it never ends)."""
        per_point = ticks_per_point(self.tick_size)
        return _generate(random.Random(self.seed), self.start_time, self._start_tick, per_point)


_QUOTE_FIELDS = ("time", "bid", "ask", "bid_size", "ask_size")
_TRADE_FIELDS = ("time", "price", "size", "aggressor")


def _is_plain(cls: type[Any], names: tuple[str, ...]) -> bool:
    """True if `cls` is a slots dataclass with exactly these fields and no __post_init__."""
    return (
        dataclasses.is_dataclass(cls)
        and tuple(f.name for f in dataclasses.fields(cls)) == names
        and getattr(cls, "__slots__", None) == names
        and not hasattr(cls, "__post_init__")
    )


# A frozen dataclass's __init__ assigns each field through object.__setattr__, which costs about
# as much as all of the generator's own work; filling the slot descriptors directly builds an
# identical object in half the time. The check falls back to the real constructor if the model
# classes ever gain fields or hooks.
def _quote_maker() -> Callable[[float, float, float, int, int], QuoteTick]:
    if not _is_plain(QuoteTick, _QUOTE_FIELDS):
        return QuoteTick
    new = object.__new__
    set_time, set_bid, set_ask, set_bid_size, set_ask_size = (
        getattr(QuoteTick, name).__set__ for name in _QUOTE_FIELDS
    )

    def make(time: float, bid: float, ask: float, bid_size: int, ask_size: int) -> QuoteTick:
        quote: QuoteTick = new(QuoteTick)
        set_time(quote, time)
        set_bid(quote, bid)
        set_ask(quote, ask)
        set_bid_size(quote, bid_size)
        set_ask_size(quote, ask_size)
        return quote

    return make


def _trade_maker() -> Callable[[float, float, int, Side], TradeTick]:
    if not _is_plain(TradeTick, _TRADE_FIELDS):
        return TradeTick
    new = object.__new__
    set_time, set_price, set_size, set_aggressor = (
        getattr(TradeTick, name).__set__ for name in _TRADE_FIELDS
    )

    def make(time: float, price: float, size: int, aggressor: Side) -> TradeTick:
        trade: TradeTick = new(TradeTick)
        set_time(trade, time)
        set_price(trade, price)
        set_size(trade, size)
        set_aggressor(trade, aggressor)
        return trade

    return make


def _generate(
    rng: random.Random, t: float, start_tick: int, per_point: int
) -> Iterator[MarketEvent]:
    # Hot loop: everything it touches is a local name, prices are int tick indices until the
    # event is built (index / ticks per point: the exact grid price), and random draws are
    # inverse-CDF on `random()` (cheaper than the helpers).
    quote = _quote_maker()
    trade = _trade_maker()
    rnd = rng.random
    log = math.log
    k = per_point
    buy_side, sell_side = Side.BUY, Side.SELL
    inv_alpha = -1.0 / TRADE_SIZE_ALPHA
    max_size, max_change = MAX_TRADE_SIZE, MAX_CHANGE
    p_trade, p_same, p_follow = P_TRADE, P_SAME_SIDE, P_FOLLOW
    # One uniform draw picks the kind of book event: trade, or add / cancel at bid / ask.
    per_side = (1.0 - P_TRADE) / 2.0
    bid_add_below = P_TRADE + per_side * P_ADD
    bid_cancel_below = P_TRADE + per_side
    ask_add_below = bid_cancel_below + per_side * P_ADD
    quiet_gap = P_TRADE / QUIET_TRADES_PER_S  # mean time between book events
    busy_gap = P_TRADE / BUSY_TRADES_PER_S

    bid, ask = start_tick, start_tick + 1
    bid_size, ask_size = draw_depth(rng), draw_depth(rng)
    busy = False
    gap = quiet_gap
    regime_end = t - log(1.0 - rnd()) * QUIET_MEAN_S
    buy = rnd() < 0.5
    yield quote(t, bid / k, ask / k, bid_size, ask_size)

    while True:
        if ask - bid > 1:
            # A new level fills the gap inside a two-tick spread, a few ms later.
            t -= log(1.0 - rnd()) * GAP_FILL_MEAN_S
            if rnd() < 0.5:
                bid += 1
                bid_size = draw_depth(rng)
            else:
                ask -= 1
                ask_size = draw_depth(rng)
            yield quote(t, bid / k, ask / k, bid_size, ask_size)
            continue

        t -= log(1.0 - rnd()) * gap
        if t >= regime_end:
            busy = not busy
            gap = busy_gap if busy else quiet_gap
            regime_end = t - log(1.0 - rnd()) * (BUSY_MEAN_S if busy else QUIET_MEAN_S)

        u = rnd()
        if u < p_trade:
            if rnd() >= p_same:
                buy = not buy
            size = int((1.0 - rnd()) ** inv_alpha)
            if size > max_size:
                size = max_size
            if buy:
                while size >= ask_size:
                    # Take out the whole ask level; the rest of the order goes one tick up.
                    yield trade(t, ask / k, ask_size, buy_side)
                    size -= ask_size
                    ask += 1
                    ask_size = draw_depth(rng)
                    if ask - bid > 2:  # never wider than two ticks: the bid steps up too
                        bid += 1
                        bid_size = draw_depth(rng)
                    elif rnd() < p_follow:
                        bid = ask - 1
                        bid_size = draw_depth(rng)
                    yield quote(t, bid / k, ask / k, bid_size, ask_size)
                if size:
                    yield trade(t, ask / k, size, buy_side)
                    ask_size -= size
                    yield quote(t, bid / k, ask / k, bid_size, ask_size)
            else:
                while size >= bid_size:
                    yield trade(t, bid / k, bid_size, sell_side)
                    size -= bid_size
                    if bid > 1:
                        bid -= 1
                    bid_size = draw_depth(rng)
                    if ask - bid > 2:
                        ask -= 1
                        ask_size = draw_depth(rng)
                    elif rnd() < p_follow:
                        ask = bid + 1
                        ask_size = draw_depth(rng)
                    yield quote(t, bid / k, ask / k, bid_size, ask_size)
                if size:
                    yield trade(t, bid / k, size, sell_side)
                    bid_size -= size
                    yield quote(t, bid / k, ask / k, bid_size, ask_size)
        else:
            # Size added or cancelled at one side: 1 contract usually, sometimes tens.
            change = int((1.0 - rnd()) ** CHANGE_EXPONENT)
            if change > max_change:
                change = max_change
            if u < bid_add_below:
                bid_size += change
            elif u < bid_cancel_below:
                if change < bid_size:
                    bid_size -= change
                elif bid > 1:
                    bid -= 1  # the level is gone; the gap fills on the next event
                    bid_size = draw_depth(rng)
            elif u < ask_add_below:
                ask_size += change
            elif change < ask_size:
                ask_size -= change
            else:
                ask += 1
                ask_size = draw_depth(rng)
            yield quote(t, bid / k, ask / k, bid_size, ask_size)
