"""The planner, table-driven and without sockets: the order-side scenarios of
`tests/e2e/test_trading_e2e.py` (and their variants) as books in, actions out."""

from __future__ import annotations

from dataclasses import replace

import pytest

from daemon.core.instrument import Instrument
from daemon.core.orders import Order, OrderType, Role, Side, Status
from daemon.core.planner import (
    Book,
    CancelOrder,
    Flip,
    MoveTarget,
    PlaceBracket,
    PlaceExit,
    Plan,
    Quote,
    Want,
    heading,
    plan_flip,
    plan_intent,
)

ES = Instrument.of_product("ES")
QUOTE = Quote(5000.0, 5000.25)
NOW = 1_000.0
THROUGH = 2  # execution.exit_through_ticks


def want(target: int, entry: OrderType = OrderType.LMT, offset: int = 0) -> Want:
    return Want(target, entry, offset, stop_ticks=8, target_ticks=12)


def bracket(
    n: int, side: Side, *, filled: int = 0, qty: int = 1, created: float = 0.0
) -> list[Order]:
    """Entry, target and stop of bracket ``n`` (the entry Filled once ``filled`` == qty)."""
    ref = f"ofd-20261120-{n:04d}"
    entry_status = Status.FILLED if filled == qty else Status.SUBMITTED
    child_status = Status.SUBMITTED if filled else Status.PRE_SUBMITTED
    common = {"client_id": 7, "quantity": qty, "intent_ref": ref, "created": created}
    return [
        Order(ref=f"{ref}-P", role=Role.ENTRY, action=side, order_type=OrderType.LMT,
              lmt_price=5000.0, status=entry_status, filled=filled, **common),
        Order(ref=f"{ref}-T", role=Role.TARGET, action=side.opposite, order_type=OrderType.LMT,
              lmt_price=5003.0, parent_ref=f"{ref}-P", status=child_status, **common),
        Order(ref=f"{ref}-S", role=Role.STOP, action=side.opposite, order_type=OrderType.STP,
              aux_price=4998.0, parent_ref=f"{ref}-P", status=child_status, **common),
    ]  # fmt: skip


def plan(w: Want, book: Book, quote: Quote = QUOTE, instrument: Instrument = ES) -> Plan:
    return plan_intent(w, book, quote, instrument, exit_through_ticks=THROUGH, now=NOW)


# --- entries ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("w", "expected"),
    [
        # LMT joins the near touch; stop 8 and target 12 ticks from the entry price
        (want(1), PlaceBracket(Side.BUY, 1, OrderType.LMT, 5000.0, 4998.0, 5003.0)),
        (want(-1), PlaceBracket(Side.SELL, 1, OrderType.LMT, 5000.25, 5002.25, 4997.25)),
        # one tick more aggressive, or four behind the touch
        (want(1, offset=1), PlaceBracket(Side.BUY, 1, OrderType.LMT, 5000.25, 4998.25, 5003.25)),
        (want(2, offset=-4), PlaceBracket(Side.BUY, 2, OrderType.LMT, 4999.0, 4997.0, 5002.0)),
        # MKT: stop and target from the far touch
        (want(1, OrderType.MKT), PlaceBracket(Side.BUY, 1, OrderType.MKT, None, 4998.25, 5003.25)),
    ],
)
def test_an_entry_is_one_complete_bracket(w: Want, expected: PlaceBracket) -> None:
    result = plan(w, Book(0, []))
    assert result == Plan((expected,), "sent", entry=expected)


@pytest.mark.parametrize(
    ("symbol", "quote", "expected"),
    [
        ("MES", Quote(5000.0, 5000.25), (5000.0, 4998.0, 5003.0)),
        ("RTY", Quote(2345.3, 2345.4), (2345.3, 2344.5, 2346.5)),
        ("YM", Quote(34000.0, 34001.0), (34000.0, 33992.0, 34012.0)),
    ],
)
def test_entry_prices_are_on_the_instruments_grid(
    symbol: str, quote: Quote, expected: tuple[float, float, float]
) -> None:
    result = plan(want(1), Book(0, []), quote, Instrument.of_product(symbol))
    assert result.entry is not None
    assert (result.entry.entry_price, result.entry.stop_price, result.entry.target_price) == (
        expected
    )


def test_no_quote_refuses_the_entry_and_nothing_goes_out() -> None:
    assert plan(want(1), Book(0, []), Quote(None, None)) == Plan(
        outcome="refused", detail="price_collar: no quote to price the entry from"
    )


def test_a_working_entry_counts_toward_the_target_burst_of_signals() -> None:
    working = Book(0, bracket(1, Side.BUY))  # one contract on its way
    assert heading(working) == 1
    assert plan(want(2), working).actions == (
        PlaceBracket(Side.BUY, 1, OrderType.LMT, 5000.0, 4998.0, 5003.0),
    )  # only the difference: a burst of signals never stacks past its target
    assert plan(want(1), working) == Plan(outcome="done", detail="nothing to enter")


# --- exits --------------------------------------------------------------------------------------


def test_flat_from_long_moves_the_target_through_the_market_once() -> None:
    long = Book(1, bracket(1, Side.BUY, filled=1))
    first = plan(want(0), long)
    assert first == Plan(
        (MoveTarget("ofd-20261120-0001-T", Side.SELL, 1, 4999.5),), "sent"
    )  # bid - 2 ticks
    again = plan(want(0), replace(long, exits_sent=frozenset({"ofd-20261120-0001-T"})))
    assert again == Plan((), "sent")  # asked again: already on its way, nothing more
    assert heading(replace(long, exits_sent=frozenset({"ofd-20261120-0001-T"}))) == 0


