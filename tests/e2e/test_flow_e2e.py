"""The daemon's order flow end to end: ibsim → ib_async → market data → extractor → status.json.

The whole supervisor runs against a simulated gateway whose market the test scripts tick by
tick, so every expected number is known: history before the daemon connects (warm start), live
trades after, bad ticks of every kind, and the status file a trader reads.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest

from daemon.flow.prints import Health
from daemon.runtime.status import read_status
from daemon.runtime.supervisor import Supervisor
from daemon.settings import Settings
from ibsim.feed import BadTick
from ibsim.gateway import Gateway, GatewayConfig
from ibsim.market import ListSource
from ibsim.model import QuoteTick, Side, TradeTick
from tests.daemon.broker.conftest import SIM_START, WAIT

T0 = SIM_START.timestamp()


Until = Callable[..., Awaitable[None]]


class Changes:
    """Wakes a waiting test whenever the daemon may have changed: a socket read, a state change,
    the end of a backfill."""

    def __init__(self, sup: Supervisor) -> None:
        self._event = asyncio.Event()
        sup.conn.client.ib.updateEvent += self._event.set
        sup.conn.on_state(lambda _: self._event.set())
        sup.warm_start.listeners.append(self._event.set)

    async def until(self, predicate: Callable[[], bool], limit: float = WAIT) -> None:
        async with asyncio.timeout(limit):
            while not predicate():
                self._event.clear()
                await self._event.wait()


def market(
    gw: Gateway, start: float, steps: int, price: float = 5000.0, moving: bool = True
) -> tuple[float, float]:
    """Trade `steps` seconds of a consistent market into the gateway; (volume, true delta).

    Historical ticks have whole-second times, so the order of a second's quotes and trades is
    lost in a backfill: history is scripted with a steady quote (`moving=False`) to be exact.
    """
    volume = delta = 0.0
    for i in range(steps):
        t = start + i
        bid = price + 0.25 * (i % 3) * moving
        gw.clock.advance_to(t + 0.5)  # as the gateway's own unpaced loop does
        gw.apply(QuoteTick(t, bid, bid + 0.25, 10 + i % 5, 12))
        side = Side.BUY if i % 4 else Side.SELL
        size = 1 + i % 6
        gw.apply(TradeTick(t + 0.5, bid + 0.25 if side is Side.BUY else bid, size, side))
        volume += size
        delta += size if side is Side.BUY else -size
    return volume, delta


@pytest.fixture
async def daemon(tmp_path: Path) -> AsyncIterator[Callable[..., tuple[Supervisor, Until]]]:
    asyncio.set_event_loop(asyncio.get_running_loop())
    running: list[tuple[Supervisor, asyncio.Task[int]]] = []

    def start(gw: Gateway, **data: object) -> tuple[Supervisor, Until]:
        settings = Settings(
            ib={"port": gw.port, "client_id": 7, "connect_timeout": 5.0},
            paths={"state_dir": str(tmp_path / "state")},
            status={"interval_s": 0.05},
            data=data,
            metrics={"enabled": False},
        )
        sup = Supervisor(settings)
        changes = Changes(sup)
        running.append((sup, asyncio.create_task(sup.run())))
        return sup, changes.until

    yield start
    for sup, task in running:
        sup.request_stop("test_end")
        await asyncio.wait_for(task, WAIT)


@pytest.fixture
async def gateway() -> AsyncIterator[Gateway]:
    gw = Gateway(
        GatewayConfig(port=0, client_id_release_delay=0.0),
        ListSource.one_quote(T0),
        speed=math.inf,
    )
    await gw.start()
    yield gw
    await gw.stop()


async def test_warm_start_then_live_gives_the_whole_session(
    gateway: Gateway, daemon: Callable[..., tuple[Supervisor, Until]]
) -> None:
    # Ten minutes of the session happen before the daemon starts.
    history_volume, history_delta = market(gateway, T0 + 1, 600, moving=False)
    sup, until = daemon(gateway)
    await until(lambda: sup.market.stats.resubscribes >= 1 and sup.flow.warming_up)
    await sup.client.ib.reqCurrentTimeAsync()  # the subscriptions have reached the gateway
    live_volume, live_delta = market(gateway, T0 + 700, 30, price=5001.0)
    await until(lambda: not sup.flow.warming_up and sup.flow.trades == 630)
    state = sup.flow.state()
    f = state.features
    assert f.session_volume == history_volume + live_volume
    assert f.cvd_session == history_delta + live_delta
    assert not f.session_partial
    assert state.rejected == {}
    assert sup.warm_start.runs == 1
    sup.write_status()
    doc = read_status(sup.status_path.parent)
    assert doc["cvd_session"] == f.cvd_session
    assert doc["data_health"] == "OK"
    assert doc["session_volume"] == history_volume + live_volume
    assert doc["rejected_ticks"] == {}


async def test_bad_ticks_from_the_gateway_are_counted_and_change_nothing(
    gateway: Gateway, daemon: Callable[..., tuple[Supervisor, Until]]
) -> None:
    sup, until = daemon(gateway, backfill=False)
    await until(lambda: sup.market.stats.resubscribes >= 1)
    await sup.client.ib.reqCurrentTimeAsync()
    market(gateway, T0 + 1, 20)
    await until(lambda: sup.flow.trades == 20 and sup.flow.health is Health.OK)
    before = sup.flow.state().features
    kinds = [BadTick.NEGATIVE_PRICE, BadTick.ZERO_PRICE, BadTick.ZERO_SIZE, BadTick.OFF_GRID]
    kinds += [BadTick.CROSSED, BadTick.SPIKE]
    for kind in kinds:
        gateway.bad_tick(kind)
    await sup.client.ib.reqCurrentTimeAsync()
    await until(lambda: sum(sup.flow.state().rejected.values()) == len(kinds))
    market(gateway, T0 + 30, 3)  # the market goes on
    await until(lambda: sup.flow.trades == 23)
    after = sup.flow.state()
    # ibsim's spike (+10 %) is also off the grid: rejected for that, its first fault.
    assert after.rejected == {"bad_price": 2, "bad_size": 1, "off_grid": 2, "crossed_quote": 1}
    assert after.features.session_volume == before.session_volume + sum(1 + i % 6 for i in range(3))
    sup.write_status()
    assert read_status(sup.status_path.parent)["rejected_ticks"] == after.rejected


async def test_trades_missed_during_an_outage_are_filled_in_after_1101(
    gateway: Gateway, daemon: Callable[..., tuple[Supervisor, Until]]
) -> None:
    sup, until = daemon(gateway)
    await until(lambda: sup.market.stats.resubscribes >= 1 and sup.flow.warming_up)
    await sup.client.ib.reqCurrentTimeAsync()
    before = market(gateway, T0 + 1, 20, moving=False)
    await until(lambda: sup.flow.trades == 20 and not sup.flow.warming_up)
    gateway.connectivity_lost()
    missed = market(gateway, T0 + 30, 10, moving=False)  # the daemon is sent none of these
    gateway.connectivity_restored(data_lost=True)
    await until(lambda: sup.market.stats.resubscribes >= 2)
    await sup.client.ib.reqCurrentTimeAsync()
    samples = sup.market.stats.snapshots
    after = market(gateway, T0 + 60, 10)
    # All trades processed, and a cumulative-volume sample taken after the last of them.
    await until(
        lambda: (
            sup.flow.trades == 40
            and not sup.flow.warming_up
            and sup.market.stats.snapshots > samples
        )
    )
    state = sup.flow.state()
    assert state.features.session_volume == before[0] + missed[0] + after[0]
    assert state.features.cvd_session == before[1] + missed[1] + after[1]
    assert sup.warm_start.runs == 2
    assert not state.volume_gap
    assert state.missing_volume == 0
