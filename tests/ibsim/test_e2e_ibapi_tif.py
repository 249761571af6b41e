"""IB's reference client `ibapi` 9.81 (server version 157): IOC, trailing stops and 10148/104."""

from __future__ import annotations

import asyncio

from ibapi.order import Order

from ibsim.model import Side, TradeTick
from tests.ibsim.conftest import GatewayFactory, quote
from tests.ibsim.test_e2e_ibapi import (
    FARMS,
    App,
    Connect,
    front_month,
    ibapi_connect,  # noqa: F401 - the fixture, used by name
    limit,
    place,
)


def trailing_stop(action: str, qty: int, amount: float) -> Order:
    o = Order()
    o.action, o.totalQuantity, o.orderType, o.auxPrice = action, qty, "TRAIL", amount
    return o


def codes(app: App, order_id: int) -> list[tuple[int, str]]:
    return [(code, text) for req, code, text in app.errors if req == order_id]


async def test_ioc_below_the_bid_is_cancelled_at_once_with_202(
    make_gateway: GatewayFactory,
    ibapi_connect: Connect,  # noqa: F811
) -> None:
    gw = await make_gateway()  # 5000.00 / 5000.25, 10 x 10
    app = await ibapi_connect(gw)
    contract = await front_month(app)
    assert app.next_id is not None
    oid = app.next_id
    ioc = limit("BUY", 2, 4990.0)
    ioc.tif = "IOC"
    await place(app, contract, [(oid, ioc)])
    await app.until(lambda: app.status_of(oid) == "Cancelled" and codes(app, oid))
    assert [s for s, *_ in app.statuses[oid]] == ["Submitted", "Cancelled"]
    assert app.statuses[oid][-1] == ("Cancelled", 0, 2, 0.0)
    assert codes(app, oid) == [(202, "Order Canceled - reason:")]
    assert app.fills(oid) == []
    assert app.open_orders[oid].tif == "IOC"


async def test_trailing_stop_ratchets_fills_then_cancel_is_10148_and_modify_104(
    make_gateway: GatewayFactory,
    ibapi_connect: Connect,  # noqa: F811
) -> None:
    gw = await make_gateway()
    app = await ibapi_connect(gw, 8)
    contract = await front_month(app)
    assert app.next_id is not None
    oid = app.next_id
    await place(app, contract, [(oid, trailing_stop("SELL", 1, 1.0))])
    await app.until(lambda: app.status_of(oid) == "Submitted")
    assert app.open_orders[oid].trailStopPrice == 4999.0  # the bid less the trail
    for price in (5001.0, 5003.0, 5002.5):  # the stop follows up to 5002.00, never back
        gw.apply(TradeTick(gw.clock.now(), price, 1, Side.BUY))
    gw.apply(quote(5002.0, 5002.25))
    gw.apply(TradeTick(gw.clock.now(), 5002.0, 1, Side.SELL))
    await app.until(lambda: app.status_of(oid) == "Filled" and app.fills(oid))
    (fill,) = app.fills(oid)
    assert (fill.side, fill.shares, fill.price) == ("SLD", 1, 5002.0)
    assert app.open_orders[oid].trailStopPrice == 5002.0

    await asyncio.to_thread(app.cancelOrder, oid)
    await app.until(lambda: any(code == 10148 for code, _ in codes(app, oid)))
    await place(app, contract, [(oid, trailing_stop("SELL", 1, 2.0))])
    await app.until(lambda: any(code == 104 for code, _ in codes(app, oid)))
    assert codes(app, oid) == [
        (10148, f"OrderId {oid} that needs to be cancelled cannot be cancelled, state: Filled."),
        (104, "Can't modify a filled order."),
    ]
    assert [c for _, c, _ in app.errors if c not in FARMS and c not in (10148, 104)] == []
