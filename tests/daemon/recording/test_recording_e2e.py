"""The whole daemon records what its order flow receives: ibsim → supervisor → file → read_day."""

from __future__ import annotations

import asyncio
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

from daemon.flow.events import QuoteEvent, TradeEvent
from daemon.recording import list_days, read_day
from daemon.runtime.supervisor import Supervisor
from daemon.settings import Settings
from ibsim.feed import BadTick
from ibsim.gateway import Gateway, GatewayConfig
from ibsim.market import ListSource
from ibsim.model import QuoteTick, Side, TradeTick
from tests.daemon.broker.conftest import SIM_START, WAIT

T0 = SIM_START.timestamp()  # Friday 2026-11-20 08:30 CT: trading day 2026-11-20


async def test_read_day_returns_exactly_what_the_flow_received(tmp_path: Path) -> None:
    asyncio.set_event_loop(asyncio.get_running_loop())
    gw = Gateway(
        GatewayConfig(port=0, client_id_release_delay=0.0),
        ListSource.one_quote(T0),
        speed=math.inf,
    )
    await gw.start()
    settings = Settings(
        ib={"port": gw.port, "client_id": 7, "connect_timeout": 5.0},
        paths={"state_dir": str(tmp_path)},
        status={"interval_s": 0.05},
        data={"backfill": False},
        recording={"flush_s": 0.05},
        metrics={"enabled": False},
    )
    sup = Supervisor(settings)
    received: list[Any] = []
    on_event = sup.flow.on_event

    def spy(ev: Any) -> None:
        received.append(ev)
        on_event(ev)

    sup.flow.on_event = spy  # type: ignore[method-assign]
    changed = asyncio.Event()
    sup.conn.client.ib.updateEvent += changed.set

    async def until(predicate: Callable[[], bool]) -> None:
        async with asyncio.timeout(WAIT):
            while not predicate():
                changed.clear()
                await changed.wait()

    task = asyncio.create_task(sup.run())
    try:
        await until(lambda: sup.market.stats.resubscribes >= 1)
        await sup.client.ib.reqCurrentTimeAsync()  # the subscriptions have reached the gateway
        for i in range(40):
            t = T0 + 1 + i
            gw.clock.advance_to(t + 0.5)
            bid = 5000.0 + 0.25 * (i % 4)
            gw.apply(QuoteTick(t, bid, bid + 0.25, 10 + i, 20 - i % 3))
            side = Side.BUY if i % 3 else Side.SELL
            gw.apply(TradeTick(t + 0.5, bid + 0.25 * (side is Side.BUY), 1 + i % 5, side))
        gw.bad_tick(BadTick.NEGATIVE_PRICE)  # recorded as it arrived: the guards judge it
        await sup.client.ib.reqCurrentTimeAsync()
        await until(lambda: sup.market.stats.trades == 41 and sup.market.stats.quotes >= 41)
    finally:
        sup.request_stop("test_end")
        assert await asyncio.wait_for(task, WAIT) == 0
        await gw.stop()

    flowed = [e for e in received if isinstance(e, TradeEvent | QuoteEvent)]
    recorded = list(read_day(tmp_path, "2026-11-20"))
    assert list_days(tmp_path) == ["2026-11-20"]
    assert len(recorded) == len(flowed) >= 82
    for sent, got in zip(flowed, recorded, strict=True):
        assert type(got) is type(sent)
        if isinstance(sent, TradeEvent):
            assert isinstance(got, TradeEvent)
            assert (got.price, got.size, got.exchange_time) == (
                sent.price,
                sent.size,
                sent.exchange_time,
            )
        else:
            assert isinstance(sent, QuoteEvent)
            assert isinstance(got, QuoteEvent)
            assert (got.bid, got.ask, got.bid_size, got.ask_size, got.exchange_time) == (
                sent.bid,
                sent.ask,
                sent.bid_size,
                sent.ask_size,
                sent.exchange_time,
            )
        assert got.received == sent.received
    assert [e.price for e in recorded if isinstance(e, TradeEvent)][-1] == -1.0
