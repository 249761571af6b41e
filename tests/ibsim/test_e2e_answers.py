"""Unmodified ib_async against the gateway: the answers beyond the trading core.

Head timestamps, market rules, real-time bars, keepUpToDate, PnL, CLOSE/OPEN ticks, each
expiry's own market, unknown contracts, and the reference lookups.
"""

from __future__ import annotations

import asyncio
import math
from collections import Counter
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from itertools import islice

import pytest
from ib_async import IB, Contract, Future, LimitOrder, MarketOrder, Stock
from ib_async.objects import PriceIncrement

from ibsim.gateway import Gateway
from ibsim.model import QuoteTick, Side, TradeTick
from tests.ibsim.conftest import (
    START,
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
ACCOUNT = "DU1234567"
UNKNOWN = Stock("ZZZZQ", "SMART", "USD")


def message_tap(ib: IB) -> list[int]:
    """Ids of the messages the client decodes from now on."""
    seen: list[int] = []
    decoder = ib.client.decoder
    interpret = decoder.interpret

    def record(fields: list[str]) -> None:
        seen.append(int(fields[0]))
        interpret(fields)

    decoder.interpret = record  # type: ignore[method-assign]
    return seen


async def expiries(ib: IB) -> list[Contract]:
    """The four listed expiries, nearest first (ESZ6, ESH7, ESM7, ESU7 at START)."""
    return [d.contract for d in await ib.reqContractDetailsAsync(Future("ES", exchange="CME"))]


async def finite_tape(make_gateway: GatewayFactory, events: int = 6000) -> Gateway:
    """A gateway that has served `events` synthetic events, all of them now history."""
    gw = await make_gateway(source=ListSource(list(islice(synthetic(seed=3).events(), events))))
    await asyncio.wait_for(gw.market_done.wait(), WAIT)
    return gw


def at(gw: Gateway, event: QuoteTick | TradeTick) -> None:
    """Serve `event` with the gateway's clock moved to its time (an unpaced source)."""
    gw.clock.advance_to(event.time)
    gw.apply(event)


# --- head timestamp, market rule, histogram ---


async def test_head_timestamp_is_the_first_trade_of_the_tape(
    make_gateway: GatewayFactory, connect: Connect
) -> None:
    gw = await finite_tape(make_gateway)
    ib = await connect(gw)
    front, back = (await expiries(ib))[:2]
    first = gw.history.trades.first()
    assert first is not None
    head = await ib.reqHeadTimeStampAsync(front, "TRADES", useRTH=False, formatDate=1)
    assert isinstance(head, datetime)
    assert head.timestamp() == math.floor(first.time)
    assert head.tzinfo is not None
    epoch = await ib.reqHeadTimeStampAsync(front, "TRADES", useRTH=False, formatDate=2)
    assert epoch == datetime.fromtimestamp(math.floor(first.time), UTC)
    quotes = await ib.reqHeadTimeStampAsync(front, "BID_ASK", useRTH=False, formatDate=2)
    assert quotes.timestamp() == math.floor(START)  # the first event is a quote
    later = await ib.reqHeadTimeStampAsync(back, "TRADES", useRTH=False, formatDate=2)
    assert later.timestamp() >= math.floor(first.time)  # the back month trades less


async def test_market_rule_67_is_the_quarter_point_and_other_rules_are_refused(
    make_gateway: GatewayFactory, connect: Connect
) -> None:
    gw = await make_gateway()
    ib = await connect(gw)
    errors = collect_errors(ib)
    (details,) = await ib.reqContractDetailsAsync(Future("ES", "202612", exchange="CME"))
    assert details.marketRuleIds == "67,67"
    assert await ib.reqMarketRuleAsync(67) == [PriceIncrement(lowEdge=0.0, increment=0.25)]
    assert await ib.reqMarketRuleAsync(4242) is None  # ib_async gives up after 1 s
    assert (-1, 321) in errors


async def test_histogram_is_the_volume_at_each_price(
    make_gateway: GatewayFactory, connect: Connect
) -> None:
    gw = await finite_tape(make_gateway)
    ib = await connect(gw)
    contract = await front_month(ib)
    histogram = await ib.reqHistogramDataAsync(contract, False, "1 day")
    volume: Counter[float] = Counter()
    for t in gw.history.trades.between(gw.tape_time() - 86400, math.inf):
        volume[t.price] += t.size
    assert {h.price: h.count for h in histogram} == volume
    assert len(volume) > 5


# --- real-time bars and keepUpToDate ---


async def test_real_time_bars_are_the_tape_in_five_second_buckets(
    make_gateway: GatewayFactory, connect: Connect
) -> None:
    gw = await make_gateway(source=synthetic(), speed=100.0)
    ib = await connect(gw)
    contract = await front_month(ib)
    trades = ib.reqRealTimeBars(contract, 5, "TRADES", False)
    mids = ib.reqRealTimeBars(contract, 5, "MIDPOINT", False)
    await until(ib, lambda: len(trades) >= 4 and len(mids) >= 2)
    ib.cancelRealTimeBars(trades)
    ib.cancelRealTimeBars(mids)
    for bar in list(trades):
        t = bar.time.timestamp()
        assert t % 5 == 0
        tape = gw.history.trades.between(t, t + 5)
        prices = [x.price for x in tape]
        assert (bar.open_, bar.high, bar.low, bar.close) == (
            prices[0],
            max(prices),
            min(prices),
            prices[-1],
        )
        assert (bar.volume, bar.count) == (sum(x.size for x in tape), len(tape))
        assert bar.wap == pytest.approx(sum(x.price * x.size for x in tape) / bar.volume)
    assert all(b.volume == -1 and b.count == -1 and b.low <= b.high for b in mids)
    assert all(b.close % 0.125 == 0 for b in mids)  # a midpoint of quarter-point quotes


async def test_real_time_bars_refuse_another_bar_size(
    make_gateway: GatewayFactory, connect: Connect
) -> None:
    gw = await make_gateway()
    ib = await connect(gw)
    errors = collect_errors(ib)
    contract = await front_month(ib)
    bars = ib.reqRealTimeBars(contract, 10, "TRADES", False)
    await until(ib, lambda: (bars.reqId, 420) in errors)


async def test_keep_up_to_date_streams_the_forming_bar_until_cancelled(
    make_gateway: GatewayFactory, connect: Connect
) -> None:
    gw = await make_gateway()
    ib = await connect(gw)
    contract = await front_month(ib)
    at(gw, TradeTick(START + 1, 5000.25, 2, Side.BUY))
    bars = await ib.reqHistoricalDataAsync(
        contract, "", "600 S", "1 min", "TRADES", useRTH=False, keepUpToDate=True
    )
    assert [(b.close, b.volume) for b in bars] == [(5000.25, 2)]
    at(gw, TradeTick(START + 20, 5001.0, 3, Side.BUY))
    await until(ib, lambda: (bars[-1].close, bars[-1].volume) == (5001.0, 5))
    assert (len(bars), bars[-1].high, bars[-1].barCount) == (1, 5001.0, 2)
    at(gw, TradeTick(START + 65, 4999.5, 1, Side.SELL))  # the next minute
    await until(ib, lambda: len(bars) == 2)
    assert bars[-1].date.timestamp() == START + 60
    assert (bars[-1].open, bars[-1].volume) == (4999.5, 1)

    seen = message_tap(ib)
    ib.cancelHistoricalData(bars)
    await ib.reqCurrentTimeAsync()  # the cancel has been read
    at(gw, TradeTick(START + 70, 4999.0, 4, Side.SELL))
    gw.streams.tick(gw.tape_time())  # what the 250 ms sampler does
    await ib.reqCurrentTimeAsync()  # anything the gateway sent is in by now
    assert 90 not in seen


async def test_keep_up_to_date_with_an_end_date_is_refused(
    make_gateway: GatewayFactory, connect: Connect
) -> None:
    gw = await make_gateway()
    ib = await connect(gw)
    errors = collect_errors(ib)
    contract = await front_month(ib)
    req_id = ib.client.getReqId()  # ib_async takes 321 for a warning and would wait on
    ib.client.reqHistoricalData(
        req_id, contract, "20261120 08:30:00 US/Central", "600 S", "1 min", "TRADES", 0, 1,
        True, [],
    )  # fmt: skip
    await until(ib, lambda: (req_id, 321) in errors)


# --- market data: CLOSE, OPEN, last timestamp, the session roll ---


async def test_close_is_the_previous_settlement_and_the_session_rolls(
    make_gateway: GatewayFactory, connect: Connect
) -> None:
    gw = await make_gateway()  # one quote at Friday 08:30 CT: 5000.00 / 5000.25
    ib = await connect(gw)
    contract = await front_month(ib)
    ticker = ib.reqMktData(contract)
    await until(ib, lambda: ticker.close == 5000.0)  # no session seen yet: the first price
    at(gw, TradeTick(START + 3600, 5003.0, 2, Side.BUY))
    await until(ib, lambda: ticker.last == 5003.0)
    assert (ticker.open, ticker.lastTimestamp.timestamp()) == (5003.0, START + 3600)
    # settlement: the VWAP of 14:59:30-15:00:00 CT (6.5 h after 08:30)
    at(gw, TradeTick(START + 23390, 5010.0, 1, Side.BUY))
    at(gw, TradeTick(START + 23395, 5011.0, 3, Side.BUY))
    at(gw, TradeTick(START + 23410, 5020.0, 5, Side.BUY))  # after 15:00: not in it
    await until(ib, lambda: ticker.volume == 11)
    sunday_open = START + 2 * 86400 + 8.5 * 3600  # Sunday 17:00 CT: Monday's session
    at(gw, QuoteTick(sunday_open + 1, 5020.0, 5020.25, 10, 10))
    await until(ib, lambda: ticker.close == 5010.75 and ticker.volume == 0)
    at(gw, TradeTick(sunday_open + 2, 5020.25, 1, Side.BUY))
    await until(ib, lambda: ticker.open == 5020.25 and ticker.volume == 1)


# --- PnL ---


async def test_pnl_follows_the_position_and_the_mark(
    make_gateway: GatewayFactory, connect: Connect
) -> None:
    gw = await make_gateway()
    ib = await connect(gw)
    contract = await front_month(ib)
    buy = ib.placeOrder(contract, MarketOrder("BUY", 2))
    await until(ib, lambda: buy.orderStatus.status == "Filled")
    gw.apply(TradeTick(START, 5002.0, 1, Side.BUY))  # the mark
    account = ib.reqPnL(ACCOUNT)
    single = ib.reqPnLSingle(ACCOUNT, "", contract.conId)
    avg_cost = 5000.25 * 50 + 2.25  # IB's average cost of a future: price x 50 + commission
    unrealized = 2 * 5002.0 * 50 - 2 * avg_cost
    await until(ib, lambda: single.position == 2 and account.unrealizedPnL == unrealized)
    assert (single.unrealizedPnL, single.realizedPnL, single.value) == (unrealized, 0.0, 500200.0)
    assert single.dailyPnL == account.dailyPnL == unrealized  # all of it was made today
    sell = ib.placeOrder(contract, MarketOrder("SELL", 2))  # at the bid, 5000.00
    await until(ib, lambda: sell.orderStatus.status == "Filled")
    realized = 2 * (5000.0 * 50 - avg_cost) - 4.5
    await until(ib, lambda: single.position == 0 and account.realizedPnL == realized)
    assert (single.realizedPnL, single.unrealizedPnL, single.value) == (realized, 0.0, 0.0)
    assert account.dailyPnL == account.realizedPnL == realized


async def test_pnl_for_an_unknown_account_or_contract_is_refused(
    make_gateway: GatewayFactory, connect: Connect
) -> None:
    gw = await make_gateway()
    ib = await connect(gw)
    errors = collect_errors(ib)
    ib.reqPnL("U0000000")
    ib.reqPnLSingle(ACCOUNT, "", 12345)
    await until(ib, lambda: len(errors) == 2)
    assert sorted(code for _, code in errors) == [200, 321]


# --- contracts: unknown ones, and each expiry's own market ---


async def test_an_unknown_contract_is_200_for_data_and_orders(
    make_gateway: GatewayFactory, connect: Connect
) -> None:
    gw = await finite_tape(make_gateway, 2000)
    ib = await connect(gw, client_id=7)
    errors = collect_errors(ib)
    assert not await ib.reqHistoricalDataAsync(UNKNOWN, "", "600 S", "1 min", "TRADES", False)
    assert await ib.reqHistoricalTicksAsync(UNKNOWN, "", gw.clock.now(), 10, "TRADES", False) == []
    assert await ib.reqHeadTimeStampAsync(UNKNOWN, "TRADES", False, 1) == []
    mkt, tbt = ib.client.getReqId(), ib.client.getReqId()  # ib_async's Ticker needs a conId
    ib.client.reqMktData(mkt, UNKNOWN, "", False, False, [])
    ib.client.reqTickByTickData(tbt, UNKNOWN, "AllLast", 0, False)
    bars = ib.reqRealTimeBars(UNKNOWN, 5, "TRADES", False)
    order = ib.placeOrder(UNKNOWN, LimitOrder("BUY", 1, 10.0))
    await until(ib, lambda: order.orderStatus.status == "Cancelled")
    refused = [r for r, c in errors if c == 200]
    assert len(refused) == 7
    assert {mkt, tbt, bars.reqId, order.order.orderId} <= set(refused)
    # ES alone is ambiguous for a request that needs one contract
    assert not await ib.reqHistoricalDataAsync(Future("ES"), "", "60 S", "1 min", "TRADES", False)


async def test_an_order_is_validated_before_its_contract_and_its_id_is_spent(
    make_gateway: GatewayFactory, connect: Connect
) -> None:
    gw = await make_gateway()
    ib = await connect(gw, client_id=8)
    errors = collect_errors(ib)
    # ib_async's own test against a live TWS: Stock("XXX") (no exchange) is 321, not 200
    no_exchange = ib.placeOrder(Stock("XXX"), MarketOrder("BUY", 100))
    unknown = ib.placeOrder(UNKNOWN, MarketOrder("BUY", 1))
    await until(ib, lambda: unknown.orderStatus.status == "Cancelled")
    assert (no_exchange.order.orderId, 321) in errors
    assert (no_exchange.order.orderId, 200) not in errors
    assert (unknown.order.orderId, 200) in errors
    ib.disconnect()
    await _gone(gw, 8)
    again = await connect(gw, client_id=8)
    assert again.client.getReqId() > unknown.order.orderId  # the refused ids are spent
    errors = collect_errors(again)
    contract = await front_month(again)
    reuse = LimitOrder("BUY", 1, 4990.0)
    reuse.orderId = no_exchange.order.orderId
    again.client.placeOrder(reuse.orderId, contract, reuse)
    await until(again, lambda: (reuse.orderId, 103) in errors)


async def _gone(gw: Gateway, client_id: int) -> None:
    async with asyncio.timeout(WAIT):
        while gw.session_of(client_id) is not None:
            await gw.session_ended.wait()


async def test_each_expiry_has_its_own_market(
    make_gateway: GatewayFactory, connect: Connect
) -> None:
    gw = await finite_tape(make_gateway, 20000)
    ib = await connect(gw)
    errors = collect_errors(ib)
    front, second, _, fourth = await expiries(ib)
    args = ("", "3600 S", "1 min", "TRADES", False)
    near = await ib.reqHistoricalDataAsync(front, *args)
    far = await ib.reqHistoricalDataAsync(second, *args)
    assert near
    assert far
    assert sum(b.volume for b in far) < sum(b.volume for b in near) / 10  # thinner
    spread = 37.5  # 5000 x 3 % a year x a quarter
    front_prices = {t.price for t in gw.history.trades.between(0, math.inf)}
    assert {b.close - spread for b in far} <= front_prices
    assert [b.close for b in far] != [b.close for b in near]
    assert not await ib.reqHistoricalDataAsync(fourth, *args)  # next to no trade, a year out
    assert [c for _, c in errors] == [162]


async def test_a_back_month_streams_quotes_and_fills_orders(
    make_gateway: GatewayFactory, connect: Connect
) -> None:
    gw = await make_gateway()  # 5000.00 / 5000.25, 10 x 10
    ib = await connect(gw)
    back = (await expiries(ib))[1]  # ESH7: 37.50 above at 5000
    ticker = ib.reqMktData(back)
    await until(ib, lambda: (ticker.bid, ticker.ask, ticker.close) == (5037.5, 5037.75, 5037.5))
    assert ticker.bidSize == 1  # 10 x 2 % ** 0.5, rounded
    gw.apply(quote(5001.0, 5001.25, 40, 40))
    await until(ib, lambda: (ticker.bid, ticker.bidSize) == (5038.5, 6))
    trade = ib.placeOrder(back, MarketOrder("BUY", 1))
    await until(ib, lambda: trade.orderStatus.status == "Filled")
    assert trade.fills[0].execution.price == 5038.75
    assert trade.contract.localSymbol == "ESH7"


# --- reference lookups ---


async def test_reference_lookups_answer_from_the_listing(
    make_gateway: GatewayFactory, connect: Connect
) -> None:
    gw = await make_gateway()
    ib = await connect(gw)
    errors = collect_errors(ib)
    contract = await front_month(ib)
    (found,) = await ib.reqMatchingSymbolsAsync("es")
    assert (found.contract.symbol, found.contract.secType, found.contract.conId) == (
        "ES",
        "IND",
        11004968,
    )
    assert found.derivativeSecTypes == ["FUT"]
    assert await ib.reqMatchingSymbolsAsync("S&P") != []
    assert await ib.reqMatchingSymbolsAsync("ZZZZQ") == []
    assert await ib.reqSecDefOptParamsAsync("ES", "CME", "FUT", contract.conId) == []
    assert await ib.reqMktDepthExchangesAsync() == []
    assert await ib.reqNewsProvidersAsync() == []
    assert await ib.reqSmartComponentsAsync("a6") == []
    assert await ib.reqUserInfoAsync() == []  # its answer carries no data ib_async keeps
    assert await ib.reqScannerParametersAsync() != ""
    assert not await ib.reqFundamentalDataAsync(contract, "ReportSnapshot")
    assert [code for _, code in errors] == [430]
