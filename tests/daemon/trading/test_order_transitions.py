"""The order status table: every move it allows is taken, every other one refused."""

from __future__ import annotations

import itertools

import pytest

from daemon.core.orders import (
    TRANSITIONS,
    IllegalTransitionError,
    Order,
    OrderType,
    Role,
    Side,
    Status,
)

ALLOWED = {(old, new) for old, targets in TRANSITIONS.items() for new in targets}
REFUSED = sorted(
    (old, new)
    for old, new in itertools.product(Status, Status)
    if old is not new and (old, new) not in ALLOWED
)


def order(status: Status) -> Order:
    return Order(
        ref="ofd-20261122-0001-P",
        role=Role.ENTRY,
        client_id=7,
        action=Side.BUY,
        quantity=1,
        order_type=OrderType.LMT,
        lmt_price=5000.0,
        status=status,
    )


def test_every_status_has_a_row() -> None:
    assert set(TRANSITIONS) == set(Status)


@pytest.mark.parametrize(("old", "new"), sorted(ALLOWED))
def test_an_allowed_move_is_taken(old: Status, new: Status) -> None:
    o = order(old)
    assert o.move_to(new) is old
    assert o.status is new


@pytest.mark.parametrize(("old", "new"), REFUSED)
def test_an_illegal_move_is_refused_and_changes_nothing(old: Status, new: Status) -> None:
    o = order(old)
    with pytest.raises(IllegalTransitionError, match=f"{old.value} cannot become {new.value}"):
        o.move_to(new)
    assert o.status is old


def test_the_moves_that_matter_most() -> None:
    assert (Status.FILLED, Status.SUBMITTED) in REFUSED  # a late word never reopens a fill
    assert (Status.FILLED, Status.CANCELLED) in REFUSED
    assert (Status.CANCELLED, Status.FILLED) in ALLOWED  # a fill crossed the cancel
    assert (Status.JOURNALED, Status.ABANDONED) in ALLOWED  # never reached the broker
    assert (Status.SUBMITTED, Status.JOURNALED) in REFUSED  # nothing goes back to unsent
    assert all(not targets for s, targets in TRANSITIONS.items() if s in (Status.FILLED,))


def test_only_ibs_words_are_taken_from_the_broker() -> None:
    assert Status.from_broker("PreSubmitted") is Status.PRE_SUBMITTED
    assert Status.from_broker("Journaled") is None  # ours, never IB's
    assert Status.from_broker("Lost") is None
    assert Status.from_broker("Exploded") is None


def test_done_statuses() -> None:
    done = {s for s in Status if s.done}
    assert done == {
        Status.FILLED, Status.CANCELLED, Status.API_CANCELLED, Status.INACTIVE,
        Status.ABANDONED, Status.LOST,
    }  # fmt: skip
    assert order(Status.SUBMITTED).live
    assert not order(Status.CANCELLED).live
