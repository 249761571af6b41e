"""The one persistent connection to TWS / IB Gateway, as an explicit state machine.

DISCONNECTED → CONNECTING → SYNCING (session hooks: resubscribe, reconcile) → READY ⇄ DEGRADED.
It reconnects forever with capped, jittered exponential backoff; on 326 it retries the same
client id and only then the configured fallbacks (never a random one); 1100/1101/1102 and farm
messages change state or data health without tearing the socket down; a silent socket is
probed with `reqCurrentTime` and recycled when the probe fails; a frame header announcing more
than ibapi's maximum message size recycles it at once. The link itself is the broker edge's
(`daemon.broker.ib.IbClient`): this module hears its events as the client's `LinkListener`;
opening the socket (ports, client ids, 326) is `Connector`'s (`daemon.broker.connector`).
"""

from __future__ import annotations

import asyncio
import enum
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import structlog

from daemon.broker import tws_errors
from daemon.broker.connector import Connector, disconnect_quietly
from daemon.broker.ib.client import IbClient
from daemon.settings import IbSettings, is_paper_account, mask_account

log = structlog.get_logger("daemon.broker.connection")

SessionHook = Callable[[IbClient], Awaitable[None]]
Hook = Callable[[], Awaitable[None]]


class ConnState(enum.StrEnum):
    DISCONNECTED = "DISCONNECTED"
    CONNECTING = "CONNECTING"
    SYNCING = "SYNCING"
    READY = "READY"
    DEGRADED = "DEGRADED"
    STOPPED = "STOPPED"


class LiveAccountRefusedError(Exception):
    """The login's account is not a paper account and live trading was not enabled."""


@dataclass(frozen=True, slots=True)
class Backoff:
    """Reconnect delays: initial * 2^attempt, capped, jittered down by up to `jitter`."""

    initial: float = 1.0
    cap: float = 60.0
    jitter: float = 0.5
    # A connection that lived this long was a working session, so the next outage starts again
    # at `initial`; a gateway that drops every connection within seconds still backs off to
    # `cap`. (At 60 s, chaos runs saw drops a minute apart cost 40 s each.)
    stable_after: float = 3.0

    def delay(self, attempt: int, rng: random.Random) -> float:
        base = min(self.cap, self.initial * 2.0 ** min(attempt, 30))
        return float(base * (1.0 - self.jitter * rng.random()))


@dataclass(frozen=True, slots=True)
class Heartbeat:
    """No data for `idle` seconds → probe with reqCurrentTime; no answer in `probe` → recycle."""

    idle: float = 20.0
    probe: float = 5.0


@dataclass
class ConnectionStatus:
    """What status.json reports about the connection."""

    state: ConnState = ConnState.DISCONNECTED
    since: float = field(default_factory=time.time)
    reconnect_count: int = 0
    last_error: tuple[int, str] | None = None
    server_version: int | None = None
    accounts: list[str] = field(default_factory=list)
    port: int | None = None
    client_id: int | None = None
    ib_connected: bool = True  # False between 1100 and 1101/1102
    farms: dict[str, int] = field(default_factory=dict)  # farm → last status code

    @property
    def data_farm_ok(self) -> bool:
        up = tws_errors.MARKET_DATA_FARM_UP
        return self.farms.get("market_data", 2104) in up and self.ib_connected


def choose_account(configured: str, accounts: list[str], allow_live: bool) -> str:
    """The account to trade among the login's ``accounts`` ("" = several, none configured);
    LiveAccountRefusedError when it is not managed, or live without ``allow_live``."""
    if configured and configured not in accounts:
        raise LiveAccountRefusedError(
            f"ib.account {mask_account(configured)} is not managed by this login "
            f"(managed: {', '.join(mask_account(a) for a in accounts)})"
        )
    account = accounts[0] if not configured and len(accounts) == 1 else configured
    chosen = [account] if account else accounts
    live = [a for a in chosen if not is_paper_account(a)]
    if live and not allow_live:
        raise LiveAccountRefusedError(
            f"account {', '.join(mask_account(a) for a in live)} is not a paper account "
            '(paper accounts start with "DU"); set trading.mode = "live" and pass --live '
            "to trade it"
        )
    return account


