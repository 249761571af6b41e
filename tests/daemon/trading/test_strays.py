"""Stray stops and targets: children of finished brackets that the position no longer needs."""

from __future__ import annotations

from daemon.core.orders import Order, OrderType, Role, Side, Status
from daemon.trading.strays import StrayWatch, stray_children


def rec(
    ref: str,
    role: Role,
    action: str,
    *,
    parent: str | None = None,
    status: str = "Submitted",
    quantity: int = 1,
    filled: int = 0,
    created: float = 0.0,
) -> Order:
    return Order(
        ref=ref,
        role=role,
        intent_ref=ref.rsplit("-", 1)[0],
        parent_ref=parent,
        client_id=1,
        order_id=abs(hash(ref)) % 10_000,
        action=Side(action),
        quantity=quantity,
        order_type=OrderType.STP if role is Role.STOP else OrderType.LMT,
        lmt_price=None,
        aux_price=None,
        tif="GTC",
        oca_group="",
        status=Status(status),
        filled=filled,
        created=created,
    )


def bracket(n: int, side: str, parent_status: str, created: float = 0.0) -> list[Order]:
    close = "SELL" if side == "BUY" else "BUY"
    p = f"b{n}-P"
    filled = 1 if parent_status == "Filled" else 0
    return [
        rec(p, Role.ENTRY, side, status=parent_status, filled=filled),
        rec(f"b{n}-T", Role.TARGET, close, parent=p, created=created),
        rec(f"b{n}-S", Role.STOP, close, parent=p, created=created),
    ]


def strays(records: list[Order], position: int) -> list[str]:
    orders = {r.ref: r for r in records}
    live = [r for r in records if r.live]
    return sorted(r.ref for r in stray_children(live, orders, position))


def test_children_protecting_the_position_are_not_stray() -> None:
    assert strays(bracket(1, "BUY", "Filled"), position=1) == []


def test_children_of_a_working_parent_are_not_stray_even_when_flat() -> None:
    assert strays(bracket(1, "BUY", "Submitted"), position=0) == []


def test_when_flat_every_child_of_a_filled_parent_is_stray() -> None:
    assert strays(bracket(1, "BUY", "Filled"), position=0) == ["b1-S", "b1-T"]


def test_a_stop_left_alone_after_an_exit_order_closed_the_position_is_stray() -> None:
    records = bracket(1, "BUY", "Filled")
    records[1].status = Status.CANCELLED  # its target was rejected or cancelled
    assert strays(records, position=0) == ["b1-S"]


def test_children_that_would_add_to_the_position_are_stray() -> None:
    # short 1 now, but a long bracket's SELL stop and target are still working
    assert strays(bracket(1, "BUY", "Filled"), position=-1) == ["b1-S", "b1-T"]


def test_only_the_excess_over_the_position_is_stray_the_oldest_kept() -> None:
    records = bracket(1, "BUY", "Filled", created=1.0) + bracket(2, "BUY", "Filled", created=2.0)
    assert strays(records, position=1) == ["b2-S", "b2-T"]
    assert strays(records, position=2) == []


def test_a_stray_is_due_after_the_grace_once_and_forgotten_when_it_resolves() -> None:
    wall = [100.0]
    watch = StrayWatch(lambda: wall[0], grace_s=2.0)
    stop = rec("b1-S", Role.STOP, "SELL", parent="b1-P")
    assert watch.due([stop]) == []  # an OCA cancel may be on its way
    wall[0] += 1.9
    assert watch.due([stop]) == []
    wall[0] += 0.1
    assert watch.due([stop]) == [stop]
    wall[0] += 5.0
    assert watch.due([stop]) == []  # cancel sent once, not every tick
    assert watch.due([]) == []  # resolved
    assert watch.due([stop]) == []  # stray again: a new grace starts
