"""Random sequences with every order type and time in force keep the engine's invariants."""

from __future__ import annotations

from dataclasses import dataclass

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ibsim import tif
from ibsim.model import OrderStatus, OrderType, Side
from ibsim.triggers import TRAILING, TRIGGERED
from tests.ibsim.test_matching import (
    CON,
    TICK,
    Driver,
    Modify,
    Op,
    _px,
    brackets,
    cancels,
    modifies,
    quotes,
    sides,
    trades,
)


@dataclass(frozen=True)
class PlaceAny:
    kind: OrderType
    side: Side
    qty: int
    price: int  # ticks from 5000.00: the limit and / or the trigger
    trail: int  # ticks: trailing amount, and the TRAIL LIMIT offset
    tif: str


@dataclass(frozen=True)
class Close:
    """The clock jumps to the session's close (and the gateway's expiry poll runs)."""


places = st.builds(
    PlaceAny,
    st.sampled_from(list(OrderType)),
    sides,
    st.integers(1, 5),
    st.integers(-6, 6),
    st.integers(1, 8),
    st.sampled_from(["DAY", "GTC", "GTD", "IOC", "FOK"]),
)
operations = st.lists(
    st.one_of(quotes, quotes, trades, trades, places, places, brackets, cancels, modifies,
              st.just(Close())),
    max_size=60,
)  # fmt: skip


class AnyDriver(Driver):
    """The engine's property driver, with every order kind and time in force."""

    def __init__(self) -> None:
        super().__init__()
        self.stops: dict[int, float] = {}  # trailing order id -> the last stop seen

    def apply(self, op: Op | PlaceAny | Close) -> None:
        sim = self.sim
        if isinstance(op, Close):
            sim.clock.now = tif.es_session_close(CON, sim.clock.now)
            sim.log.extend(sim.engine.expire())
        elif isinstance(op, PlaceAny):
            order_id = sim.engine.next_order_id(1)
            trailing = op.kind in TRAILING
            sim.place(
                order_id, op.side, op.qty, op.kind,
                _px(op.price) if op.kind in (OrderType.LMT, OrderType.STP_LMT, OrderType.LIT)
                else None,
                op.trail * TICK if trailing else _px(op.price),
                lmt_price_offset=op.trail * TICK, tif=op.tif,
                good_till_date="20301231 12:00:00",
            )  # fmt: skip
            self.ids.append(order_id)
        else:
            if isinstance(op, Modify) and self.ids:
                self.stops.pop(self.ids[op.pick % len(self.ids)], None)  # a modify restarts it
            super().apply(op)

    def check(self) -> None:
        super().check()
        engine, now = self.sim.engine, self.sim.clock.now
        for order_id in self.ids:
            order = engine.order(1, order_id)
            assert order is not None
            req = order.request
            live = not order.status.done
            if req.tif == "FOK":
                assert order.filled in (0, req.total_quantity)
            if live and req.tif in tif.IMMEDIATE:
                # only a trigger not fired yet, or a child waiting for its parent, still works
                assert (req.order_type in TRIGGERED and not order.triggered) or (
                    order.status is OrderStatus.PRE_SUBMITTED
                )
            if live:
                assert order.expires_at is None or order.expires_at > now
            if live and req.order_type in TRAILING and order.trail_stop is not None:
                last = self.stops.get(order_id)
                if last is not None:  # a trailing stop only ever moves toward the market
                    buy = req.action is Side.BUY
                    assert order.trail_stop <= last if buy else order.trail_stop >= last
                self.stops[order_id] = order.trail_stop


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(operations)
def test_random_sequences_with_every_kind_and_time_in_force_stay_consistent(
    sequence: list[Op | PlaceAny | Close],
) -> None:
    driver = AnyDriver()
    for op in sequence:
        driver.apply(op)
        driver.check()
