"""The one persistent connection to TWS / IB Gateway, as an explicit state machine.

DISCONNECTED → CONNECTING → SYNCING (session hooks: resubscribe, reconcile) → READY ⇄ DEGRADED.
It reconnects forever with capped, jittered exponential backoff; on 326 it retries the same
client id and only then the configured fallbacks (never a random one); 1100/1101/1102 and farm
messages change state or data health without tearing the socket down; a silent socket is
probed with `reqCurrentTime` and recycled when the probe fails; a frame header announcing more
than ibapi's maximum message size recycles it at once (`framing`).
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import structlog
from ib_async import IB, StartupFetch, StartupFetchALL

from daemon.broker import tws_errors
from daemon.broker.framing import guard_frames
from daemon.settings import IbSettings, is_paper_account, mask_account

log = structlog.get_logger("daemon.broker.connection")

SessionHook = Callable[[IB], Awaitable[None]]
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


def yield_between_reads(protocol: asyncio.Protocol) -> None:
    """After each socket read is decoded, let the event loop run before the next one.

    Under a saturating feed uvloop hands the protocol up to 32 reads of 256 KB in one loop
    turn; decoding them back to back held the loop for seconds (timers late, status.json and
    the systemd watchdog stalled, SIGTERM past TimeoutStopSec). Pausing reading after each
    chunk and resuming on the next turn keeps one chunk per turn; the kernel buffers the rest.
    """
    received = protocol.data_received

    def data_received(data: bytes) -> None:
        received(data)
        transport = getattr(protocol, "transport", None)
        if transport is None or transport.is_closing():
            return
        transport.pause_reading()
        asyncio.get_running_loop().call_soon(_resume_reading, transport)

    protocol.data_received = data_received  # type: ignore[method-assign]


def _resume_reading(transport: asyncio.Transport) -> None:
    if not transport.is_closing():
        transport.resume_reading()


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
        return self.farms.get("market_data", 2104) in (2104, 2108) and self.ib_connected


_FARMS = {2103: "market_data", 2104: "market_data", 2108: "market_data", 2119: "market_data"}
_FARMS |= {2105: "historical", 2106: "historical", 2107: "historical"}
_FARMS |= {2157: "secdef", 2158: "secdef"}

# Codes with an event of their own: farms (farm_status), 1100-1102 (ib_connectivity_*), and
# 202 (the executor says whether the cancel was ours).
_LOGGED_ELSEWHERE = frozenset({*_FARMS, 1100, 1101, 1102, 202})
_LOG_METHOD = {
    tws_errors.Severity.INFO: "info",
    tws_errors.Severity.WARNING: "warning",
    tws_errors.Severity.ERROR: "error",
    tws_errors.Severity.CRITICAL: "error",
}


def _log_tws_message(info: tws_errors.TwsCode, req_id: int, message: str) -> None:
    """One TWS message, named and explained from the catalogue, at its severity's level."""
    getattr(log, _LOG_METHOD[info.severity])(
        "tws_message",
        code=info.code,
        name=info.name,
        req_id=req_id,
        message=message,
        action=info.action,
        rate_limited=True,
        rate_key=str(info.code),
    )


_RETRIES_PER_CLIENT_ID = 3


