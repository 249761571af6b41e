"""The connection state machine against a real simulated gateway and the real ib_async client."""

from __future__ import annotations

import asyncio
import math
import random
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
import structlog
from ib_async import Future

from daemon.broker.connection import (
    Backoff,
    Connection,
    ConnState,
    Heartbeat,
    LiveAccountRefusedError,
)
from daemon.broker.ib.client import IbClient
from daemon.settings import IbSettings
from ibsim.gateway import Gateway, GatewayConfig
from ibsim.market import ListSource

START = 1795185000.0  # Friday 2026-11-20 08:30 US/Central
WAIT = 10.0
FAST = Backoff(initial=0.01, cap=0.05, jitter=0.5, stable_after=3600.0)


class Harness:
    """A gateway, a Connection running against it, and a record of states and hooks."""

    def __init__(self, gw: Gateway, conn: Connection, task: asyncio.Task[None]) -> None:
        self.gw = gw
        self.conn = conn
        self.task = task
        self.states: list[ConnState] = []
        self.sessions = 0
        self.data_lost = 0
        self.data_kept = 0
        self._changed = asyncio.Event()

    def changed(self) -> None:
        self._changed.set()

    async def until(self, predicate: Callable[[], bool], limit: float = WAIT) -> None:
        async with asyncio.timeout(limit):
            while not predicate():
                self._changed.clear()
                await self._changed.wait()


Make = Callable[..., Awaitable[Harness]]


@pytest.fixture
async def harness() -> AsyncIterator[Make]:
    asyncio.set_event_loop(asyncio.get_running_loop())
    made: list[Harness] = []

    async def make(
        accounts: list[str] | None = None,
        heartbeat: Heartbeat | None = None,
        allow_live: bool = False,
        connect_timeout: float = 1.0,
        backoff: Backoff = FAST,
        clock: Callable[[], float] | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        **gw_config: Any,
    ) -> Harness:
        gw_config.setdefault("client_id_release_delay", 0.0)
        gw = Gateway(
            GatewayConfig(port=0, accounts=accounts or ["DU1234567"], **gw_config),
            ListSource.one_quote(START),
            speed=math.inf,
        )
        await gw.start()
        settings = IbSettings(port=gw.port, client_id=7, connect_timeout=connect_timeout)
        conn = Connection(
            IbClient(),
            settings,
            allow_live=allow_live,
            backoff=backoff,
            heartbeat=heartbeat or Heartbeat(idle=30.0, probe=5.0),
            rng=random.Random(1),
            sleep=sleep,
            **({"clock": clock} if clock is not None else {}),
        )
        h = Harness(gw, conn, asyncio.create_task(asyncio.sleep(0)))

        async def on_session(client: IbClient) -> None:
            h.sessions += 1
            h.changed()

        async def on_lost() -> None:
            h.data_lost += 1
            h.changed()

        async def on_kept() -> None:
            h.data_kept += 1
            h.changed()

        def on_state(state: ConnState) -> None:
            h.states.append(state)
            h.changed()

        conn.on_session(on_session)
        conn.on_data_lost(on_lost)
        conn.on_data_kept(on_kept)
        conn.on_state(on_state)
        conn.client.ib.errorEvent += lambda *_: h.changed()  # after Connection's own handler
        h.task = asyncio.create_task(conn.run())
        h.task.add_done_callback(lambda _: h.changed())
        made.append(h)
        return h

    yield make
    for h in made:
        await h.conn.stop()
        done, _ = await asyncio.wait({h.task}, timeout=WAIT)
        assert done, "Connection.run() did not end after stop()"
        if not h.task.cancelled():
            h.task.exception()  # retrieved: tests that expect one have asserted it
        await h.gw.stop()


async def test_connects_syncs_and_reports(harness: Make) -> None:
    h = await harness()
    await h.until(lambda: h.conn.state is ConnState.READY)
    assert h.states[:3] == [ConnState.CONNECTING, ConnState.SYNCING, ConnState.READY]
    assert h.sessions == 1
    status = h.conn.status
    assert (status.port, status.client_id, status.server_version) == (h.gw.port, 7, 178)
    assert status.accounts == ["DU1234567"]
    assert h.conn.account == "DU1234567"
    assert status.reconnect_count == 0


async def test_gateway_restart_reconnects_and_runs_session_hooks_again(harness: Make) -> None:
    h = await harness()
    await h.until(lambda: h.conn.ready)
    await h.gw.restart(0.3)
    await h.until(lambda: h.conn.ready and h.sessions == 2)
    assert h.conn.status.reconnect_count == 1
    assert ConnState.DISCONNECTED in h.states


@pytest.mark.parametrize("reset", [False, True])
async def test_socket_drop_reconnects(harness: Make, reset: bool) -> None:
    h = await harness()
    await h.until(lambda: h.conn.ready)
    h.gw.drop_clients(reset=reset)
    await h.until(lambda: h.conn.ready and h.sessions == 2)
    assert h.conn.status.reconnect_count == 1


async def test_1100_degrades_then_1101_resubscribes(harness: Make) -> None:
    h = await harness()
    await h.until(lambda: h.conn.ready)
    h.gw.connectivity_lost()
    await h.until(lambda: h.conn.state is ConnState.DEGRADED)
    assert not h.conn.status.data_farm_ok
    h.gw.connectivity_restored(data_lost=True)
    await h.until(lambda: h.conn.ready and h.data_lost == 1)
    assert h.data_kept == 0
    assert h.sessions == 1  # the socket stayed up
    assert h.conn.status.reconnect_count == 0