async def _sleep_unless(stopping: asyncio.Event, sleep: Awaitable[None]) -> None:
    """Await ``sleep``, or less when ``stopping`` is set meanwhile."""
    sleeper = asyncio.ensure_future(sleep)
    stopper = asyncio.ensure_future(stopping.wait())
    try:
        await asyncio.wait({sleeper, stopper}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in (sleeper, stopper):
            task.cancel()


class Connection:
    """Keeps the one client connected; other components register hooks instead of touching
    sockets."""

    def __init__(
        self,
        client: IbClient,
        settings: IbSettings,
        *,
        allow_live: bool = False,
        backoff: Backoff | None = None,
        heartbeat: Heartbeat | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        clock: Callable[[], float] = time.monotonic,
        rng: random.Random | None = None,
    ) -> None:
        self.client = client
        self.settings = settings
        self.allow_live = allow_live
        self.backoff = backoff or Backoff()
        self.heartbeat = heartbeat or Heartbeat()
        self.status = ConnectionStatus()
        self.account = settings.account
        self._sleep = sleep
        self._clock = clock
        self._rng = rng or random.Random()
        self._session_hooks: list[SessionHook] = []
        self._data_lost_hooks: list[Hook] = []
        self._data_kept_hooks: list[Hook] = []
        self._disconnect_hooks: list[Callable[[], None]] = []
        self._state_hooks: list[Callable[[ConnState], None]] = []
        self._disconnected = asyncio.Event()
        self._stopping = asyncio.Event()
        self._connector = Connector(client, settings)
        self._tasks: set[asyncio.Task[None]] = set()
        client.listen(self)

    # --- registration ---

    def on_session(self, hook: SessionHook) -> None:
        """Awaited after every new socket, in registration order, before READY."""
        self._session_hooks.append(hook)

    def on_data_lost(self, hook: Hook) -> None:
        """Awaited on 1101: the gateway dropped every market-data subscription."""
        self._data_lost_hooks.append(hook)

    def on_data_kept(self, hook: Hook) -> None:
        """Awaited on 1102: subscriptions survived; verify freshness."""
        self._data_kept_hooks.append(hook)

    def on_disconnect(self, hook: Callable[[], None]) -> None:
        self._disconnect_hooks.append(hook)

    def on_state(self, hook: Callable[[ConnState], None]) -> None:
        self._state_hooks.append(hook)

    # --- public state ---

    @property
    def state(self) -> ConnState:
        return self.status.state

    @property
    def ready(self) -> bool:
        return self.status.state is ConnState.READY

    @property
    def client_id_candidates(self) -> list[int]:
        return self._connector.client_id_candidates

    def _set_state(self, state: ConnState) -> None:
        if state is self.status.state:
            return
        previous = self.status.state
        self.status.state = state
        self.status.since = time.time()
        log.info("connection_state", state=state.value, previous=previous.value)
        for hook in list(self._state_hooks):
            hook(state)

    # --- lifecycle ---

    async def run(self) -> None:
        """Connect, keep connected, reconnect; returns only after `stop()`."""
        attempt = 0
        try:
            while not self._stopping.is_set():
                if await self._connect_once():
                    up_since = self._clock()
                    if await self._sync():
                        await self._disconnected.wait()
                    if self._stopping.is_set():
                        break
                    self.status.reconnect_count += 1
                    if self._clock() - up_since >= self.backoff.stable_after:
                        attempt = 0
                delay = self.backoff.delay(attempt, self._rng)
                attempt += 1
                log.info("reconnect_wait", seconds=round(delay, 3), attempt=attempt)
                await _sleep_unless(self._stopping, self._sleep(delay))
        finally:
            self._set_state(ConnState.STOPPED)

    async def stop(self) -> None:
        """Disconnect and end `run()`; working orders at the broker are left as they are."""
        self._stopping.set()
        self._disconnected.set()
        for task in list(self._tasks):
            task.cancel()
        if self.client.connected:
            self.client.disconnect()

    def recycle(self, reason: str) -> None:
        """Drop the socket so that `run()` reconnects and resubscribes (e.g. stale data)."""
        log.warning("connection_recycle", reason=reason)
        if self.client.connected:
            self.client.disconnect()

    async def _connect_once(self) -> bool:
        self._set_state(ConnState.CONNECTING)
        connected = await self._connector.connect(self._disconnected)
        if connected is None:
            self._set_state(ConnState.DISCONNECTED)
            return False
        port, client_id = connected
        self.status.port = port
        self.status.client_id = client_id
        self.status.server_version = self.client.server_version()
        self.status.ib_connected = True
        log.info(
            "connected",
            host=self.settings.host,
            port=port,
            client_id=client_id,
            server_version=self.status.server_version,
        )
        return True

    async def _sync(self) -> bool:
        """Account guard and session hooks; False when the connection went down meanwhile."""
        self._set_state(ConnState.SYNCING)
        accounts = self.client.managed_accounts()
        self.status.accounts = accounts
        try:
            self.account = choose_account(self.settings.account, accounts, self.allow_live)
        except LiveAccountRefusedError:
            disconnect_quietly(self.client)
            raise
        self.client.set_idle_timeout(self.heartbeat.idle)
        try:
            for hook in list(self._session_hooks):
                await hook(self.client)
        except (ConnectionError, TimeoutError) as exc:
            log.warning("sync_failed", error=repr(exc))
            disconnect_quietly(self.client)
            return False
        if not self.client.connected:
            return False
        self._set_state(ConnState.READY if self.status.ib_connected else ConnState.DEGRADED)
        return True

    # --- the link's events (LinkListener) ---

    def on_link_lost(self) -> None:
        if self.status.state in (ConnState.READY, ConnState.DEGRADED, ConnState.SYNCING):
            if self._stopping.is_set():
                log.info("disconnected", port=self.status.port, reason="stopping")
            else:
                log.warning("disconnected", port=self.status.port)
            self._set_state(ConnState.DISCONNECTED)
            for hook in list(self._disconnect_hooks):
                hook()
        self._disconnected.set()

    def on_link_error(self, code: int, message: str) -> None:
        self.status.last_error = (code, message)

    def on_link_message(self, req_id: int, code: int, message: str) -> None:
        if code == tws_errors.CLIENT_ID_IN_USE:
            self._connector.client_id_in_use(self.status.state is ConnState.CONNECTING)
        farm = tws_errors.FARMS.get(code)
        if farm is not None:
            self.status.farms[farm] = code
            log.info(
                "farm_status",
                code=code,
                farm=farm,
                message=message,
                rate_limited=True,
                rate_key=str(code),
            )
        elif code == tws_errors.CONNECTIVITY_LOST:
            self.status.ib_connected = False
            log.warning("ib_connectivity_lost", code=code)
            if self.state is ConnState.READY:
                self._set_state(ConnState.DEGRADED)
        elif code in (tws_errors.RESTORED_DATA_LOST, tws_errors.RESTORED_DATA_KEPT):
            self.status.ib_connected = True
            lost = code == tws_errors.RESTORED_DATA_LOST
            log.info("ib_connectivity_restored", code=code, data_lost=lost)
            self._spawn(self._restored(self._data_lost_hooks if lost else self._data_kept_hooks))
        elif code == tws_errors.SOCKET_PORT_RESET:
            self.recycle("tws_socket_port_reset")

    async def _restored(self, hooks: list[Hook]) -> None:
        for hook in list(hooks):
            await hook()
        if self.state is ConnState.DEGRADED and self.client.connected:
            self._set_state(ConnState.READY)

    def on_frame_oversized(self, announced: int, limit: int) -> None:
        """ib_async would wait for this frame for good (the heartbeat with it: bytes still
        arrive), so the socket goes now; the reconnect resubscribes and reconciles."""
        log.error(
            "tws_frame_oversized",
            announced_bytes=announced,
            limit_bytes=limit,
            port=self.status.port,
            action="recycle the connection",
        )
        self.recycle("tws_frame_oversized")

    def on_link_idle(self, idle: float) -> None:
        self._spawn(self._probe(idle))

    async def _probe(self, idle: float) -> None:
        """The socket has been silent for `idle` seconds: is the gateway still answering?"""
        if not self.client.connected:
            return
        try:
            await asyncio.wait_for(self.client.current_time(), self.heartbeat.probe)
        except (TimeoutError, ConnectionError) as exc:
            log.warning("heartbeat_failed", idle_s=round(idle, 1), error=type(exc).__name__)
            self.recycle("heartbeat_timeout")
            return
        if self.client.connected:
            self.client.set_idle_timeout(self.heartbeat.idle)

    def _spawn(self, coro: Awaitable[None]) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
