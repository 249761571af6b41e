"""Market-data freshness: measured from accepted data, never reset by a resubscription, and
escalated from resubscribing to reconnecting while a dead feed stays dead."""

from __future__ import annotations

import asyncio
import math
import random
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
import structlog

from daemon.broker.connection import Connection, Heartbeat
from daemon.broker.freshness import FreshnessWatch, Step
from daemon.broker.ib.client import IbClient
from daemon.broker.marketdata import MarketData
from daemon.core.instrument import Instrument
from daemon.flow.extractor import OrderFlow
from daemon.flow.prints import Health
from daemon.settings import DataSettings, FlowSettings, IbSettings, InstrumentSettings
from ibsim.feed import BadTick
from ibsim.gateway import Gateway, GatewayConfig
from ibsim.market import ListSource
from ibsim.model import Side, TradeTick
from tests.daemon.broker.conftest import SIM_START
from tests.daemon.broker.test_marketdata import FAST, Feed

STALE, RECONNECT = 30.0, 90.0
OPEN = 3600.0  # the market opened an hour ago


def watch() -> FreshnessWatch:
    w = FreshnessWatch(STALE, RECONNECT)
    w.new_session(0.0)
    return w


# --- the watch alone ---


def test_a_dead_feed_is_resubscribed_then_reconnected_again_and_again() -> None:
    w = watch()
    assert w.judge(10.0, OPEN, 5.0, ticks=7) is Step.NONE
    assert not w.stale
    with structlog.testing.capture_logs() as logs:
        assert w.judge(36.0, OPEN, 5.0, ticks=7) is Step.RESUBSCRIBE  # 31 s without data
        assert w.stale
        assert w.stale_since == 35.0
        # the resubscription changes nothing: stale it stays, and nothing is due until 90 s
        assert [w.judge(t, OPEN, 5.0, ticks=7) for t in (40.0, 80.0, 124.9)] == [Step.NONE] * 3
        assert w.judge(125.0, OPEN, 5.0, ticks=7) is Step.RECONNECT
        assert w.judge(200.0, OPEN, 5.0, ticks=7) is Step.NONE
        assert w.judge(215.0, OPEN, 5.0, ticks=7) is Step.RECONNECT  # no cure: once more
        assert w.stale
    events = [(e["event"], e.get("action")) for e in logs]
    assert events == [
        ("market_data_stale", "resubscribe"),
        ("market_data_still_stale", "reconnect"),
        ("market_data_still_stale", "reconnect"),
    ]
    last = logs[-1]
    assert (last["stale_for_s"], last["data_age_s"]) == (180.0, 210.0)
    assert (last["resubscribes"], last["reconnects"], last["feed_answered"]) == (1, 1, False)


def test_a_feed_that_answers_over_a_quiet_market_is_never_reconnected() -> None:
    """Stale data (no trade), but the resubscriptions are answered (a gateway sends the current
    quote to a new subscription): the market itself is quiet, a reconnect would cure nothing."""
    w = watch()
    ticks = 3
    assert w.judge(31.0, OPEN, None, ticks) is Step.RESUBSCRIBE
    steps = []
    for k in range(1, 20):
        ticks += 2  # the answer to the last resubscription
        steps.append(w.judge(30.0 + k * RECONNECT, OPEN, None, ticks))
    assert steps == [Step.RESUBSCRIBE] * 19
    assert w.stale


def test_accepted_data_ends_it_and_the_next_spell_starts_afresh() -> None:
    w = watch()
    assert w.judge(40.0, OPEN, 5.0, 0) is Step.RESUBSCRIBE
    assert w.judge(130.0, OPEN, 5.0, 0) is Step.RECONNECT
    w.new_session(131.0)  # the reconnect's subscriptions
    with structlog.testing.capture_logs() as logs:
        assert w.judge(132.0, OPEN, 131.5, 4) is Step.NONE
    assert not w.stale
    assert logs[0]["event"] == "market_data_stale_ended"
    assert (logs[0]["reason"], logs[0]["reconnects"]) == ("fresh_data", 1)
    assert w.judge(161.0, OPEN, 131.5, 4) is Step.NONE
    assert w.judge(162.0, OPEN, 131.5, 4) is Step.RESUBSCRIBE


def test_a_new_connection_gets_its_allowance_within_a_spell_too() -> None:
    """The spell goes on across a reconnect (data is as old as it was), but it is the new
    socket's subscriptions that the next step judges, after their allowance."""
    w = watch()
    w.judge(31.0, OPEN, None, 0)
    assert w.judge(121.0, OPEN, None, 0) is Step.RECONNECT
    w.new_session(125.0)
    assert w.stale
    assert w.judge(150.0, OPEN, None, 0) is Step.NONE
    assert w.judge(211.0, OPEN, None, 0) is Step.RECONNECT
    w.new_session(200.0 + RECONNECT)  # a reconnect that took 80 s
    assert w.judge(305.0, OPEN, None, 0) is Step.NONE  # due, but only 15 s into the socket
    assert w.judge(320.0, OPEN, None, 0) is Step.RECONNECT


def test_no_staleness_while_closed_and_an_allowance_after_the_open() -> None:
    w = watch()
    assert w.judge(5000.0, None, 5.0, 0) is Step.NONE
    assert not w.stale
    assert w.judge(5010.0, 10.0, 5.0, 0) is Step.NONE  # opened 10 s ago; last trade yesterday
    assert w.judge(5020.0, 20.0, 5.0, 0) is Step.NONE
    assert w.judge(5031.0, 31.0, 5.0, 0) is Step.RESUBSCRIBE
    with structlog.testing.capture_logs() as logs:
        assert w.judge(5040.0, None, 5.0, 0) is Step.NONE  # closed: no longer stale
    assert not w.stale
    assert logs[0]["reason"] == "market_closed"


