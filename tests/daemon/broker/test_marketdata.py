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
from hypothesis import given
from hypothesis import strategies as st
from ib_async import IB, MarketOrder

from daemon.broker.connection import Backoff, Connection, Heartbeat
from daemon.broker.ib.client import IbClient
from daemon.broker.marketdata import MarketData
from daemon.broker.rtvolume import parse_rt_volume
from daemon.flow.events import (
    DataMode,
    MarketEvent,
    QuoteEvent,
    RtPrint,
    SnapshotEvent,
    TradeEvent,
)
from daemon.settings import DataSettings, IbSettings, InstrumentSettings
from ibsim.gateway import Gateway, GatewayConfig
from ibsim.market import ListSource, SyntheticSource
from ibsim.model import QuoteTick, Side, TradeTick
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

    def snapshots(self) -> list[SnapshotEvent]:
        return [e for e in self.events if isinstance(e, SnapshotEvent)]

    def prints(self) -> list[RtPrint]:
        return [p for e in self.snapshots() for p in e.prints]

    def printed(self) -> float:
        return sum(p.size for p in self.prints())

    def mkt_req_id(self) -> int:
        """The client's reqMktData reqId (the gateway answers on the same id)."""
        ticker = self.conn.client.ib.ticker(self.md.contract)  # type: ignore[arg-type]
        assert ticker is not None
        return self.conn.client.ib.wrapper.ticker2ReqId["mktData"][ticker]


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
            IbClient(),
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
        conn.client.ib.errorEvent += f.poke
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
    tickers_before = len(f.conn.client.ib.wrapper.reqId2Ticker)
    for cycle in range(3):
        await f.gw.restart(0.05)
        await f.until(lambda c=cycle: f.conn.ready and f.md.stats.resubscribes == c + 2)
        await f.conn.client.ib.reqCurrentTimeAsync()  # the gateway has read the new subscriptions
        f.gw.apply(TradeTick(f.gw.clock.now(), 5000.25, cycle + 1, Side.BUY))
        await f.until(lambda c=cycle: any(t.size == c + 1 for t in f.trades()))
    assert f.conn.status.reconnect_count == 3
    # AllLast, BidAsk and the volume reqMktData: one entry each, however often resubscribed
    assert len(f.conn.client.ib.wrapper.reqId2Ticker) == tickers_before == 3


async def test_1101_resubscribes_and_1102_does_not(feed: Make) -> None:
    f = await feed()
    await f.until(lambda: f.conn.ready and f.md.stats.resubscribes == 1)
    f.gw.connectivity_lost()
    f.gw.connectivity_restored(data_lost=True)
    await f.until(lambda: f.md.stats.resubscribes == 2)
    await f.conn.client.ib.reqCurrentTimeAsync()  # the gateway has the new subscriptions
    f.gw.apply(TradeTick(f.gw.clock.now(), 5000.25, 7, Side.BUY))
    await f.until(lambda: any(t.size == 7 for t in f.trades()))
    assert len(f.conn.client.ib.wrapper.reqId2Ticker) == 3
    # 1102 with fresh data: nothing to do
    f.gw.connectivity_lost()
    f.gw.connectivity_restored(data_lost=False)
    await f.until(lambda: f.conn.ready)
    await f.conn.client.ib.reqCurrentTimeAsync()
    assert f.md.stats.resubscribes == 2


async def test_tick_by_tick_refused_falls_back_to_snapshots(feed: Make) -> None:
    f = await feed(max_tick_by_tick=0)
    await f.until(lambda: f.md.stats.mode is DataMode.SNAPSHOT)
    assert f.md.stats.refusals.get(10190, 0) >= 1
    await f.conn.client.ib.reqCurrentTimeAsync()
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
    f.gw.freeze_feed()  # nothing answers the resubscription either
    f.now[0] += 31  # no trade for 31 s while the market is open
    await f.md.check()
    assert f.md.stats.resubscribes == 2
    assert f.md.stats.stale
    f.now[0] += 88  # still nothing, 89 s after going stale
    await f.md.check()
    assert f.conn.status.reconnect_count == 0
    f.now[0] += 1
    await f.md.check()
    await f.until(lambda: f.conn.status.reconnect_count == 1 and f.conn.ready)
    assert f.md.stats.resubscribes == 3
    assert f.md.stats.stale  # a new connection that brings nothing does not end it