class Connection:
    """Keeps one `IB` connected; other components register hooks instead of touching sockets."""

    def __init__(
        self,
        ib: IB,
        settings: IbSettings,
        *,
        allow_live: bool = False,
        backoff: Backoff | None = None,
        heartbeat: Heartbeat | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        clock: Callable[[], float] = time.monotonic,
        rng: random.Random | None = None,
    ) -> None:
        self.ib = ib
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
        self._id_index = 0
        self._id_326 = 0
        self._seen_326 = False
        self._refused = asyncio.Event()  # 326 while connecting: the gateway closes the socket
        self._tasks: set[asyncio.Task[None]] = set()
        guard_frames(ib.client.conn, self._frame_oversized)
        yield_between_reads(ib.client.conn)
        ib.errorEvent += self._on_error
        ib.disconnectedEvent += self._on_disconnected
        ib.timeoutEvent += self._on_idle

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
        return [self.settings.client_id, *self.settings.fallback_client_ids]

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
                await self._interruptible_sleep(delay)
        finally:
            self._set_state(ConnState.STOPPED)

    async def stop(self) -> None:
        """Disconnect and end `run()`; working orders at the broker are left as they are."""
        self._stopping.set()
        self._disconnected.set()
        for task in list(self._tasks):
            task.cancel()
        if self.ib.isConnected():
            self.ib.disconnect()

    def recycle(self, reason: str) -> None:
        """Drop the socket so that `run()` reconnects and resubscribes (e.g. stale data)."""
        log.warning("connection_recycle", reason=reason)
        if self.ib.isConnected():
            self.ib.disconnect()

    async def _interruptible_sleep(self, seconds: float) -> None:
        sleeper = asyncio.ensure_future(self._sleep(seconds))
        stopper = asyncio.ensure_future(self._stopping.wait())
        try:
            await asyncio.wait({sleeper, stopper}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (sleeper, stopper):
                task.cancel()

    async def _connect_once(self) -> bool:
        self._set_state(ConnState.CONNECTING)
        client_id = self.client_id_candidates[self._id_index]
        for port in self.settings.candidate_ports:
            self._seen_326 = False
            self._refused.clear()
            self._disconnected.clear()
            try:
                await self._connect_or_refused(port, client_id)
            except TimeoutError:
                if self._handle_timeout(port, client_id):
                    return False
                continue
            except OSError as exc:
                log.warning("connect_refused", host=self.settings.host, port=port, error=str(exc))
                continue
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # ib_async raises plain errors for API-level failures
                log.error("connect_failed", port=port, client_id=client_id, error=repr(exc))
                self._safe_disconnect()
                continue
            self._id_326 = 0
            self.status.port = port
            self.status.client_id = client_id
            self.status.server_version = self.ib.client.serverVersion()
            self.status.ib_connected = True
            log.info(
                "connected",
                host=self.settings.host,
                port=port,
                client_id=client_id,
                server_version=self.status.server_version,
            )
            return True
        self._set_state(ConnState.DISCONNECTED)
        return False

    async def _connect_or_refused(self, port: int, client_id: int) -> None:
        """`connectAsync`, cut short by a 326: ib_async would wait out its whole timeout."""
        connect = asyncio.ensure_future(
            self.ib.connectAsync(
                self.settings.host,
                port,
                clientId=client_id,
                timeout=self.settings.connect_timeout,
                account=self.settings.account,
                # Executions are asked for by the reconcile, for our client ids only: the
                # startup request has an empty filter and brings every client's fills.
                fetchFields=StartupFetchALL & ~StartupFetch.EXECUTIONS,
            )
        )
        refused = asyncio.ensure_future(self._refused.wait())
        try:
            await asyncio.wait({connect, refused}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            refused.cancel()
            if not connect.done():
                connect.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await connect
        if connect.cancelled():
            raise TimeoutError(f"client id {client_id} refused (326)")
        connect.result()

    def _handle_timeout(self, port: int, client_id: int) -> bool:
        """A connect timeout; True when it was a 326 (the id is held), so stop trying ports."""
        self._safe_disconnect()
        if not self._seen_326:
            log.warning("connect_timeout", port=port, client_id=client_id)
            return False
        self._id_326 += 1
        candidates = self.client_id_candidates
        log.warning(
            "client_id_in_use",
            client_id=client_id,
            attempt=self._id_326,
            action=tws_errors.lookup(326).action,
        )
        if self._id_326 >= _RETRIES_PER_CLIENT_ID and len(candidates) > 1:
            self._id_index = (self._id_index + 1) % len(candidates)
            self._id_326 = 0
            log.warning("client_id_fallback", client_id=candidates[self._id_index])
        self._set_state(ConnState.DISCONNECTED)
        return True

    def _safe_disconnect(self) -> None:
        with contextlib.suppress(Exception):
            self.ib.disconnect()

    async def _sync(self) -> bool:
        """Account guard and session hooks; False when the connection went down meanwhile."""
        self._set_state(ConnState.SYNCING)
        accounts = self.ib.managedAccounts()
        self.status.accounts = accounts
        self._check_account(accounts)
        self.ib.setTimeout(self.heartbeat.idle)
        try:
            for hook in list(self._session_hooks):
                await hook(self.ib)
        except (ConnectionError, TimeoutError) as exc:
            log.warning("sync_failed", error=repr(exc))
            self._safe_disconnect()
            return False
        if not self.ib.isConnected():
            return False
        self._set_state(ConnState.READY if self.status.ib_connected else ConnState.DEGRADED)
        return True

    def _check_account(self, accounts: list[str]) -> None:
        account = self.settings.account
        if account and account not in accounts:
            self._safe_disconnect()
            raise LiveAccountRefusedError(
                f"ib.account {mask_account(account)} is not managed by this login "
                f"(managed: {', '.join(mask_account(a) for a in accounts)})"
            )
        if not account and len(accounts) == 1:
            account = accounts[0]
        self.account = account
        chosen = [account] if account else accounts
        live = [a for a in chosen if not is_paper_account(a)]
        if live and not self.allow_live:
            self._safe_disconnect()
            raise LiveAccountRefusedError(
                f"account {', '.join(mask_account(a) for a in live)} is not a paper account "
                '(paper accounts start with "DU"); set trading.mode = "live" and pass --live '
                "to trade it"
            )

    # --- events from ib_async ---

    def _on_disconnected(self) -> None:
        if self.status.state in (ConnState.READY, ConnState.DEGRADED, ConnState.SYNCING):
            if self._stopping.is_set():
                log.info("disconnected", port=self.status.port, reason="stopping")
            else:
                log.warning("disconnected", port=self.status.port)
            self._set_state(ConnState.DISCONNECTED)
            for hook in list(self._disconnect_hooks):
                hook()
        self._disconnected.set()

    def _on_error(self, req_id: int, code: int, message: str, contract: Any = None) -> None:
        info = tws_errors.lookup(code)
        if code == 326:
            self._seen_326 = True
            if self.status.state is ConnState.CONNECTING:
                self._refused.set()
        serious = info.severity in (tws_errors.Severity.ERROR, tws_errors.Severity.CRITICAL)
        if serious or tws_errors.is_connectivity(code):
            self.status.last_error = (code, message)
        if code in _FARMS:
            self.status.farms[_FARMS[code]] = code
            log.info(
                "farm_status",
                code=code,
                farm=_FARMS[code],
                message=message,
                rate_limited=True,
                rate_key=str(code),
            )
            return
        if code == 1100:
            self.status.ib_connected = False
            log.warning("ib_connectivity_lost", code=code)
            if self.state is ConnState.READY:
                self._set_state(ConnState.DEGRADED)
        elif code in (1101, 1102):
            self.status.ib_connected = True
            log.info("ib_connectivity_restored", code=code, data_lost=code == 1101)
            hooks = self._data_lost_hooks if code == 1101 else self._data_kept_hooks
            self._spawn(self._restored(hooks))
        elif code == 1300:
            self.recycle("tws_socket_port_reset")
        if code not in _LOGGED_ELSEWHERE:
            _log_tws_message(info, req_id, message)

    async def _restored(self, hooks: list[Hook]) -> None:
        for hook in list(hooks):
            await hook()
        if self.state is ConnState.DEGRADED and self.ib.isConnected():
            self._set_state(ConnState.READY)

    def _frame_oversized(self, announced: int, limit: int) -> None:
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

    def _on_idle(self, idle: float) -> None:
        self._spawn(self._probe(idle))

    async def _probe(self, idle: float) -> None:
        """The socket has been silent for `idle` seconds: is the gateway still answering?"""
        if not self.ib.isConnected():
            return
        try:
            await asyncio.wait_for(self.ib.reqCurrentTimeAsync(), self.heartbeat.probe)
        except (TimeoutError, ConnectionError) as exc:
            log.warning("heartbeat_failed", idle_s=round(idle, 1), error=type(exc).__name__)
            self.recycle("heartbeat_timeout")
            return
        if self.ib.isConnected():
            self.ib.setTimeout(self.heartbeat.idle)

    def _spawn(self, coro: Awaitable[None]) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
