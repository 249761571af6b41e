"""Trailing stops (TRAIL, TRAIL LIMIT) and if-touched orders (MIT, LIT) in the pure engine."""

from __future__ import annotations

from typing import Any

import pytest

from ibsim.encoders import ORDER_TYPES
from ibsim.model import OrderError, OrderType, Side
from ibsim.ordertypes import ADVERTISED, ATTRIBUTE_TOKENS, ORDER_TYPE_TOKENS, TIF_TOKENS
from tests.ibsim.test_matching import BUY, CANCELLED, FILLED, LMT, SELL, SUB, Sim, ev

TRAIL, TRAIL_LIMIT, MIT, LIT = OrderType.TRAIL, OrderType.TRAIL_LIMIT, OrderType.MIT, OrderType.LIT


@pytest.fixture
def sim() -> Sim:
    s = Sim()
    s.quote(5000.00, 5000.25, 10, 10)
    return s


def stop_of(sim: Sim, order_id: int) -> float | None:
    order = sim.engine.order(1, order_id)
    assert order is not None
    return order.trail_stop


# ---------------------------------------------------------------------- trailing stops


@pytest.mark.parametrize(
    ("side", "params", "prints", "stops"),
    [
        pytest.param(
            SELL, {"aux": 1.00}, [5001.00, 5003.00, 5002.50, 5002.25],
            [4999.00, 5000.00, 5002.00, 5002.00, 5002.00], id="sell-by-amount-follows-up-only",
        ),
        pytest.param(
            BUY, {"aux": 0.75}, [4999.50, 4998.00, 4998.50],
            [5001.00, 5000.25, 4998.75, 4998.75], id="buy-by-amount-follows-down-only",
        ),
        pytest.param(
            SELL, {"trailing_percent": 0.01}, [5010.00],
            [4999.50, 5009.25], id="sell-by-percent-floored-to-the-tick",
        ),
        pytest.param(
            BUY, {"trailing_percent": 0.01}, [4990.00],
            [5001.00, 4990.50], id="buy-by-percent-ceiled-to-the-tick",
        ),
        pytest.param(
            SELL, {"aux": 1.00, "trail_stop_price": 4999.50}, [5000.25, 5001.00],
            [4999.50, 4999.50, 5000.00], id="trail-stop-price-is-the-initial-stop",
        ),
    ],
)  # fmt: skip
def test_trailing_stop_ratchets_with_the_market_and_never_back(
    sim: Sim, side: Side, params: dict[str, Any], prints: list[float], stops: list[float]
) -> None:
    params = dict(params)
    aux = params.pop("aux", None)
    assert ev(sim.place(1, side, 1, TRAIL, aux=aux, **params)) == [("order", 1, SUB, 0, 1)]
    seen = [stop_of(sim, 1)]
    for price in prints:
        assert sim.trade(price, 1) == []
        seen.append(stop_of(sim, 1))
    assert seen == stops


def test_sell_trailing_stop_fires_at_its_ratcheted_stop_and_takes_the_bid(sim: Sim) -> None:
    sim.place(1, SELL, 2, TRAIL, aux=1.00)
    sim.quote(5003.00, 5003.25)
    sim.trade(5003.00, 1)  # stop 5002.00
    sim.quote(5002.00, 5002.25)
    assert sim.trade(5002.25, 1) == []
    assert ev(sim.trade(5002.00, 1)) == [("fill", 1, 2, 5002.00, 2), ("order", 1, FILLED, 2, 0)]
    order = sim.engine.order(1, 1)
    assert order is not None
    assert (order.triggered, order.trail_stop) == (True, 5002.00)


def test_trailing_stop_before_any_trade_follows_the_quote(sim: Sim) -> None:
    sim.place(1, BUY, 1, TRAIL, aux=0.50)
    assert stop_of(sim, 1) == 5000.75  # ask + 0.50
    assert sim.quote(4998.00, 4998.25) == []
    assert stop_of(sim, 1) == 4998.75
    assert ev(sim.quote(4998.50, 4998.75)) == [
        ("fill", 1, 1, 4998.75, 2),
        ("order", 1, FILLED, 1, 0),
    ]