async def test_a_new_subscription_is_not_stale_before_its_allowance(feed: Make) -> None:
    f = await feed(data=DataSettings(stale_after_s=30, reconnect_after_stale_s=90))
    await f.until(lambda: f.conn.ready and f.md.stats.resubscribes == 1)
    assert f.md.stats.last_trade is None  # no trade yet since connecting
    await f.md.check()
    f.now[0] += 29
    await f.md.check()
    assert f.md.stats.resubscribes == 1  # it used to resubscribe at the first check
    assert not f.md.stats.stale
    f.now[0] += 2
    await f.md.check()
    assert f.md.stats.resubscribes == 2


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
    await f.conn.client.ib.reqPositionsAsync()
    f.wall[0] += 10  # 17:00:05 on the market clock (no resync: the monotonic clock stood still)
    with structlog.testing.capture_logs() as logs:
        await f.md.check()
    assert f.md.stats.contract == "ESH7"
    assert f.md.stats.rolls == 1
    stranded = [e for e in logs if e["event"] == "position_in_rolled_contract"]
    assert stranded
    assert stranded[0]["contract"] == "ESZ6"
    assert stranded[0]["position"] == 1


# --- RTVolume prints in snapshot mode ---


async def test_snapshot_events_carry_each_samples_rtvolume_prints(feed: Make) -> None:
    f = await feed(data=DataSettings(mode="snapshot"))
    await f.until(lambda: f.conn.ready and f.md.stats.snapshots > 0)
    t0 = SIM_START.timestamp()
    for i, size in enumerate([3, 1, 4]):  # one trade per 250 ms sample: waited for each
        f.gw.apply(TradeTick(t0 + i + 0.25, 5000.25, size, Side.BUY))
        await f.until(lambda n=i: len(f.prints()) == n + 1)
    # two trades in the same sample: one report of their summed size, not single
    f.gw.apply(TradeTick(t0 + 5.5, 5000.0, 2, Side.SELL))
    f.gw.apply(TradeTick(t0 + 5.75, 5000.25, 5, Side.BUY))
    await f.until(lambda: f.printed() == 15)
    got = [(p.price, p.size, p.time, p.total_volume, p.single) for p in f.prints()]
    assert got == [
        (5000.25, 3, t0 + 0.25, 3, True),
        (5000.25, 1, t0 + 1.25, 4, True),
        (5000.25, 4, t0 + 2.25, 8, True),
        (5000.25, 7, t0 + 5.75, 15, False),  # RTVolume reports the sample's last price
    ]
    assert f.printed() == f.gw.feed.volume == 15  # the gateway's traded volume
    snaps = f.snapshots()
    assert all(e.mode is DataMode.SNAPSHOT for e in snaps)
    for e in snaps:
        if e.prints:
            assert e.exchange_time == max(p.time for p in e.prints)
        else:  # no print: the gateway clock (reqCurrentTime), not the local wall clock
            assert e.exchange_time == t0
    assert snaps[-1].volume == 15
    assert f.md.stats.rt_malformed == 0


async def test_malformed_rtvolume_is_counted_and_dropped(feed: Make) -> None:
    f = await feed(data=DataSettings(mode="snapshot"))
    await f.until(lambda: f.conn.ready and f.md.stats.snapshots > 0)
    session = f.gw.session_of(3)
    assert session is not None
    req_id = f.mkt_req_id()
    ms = int(SIM_START.timestamp()) * 1000
    with structlog.testing.capture_logs() as logs:
        for value in (
            "5000.25;x;1;2;3;true",  # size not a number
            "5000.25;1;2;3",  # fields missing
            f";0;{ms};15;5000.1;true",  # volume-only report: no print, not an error
            f"5000.5;2;{ms + 500};17;5000.2;true",
        ):
            session.send(session.enc.tick_string(req_id, 48, value))
        await f.until(lambda: len(f.prints()) == 1)
    assert [(p.price, p.size, p.total_volume) for p in f.prints()] == [(5000.5, 2, 17)]
    assert f.md.stats.rt_malformed == 2
    assert sum(e["event"] == "rt_volume_malformed" for e in logs) == 2


def test_rtvolume_parser_reads_ib_reports_and_refuses_bad_ones() -> None:
    rt = parse_rt_volume("701.28;1;1348075471534;67854;701.46918464;true")
    assert rt == RtPrint(701.28, 1.0, 1348075471.534, 67854.0, True)
    rt = parse_rt_volume("5000.25;12;1795000000250;900;5000.1;false")
    assert rt == RtPrint(5000.25, 12.0, 1795000000.25, 900.0, False)
    assert parse_rt_volume(";0;1348075471534;67854;701.46918464;true") is None
    nan = parse_rt_volume("nan;1;1000;1;1;true")  # passed through unjudged: guards judge it
    assert nan is not None
    assert math.isnan(nan.price)
    for bad in (
        "",
        "701.28;1;1348075471534;67854;701.46918464",  # five fields
        "701.28;1;1348075471534;67854;701.46918464;true;x",  # seven
        "701.28;;1348075471534;67854;701.46918464;true",  # size empty
        "701.28;1;;67854;701.46918464;true",  # time empty
        "701.28;1;1348075471.534;67854;701.46918464;true",  # time not whole ms
        "701.28;1;1348075471534;;701.46918464;true",  # total empty
        "701.28;1;1348075471534;67854;701.46918464;yes",  # flag
        "abc;1;1348075471534;67854;701.46918464;true",
    ):
        with pytest.raises(ValueError):  # noqa: PT011 - the parser's one failure mode
            parse_rt_volume(bad)


