"""IB's reference client `ibapi` 9.81 (server version 157) against the answers beyond trading:
head timestamp, market rule, PnL, real-time bars, display groups, symbol search, and 200 for a
contract nobody lists."""

from __future__ import annotations

import asyncio
import itertools
import logging
from collections import defaultdict
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
from ibapi.common import BarData, ListOfContractDescription, ListOfPriceIncrements

from ibsim.gateway import Gateway
from tests.ibsim.conftest import GatewayFactory, synthetic
from tests.ibsim.test_e2e_answers import finite_tape
from tests.ibsim.test_e2e_ibapi import HOST, App, es_future, front_month, limit, place


class AnswersApp(App):
    """The recording ibapi client, with the callbacks of these answers."""

    def __init__(self) -> None:
        super().__init__()
        self.heads: dict[int, str] = {}
        self.rules: dict[int, list[tuple[float, float]]] = {}
        self.pnl_single: dict[int, tuple[Any, ...]] = {}
        self.rt_bars: dict[int, list[tuple[Any, ...]]] = defaultdict(list)
        self.groups: dict[int, list[str]] = defaultdict(list)
        self.samples: dict[int, list[tuple[str, str]]] = {}
        self.bars: dict[int, list[BarData]] = defaultdict(list)

    def headTimestamp(self, reqId: int, headTimestamp: str) -> None:
        with self._changing():
            self.heads[reqId] = headTimestamp

    def marketRule(self, marketRuleId: int, priceIncrements: ListOfPriceIncrements) -> None:
        with self._changing():
            self.rules[marketRuleId] = [(p.lowEdge, p.increment) for p in priceIncrements]

    def pnlSingle(self, reqId: int, *values: Any) -> None:
        with self._changing():
            self.pnl_single[reqId] = values

    def realtimeBar(self, reqId: int, *bar: Any) -> None:
        with self._changing():
            self.rt_bars[reqId].append(bar)

    def displayGroupList(self, reqId: int, groups: str) -> None:
        with self._changing():
            self.groups[reqId].append(groups)

    def displayGroupUpdated(self, reqId: int, contractInfo: str) -> None:
        with self._changing():
            self.groups[reqId].append(contractInfo)

    def symbolSamples(self, reqId: int, descriptions: ListOfContractDescription) -> None:
        with self._changing():
            self.samples[reqId] = [(d.contract.symbol, d.contract.secType) for d in descriptions]

    def historicalData(self, reqId: int, bar: BarData) -> None:
        with self._changing():
            self.bars[reqId].append(bar)

    def historicalDataEnd(self, reqId: int, start: str, end: str) -> None:
        with self._changing():
            self.ends.add(("historicalData", reqId))


Connect = Callable[..., Awaitable[AnswersApp]]


@pytest.fixture
async def answers_connect() -> AsyncIterator[Connect]:
    """Connected `AnswersApp`s; closed after the test, which fails if ibapi crashed or logged an
    error (a message it could not decode)."""
    apps: list[AnswersApp] = []
    logged: list[logging.LogRecord] = []
    handler = logging.Handler(logging.ERROR)
    handler.emit = logged.append  # type: ignore[method-assign]
    logging.getLogger("ibapi").addHandler(handler)

    async def _connect(gw: Gateway, client_id: int = 1) -> AnswersApp:
        app = AnswersApp()
        apps.append(app)
        await asyncio.to_thread(app.connect, HOST, gw.port, client_id)
        app.start()
        await app.until(lambda: app.next_id is not None and app.accounts is not None)
        return app

    try:
        yield _connect
    finally:
        for app in apps:
            await asyncio.to_thread(app.close)
        logging.getLogger("ibapi").removeHandler(handler)
    assert [a.crash for a in apps if a.crash is not None] == []
    assert [r.getMessage() for r in logged] == []


async def test_head_timestamp_and_market_rule(
    make_gateway: GatewayFactory, answers_connect: Connect
) -> None:
    gw = await finite_tape(make_gateway)
    app = await answers_connect(gw)
    contract = await front_month(app)
    req = app.req_id()
    await asyncio.to_thread(app.reqHeadTimeStamp, req, contract, "TRADES", 0, 2)
    await asyncio.to_thread(app.reqMarketRule, 67)
    await app.until(lambda: req in app.heads and 67 in app.rules)
    first = gw.history.trades.first()
    assert first is not None
    assert app.heads[req] == str(int(first.time))
    assert app.rules[67] == [(0.0, 0.25)]


