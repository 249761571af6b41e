from __future__ import annotations

import json
import re
from collections import defaultdict
from dataclasses import dataclass, field

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ibsim.matching import DEFAULT_ACCOUNT, MatchingEngine
from ibsim.model import (
    EngineEvent,
    Faults,
    FillEvent,
    OrderError,
    OrderEvent,
    OrderRequest,
    OrderStatus,
    OrderType,
    QuoteTick,
    Side,
    TradeTick,
)

CON = 637533641
BUY, SELL = Side.BUY, Side.SELL
MKT, LMT, STP, STP_LMT = OrderType.MKT, OrderType.LMT, OrderType.STP, OrderType.STP_LMT
SUB, PRE, FILLED = "Submitted", "PreSubmitted", "Filled"
CANCELLED, INACTIVE = "Cancelled", "Inactive"


@dataclass
class Clock:
    now: float = 1_760_000_000.0

    def __call__(self) -> float:
        return self.now


@dataclass
class Sim:
    """An engine with an injected clock and a few shorthands for driving it."""

    clock: Clock = field(default_factory=Clock)
    faults: Faults = field(default_factory=Faults)
    engine: MatchingEngine = field(init=False)
    log: list[EngineEvent] = field(default_factory=list)  # every event, in order

    def __post_init__(self) -> None:
        self.engine = MatchingEngine(self.clock, self.faults)

    def _logged(self, events: list[EngineEvent]) -> list[EngineEvent]:
        self.log.extend(events)
        return events

    def quote(
        self, bid: float, ask: float, bid_size: int = 10, ask_size: int = 10
    ) -> list[EngineEvent]:
        self.clock.now += 1.0
        tick = QuoteTick(self.clock.now, bid, ask, bid_size, ask_size)
        return self._logged(self.engine.on_quote(CON, tick))

    def trade(self, price: float, size: int, aggressor: Side = SELL) -> list[EngineEvent]:
        self.clock.now += 1.0
        tick = TradeTick(self.clock.now, price, size, aggressor)
        return self._logged(self.engine.on_trade(CON, tick))

    def cancel(self, order_id: int, client_id: int = 1) -> list[EngineEvent]:
        return self._logged(self.engine.cancel(client_id, order_id))

    def place(
        self,
        order_id: int,
        action: Side,
        qty: int,
        kind: OrderType = MKT,
        lmt: float | None = None,
        aux: float | None = None,
        client_id: int = 1,
        **kw: object,
    ) -> list[EngineEvent]:
        req = OrderRequest(client_id, order_id, CON, action, qty, kind, lmt, aux, **kw)  # type: ignore[arg-type]
        return self._logged(self.engine.place(req))

    def bracket(
        self, parent_id: int, action: Side, qty: int, entry: float, tp: float, sl: float
    ) -> list[EngineEvent]:
        """Three PLACE_ORDERs as ib_async's bracketOrder sends them; returns the last reply."""
        exit_side = SELL if action is BUY else BUY
        assert self.place(parent_id, action, qty, LMT, entry, transmit=False) == []
        assert (
            self.place(parent_id + 1, exit_side, qty, LMT, tp, parent_id=parent_id, transmit=False)
            == []
        )
        return self.place(parent_id + 2, exit_side, qty, STP, aux=sl, parent_id=parent_id)

    def status(self, order_id: int, client_id: int = 1) -> str:
        order = self.engine.order(client_id, order_id)
        assert order is not None
        return order.status.value


def ev(events: list[EngineEvent]) -> list[tuple[object, ...]]:
    """Events as comparable tuples: what the wire would say, in order."""
    out: list[tuple[object, ...]] = []
    for e in events:
        if isinstance(e, FillEvent):
            x = e.execution
            out.append(("fill", x.order_id, x.shares, x.price, x.liquidity))
        elif isinstance(e, OrderEvent):
            o = e.order
            out.append(("order", o.request.order_id, o.status.value, o.filled, o.remaining))
        else:
            out.append(("error", e.order_id, e.code))
    return out


@pytest.fixture
def sim() -> Sim:
    return Sim()


# ---------------------------------------------------------------------- market orders


def test_market_buy_fills_at_the_ask_with_execution_details(sim: Sim) -> None:
    sim.quote(5000.00, 5000.25, 10, 5)
    events = sim.place(1, BUY, 3, order_ref="entry-1")
    assert ev(events) == [
        ("order", 1, SUB, 0, 3),
        ("fill", 1, 3, 5000.25, 2),
        ("order", 1, FILLED, 3, 0),
    ]
    fill = events[1]
    assert isinstance(fill, FillEvent)
    x = fill.execution
    assert x.time == sim.clock.now
    assert x.side is BUY
    assert (x.cum_qty, x.avg_price, x.commission) == (3, 5000.25, pytest.approx(6.75))
    assert (x.account, x.order_ref, x.con_id, x.client_id) == (DEFAULT_ACCOUNT, "entry-1", CON, 1)
    assert x.realized_pnl is None
    assert x.perm_id == fill.order.perm_id
    order = sim.engine.order(1, 1)
    assert order is not None
    assert order.completed_time == sim.clock.now
    assert order.avg_fill_price == 5000.25
    assert sim.engine.open_orders() == []
    assert sim.engine.completed_orders() == [order]


def test_market_sell_fills_at_the_bid(sim: Sim) -> None:
    sim.quote(5000.00, 5000.25, 4, 10)
    assert ev(sim.place(1, SELL, 2)) == [
        ("order", 1, SUB, 0, 2),
        ("fill", 1, 2, 5000.00, 2),
        ("order", 1, FILLED, 2, 0),
    ]


