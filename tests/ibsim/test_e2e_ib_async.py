"""Unmodified ib_async against the simulated gateway: contracts, ticks, orders, reconcile."""

from __future__ import annotations

import asyncio
import math
from collections.abc import Awaitable, Callable
from itertools import islice

import pytest
from ib_async import IB, ExecutionFilter, Future, LimitOrder, MarketOrder, StopOrder, Ticker

from ibsim.gateway import Gateway
from ibsim.model import Side, TradeTick
from tests.ibsim.conftest import (
    WAIT,
    GatewayFactory,
    ListSource,
    collect_errors,
    front_month,
    quote,
    synthetic,
    until,
)

Connect = Callable[..., Awaitable[IB]]


async def test_connect_completes_startup_and_announces_farms(
    make_gateway: GatewayFactory,
) -> None:
    gw = await make_gateway()
    ib = IB()
    errors = collect_errors(ib)
    await ib.connectAsync("127.0.0.1", gw.port, clientId=3, timeout=5)
    try:
        assert ib.isConnected()
        assert ib.client.serverVersion() == 178
        assert ib.managedAccounts() == ["DU1234567"]
        assert {(-1, 2104), (-1, 2106), (-1, 2158)} <= set(errors)
        assert ib.positions() == []
        assert ib.openTrades() == []
    finally:
        ib.disconnect()


async def test_pinned_server_version_is_used(
    make_gateway: GatewayFactory, connect: Connect
) -> None:
    gw = await make_gateway(server_version=166)
    ib = await connect(gw)
    assert ib.client.serverVersion() == 166


async def test_unqualified_es_lists_four_expiries_and_unknown_gets_200(
    make_gateway: GatewayFactory, connect: Connect
) -> None:
    gw = await make_gateway()
    ib = await connect(gw)
    errors = collect_errors(ib)
    details = await ib.reqContractDetailsAsync(Future("ES", exchange="CME"))
    symbols = [d.contract.localSymbol for d in details]
    assert symbols == ["ESZ6", "ESH7", "ESM7", "ESU7"]
    front = details[0]
    assert front.contract.multiplier == "50"
    assert front.minTick == 0.25
    assert front.timeZoneId == "US/Central"
    assert front.tradingHours.startswith("20261119:1700-20261120:1600")
    (qualified,) = await ib.qualifyContractsAsync(Future("ES", "202612", exchange="CME"))
    assert qualified.conId == front.contract.conId
    assert await ib.reqContractDetailsAsync(Future("NQX", exchange="CME")) == []
    assert any(code == 200 and req_id > 0 for req_id, code in errors)


async def test_streams_tick_by_tick_trades_exactly_as_on_the_tape(
    make_gateway: GatewayFactory, connect: Connect
) -> None:
    gw = await make_gateway(source=synthetic(), speed=2000.0)
    ib = await connect(gw)
    contract = await front_month(ib)
    ticker = ib.reqTickByTickData(contract, "AllLast")
    received: list[tuple[float, float]] = []

    def collect(t: Ticker) -> None:
        received.extend((tick.price, tick.size) for tick in t.tickByTicks)

    ticker.updateEvent += collect
    await until(ib, lambda: len(received) >= 1000)
    ib.cancelTickByTickData(contract, "AllLast")
    tape = [(t.price, float(t.size)) for t in gw.history.trades.between(0, math.inf)]
    assert all(price % 0.25 == 0 and size > 0 for price, size in received)
    # what the client saw is one unbroken stretch of the gateway's tape
    start = next(i for i in range(len(tape)) if tape[i : i + 20] == received[:20])
    assert tape[start : start + len(received)] == received


async def test_bracket_fills_and_oca_sibling_is_cancelled(
    make_gateway: GatewayFactory, connect: Connect
) -> None:
    gw = await make_gateway()
    ib = await connect(gw, client_id=11)
    contract = await front_month(ib)
    parent, take_profit, stop_loss = ib.bracketOrder("BUY", 2, 5000.25, 5001.25, 4999.25)
    trades = [ib.placeOrder(contract, o) for o in (parent, take_profit, stop_loss)]
    p, tp, sl = trades
    await until(ib, lambda: p.orderStatus.status == "Filled")
    await until(ib, lambda: tp.orderStatus.status == sl.orderStatus.status == "Submitted")
    assert [f.execution.price for f in p.fills] == [5000.25]
    assert ib.positions()[0].position == 2

    gw.apply(quote(5001.25, 5001.5, bid_size=50))
    await until(
        ib, lambda: tp.orderStatus.status == "Filled" and sl.orderStatus.status == "Cancelled"
    )
    assert tp.orderStatus.avgFillPrice == 5001.25
    assert sum(f.execution.shares for f in tp.fills) == 2
    assert tp.fills[-1].commissionReport.commission == pytest.approx(4.5)
    assert tp.fills[-1].commissionReport.realizedPNL > 0
    assert sl.fills == []
    await until(ib, lambda: ib.positions() == [])  # ib_async drops flat positions


