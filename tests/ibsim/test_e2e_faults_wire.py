"""Wire faults as an unmodified ib_async client sees them: corrupted fills, messages held or
dropped by type, a feed that stops with the socket up, and frames that never decode."""

from __future__ import annotations

import asyncio
import logging
import struct
from collections.abc import Awaitable, Callable

import pytest
from ib_async import IB, MarketOrder, Ticker, Trade

from ibsim.gateway import Gateway
from ibsim.model import Side, TradeTick
from ibsim.wirefaults import TRICKLE, FillCorruption
from tests.ibsim.conftest import (
    WAIT,
    GatewayFactory,
    collect_errors,
    front_month,
    quote,
    until,
)

Connect = Callable[..., Awaitable[IB]]


async def _filled(ib: IB, trade: Trade) -> None:
    await until(ib, lambda: trade.orderStatus.status == "Filled" and bool(trade.fills))


async def _gone(gw: Gateway, client_id: int) -> None:
    async with asyncio.timeout(WAIT):
        while gw.session_of(client_id) is not None:
            await gw.session_ended.wait()


# --- absurd execution fields on the wire, true ones in the book ---


@pytest.mark.parametrize("kind", list(FillCorruption))
async def test_corrupted_fill_decodes_absurd_while_the_broker_keeps_the_truth(
    make_gateway: GatewayFactory, connect: Connect, kind: FillCorruption
) -> None:
    gw = await make_gateway()
    ib = await connect(gw)
    contract = await front_month(ib)
    gw.corrupt_next_fills(kind)
    trade = ib.placeOrder(contract, MarketOrder("BUY", 2))
    await _filled(ib, trade)

    wire = trade.fills[0].execution
    (truth,) = gw.engine.executions()
    assert wire.execId == truth.exec_id
    seen = {"price": wire.price, "shares": wire.shares, "cum_qty": wire.cumQty}
    expected = {"price": 5000.25, "shares": 2.0, "cum_qty": 2.0} | {
        FillCorruption.PRICE_ZERO: {"price": 0.0},
        FillCorruption.PRICE_NEGATIVE: {"price": -5000.25},
        FillCorruption.PRICE_FAR: {"price": 500025.0},
        FillCorruption.SHARES_HUGE: {"shares": 1e9},
        FillCorruption.SHARES_OVER_ORDER: {"shares": 3.0},
        FillCorruption.CUM_QTY_OVER: {"cum_qty": 3.0},
    }[kind]
    assert seen == expected
    # a fresh reqExecutions answers the true values under the same execId
    (fresh,) = await ib.reqExecutionsAsync()
    assert (fresh.execution.execId, fresh.execution.price) == (truth.exec_id, 5000.25)
    assert (fresh.execution.shares, fresh.execution.cumQty) == (2.0, 2.0)
    assert [p.quantity for p in gw.engine.positions()] == [2]


async def test_corruption_covers_exactly_the_next_count_fills(
    make_gateway: GatewayFactory, connect: Connect
) -> None:
    gw = await make_gateway()
    ib = await connect(gw)
    contract = await front_month(ib)
    gw.corrupt_next_fills("price_far", count=2)
    prices = []
    for _ in range(3):
        trade = ib.placeOrder(contract, MarketOrder("BUY", 1))
        await _filled(ib, trade)
        prices.append(trade.fills[0].execution.price)
    assert prices == [500025.0, 500025.0, 5000.25]
    with pytest.raises(ValueError, match="price_sideways"):
        gw.corrupt_next_fills("price_sideways")


# --- message types held or dropped ---


async def test_delayed_order_status_is_overtaken_by_the_fill_sent_after_it(
    make_gateway: GatewayFactory, connect: Connect
) -> None:
    gw = await make_gateway()
    ib = await connect(gw)
    contract = await front_month(ib)
    seen: list[tuple[str, str]] = []
    ib.orderStatusEvent += lambda t: seen.append(("status", t.orderStatus.status))
    ib.execDetailsEvent += lambda _t, f: seen.append(("fill", f.execution.execId))

    gw.delay_messages(["ORDER_STATUS"], 60.0)  # Out names in any case
    trade = ib.placeOrder(contract, MarketOrder("BUY", 1))
    await until(ib, lambda: bool(trade.fills))
    await ib.reqCurrentTimeAsync()  # everything not held has arrived by now
    assert trade.orderStatus.status != "Filled"
    assert [kind for kind, _ in seen] == ["fill"]

    gw.release_messages()
    await until(ib, lambda: trade.orderStatus.status == "Filled")
    fill_id = trade.fills[0].execution.execId
    assert seen == [("fill", fill_id), ("status", "Submitted"), ("status", "Filled")]