def test_market_order_larger_than_displayed_fills_across_quotes(sim: Sim) -> None:
    sim.quote(5000.00, 5000.25, 10, 5)
    assert ev(sim.place(1, BUY, 8)) == [
        ("order", 1, SUB, 0, 8),
        ("fill", 1, 5, 5000.25, 2),
        ("order", 1, SUB, 5, 3),
    ]
    # The displayed size is used up until the next quote: a second order gets nothing.
    assert ev(sim.place(2, BUY, 1)) == [("order", 2, SUB, 0, 1)]
    assert sim.trade(5000.25, 5, BUY) == []
    assert ev(sim.quote(5000.25, 5000.50, 10, 2)) == [
        ("fill", 1, 2, 5000.50, 2),
        ("order", 1, SUB, 7, 1),
    ]
    assert ev(sim.quote(5000.25, 5000.75, 10, 9)) == [
        ("fill", 1, 1, 5000.75, 2),
        ("order", 1, FILLED, 8, 0),
        ("fill", 2, 1, 5000.75, 2),
        ("order", 2, FILLED, 1, 0),
    ]
    order = sim.engine.order(1, 1)
    assert order is not None
    assert order.avg_fill_price == pytest.approx((5 * 5000.25 + 2 * 5000.50 + 5000.75) / 8)


def test_market_order_waits_for_the_first_quote(sim: Sim) -> None:
    assert ev(sim.place(1, BUY, 2)) == [("order", 1, SUB, 0, 2)]
    assert sim.trade(5000.00, 3) == []
    assert ev(sim.quote(5000.00, 5000.25)) == [
        ("fill", 1, 2, 5000.25, 2),
        ("order", 1, FILLED, 2, 0),
    ]


def test_crossed_non_positive_and_nan_market_data_is_ignored(sim: Sim) -> None:
    sim.place(1, BUY, 1)
    assert sim.quote(5001.00, 5000.00) == []
    assert sim.quote(-1.0, 5000.00) == []
    assert sim.quote(float("nan"), 5000.25) == []
    assert sim.trade(0.0, 5) == []
    assert sim.trade(float("nan"), 5) == []
    assert sim.status(1) == SUB
    assert ev(sim.quote(5000.00, 5000.25)) == [
        ("fill", 1, 1, 5000.25, 2),
        ("order", 1, FILLED, 1, 0),
    ]
    # No valid trade has printed, so the quote still elects a stop placed through it.
    assert ev(sim.place(2, BUY, 1, STP, aux=4999.75))[-1] == ("order", 2, FILLED, 1, 0)


# ---------------------------------------------------------------------- limit orders


def test_marketable_limit_takes_then_remainder_rests_at_its_limit(sim: Sim) -> None:
    sim.quote(5000.00, 5000.25, 10, 5)
    assert ev(sim.place(1, BUY, 8, LMT, 5000.50)) == [
        ("order", 1, SUB, 0, 8),
        ("fill", 1, 5, 5000.25, 2),
        ("order", 1, SUB, 5, 3),
    ]
    # Resting now: it fills at its limit when the ask comes to it, as added liquidity.
    assert sim.quote(5000.25, 5000.75) == []
    assert ev(sim.quote(5000.25, 5000.50, 10, 2)) == [
        ("fill", 1, 2, 5000.50, 1),
        ("order", 1, SUB, 7, 1),
    ]


def test_resting_limit_fills_when_the_ask_touches_it(sim: Sim) -> None:
    sim.quote(5000.00, 5000.25)
    assert ev(sim.place(1, BUY, 3, LMT, 4999.75)) == [("order", 1, SUB, 0, 3)]
    assert sim.quote(4999.75, 5000.00) == []
    assert ev(sim.quote(4999.50, 4999.75, 10, 2)) == [
        ("fill", 1, 2, 4999.75, 1),
        ("order", 1, SUB, 2, 1),
    ]
    # Crossing through the limit still fills at the limit, never worse.
    assert ev(sim.quote(4999.00, 4999.25, 10, 10)) == [
        ("fill", 1, 1, 4999.75, 1),
        ("order", 1, FILLED, 3, 0),
    ]


def test_resting_sell_limit_fills_when_the_bid_touches_it(sim: Sim) -> None:
    sim.quote(5000.00, 5000.25)
    assert ev(sim.place(1, SELL, 2, LMT, 5001.00)) == [("order", 1, SUB, 0, 2)]
    assert sim.trade(5000.75, 50) == []
    assert ev(sim.quote(5001.00, 5001.25, 7, 3)) == [
        ("fill", 1, 2, 5001.00, 1),
        ("order", 1, FILLED, 2, 0),
    ]


def test_trade_through_the_limit_fills_at_the_limit_capped_by_trade_size(sim: Sim) -> None:
    sim.quote(5000.00, 5000.25, 20, 10)
    sim.place(1, BUY, 5, LMT, 5000.00)
    assert ev(sim.trade(4999.75, 2)) == [
        ("fill", 1, 2, 5000.00, 1),
        ("order", 1, SUB, 2, 3),
    ]
    assert ev(sim.trade(4999.50, 9)) == [
        ("fill", 1, 3, 5000.00, 1),
        ("order", 1, FILLED, 5, 0),
    ]


def test_one_trade_fills_resting_orders_for_at_most_its_size(sim: Sim) -> None:
    sim.quote(5000.00, 5000.25)
    sim.place(1, BUY, 3, LMT, 5000.00)
    sim.place(2, BUY, 3, LMT, 5000.00)
    assert ev(sim.trade(4999.75, 4)) == [
        ("fill", 1, 3, 5000.00, 1),
        ("order", 1, FILLED, 3, 0),
        ("fill", 2, 1, 5000.00, 1),
        ("order", 2, SUB, 1, 2),
    ]


def test_limit_at_the_touch_waits_for_the_queue_ahead(sim: Sim) -> None:
    sim.quote(5000.00, 5000.25, 4, 10)
    sim.place(1, BUY, 3, LMT, 5000.00)  # joins 4 contracts displayed at 5000.00
    assert sim.trade(5000.00, 3) == []  # queue 4 -> 1
    assert sim.trade(5000.25, 5, BUY) == []  # another price does not touch the queue
    assert ev(sim.trade(5000.00, 2)) == [  # 1 left ahead, the second contract is ours
        ("fill", 1, 1, 5000.00, 1),
        ("order", 1, SUB, 1, 2),
    ]
    assert ev(sim.trade(5000.00, 5)) == [
        ("fill", 1, 2, 5000.00, 1),
        ("order", 1, FILLED, 3, 0),
    ]


