"""The socket reads under ib_async: a frame-size guard, and one read per loop turn.

Every TWS message is a 4-byte big-endian length and that many bytes. ib_async trusts the length
whatever it says: a header announcing 2 GB (a corrupted stream, a broken proxy) makes it buffer
for good, and since bytes keep arriving its idle timeout never fires either. IB's own client
(`ibapi`) refuses a payload over 0xFFFFFF bytes (error 507); `guard_frames` does the same in
front of ib_async's reader and hands the announced size to a callback that drops the socket.
`yield_between_reads` keeps a saturating feed from holding the event loop (see there).
"""

from __future__ import annotations

import asyncio
import struct
from collections.abc import Callable

# ibapi's own limit (MAX_MSG_LEN). The largest messages the daemon asks for (a 1000-tick
# reqHistoricalTicks page, contract details of every listed expiry) are under 100 KB, so a
# header above it is more than 150 times anything a real TWS sends us: corruption, not data.
MAX_FRAME_BYTES = 0xFFFFFF

_LENGTH = struct.Struct(">I")


class FrameTracker:
    """Follows the frame boundaries of one socket's stream, chunk by chunk (any chunking)."""

    __slots__ = ("_head", "_skip", "limit", "oversized")

    def __init__(self, limit: int = MAX_FRAME_BYTES) -> None:
        self.limit = limit
        self.oversized: int | None = None  # the announced length that exceeded the limit
        self._skip = 0  # bytes of the current frame still to come
        self._head = b""  # the first 1-3 bytes of a length header split across chunks

    def feed(self, data: bytes) -> int | None:
        """Take the next chunk; the announced length when it holds the first header above
        `limit` (kept in `oversized`; later chunks are ignored), else None."""
        if self.oversized is not None:
            return None
        n = len(data)
        pos = self._skip
        if self._head:
            head = self._head + data[: 4 - len(self._head)]
            if len(head) < 4:
                self._head = head
                return None
            pos = 4 - len(self._head)
            self._head = b""
            size: int = _LENGTH.unpack(head)[0]
            if size > self.limit:
                self.oversized = size
                return size
            pos += size
        unpack, limit = _LENGTH.unpack_from, self.limit
        while pos + 4 <= n:
            size = unpack(data, pos)[0]
            if size > limit:
                self.oversized = size
                return size
            pos += 4 + size
        if pos >= n:
            self._skip = pos - n
        else:
            self._skip = 0
            self._head = data[pos:]
        return None


def guard_frames(
    protocol: asyncio.Protocol,
    on_oversized: Callable[[int, int], None],
    limit: int = MAX_FRAME_BYTES,
) -> None:
    """Check the frames `protocol` receives; call `on_oversized(announced, limit)` once per
    socket at the first header above `limit`, then close the transport if it is still open.

    The chunk holding the bad header still goes to the protocol (the complete messages before
    it are real: an execution, say); later chunks of that socket do not. A new socket starts
    a new tracker.
    """
    received = protocol.data_received
    made = protocol.connection_made
    tracker = FrameTracker(limit)

    def connection_made(transport: asyncio.BaseTransport) -> None:
        nonlocal tracker
        tracker = FrameTracker(limit)
        made(transport)

    def data_received(data: bytes) -> None:
        if tracker.oversized is not None:
            return  # the socket is closing; nothing after the bad header is a message
        announced = tracker.feed(data)
        received(data)
        if announced is None:
            return
        on_oversized(announced, limit)
        transport = getattr(protocol, "transport", None)
        if transport is not None and not transport.is_closing():
            transport.close()

    protocol.connection_made = connection_made  # type: ignore[method-assign]
    protocol.data_received = data_received  # type: ignore[method-assign]


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