@given(st.text(alphabet=st.sampled_from("0123456789.;-eEnaftrux "), max_size=40))
def test_rtvolume_parser_fails_only_with_value_error(text: str) -> None:
    try:
        result = parse_rt_volume(text)
    except ValueError:
        return
    assert result is None or isinstance(result, RtPrint)


# --- the volume-only reqMktData in tick-by-tick mode ---


async def test_tick_by_tick_volume_snapshots_reconcile_with_trades(feed: Make) -> None:
    f = await feed()
    await f.until(lambda: f.conn.ready and f.md.stats.snapshots > 0)
    assert f.md.stats.mode is DataMode.TICK_BY_TICK
    t0 = SIM_START.timestamp()
    sizes = [2, 5, 1, 9]
    for i, size in enumerate(sizes):
        f.gw.apply(TradeTick(t0 + i, 5000.25, size, Side.BUY))
    await f.until(lambda: f.printed() == 17 and len(f.trades()) == 4)
    snaps = f.snapshots()
    assert all(e.mode is DataMode.TICK_BY_TICK for e in snaps)
    volumes = [e.volume for e in snaps]
    assert volumes == sorted(volumes)
    assert volumes[-1] - volumes[0] == sum(t.size for t in f.trades()) == 17
    assert [t.size for t in f.trades()] == sizes


async def test_tick_by_tick_only_reads_emit_no_snapshot_event(
    feed: Make, monkeypatch: pytest.MonkeyPatch
) -> None:
    f = await feed()
    await f.until(lambda: f.conn.ready and f.md.stats.snapshots > 0 and f.md.stats.quotes > 0)
    ticker = f.conn.client.ib.ticker(f.md.contract)  # type: ignore[arg-type]
    assert ticker is not None
    updates = [0]

    def count(_: Any) -> None:
        updates[0] += 1

    ticker.updateEvent += count
    snapshots = len(f.snapshots())
    monkeypatch.setattr(f.gw.feed, "flush", lambda: None)  # no 250 ms samples for now
    t0 = SIM_START.timestamp()
    for i in range(3):
        f.gw.apply(TradeTick(t0 + i, 5000.25, 4, Side.BUY))
        await f.until(lambda n=i: len(f.trades()) == n + 1)  # one read per trade
    # Tick-by-tick bypasses ib_async's Ticker (see test_tick_by_tick_skips_ib_async_tickers)
    assert updates[0] == 0
    assert len(f.snapshots()) == snapshots  # and no SnapshotEvent was made of those reads
    monkeypatch.undo()  # samples again: the three trades arrive as one RTVolume report
    await f.until(lambda: len(f.snapshots()) > snapshots)
    assert [(p.size, p.single) for p in f.snapshots()[-1].prints] == [(12, False)]
    ticker.updateEvent -= count


async def test_volume_snapshots_do_not_make_tick_by_tick_look_fresh(feed: Make) -> None:
    f = await feed(data=DataSettings(stale_after_s=30, reconnect_after_stale_s=90))
    await f.until(lambda: f.conn.ready and f.md.stats.snapshots > 0)
    f.gw.apply(TradeTick(SIM_START.timestamp(), 5000.25, 1, Side.BUY))
    await f.until(lambda: len(f.trades()) == 1 and f.printed() == 1)
    f.now[0] += 31  # 31 s without a trade ...
    snapshots = f.md.stats.snapshots
    f.gw.apply(QuoteTick(SIM_START.timestamp(), 5000.25, 5000.5, 10, 10))
    await f.until(lambda: f.md.stats.snapshots > snapshots)  # ... but a fresh sample
    await f.md.check()
    assert f.md.stats.resubscribes == 2
    assert f.md.stats.stale


async def test_refused_volume_subscription_keeps_tick_by_tick(feed: Make) -> None:
    f = await feed()
    await f.until(lambda: f.conn.ready and f.md.stats.snapshots > 0)
    session = f.gw.session_of(3)
    assert session is not None
    with structlog.testing.capture_logs() as logs:
        for _ in range(2):
            session.error(f.mkt_req_id(), 354, "Requested market data is not subscribed.")
        await f.until(lambda: f.md.stats.refusals.get(354, 0) == 2)
    assert f.md.stats.mode is DataMode.TICK_BY_TICK
    assert f.md.stats.volume_refused
    assert f.md.stats.resubscribes == 1
    assert sum(e["event"] == "volume_subscription_refused" for e in logs) == 1
    f.gw.apply(TradeTick(SIM_START.timestamp(), 5000.25, 6, Side.BUY))
    await f.until(lambda: any(t.size == 6 for t in f.trades()))