def test_queue_ahead_shrinks_with_the_displayed_size(sim: Sim) -> None:
    sim.quote(5000.00, 5000.25, 10, 10)
    sim.place(1, BUY, 2, LMT, 5000.00)
    assert sim.quote(5000.00, 5000.25, 2, 10) == []  # only 2 can still be ahead of us
    assert ev(sim.trade(5000.00, 3)) == [
        ("fill", 1, 1, 5000.00, 1),
        ("order", 1, SUB, 1, 1),
    ]


def test_limit_improving_on_the_touch_has_no_queue(sim: Sim) -> None:
    sim.quote(5000.00, 5000.50, 30, 30)
    sim.place(1, SELL, 2, LMT, 5000.25)
    assert ev(sim.trade(5000.25, 1, BUY)) == [
        ("fill", 1, 1, 5000.25, 1),
        ("order", 1, SUB, 1, 1),
    ]


def test_limit_behind_the_touch_gets_its_queue_when_the_touch_reaches_it(sim: Sim) -> None:
    sim.quote(5000.00, 5000.25, 10, 10)
    sim.place(1, BUY, 2, LMT, 4999.75)
    assert sim.trade(4999.75, 5) == []  # queue unknown: no fill at the limit
    assert sim.quote(4999.75, 5000.00, 3, 10) == []  # touch arrives with 3 ahead
    assert sim.trade(4999.75, 3) == []
    assert ev(sim.trade(4999.75, 1)) == [
        ("fill", 1, 1, 4999.75, 1),
        ("order", 1, SUB, 1, 1),
    ]


def test_limit_placed_before_any_quote_is_evaluated_on_the_first_quote(sim: Sim) -> None:
    assert ev(sim.place(1, BUY, 2, LMT, 5001.00)) == [("order", 1, SUB, 0, 2)]
    assert ev(sim.quote(5000.00, 5000.25, 10, 10)) == [
        ("fill", 1, 2, 5000.25, 2),
        ("order", 1, FILLED, 2, 0),
    ]


# ---------------------------------------------------------------------- stops


def test_sell_stop_elects_on_a_trade_at_its_price_and_takes_the_bid(sim: Sim) -> None:
    sim.quote(5000.00, 5000.25)
    sim.trade(5000.00, 1)
    assert ev(sim.place(1, SELL, 2, STP, aux=4999.00)) == [("order", 1, SUB, 0, 2)]
    assert sim.quote(4999.00, 4999.25) == []  # a trade has printed: quotes no longer elect
    assert sim.trade(4999.25, 3) == []
    order = sim.engine.order(1, 1)
    assert order is not None
    assert not order.triggered
    sim.quote(4998.75, 4999.00, 1, 5)
    assert ev(sim.trade(4999.00, 1)) == [
        ("fill", 1, 1, 4998.75, 2),
        ("order", 1, SUB, 1, 1),
    ]
    assert order.triggered
    assert ev(sim.quote(4998.50, 4998.75, 4, 5)) == [
        ("fill", 1, 1, 4998.50, 2),
        ("order", 1, FILLED, 2, 0),
    ]


def test_buy_stop_elects_on_the_quote_before_any_trade(sim: Sim) -> None:
    sim.quote(5000.00, 5000.25)
    sim.place(1, BUY, 1, STP, aux=5001.00)
    assert sim.quote(5000.50, 5000.75) == []
    assert ev(sim.quote(5000.75, 5001.00, 5, 5)) == [
        ("fill", 1, 1, 5001.00, 2),
        ("order", 1, FILLED, 1, 0),
    ]


def test_stop_placed_through_the_market_elects_at_once(sim: Sim) -> None:
    sim.quote(5000.00, 5000.25)
    sim.trade(5000.00, 1)
    assert ev(sim.place(1, BUY, 1, STP, aux=4999.75)) == [
        ("order", 1, SUB, 0, 1),
        ("fill", 1, 1, 5000.25, 2),
        ("order", 1, FILLED, 1, 0),
    ]


def test_stop_limit_becomes_a_limit_at_its_limit_price(sim: Sim) -> None:
    sim.quote(5000.00, 5000.25)
    sim.trade(5000.00, 1)
    sim.place(1, BUY, 2, STP_LMT, lmt=5001.25, aux=5001.00)
    sim.quote(5001.25, 5001.50)
    assert sim.trade(5001.00, 1, BUY) == []  # elected, but the ask is above the limit
    order = sim.engine.order(1, 1)
    assert order is not None
    assert order.triggered
    assert order.status is OrderStatus.SUBMITTED
    assert ev(sim.quote(5001.00, 5001.25, 5, 5)) == [
        ("fill", 1, 2, 5001.25, 1),
        ("order", 1, FILLED, 2, 0),
    ]


# ---------------------------------------------------------------------- brackets


def test_bracket_is_held_until_transmitted_then_children_are_presubmitted(sim: Sim) -> None:
    sim.quote(4999.75, 5000.00)
    assert sim.place(1, BUY, 2, LMT, 4999.50, transmit=False) == []
    assert sim.place(2, SELL, 2, LMT, 5002.00, parent_id=1, transmit=False) == []
    assert sim.engine.open_orders() == []
    assert sim.status(1) == "PendingSubmit"
    events = sim.place(3, SELL, 2, STP, aux=4998.00, parent_id=1)
    assert ev(events) == [
        ("order", 1, SUB, 0, 2),
        ("order", 2, PRE, 0, 2),
        ("order", 3, PRE, 0, 2),
    ]
    children = [e.order for e in events[1:] if isinstance(e, OrderEvent)]
    assert [c.why_held for c in children] == ["child", "child"]
    assert [o.request.order_id for o in sim.engine.open_orders()] == [1, 2, 3]
    # PreSubmitted children do not work: a quote through the target fills nothing.
    assert sim.quote(5002.00, 5002.25) == []
    assert (sim.status(2), sim.status(3)) == (PRE, PRE)


