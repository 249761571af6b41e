"""The doctor's connection attempts: one fresh `IB` each, and what TWS said on it."""

from __future__ import annotations

import asyncio
import contextlib
import enum
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import structlog
from ib_async import IB

from daemon.broker import tws_errors

log = structlog.get_logger("daemon.broker.doctor")


class Outcome(enum.Enum):
    CONNECTED = "connected"
    IN_USE = "in_use"  # 326
    SILENT = "silent"  # TCP accepted, no handshake answer
    NO_START = "no_start"  # handshake answered, START_API never acknowledged
    CLOSED = "closed"  # the peer closed the socket
    REFUSED = "refused"  # TCP connect failed


@dataclass
class Session:
    """One `IB` attempt: how the connect ended, and every message TWS sent on it."""

    ib: IB
    outcome: Outcome = Outcome.SILENT
    server_version: int = 0
    message: str = ""
    errors: list[tuple[int, int, str]] = field(default_factory=list)
    md_farm: int | None = None
    socket_closed: bool = False
    _poke: asyncio.Event = field(default_factory=asyncio.Event)

    def on_error(self, req_id: int, code: int, text: str, contract: Any = None) -> None:
        self.errors.append((req_id, code, text))
        if code in tws_errors.MARKET_DATA_FARMS:
            self.md_farm = code
        if code == tws_errors.CLIENT_ID_IN_USE:
            self.outcome = Outcome.IN_USE
            self.server_version = self.server_version or self.ib.client.serverVersion()
        self.poke()

    def on_api_error(self, message: str) -> None:
        self.message = self.message or message
        self.server_version = self.server_version or self.ib.client.serverVersion()
        self.poke()

    def on_socket_closed(self, message: str) -> None:
        self.socket_closed = True
        self.message = self.message or message
        self.poke()

    def poke(self, *_: Any) -> None:
        self._poke.set()

    def request_errors(self, since: int) -> list[tuple[int, str]]:
        """Codes and texts sent for a request (reqId > 0) after `errors[since]`."""
        return [(code, text) for req_id, code, text in self.errors[since:] if req_id > 0]

    async def until(self, done: Callable[[], bool], limit: float) -> bool:
        """Wait until `done()` (checked after each message or poke), at most `limit` s.

        Also ends, returning `done()`, as soon as the socket closes: nothing more will come.
        """
        deadline = asyncio.get_running_loop().time() + limit
        while not done():
            if self.socket_closed:
                return False
            remaining = deadline - asyncio.get_running_loop().time()
            if remaining <= 0:
                return False
            self._poke.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._poke.wait(), remaining)
        return True


@contextlib.asynccontextmanager
async def attempt(host: str, port: int, client_id: int, limit: float) -> AsyncIterator[Session]:
    """Connect one fresh `IB` (handshake and START_API only); always disconnected after."""
    ib = IB()
    session = Session(ib)
    ib.errorEvent += session.on_error
    ib.client.apiError += session.on_api_error
    ib.client.conn.disconnected += session.on_socket_closed
    ib.pendingTickersEvent += session.poke
    try:
        # timeout 0 = none in ib_async: `limit` bounds it here, so the state can be read first
        connecting = ib.client.connectAsync(host, port, client_id, 0)  # type: ignore[no-untyped-call]
        connect = asyncio.ensure_future(connecting)
        connect.add_done_callback(session.poke)
        await session.until(
            lambda: (
                connect.done()
                or session.outcome is Outcome.IN_USE
                or session.socket_closed
                or bool(session.message)
            ),
            limit,
        )
        session.server_version = session.server_version or ib.client.serverVersion()
        if connect.done() and not connect.cancelled() and connect.exception() is None:
            session.outcome = Outcome.CONNECTED
        elif session.outcome is not Outcome.IN_USE:
            session.outcome = _failed_outcome(session, connect)
        if not connect.done():
            ib.client.apiError -= session.on_api_error
            ib.client.conn.disconnected -= session.on_socket_closed
            connect.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await connect
        log.debug("doctor_attempt", port=port, client_id=client_id, outcome=session.outcome.value)
        yield session
    finally:
        ib.disconnect()


def _failed_outcome(session: Session, connect: asyncio.Future[None]) -> Outcome:
    if connect.done() and not connect.cancelled():
        exc = connect.exception()
        if isinstance(exc, OSError) and not isinstance(exc, TimeoutError):
            session.message = str(exc) or type(exc).__name__
            return Outcome.REFUSED
    if session.message or session.socket_closed:
        return Outcome.CLOSED
    return Outcome.NO_START if session.server_version else Outcome.SILENT


async def accepts_tcp(host: str, port: int, limit: float) -> bool:
    try:
        _, writer = await asyncio.wait_for(asyncio.open_connection(host, port), limit)
    except (OSError, TimeoutError):
        return False
    writer.close()
    with contextlib.suppress(Exception):
        await writer.wait_closed()
    return True
