"""Triggered order kinds: stops, trailing stops and if-touched orders (pure functions).

The reference price is the last trade on the contract; before any trade has printed, the quote
(the ask for a buy, the bid for a sell). This is the rule matching.py has always used for STP.

* Stops (STP, STP LMT, TRAIL, TRAIL LIMIT) fire when the reference reaches the stop: BUY at
  ref >= stop, SELL at ref <= stop. If-touched orders (MIT, LIT) fire the other way: BUY at
  ref <= trigger, SELL at ref >= trigger. An order placed through its trigger fires at once.
* Trailing stops: the stop starts at `trailStopPrice`, or at ref - trail (SELL) / ref + trail
  (BUY) when the order first sees a reference. Every reference it sees (the first one too,
  when `trailStopPrice` was given) moves it toward the market when it can (SELL: max(stop,
  ref - trail); BUY: min(stop, ref + trail)), never away. The trail
  is `auxPrice`, or `trailingPercent` % of the reference; a stop computed from a percentage goes
  on the tick grid away from the market (down for a sell, up for a buy). The stop is checked
  before it moves, so one print never both moves and fires it.
* Once fired, STP, TRAIL and MIT act as MKT; STP LMT and LIT as LMT at `lmtPrice`; TRAIL LIMIT
  as LMT at stop - `lmtPriceOffset` (SELL) or stop + offset (BUY), the stop frozen.
"""

from __future__ import annotations

import math

from ibsim.model import Order, OrderError, OrderRequest, OrderType, Side
from ibsim.products import snap, ticks_per_point

__all__ = ["TRAILING", "TRIGGERED", "check", "fires", "limit_once_fired"]

TRAILING = frozenset({OrderType.TRAIL, OrderType.TRAIL_LIMIT})
TRIGGERED = frozenset({OrderType.STP, OrderType.STP_LMT, OrderType.MIT, OrderType.LIT} | TRAILING)
_TOUCHED = frozenset({OrderType.MIT, OrderType.LIT})
_GRID_TOLERANCE = 1e-9
OFF_GRID = "The price does not conform to the minimum price variation for this contract."


def fires(order: Order, ref: float, tick: float) -> bool:
    """Whether the order's trigger fires at reference `ref`; a trailing stop that does not
    fire follows `ref` (``order.trail_stop``)."""
    req = order.request
    buy = req.action is Side.BUY
    eps = tick * 1e-6
    if req.order_type in TRAILING:
        stop = order.trail_stop
        if stop is None:
            stop = req.trail_stop_price
            if stop is None:
                order.trail_stop = _trailed(req, ref, tick)
                return False
        if ref >= stop - eps if buy else ref <= stop + eps:
            order.trail_stop = stop
            return True
        follow = _trailed(req, ref, tick)
        order.trail_stop = min(stop, follow) if buy else max(stop, follow)
        return False
    aux = req.aux_price
    assert aux is not None
    if req.order_type in _TOUCHED:
        return ref <= aux + eps if buy else ref >= aux - eps
    return ref >= aux - eps if buy else ref <= aux + eps


def _trailed(req: OrderRequest, ref: float, tick: float) -> float:
    """The stop a trail of `req` puts at reference `ref`, on the grid away from the market."""
    if req.aux_price is not None:
        trail = req.aux_price
    else:
        assert req.trailing_percent is not None
        trail = ref * req.trailing_percent / 100.0
    per_point = ticks_per_point(tick)  # index / ticks per point: the exact grid price
    if req.action is Side.BUY:
        return math.ceil((ref + trail) / tick - _GRID_TOLERANCE) / per_point
    return math.floor((ref - trail) / tick + _GRID_TOLERANCE) / per_point


def limit_once_fired(order: Order, tick: float) -> float | None:
    """The limit a fired order works at (on the `tick` grid); None when it acts as a market
    order."""
    req = order.request
    if req.order_type in (OrderType.STP_LMT, OrderType.LIT):
        return req.lmt_price
    if req.order_type is OrderType.TRAIL_LIMIT:
        stop, offset = order.trail_stop, req.lmt_price_offset
        assert stop is not None
        assert offset is not None
        return snap(stop + offset if req.action is Side.BUY else stop - offset, tick)
    return None


def check(req: OrderRequest, tick: float) -> OrderError | None:
    """The refusal of a triggered order's parameters, None when they are valid."""
    cid, oid = req.client_id, req.order_id
    kind = req.order_type
    prices: list[tuple[float | None, str]] = []
    if kind in (OrderType.LMT, OrderType.STP_LMT, OrderType.LIT):
        prices.append((req.lmt_price, "limit"))
    if kind in (OrderType.STP, OrderType.STP_LMT):
        prices.append((req.aux_price, "stop"))
    if kind in _TOUCHED:
        prices.append((req.aux_price, "trigger"))
    for price, name in prices:
        if price is None:
            return OrderError(cid, oid, 201, f"Order rejected - reason:The {name} price is missing")
        if not _on_grid(price, tick):
            return OrderError(cid, oid, 110, OFF_GRID)
    if kind in TRAILING:
        return _check_trailing(req, tick)
    return None


def _check_trailing(req: OrderRequest, tick: float) -> OrderError | None:
    cid, oid = req.client_id, req.order_id

    def rejected(reason: str) -> OrderError:
        return OrderError(cid, oid, 201, f"Order rejected - reason:{reason}")

    amount, percent = req.aux_price, req.trailing_percent
    if amount is None and percent is None:
        return rejected("A trailing amount (auxPrice) or a trailingPercent is required")
    if amount is not None and percent is not None:
        return rejected("Give a trailing amount (auxPrice) or a trailingPercent, not both")
    if amount is not None and amount <= 0:
        return rejected(f"The trailing amount {amount} must be positive")
    if percent is not None and not 0 < percent < 100:
        return rejected(f"The trailing percent {percent} must be between 0 and 100")
    offset = req.lmt_price_offset
    if req.order_type is OrderType.TRAIL_LIMIT:
        if offset is None:
            return rejected("A trailing stop limit needs a limit price offset (lmtPriceOffset)")
        if offset < 0:
            return rejected(f"The limit price offset {offset} cannot be negative")
    for price in (amount, req.trail_stop_price, offset):
        if price is not None and not _on_grid(price, tick):
            return OrderError(cid, oid, 110, OFF_GRID)
    return None


def _on_grid(price: float, tick: float) -> bool:
    ticks = price / tick
    return abs(ticks - round(ticks)) <= _GRID_TOLERANCE