def test_parent_fill_activates_children_and_target_fill_cancels_stop(sim: Sim) -> None:
    sim.quote(5000.00, 5000.25, 10, 10)
    assert ev(sim.bracket(1, BUY, 2, 5000.25, tp=5002.00, sl=4998.00)) == [
        ("order", 1, SUB, 0, 2),
        ("order", 2, PRE, 0, 2),
        ("order", 3, PRE, 0, 2),
        ("fill", 1, 2, 5000.25, 2),
        ("order", 1, FILLED, 2, 0),
        ("order", 2, SUB, 0, 2),
        ("order", 3, SUB, 0, 2),
    ]
    assert sim.quote(5001.00, 5001.25) == []
    assert ev(sim.quote(5002.00, 5002.25, 5, 5)) == [
        ("fill", 2, 2, 5002.00, 1),
        ("order", 2, FILLED, 2, 0),
        ("order", 3, CANCELLED, 0, 2),
    ]
    assert sim.engine.open_orders() == []
    assert [o.request.order_id for o in sim.engine.completed_orders()] == [1, 2, 3]
    [pos] = sim.engine.positions()
    assert pos.quantity == 0
    # (5002.00 - 5000.25) x 50 x 2 minus 4 x 2.25 commission
    assert pos.realized_pnl == pytest.approx(166.0)


def test_stop_fill_cancels_target(sim: Sim) -> None:
    sim.quote(5000.00, 5000.25)
    sim.bracket(1, SELL, 1, 5000.00, tp=4995.00, sl=5003.00)
    assert sim.status(1) == FILLED
    sim.trade(5000.00, 1)  # from now on trades, not quotes, elect stops
    sim.quote(5002.75, 5003.00, 5, 5)
    assert ev(sim.trade(5003.00, 1, BUY)) == [
        ("fill", 3, 1, 5003.00, 2),
        ("order", 3, FILLED, 1, 0),
        ("order", 2, CANCELLED, 0, 1),
    ]


def test_partial_parent_fills_size_the_children(sim: Sim) -> None:
    sim.quote(5000.00, 5000.25, 10, 2)
    assert ev(sim.bracket(1, BUY, 5, 5000.25, tp=5003.00, sl=4997.00))[3:] == [
        ("fill", 1, 2, 5000.25, 2),
        ("order", 1, SUB, 2, 3),
        ("order", 2, SUB, 0, 2),
        ("order", 3, SUB, 0, 2),
    ]
    assert ev(sim.quote(5000.00, 5000.25, 10, 2)) == [
        ("fill", 1, 2, 5000.25, 1),
        ("order", 1, SUB, 4, 1),
        ("order", 2, SUB, 0, 4),
        ("order", 3, SUB, 0, 4),
    ]
    assert ev(sim.quote(5000.00, 5000.25, 10, 9)) == [
        ("fill", 1, 1, 5000.25, 1),
        ("order", 1, FILLED, 5, 0),
        ("order", 2, SUB, 0, 5),
        ("order", 3, SUB, 0, 5),
    ]


def test_partial_target_fill_reduces_the_stop(sim: Sim) -> None:
    sim.quote(5000.00, 5000.25)
    sim.bracket(1, BUY, 3, 5000.25, tp=5001.00, sl=4998.00)
    assert ev(sim.trade(5001.25, 1, BUY)) == [
        ("fill", 2, 1, 5001.00, 1),
        ("order", 2, SUB, 1, 2),
        ("order", 3, SUB, 0, 2),
    ]
    sim.quote(4997.75, 4998.00, 10, 10)
    assert ev(sim.trade(4998.00, 1)) == [
        ("fill", 3, 2, 4997.75, 2),
        ("order", 3, FILLED, 2, 0),
        ("order", 2, CANCELLED, 1, 2),
    ]
    [pos] = sim.engine.positions()
    assert pos.quantity == 0


def test_child_covering_a_partial_parent_waits_and_regrows(sim: Sim) -> None:
    sim.quote(5000.00, 5000.25, 10, 2)
    sim.bracket(1, BUY, 5, 5000.25, tp=5001.00, sl=4995.00)
    # The target sells all 2 bought so far, but the parent still works: nothing ends yet.
    assert ev(sim.trade(5001.25, 5, BUY)) == [
        ("fill", 2, 2, 5001.00, 1),
        ("order", 2, SUB, 2, 0),
        ("order", 3, SUB, 0, 0),
    ]
    assert ev(sim.quote(5000.00, 5000.25, 10, 9)) == [
        ("fill", 1, 3, 5000.25, 1),
        ("order", 1, FILLED, 5, 0),
        ("order", 2, SUB, 2, 3),
        ("order", 3, SUB, 0, 3),
    ]
    [pos] = sim.engine.positions()
    assert pos.quantity == 3


def test_marketable_target_fills_right_after_activation(sim: Sim) -> None:
    sim.quote(5000.00, 5000.25, 10, 10)
    events = sim.bracket(1, BUY, 1, 5000.25, tp=5000.00, sl=4990.00)
    assert ev(events)[3:] == [
        ("fill", 1, 1, 5000.25, 2),
        ("order", 1, FILLED, 1, 0),
        ("order", 2, SUB, 0, 1),
        ("order", 3, SUB, 0, 1),
        ("fill", 2, 1, 5000.00, 2),
        ("order", 2, FILLED, 1, 0),
        ("order", 3, CANCELLED, 0, 1),
    ]


def test_cancel_parent_cancels_its_children(sim: Sim) -> None:
    sim.quote(5000.00, 5000.25)
    sim.bracket(1, BUY, 1, 4999.00, tp=5002.00, sl=4997.00)
    assert ev(sim.engine.cancel(1, 1)) == [
        ("order", 1, CANCELLED, 0, 1),
        ("error", 1, 202),
        ("order", 2, CANCELLED, 0, 1),
        ("error", 2, 202),
        ("order", 3, CANCELLED, 0, 1),
        ("error", 3, 202),
    ]
    assert sim.engine.open_orders() == []
    assert len(sim.engine.completed_orders()) == 3


