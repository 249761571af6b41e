"""The product the market drives (`GatewayConfig.symbol`, `ibsim --symbol`): its prices on its own
tick grid, orders checked against each product's tick, 354 for the products not driven, and
replay files refused when their prices are not the product's."""

from __future__ import annotations

import asyncio
import itertools
import math
import signal
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest
from ib_async import IB, Contract, Future, LimitOrder, StopOrder, Ticker

from ibsim.gateway import Gateway, GatewayConfig
from ibsim.market import (
    ReplayFileError,
    ReplaySource,
    SyntheticSource,
    load_recording,
    load_trades_csv,
)
from ibsim.matching import MatchingEngine
from ibsim.model import (
    EngineEvent,
    Faults,
    FillEvent,
    OrderRequest,
    OrderType,
    QuoteTick,
    Side,
    TradeTick,
)
from ibsim.products import PRODUCTS
from tests.ibsim.conftest import (
    START,
    WAIT,
    GatewayFactory,
    ListSource,
    collect_errors,
    quote,
    run_ibsim,
    until,
)

Connect = Callable[..., Awaitable[IB]]
CSV_HEADER = "time_ct,price,size\n"


def on_grid(price: float, per_point: int) -> bool:
    """`price` is exactly the double of a grid price (2300.1, not 2300.1000000000004)."""
    return round(price * per_point) / per_point == price


def ticks_between(low: float, high: float, per_point: int) -> int:
    return round((high - low) * per_point)


async def front(ib: IB, symbol: str, exchange: str = "CME") -> Contract:
    (contract,) = await ib.qualifyContractsAsync(Future(symbol, "202612", exchange=exchange))
    return contract


def stream(ib: IB, contract: Contract) -> tuple[list[float], list[tuple[float, float]]]:
    """Trade prices and (bid, ask) quotes as the client receives them tick by tick."""
    trades: list[float] = []
    quotes: list[tuple[float, float]] = []

    def collect(t: Ticker) -> None:
        for tick in t.tickByTicks:
            if hasattr(tick, "bidPrice"):
                quotes.append((tick.bidPrice, tick.askPrice))
            else:
                trades.append(tick.price)

    ib.reqTickByTickData(contract, "AllLast").updateEvent += collect
    ib.reqTickByTickData(contract, "BidAsk").updateEvent += collect
    return trades, quotes


# --- the driven product's market ---


async def test_mes_bracket_fills_and_books_mes_points(
    make_gateway: GatewayFactory, connect: Connect
) -> None:
    """A bracket on MES fills like one on ES, and the money is MES's: $5 a point."""
    gw = await make_gateway(symbol="MES")
    ib = await connect(gw, client_id=11)
    contract = await front(ib, "MES")
    assert (contract.localSymbol, contract.conId) == ("MESZ6", gw.front.con_id)
    parent, take_profit, stop_loss = ib.bracketOrder("BUY", 2, 5000.25, 5001.25, 4999.25)
    p, tp, sl = [ib.placeOrder(contract, o) for o in (parent, take_profit, stop_loss)]
    await until(ib, lambda: p.orderStatus.status == "Filled")
    await until(ib, lambda: tp.orderStatus.status == sl.orderStatus.status == "Submitted")
    await until(ib, lambda: bool(ib.positions()))
    (position,) = ib.positions()
    assert position.avgCost == pytest.approx(5000.25 * 5 + 2.25)  # IB's avgCost: price x mult

    gw.apply(quote(5001.25, 5001.5, bid_size=50))
    await until(ib, lambda: tp.orderStatus.status == "Filled")
    await until(ib, lambda: sl.orderStatus.status == "Cancelled")
    # 1 point x $5 x 2 contracts, less 4 commissions of 2.25
    assert tp.fills[-1].commissionReport.realizedPNL == pytest.approx(10.0 - 9.0)


async def test_rty_trades_and_quotes_stay_on_its_tenth_point_grid(
    make_gateway: GatewayFactory, connect: Connect
) -> None:
    source = SyntheticSource(seed=5, start_time=START, start_price=2300.0, tick_size=0.1)
    gw = await make_gateway(source=source, speed=2000.0, symbol="RTY")
    ib = await connect(gw)
    trades, quotes = stream(ib, await front(ib, "RTY"))
    await until(ib, lambda: len(trades) >= 200 and len(quotes) >= 200)
    assert all(on_grid(p, 10) for p in trades)
    assert all(on_grid(b, 10) and on_grid(a, 10) for b, a in quotes)
    assert {ticks_between(b, a, 10) for b, a in quotes} <= {1, 2}  # one tick, briefly two
    assert all(2200.0 < p < 2400.0 for p in trades)  # RTY's level, not ES's