def test_age_is_from_the_socket_not_the_resubscription() -> None:
    w = watch()
    assert w.age(12.0, None) == 12.0
    assert w.age(12.0, 10.0) == 2.0
    w.new_session(11.0)
    assert w.age(12.0, 10.0) == 1.0
    assert math.isinf(FreshnessWatch(STALE, RECONNECT).age(1.0, None))


# --- market data against the gateway, with the order flow judging the ticks ---


class Flowing(Feed):
    flow: OrderFlow


Make = Callable[..., Awaitable[Flowing]]


@pytest.fixture
async def flowing() -> AsyncIterator[Make]:
    asyncio.set_event_loop(asyncio.get_running_loop())
    made: list[Flowing] = []

    async def make(**gw_config: Any) -> Flowing:
        gw = Gateway(
            GatewayConfig(port=0, client_id_release_delay=0.0, **gw_config),
            ListSource.one_quote(SIM_START.timestamp()),
            speed=math.inf,
        )
        await gw.start()
        conn = Connection(
            IbClient(),
            IbSettings(port=gw.port, client_id=3, connect_timeout=2.0),
            backoff=FAST,
            heartbeat=Heartbeat(idle=30.0, probe=5.0),
            rng=random.Random(2),
        )
        f = Flowing(gw, conn, None)  # type: ignore[arg-type]
        data = DataSettings(stale_after_s=STALE, reconnect_after_stale_s=RECONNECT, backfill=False)
        f.flow = OrderFlow(FlowSettings(), data, instrument=Instrument.of_product("ES"))

        def sink(event: Any) -> None:
            f.flow.on_event(event)
            f.sink(event)

        f.md = MarketData(
            conn,
            InstrumentSettings(),
            data,
            sink,
            clock=lambda: f.now[0],
            wall=lambda: f.wall[0],
            flow=f.flow,
        )
        conn.on_state(f.poke)
        f.task = asyncio.create_task(conn.run())
        made.append(f)
        return f

    yield make
    for f in made:
        await f.md.stop()
        await f.conn.stop()
        if f.task is not None:
            await asyncio.wait({f.task}, timeout=10.0)
        await f.gw.stop()


async def trade(f: Flowing, price: float, size: int = 1) -> None:
    trades = len(f.trades())
    f.gw.apply(TradeTick(f.gw.clock.now(), price, size, Side.BUY))
    await f.until(lambda: len(f.trades()) > trades)


async def test_a_frozen_feed_degrades_at_once_and_reconnects_while_it_stays_frozen(
    flowing: Make,
) -> None:
    f = await flowing()
    await f.until(lambda: f.conn.ready and f.md.stats.resubscribes == 1)
    await f.conn.client.ib.reqCurrentTimeAsync()  # the subscriptions have reached the gateway
    await trade(f, 5000.25)
    assert f.flow.health is Health.OK
    f.gw.freeze_feed()
    f.now[0] += 31
    await f.md.check()
    assert f.md.stats.stale
    assert f.flow.health is Health.DEGRADED  # no new entries, from the first check on
    assert f.flow.state().feed_stale
    assert f.md.stats.resubscribes == 2
    f.now[0] += 60  # the old code reconnected here; this is 60 s after going stale
    await f.md.check()
    assert f.conn.status.reconnect_count == 0
    f.now[0] += 30
    await f.md.check()
    await f.until(lambda: f.conn.status.reconnect_count == 1 and f.conn.ready)
    assert f.md.stats.stale  # the new socket brought nothing
    assert f.flow.health is Health.DEGRADED
    f.now[0] += RECONNECT
    await f.md.check()
    await f.until(lambda: f.conn.status.reconnect_count == 2 and f.conn.ready)
    assert f.flow.health is Health.DEGRADED

    f.gw.thaw_feed()
    await f.conn.client.ib.reqCurrentTimeAsync()
    await trade(f, 5000.5)
    assert f.flow.health is Health.OK  # the first accepted trade ends it
    await f.md.check()
    assert not f.md.stats.stale
    assert not f.flow.state().feed_stale


async def test_rejected_ticks_do_not_make_a_feed_fresh(flowing: Make) -> None:
    f = await flowing()
    await f.until(lambda: f.conn.ready and f.md.stats.resubscribes == 1)
    await f.conn.client.ib.reqCurrentTimeAsync()
    await trade(f, 5000.25)
    f.now[0] += 31
    received = f.md.stats.trades
    assert f.gw.bad_tick(BadTick.NEGATIVE_PRICE) > 0
    await f.until(lambda: f.md.stats.trades > received)  # a trade arrived, just now ...
    await f.md.check()
    assert f.md.stats.stale  # ... but the guards rejected it
    assert f.md.stats.resubscribes == 2
    assert f.flow.health is not Health.OK


async def test_a_quiet_market_is_resubscribed_but_not_reconnected(flowing: Make) -> None:
    f = await flowing()
    await f.until(lambda: f.conn.ready and f.md.stats.resubscribes == 1)
    f.now[0] += 31  # no trade at all: stale
    for k in range(4):
        ticks = f.md.stats.ticks_total
        await f.md.check()
        assert f.md.stats.stale
        assert f.md.stats.resubscribes == 2 + k
        await f.until(lambda t=ticks: f.md.stats.ticks_total > t)  # the current quote, again
        f.now[0] += RECONNECT
    assert f.conn.status.reconnect_count == 0
    assert f.md.stats.stale
    assert f.flow.state().feed_stale
    assert f.flow.health is not Health.OK