def test_cancel_held_order_just_drops_it(sim: Sim) -> None:
    sim.place(1, BUY, 1, LMT, 4999.00, transmit=False)
    assert ev(sim.engine.cancel(1, 1)) == [("order", 1, CANCELLED, 0, 1)]
    assert sim.engine.completed_orders() == []
    assert ev(sim.place(1, BUY, 1, LMT, 4999.00)) == [("error", 1, 103)]


def test_modifying_a_held_order_with_transmit_releases_it(sim: Sim) -> None:
    sim.quote(5000.00, 5000.25)
    assert sim.place(1, BUY, 1, LMT, 4999.00, transmit=False) == []
    assert sim.place(1, BUY, 1, LMT, 4999.25, transmit=False) == []
    assert ev(sim.place(1, BUY, 1, LMT, 4999.50)) == [("order", 1, SUB, 0, 1)]
    order = sim.engine.order(1, 1)
    assert order is not None
    assert order.request.lmt_price == 4999.50


def test_child_of_unknown_parent_is_error_135(sim: Sim) -> None:
    events = sim.place(5, SELL, 1, LMT, 5002.00, parent_id=4)
    assert ev(events) == [("error", 5, 135)]
    assert isinstance(events[0], OrderError)
    assert events[0].message == "Can't find order with id = 4"
    assert sim.engine.order(1, 5) is None


def test_child_of_a_done_parent_is_rejected(sim: Sim) -> None:
    sim.place(1, BUY, 1, LMT, 4999.00)
    sim.engine.cancel(1, 1)
    assert ev(sim.place(2, SELL, 1, LMT, 5002.00, parent_id=1)) == [("error", 2, 201)]


# ---------------------------------------------------------------------- OCA


def test_explicit_oca_group_cancels_the_other_members(sim: Sim) -> None:
    sim.quote(5000.00, 5000.25)
    sim.place(1, SELL, 1, LMT, 5001.00, oca_group="exit-7", oca_type=1)
    sim.place(2, SELL, 1, STP, aux=4998.00, oca_group="exit-7", oca_type=1)
    sim.place(3, SELL, 1, LMT, 5001.00, oca_group="exit-7", client_id=2)  # other client
    assert ev(sim.quote(5001.00, 5001.25, 1, 5)) == [
        ("fill", 1, 1, 5001.00, 1),
        ("order", 1, FILLED, 1, 0),
        ("order", 2, CANCELLED, 0, 1),
    ]
    assert [(o.request.client_id, o.request.order_id) for o in sim.engine.open_orders()] == [(2, 3)]


def test_explicit_oca_reduce_type_shrinks_the_other_members(sim: Sim) -> None:
    sim.quote(5000.00, 5000.25)
    sim.place(1, SELL, 3, LMT, 5001.00, oca_group="g", oca_type=3)
    sim.place(2, SELL, 3, LMT, 5002.00, oca_group="g", oca_type=3)
    assert ev(sim.trade(5001.25, 1, BUY)) == [
        ("fill", 1, 1, 5001.00, 1),
        ("order", 1, SUB, 1, 2),
        ("order", 2, SUB, 0, 2),
    ]
    assert ev(sim.trade(5002.25, 5, BUY)) == [
        ("fill", 1, 2, 5001.00, 1),
        ("order", 1, FILLED, 3, 0),
        ("order", 2, CANCELLED, 0, 2),
    ]


# ---------------------------------------------------------------------- modify


def test_modify_price_keeps_perm_id_and_rematches(sim: Sim) -> None:
    sim.quote(5000.00, 5000.25, 10, 10)
    sim.place(1, BUY, 2, LMT, 4999.00)
    order = sim.engine.order(1, 1)
    assert order is not None
    perm_id = order.perm_id
    events = sim.place(1, BUY, 2, LMT, 5000.25)
    assert ev(events) == [
        ("order", 1, SUB, 0, 2),
        ("fill", 1, 2, 5000.25, 2),
        ("order", 1, FILLED, 2, 0),
    ]
    first = events[0]
    assert isinstance(first, OrderEvent)
    assert first.order.request.lmt_price == 5000.25
    assert {e.order.perm_id for e in events if isinstance(e, OrderEvent)} == {perm_id}
    assert order.perm_id == perm_id


def test_modify_quantity_below_filled_is_refused_and_order_stays_live(sim: Sim) -> None:
    sim.quote(5000.00, 5000.25, 10, 2)
    sim.place(1, BUY, 5, LMT, 5000.25)
    assert ev(sim.place(1, BUY, 1, LMT, 5000.25)) == [("error", 1, 321)]
    assert sim.status(1) == SUB
    # Down to exactly the filled quantity completes the order.
    assert ev(sim.place(1, BUY, 2, LMT, 5000.25)) == [("order", 1, FILLED, 2, 0)]


def test_modify_cannot_change_side_or_contract(sim: Sim) -> None:
    sim.place(1, BUY, 1, LMT, 4999.00)
    assert ev(sim.place(1, SELL, 1, LMT, 4999.00)) == [("error", 1, 105)]


def test_modify_child_keeps_size_tied_to_parent(sim: Sim) -> None:
    sim.quote(5000.00, 5000.25, 10, 1)
    sim.bracket(1, BUY, 3, 5000.25, tp=5003.00, sl=4997.00)
    # ib_async resends the child with its original quantity: the working size stays 1.
    assert ev(sim.place(2, SELL, 3, LMT, 5002.50, parent_id=1)) == [("order", 2, SUB, 0, 1)]


# ---------------------------------------------------------------------- rejects