def test_trailing_stop_placed_through_its_stop_fires_at_once(sim: Sim) -> None:
    events = sim.place(1, SELL, 1, TRAIL, aux=1.00, trail_stop_price=5001.00)
    assert ev(events) == [
        ("order", 1, SUB, 0, 1),
        ("fill", 1, 1, 5000.00, 2),
        ("order", 1, FILLED, 1, 0),
    ]


def test_trail_limit_becomes_a_limit_at_the_stop_less_the_offset(sim: Sim) -> None:
    sim.place(1, SELL, 3, TRAIL_LIMIT, aux=1.00, lmt_price_offset=0.50)
    sim.trade(5002.00, 1)  # stop 5001.00, limit on firing 5000.50
    sim.quote(5000.75, 5001.00, 2, 5)
    assert ev(sim.trade(5001.00, 1)) == [
        ("fill", 1, 2, 5000.75, 2),  # the bid is above the limit: taken
        ("order", 1, SUB, 2, 1),
    ]
    sim.quote(5000.25, 5000.50)
    assert sim.engine.order(1, 1).triggered  # type: ignore[union-attr]
    assert ev(sim.quote(5000.50, 5000.75)) == [
        ("fill", 1, 1, 5000.50, 1),  # rests at 5000.50 and the bid touches it
        ("order", 1, FILLED, 3, 0),
    ]


def test_modifying_the_trail_restarts_it_and_a_cancel_ends_it(sim: Sim) -> None:
    sim.place(1, SELL, 1, TRAIL, aux=1.00)
    sim.trade(5004.00, 1)
    assert stop_of(sim, 1) == 5003.00
    assert ev(sim.place(1, SELL, 1, TRAIL, aux=2.00)) == [("order", 1, SUB, 0, 1)]
    assert stop_of(sim, 1) == 5002.00  # from the last print, with the new trail
    assert ev(sim.cancel(1)) == [("order", 1, CANCELLED, 0, 1), ("error", 1, 202)]
    assert sim.trade(5000.00, 5) == []


def test_a_fired_trail_limit_modified_keeps_its_frozen_stop_and_takes_the_new_offset(
    sim: Sim,
) -> None:
    sim.place(1, SELL, 1, TRAIL_LIMIT, aux=1.00, lmt_price_offset=0.50)
    sim.trade(5002.00, 1)  # stop 5001.00
    sim.quote(4999.00, 4999.25)
    assert sim.trade(5001.00, 1) == []  # fired: a limit at 5000.50 above the bid rests
    assert ev(sim.place(1, SELL, 1, TRAIL_LIMIT, aux=2.00, lmt_price_offset=2.00)) == [
        ("order", 1, SUB, 0, 1),
        ("fill", 1, 1, 4999.00, 2),  # the limit is now 4999.00: the bid takes it
        ("order", 1, FILLED, 1, 0),
    ]
    assert stop_of(sim, 1) == 5001.00


def test_trailing_stop_as_a_bracket_child_starts_when_the_parent_fills(sim: Sim) -> None:
    sim.place(1, BUY, 2, LMT, 4999.00, transmit=False)
    sim.place(2, SELL, 2, LMT, 5010.00, parent_id=1, transmit=False)
    sim.place(3, SELL, 2, TRAIL, aux=2.00, parent_id=1)
    assert stop_of(sim, 3) is None  # PreSubmitted: not trailing yet
    sim.trade(4998.00, 5)  # the parent fills at its limit; the stop starts from this print
    assert sim.status(1) == FILLED
    assert stop_of(sim, 3) == 4996.00
    sim.trade(5004.00, 1)
    assert stop_of(sim, 3) == 5002.00
    sim.quote(5001.75, 5002.00)
    events = ev(sim.trade(5002.00, 1))
    assert events[0] == ("fill", 3, 2, 5001.75, 2)
    assert ("order", 2, CANCELLED, 0, 2) in events  # the target goes with it (OCA)
    assert ("order", 3, FILLED, 2, 0) in events


