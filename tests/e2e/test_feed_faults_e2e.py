"""A frozen feed and a wedged socket through the whole daemon: neither may look healthy.

The market is open (ESZ6 at 08:30 CT on a Friday, the harness's start) and staleness is scaled
down (`stale_after_s` 0.5 s, `reconnect_after_stale_s` 1.5 s) so that a spell of stale data
runs its whole course in seconds.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

import pytest
import structlog

from daemon.broker.ib.framing import MAX_FRAME_BYTES
from daemon.flow.prints import Health
from ibsim.gateway import Gateway
from tests.daemon.broker.conftest import WAIT
from tests.e2e.harness import Daemon, Market

STALE = {"stale_after_s": 0.5, "reconnect_after_stale_s": 1.5}
OVERSIZED = 0x7FFFFFF0  # what ibsim's header announces

Start = Callable[..., Daemon]


class Wake:
    """Wakes a waiting test at every socket read, state change and market check: a frozen feed
    brings no socket reads, and its verdict comes from the supervisor's periodic check."""

    def __init__(self, d: Daemon) -> None:
        self._event = asyncio.Event()
        sup = d.sup
        sup.client.ib.updateEvent += self._event.set
        sup.conn.on_state(lambda _: self._event.set())
        check = sup.market.check

        async def checked() -> None:
            try:
                await check()
            finally:
                self._event.set()

        sup.market.check = checked  # type: ignore[method-assign]

    async def next(self) -> None:
        self._event.clear()
        await self._event.wait()

    async def until(self, predicate: Callable[[], bool], limit: float = WAIT) -> None:
        async with asyncio.timeout(limit):
            while not predicate():
                await self.next()


def events(logs: list[dict[str, object]]) -> list[tuple[object, object]]:
    return [(e["event"], e.get("action", e.get("reason"))) for e in logs]


async def test_a_frozen_feed_degrades_then_resubscribes_then_reconnects_until_it_thaws(
    gateway: Gateway, daemon: Start
) -> None:
    d = daemon(gateway, data=STALE)
    sup = d.sup
    wake = Wake(d)
    market = Market(gateway)
    await d.ready(market)
    reconnects = sup.conn.status.reconnect_count

    with structlog.testing.capture_logs() as logs:
        gateway.freeze_feed(None)
        await wake.until(lambda: sup.flow.health is Health.DEGRADED and sup.market.stats.stale)
        assert not d.trader.view(0.0, None).trusted  # what the strategy sees: no new entries
        doc = sup.write_status()
        assert (doc["data_stale"], doc["data_health"], doc["state"]) == (True, "DEGRADED", "READY")
        await wake.until(
            lambda: sup.conn.status.reconnect_count >= reconnects + 2 and sup.conn.ready, 20.0
        )
        assert sup.flow.health is Health.DEGRADED  # still frozen, still not trusted
        doc = sup.write_status()
        assert doc["data_stale"]
        assert doc["last_tick_age_s"] > STALE["reconnect_after_stale_s"]

    seen = events(logs)
    first = seen.index(("market_data_stale", "resubscribe"))
    recycle = ("connection_recycle", "market_data_stale")
    assert seen[first:].count(recycle) >= 2
    until_recycle = seen[first : seen.index(recycle)]
    assert ("subscribed", None) in until_recycle  # resubscribed on the same socket first
    assert ("market_data_still_stale", "reconnect") in until_recycle
    steps = [e for e in logs if e["event"] == "market_data_still_stale"]
    assert all(float(e["stale_for_s"]) >= 1.5 for e in steps)  # type: ignore[arg-type]
    assert [e["reconnects"] for e in steps if e["action"] == "reconnect"][:2] == [0, 1]

    ticks = sup.market.stats.ticks_total
    gateway.thaw_feed()
    await wake.until(lambda: sup.conn.ready and sup.market.stats.ticks_total > ticks)
    async with asyncio.timeout(WAIT):  # trades until one lands on a live subscription
        while sup.flow.health is not Health.OK:
            market.trade()
            await wake.next()
    await wake.until(lambda: not sup.market.stats.stale)
    doc = sup.write_status()
    assert (doc["data_stale"], doc["data_health"]) == (False, "OK")
    assert d.trader.view(0.0, None).trusted


async def test_an_oversized_frame_recycles_the_connection_at_once(
    gateway: Gateway, daemon: Start
) -> None:
    d = daemon(gateway)
    sup = d.sup
    wake = Wake(d)
    market = Market(gateway)
    await d.ready(market)
    resubscribes = sup.market.stats.resubscribes
    with structlog.testing.capture_logs() as logs:
        # Bytes keep coming, so ib_async's idle heartbeat (20 s) never fires: only the frame
        # size check ends this, and within a few seconds.
        gateway.send_bad_frame("oversized", trickle_s=30.0)
        await wake.until(lambda: sup.conn.status.reconnect_count == 1, 5.0)
        await wake.until(
            lambda: (
                sup.conn.ready
                and d.trader.sync.reconciled
                and sup.market.stats.resubscribes > resubscribes
            )
        )
    (oversized,) = [e for e in logs if e["event"] == "tws_frame_oversized"]
    assert (oversized["announced_bytes"], oversized["limit_bytes"]) == (OVERSIZED, MAX_FRAME_BYTES)
    assert ("connection_recycle", "tws_frame_oversized") in events(logs)
    await d.ready(market)  # data flows on the new socket


async def test_a_garbage_frame_is_logged_and_the_daemon_goes_on(
    gateway: Gateway, daemon: Start, caplog: pytest.LogCaptureFixture
) -> None:
    d = daemon(gateway)
    sup = d.sup
    wake = Wake(d)
    market = Market(gateway)
    await d.ready(market)
    trades = sup.flow.trades
    with caplog.at_level(logging.ERROR, logger="ib_async"):
        gateway.send_bad_frame("garbage")
        market.trade()
        await wake.until(lambda: sup.flow.trades > trades)  # decoded after the garbage
    assert any("Error handling fields" in r.getMessage() for r in caplog.records)
    assert sup.conn.ready
    assert sup.conn.status.reconnect_count == 0
    assert not d.task.done()
    assert sup.flow.health is Health.OK
    # The frame tracker stepped over the garbage as one frame: the next header still counts.
    gateway.send_bad_frame("oversized")
    await wake.until(lambda: sup.conn.status.reconnect_count == 1, 5.0)