def test_duplicate_and_reused_ids_are_error_103(sim: Sim) -> None:
    sim.quote(5000.00, 5000.25)
    sim.place(5, BUY, 1)
    assert sim.status(5) == FILLED
    events = sim.place(5, BUY, 1)  # id of a filled order: TWS says 104, not 103
    assert ev(events) == [("error", 5, 104)]
    assert isinstance(events[0], OrderError)
    assert events[0].message == "Can't modify a filled order."
    sim.place(6, BUY, 1, LMT, 4990.00)
    sim.cancel(6)
    assert ev(sim.place(6, BUY, 1, LMT, 4991.00)) == [("error", 6, 103)]  # a cancelled one
    assert ev(sim.place(3, BUY, 1)) == [("error", 3, 103)]  # below the highest used
    assert ev(sim.place(0, BUY, 1)) == [("error", 0, 103)]
    assert sim.engine.order(1, 3) is None
    assert ev(sim.place(5, BUY, 1, client_id=2))[0] == ("order", 5, SUB, 0, 1)  # per client


def test_price_off_the_tick_grid_is_error_110(sim: Sim) -> None:
    events = sim.place(1, BUY, 1, LMT, 5000.10)
    assert ev(events) == [("error", 1, 110)]
    assert isinstance(events[0], OrderError)
    assert events[0].message == (
        "The price does not conform to the minimum price variation for this contract."
    )
    assert ev(sim.place(2, SELL, 1, STP, aux=4999.30)) == [("error", 2, 110)]
    assert sim.engine.order(1, 1) is None
    assert sim.engine.next_order_id(1) == 3
    # Float noise inside the tolerance is on the grid.
    assert ev(sim.place(3, BUY, 1, LMT, 5000.25 + 1e-12)) == [("order", 3, SUB, 0, 1)]


def test_missing_limit_price_and_zero_quantity_are_rejected(sim: Sim) -> None:
    assert ev(sim.place(1, BUY, 1, LMT)) == [("error", 1, 201)]
    assert ev(sim.place(2, BUY, 0)) == [("error", 2, 160)]
    assert ev(sim.place(3, BUY, -1)) == [("error", 3, 160)]


def test_injected_reject_is_201_then_inactive(sim: Sim) -> None:
    sim.quote(5000.00, 5000.25)
    sim.faults.reject_next_orders = 1
    events = sim.place(1, BUY, 1)
    assert ev(events) == [("error", 1, 201), ("order", 1, INACTIVE, 0, 1)]
    assert isinstance(events[0], OrderError)
    assert events[0].message.startswith("Order rejected - reason:")
    assert sim.faults.reject_next_orders == 0
    assert [o.status for o in sim.engine.completed_orders()] == [OrderStatus.INACTIVE]
    assert sim.engine.executions() == []
    assert ev(sim.place(2, BUY, 1))[-1] == ("order", 2, FILLED, 1, 0)


# ---------------------------------------------------------------------- cancel


def test_cancel_live_order_sends_cancelled_then_202(sim: Sim) -> None:
    sim.place(1, BUY, 1, LMT, 4999.00)
    events = sim.engine.cancel(1, 1)
    assert ev(events) == [("order", 1, CANCELLED, 0, 1), ("error", 1, 202)]
    assert isinstance(events[1], OrderError)
    assert events[1].message == "Order Canceled - reason:"


def test_cancel_unknown_order_is_10147_and_a_done_one_10148_with_its_state(sim: Sim) -> None:
    events = sim.engine.cancel(1, 42)
    assert ev(events) == [("error", 42, 10147)]
    assert isinstance(events[0], OrderError)
    assert events[0].message == "OrderId 42 that needs to be cancelled is not found."
    sim.place(1, BUY, 1, LMT, 4999.00)
    sim.engine.cancel(1, 1)
    events = sim.engine.cancel(1, 1)
    assert ev(events) == [("error", 1, 10148)]
    assert isinstance(events[0], OrderError)
    assert events[0].message == (
        "OrderId 1 that needs to be cancelled cannot be cancelled, state: Cancelled."
    )
    sim.quote(5000.00, 5000.25)
    sim.place(2, BUY, 1)
    events = sim.engine.cancel(1, 2)
    assert ev(events) == [("error", 2, 10148)]
    assert isinstance(events[0], OrderError)
    assert events[0].message.endswith("cannot be cancelled, state: Filled.")


def test_global_cancel_cancels_every_client(sim: Sim) -> None:
    sim.quote(5000.00, 5000.25)
    sim.place(1, BUY, 1, LMT, 4999.00)
    sim.place(7, SELL, 1, LMT, 5003.00, client_id=2)
    sim.bracket(2, BUY, 1, 4998.00, tp=5001.00, sl=4995.00)
    events = sim.engine.global_cancel()
    assert [t for t in ev(events) if t[0] == "order"] == [
        ("order", 1, CANCELLED, 0, 1),
        ("order", 7, CANCELLED, 0, 1),
        ("order", 2, CANCELLED, 0, 1),
        ("order", 3, CANCELLED, 0, 1),
        ("order", 4, CANCELLED, 0, 1),
    ]
    assert sum(1 for t in ev(events) if t == ("error", t[1], 202)) == 5
    assert sim.engine.open_orders() == []
    assert sim.engine.global_cancel() == []


# ---------------------------------------------------------------------- positions and PnL


