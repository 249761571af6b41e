"""The trader's asyncio plumbing: tasks started from synchronous code, and waiting for the broker.

The decoder's callbacks and the once-a-second tick are synchronous; what they start (an exit
order sized from a fresh position, the loss limit's flatten, cancels after rejects) runs as a
`Background` task. `Changes` is set on every fill, order status and clean reconcile, so that a
wait for a condition (a cancel confirmed, the position flat) looks at it again then, not on a
timer.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any

__all__ = ["Background", "Changes"]


class Background:
    """Tasks kept referenced until they end (the loop itself holds only weak references)."""

    def __init__(self) -> None:
        self._tasks: set[asyncio.Task[Any]] = set()

    def spawn(self, coro: Coroutine[Any, Any, Any]) -> asyncio.Task[Any]:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task


class Changes:
    """Something the broker said may have changed a condition someone waits for."""

    def __init__(self) -> None:
        self._event = asyncio.Event()

    def set(self) -> None:
        self._event.set()

    async def until(self, done: Callable[[], bool], seconds: float) -> bool:
        """Wait until ``done()`` holds, at most ``seconds``; whether it does."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + seconds
        while not done():
            remaining = deadline - loop.time()
            if remaining <= 0:
                return False
            self._event.clear()
            try:
                await asyncio.wait_for(self._event.wait(), remaining)
            except TimeoutError:
                return done()
        return True
