"""Market data through the real connection: subscribe, fall back, resubscribe, stay fresh, roll."""

from __future__ import annotations

import asyncio
import math
import random
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import datetime
from itertools import islice
from typing import Any

import pytest
import structlog
from ib_async import IB, MarketOrder

from daemon.broker.connection import Backoff, Connection, Heartbeat
from daemon.broker.marketdata import MarketData
from daemon.flow.events import DataMode, MarketEvent, QuoteEvent, SnapshotEvent, TradeEvent
from daemon.settings import DataSettings, IbSettings, InstrumentSettings
from ibsim.gateway import Gateway, GatewayConfig
from ibsim.market import ListSource, SyntheticSource
from ibsim.model import Side, TradeTick
from tests.daemon.broker.conftest import CENTRAL, SIM_START, WAIT

FAST = Backoff(initial=0.01, cap=0.05, jitter=0.5, stable_after=3600.0)


class Feed:
    """A gateway, the daemon's connection and market data against it, and what was emitted."""

    def __init__(self, gw: Gateway, conn: Connection, md: MarketData) -> None:
        self.gw, self.conn, self.md = gw, conn, md
        self.events: list[MarketEvent] = []
        self._changed = asyncio.Event()
        self.task: asyncio.Task[None] | None = None
        self.now = [1000.0]  # the market data's monotonic clock, moved by tests
        self.wall = [1.7e9]  # and its wall clock

    def sink(self, event: MarketEvent) -> None:
        self.events.append(event)
        self._changed.set()

    def poke(self, *_: Any) -> None:
        self._changed.set()

    async def until(self, predicate: Callable[[], bool], limit: float = WAIT) -> None:
        async with asyncio.timeout(limit):
            while not predicate():
                self._changed.clear()
                await self._changed.wait()

    def trades(self) -> list[TradeEvent]:
        return [e for e in self.events if isinstance(e, TradeEvent)]


Make = Callable[..., Awaitable[Feed]]


def _one_quote(start: datetime = SIM_START) -> ListSource:
    return ListSource.one_quote(start.timestamp())


@pytest.fixture
async def feed() -> AsyncIterator[Make]:
    asyncio.set_event_loop(asyncio.get_running_loop())
    made: list[Feed] = []

    async def make(
        source: Any = None, speed: float = math.inf, data: DataSettings | None = None, **gw: Any
    ) -> Feed:
        gw.setdefault("client_id_release_delay", 0.0)
        gateway = Gateway(GatewayConfig(port=0, **gw), source or _one_quote(), speed=speed)
        await gateway.start()
        conn = Connection(
            IB(),
            IbSettings(port=gateway.port, client_id=3, connect_timeout=2.0),
            backoff=FAST,
            heartbeat=Heartbeat(idle=30.0, probe=5.0),
            rng=random.Random(2),
        )
        f = Feed(gateway, conn, None)  # type: ignore[arg-type]
        f.md = MarketData(
            conn,
            InstrumentSettings(),
            data or DataSettings(),
            f.sink,
            clock=lambda: f.now[0],
            wall=lambda: f.wall[0],
        )
        conn.on_state(f.poke)
        conn.ib.errorEvent += f.poke
        f.task = asyncio.create_task(conn.run())
        made.append(f)
        return f

    yield make
    for f in made:
        await f.md.stop()
        await f.conn.stop()
        if f.task is not None:
            await asyncio.wait({f.task}, timeout=WAIT)
        await f.gw.stop()


async def test_tick_by_tick_events_match_the_gateway_tape(feed: Make) -> None:
    source = ListSource(
        list(islice(SyntheticSource(seed=4, start_time=SIM_START.timestamp()).events(), 4000))
    )
    f = await feed(source=source, speed=400.0)
    await f.until(lambda: len(f.trades()) >= 200)
    assert f.md.stats.mode is DataMode.TICK_BY_TICK
    assert f.md.stats.contract == "ESZ6"
    trades = f.trades()
    tape = [
        (t.price, float(t.size), float(int(t.time)))
        for t in f.gw.history.trades.between(0, math.inf)
    ]
    got = [(t.price, t.size, t.exchange_time) for t in trades]
    first = next(i for i in range(len(tape)) if tape[i : i + 10] == got[:10])
    want = tape[first : first + len(got)]
    assert got == want  # exact prices, sizes and the gateway's own timestamps
    seqs = [e.seq for e in f.events]
    assert seqs == sorted(seqs)
    assert len(set(seqs)) == len(seqs)
    assert any(isinstance(e, QuoteEvent) and e.bid < e.ask for e in f.events)


