"""Each fault as a real gateway presents it to an unmodified ib_async client."""

from __future__ import annotations

import asyncio
import math
import struct
from collections.abc import Awaitable, Callable

import pytest
from ib_async import IB, LimitOrder, MarketOrder, Ticker

from ibsim.feed import BadTick
from ibsim.gateway import Gateway, GatewayConfig
from ibsim.market import ListSource
from ibsim.model import Side, TradeTick
from ibsim.scenario import Fault, Scenario, ScenarioError, load_scenario
from tests.ibsim.conftest import (
    WAIT,
    GatewayFactory,
    collect_errors,
    front_month,
    quote,
    synthetic,
    until,
)

Connect = Callable[..., Awaitable[IB]]


async def _disconnected(ib: IB) -> None:
    async with asyncio.timeout(WAIT):
        while ib.isConnected():
            await ib.disconnectedEvent


@pytest.mark.parametrize("reset", [False, True], ids=["fin", "rst"])
async def test_socket_drop_is_seen_and_reconnect_works(
    make_gateway: GatewayFactory, connect: Connect, reset: bool
) -> None:
    gw = await make_gateway()
    ib = await connect(gw, client_id=5)
    assert gw.drop_clients(reset=reset) == 1
    await _disconnected(ib)
    again = await connect(gw, client_id=5)
    assert again.isConnected()


async def _mkt_data(ib: IB) -> Ticker:
    """reqMktData with RTVolume (233), and a round trip so the gateway has the subscription."""
    ticker = ib.reqMktData(await front_month(ib), "233")
    await ib.reqCurrentTimeAsync()
    return ticker


async def _tick_stream(ib: IB) -> tuple[Ticker, list[float]]:
    contract = await front_month(ib)
    ticker = ib.reqTickByTickData(contract, "AllLast")
    prices: list[float] = []
    ticker.updateEvent += lambda t: prices.extend(tick.price for tick in t.tickByTicks)
    await ib.reqCurrentTimeAsync()  # a round trip: the gateway has the subscription now
    return ticker, prices


async def test_outage_1100_then_1101_stops_streams_until_resubscribed(
    make_gateway: GatewayFactory, connect: Connect
) -> None:
    gw = await make_gateway()
    ib = await connect(gw)
    errors = collect_errors(ib)
    _ticker, prices = await _tick_stream(ib)
    gw.apply(TradeTick(gw.clock.now(), 5000.25, 1, Side.BUY))
    await until(ib, lambda: prices == [5000.25])

    gw.connectivity_lost()
    await until(ib, lambda: (-1, 1100) in errors)
    gw.apply(TradeTick(gw.clock.now(), 5000.5, 1, Side.BUY))  # happens, but not delivered
    gw.connectivity_restored(data_lost=True)
    await until(ib, lambda: (-1, 1101) in errors)
    gw.apply(TradeTick(gw.clock.now(), 5000.75, 1, Side.BUY))  # the stream is dead: lost
    await ib.reqCurrentTimeAsync()
    assert prices == [5000.25]
    # resubscribing (ib_async reuses the same Ticker) brings trades back
    await _tick_stream(ib)
    gw.apply(TradeTick(gw.clock.now(), 5001.0, 1, Side.BUY))
    await until(ib, lambda: prices == [5000.25, 5001.0])


async def test_outage_then_1102_keeps_streams(
    make_gateway: GatewayFactory, connect: Connect
) -> None:
    gw = await make_gateway()
    ib = await connect(gw)
    errors = collect_errors(ib)
    _ticker, prices = await _tick_stream(ib)
    gw.connectivity_lost()
    gw.connectivity_restored(data_lost=False)
    await until(ib, lambda: (-1, 1102) in errors)
    gw.apply(TradeTick(gw.clock.now(), 5000.5, 2, Side.BUY))
    await until(ib, lambda: prices == [5000.5])


async def test_fills_during_an_outage_arrive_after_it(
    make_gateway: GatewayFactory, connect: Connect
) -> None:
    gw = await make_gateway()
    ib = await connect(gw)
    contract = await front_month(ib)
    trade = ib.placeOrder(contract, LimitOrder("BUY", 1, 4999.75))
    await until(ib, lambda: trade.orderStatus.status == "Submitted")
    gw.connectivity_lost()
    gw.apply(quote(4999.5, 4999.75))
    assert gw.engine.executions()  # filled at the exchange ...
    assert trade.fills == []  # ... but not reported yet
    gw.connectivity_restored(data_lost=False)
    await until(ib, lambda: trade.orderStatus.status == "Filled")
    assert [f.execution.price for f in trade.fills] == [4999.75]


