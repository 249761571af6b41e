"""The lifecycle: one list started in order and stopped in reverse, each stop bounded."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
import structlog

from daemon.runtime.lifecycle import Budget, Component, Lifecycle, supervised

WAIT = 5.0


class Trace:
    """Components that write what they do into one list."""

    def __init__(self) -> None:
        self.calls: list[str] = []

    def component(
        self, name: str, budget: Budget, *, start: bool = True, stop: Any = None
    ) -> Component:
        def started() -> None:
            self.calls.append(f"start {name}")

        async def stopped() -> Any:
            self.calls.append(f"stop {name}")
            return stop

        return Component(name, started if start else None, stopped, budget)


async def test_starts_in_order_and_stops_in_reverse() -> None:
    trace, budget = Trace(), Budget(WAIT)
    lifecycle = Lifecycle(
        [
            trace.component("a", budget),
            trace.component("b", budget, start=False),  # nothing to start, still stopped
            trace.component("c", budget),
        ]
    )
    await lifecycle.start()
    assert trace.calls == ["start a", "start c"]
    assert await lifecycle.stop() == {"c": True, "b": True, "a": True}
    assert trace.calls[2:] == ["stop c", "stop b", "stop a"]


async def test_a_stop_that_fails_or_says_false_is_reported_and_the_others_still_stop() -> None:
    trace, budget = Trace(), Budget(WAIT)

    def broken() -> None:
        raise OSError("disk full")

    lifecycle = Lifecycle(
        [
            trace.component("first", budget),
            Component("broken", None, broken, budget),
            trace.component("policy", budget, stop=False),  # could not be carried out
        ]
    )
    await lifecycle.start()
    with structlog.testing.capture_logs() as logs:
        stopped = await lifecycle.stop()
    assert stopped == {"policy": False, "broken": False, "first": True}
    assert trace.calls[-1] == "stop first"
    [failed] = [e for e in logs if e["event"] == "shutdown_step_failed"]
    assert failed["step"] == "broken"
    assert "disk full" in failed["error"]


async def test_stops_drawing_on_one_budget_share_it_and_each_gets_at_least_the_floor() -> None:
    async def hang() -> None:
        await asyncio.Event().wait()

    shared = Budget(0.2)
    own = Budget(0.3)
    lifecycle = Lifecycle(
        [
            Component("late", None, hang, shared),
            Component("early", None, hang, shared),
            Component("policy", None, hang, own),  # stops first, on its own budget
        ]
    )
    await lifecycle.start()
    with structlog.testing.capture_logs() as logs:
        stopped = await asyncio.wait_for(lifecycle.stop(), WAIT)
    assert stopped == {"policy": False, "early": False, "late": False}
    timeouts = [(e["step"], e["seconds"]) for e in logs if e["event"] == "shutdown_step_timeout"]
    # The shared budget's clock starts with its first step, after the policy's own budget.
    assert timeouts == [("policy", 0.3), ("early", 0.2), ("late", 0.1)]


async def test_a_start_that_fails_stops_what_started_and_raises() -> None:
    trace, budget = Trace(), Budget(WAIT)

    async def refuse() -> None:
        raise RuntimeError("another daemon owns the socket")

    lifecycle = Lifecycle(
        [
            trace.component("a", budget),
            trace.component("b", budget),
            Component("control", refuse, trace.component("control", budget).stop, budget),
            trace.component("d", budget),
        ]
    )
    with pytest.raises(RuntimeError, match="another daemon"):
        await lifecycle.start()
    assert trace.calls == ["start a", "start b", "stop b", "stop a"]


async def test_a_supervised_task_is_asked_to_end_then_cancelled() -> None:
    tasks: dict[str, asyncio.Task[Any]] = {}
    ended = asyncio.Event()
    asked: list[str] = []

    async def run() -> None:
        try:
            await ended.wait()
        finally:
            asked.append("ended")

    async def ask() -> None:
        asked.append("asked")

    lifecycle = Lifecycle([supervised("worker", run, tasks, Budget(WAIT), ask)])
    await lifecycle.start()
    task = tasks["worker"]
    assert task.get_name() == "worker"
    await asyncio.sleep(0)
    assert not task.done()
    assert await lifecycle.stop() == {"worker": True}
    assert task.cancelled()
    assert asked == ["asked", "ended"]


async def test_a_supervised_task_is_cancelled_even_when_asking_it_to_end_overruns() -> None:
    tasks: dict[str, asyncio.Task[Any]] = {}

    async def run() -> None:
        await asyncio.Event().wait()

    async def ask() -> None:
        await asyncio.Event().wait()  # never answers

    lifecycle = Lifecycle([supervised("connection", run, tasks, Budget(0.1), ask)])
    await lifecycle.start()
    await asyncio.sleep(0)
    assert await asyncio.wait_for(lifecycle.stop(), WAIT) == {"connection": False}
    await asyncio.sleep(0)
    assert tasks["connection"].cancelled()
