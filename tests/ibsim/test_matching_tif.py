"""Times in force in the pure engine: IOC, FOK, DAY and GTD expiry, and the refused ones."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from ibsim import tif
from ibsim.calendar import CENTRAL
from ibsim.model import OrderError, OrderRequest, OrderType
from tests.ibsim.test_matching import (
    BUY,
    CANCELLED,
    CON,
    FILLED,
    LMT,
    MKT,
    PRE,
    SELL,
    STP,
    SUB,
    Sim,
    ev,
)

# The Sim clock starts Thursday 2025-10-09 03:53:20 CT, inside the session that closes at 16:00.
CLOSE = datetime(2025, 10, 9, 16, 0, tzinfo=CENTRAL).timestamp()
NEXT_CLOSE = datetime(2025, 10, 10, 16, 0, tzinfo=CENTRAL).timestamp()


@pytest.fixture
def sim() -> Sim:
    s = Sim()
    s.quote(5000.00, 5000.25, 10, 10)
    return s


def cancelled(order_id: int, filled: int, remaining: int) -> list[tuple[object, ...]]:
    """What an engine-side cancel sends: the Cancelled status, then 202."""
    return [("order", order_id, CANCELLED, filled, remaining), ("error", order_id, 202)]


# ---------------------------------------------------------------------- IOC and FOK


@pytest.mark.parametrize(
    ("side", "qty", "kind", "lmt", "expected"),
    [
        pytest.param(
            BUY, 2, LMT, 4990.00,
            [("order", 1, SUB, 0, 2), *cancelled(1, 0, 2)],
            id="ioc-buy-10-points-below-the-bid-cancelled-at-once",
        ),
        pytest.param(
            BUY, 15, LMT, 5000.25,
            [("order", 1, SUB, 0, 15), ("fill", 1, 10, 5000.25, 2), ("order", 1, SUB, 10, 5),
             *cancelled(1, 10, 5)],
            id="ioc-takes-the-displayed-size-and-cancels-the-rest",
        ),
        pytest.param(
            SELL, 3, MKT, None,
            [("order", 1, SUB, 0, 3), ("fill", 1, 3, 5000.00, 2), ("order", 1, FILLED, 3, 0)],
            id="ioc-market-filled-whole-ends-filled",
        ),
        pytest.param(
            SELL, 12, MKT, None,
            [("order", 1, SUB, 0, 12), ("fill", 1, 10, 5000.00, 2), ("order", 1, SUB, 10, 2),
             *cancelled(1, 10, 2)],
            id="ioc-market-larger-than-the-bid-never-waits",
        ),
    ],
)  # fmt: skip
def test_ioc_fills_what_it_can_at_once_and_cancels_the_rest(
    sim: Sim, side: object, qty: int, kind: OrderType, lmt: float | None, expected: list[object]
) -> None:
    assert ev(sim.place(1, side, qty, kind, lmt, tif="IOC")) == expected  # type: ignore[arg-type]
    assert sim.engine.open_orders() == []
    assert sim.quote(4980.00, 4980.25, 50, 50) == []  # nothing left to match later


@pytest.mark.parametrize(
    ("qty", "lmt", "expected"),
    [
        pytest.param(
            15, 5000.25, [("order", 1, SUB, 0, 15), *cancelled(1, 0, 15)],
            id="fok-too-big-for-the-touch-cancelled-whole",
        ),
        pytest.param(
            10, 5000.25,
            [("order", 1, SUB, 0, 10), ("fill", 1, 10, 5000.25, 2), ("order", 1, FILLED, 10, 0)],
            id="fok-covered-by-the-touch-fills-whole",
        ),
        pytest.param(
            1, 4999.75, [("order", 1, SUB, 0, 1), *cancelled(1, 0, 1)],
            id="fok-not-marketable-cancelled",
        ),
        pytest.param(
            11, None, [("order", 1, SUB, 0, 11), *cancelled(1, 0, 11)],
            id="fok-market-too-big-cancelled-whole",
        ),
    ],
)  # fmt: skip
def test_fok_fills_whole_at_once_or_is_cancelled_whole(
    sim: Sim, qty: int, lmt: float | None, expected: list[object]
) -> None:
    kind = MKT if lmt is None else LMT
    assert ev(sim.place(1, BUY, qty, kind, lmt, tif="FOK")) == expected
    assert sim.engine.executions() == [] or expected[-1] == ("order", 1, FILLED, qty, 0)


def test_ioc_with_no_quote_yet_is_cancelled_not_left_waiting() -> None:
    fresh = Sim()
    assert ev(fresh.place(1, BUY, 1, MKT, tif="IOC")) == [
        ("order", 1, SUB, 0, 1),
        *cancelled(1, 0, 1),
    ]


def test_ioc_stop_waits_for_its_trigger_then_acts_immediately(sim: Sim) -> None:
    assert ev(sim.place(1, SELL, 12, STP, aux=4999.00, tif="IOC")) == [("order", 1, SUB, 0, 12)]
    assert sim.quote(4999.25, 4999.50, 4, 4) == []
    assert ev(sim.trade(4999.00, 1)) == [
        ("fill", 1, 4, 4999.25, 2),
        ("order", 1, SUB, 4, 8),
        *cancelled(1, 4, 8),
    ]


def test_ioc_parent_partly_filled_leaves_its_children_working_for_the_fill(sim: Sim) -> None:
    sim.place(1, BUY, 15, LMT, 5000.25, tif="IOC", transmit=False)
    sim.place(2, SELL, 15, LMT, 5005.00, parent_id=1, transmit=False, tif="GTC")
    events = sim.place(3, SELL, 15, STP, aux=4995.00, parent_id=1, tif="GTC")
    assert ("order", 1, CANCELLED, 10, 5) in ev(events)
    assert ("order", 2, SUB, 0, 10) in ev(events)
    assert ("order", 3, SUB, 0, 10) in ev(events)
    assert [o.request.order_id for o in sim.engine.open_orders()] == [2, 3]


# ---------------------------------------------------------------------- DAY, GTC, GTD expiry


def test_day_order_expires_at_the_session_close_gtc_survives(sim: Sim) -> None:
    sim.place(1, BUY, 1, LMT, 4990.00)  # DAY by default
    sim.place(2, BUY, 1, LMT, 4990.00, tif="GTC")
    day = sim.engine.order(1, 1)
    assert day is not None
    assert day.expires_at == CLOSE
    sim.clock.now = CLOSE - 1
    assert sim.engine.expire() == []
    sim.clock.now = CLOSE
    assert ev(sim.engine.expire()) == cancelled(1, 0, 1)
    assert day.completed_time == CLOSE
    assert sim.engine.completed_orders() == [day]
    assert [o.request.order_id for o in sim.engine.open_orders()] == [2]
    sim.clock.now = NEXT_CLOSE + 3600
    assert sim.engine.expire() == []
    assert sim.status(2) == SUB


def test_an_expired_order_never_fills_on_a_later_event(sim: Sim) -> None:
    sim.place(1, BUY, 1, LMT, 4990.00)
    sim.clock.now = CLOSE + 3599  # the quote arrives after the close: expiry goes first
    assert ev(sim.quote(4989.00, 4989.75)) == cancelled(1, 0, 1)
    assert sim.engine.executions() == []


def test_a_what_if_reply_carries_no_expiry_of_other_orders(sim: Sim) -> None:
    sim.place(1, BUY, 1, LMT, 4990.00)
    sim.clock.now = CLOSE
    assert ev(sim.place(2, BUY, 1, LMT, 4990.00, what_if=True)) == [("order", 2, PRE, 0, 1)]
    assert ev(sim.cancel(1)) == [*cancelled(1, 0, 1), ("error", 1, 10148)]


def test_day_order_placed_in_the_break_expires_at_the_next_close(sim: Sim) -> None:
    sim.clock.now = CLOSE + 1800  # 16:30 CT: the market is closed until 17:00
    sim.place(1, BUY, 1, LMT, 4990.00)
    order = sim.engine.order(1, 1)
    assert order is not None
    assert order.expires_at == NEXT_CLOSE


def test_day_parent_without_fills_takes_its_gtc_children_with_it(sim: Sim) -> None:
    sim.place(1, BUY, 2, LMT, 4990.00, transmit=False)
    sim.place(2, SELL, 2, LMT, 5005.00, parent_id=1, transmit=False, tif="GTC")
    sim.place(3, SELL, 2, STP, aux=4985.00, parent_id=1, tif="GTC")
    assert sim.status(2) == PRE
    sim.clock.now = CLOSE
    assert ev(sim.engine.expire()) == [
        *cancelled(1, 0, 2),
        *cancelled(2, 0, 2),
        *cancelled(3, 0, 2),
    ]


def test_day_children_expire_while_a_gtc_parent_works_on(sim: Sim) -> None:
    sim.place(1, BUY, 2, LMT, 5000.25, tif="GTC", transmit=False)
    sim.place(2, SELL, 2, LMT, 5005.00, parent_id=1, transmit=False)
    sim.place(3, SELL, 2, STP, aux=4985.00, parent_id=1)
    assert sim.status(1) == FILLED
    sim.clock.now = CLOSE
    assert ev(sim.engine.expire()) == [*cancelled(2, 0, 2), *cancelled(3, 0, 2)]


def test_untransmitted_day_order_expires_silently(sim: Sim) -> None:
    sim.place(1, BUY, 1, LMT, 4990.00, transmit=False)
    sim.clock.now = CLOSE
    assert ev(sim.engine.expire()) == [("order", 1, CANCELLED, 0, 1)]
    assert sim.engine.completed_orders() == []


def test_gtd_expires_at_its_time_and_a_modify_can_move_it(sim: Sim) -> None:
    sim.place(1, BUY, 1, LMT, 4990.00, tif="GTD", good_till_date="20251009 06:00:00 US/Central")
    order = sim.engine.order(1, 1)
    assert order is not None
    at_six = datetime(2025, 10, 9, 6, 0, tzinfo=CENTRAL).timestamp()
    assert order.expires_at == at_six
    sim.place(1, BUY, 1, LMT, 4990.00, tif="GTD", good_till_date="20251009-12:00:00")
    assert order.expires_at == datetime(2025, 10, 9, 12, 0, tzinfo=UTC).timestamp()
    sim.clock.now = at_six
    assert sim.engine.expire() == []
    sim.clock.now = order.expires_at
    assert ev(sim.engine.expire()) == cancelled(1, 0, 1)


def test_changing_gtc_to_day_by_modify_gives_it_an_expiry(sim: Sim) -> None:
    sim.place(1, BUY, 1, LMT, 4990.00, tif="GTC")
    order = sim.engine.order(1, 1)
    assert order is not None
    assert order.expires_at is None
    sim.place(1, BUY, 1, LMT, 4990.00, tif="DAY")
    assert order.expires_at == CLOSE


NOW = datetime(2025, 10, 9, 3, 53, 20, tzinfo=CENTRAL).timestamp()
NOON_CT = datetime(2025, 10, 9, 12, tzinfo=CENTRAL).timestamp()


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("20251009 12:00:00 US/Eastern", NOON_CT - 3600),
        ("20251009 12:00:00", NOON_CT),
        ("20251009-17:00:00", datetime(2025, 10, 9, 17, tzinfo=UTC).timestamp()),
        ("20251009 17:00:00 UTC", datetime(2025, 10, 9, 17, tzinfo=UTC).timestamp()),
        ("15:30:00", datetime(2025, 10, 9, 15, 30, tzinfo=CENTRAL).timestamp()),
        ("  20251010 09:00:00  ", datetime(2025, 10, 10, 9, tzinfo=CENTRAL).timestamp()),
    ],
)  # fmt: skip
def test_good_till_date_formats_tws_accepts(text: str, expected: float) -> None:
    assert tif.parse_good_till_date(text, NOW) == expected


@pytest.mark.parametrize(
    "text",
    ["", "20251009", "2025-10-09 12:00:00", "20251009 25:00:00", "20251009 12:00",
     "20251009 12:00:00 Mars/Olympus", "20251009-12:00:00 UTC", "tomorrow"],
)  # fmt: skip
def test_good_till_date_formats_tws_refuses(text: str) -> None:
    with pytest.raises(ValueError, match=r"goodTillDate|zone|does not match|out of range"):
        tif.parse_good_till_date(text, NOW)


# ---------------------------------------------------------------------- refusals


@pytest.mark.parametrize(
    ("fields", "code", "text"),
    [
        pytest.param({"tif": "GTD", "good_till_date": "next friday"}, 391, tif.BAD_TIME_TEXT,
                     id="gtd-unreadable-date"),
        pytest.param({"tif": "GTD"}, 391, tif.BAD_TIME_TEXT, id="gtd-without-a-date"),
        pytest.param({"tif": "GTD", "good_till_date": "20251009 03:00:00"}, 334,
                     "Invalid Good Till Date order", id="gtd-already-past"),
        pytest.param({"tif": "OPG"}, 387,
                     "Unsupported order type for this exchange and security type.",
                     id="opg-not-for-futures"),
        pytest.param({"tif": "XYZ"}, 201, "Order rejected - reason:Invalid time in force 'XYZ'",
                     id="unknown-tif"),
    ],
)  # fmt: skip
def test_refused_times_in_force(sim: Sim, fields: dict[str, str], code: int, text: str) -> None:
    events = sim.place(1, BUY, 1, LMT, 4990.00, **fields)
    assert ev(events) == [("error", 1, code)]
    assert isinstance(events[0], OrderError)
    assert events[0].message == text
    assert sim.engine.order(1, 1) is None
    assert sim.engine.next_order_id(1) == 2  # the refused id is spent


@pytest.mark.parametrize("kind", list(OrderType))
@pytest.mark.parametrize("time_in_force", ["DAY", "GTC", "GTD", "IOC", "FOK"])
def test_every_supported_time_in_force_is_accepted_for_every_order_type(
    kind: OrderType, time_in_force: str
) -> None:
    s = Sim()
    s.quote(5000.00, 5000.25)
    prices = {"lmt_price": 4990.00, "aux_price": 4980.00, "lmt_price_offset": 0.50}
    if kind in (OrderType.TRAIL, OrderType.TRAIL_LIMIT):
        prices["aux_price"] = 2.00
    gtd = "20251009 12:00:00" if time_in_force == "GTD" else ""
    req = OrderRequest(1, 1, CON, BUY, 1, kind, tif=time_in_force, good_till_date=gtd, **prices)
    events = s.engine.place(req)
    assert not [e for e in events if isinstance(e, OrderError) and e.code != 202], events