async def test_pnl_single_of_a_filled_position(
    make_gateway: GatewayFactory, answers_connect: Connect
) -> None:
    gw = await make_gateway()  # 5000.00 / 5000.25
    app = await answers_connect(gw, 11)
    contract = await front_month(app)
    assert app.next_id is not None
    order_id = app.next_id
    await place(app, contract, [(order_id, limit("BUY", 2, 5000.25))])
    await app.until(lambda: app.status_of(order_id) == "Filled")
    req = app.req_id()
    await asyncio.to_thread(app.reqPnLSingle, req, "DU1234567", "", contract.conId)
    await app.until(lambda: req in app.pnl_single)
    position, daily, unrealized, realized, value = app.pnl_single[req]
    assert type(position) is int
    mark = (5000.0 + 5000.25) / 2  # no trade yet: the midpoint
    avg_cost = 5000.25 * 50 + 2.25
    assert (position, realized) == (2, 0.0)
    assert unrealized == daily == round(2 * mark * 50 - 2 * avg_cost, 2)
    assert value == 2 * mark * 50
    await asyncio.to_thread(app.cancelPnLSingle, req)


async def test_real_time_bars_match_the_tape(
    make_gateway: GatewayFactory, answers_connect: Connect
) -> None:
    gw = await make_gateway(source=synthetic(), speed=100.0)
    app = await answers_connect(gw)
    contract = await front_month(app)
    req = app.req_id()
    await asyncio.to_thread(app.reqRealTimeBars, req, contract, 5, "TRADES", False, [])
    await app.until(lambda: len(app.rt_bars[req]) >= 3)
    await asyncio.to_thread(app.cancelRealTimeBars, req)
    with app.cond:
        bars = list(app.rt_bars[req])
    for t, open_, high, low, close, volume, _wap, count in bars:
        tape = gw.history.trades.between(t, t + 5)
        prices = [x.price for x in tape]
        assert (open_, high, low, close) == (prices[0], max(prices), min(prices), prices[-1])
        assert (volume, count) == (sum(x.size for x in tape), len(tape))
        assert type(volume) is int


async def test_display_groups_reach_every_subscriber(
    make_gateway: GatewayFactory, answers_connect: Connect
) -> None:
    gw = await make_gateway()
    a = await answers_connect(gw, 1)
    b = await answers_connect(gw, 2)
    query, sub_a, sub_b = a.req_id(), a.req_id(), b.req_id()
    await asyncio.to_thread(a.queryDisplayGroups, query)
    await asyncio.to_thread(a.subscribeToGroupEvents, sub_a, 4)
    await asyncio.to_thread(b.subscribeToGroupEvents, sub_b, 4)
    await a.until(lambda: a.groups[query] == ["1|2|3|4|5|6|7"] and a.groups[sub_a] == [""])
    await b.until(lambda: b.groups[sub_b] == [""])
    await asyncio.to_thread(a.updateDisplayGroup, sub_a, f"{gw.front.con_id}@CME")
    await b.until(lambda: b.groups[sub_b][-1] == f"{gw.front.con_id}@CME")
    await a.until(lambda: a.groups[sub_a][-1] == f"{gw.front.con_id}@CME")


async def test_unknown_contract_is_200_and_symbol_search_finds_es(
    make_gateway: GatewayFactory, answers_connect: Connect
) -> None:
    gw = await make_gateway()
    app = await answers_connect(gw)
    unknown = es_future(symbol="ZZZZQ")
    ids = itertools.count(app.req_id())
    bars, head, search, none = next(ids), next(ids), next(ids), next(ids)

    def send() -> None:
        app.reqHistoricalData(bars, unknown, "", "600 S", "1 min", "TRADES", 0, 1, False, [])
        app.reqHeadTimeStamp(head, unknown, "TRADES", 0, 1)
        app.reqMatchingSymbols(search, "ES")
        app.reqMatchingSymbols(none, "QQQQQ")

    await asyncio.to_thread(send)
    await app.until(lambda: search in app.samples and none in app.samples)
    await app.until(lambda: {(bars, 200), (head, 200)} <= {(r, c) for r, c, _ in app.errors})
    assert app.samples[search] == [("ES", "IND")]
    assert app.samples[none] == []
    assert ("historicalData", bars) not in app.ends
