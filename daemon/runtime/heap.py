"""A full garbage collection right after each disconnect, while nothing is streaming.

ib_async keeps every order and execution of a connection in its wrapper, and an eventkit
`Event` keeps the last value it emitted: ib_async emits each `Trade` on its own events
(`trade.statusEvent.emit(trade)`), so every Trade is a reference cycle that only a full
collection frees. When the socket drops, ib_async resets the wrapper and all of it becomes
garbage at once: thousands of objects per reconnect, the more the more orders and executions
the gateway reported at the connect. CPython runs a full collection only when a quarter of its
long-lived objects are new since the last one, so the garbage of several reconnects piled up
and the allocators kept the memory (bench/soak.py: Python's live blocks swung by +40 %
between full collections, each of which paused the loop 45-60 ms, while READY).

Collecting on every disconnect frees each connection's garbage before the next one makes
more, and takes the pause when no tick or order can be waiting.
"""

from __future__ import annotations

import asyncio
import gc
import time

import structlog

log = structlog.get_logger("daemon.runtime.heap")


def collect_soon() -> None:
    """A `Connection.on_disconnect` hook: collect once the current callback is done.

    Deferred because ib_async resets its wrapper after the disconnect event when the daemon
    itself drops the socket (`IB.disconnect`), and before it when the gateway does.
    """
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        collect()
        return
    loop.call_soon(collect)


def collect() -> int:
    """A full collection now; returns how many unreachable objects it found."""
    started = time.perf_counter()
    found = gc.collect()
    log.info(
        "heap_collected",
        unreachable=found,
        ms=round((time.perf_counter() - started) * 1000, 1),
    )
    return found
