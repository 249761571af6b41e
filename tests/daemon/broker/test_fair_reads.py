"""Under a saturating feed the event loop still runs between two socket reads (uvloop)."""

from __future__ import annotations

import asyncio
import sys

import uvloop
from ib_async import IB, Future

from daemon.broker.connection import yield_between_reads

LIMIT = 30.0
READS = 64  # two of uvloop's 32-read bursts


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

    def on_data(_: bytes) -> None:
        nonlocal reads, turn
        reads += 1
        turn += 1

    ib.client.conn.hasData += on_data
    try:
        await ib.connectAsync("127.0.0.1", port, clientId=1, timeout=LIMIT)
        (contract,) = await ib.qualifyContractsAsync(Future("ES", "202612", exchange="CME"))
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