# ---------------------------------------------------------------------- if-touched orders


@pytest.mark.parametrize(
    ("side", "kind", "aux", "lmt", "trade", "expected"),
    [
        pytest.param(BUY, MIT, 4995.00, None, 4995.00,
                     [("fill", 1, 1, 5000.25, 2), ("order", 1, FILLED, 1, 0)],
                     id="buy-mit-fires-on-a-print-at-its-price"),
        pytest.param(SELL, MIT, 5005.00, None, 5005.25,
                     [("fill", 1, 1, 5000.00, 2), ("order", 1, FILLED, 1, 0)],
                     id="sell-mit-fires-on-a-print-through-it"),
        pytest.param(BUY, MIT, 4995.00, None, 4995.25, [], id="buy-mit-not-touched"),
        pytest.param(BUY, LIT, 4995.00, 4995.00, 4995.00, [],
                     id="buy-lit-fires-then-rests-at-its-limit"),
        pytest.param(SELL, LIT, 5005.00, 4999.00, 5005.00,
                     [("fill", 1, 1, 5000.00, 2), ("order", 1, FILLED, 1, 0)],
                     id="sell-lit-fires-and-its-limit-is-marketable"),
    ],
)  # fmt: skip
def test_if_touched_orders_fire_the_other_way_from_stops(
    sim: Sim, side: Side, kind: OrderType, aux: float, lmt: float | None, trade: float,
    expected: list[object],
) -> None:  # fmt: skip
    assert ev(sim.place(1, side, 1, kind, lmt, aux)) == [("order", 1, SUB, 0, 1)]
    assert ev(sim.trade(trade, 1)) == expected
    order = sim.engine.order(1, 1)
    assert order is not None
    assert order.triggered is (trade == aux or expected != [])


def test_lit_rests_after_firing_and_fills_at_its_limit(sim: Sim) -> None:
    sim.place(1, BUY, 1, LIT, 4995.00, 4995.00)
    sim.trade(4995.00, 1)
    assert ev(sim.quote(4994.75, 4995.00)) == [
        ("fill", 1, 1, 4995.00, 1),
        ("order", 1, FILLED, 1, 0),
    ]


def test_mit_before_any_trade_fires_on_the_quote_and_placed_through_at_once(sim: Sim) -> None:
    sim.place(1, BUY, 1, MIT, aux=4999.00)
    assert ev(sim.quote(4998.75, 4999.00)) == [
        ("fill", 1, 1, 4999.00, 2),
        ("order", 1, FILLED, 1, 0),
    ]
    assert ev(sim.place(2, SELL, 1, MIT, aux=4990.00))[1:] == [
        ("fill", 2, 1, 4998.75, 2),
        ("order", 2, FILLED, 1, 0),
    ]


def test_mit_and_trailing_stop_in_one_oca_group(sim: Sim) -> None:
    sim.trade(5000.00, 1)  # from now on prints, not quotes, fire triggers
    sim.place(1, SELL, 1, MIT, aux=5004.00, oca_group="exit", oca_type=1)
    sim.place(2, SELL, 1, TRAIL, aux=2.00, oca_group="exit", oca_type=1)
    sim.quote(5004.00, 5004.25)
    events = ev(sim.trade(5004.00, 1))
    assert events[:2] == [("fill", 1, 1, 5004.00, 2), ("order", 1, FILLED, 1, 0)]
    assert ("order", 2, CANCELLED, 0, 1) in events


def test_mit_modify_moves_its_trigger(sim: Sim) -> None:
    sim.place(1, BUY, 1, MIT, aux=4990.00)
    assert sim.trade(4995.00, 1) == []
    assert ev(sim.place(1, BUY, 1, MIT, aux=4996.00))[1:] == [
        ("fill", 1, 1, 5000.25, 2),  # the last print, 4995.00, is through the new trigger
        ("order", 1, FILLED, 1, 0),
    ]


