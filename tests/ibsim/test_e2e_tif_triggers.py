"""Time in force, trailing and if-touched orders, and TWS's cancel/modify codes, with ib_async.

Real sockets, the unmodified client, an in-process gateway on 127.0.0.1:0. Expiries are driven
by moving the gateway's clock (`gw.clock.advance_to`): the gateway notices on its own and the
test waits for the status to arrive.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime

import pytest
from ib_async import IB, LimitOrder, MarketOrder, Order

from ibsim.calendar import CENTRAL
from ibsim.gateway import Gateway
from ibsim.model import Side, TradeTick
from ibsim.ordertypes import ADVERTISED_TEXT
from tests.ibsim.conftest import GatewayFactory, front_month, quote, until

Connect = Callable[..., Awaitable[IB]]
CLOSE = datetime(2026, 11, 20, 16, 0, tzinfo=CENTRAL).timestamp()  # Friday's session ends


def collect_messages(ib: IB) -> list[tuple[int, int, str]]:
    """(reqId, code, text) of every error the client receives from now on."""
    seen: list[tuple[int, int, str]] = []
    ib.errorEvent += lambda req_id, code, text, *_: seen.append((req_id, code, text))
    return seen


def trade_at(gw: Gateway, price: float, size: int = 1) -> None:
    gw.apply(TradeTick(gw.clock.now(), price, size, Side.BUY))


def _codes(seen: list[tuple[int, int, str]]) -> set[tuple[int, int]]:
    return {(req_id, code) for req_id, code, _ in seen}


async def test_ioc_below_the_bid_is_cancelled_at_once_and_fok_too_big_is_cancelled_whole(
    make_gateway: GatewayFactory, connect: Connect
) -> None:
    gw = await make_gateway()  # 5000.00 / 5000.25, 10 x 10
    ib = await connect(gw)
    seen = collect_messages(ib)
    contract = await front_month(ib)
    ioc = ib.placeOrder(contract, LimitOrder("BUY", 2, 4990.0, tif="IOC"))
    fok = ib.placeOrder(contract, LimitOrder("BUY", 15, 5000.25, tif="FOK"))
    partial = ib.placeOrder(contract, LimitOrder("BUY", 12, 5000.25, tif="IOC"))
    await until(ib, lambda: ioc.isDone() and fok.isDone() and partial.isDone())
    assert [t.orderStatus.status for t in (ioc, fok, partial)] == ["Cancelled"] * 3
    assert (ioc.fills, fok.fills) == ([], [])
    assert fok.orderStatus.filled == 0
    assert [(f.execution.shares, f.execution.price) for f in partial.fills] == [(10.0, 5000.25)]
    await until(ib, lambda: {(t.order.orderId, 202) for t in (ioc, fok, partial)} <= _codes(seen))
    assert gw.engine.open_orders() == []


async def test_day_order_expires_at_the_session_end_and_is_reported_on_reconnect(
    make_gateway: GatewayFactory, connect: Connect
) -> None:
    gw = await make_gateway()
    ib = await connect(gw, client_id=41)
    seen = collect_messages(ib)
    contract = await front_month(ib)
    day = ib.placeOrder(contract, LimitOrder("BUY", 1, 4990.0))  # ib_async's default: DAY
    gtc = ib.placeOrder(contract, LimitOrder("BUY", 1, 4989.0, tif="GTC"))
    await until(ib, lambda: day.orderStatus.status == gtc.orderStatus.status == "Submitted")
    gw.clock.advance_to(CLOSE - 1)
    trade_at(gw, 4995.0)  # a last print before the close: nothing expires yet
    gw.clock.advance_to(CLOSE)
    await until(ib, lambda: day.orderStatus.status == "Cancelled")
    await until(ib, lambda: (day.order.orderId, 202) in _codes(seen))
    assert gtc.orderStatus.status == "Submitted"
    ib.disconnect()

    back = await connect(gw, client_id=41)
    assert [t.order.permId for t in back.openTrades()] == [gtc.order.permId]
    completed = await back.reqCompletedOrdersAsync(apiOnly=True)
    finished = {t.order.permId: t.orderStatus.status for t in completed}
    assert finished == {day.order.permId: "Cancelled"}


async def test_gtd_order_expires_at_its_time_and_a_bad_date_gets_391(
    make_gateway: GatewayFactory, connect: Connect
) -> None:
    gw = await make_gateway()
    ib = await connect(gw)
    seen = collect_messages(ib)
    contract = await front_month(ib)
    gtd = ib.placeOrder(
        contract,
        LimitOrder("BUY", 1, 4990.0, tif="GTD", goodTillDate="20261120 09:00:00 US/Central"),
    )
    day = ib.placeOrder(contract, LimitOrder("BUY", 1, 4989.0))
    bad = ib.placeOrder(contract, LimitOrder("BUY", 1, 4988.0, tif="GTD", goodTillDate="tomorrow"))
    await until(ib, lambda: gtd.orderStatus.status == day.orderStatus.status == "Submitted")
    await until(ib, bad.isDone)
    assert bad.orderStatus.status == "Cancelled"
    ((code, text),) = [(c, t) for r, c, t in seen if r == bad.order.orderId]
    assert code == 391
    assert text.startswith("End Time: The date, time, or time-zone entered is invalid.")
    open_orders = await ib.reqAllOpenOrdersAsync()
    assert {t.order.goodTillDate for t in open_orders} == {"20261120 09:00:00 US/Central", ""}

    gw.clock.advance_to(datetime(2026, 11, 20, 9, 0, tzinfo=CENTRAL).timestamp())
    await until(ib, gtd.isDone)
    assert gtd.orderStatus.status == "Cancelled"
    assert day.orderStatus.status == "Submitted"


async def test_trailing_stop_ratchets_with_the_market_and_fills_at_its_stop(
    make_gateway: GatewayFactory, connect: Connect
) -> None:
    gw = await make_gateway()
    ib = await connect(gw, client_id=5)
    contract = await front_month(ib)
    trail = ib.placeOrder(
        contract, Order(action="SELL", totalQuantity=1, orderType="TRAIL", auxPrice=1.0)
    )
    await until(ib, lambda: trail.orderStatus.status == "Submitted")

    async def stop_seen_by_another_client(client_id: int) -> float:
        """The stop as OPEN_ORDER carries it to a fresh client (ib_async keeps the first one)."""
        watcher = await connect(gw, client_id=client_id)
        (mine,) = await watcher.reqAllOpenOrdersAsync()
        watcher.disconnect()
        return float(mine.order.trailStopPrice)

    assert await stop_seen_by_another_client(6) == 4999.0  # the bid less the trail
    for price in (5001.0, 5003.0, 5002.5):
        trade_at(gw, price)
    assert await stop_seen_by_another_client(7) == 5002.0  # up with the market, never back
    gw.apply(quote(5002.0, 5002.25))
    trade_at(gw, 5002.25)
    assert trail.orderStatus.status == "Submitted"
    trade_at(gw, 5002.0)
    await until(ib, lambda: trail.orderStatus.status == "Filled")
    assert [f.execution.price for f in trail.fills] == [5002.0]


async def test_mit_triggers_on_a_touch_and_trail_limit_works_as_a_bracket_child(
    make_gateway: GatewayFactory, connect: Connect
) -> None:
    gw = await make_gateway()
    ib = await connect(gw)
    contract = await front_month(ib)
    trade_at(gw, 5000.0)
    mit = ib.placeOrder(
        contract, Order(action="BUY", totalQuantity=1, orderType="MIT", auxPrice=4995.0)
    )
    parent, target, _ = ib.bracketOrder("BUY", 1, 5000.25, 5010.0, 4990.0)
    stop = Order(
        action="SELL", totalQuantity=1, orderType="TRAIL LIMIT", auxPrice=2.0,
        lmtPriceOffset=0.5, parentId=parent.orderId, transmit=True,
    )  # fmt: skip
    trades = [ib.placeOrder(contract, o) for o in (parent, target, stop)]
    await until(ib, lambda: trades[0].orderStatus.status == "Filled")
    await until(ib, lambda: trades[2].orderStatus.status == "Submitted")
    assert mit.orderStatus.status == "Submitted"

    gw.apply(quote(4994.75, 4995.0))
    trade_at(gw, 4995.0)  # touches the MIT (and fires the trailing stop limit: 4998.00)
    await until(ib, lambda: mit.orderStatus.status == "Filled")
    assert [f.execution.price for f in mit.fills] == [4995.0]
    gw.apply(quote(4997.5, 4997.75))  # the stop limit rests at 4997.50 and the bid touches it
    await until(ib, lambda: trades[2].orderStatus.status == "Filled")
    assert [f.execution.price for f in trades[2].fills] == [4997.5]
    await until(ib, lambda: trades[1].orderStatus.status == "Cancelled")


async def test_cancel_of_a_filled_order_is_10148_and_its_modify_104(
    make_gateway: GatewayFactory, connect: Connect
) -> None:
    gw = await make_gateway()
    ib = await connect(gw)
    seen = collect_messages(ib)
    contract = await front_month(ib)
    filled = ib.placeOrder(contract, MarketOrder("BUY", 1))
    await until(ib, lambda: filled.orderStatus.status == "Filled")
    oid = filled.order.orderId
    ib.cancelOrder(filled.order)
    await until(ib, lambda: (oid, 10148) in _codes(seen))
    modified = LimitOrder("BUY", 1, 4990.0)
    modified.orderId = oid
    ib.client.placeOrder(oid, contract, modified)
    await until(ib, lambda: (oid, 104) in _codes(seen))
    texts = {code: text for req_id, code, text in seen if req_id == oid}
    assert (
        texts[10148]
        == f"OrderId {oid} that needs to be cancelled cannot be cancelled, state: Filled."
    )
    assert texts[104] == "Can't modify a filled order."
    assert filled.orderStatus.status == "Filled"
    assert len(gw.engine.executions()) == 1


@pytest.mark.parametrize(
    ("order", "code", "text"),
    [
        pytest.param(LimitOrder("BUY", 1, 4990.0, tif="XYZ"), 201,
                     "Order rejected - reason:Invalid time in force 'XYZ'", id="unknown-tif"),
        pytest.param(LimitOrder("BUY", 1, 4990.0, tif="OPG"), 387,
                     "Unsupported order type for this exchange and security type.",
                     id="opg-for-a-future"),
        pytest.param(Order(action="SELL", totalQuantity=1, orderType="TRAIL", trailingPercent=150),
                     201, "Order rejected - reason:The trailing percent 150.0 must be between "
                     "0 and 100", id="trailing-percent-out-of-range"),
        pytest.param(Order(action="SELL", totalQuantity=1, orderType="TRAIL"), 201,
                     "Order rejected - reason:A trailing amount (auxPrice) or a trailingPercent "
                     "is required", id="trail-without-amount-or-percent"),
        pytest.param(Order(action="SELL", totalQuantity=1, orderType="TRAIL MIT", auxPrice=1),
                     201, "Order rejected - reason:order type 'TRAIL MIT' is not simulated",
                     id="unsupported-type-named"),
    ],
)  # fmt: skip
async def test_bad_orders_are_refused_with_tws_codes(
    make_gateway: GatewayFactory, connect: Connect, order: Order, code: int, text: str
) -> None:
    gw = await make_gateway()
    ib = await connect(gw)
    seen = collect_messages(ib)
    contract = await front_month(ib)
    trade = ib.placeOrder(contract, order)
    await until(ib, trade.isDone)
    assert trade.orderStatus.status == "Cancelled"
    assert [(c, t) for r, c, t in seen if r == trade.order.orderId] == [(code, text)]
    assert gw.engine.open_orders() == []


async def test_contract_details_advertise_what_the_gateway_accepts(
    make_gateway: GatewayFactory, connect: Connect
) -> None:
    gw = await make_gateway()
    ib = await connect(gw)
    (details,) = await ib.reqContractDetailsAsync(await front_month(ib))
    assert details.orderTypes == ADVERTISED_TEXT
