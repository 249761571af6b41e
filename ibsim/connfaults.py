"""Connection, gateway and market-data faults: the `Gateway` methods that inject them.

A mixin of `ibsim.gateway.Gateway` (the attributes annotated below are the gateway's); the
scenario runner, the chaos runner and tests call these methods on the gateway.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from ibsim.feed import BadTick, MarketFeed
from ibsim.model import EngineEvent, Faults

if TYPE_CHECKING:
    from ibsim.clock import SimClock
    from ibsim.realtime import Streams
    from ibsim.session import ClientSession

log = logging.getLogger("ibsim.gateway")

# Messages TWS sends for connectivity and farm events (reqId -1).
NOTICES = {
    1100: "Connectivity between IB and Trader Workstation has been lost.",
    1101: "Connectivity between IB and Trader Workstation has been restored - data lost.",
    1102: "Connectivity between IB and Trader Workstation has been restored - data maintained.",
    2103: "Market data farm connection is broken:usfarm",
    2104: "Market data farm connection is OK:usfarm",
    2105: "HMDS data farm connection is broken:ushmds",
    2106: "HMDS data farm connection is OK:ushmds",
    2107: "HMDS data farm connection is inactive but should be available upon demand.ushmds",
    2108: "Market data farm connection is inactive but should be available upon demand.usfarm",
    2119: "Market data farm is connecting:usfarm",
    2157: "Sec-def data farm connection is broken:secdefil",
    2158: "Sec-def data farm connection is OK:secdefil",
}
FARM_OF = {2103: "md", 2104: "md", 2108: "md", 2119: "md", 2105: "hmds", 2106: "hmds"}
FARM_OF |= {2107: "hmds", 2157: "secdef", 2158: "secdef"}


class ConnectionFaults:
    """Socket drops, stalls, 1100/1101/1102, farms, restarts, id clashes, bad ticks, rejects."""

    sessions: set[ClientSession]
    stalled: bool
    ib_connected: bool
    feed: MarketFeed
    clock: SimClock
    faults: Faults
    _unstalled: asyncio.Event
    _held: list[EngineEvent]
    _farms: dict[str, int]
    _owners: dict[int, ClientSession]
    _released_at: dict[int, float]
    _ids_held_until: dict[int, float]
    _tasks: list[asyncio.Task[None]]
    _wall: Callable[[], float]
    _deliver: Callable[[EngineEvent], None]
    _listen: Callable[[], Awaitable[None]]
    _close_listener: Callable[[], Awaitable[None]]
    all_feeds: Callable[[], list[MarketFeed]]
    streams: Streams

    def notify_all(self, code: int, text: str | None = None) -> None:
        """An error message with reqId -1 to every client past the handshake."""
        for s in list(self.sessions):
            if s.client_id is not None:
                s.error(-1, code, text or NOTICES[code])

    def drop_clients(self, *, reset: bool = False) -> int:
        """Close every client socket (FIN, or RST with `reset`); returns how many."""
        victims = [s for s in self.sessions if not s.closed]
        for s in victims:
            s.close(reset=reset)
        return len(victims)

    async def stall(self, seconds: float) -> None:
        """Freeze the gateway: nothing is read or written for `seconds`, then it catches up."""
        self.stalled = True
        self._unstalled.clear()
        try:
            await asyncio.sleep(seconds)
        finally:
            self.stalled = False
            self._unstalled.set()
            for s in list(self.sessions):
                s.flush()

    async def wait_unstalled(self) -> None:
        if self.stalled:
            await self._unstalled.wait()

    def connectivity_lost(self) -> None:
        """1100: no market data and no order updates reach clients until restored."""
        self.ib_connected = False
        self.notify_all(1100)

    def connectivity_restored(self, *, data_lost: bool) -> None:
        """1101 (subscriptions are gone: clients must resubscribe) or 1102 (kept)."""
        self.ib_connected = True
        if data_lost:
            for feed in self.all_feeds():
                feed.drop_all()
            self.streams.drop_all()
        self.notify_all(1101 if data_lost else 1102)
        held, self._held = self._held, []
        for ev in held:
            self._deliver(ev)

    def farm(self, code: int) -> None:
        """A farm status change (2103-2108, 2119, 2157, 2158), sent to every client."""
        if code not in FARM_OF:
            raise ValueError(f"{code} is not a farm status code")
        self._farms[FARM_OF[code]] = code
        self.notify_all(code)

    def bad_tick(self, kind: BadTick) -> int:
        """One corrupt tick on every market data stream; returns how many messages were sent."""
        return self.feed.inject_bad_tick(kind, self.clock.now())

    def clash_client_ids(self, seconds: float) -> int:
        """Every client dropped, and its id held by a ghost session for `seconds` (error 326).

        This is TWS still holding the old socket of a client that reconnects; other ids work.
        """
        until = self._wall() + seconds
        for client_id, owner in self._owners.items():
            if not owner.closed:
                self._ids_held_until[client_id] = until
        return self.drop_clients()

    def stop_market(self) -> None:
        """No more market events (the end of a chaos run: nothing fills any more)."""
        if self._tasks:
            self._tasks[0].cancel()

    def reset_volume(self) -> None:
        self.feed.reset_volume()

    def reject_next_orders(self, n: int = 1) -> None:
        self.faults.reject_next_orders += n

    async def restart(self, down_seconds: float) -> None:
        """Gateway restart: every client dropped, port closed, then back with orders working."""
        log.info("gateway restart: down for %.1fs", down_seconds)
        await self._close_listener()
        self.drop_clients()
        self._owners.clear()
        self._released_at.clear()
        await asyncio.sleep(down_seconds)
        await self._listen()