async def test_replayed_rty_quotes_are_one_tick_around_each_trade(tmp_path: Path) -> None:
    path = tmp_path / "rty.csv"
    rows = ["2026-11-20 08:30:00,2345.3,2", "2026-11-20 08:30:00,2345.3,1"]
    rows += ["2026-11-20 08:30:01,2345.4,3", "2026-11-20 08:30:02,2345.1,1"]
    path.write_text(CSV_HEADER + "\n".join(rows) + "\n")
    source = ReplaySource(load_trades_csv(path, PRODUCTS["RTY"]), seed=1, tick_size=0.1)
    book: QuoteTick | None = None
    served = []
    for event in source.events():
        if isinstance(event, QuoteTick):
            assert on_grid(event.bid, 10)
            assert on_grid(event.ask, 10)
            assert ticks_between(event.bid, event.ask, 10) == 1
            book = event
        else:
            assert book is not None
            assert event.price == (book.ask if event.aggressor.value == "BUY" else book.bid)
            served.append((event.price, event.size))
    assert served == [(2345.3, 2), (2345.3, 1), (2345.4, 3), (2345.1, 1)]


# --- orders: each product's own tick ---


async def test_rty_limit_off_its_grid_is_110_and_other_products_use_their_own_tick(
    make_gateway: GatewayFactory, connect: Connect
) -> None:
    gw = await make_gateway(source=ListSource([quote(2345.2, 2345.3)]), symbol="RTY")
    ib = await connect(gw, client_id=14)
    errors = collect_errors(ib)
    rty = await front(ib, "RTY")
    off = ib.placeOrder(rty, LimitOrder("BUY", 1, 2345.35))  # 0.25 would be fine on ES
    stop_off = ib.placeOrder(rty, StopOrder("SELL", 1, 2344.95))
    resting = ib.placeOrder(rty, LimitOrder("BUY", 1, 2345.1))
    taking = ib.placeOrder(rty, LimitOrder("BUY", 1, 2345.3))
    await until(ib, lambda: taking.orderStatus.status == "Filled")
    await until(ib, lambda: resting.orderStatus.status == "Submitted")
    refused = {(off.order.orderId, 110), (stop_off.order.orderId, 110)}
    await until(ib, lambda: refused <= set(errors))
    assert taking.fills[0].execution.price == 2345.3

    # Products with no market here are still checked against their own tick.
    ym = await front(ib, "YM", "CBOT")
    es = await front(ib, "ES")
    ym_off = ib.placeOrder(ym, LimitOrder("BUY", 1, 40000.5))
    es_ok = ib.placeOrder(es, LimitOrder("BUY", 1, 4990.25))  # off RTY's grid, on ES's
    await until(ib, lambda: (ym_off.order.orderId, 110) in errors)
    await until(ib, lambda: es_ok.orderStatus.status == "Submitted")
    assert (es_ok.order.orderId, 110) not in errors


def test_trailing_stop_limit_on_rty_ratchets_and_fills_on_exact_grid_prices() -> None:
    """Stops and limits computed by the engine are the grid's doubles (2345.8, not
    2345.7999999999997), so what OPEN_ORDER and the fills show is a price RTY can trade at."""
    clock = [START]
    engine = MatchingEngine(lambda: clock[0], Faults(), tick_size=0.1, multiplier=50)
    rty = 1

    def trade(price: float) -> list[EngineEvent]:
        clock[0] += 1
        return engine.on_trade(rty, TradeTick(clock[0], price, 1, Side.BUY))

    engine.on_quote(rty, QuoteTick(clock[0], 2345.2, 2345.3, 10, 10))
    req = OrderRequest(1, 1, rty, Side.SELL, 1, OrderType.TRAIL_LIMIT, aux_price=0.3)
    req.lmt_price_offset = 0.2
    engine.place(req)
    stops = []
    for price in (2345.4, 2345.7, 2346.1, 2345.9):
        trade(price)
        order = engine.order(1, 1)
        assert order is not None
        stops.append(order.trail_stop)
    assert stops == [2345.1, 2345.4, 2345.8, 2345.8]
    engine.on_quote(rty, QuoteTick(clock[0], 2345.5, 2345.6, 10, 10))  # below the limit
    trade(2345.8)  # elects: the limit is 2345.8 - 0.2
    fills = [e for e in trade(2345.7) if isinstance(e, FillEvent)]  # prints through it
    assert [f.execution.price for f in fills] == [2345.6]
    assert all(on_grid(x, 10) for x in stops)