async def test_orders_keep_working_while_away_and_reconnect_reconciles(
    make_gateway: GatewayFactory, connect: Connect
) -> None:
    gw = await make_gateway()
    ib = await connect(gw, client_id=12)
    contract = await front_month(ib)
    orders = ib.bracketOrder("BUY", 1, 5000.25, 5002.0, 4998.0)
    for o in orders:
        o.orderRef = "intent-42"
    placed = [ib.placeOrder(contract, o) for o in orders]
    p = placed[0]
    await until(ib, lambda: p.orderStatus.status == "Filled")
    perm_ids = {t.order.permId for t in placed}
    parent_exec = p.fills[0].execution.execId
    ib.disconnect()

    # while the client is away the stop is hit at the broker
    gw.apply(quote(4998.0, 4998.25))
    gw.apply(TradeTick(gw.clock.now(), 4998.0, 3, aggressor=Side.SELL))

    ib2 = await connect(gw, client_id=12)
    fills = ib2.fills()
    assert parent_exec in {f.execution.execId for f in fills}
    assert len({f.execution.execId for f in fills}) == 2
    assert {f.execution.orderRef for f in fills} == {"intent-42"}
    stop_fill = next(f for f in fills if f.execution.execId != parent_exec)
    assert (stop_fill.execution.side, stop_fill.execution.price) == ("SLD", 4998.0)
    assert ib2.openTrades() == []
    assert ib2.positions() == []
    completed = await ib2.reqCompletedOrdersAsync(apiOnly=False)
    statuses = sorted(t.orderStatus.status for t in completed if t.order.permId in perm_ids)
    assert statuses == ["Cancelled", "Filled", "Filled"]


async def test_working_orders_are_returned_on_reconnect(
    make_gateway: GatewayFactory, connect: Connect
) -> None:
    gw = await make_gateway()
    ib = await connect(gw, client_id=13)
    contract = await front_month(ib)
    resting = ib.placeOrder(contract, LimitOrder("BUY", 1, 4990.0, orderRef="rest-1"))
    stop = ib.placeOrder(contract, StopOrder("SELL", 1, 4980.0, orderRef="stop-1"))
    await until(ib, lambda: resting.orderStatus.status == stop.orderStatus.status == "Submitted")
    ib.disconnect()
    ib2 = await connect(gw, client_id=13)
    open_refs = {t.order.orderRef: t for t in ib2.openTrades()}
    assert set(open_refs) == {"rest-1", "stop-1"}
    assert open_refs["rest-1"].order.permId == resting.order.permId
    assert open_refs["rest-1"].orderStatus.status == "Submitted"
    # the next id never reuses one the client already used
    assert ib2.client.getReqId() > stop.order.orderId


async def test_duplicate_order_id_and_off_grid_price_are_rejected(
    make_gateway: GatewayFactory, connect: Connect
) -> None:
    gw = await make_gateway()
    ib = await connect(gw, client_id=14)
    errors = collect_errors(ib)
    contract = await front_month(ib)
    off_grid = ib.placeOrder(contract, LimitOrder("BUY", 1, 4990.1))
    await until(ib, lambda: (off_grid.order.orderId, 110) in errors)
    first = ib.placeOrder(contract, LimitOrder("BUY", 1, 4990.0))
    await until(ib, lambda: first.orderStatus.status == "Submitted")
    ib.cancelOrder(first.order)
    await until(ib, lambda: first.orderStatus.status == "Cancelled")
    reused = LimitOrder("BUY", 1, 4989.0)
    reused.orderId = first.order.orderId  # a done order's id used for a new order
    ib.client.placeOrder(reused.orderId, contract, reused)
    await until(ib, lambda: (first.order.orderId, 103) in errors)


async def test_client_id_in_use_gets_326_and_is_freed_after_the_delay(
    make_gateway: GatewayFactory, connect: Connect
) -> None:
    now = [1000.0]
    gw = await make_gateway(client_id_release_delay=30.0)
    gw._wall = lambda: now[0]
    first = await connect(gw, client_id=21)
    second = IB()
    errors = collect_errors(second)
    with pytest.raises((TimeoutError, ConnectionError)):
        await second.connectAsync("127.0.0.1", gw.port, clientId=21, timeout=1)
    assert (-1, 326) in errors
    first.disconnect()
    await _closed_on_gateway(gw, 21)
    with pytest.raises((TimeoutError, ConnectionError)):
        await second.connectAsync("127.0.0.1", gw.port, clientId=21, timeout=1)
    now[0] += 30.0
    third = await connect(gw, client_id=21)
    assert third.isConnected()


async def _closed_on_gateway(gw: Gateway, client_id: int) -> None:
    async with asyncio.timeout(WAIT):
        while gw.session_of(client_id) is not None:
            await gw.session_ended.wait()