def test_a_short_is_bought_back_through_the_ask() -> None:
    short = Book(-1, bracket(1, Side.SELL, filled=1))
    assert plan(want(0), short).actions == (
        MoveTarget("ofd-20261120-0001-T", Side.BUY, 1, 5000.75),
    )


def test_reducing_two_brackets_moves_the_newest_target_first() -> None:
    two = Book(
        2, bracket(1, Side.BUY, filled=1, created=1.0) + bracket(2, Side.BUY, filled=1, created=2.0)
    )
    assert plan(want(1), two).actions == (MoveTarget("ofd-20261120-0002-T", Side.SELL, 1, 4999.5),)


def test_a_position_without_a_live_target_goes_out_as_an_exit_order() -> None:
    orders = bracket(1, Side.BUY, filled=1)
    orders[1].status = Status.CANCELLED  # its target is gone (rejected, cancelled)
    assert plan(want(0), Book(1, orders)).actions == (PlaceExit(Side.SELL, 1, 4999.5),)
    # an exit already being sized covers it: nothing twice
    assert plan(want(0), Book(1, orders, pending_exits=1)).actions == ()


def test_a_fill_recovered_at_reconnect_counts_for_its_order_so_its_target_moves() -> None:
    orders = bracket(1, Side.BUY, filled=1)  # the entry's filled count came with the reconnect
    assert plan(want(0), Book(1, orders)).actions[0] == MoveTarget(
        "ofd-20261120-0001-T", Side.SELL, 1, 4999.5
    )
    orders[0].filled, orders[0].status = 0, Status.SUBMITTED  # had it not: no target to move,
    assert plan(want(0), Book(1, orders)).actions == (  # the "working" entry cancelled, and an
        CancelOrder("ofd-20261120-0001-P", "wants 0"),  # exit order sent for the position
        PlaceExit(Side.SELL, 1, 4999.5),
    )


# --- reversals: the flip --------------------------------------------------------------------


def test_reversing_a_working_entry_cancels_it_then_waits() -> None:
    working = Book(0, bracket(1, Side.BUY))
    result = plan(want(-1), working)
    assert result.actions == (CancelOrder("ofd-20261120-0001-P", "wants -1"),)
    assert result.outcome == "waiting"
    assert result.flip == Flip(want(-1), NOW, exited=False)
    # the cancel is not confirmed yet: still waiting
    assert plan_flip(
        result.flip, working, QUOTE, ES, exit_through_ticks=THROUGH, now=NOW + 1, timeout_s=30
    ) == Plan(outcome="waiting", flip=result.flip)
    # confirmed: only the target is entered (-1, not -2)
    cancelled = bracket(1, Side.BUY)
    for o in cancelled:
        o.status = Status.CANCELLED
    went_on = plan_flip(
        result.flip, Book(0, cancelled), QUOTE, ES, exit_through_ticks=THROUGH, now=NOW + 2,
        timeout_s=30,
    )  # fmt: skip
    assert went_on.actions == (
        PlaceBracket(Side.SELL, 1, OrderType.LMT, 5000.25, 5002.25, 4997.25),
    )


def test_an_entry_that_fills_before_its_cancel_is_exited_and_the_reversal_goes_on() -> None:
    flip = Flip(want(-1), NOW, exited=False)
    filled = bracket(1, Side.BUY, filled=1)  # the cancel crossed a fill: long 1
    went_on = plan_flip(
        flip, Book(1, filled), QUOTE, ES, exit_through_ticks=THROUGH, now=NOW + 1, timeout_s=30
    )
    assert went_on.actions == (MoveTarget("ofd-20261120-0001-T", Side.SELL, 1, 4999.5),)
    assert went_on.flip == Flip(want(-1), NOW + 1, exited=True)  # waits again, exited


def test_a_reversal_from_long_exits_first_then_enters_the_other_way() -> None:
    long = Book(1, bracket(1, Side.BUY, filled=1))
    result = plan(want(-1), long)
    assert result.actions == (MoveTarget("ofd-20261120-0001-T", Side.SELL, 1, 4999.5),)
    assert result.flip == Flip(want(-1), NOW, exited=True)
    flat = bracket(1, Side.BUY, filled=1)
    flat[1].status, flat[1].filled = Status.FILLED, 1
    flat[2].status = Status.CANCELLED
    went_on = plan_flip(
        result.flip, Book(0, flat), QUOTE, ES, exit_through_ticks=THROUGH, now=NOW + 1,
        timeout_s=30,
    )  # fmt: skip
    assert went_on.entry == PlaceBracket(Side.SELL, 1, OrderType.LMT, 5000.25, 5002.25, 4997.25)


def test_a_rejected_exit_of_a_reversal_is_not_retried() -> None:
    flip = Flip(want(-1), NOW, exited=True)
    still_long = bracket(1, Side.BUY, filled=1)
    still_long[1].status = Status.INACTIVE  # the moved target was refused
    result = plan_flip(
        flip, Book(1, still_long), QUOTE, ES, exit_through_ticks=THROUGH, now=NOW + 1,
        timeout_s=30,
    )  # fmt: skip
    assert result == Plan(outcome="done", detail="exit ended before flat")


def test_a_flip_waits_no_longer_than_the_entry_timeout() -> None:
    flip = Flip(want(-1), NOW, exited=False)
    busy = Book(0, bracket(1, Side.BUY))
    assert plan_flip(
        flip, busy, QUOTE, ES, exit_through_ticks=THROUGH, now=NOW + 31, timeout_s=30
    ) == Plan(outcome="done", detail="flip expired before flat")