async def test_restart_resubscribes_without_growing_ib_async_maps(feed: Make) -> None:
    f = await feed()
    await f.until(lambda: f.conn.ready and f.md.stats.resubscribes == 1)
    tickers_before = len(f.conn.ib.wrapper.reqId2Ticker)
    for cycle in range(3):
        await f.gw.restart(0.05)
        await f.until(lambda c=cycle: f.conn.ready and f.md.stats.resubscribes == c + 2)
        await f.conn.ib.reqCurrentTimeAsync()  # the gateway has read the new subscriptions
        f.gw.apply(TradeTick(f.gw.clock.now(), 5000.25, cycle + 1, Side.BUY))
        await f.until(lambda c=cycle: any(t.size == c + 1 for t in f.trades()))
    assert f.conn.status.reconnect_count == 3
    assert len(f.conn.ib.wrapper.reqId2Ticker) == tickers_before == 2


async def test_1101_resubscribes_and_1102_does_not(feed: Make) -> None:
    f = await feed()
    await f.until(lambda: f.conn.ready and f.md.stats.resubscribes == 1)
    f.gw.connectivity_lost()
    f.gw.connectivity_restored(data_lost=True)
    await f.until(lambda: f.md.stats.resubscribes == 2)
    await f.conn.ib.reqCurrentTimeAsync()  # the gateway has the new subscriptions
    f.gw.apply(TradeTick(f.gw.clock.now(), 5000.25, 7, Side.BUY))
    await f.until(lambda: any(t.size == 7 for t in f.trades()))
    assert len(f.conn.ib.wrapper.reqId2Ticker) == 2
    # 1102 with fresh data: nothing to do
    f.gw.connectivity_lost()
    f.gw.connectivity_restored(data_lost=False)
    await f.until(lambda: f.conn.ready)
    await f.conn.ib.reqCurrentTimeAsync()
    assert f.md.stats.resubscribes == 2


async def test_tick_by_tick_refused_falls_back_to_snapshots(feed: Make) -> None:
    f = await feed(max_tick_by_tick=0)
    await f.until(lambda: f.md.stats.mode is DataMode.SNAPSHOT)
    assert f.md.stats.refusals.get(10190, 0) >= 1
    await f.conn.ib.reqCurrentTimeAsync()
    f.gw.apply(TradeTick(f.gw.clock.now(), 5000.25, 5, Side.BUY))
    await f.until(lambda: any(isinstance(e, SnapshotEvent) and e.volume == 5 for e in f.events))
    snap = next(e for e in f.events if isinstance(e, SnapshotEvent) and e.volume == 5)
    assert (snap.bid, snap.ask, snap.last) == (5000.0, 5000.25, 5000.25)


async def test_snapshot_mode_by_config(feed: Make) -> None:
    f = await feed(data=DataSettings(mode="snapshot"))
    await f.until(lambda: f.md.stats.mode is DataMode.SNAPSHOT and f.md.stats.snapshots > 0)
    assert f.trades() == []


async def test_stale_feed_resubscribes_then_reconnects(feed: Make) -> None:
    f = await feed(data=DataSettings(stale_after_s=30, reconnect_after_stale_s=90))
    await f.until(lambda: f.conn.ready and f.md.stats.resubscribes == 1)
    f.now[0] += 31  # no trade for 31 s while the market is open
    await f.md.check()
    assert f.md.stats.resubscribes == 2
    assert f.md.stats.stale
    f.now[0] += 60  # still nothing, 91 s in all
    await f.md.check()
    await f.until(lambda: f.conn.status.reconnect_count == 1 and f.conn.ready)
    assert f.md.stats.resubscribes == 3


async def test_no_staleness_while_the_market_is_closed(feed: Make) -> None:
    saturday = datetime(2026, 11, 21, 12, 0, tzinfo=CENTRAL)
    f = await feed(source=_one_quote(saturday))
    await f.until(lambda: f.conn.ready and f.md.stats.resubscribes == 1)
    f.now[0] += 3600
    await f.md.check()
    assert f.md.stats.resubscribes == 1
    assert not f.md.stats.stale


async def test_roll_switches_contracts_and_reports_a_stranded_position(feed: Make) -> None:
    before_roll = datetime(2026, 12, 9, 16, 59, 55, tzinfo=CENTRAL)  # ESZ6 rolls at 17:00
    f = await feed(source=_one_quote(before_roll))
    await f.until(lambda: f.conn.ready and f.md.stats.resubscribes == 1)
    assert f.md.stats.contract == "ESZ6"
    trader = IB()
    await trader.connectAsync("127.0.0.1", f.gw.port, clientId=9, timeout=WAIT)
    try:
        fill = trader.placeOrder(f.md.contract, MarketOrder("BUY", 1))
        async with asyncio.timeout(WAIT):
            while not fill.isDone():
                await trader.updateEvent
    finally:
        trader.disconnect()
    await f.conn.ib.reqPositionsAsync()
    f.wall[0] += 10  # 17:00:05 on the market clock (no resync: the monotonic clock stood still)
    with structlog.testing.capture_logs() as logs:
        await f.md.check()
    assert f.md.stats.contract == "ESH7"
    assert f.md.stats.rolls == 1
    stranded = [e for e in logs if e["event"] == "position_in_rolled_contract"]
    assert stranded
    assert stranded[0]["contract"] == "ESZ6"
    assert stranded[0]["position"] == 1