async def test_held_messages_come_out_when_the_window_ends(
    make_gateway: GatewayFactory, connect: Connect
) -> None:
    gw = await make_gateway()
    ib = await connect(gw)
    gw.delay_messages(["current_time"], 1.0)
    held = asyncio.ensure_future(ib.reqCurrentTimeAsync())
    assert await ib.reqExecutionsAsync() == []  # sent after it, answered before it
    assert not held.done()
    answer = await asyncio.wait_for(held, WAIT)
    assert abs(answer.timestamp() - gw.clock.now()) < 5
    assert gw.out_filter is None  # the send path is back to one attribute check


async def test_withheld_order_status_never_arrives(
    make_gateway: GatewayFactory, connect: Connect
) -> None:
    gw = await make_gateway()
    ib = await connect(gw)
    contract = await front_month(ib)
    gw.delay_messages(["order_status"], 60.0, withhold=True)
    lost = ib.placeOrder(contract, MarketOrder("BUY", 1))
    await until(ib, lambda: bool(lost.fills))
    gw.release_messages()
    after = ib.placeOrder(contract, MarketOrder("SELL", 1))
    await _filled(ib, after)  # statuses flow again ...
    assert lost.orderStatus.status != "Filled"  # ... but the dropped ones are gone


async def test_unknown_message_types_are_refused_by_name(make_gateway: GatewayFactory) -> None:
    gw = await make_gateway()
    with pytest.raises(ValueError, match="bogus"):
        gw.delay_messages(["order_status", "bogus"], 1.0)
    with pytest.raises(ValueError, match="seconds"):
        gw.delay_messages(["order_status"], 0.0)
    assert gw.out_filter is None


async def test_messages_held_for_a_closed_session_are_lost(
    make_gateway: GatewayFactory, connect: Connect
) -> None:
    gw = await make_gateway()
    ib = await connect(gw, client_id=3)
    gw.delay_messages(["current_time"], 60.0)
    held = asyncio.ensure_future(ib.reqCurrentTimeAsync())
    await ib.reqExecutionsAsync()  # the time request was served (and held) before this
    ib.disconnect()
    held.cancel()
    await _gone(gw, 3)

    reader, writer = await _raw_client(gw.port, 3)  # the same client id, a new session
    await _read_until(reader, 9)
    gw.release_messages()
    writer.write(_frame(b"8\x001\x001\x00"))  # reqIds: answered by NEXT_VALID_ID
    await writer.drain()
    ids = await _read_until(reader, 9)
    writer.close()
    assert 49 not in ids  # the held CURRENT_TIME died with its session


# --- a feed that stops while the socket stays up ---


async def _streams(ib: IB) -> tuple[Ticker, list[object]]:
    """AllLast tick-by-tick and sampled reqMktData with RTVolume (one Ticker per contract in
    ib_async), and every tick of either kind the client receives from now on."""
    contract = await front_month(ib)
    ticker = ib.reqTickByTickData(contract, "AllLast")
    ib.reqMktData(contract, "233")
    received: list[object] = []
    ticker.updateEvent += lambda t: received.extend([*t.ticks, *t.tickByTicks])
    await until(ib, lambda: ticker.bid == 5000.0)  # the first sample arrived
    return ticker, received


async def test_frozen_feed_sends_no_ticks_while_orders_and_requests_work(
    make_gateway: GatewayFactory, connect: Connect
) -> None:
    gw = await make_gateway()
    ib = await connect(gw)
    errors = collect_errors(ib)
    contract = await front_month(ib)
    ticker, received = await _streams(ib)

    gw.freeze_feed()
    received.clear()
    gw.apply(TradeTick(gw.clock.now(), 5000.5, 2, Side.BUY))  # the market goes on
    gw.apply(quote(5000.25, 5000.5))
    gw.feed.flush()  # what the 250 ms sampler does
    trade = ib.placeOrder(contract, MarketOrder("BUY", 1))
    await _filled(ib, trade)  # orders match, at the market the client cannot see
    assert trade.fills[0].execution.price == 5000.5
    ib.reqTickByTickData(contract, "BidAsk")  # would send the current quote at once
    (snapshot,) = await asyncio.wait_for(ib.reqTickersAsync(contract), WAIT)  # answered
    assert (await ib.reqCurrentTimeAsync()).timestamp() > 0

    assert received == []
    assert snapshot.bid == 5000.0  # stale: the quote of the frozen time never came
    assert ticker.last != ticker.last  # NaN: no trade ever reached the client
    assert errors == []
    assert [t.price for t in gw.history.trades.between(0, float("inf"))] == [5000.5]

    gw.thaw_feed()
    gw.apply(TradeTick(gw.clock.now(), 5000.75, 1, Side.BUY))
    await until(ib, lambda: ticker.last == 5000.75 and ticker.bid == 5000.25)