@pytest.mark.parametrize("code", [2103, 2104, 2105, 2106, 2107, 2108, 2119, 2157, 2158])
async def test_farm_messages_reach_every_client(
    make_gateway: GatewayFactory, connect: Connect, code: int
) -> None:
    gw = await make_gateway()
    a = await connect(gw, client_id=1)
    b = await connect(gw, client_id=2)
    errors_a, errors_b = collect_errors(a), collect_errors(b)
    gw.farm(code)
    await until(a, lambda: (-1, code) in errors_a)
    await until(b, lambda: (-1, code) in errors_b)


async def test_stall_holds_every_reply_until_it_ends(
    make_gateway: GatewayFactory, connect: Connect
) -> None:
    gw = await make_gateway()
    ib = await connect(gw)
    stall = asyncio.create_task(gw.stall(0.3))
    await asyncio.sleep(0)  # let the stall begin
    reply = asyncio.ensure_future(ib.reqCurrentTimeAsync())
    done, _ = await asyncio.wait({stall, reply}, timeout=WAIT, return_when="FIRST_COMPLETED")
    assert done == {stall}
    assert not reply.done()
    answer = await asyncio.wait_for(reply, WAIT)
    assert abs(answer.timestamp() - gw.clock.now()) < 5


@pytest.mark.parametrize(
    ("permission", "data_type", "code"),
    [("none", 1, 354), ("delayed", 1, 10089), ("delayed", 3, 10167)],
)
async def test_market_data_permissionerrors(
    make_gateway: GatewayFactory, connect: Connect, permission: str, data_type: int, code: int
) -> None:
    gw = await make_gateway(market_data=permission)
    ib = await connect(gw)
    errors = collect_errors(ib)
    contract = await front_month(ib)
    ib.reqMarketDataType(data_type)
    ticker = ib.reqMktData(contract)
    req_id = ib.wrapper.ticker2ReqId["mktData"][ticker]
    await until(ib, lambda: (req_id, code) in errors)
    if code == 10167:  # delayed data flows, in the delayed tick types
        await until(ib, lambda: ticker.bid == 5000.0 and ticker.ask == 5000.25)
        assert ticker.marketDataType == 3


async def test_201_reject_cancels_one_order_and_the_next_goes_through(
    make_gateway: GatewayFactory, connect: Connect
) -> None:
    gw = await make_gateway()
    ib = await connect(gw)
    errors = collect_errors(ib)
    contract = await front_month(ib)
    gw.reject_next_orders(1)
    rejected = ib.placeOrder(contract, LimitOrder("BUY", 1, 4990.0))
    await until(ib, lambda: rejected.orderStatus.status in ("Cancelled", "Inactive"))
    assert (rejected.order.orderId, 201) in errors
    accepted = ib.placeOrder(contract, LimitOrder("BUY", 1, 4990.0))
    await until(ib, lambda: accepted.orderStatus.status == "Submitted")


async def test_read_only_api_answers_321(make_gateway: GatewayFactory, connect: Connect) -> None:
    gw = await make_gateway(read_only=True)
    ib = await connect(gw)
    errors = collect_errors(ib)
    contract = await front_month(ib)
    trade = ib.placeOrder(contract, MarketOrder("BUY", 1))
    await until(ib, lambda: (trade.order.orderId, 321) in errors)
    assert gw.engine.open_orders() == []
    assert gw.engine.executions() == []


@pytest.mark.parametrize("kind", list(BadTick))
async def test_bad_ticks_reach_the_client_as_sent(
    make_gateway: GatewayFactory, connect: Connect, kind: BadTick
) -> None:
    gw = await make_gateway()
    gw.apply(TradeTick(gw.clock.now(), 5000.25, 1, Side.BUY))
    ib = await connect(gw)
    contract = await front_month(ib)
    last = ib.reqTickByTickData(contract, "AllLast")
    quotes = ib.reqTickByTickData(contract, "BidAsk")
    seen_last: list[tuple[float, float]] = []
    seen_quotes: list[tuple[float, float]] = []
    last.updateEvent += lambda t: seen_last.extend((x.price, x.size) for x in t.tickByTicks)
    quotes.updateEvent += lambda t: seen_quotes.extend(
        (x.bidPrice, x.askPrice) for x in t.tickByTicks
    )
    await until(ib, lambda: len(seen_quotes) == 1)  # the current quote on subscribing
    assert gw.bad_tick(kind) >= 1
    if kind is BadTick.CROSSED:
        await until(ib, lambda: len(seen_quotes) == 2)
        bid, ask = seen_quotes[-1]
        assert bid > ask
        return
    await until(ib, lambda: len(seen_last) == 1)
    price, size = seen_last[0]
    expected = {
        BadTick.NEGATIVE_PRICE: lambda: price == -1.0,
        BadTick.ZERO_PRICE: lambda: price == 0.0,
        BadTick.ZERO_SIZE: lambda: size == 0.0,
        BadTick.OFF_GRID: lambda: price % 0.25 != 0,
        BadTick.SPIKE: lambda: price > 5000.25 * 1.05,
    }[kind]
    assert expected(), (kind, price, size)