def test_position_avg_cost_and_realized_pnl_through_open_add_close_flip(sim: Sim) -> None:
    def fill_at(order_id: int, side: Side, qty: int, price: float) -> float | None:
        if side is BUY:
            sim.quote(price - 0.25, price)
        else:
            sim.quote(price, price + 0.25)
        events = sim.place(order_id, side, qty)
        fills = [e.execution for e in events if isinstance(e, FillEvent)]
        assert [(f.shares, f.price) for f in fills] == [(qty, price)]
        return fills[0].realized_pnl

    assert fill_at(1, BUY, 2, 5000.00) is None
    [pos] = sim.engine.positions()
    assert (pos.account, pos.con_id, pos.quantity) == (DEFAULT_ACCOUNT, CON, 2)
    assert pos.avg_cost == pytest.approx(5000.00 * 50 + 2.25)

    assert fill_at(2, BUY, 2, 5001.00) is None  # add
    assert pos.quantity == 4
    assert pos.avg_cost == pytest.approx(5000.50 * 50 + 2.25)

    # Partial close: 1 x (5002 - 5000.50) x 50 - 2.25 opening - 2.25 closing
    assert fill_at(3, SELL, 1, 5002.00) == pytest.approx(70.5)
    assert pos.quantity == 3
    assert pos.avg_cost == pytest.approx(5000.50 * 50 + 2.25)

    # Flip: close 3 at 4999 (3 x -75 - 3 x 4.5 = -238.5), open 2 short at 4999.
    assert fill_at(4, SELL, 5, 4999.00) == pytest.approx(-238.5)
    assert pos.quantity == -2
    assert pos.avg_cost == pytest.approx(4999.00 * 50 - 2.25)

    # Cover: 2 x (4999 - 4998) x 50 - 2 x 4.5
    assert fill_at(5, BUY, 2, 4998.00) == pytest.approx(91.0)
    assert (pos.quantity, pos.avg_cost) == (0, 0.0)
    assert pos.realized_pnl == pytest.approx(70.5 - 238.5 + 91.0)
    commissions = [x.commission for x in sim.engine.executions()]
    assert commissions == pytest.approx([4.5, 4.5, 2.25, 11.25, 4.5])


def test_positions_are_per_account(sim: Sim) -> None:
    sim.quote(5000.00, 5000.25)
    sim.place(1, BUY, 1, account="DU111")
    sim.place(2, SELL, 2, account="DU222")
    got = {(p.account, p.quantity) for p in sim.engine.positions()}
    assert got == {("DU111", 1), ("DU222", -2)}
    order = sim.engine.order(1, 1)
    assert order is not None
    assert order.request.account == "DU111"


# ---------------------------------------------------------------------- ids, queries, what-if


def test_perm_ids_unique_and_stable_exec_ids_unique(sim: Sim) -> None:
    sim.quote(5000.00, 5000.25, 10, 1)
    sim.place(1, BUY, 3)
    sim.place(2, BUY, 1, LMT, 4999.00)
    sim.place(1, BUY, 3, client_id=2)
    for _ in range(5):
        sim.quote(5000.00, 5000.25, 10, 1)
    perms = [sim.engine.order(c, o).perm_id for c, o in [(1, 1), (1, 2), (2, 1)]]  # type: ignore[union-attr]
    assert len(set(perms)) == 3
    assert all(1_000_000_000 <= p < 10_000_000_000 for p in perms)
    execs = sim.engine.executions()
    assert len(execs) == 6
    assert {x.perm_id for x in execs if x.client_id == 1} == {perms[0]}
    assert len({x.exec_id for x in execs}) == 6
    assert all(re.fullmatch(r"0000e0d5\.[0-9a-f]{8}\.01\.01", x.exec_id) for x in execs)
    assert [x.cum_qty for x in execs if x.client_id == 1] == [1, 2, 3]


def test_what_if_creates_nothing(sim: Sim) -> None:
    sim.quote(5000.00, 5000.25)
    events = sim.place(4, BUY, 2, what_if=True)
    assert ev(events) == [("order", 4, PRE, 0, 2)]
    assert isinstance(events[0], OrderEvent)
    assert events[0].order.perm_id == 0
    assert sim.engine.order(1, 4) is None
    assert sim.engine.open_orders() == []
    assert sim.engine.completed_orders() == []
    assert sim.engine.executions() == []
    assert sim.engine.next_order_id(1) == 5
    assert ev(sim.place(6, BUY, 1, LMT, 5000.10, what_if=True)) == [("error", 6, 110)]


def test_queries_next_order_id_and_open_orders_per_client(sim: Sim) -> None:
    assert sim.engine.next_order_id(1) == 1
    sim.place(10, BUY, 1, LMT, 4999.00)
    sim.place(3, SELL, 1, LMT, 5003.00, client_id=2)
    assert sim.engine.next_order_id(1) == 11
    assert sim.engine.next_order_id(2) == 4
    assert [o.request.order_id for o in sim.engine.open_orders(1)] == [10]
    assert [o.request.order_id for o in sim.engine.open_orders()] == [10, 3]
    assert sim.engine.order(1, 99) is None


def test_orders_on_different_contracts_use_their_own_books(sim: Sim) -> None:
    other = CON + 1
    sim.quote(5000.00, 5000.25)
    req = OrderRequest(1, 1, other, BUY, 1, MKT)
    assert ev(sim.engine.place(req)) == [("order", 1, SUB, 0, 1)]
    assert sim.quote(5000.00, 5000.25) == []
    events = sim.engine.on_quote(other, QuoteTick(sim.clock.now, 5100.00, 5100.25, 3, 3))
    assert ev(events) == [("fill", 1, 1, 5100.25, 2), ("order", 1, FILLED, 1, 0)]


def test_snapshot_is_json_serialisable(sim: Sim) -> None:
    sim.quote(5000.00, 5000.25)
    sim.place(1, BUY, 1)
    sim.place(2, SELL, 1, LMT, 5003.00, transmit=False)
    data = json.loads(json.dumps(sim.engine.snapshot()))
    assert [(o["request"]["order_id"], o["status"], o["held"]) for o in data["orders"]] == [
        (1, FILLED, False),
        (2, "PendingSubmit", True),
    ]
    assert data["orders"][0]["request"]["action"] == "BUY"
    assert data["executions"][0]["price"] == 5000.25
    assert data["positions"] == [
        {
            "account": DEFAULT_ACCOUNT,
            "con_id": CON,
            "quantity": 1,
            "avg_cost": 5000.25 * 50 + 2.25,
            "realized_pnl": 0.0,
        }
    ]


def test_events_carry_snapshots_not_the_live_order(sim: Sim) -> None:
    sim.quote(5000.00, 5000.25, 10, 1)
    events = sim.place(1, BUY, 2)
    first = events[0]
    assert isinstance(first, OrderEvent)
    sim.quote(5000.00, 5000.25, 10, 1)
    assert first.order.filled == 0
    assert first.order.status is OrderStatus.SUBMITTED
    assert sim.status(1) == FILLED


