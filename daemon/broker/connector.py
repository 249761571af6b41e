"""Opening the socket for `Connection`: the candidate ports in order, one client id at a time.

On 326 (client id in use) the gateway closes the socket; the attempt ends at once instead of
waiting out ib_async's connect timeout, and the same client id is tried again
`RETRIES_PER_CLIENT_ID` times before the next configured fallback (never a random one).
"""

from __future__ import annotations

import asyncio
import contextlib

import structlog

from daemon.broker import tws_errors
from daemon.broker.ib.client import IbClient
from daemon.settings import IbSettings

log = structlog.get_logger("daemon.broker.connection")

RETRIES_PER_CLIENT_ID = 3


def disconnect_quietly(client: IbClient) -> None:
    """Drop the socket, whatever state it is in."""
    with contextlib.suppress(Exception):
        client.disconnect()


class Connector:
    """Connect attempts with the client id that 326s have left us."""

    def __init__(self, client: IbClient, settings: IbSettings) -> None:
        self._client = client
        self._settings = settings
        self._id_index = 0
        self._id_326 = 0
        self._seen_326 = False
        self._refused = asyncio.Event()  # 326 while connecting: the gateway closes the socket

    @property
    def client_id_candidates(self) -> list[int]:
        """The configured client id, then its fallbacks."""
        return [self._settings.client_id, *self._settings.fallback_client_ids]

    def client_id_in_use(self, connecting: bool) -> None:
        """A 326 arrived; while `connecting` it ends the attempt in progress."""
        self._seen_326 = True
        if connecting:
            self._refused.set()

    async def connect(self, disconnected: asyncio.Event) -> tuple[int, int] | None:
        """(port, client id) of a new connection; None when every port failed, or at the first
        326 (the id is held: ports are not tried further). `disconnected` is cleared before
        each try, so that only the loss of the connection made sets it."""
        client_id = self.client_id_candidates[self._id_index]
        for port in self._settings.candidate_ports:
            self._seen_326 = False
            self._refused.clear()
            disconnected.clear()
            try:
                await self._connect_or_refused(port, client_id)
            except TimeoutError:
                if self._handle_timeout(port, client_id):
                    return None
                continue
            except OSError as exc:
                log.warning("connect_refused", host=self._settings.host, port=port, error=str(exc))
                continue
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # ib_async raises plain errors for API-level failures
                log.error("connect_failed", port=port, client_id=client_id, error=repr(exc))
                disconnect_quietly(self._client)
                continue
            self._id_326 = 0
            return port, client_id
        return None

    async def _connect_or_refused(self, port: int, client_id: int) -> None:
        """`connectAsync`, cut short by a 326: ib_async would wait out its whole timeout."""
        connect = asyncio.ensure_future(
            self._client.connect(
                self._settings.host,
                port,
                client_id,
                self._settings.connect_timeout,
                self._settings.account,
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
        disconnect_quietly(self._client)
        if not self._seen_326:
            log.warning("connect_timeout", port=port, client_id=client_id)
            return False
        self._id_326 += 1
        candidates = self.client_id_candidates
        log.warning(
            "client_id_in_use",
            client_id=client_id,
            attempt=self._id_326,
            action=tws_errors.lookup(tws_errors.CLIENT_ID_IN_USE).action,
        )
        if self._id_326 >= RETRIES_PER_CLIENT_ID and len(candidates) > 1:
            self._id_index = (self._id_index + 1) % len(candidates)
            self._id_326 = 0
            log.warning("client_id_fallback", client_id=candidates[self._id_index])
        return True