async def test_volume_reset_makes_cumulative_volume_go_backwards(
    make_gateway: GatewayFactory, connect: Connect
) -> None:
    gw = await make_gateway()
    ib = await connect(gw)
    ticker = await _mkt_data(ib)
    for _ in range(3):
        gw.apply(TradeTick(gw.clock.now(), 5000.25, 4, Side.BUY))
    await until(ib, lambda: ticker.volume == 12)
    gw.reset_volume()
    await until(ib, lambda: ticker.volume == 0)
    gw.apply(TradeTick(gw.clock.now(), 5000.25, 2, Side.BUY))
    await until(ib, lambda: ticker.volume == 2)


async def test_snapshot_market_data_carries_rt_volume(
    make_gateway: GatewayFactory, connect: Connect
) -> None:
    gw = await make_gateway()
    ib = await connect(gw)
    ticker = await _mkt_data(ib)
    gw.apply(TradeTick(gw.clock.now(), 5000.25, 3, Side.BUY))
    await until(ib, lambda: ticker.last == 5000.25 and ticker.rtVolume == 3)
    assert (ticker.bid, ticker.ask, ticker.bidSize, ticker.askSize) == (5000.0, 5000.25, 10, 10)


async def test_restart_drops_clients_closes_port_and_keeps_orders(
    make_gateway: GatewayFactory, connect: Connect
) -> None:
    gw = await make_gateway()
    ib = await connect(gw, client_id=9)
    contract = await front_month(ib)
    resting = ib.placeOrder(contract, LimitOrder("BUY", 1, 4990.0, orderRef="survivor"))
    await until(ib, lambda: resting.orderStatus.status == "Submitted")
    restart = asyncio.create_task(gw.restart(0.5))
    await _disconnected(ib)
    with pytest.raises(ConnectionRefusedError):
        await asyncio.open_connection("127.0.0.1", gw.port)
    await asyncio.wait_for(restart, WAIT)
    back = await connect(gw, client_id=9)
    assert [t.order.orderRef for t in back.openTrades()] == ["survivor"]


async def test_tick_by_tick_limit_gives_10190(
    make_gateway: GatewayFactory, connect: Connect
) -> None:
    gw = await make_gateway(max_tick_by_tick=1)
    ib = await connect(gw)
    errors = collect_errors(ib)
    contract = await front_month(ib)
    ib.reqTickByTickData(contract, "AllLast")
    ib.reqTickByTickData(contract, "BidAsk")
    await until(ib, lambda: any(code == 10190 for _, code in errors))


async def test_pacing_violation_gives_100_and_disconnects(
    make_gateway: GatewayFactory, connect: Connect
) -> None:
    gw = await make_gateway(max_msg_rate=10)
    ib = await connect(gw)
    errors = collect_errors(ib)
    for _ in range(20):
        ib.client.reqCurrentTime()
    await _disconnected(ib)
    assert (-1, 100) in errors
    assert gw.rate_disconnects == 1
    assert gw.peak_msg_rate[1] == 11  # the message that broke the limit is counted


# --- bad input from a client: logged, that client dropped, the rest unaffected ---


async def _raw_client(
    port: int, client_id: int
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"API\0" + _frame(b"v157..178"))
    (n,) = struct.unpack(">I", await reader.readexactly(4))
    await reader.readexactly(n)
    writer.write(_frame(b"71\x002\x00%d\x00\x00" % client_id))
    await writer.drain()
    return reader, writer


def _frame(payload: bytes) -> bytes:
    return struct.pack(">I", len(payload)) + payload


@pytest.mark.parametrize(
    "garbage",
    [
        _frame(b"49\x001"),  # last field not NUL-terminated
        _frame(b"abc\x00"),  # message id not a number
        _frame(b"3\x0077\x00"),  # placeOrder truncated
        struct.pack(">I", 0),  # zero-length frame
        struct.pack(">I", 0x7FFFFFFF),  # absurd length
    ],
    ids=["unterminated", "bad-id", "truncated-order", "empty-frame", "huge-length"],
)
async def test_malformed_message_drops_only_that_client(
    make_gateway: GatewayFactory, connect: Connect, garbage: bytes
) -> None:
    gw = await make_gateway()
    good = await connect(gw, client_id=1)
    reader, writer = await _raw_client(gw.port, 2)
    writer.write(garbage)
    await writer.drain()
    async with asyncio.timeout(WAIT):
        while await reader.read(65536):
            pass  # the gateway closes the bad client's socket
    writer.close()
    assert good.isConnected()
    assert (await good.reqCurrentTimeAsync()).timestamp() > 0