async def test_timed_freeze_thaws_by_itself(make_gateway: GatewayFactory, connect: Connect) -> None:
    gw = await make_gateway()
    ib = await connect(gw)
    ticker, _received = await _streams(ib)
    gw.freeze_feed(0.3)
    gw.apply(TradeTick(gw.clock.now(), 5000.5, 2, Side.BUY))
    # after the thaw the sampler sends a full picture, the frozen-time trade included
    await until(ib, lambda: ticker.last == 5000.5)
    assert not gw.feed.frozen


# --- bad frames ---


async def test_oversized_frame_keeps_bytes_coming_and_nothing_decoding(
    make_gateway: GatewayFactory, connect: Connect
) -> None:
    gw = await make_gateway()
    ib = await connect(gw, client_id=6)
    chunks: list[bytes] = []
    enough = asyncio.Event()

    def on_data(data: bytes) -> None:
        chunks.append(data)
        if len(b"".join(chunks)) >= 4 + 4 * len(TRICKLE):  # the header, then 4 trickles
            enough.set()

    ib.client.conn.hasData += on_data
    before = ib.client.connectionStats()

    assert gw.send_bad_frame("oversized", trickle_s=30.0) == 1
    pending = asyncio.ensure_future(ib.reqCurrentTimeAsync())
    await asyncio.wait_for(enough.wait(), WAIT)

    data = b"".join(chunks)
    assert data[:4] == struct.pack(">I", 0x7FFFFFF0)
    assert data[4:] == TRICKLE * (len(data[4:]) // len(TRICKLE))
    stats = ib.client.connectionStats()
    assert stats.numMsgRecv == before.numMsgRecv  # nothing decoded since
    assert stats.numBytesRecv >= before.numBytesRecv + 4 + 4 * len(TRICKLE)
    assert ib.isConnected()
    assert not pending.done()  # the answer is stuck behind the frame
    pending.cancel()

    ib.disconnect()
    await _gone(gw, 6)
    (trickle,) = [t for t in asyncio.all_tasks() if t.get_name() == "ibsim-trickle"]
    await asyncio.wait_for(trickle, WAIT)  # ends on its own once its client is gone
    assert not gw.sessions
    fresh = await connect(gw, client_id=6)
    assert (await fresh.reqCurrentTimeAsync()).timestamp() > 0


async def test_garbage_frame_is_received_and_the_stream_goes_on(
    make_gateway: GatewayFactory, connect: Connect, caplog: pytest.LogCaptureFixture
) -> None:
    gw = await make_gateway()
    ib = await connect(gw)
    before = ib.client.connectionStats().numMsgRecv
    with caplog.at_level(logging.ERROR, logger="ib_async.Decoder"):
        assert gw.send_bad_frame("garbage") == 1
        assert (await ib.reqCurrentTimeAsync()).timestamp() > 0
    assert ib.client.connectionStats().numMsgRecv == before + 2  # the garbage, then the time
    assert any("Error handling fields" in r.getMessage() for r in caplog.records)
    with pytest.raises(ValueError, match="enormous"):
        gw.send_bad_frame("enormous")


# --- raw sockets, for what ib_async hides ---


async def _raw_client(
    port: int, client_id: int
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"API\0" + _frame(b"v157..178"))
    (n,) = struct.unpack(">I", await asyncio.wait_for(reader.readexactly(4), WAIT))
    await reader.readexactly(n)
    writer.write(_frame(b"71\x002\x00%d\x00\x00" % client_id))
    await writer.drain()
    return reader, writer


def _frame(payload: bytes) -> bytes:
    return struct.pack(">I", len(payload)) + payload


async def _read_until(reader: asyncio.StreamReader, msg_id: int) -> list[int]:
    """Message ids read up to and including the first `msg_id`."""
    seen: list[int] = []
    async with asyncio.timeout(WAIT):
        while not seen or seen[-1] != msg_id:
            (n,) = struct.unpack(">I", await reader.readexactly(4))
            seen.append(int((await reader.readexactly(n)).split(b"\0", 1)[0]))
    return seen