# --- market data of the products not driven ---


async def test_products_not_driven_are_not_subscribed(
    make_gateway: GatewayFactory, connect: Connect
) -> None:
    gw = await make_gateway()  # drives ES
    ib = await connect(gw)
    seen: list[tuple[int, int, str]] = []
    ib.errorEvent += lambda req_id, code, text, *_: seen.append((req_id, code, text))
    nq, ym = await front(ib, "NQ"), await front(ib, "YM", "CBOT")

    live = ib.reqMktData(nq)
    ib.reqTickByTickData(nq, "AllLast")
    bars = await ib.reqHistoricalDataAsync(ym, "", "1800 S", "1 min", "TRADES", False)
    ib.reqRealTimeBars(nq, 5, "TRADES", False)
    es_trades, _ = stream(ib, await front(ib, "ES"))
    await ib.reqCurrentTimeAsync()  # answered in order: every request above has arrived
    gw.apply(TradeTick(START, 5000.25, 1, Side.BUY))
    await until(ib, lambda: len(es_trades) >= 1)  # the driven product still streams
    await until(ib, lambda: len(seen) >= 4)
    assert [c for _, c, _ in seen].count(354) == 2  # reqMktData and tick-by-tick
    assert len(bars) == 0
    assert any(c == 162 and "No market data permissions for CBOT FUT" in t for _, c, t in seen)
    assert any(c == 420 and "No market data permissions for CME FUT" in t for _, c, t in seen)
    assert math.isnan(live.last)


# --- the real process ---