async def test_unknown_message_id_is_ignored(make_gateway: GatewayFactory) -> None:
    gw = await make_gateway()
    reader, writer = await _raw_client(gw.port, 3)
    writer.write(_frame(b"999\x001\x00") + _frame(b"49\x001\x00"))
    await writer.drain()
    async with asyncio.timeout(WAIT):
        while True:  # skip the startup messages until CURRENT_TIME (49) answers
            (n,) = struct.unpack(">I", await reader.readexactly(4))
            if (await reader.readexactly(n)).startswith(b"49\x00"):
                break
    writer.close()


# --- scenarios: faults scripted by time and by event ---


async def test_scenario_fires_by_event_and_by_time(
    make_gateway: GatewayFactory, connect: Connect
) -> None:
    gw = await make_gateway()
    ib = await connect(gw, client_id=4)
    errors = collect_errors(ib)
    scenario = Scenario(
        [Fault(kind="farm", on="order", nth=1, code=2103), Fault(kind="farm", at=0.0, code=2119)]
    )
    runner = asyncio.create_task(scenario.run(gw))
    try:
        await until(ib, lambda: (-1, 2119) in errors)
        contract = await front_month(ib)
        ib.placeOrder(contract, LimitOrder("BUY", 1, 4990.0))
        await until(ib, lambda: (-1, 2103) in errors)
        assert scenario.fired == ["farm", "farm"]
    finally:
        runner.cancel()


def test_scenario_file_errors_name_the_fault_and_key(tmp_path: object) -> None:
    from pathlib import Path

    path = Path(str(tmp_path)) / "s.toml"
    cases = {
        '[[fault]]\nat = 1\nkind = "explode"\n': "fault #1: kind 'explode'",
        '[[fault]]\nkind = "drop"\n': "exactly one of 'at'",
        '[[fault]]\nat = 1\non = "fill"\nkind = "drop"\n': "exactly one of 'at'",
        '[[fault]]\nat = 1\nkind = "drop"\ncolour = 3\n': "unknown key(s) ['colour']",
        '[[fault]]\nat = 1\nkind = "bad_tick"\ntick = "purple"\n': "fault #1",
        '[[fault]]\nat = "soon"\nkind = "drop"\n': "fault #1",
        "[[fault]\n": "not valid TOML",
        "speed = 3\n": "unknown top-level key(s) ['speed']",
    }
    for text, message in cases.items():
        path.write_text(text)
        with pytest.raises(
            ScenarioError,
            match=message.replace("(", r"\(")
            .replace(")", r"\)")
            .replace("[", r"\[")
            .replace("]", r"\]"),
        ):
            load_scenario(path)
    path.write_text(
        '[[fault]]\nat = 2.5\nkind = "outage"\nseconds = 1\nrestore = "data_kept"\n'
        '[[fault]]\non = "fill"\nnth = 2\nkind = "reset"\n'
    )
    loaded = load_scenario(path)
    assert [(f.kind, f.at, f.on, f.nth) for f in loaded.faults] == [
        ("outage", 2.5, None, 1),
        ("reset", None, "fill", 2),
    ]


async def test_synthetic_market_fills_market_orders_at_the_touch(
    make_gateway: GatewayFactory, connect: Connect
) -> None:
    gw = await make_gateway(source=synthetic(seed=5), speed=50.0)
    ib = await connect(gw)
    contract = await front_month(ib)
    trade = ib.placeOrder(contract, MarketOrder("SELL", 3))
    await until(ib, lambda: trade.orderStatus.status == "Filled")
    assert all(
        math.isfinite(f.execution.price) and f.execution.price % 0.25 == 0 for f in trade.fills
    )
    assert sum(f.execution.shares for f in trade.fills) == 3


async def test_id_clash_drops_the_client_and_its_id_gives_326_until_released(
    connect: Connect,
) -> None:
    wall = [1000.0]
    gw = Gateway(
        GatewayConfig(port=0, client_id_release_delay=0.0),
        ListSource([quote(5000.0, 5000.25)]),
        speed=math.inf,
        wall=lambda: wall[0],
    )
    await gw.start()
    try:
        ib = await connect(gw, client_id=5)
        assert gw.clash_client_ids(30.0) == 1
        await _disconnected(ib)
        reader, writer = await _raw_client(gw.port, client_id=5)
        async with asyncio.timeout(WAIT):
            refused = await reader.read()  # the 326 error, then the gateway closes the socket
        writer.close()
        assert b"\x00326\x00" in refused
        other = await connect(gw, client_id=6)  # only the clashing id is held
        assert other.isConnected()
        wall[0] += 31.0
        assert (await connect(gw, client_id=5)).isConnected()
    finally:
        await gw.stop()