async def test_1100_then_1102_keeps_subscriptions(harness: Make) -> None:
    h = await harness()
    await h.until(lambda: h.conn.ready)
    h.gw.connectivity_lost()
    await h.until(lambda: h.conn.state is ConnState.DEGRADED)
    h.gw.connectivity_restored(data_lost=False)
    await h.until(lambda: h.conn.ready and h.data_kept == 1)
    assert h.data_lost == 0


async def test_farm_message_changes_data_health_only(harness: Make) -> None:
    h = await harness()
    await h.until(lambda: h.conn.ready)
    h.gw.farm(2103)
    await h.until(lambda: h.conn.status.farms.get("market_data") == 2103)
    assert h.conn.ready
    assert not h.conn.status.data_farm_ok
    h.gw.farm(2104)
    await h.until(lambda: h.conn.status.data_farm_ok)
    assert h.conn.status.reconnect_count == 0


async def test_326_at_reconnect_retries_until_the_id_is_free(harness: Make) -> None:
    now = [0.0]
    h = await harness(client_id_release_delay=60.0)
    h.gw._wall = lambda: now[0]
    await h.until(lambda: h.conn.ready)
    h.gw.drop_clients()
    # the gateway still holds id 7: every attempt meets 326
    await h.until(
        lambda: h.conn.status.last_error is not None and h.conn.status.last_error[0] == 326,
        limit=WAIT,
    )
    assert not h.conn.ready
    assert h.conn.status.client_id == 7
    now[0] += 60.0  # the id is released
    await h.until(lambda: h.conn.ready and h.sessions == 2)
    assert h.conn.status.client_id == 7  # same id, never a random one


async def test_326_ends_the_attempt_at_once_instead_of_waiting_out_the_connect_timeout(
    harness: Make,
) -> None:
    now = [0.0]
    h = await harness(client_id_release_delay=60.0, connect_timeout=3600.0)
    h.gw._wall = lambda: now[0]
    await h.until(lambda: h.conn.ready)
    refusals: list[int] = []
    h.conn.client.ib.errorEvent += lambda _req, code, *_: refusals.append(code)
    h.gw.drop_clients()
    # ib_async alone would sit in connectAsync for the whole hour after the first 326
    await h.until(lambda: refusals.count(326) >= 3)
    now[0] += 60.0
    await h.until(lambda: h.conn.ready and h.sessions == 2)


async def test_each_new_outage_starts_the_backoff_again_after_a_stable_connection(
    harness: Make,
) -> None:
    clock = [0.0]
    delays: list[float] = []

    async def sleep(seconds: float) -> None:
        delays.append(seconds)
        await asyncio.sleep(0)

    backoff = Backoff(initial=1.0, cap=8.0, jitter=0.0)  # the default stable_after
    h = await harness(backoff=backoff, clock=lambda: clock[0], sleep=sleep)
    for sessions in (1, 2, 3):  # drops in quick succession: the backoff grows
        await h.until(lambda n=sessions: h.conn.ready and h.sessions == n)
        h.gw.drop_clients()
    await h.until(lambda: h.conn.ready and h.sessions == 4)
    assert delays == [1.0, 2.0, 4.0]
    clock[0] += 3.0  # up 3 s: a working session; the next outage must not wait 8 s
    h.gw.drop_clients()
    await h.until(lambda: h.conn.ready and h.sessions == 5)
    assert delays == [1.0, 2.0, 4.0, 1.0]


async def test_stall_is_detected_by_the_probe_and_recycled(harness: Make) -> None:
    h = await harness(heartbeat=Heartbeat(idle=0.2, probe=0.2))
    await h.until(lambda: h.conn.ready)
    stall = asyncio.create_task(h.gw.stall(1.5))
    await h.until(lambda: h.conn.state is not ConnState.READY)
    await stall
    await h.until(lambda: h.conn.ready and h.sessions == 2)
    assert h.conn.status.reconnect_count >= 1


async def test_live_account_is_refused_without_live_flag(harness: Make) -> None:
    h = await harness(accounts=["U7654321"])
    with pytest.raises(LiveAccountRefusedError, match=r"\*\*\*4321 is not a paper account"):
        await asyncio.wait_for(h.task, WAIT)
    assert h.conn.state is ConnState.STOPPED
    assert h.sessions == 0


async def test_live_account_is_accepted_with_live_flag(harness: Make) -> None:
    h = await harness(accounts=["U7654321"], allow_live=True)
    await h.until(lambda: h.conn.ready)
    assert h.conn.account == "U7654321"


async def test_a_tws_message_is_logged_once_with_its_name_and_action(harness: Make) -> None:
    h = await harness()
    await h.until(lambda: h.conn.state is ConnState.READY)
    with structlog.testing.capture_logs() as logs:
        details = await asyncio.wait_for(
            h.conn.client.ib.reqContractDetailsAsync(Future("NOPE", exchange="CME")), WAIT
        )
        h.gw.farm(2103)  # a farm message has an event of its own
        await h.until(lambda: h.conn.status.farms.get("market_data") == 2103)
    assert details == []
    messages = [e for e in logs if e["event"] == "tws_message"]
    assert len(messages) == 1
    (message,) = messages
    assert (message["log_level"], message["code"], message["name"]) == (
        "error",
        200,
        "no_security_definition",
    )
    assert "check symbol, exchange" in message["action"]
    assert [e["code"] for e in logs if e["event"] == "farm_status"] == [2103]