# ---------------------------------------------------------------------- properties

TICK = 0.25


def _px(ticks: int) -> float:
    return 5000.00 + ticks * TICK


@dataclass(frozen=True)
class Quote:
    mid: int
    spread: int
    bid_size: int
    ask_size: int


@dataclass(frozen=True)
class Trade:
    price: int
    size: int


@dataclass(frozen=True)
class Place:
    kind: OrderType
    side: Side
    qty: int
    lmt: int
    aux: int
    oca_group: str
    oca_type: int


@dataclass(frozen=True)
class Bracket:
    side: Side
    qty: int
    entry: int
    tp: int
    sl: int


@dataclass(frozen=True)
class Cancel:
    pick: int


@dataclass(frozen=True)
class Modify:
    pick: int
    price: int
    qty: int


Op = Quote | Trade | Place | Bracket | Cancel | Modify
sides = st.sampled_from([BUY, SELL])
quotes = st.builds(
    Quote, st.integers(-8, 8), st.integers(1, 2), st.integers(0, 6), st.integers(0, 6)
)
trades = st.builds(Trade, st.integers(-10, 10), st.integers(1, 6))
places = st.builds(
    Place,
    st.sampled_from([MKT, LMT, STP, STP_LMT]),
    sides,
    st.integers(1, 5),
    st.integers(-6, 6),
    st.integers(-6, 6),
    st.sampled_from(["", "g1"]),
    st.sampled_from([1, 3]),
)
brackets = st.builds(
    Bracket, sides, st.integers(1, 5), st.integers(-4, 4), st.integers(1, 6), st.integers(1, 6)
)
cancels = st.builds(Cancel, st.integers(0, 30))
modifies = st.builds(Modify, st.integers(0, 30), st.integers(-6, 6), st.integers(1, 6))
operations = st.lists(
    st.one_of(quotes, quotes, trades, trades, places, brackets, cancels, modifies), max_size=60
)


class Driver:
    """Applies generated operations to a Sim as client 1 (ids handed out like ib_async)."""

    def __init__(self) -> None:
        self.sim = Sim()
        self.ids: list[int] = []

    def apply(self, op: Op) -> None:
        sim = self.sim
        next_id = sim.engine.next_order_id(1)
        match op:
            case Quote(mid, spread, bid_size, ask_size):
                sim.quote(_px(mid), _px(mid + spread), bid_size, ask_size)
            case Trade(price, size):
                sim.trade(_px(price), size)
            case Place(kind, side, qty, lmt, aux, group, oca_type):
                sim.place(
                    next_id, side, qty, kind, _px(lmt), _px(aux), oca_group=group, oca_type=oca_type
                )
                self.ids.append(next_id)
            case Bracket(side, qty, entry, tp, sl):
                sign = 1 if side is BUY else -1
                sim.bracket(
                    next_id, side, qty, _px(entry), _px(entry + sign * tp), _px(entry - sign * sl)
                )
                self.ids.extend([next_id, next_id + 1, next_id + 2])
            case Cancel(pick) if self.ids:
                sim.cancel(self.ids[pick % len(self.ids)])
            case Modify(pick, price, qty) if self.ids:
                order = sim.engine.order(1, self.ids[pick % len(self.ids)])
                assert order is not None
                r = order.request
                lmt = _px(price) if r.lmt_price is not None else None
                aux = _px(price + 1) if r.aux_price is not None else None
                sim.place(
                    r.order_id, r.action, qty, r.order_type, lmt, aux,
                    parent_id=r.parent_id, oca_group=r.oca_group, oca_type=r.oca_type,
                )  # fmt: skip

    def check(self) -> None:
        engine = self.sim.engine
        orders = [engine.order(1, i) for i in self.ids]
        for o in orders:
            assert o is not None
            assert 0 <= o.filled <= o.request.total_quantity
            if o.status is OrderStatus.FILLED:
                assert o.remaining == 0

        for e in self.sim.log:
            if not isinstance(e, FillEvent):
                continue
            req, x = e.order.request, e.execution
            assert x.cum_qty <= req.total_quantity
            assert abs(x.price / TICK - round(x.price / TICK)) < 1e-9
            if req.order_type is LMT or (req.order_type is STP_LMT and e.order.triggered):
                assert req.lmt_price is not None
                assert x.price <= req.lmt_price if req.action is BUY else x.price >= req.lmt_price

        execs = engine.executions()
        assert len({x.exec_id for x in execs}) == len(execs)
        per_order: dict[int, int] = defaultdict(int)
        signed = 0
        realized = 0.0
        for x in execs:
            per_order[x.order_id] += x.shares
            assert x.cum_qty == per_order[x.order_id]
            signed += x.shares if x.side is BUY else -x.shares
            realized += x.realized_pnl or 0.0
        for o in orders:
            assert o is not None
            assert o.filled == per_order[o.request.order_id]
        positions = engine.positions()
        assert len(positions) == (1 if execs else 0)
        for pos in positions:
            assert pos.quantity == signed
            assert pos.realized_pnl == pytest.approx(realized, abs=1e-6)
            assert (pos.avg_cost > 0) == (pos.quantity != 0)

        # Bracket exits never exceed what their parent bought or sold.
        exits: dict[int, int] = defaultdict(int)
        for o in orders:
            assert o is not None
            if o.request.parent_id:
                exits[o.request.parent_id] += o.filled
        for parent_id, filled in exits.items():
            parent = engine.order(1, parent_id)
            assert parent is not None
            assert filled <= parent.filled

        live = engine.open_orders() + engine.completed_orders()
        assert len({o.perm_id for o in live}) == len(live)
        assert not {o.perm_id for o in engine.open_orders()} & {
            o.perm_id for o in engine.completed_orders()
        }


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(operations)
def test_random_sequences_keep_orders_fills_and_positions_consistent(sequence: list[Op]) -> None:
    driver = Driver()
    for op in sequence:
        driver.apply(op)
        driver.check()
