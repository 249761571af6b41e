"""Components started in order and stopped in reverse, from one list.

As in aiohttp's cleanup contexts, each `Component` pairs its start with its stop, so the two
orders cannot drift apart. `Lifecycle.start` runs the starts in order; should one fail, the
components already started are stopped, in reverse, and the error raised. `Lifecycle.stop` runs
the stop of every started component in reverse (an `AsyncExitStack`), each within what is left
of its `Budget`: a stop that fails or overruns is logged and the next one runs regardless, and
each one's outcome is returned by name. `supervised` makes a long-running task a component.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from dataclasses import dataclass, field
from typing import Any

import structlog

log = structlog.get_logger("daemon.runtime.lifecycle")

__all__ = ["Budget", "Component", "Lifecycle", "bounded", "supervised"]

MIN_STEP_S = 0.1  # a step whose budget is spent still gets this long


class Budget:
    """Seconds shared by the stop steps that draw on it, counted from the first step's start."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self._deadline: float | None = None

    def left(self) -> float:
        now = asyncio.get_running_loop().time()
        if self._deadline is None:
            self._deadline = now + self.seconds
        return max(MIN_STEP_S, self._deadline - now)


@dataclass(frozen=True, slots=True)
class Component:
    """A named start (None: nothing to start) and stop, either plain or async."""

    name: str
    start: Callable[[], Any] | None
    stop: Callable[[], Any] | None
    budget: Budget = field(compare=False)


class Lifecycle:
    """Starts ``components`` in order, stops those started in reverse."""

    def __init__(self, components: Sequence[Component]) -> None:
        self.components = list(components)
        self.stopped: dict[str, bool] = {}  # name -> its stop finished (and did not say False)
        self._stack = contextlib.AsyncExitStack()

    async def start(self) -> None:
        for component in self.components:
            if component.start is not None:
                try:
                    await _call(component.start)
                except BaseException:
                    await self.stop()
                    raise
            self._stack.push_async_callback(self._stop, component)

    async def stop(self) -> dict[str, bool]:
        """Stop what was started, in reverse; each stop's outcome by name."""
        await self._stack.aclose()
        return self.stopped

    async def _stop(self, component: Component) -> None:
        if component.stop is not None:
            seconds = component.budget.left()
            self.stopped[component.name] = await bounded(component.name, component.stop, seconds)


def supervised(
    name: str,
    run: Callable[[], Coroutine[Any, Any, Any]],
    tasks: dict[str, asyncio.Task[Any]],
    budget: Budget,
    ask_to_end: Callable[[], Awaitable[Any]] | None = None,
) -> Component:
    """A long-running task as a component: created at start into ``tasks`` (where its owner
    watches it); at stop asked to end where it can be, then cancelled and awaited."""

    def start() -> None:
        tasks[name] = asyncio.create_task(run(), name=name)

    async def stop() -> None:
        task = tasks[name]
        try:
            if ask_to_end is not None:
                await ask_to_end()
        finally:
            task.cancel()  # also when asking overran the budget
        await asyncio.gather(task, return_exceptions=True)

    return Component(name, start, stop, budget)


async def bounded(name: str, step: Callable[[], Any], seconds: float) -> bool:
    """One stop step within ``seconds``: its result (a step returning None counts as done), or
    False logged."""
    try:
        result = await asyncio.wait_for(_call(step), seconds)
    except TimeoutError:
        log.error("shutdown_step_timeout", step=name, seconds=round(seconds, 1))
        return False
    except asyncio.CancelledError:
        raise
    except Exception as exc:
        log.error("shutdown_step_failed", step=name, error=repr(exc), exc_info=exc)
        return False
    return result is not False


async def _call(fn: Callable[[], Any]) -> Any:
    result = fn()
    if inspect.isawaitable(result):
        result = await result
    return result