async def test_historical_ticks_and_bars_come_from_the_same_tape(
    make_gateway: GatewayFactory, connect: Connect
) -> None:
    gw = await make_gateway(source=ListSource(list(islice(synthetic(seed=3).events(), 8000))))
    await asyncio.wait_for(gw.market_done.wait(), WAIT)
    assert len(gw.history.trades) > 1000
    ib = await connect(gw)
    contract = await front_month(ib)
    ticks = await ib.reqHistoricalTicksAsync(
        contract, "20261120 08:30:00 US/Central", "", 5000, "TRADES", useRth=False
    )
    assert len(ticks) == 1000  # IB's cap per request
    tape = gw.history.trades.window(0, None, 1000)
    assert [(t.price, t.size) for t in ticks] == [(t.price, float(t.size)) for t in tape]
    quotes = await ib.reqHistoricalTicksAsync(
        contract, "20261120 08:30:00 US/Central", "", 10, "BID_ASK", useRth=False
    )
    assert all(q.priceBid < q.priceAsk for q in quotes)
    bars = await ib.reqHistoricalDataAsync(contract, "", "3600 S", "1 min", "TRADES", useRTH=False)
    assert bars
    total = sum(b.volume for b in bars)
    window_trades = gw.history.trades.between(bars[0].date.timestamp(), gw.clock.now() + 1)
    assert total <= sum(t.size for t in window_trades)
    assert all(b.low <= b.open <= b.high and b.low <= b.close <= b.high for b in bars)


async def test_what_if_order_is_evaluated_without_placing(
    make_gateway: GatewayFactory, connect: Connect
) -> None:
    gw = await make_gateway()
    ib = await connect(gw)
    contract = await front_month(ib)
    state = await ib.whatIfOrderAsync(contract, LimitOrder("BUY", 2, 5000.25))
    assert float(state.initMarginChange) > 0
    assert state.commission == 4.5
    assert gw.engine.open_orders() == []
    assert gw.engine.executions() == []


async def test_market_order_larger_than_displayed_size_fills_in_parts(
    make_gateway: GatewayFactory, connect: Connect
) -> None:
    gw = await make_gateway()
    ib = await connect(gw)
    contract = await front_month(ib)
    trade = ib.placeOrder(contract, MarketOrder("BUY", 15))
    await until(ib, lambda: trade.orderStatus.filled == 10)  # all the ask showed
    assert trade.orderStatus.status == "Submitted"
    assert trade.orderStatus.remaining == 5
    gw.apply(quote(5000.25, 5000.5, ask_size=8))
    await until(ib, lambda: trade.orderStatus.status == "Filled")
    assert [(f.execution.price, f.execution.shares) for f in trade.fills] == [
        (5000.25, 10.0),
        (5000.5, 5.0),
    ]
    assert trade.orderStatus.avgFillPrice == pytest.approx((10 * 5000.25 + 5 * 5000.5) / 15)


async def test_modify_keeps_the_order_and_reprices_it(
    make_gateway: GatewayFactory, connect: Connect
) -> None:
    gw = await make_gateway()
    ib = await connect(gw)
    contract = await front_month(ib)
    order = LimitOrder("BUY", 1, 4995.0)
    trade = ib.placeOrder(contract, order)
    await until(ib, lambda: trade.orderStatus.status == "Submitted")
    perm_id = trade.order.permId
    order.lmtPrice = 5000.25  # now marketable
    same = ib.placeOrder(contract, order)
    assert same is trade
    await until(ib, lambda: trade.orderStatus.status == "Filled")
    assert trade.order.permId == perm_id
    assert trade.fills[0].execution.price == 5000.25


async def test_global_cancel_and_all_open_orders_span_clients(
    make_gateway: GatewayFactory, connect: Connect
) -> None:
    gw = await make_gateway()
    a = await connect(gw, client_id=31)
    b = await connect(gw, client_id=32)
    contract = await front_month(a)
    mine = a.placeOrder(contract, LimitOrder("BUY", 1, 4990.0, orderRef="from-a"))
    await until(a, lambda: mine.orderStatus.status == "Submitted")
    assert b.openTrades() == []  # reqOpenOrders is per client
    everything = await b.reqAllOpenOrdersAsync()
    assert [t.order.orderRef for t in everything] == ["from-a"]
    b.reqGlobalCancel()
    await until(a, lambda: mine.orderStatus.status == "Cancelled")
    assert gw.engine.open_orders() == []


async def test_execution_filter_selects_by_side_and_time(
    make_gateway: GatewayFactory, connect: Connect
) -> None:
    gw = await make_gateway()
    ib = await connect(gw)
    contract = await front_month(ib)
    buy = ib.placeOrder(contract, MarketOrder("BUY", 1))
    sell = ib.placeOrder(contract, MarketOrder("SELL", 1))
    await until(ib, lambda: buy.isDone() and sell.isDone())
    sells = await ib.reqExecutionsAsync(ExecutionFilter(side="SELL"))
    assert [f.execution.side for f in sells] == ["SLD"]
    later = await ib.reqExecutionsAsync(ExecutionFilter(time="20261120 09:00:00 US/Central"))
    assert later == []
    mine = await ib.reqExecutionsAsync(ExecutionFilter(clientId=1))
    assert len(mine) == 2
    others = await ib.reqExecutionsAsync(ExecutionFilter(clientId=99))
    assert others == []