# ---------------------------------------------------------------------- refusals


@pytest.mark.parametrize(
    ("kind", "fields", "code", "reason"),
    [
        pytest.param(TRAIL, {}, 201,
                     "A trailing amount (auxPrice) or a trailingPercent is required",
                     id="trail-without-amount-or-percent"),
        pytest.param(TRAIL, {"aux": 1.0, "trailing_percent": 1.0}, 201,
                     "Give a trailing amount (auxPrice) or a trailingPercent, not both",
                     id="trail-with-both"),
        pytest.param(TRAIL, {"aux": -1.0}, 201, "The trailing amount -1.0 must be positive",
                     id="trail-negative-amount"),
        pytest.param(TRAIL, {"trailing_percent": 0.0}, 201,
                     "The trailing percent 0.0 must be between 0 and 100", id="trail-percent-0"),
        pytest.param(TRAIL, {"trailing_percent": 100.0}, 201,
                     "The trailing percent 100.0 must be between 0 and 100",
                     id="trail-percent-100"),
        pytest.param(TRAIL, {"trailing_percent": 150.0}, 201,
                     "The trailing percent 150.0 must be between 0 and 100",
                     id="trail-percent-150"),
        pytest.param(TRAIL, {"aux": 1.1}, 110, None, id="trail-amount-off-the-grid"),
        pytest.param(TRAIL, {"aux": 1.0, "trail_stop_price": 4990.1}, 110, None,
                     id="trail-stop-price-off-the-grid"),
        pytest.param(TRAIL_LIMIT, {"aux": 1.0}, 201,
                     "A trailing stop limit needs a limit price offset (lmtPriceOffset)",
                     id="trail-limit-without-offset"),
        pytest.param(TRAIL_LIMIT, {"aux": 1.0, "lmt_price_offset": 0.3}, 110, None,
                     id="trail-limit-offset-off-the-grid"),
        pytest.param(MIT, {}, 201, "The trigger price is missing", id="mit-without-trigger"),
        pytest.param(LIT, {"aux": 4995.0}, 201, "The limit price is missing",
                     id="lit-without-limit"),
    ],
)  # fmt: skip
def test_refused_trigger_parameters(
    sim: Sim, kind: OrderType, fields: dict[str, float], code: int, reason: str | None
) -> None:
    events = sim.place(1, SELL, 1, kind, **fields)  # type: ignore[arg-type]
    assert ev(events) == [("error", 1, code)]
    assert isinstance(events[0], OrderError)
    if reason is not None:
        assert events[0].message == f"Order rejected - reason:{reason}"
    assert sim.engine.order(1, 1) is None


# ---------------------------------------------------------------------- advertised list


def test_contract_details_advertise_exactly_what_the_engine_implements() -> None:
    assert ORDER_TYPES.split(",") == list(ADVERTISED)
    advertised = set(ADVERTISED)
    assert advertised == set(ORDER_TYPE_TOKENS) | TIF_TOKENS | ATTRIBUTE_TOKENS
    assert set(ORDER_TYPE_TOKENS.values()) == set(OrderType)  # every engine kind is listed
    assert not advertised & {"OPG", "TRAILMIT", "TRAILLIT", "MTL", "GTT", "ICE", "ALGO"}


@pytest.mark.parametrize("token", sorted(ORDER_TYPE_TOKENS))
def test_every_advertised_order_type_is_placed_and_works(token: str) -> None:
    s = Sim()
    s.quote(5000.00, 5000.25)
    kind = ORDER_TYPE_TOKENS[token]
    trailing = kind in (TRAIL, TRAIL_LIMIT)
    events = s.place(1, BUY, 1, kind, 4990.00, 2.00 if trailing else 5010.00, lmt_price_offset=0.25)
    assert ev(events)[0] == ("order", 1, SUB, 0, 1)
    assert not [e for e in events if isinstance(e, OrderError)]
