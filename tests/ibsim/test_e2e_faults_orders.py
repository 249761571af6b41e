"""Book and order faults as an unmodified ib_async client sees them: corrected executions,
orders placed under another client id, and forged order messages with nothing behind them."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import pytest
from ib_async import IB, Fill, LimitOrder, MarketOrder, Trade

from ibsim.model import OrderStatus
from tests.ibsim.conftest import GatewayFactory, collect_errors, front_month, quote, until

Connect = Callable[..., Awaitable[IB]]


def _live_fills(ib: IB) -> list[Fill]:
    """Fills as ib_async reports them live (execDetailsEvent), from now on."""
    seen: list[Fill] = []
    ib.execDetailsEvent += lambda _trade, fill: seen.append(fill)
    return seen


async def _filled(ib: IB, trade: Trade) -> None:
    await until(ib, lambda: trade.orderStatus.status == "Filled" and bool(trade.fills))


# --- execution corrections ---


async def test_price_correction_arrives_live_and_replaces_the_fill_at_the_broker(
    make_gateway: GatewayFactory, connect: Connect
) -> None:
    gw = await make_gateway()
    ib = await connect(gw, client_id=3)
    contract = await front_month(ib)
    live = _live_fills(ib)
    trade = ib.placeOrder(contract, MarketOrder("BUY", 2, orderRef="entry-1"))
    await _filled(ib, trade)
    original = trade.fills[0].execution
    assert original.execId.endswith(".01.01")
    assert original.price == 5000.25

    new_id = gw.correct_execution(price=5001.0)

    assert new_id == original.execId.removesuffix(".01") + ".02"
    await until(ib, lambda: new_id in {f.execution.execId for f in live})
    corrected = next(f for f in live if f.execution.execId == new_id)
    assert (corrected.execution.price, corrected.execution.shares) == (5001.0, 2.0)
    assert (corrected.execution.orderRef, corrected.execution.permId) == (
        "entry-1",
        trade.order.permId,
    )
    await until(ib, lambda: corrected.commissionReport.commission == pytest.approx(4.5))
    assert {f.execution.execId for f in ib.fills()} == {original.execId, new_id}
    # the broker holds 2 contracts at the corrected price, not 4
    (pos,) = gw.engine.positions()
    assert pos.quantity == 2
    assert pos.avg_cost == pytest.approx(5001.0 * 50 + 2.25)
    await until(ib, lambda: [p.avgCost for p in ib.positions()] == [pytest.approx(pos.avg_cost)])
    assert [p.position for p in ib.positions()] == [2.0]
    # reqExecutions answers the day's executions: the original, then its correction
    answered = await ib.reqExecutionsAsync()
    assert [(f.execution.execId, f.execution.price) for f in answered] == [
        (original.execId, 5000.25),
        (new_id, 5001.0),
    ]


async def test_quantity_correction_moves_the_position_and_can_be_corrected_again(
    make_gateway: GatewayFactory, connect: Connect
) -> None:
    gw = await make_gateway()
    ib = await connect(gw, client_id=4)
    contract = await front_month(ib)
    trade = ib.placeOrder(contract, MarketOrder("SELL", 3))
    await _filled(ib, trade)
    first = trade.fills[0].execution.execId

    second = gw.correct_execution(first, shares=1)
    third = gw.correct_execution(first, price=4999.75)  # corrects the latest version

    assert second == first.removesuffix(".01") + ".02"
    assert third == first.removesuffix(".01") + ".03"
    await until(ib, lambda: third in {f.execution.execId for f in ib.fills()})
    by_id = {f.execution.execId: f.execution for f in ib.fills()}
    assert (by_id[second].shares, by_id[second].price) == (1.0, 5000.0)
    assert (by_id[third].shares, by_id[third].price) == (1.0, 4999.75)
    assert [p.quantity for p in gw.engine.positions()] == [-1]
    await until(ib, lambda: [p.position for p in ib.positions()] == [-1.0])
    assert [e.exec_id for e in gw.engine.booked_executions()] == [third]
    assert [e.exec_id for e in gw.engine.executions()] == [first, second, third]


async def test_correction_with_nothing_to_correct_returns_none(
    make_gateway: GatewayFactory,
) -> None:
    gw = await make_gateway()
    assert gw.correct_execution() is None
    with pytest.raises(KeyError, match="nope"):
        gw.correct_execution("nope.01.01", price=1.0)


# --- orders the client never sent ---


async def test_foreign_order_fills_reaches_its_client_and_every_reconciliation(
    make_gateway: GatewayFactory, connect: Connect
) -> None:
    gw = await make_gateway()
    ours = await connect(gw, client_id=1)
    other = await connect(gw, client_id=7)
    other_live = _live_fills(other)
    ours_live = _live_fills(ours)

    order_id = gw.place_foreign_order(7, "ghost-1", "BUY", 2)

    await until(other, lambda: len(other_live) == 1)
    ex = other_live[0].execution
    assert (ex.orderRef, ex.clientId, ex.orderId, ex.shares) == ("ghost-1", 7, order_id, 2.0)
    # it moved the account's position, which every positions subscriber sees
    await until(ours, lambda: [p.position for p in ours.positions()] == [2.0])
    answered = await ours.reqExecutionsAsync()
    assert [(f.execution.orderRef, f.execution.clientId) for f in answered] == [("ghost-1", 7)]
    assert ours_live == []  # live fills go to the owning client only
    # a working one shows in reqAllOpenOrders
    resting = gw.place_foreign_order(9, "ghost-lmt", "SELL", 1, "LMT", 5010.0)
    everything = await ours.reqAllOpenOrdersAsync()
    assert [(t.order.orderRef, t.order.orderId) for t in everything] == [("ghost-lmt", resting)]


async def test_foreign_order_under_our_own_client_id_looks_like_one_from_an_earlier_life(
    make_gateway: GatewayFactory, connect: Connect
) -> None:
    gw = await make_gateway()
    ib = await connect(gw, client_id=2)
    errors = collect_errors(ib)
    live = _live_fills(ib)
    contract = await front_month(ib)

    order_id = gw.place_foreign_order(2, "earlier-life", "SELL", 1)

    await until(ib, lambda: len(live) == 1)
    assert (live[0].execution.orderRef, live[0].execution.orderId) == ("earlier-life", order_id)
    assert [t.order.orderRef for t in ib.trades()] == ["earlier-life"]
    # the client learnt the id from OPEN_ORDER: its own next order does not collide (no 103)
    mine = ib.placeOrder(contract, MarketOrder("BUY", 1))
    await _filled(ib, mine)
    assert mine.order.orderId > order_id
    assert not [code for _, code in errors if code == 103]


async def test_foreign_order_works_at_the_broker_with_its_client_away(
    make_gateway: GatewayFactory,
) -> None:
    gw = await make_gateway()
    order_id = gw.place_foreign_order(8, "nobody-home", "BUY", 1, "LMT", 4999.75)
    order = gw.engine.order(8, order_id)
    assert order is not None
    assert order.status is OrderStatus.SUBMITTED
    gw.apply(quote(4999.5, 4999.75))
    assert order.status is OrderStatus.FILLED
    assert [p.quantity for p in gw.engine.positions()] == [1]
    with pytest.raises(ValueError, match="lmt_price"):
        gw.place_foreign_order(8, "x", "BUY", 1, "LMT")
    with pytest.raises(ValueError, match="side"):
        gw.place_foreign_order(8, "x", "HOLD", 1)


# --- forged messages: no broker state behind them ---


async def test_injected_execution_reaches_only_that_client_and_changes_nothing(
    make_gateway: GatewayFactory, connect: Connect
) -> None:
    gw = await make_gateway()
    target = await connect(gw, client_id=5)
    bystander = await connect(gw, client_id=6)

    exec_id = gw.inject_execution(
        5, order_id=4242, order_ref="forged", side="SELL", shares=3, price=4990.5,
        perm_id=77, exec_client_id=99,
    )  # fmt: skip

    assert exec_id is not None
    await until(target, lambda: exec_id in {f.execution.execId for f in target.fills()})
    (fill,) = target.fills()
    ex = fill.execution
    assert (ex.orderId, ex.orderRef, ex.side, ex.shares, ex.price) == (
        4242,
        "forged",
        "SLD",
        3.0,
        4990.5,
    )
    assert (ex.permId, ex.clientId) == (77, 99)
    await bystander.reqCurrentTimeAsync()
    assert bystander.fills() == []
    assert gw.engine.executions() == []
    assert gw.engine.positions() == []
    assert await target.reqExecutionsAsync() == []  # the broker never heard of it
    assert gw.inject_execution(
        12, order_id=1, order_ref="", side="BUY", shares=1, price=1.0
    ) is None  # fmt: skip


async def test_injected_order_status_fills_an_order_that_is_still_working(
    make_gateway: GatewayFactory, connect: Connect
) -> None:
    gw = await make_gateway()
    ib = await connect(gw, client_id=5)
    contract = await front_month(ib)
    trade = ib.placeOrder(contract, LimitOrder("BUY", 2, 4990.0))
    await until(ib, lambda: trade.orderStatus.status == "Submitted")

    assert gw.inject_order_status(
        5, order_id=trade.order.orderId, status="Filled", filled=2, remaining=0,
        avg_fill_price=4990.0, perm_id=trade.order.permId,
    )  # fmt: skip

    await until(ib, lambda: trade.orderStatus.status == "Filled")
    assert (trade.orderStatus.filled, trade.orderStatus.remaining) == (2.0, 0.0)
    order = gw.engine.order(5, trade.order.orderId)
    assert order is not None
    assert (order.status, order.filled) == (OrderStatus.SUBMITTED, 0)
    with pytest.raises(ValueError, match="Bogus"):
        gw.inject_order_status(
            5, order_id=1, status="Bogus", filled=0, remaining=1, avg_fill_price=0.0, perm_id=1
        )


async def test_injected_open_order_shows_a_trade_the_broker_does_not_have(
    make_gateway: GatewayFactory, connect: Connect
) -> None:
    gw = await make_gateway()
    ib = await connect(gw, client_id=5)
    bystander = await connect(gw, client_id=6)

    assert gw.inject_open_order(
        5, order_id=900, order_ref="phantom", action="SELL", quantity=4, lmt_price=5020.0
    )

    await until(ib, lambda: [t.order.orderRef for t in ib.openTrades()] == ["phantom"])
    (phantom,) = ib.openTrades()
    assert (phantom.order.action, phantom.order.totalQuantity) == ("SELL", 4.0)
    assert (phantom.order.lmtPrice, phantom.orderStatus.status) == (5020.0, "Submitted")
    assert gw.engine.open_orders() == []
    assert await bystander.reqAllOpenOrdersAsync() == []
