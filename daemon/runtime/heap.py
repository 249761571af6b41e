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
more, and takes the pause when no tick or order can be waiting. Then glibc's allocator is asked
to give its free pages back (`malloc_trim`): what a connection freed would otherwise stay
resident, and the resident size would follow the busiest connection so far, not what is live.
"""

from __future__ import annotations

import asyncio
import ctypes
import ctypes.util
import gc
import time
from collections.abc import Callable

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
    """A full collection now, then free C heap pages back; returns the unreachable objects."""
    started = time.perf_counter()
    found = gc.collect()
    trimmed = trim_c_heap()
    log.info(
        "heap_collected",
        unreachable=found,
        c_heap_trimmed=trimmed,
        ms=round((time.perf_counter() - started) * 1000, 1),
    )
    return found


def _find_malloc_trim() -> Callable[[int], int] | None:
    """glibc's `malloc_trim`, or None on a C library without it (musl, macOS)."""
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name)
        trim: Callable[[int], int] = libc.malloc_trim
    except (OSError, AttributeError, TypeError):
        return None
    return trim


_MALLOC_TRIM = _find_malloc_trim()


def trim_c_heap() -> bool:
    """Return free pages of the C heap to the system; False where that cannot be done."""
    if _MALLOC_TRIM is None:
        return False
    _MALLOC_TRIM(0)
    return True