async def test_volume_takes_its_place_in_the_stream_not_the_end_of_the_read(feed: Make) -> None:
    """One socket read holding IB's cumulative volume and then a trade: the volume describes
    the tape *before* that trade, so it must reach the extractor before it (a volume taken at
    the end of the read would already include the trade and look like missing volume)."""
    f = await feed()
    await f.until(lambda: f.conn.ready and f.md.stats.snapshots > 0)
    decoder = f.conn.client.ib.client.decoder
    all_last = next(r for r, kind in f.md.stream._req_ids.items() if kind == "AllLast")
    volume = f.snapshots()[-1].volume
    before = len(f.events)
    # Such a read, as the client hands it to the decoder message by message: TICK_SIZE
    # (VOLUME) on the reqMktData id, then TICK_BY_TICK (AllLast); then the end of the read.
    decoder.interpret(["2", "6", str(f.mkt_req_id()), "8", str(volume + 5)])
    t = int(SIM_START.timestamp())
    decoder.interpret(["99", str(all_last), "1", str(t), "5000.25", "3", "0", "CME", ""])
    f.conn.client.ib.updateEvent.emit()
    new = f.events[before:]
    assert [type(e).__name__ for e in new] == ["SnapshotEvent", "TradeEvent"]
    assert isinstance(new[0], SnapshotEvent)
    assert new[0].volume == volume + 5


async def test_tick_by_tick_fields_become_events_exactly(feed: Make) -> None:
    """Our tick-by-tick messages are read straight from the decoder's fields: every value,
    the attribute bits, the gateway's time, our clock and sequence, and the counters."""
    f = await feed()
    await f.until(lambda: f.conn.ready and f.md.stats.quotes > 0)
    ids = {kind: str(r) for r, kind in f.md.stream._req_ids.items()}
    decoder = f.conn.client.ib.client.decoder
    stats = f.md.stats
    before, counts = len(f.events), (stats.ticks_total, stats.trades, stats.quotes)
    seq = f.events[-1].seq
    f.now[0] = 2000.5
    last, quote = ids["AllLast"], ids["BidAsk"]
    decoder.interpret(["99", last, "2", "1795185001", "5000.75", "7", "3", "CME", ""])
    decoder.interpret(["99", last, "1", "1795185002", "5001.0", "2", "0", "CME", ""])
    decoder.interpret(["99", quote, "3", "1795185003", "5000.5", "5000.75", "12", "30", "0"])
    assert f.events[before:] == [
        TradeEvent(seq + 1, 5000.75, 7.0, 1795185001.0, 2000.5, True, True),
        TradeEvent(seq + 2, 5001.0, 2.0, 1795185002.0, 2000.5, False, False),
        QuoteEvent(seq + 3, 5000.5, 5000.75, 12.0, 30.0, 1795185003.0, 2000.5),
    ]
    assert (stats.ticks_total, stats.trades, stats.quotes) == (
        counts[0] + 3,
        counts[1] + 2,
        counts[2] + 1,
    )
    assert stats.last_trade == stats.last_tick == 2000.5


async def test_other_tick_by_tick_messages_are_left_to_ib_async(feed: Make) -> None:
    """Another reqId, a tick type that does not match the subscription, or a message of the
    wrong length: no event and no count; ib_async handles (and logs) them as it always did."""
    f = await feed()
    await f.until(lambda: f.conn.ready and f.md.stats.quotes > 0)
    ids = {kind: str(r) for r, kind in f.md.stream._req_ids.items()}
    decoder = f.conn.client.ib.client.decoder
    ticker = f.conn.client.ib.ticker(f.md.contract)  # type: ignore[arg-type]
    assert ticker is not None
    before, ticks = len(f.events), f.md.stats.ticks_total
    decoder.interpret(["99", "9999", "3", "1795185003", "5000.5", "5000.75", "1", "1", "0"])
    last = ids["AllLast"]
    decoder.interpret(["99", last, "3", "1795185003", "4000.5", "4000.75", "1", "1", "0"])
    decoder.interpret(["99", ids["BidAsk"], "3", "1795185003", "5000.5", "5000.75", "1"])
    assert len(f.events) == before
    assert f.md.stats.ticks_total == ticks
    assert ticker.bid == 4000.5  # the mismatched tick type went through ib_async's wrapper
