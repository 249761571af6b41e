"""Finished orders leave ib_async's memory seconds after they finish.

ib_async's wrapper keeps a `Trade` (the order with its ~150 fields, status, log and seven
events) for every order the connection has seen, and a `Fill` for every execution, until the
socket closes: about 25 KB per order, without end on a connection that lasts for weeks. The
daemon does not read them (it follows orders from the decoder and keeps its own record in the
journal), so a finished trade and its fills are dropped once they have been finished for
`keep_s`, long enough for a late execution or commission report to still find its trade.
Executions nobody's trade claims (another client's, or reported at the connect) go the same way.

A trade's events keep the last value they emitted, the trade itself: fresh events break that
cycle, so a dropped trade is freed at once instead of waiting for a full garbage collection.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from ib_async import Event, OrderStatus, Trade
from ib_async.wrapper import Wrapper

FINISHED = OrderStatus.DoneStates  # Filled, Cancelled, ApiCancelled, Inactive
KEEP_S = 10.0  # seconds a finished trade or an unclaimed fill stays


class FinishedTrades:
    """Drops finished trades and unclaimed fills from an ib_async wrapper after `keep_s`."""

    def __init__(self, clock: Callable[[], float] = time.monotonic, keep_s: float = KEEP_S):
        self._clock = clock
        self.keep_s = keep_s
        self._trades: dict[int, tuple[Trade, float]] = {}  # id(trade) -> (trade, finished at)
        self._fills: dict[str, tuple[Any, float]] = {}  # execId -> (fill, first unclaimed)
        self.dropped_trades = 0
        self.dropped_fills = 0

    def sweep(self, wrapper: Wrapper) -> int:
        """Drop what has been finished for `keep_s`; returns how many trades went."""
        now = self._clock()
        tables: tuple[dict[Any, Trade], dict[int, Trade]] = (wrapper.trades, wrapper.permId2Trade)
        finished = {
            id(trade): trade
            for table in tables
            for trade in table.values()
            if trade.orderStatus.status in FINISHED
        }
        self._trades = {
            key: (trade, _since(self._trades.get(key), trade, now))
            for key, trade in finished.items()
        }
        expired = {key for key, (_, since) in self._trades.items() if now - since >= self.keep_s}
        for table in tables:
            for k in [k for k, trade in table.items() if id(trade) in expired]:
                del table[k]
        for key in expired:
            trade = self._trades.pop(key)[0]
            for fill in trade.fills:
                wrapper.fills.pop(fill.execution.execId, None)
            _release(trade)
        self.dropped_trades += len(expired)
        self._sweep_fills(wrapper, now)
        return len(expired)

    def forget(self) -> None:
        """The socket closed and ib_async reset its wrapper: nothing of it is kept here."""
        self._trades.clear()
        self._fills.clear()

    def _sweep_fills(self, wrapper: Wrapper, now: float) -> None:
        claimed = wrapper.permId2Trade
        unclaimed = {
            exec_id: fill
            for exec_id, fill in wrapper.fills.items()
            if fill.execution.permId not in claimed
        }
        self._fills = {
            eid: (fill, _since(self._fills.get(eid), fill, now)) for eid, fill in unclaimed.items()
        }
        for exec_id in [e for e, (_, since) in self._fills.items() if now - since >= self.keep_s]:
            del self._fills[exec_id]
            del wrapper.fills[exec_id]
            self.dropped_fills += 1


def _since(seen: tuple[Any, float] | None, obj: Any, now: float) -> float:
    """When `obj` was first seen finished: `now` unless the same object was seen before."""
    return seen[1] if seen is not None and seen[0] is obj else now


def _release(trade: Trade) -> None:
    for name in Trade.events:
        setattr(trade, name, Event(name))