@pytest.fixture
async def ibsim_rty() -> AsyncIterator[int]:
    """`python -m ibsim --symbol rty`, synthetic at 20x from 2026-11-20 08:30 CT; its port."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "ibsim", "--port", "0", "--symbol", "rty",
        "--start", "20261120 08:30:00", "--speed", "20", "--seed", "3",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    assert proc.stdout is not None
    try:
        yield int(await asyncio.wait_for(proc.stdout.readline(), WAIT))
    finally:
        proc.send_signal(signal.SIGTERM)
        await asyncio.wait_for(proc.communicate(), WAIT)
    assert proc.returncode == 0


async def test_ibsim_symbol_rty_serves_rty(ibsim_rty: int) -> None:
    asyncio.set_event_loop(asyncio.get_running_loop())
    ib = IB()
    await ib.connectAsync("127.0.0.1", ibsim_rty, clientId=5, timeout=WAIT)
    try:
        errors = collect_errors(ib)
        listing = await ib.reqContractDetailsAsync(Future("RTY", exchange="CME"))
        contract = listing[0].contract
        assert (contract.localSymbol, listing[0].minTick) == ("RTYZ6", 0.1)
        trades, quotes = stream(ib, contract)
        await until(ib, lambda: len(trades) >= 20 and len(quotes) >= 20)
        assert all(on_grid(p, 10) and 2200.0 < p < 2400.0 for p in trades)
        assert {ticks_between(b, a, 10) for b, a in quotes} <= {1, 2}

        _, ask = quotes[-1]
        entry = round(ask + 5, 1)  # marketable: fills at the ask
        orders = ib.bracketOrder("BUY", 1, entry, round(entry + 30, 1), round(entry - 30, 1))
        p, tp, sl = [ib.placeOrder(contract, o) for o in orders]
        await until(ib, lambda: p.orderStatus.status == "Filled")
        await until(ib, lambda: tp.orderStatus.status == sl.orderStatus.status == "Submitted")
        assert on_grid(p.fills[0].execution.price, 10)

        off = ib.placeOrder(contract, LimitOrder("BUY", 1, 2345.35))
        await until(ib, lambda: (off.order.orderId, 110) in errors)
        other = await ib.reqContractDetailsAsync(Future("ES", "202612", exchange="CME"))
        assert other[0].minTick == 0.25  # the family is listed; only RTY is driven
    finally:
        ib.disconnect()


# --- replay files that are not the product's prices ---


async def test_replay_off_the_products_grid_is_refused_naming_the_line(tmp_path: Path) -> None:
    rty = tmp_path / "rty.csv"
    rty.write_text(CSV_HEADER + "2026-11-20 08:30:00,2345.3,1\n2026-11-20 08:30:01,2345.35,2\n")
    code, out, err = await run_ibsim("--symbol", "RTY", "--source", "replay", "--ticks", str(rty))
    assert (code, out) == (2, b"")
    assert f"{rty}, line 3, column price: price '2345.35' is not a multiple of 0.1" in err.decode()
    assert "(the RTY tick)" in err.decode()

    es = tmp_path / "es.csv"  # ES quarter points are not YM's whole points
    es.write_text(CSV_HEADER + "2026-11-20 08:30:00,5000.0,1\n2026-11-20 08:30:01,5000.25,2\n")
    code, _, err = await run_ibsim("--symbol", "YM", "--source", "replay", "--ticks", str(es))
    assert code == 2
    assert "line 3, column price: price '5000.25' is not a multiple of 1.0 (the YM tick)" in (
        err.decode()
    )


RECORDING = "# orderflowd recording v1\n" + (
    "kind,exchange_time,received,price,size,mask,bid,ask,bid_size,ask_size,mode\n"
)


def test_a_recording_is_held_to_the_grid_by_its_quotes(tmp_path: Path) -> None:
    """A recording keeps bad prints for the client's guards (an off-grid trade replays), but a
    book off the product's grid is another product's recording: refused, line and column named."""
    t = START
    good = tmp_path / "RTY-2026-11-20.csv"
    good.write_text(
        RECORDING
        + f"Q,{t},1.0,,,,2345.2,2345.3,5.0,7.0,tick-by-tick\n"
        + f"T,{t + 1},2.0,2345.3,1.0,0,,,,,tick-by-tick\n"
        + f"T,{t + 2},3.0,2345.35,1.0,0,,,,,tick-by-tick\n"  # a bad print, kept
    )
    events, _ = load_recording(good, PRODUCTS["RTY"])
    assert [e.price for e in events if isinstance(e, TradeTick)] == [2345.3, 2345.35]

    es = tmp_path / "ES-2026-11-20.csv"
    es.write_text(
        RECORDING
        + f"Q,{t},1.0,,,,5000.0,5000.25,5.0,7.0,tick-by-tick\n"
        + f"Q,{t + 1},2.0,,,,5000.25,5000.5,5.0,7.0,tick-by-tick\n"
    )
    assert load_recording(es)[0]  # as ES it is fine
    with pytest.raises(ReplayFileError) as info:
        load_recording(es, PRODUCTS["RTY"])
    assert (info.value.line, info.value.column) == (3, "ask")
    assert "ask '5000.25' is not a multiple of 0.1 (the RTY tick)" in str(info.value)


# --- synthetic data per product ---


@pytest.mark.parametrize("symbol", ["MES", "NQ", "RTY", "M2K", "YM", "MYM"])
def test_synthetic_market_is_on_each_products_grid_at_its_level(symbol: str) -> None:
    product = PRODUCTS[symbol]
    per_point = round(1 / product.tick_size)
    source = SyntheticSource(
        seed=9, start_time=START, start_price=product.price_level, tick_size=product.tick_size
    )
    events = list(itertools.islice(source.events(), 20_000))
    prices = [e.price for e in events if isinstance(e, TradeTick)]
    quotes = [e for e in events if isinstance(e, QuoteTick)]
    assert prices
    assert all(on_grid(p, per_point) for p in prices)
    assert all(on_grid(q.bid, per_point) and on_grid(q.ask, per_point) for q in quotes)
    assert {ticks_between(q.bid, q.ask, per_point) for q in quotes} <= {1, 2}
    assert quotes[0].bid == product.price_level
    assert abs(prices[-1] / product.price_level - 1) < 0.05


async def test_an_unlisted_symbol_is_refused_by_the_command_and_the_gateway() -> None:
    code, _, err = await run_ibsim("--symbol", "ZN")
    assert code == 2
    assert "invalid choice: 'ZN'" in err.decode()
    with pytest.raises(ValueError, match=r"'ZN' is not a listed product \(listed: ES, MES"):
        Gateway(GatewayConfig(symbol="ZN"), ListSource([quote(100.0, 100.25)]))
