"""Finished orders and unclaimed fills leave ib_async's wrapper after `keep_s`, live ones stay."""

from __future__ import annotations

import asyncio
import gc
import weakref
from collections.abc import Callable

from ib_async import IB, Future, LimitOrder, MarketOrder, StartupFetch

from daemon.broker.ib.finished_trades import FinishedTrades
from tests.daemon.broker.conftest import WAIT, ClientFactory, GatewayFactory


async def _until(ib: IB, predicate: Callable[[], bool]) -> None:
    async with asyncio.timeout(WAIT):
        while not predicate():
            await ib.updateEvent


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def test_finished_trades_go_after_keep_s_and_are_freed_without_a_collection(
    make_gateway: GatewayFactory, connect: ClientFactory
) -> None:
    gw = await make_gateway()
    ib = await connect(gw)
    (contract,) = await ib.qualifyContractsAsync(Future("ES", "202612", exchange="CME"))
    filled = ib.placeOrder(contract, MarketOrder("BUY", 1))
    resting = ib.placeOrder(contract, LimitOrder("BUY", 1, 4900.0))
    cancelled = ib.placeOrder(contract, LimitOrder("BUY", 1, 4901.0))
    await _until(ib, lambda: cancelled.orderStatus.status == "Submitted")
    ib.cancelOrder(cancelled.order)
    # A last fill, so that none of the IB-wide events still holds the first one as its value.
    last = ib.placeOrder(contract, MarketOrder("SELL", 1))
    await _until(
        ib,
        lambda: (
            cancelled.orderStatus.status == "Cancelled"
            and len(ib.fills()) == 2
            and all(f.commissionReport.commission for f in ib.fills())
        ),
    )
    assert filled.orderStatus.status == last.orderStatus.status == "Filled"
    clock = Clock()
    trim = FinishedTrades(clock, keep_s=60.0)
    assert trim.sweep(ib.wrapper) == 0  # just finished: a late message still finds its trade
    clock.now += 59.9
    assert trim.sweep(ib.wrapper) == 0
    assert len(ib.trades()) == 4

    first = weakref.ref(filled)
    perm_ids = {t.order.permId for t in (filled, cancelled, last)}
    del filled
    clock.now += 0.1
    gc.disable()  # freed by reference counting alone, not by a later full collection
    try:
        assert trim.sweep(ib.wrapper) == 3
        assert first() is None
    finally:
        gc.enable()
    assert ib.trades() == [resting]  # the working order stays, however old
    assert ib.fills() == []
    assert perm_ids.isdisjoint(ib.wrapper.permId2Trade)
    clock.now += 3600
    assert trim.sweep(ib.wrapper) == 0
    assert ib.trades() == [resting]

    # A trade dropped while finished and heard of again is an ib_async trade like any other.
    ib.cancelOrder(resting.order)
    await _until(ib, lambda: resting.orderStatus.status == "Cancelled")
    assert trim.sweep(ib.wrapper) == 0
    clock.now += 60
    assert trim.sweep(ib.wrapper) == 1
    assert ib.trades() == []
    assert trim.dropped_trades == 4


async def test_fills_no_trade_claims_go_after_keep_s(
    make_gateway: GatewayFactory, connect: ClientFactory
) -> None:
    gw = await make_gateway()
    trader = await connect(gw, client_id=1)
    (contract,) = await trader.qualifyContractsAsync(Future("ES", "202612", exchange="CME"))
    trade = trader.placeOrder(contract, MarketOrder("BUY", 2))
    await _until(trader, lambda: trade.orderStatus.status == "Filled")
    # Another client that asks for the executions but not for the completed orders.
    other = IB()
    await other.connectAsync(
        "127.0.0.1", gw.port, clientId=2, timeout=WAIT, fetchFields=StartupFetch.POSITIONS
    )
    try:
        reported = await asyncio.wait_for(other.reqExecutionsAsync(), WAIT)
        assert reported
        assert not other.wrapper.permId2Trade
        clock = Clock()
        trim = FinishedTrades(clock, keep_s=60.0)
        trim.sweep(other.wrapper)
        clock.now += 59
        trim.sweep(other.wrapper)
        assert len(other.fills()) == len(reported)
        clock.now += 1
        trim.sweep(other.wrapper)
        assert other.fills() == []
        assert trim.dropped_fills == len(reported)
    finally:
        other.disconnect()
    # The client that placed the order keeps its fill while its trade stays.
    assert len(trader.fills()) == len(reported)
