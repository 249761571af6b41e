"""Historical pacing survives a restart: the next process waits for what the last one sent."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
import structlog

from daemon.broker.backfill import PACING_WINDOW_S, HistoricalPacer
from daemon.runtime.pacing_store import PACING_FILE, PacingStore
from daemon.runtime.supervisor import Supervisor
from daemon.settings import Settings

MARGIN_S = 0.5  # HistoricalPacer's default widening of its windows


class Clocks:
    """A wall clock and a monotonic clock that a new "process" restarts from another origin."""

    def __init__(self) -> None:
        self.wall_now = 1_800_000_000.0
        self.mono_now = 100.0

    def wall(self) -> float:
        return self.wall_now

    def mono(self) -> float:
        return self.mono_now

    def advance(self, seconds: float) -> None:
        self.wall_now += seconds
        self.mono_now += seconds

    async def sleep(self, seconds: float) -> None:
        self.advance(seconds)


def _pacer(clocks: Clocks, limit: int = 3) -> HistoricalPacer:
    return HistoricalPacer(limit, clock=clocks.mono, sleep=clocks.sleep)


async def test_a_restarted_process_waits_for_the_requests_of_the_last_one(tmp_path: Path) -> None:
    clocks = Clocks()
    path = tmp_path / PACING_FILE
    first = _pacer(clocks)
    PacingStore(path, wall=clocks.wall, clock=clocks.mono).attach(first)
    for _ in range(3):
        await asyncio.wait_for(first.acquire("ES"), 5)
        clocks.advance(60.0)
    # kill -9 here; the next process's monotonic clock starts from another origin
    clocks.mono_now = 5.0
    second = _pacer(clocks)
    PacingStore(path, wall=clocks.wall, clock=clocks.mono).attach(second)
    assert second.recent() == [5.0 - 180.0, 5.0 - 120.0, 5.0 - 60.0]
    assert second.wait_s("ES") == pytest.approx(PACING_WINDOW_S + MARGIN_S - 180.0)
    fresh = _pacer(clocks)  # what the daemon did before: a pacer that forgot
    assert fresh.wait_s("ES") == 0.0


async def test_requests_older_than_the_window_are_not_restored(tmp_path: Path) -> None:
    clocks = Clocks()
    path = tmp_path / PACING_FILE
    first = _pacer(clocks)
    PacingStore(path, wall=clocks.wall, clock=clocks.mono).attach(first)
    await asyncio.wait_for(first.acquire(), 5)
    clocks.advance(PACING_WINDOW_S + 1.0)
    second = _pacer(clocks)
    PacingStore(path, wall=clocks.wall, clock=clocks.mono).attach(second)
    assert second.recent() == []


@pytest.mark.parametrize(
    "text", ["not json", '{"requests": "soon"}', '{"other": []}', '{"requests": [1, "x"]}']
)
def test_a_bad_file_is_named_and_ignored(tmp_path: Path, text: str) -> None:
    path = tmp_path / PACING_FILE
    path.write_text(text)
    with structlog.testing.capture_logs() as logs:
        assert PacingStore(path).load() == []
    (warning,) = [e for e in logs if e["event"] == "pacing_history_unreadable"]
    assert warning["path"] == str(path)


async def test_a_save_that_fails_is_logged_and_the_request_still_goes(tmp_path: Path) -> None:
    blocker = tmp_path / "state"
    blocker.write_text("a file where the state directory should be")
    clocks = Clocks()
    pacer = _pacer(clocks)
    PacingStore(blocker / PACING_FILE, wall=clocks.wall, clock=clocks.mono).attach(pacer)
    with structlog.testing.capture_logs() as logs:
        assert await asyncio.wait_for(pacer.acquire(), 5) == 0.0
    assert [e["event"] for e in logs] == ["pacing_history_not_saved"]
    assert len(pacer.recent()) == 1


async def test_the_daemon_s_pacer_is_restored_from_its_state_dir(tmp_path: Path) -> None:
    asyncio.set_event_loop(asyncio.get_running_loop())
    settings = Settings(paths={"state_dir": str(tmp_path)}, metrics={"enabled": False})
    first = Supervisor(settings)
    for _ in range(2):
        await asyncio.wait_for(first.warm_start.pacer.acquire("ES"), 5)
    second = Supervisor(settings)
    assert len(second.warm_start.pacer.recent()) == 2
