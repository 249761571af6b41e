"""Under a saturating feed the event loop still runs between two socket reads (uvloop)."""

from __future__ import annotations

import array
import asyncio
import fcntl
import socket
import sys
import termios
import time

import uvloop
from ib_async import IB, Future

from daemon.broker.ib.framing import yield_between_reads

LIMIT = 30.0
READS = 24
READ_SIZE = 256 * 1024  # what uvloop reads at most at once; it reads again only after a full one
BACKLOG = READ_SIZE + 64 * 1024  # queued in the kernel before each read returns
BACKLOG_WAIT_S = 2.0


def _queued(sock: socket.socket) -> int:
    buf = array.array("i", [0])
    fcntl.ioctl(sock.fileno(), termios.FIONREAD, buf)
    return buf[0]


def _slow_decoder(sock: socket.socket) -> None:
    """Decode slower than the feed: return once more than a read's worth waits in the kernel.

    That is a saturating feed on any machine, whatever the speeds of gateway and reader (a CI
    machine's reader kept up with an unpaced ibsim). Bounded: a feed that cannot fill the
    kernel's buffer that far makes the check below fail, not hang.
    """
    deadline = time.monotonic() + BACKLOG_WAIT_S
    while _queued(sock) < BACKLOG and time.monotonic() < deadline:
        time.sleep(0.001)


async def _reads_per_turn(fair: bool) -> int:
    asyncio.set_event_loop(asyncio.get_running_loop())  # eventkit schedules on this loop
    # Its own process, unpaced: it writes as fast as the socket takes it, while we decode.
    gw = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "ibsim", "--port", "0", "--speed", "0",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL,
    )  # fmt: skip
    assert gw.stdout is not None
    port = int(await asyncio.wait_for(gw.stdout.readline(), LIMIT))
    ib = IB()
    if fair:
        yield_between_reads(ib.client.conn)
    reads = turn = worst = 0
    sock: socket.socket | None = None

    def on_data(_: bytes) -> None:
        nonlocal reads, turn
        if sock is None:
            return  # the handshake and the requests before the feed
        reads += 1
        turn += 1
        _slow_decoder(sock)

    ib.client.conn.hasData += on_data
    try:
        await ib.connectAsync("127.0.0.1", port, clientId=1, timeout=LIMIT)
        (contract,) = await ib.qualifyContractsAsync(Future("ES", "202612", exchange="CME"))
        transport = ib.client.conn.transport
        assert transport is not None
        raw = transport.get_extra_info("socket")
        raw.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 * BACKLOG)  # room for the backlog
        sock = raw
        ib.reqTickByTickData(contract, "AllLast")
        ib.reqTickByTickData(contract, "BidAsk")
        async with asyncio.timeout(LIMIT):
            while reads < READS:
                turn = 0
                await asyncio.sleep(0)  # one loop turn
                worst = max(worst, turn)
    finally:
        ib.disconnect()
        gw.kill()
        await gw.wait()
    return worst


def test_one_socket_read_per_loop_turn_with_the_daemon_s_connection() -> None:
    loop = uvloop.new_event_loop()
    try:
        assert loop.run_until_complete(_reads_per_turn(fair=True)) == 1
        # The feed does saturate a plain ib_async reader (else the check above proves nothing).
        assert loop.run_until_complete(_reads_per_turn(fair=False)) > 1
    finally:
        loop.close()
        asyncio.set_event_loop(None)
