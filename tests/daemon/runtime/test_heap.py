"""A full collection after each disconnect frees the cycles ib_async leaves behind at once."""

from __future__ import annotations

import asyncio
import gc
import math
import weakref
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from ib_async import LimitOrder, Trade

from daemon.broker.connection import Backoff, ConnState
from daemon.runtime import heap
from daemon.runtime.status import rss_mb
from daemon.runtime.supervisor import Supervisor
from daemon.settings import Settings
from ibsim.gateway import Gateway, GatewayConfig
from ibsim.market import ListSource
from tests.daemon.broker.conftest import SIM_START, WAIT


class Cycle:
    """Two objects that only a cyclic collection can free, like a Trade and its Events."""

    def __init__(self) -> None:
        self.me = self


@pytest.fixture
def no_automatic_gc() -> Iterator[None]:
    """Only explicit collections run, so a test sees exactly what they free."""
    gc.collect()
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


class Changes:
    """Wakes the test on every socket read and connection state change of the daemon."""

    def __init__(self, sup: Supervisor) -> None:
        self._event = asyncio.Event()
        sup.client.ib.updateEvent += self._event.set
        sup.conn.on_state(lambda _: self._event.set())

    async def until(self, predicate: Callable[[], bool]) -> None:
        async with asyncio.timeout(WAIT):
            while not predicate():
                self._event.clear()
                await self._event.wait()


def test_an_ib_async_trade_outlives_its_last_reference(no_automatic_gc: None) -> None:
    # Why the collection is needed at all: an eventkit Event keeps the last value it emitted,
    # and ib_async emits every Trade on its own events (`trade.statusEvent.emit(trade)`), so
    # reference counting alone never frees a Trade that ever changed status.
    trade = Trade()
    trade.statusEvent.emit(trade)
    gone = weakref.ref(trade)
    del trade
    assert gone() is not None
    gc.collect()
    assert gone() is None


async def test_collect_soon_runs_after_the_current_callback(no_automatic_gc: None) -> None:
    cycle = Cycle()
    gone = weakref.ref(cycle)
    heap.collect_soon()
    del cycle
    assert gone() is not None  # the disconnect's other hooks and ib_async's reset come first
    await asyncio.sleep(0)
    assert gone() is None


def test_collect_soon_outside_a_loop_collects_at_once(no_automatic_gc: None) -> None:
    cycle = Cycle()
    gone = weakref.ref(cycle)
    del cycle
    heap.collect_soon()
    assert gone() is None


def test_trimming_the_c_heap_gives_freed_pages_back() -> None:
    # What a busy connection allocated and freed in the middle of the C heap stays resident
    # until it is trimmed: objects over 512 bytes come from malloc, not Python's own arenas.
    assert heap._MALLOC_TRIM is not None  # glibc: the C library the daemon is supported on
    heap.trim_c_heap()
    blocks = [bytes(1000) for _ in range(60_000)]  # 60 MB of 1 KB chunks
    kept = blocks[::100]  # live chunks all the way up: no free space at the top to give back
    del blocks
    before = rss_mb()
    assert heap.trim_c_heap()
    after = rss_mb()
    assert before is not None
    assert after is not None
    assert before - after > 30, (before, after)
    assert len(kept) == 600


async def submitted(changes: Changes, trades: list[Trade]) -> None:
    await changes.until(lambda: all(t.orderStatus.status == "Submitted" for t in trades))


async def test_a_dropped_connection_leaves_no_cyclic_garbage(
    tmp_path: Path, no_automatic_gc: None
) -> None:
    asyncio.set_event_loop(asyncio.get_running_loop())
    gw = Gateway(
        GatewayConfig(port=0, client_id_release_delay=0.0),
        ListSource.one_quote(SIM_START.timestamp()),
        speed=math.inf,
    )
    await gw.start()
    sup = Supervisor(
        Settings(
            ib={"port": gw.port, "client_id": 9, "connect_timeout": 5.0},
            paths={"state_dir": str(tmp_path)},
            data={"backfill": False},
            metrics={"enabled": False},
        )
    )
    sup.conn.backoff = Backoff(initial=WAIT, cap=WAIT, jitter=0.0)  # stays down meanwhile
    changes = Changes(sup)
    task = asyncio.create_task(sup.run())
    try:
        await changes.until(lambda: sup.conn.ready and sup.market.contract is not None)
        contract = sup.market.contract
        assert contract is not None
        trades = [
            sup.client.ib.placeOrder(contract, LimitOrder("BUY", 1, p)) for p in (4000.0, 3999.0)
        ]
        await submitted(changes, trades)
        # The first one: the IB-level events hold the last Trade they emitted, the second.
        gone = weakref.ref(trades[0])
        del trades
        gw.drop_clients()
        await changes.until(lambda: sup.conn.state is ConnState.DISCONNECTED)
        assert gone() is not None  # the collection comes after the disconnect's callback
        await asyncio.sleep(0)
        assert gone() is None
    finally:
        sup.request_stop("test_end")
        await asyncio.wait_for(task, WAIT)
        await gw.stop()
