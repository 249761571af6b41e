"""The chaos harness tells a daemon that ended by itself from one it killed, and replaces it."""

from __future__ import annotations

import asyncio
from pathlib import Path

from chaos.daemon import DaemonProcess
from chaos.run import Report

LIMIT = 30.0


async def test_a_life_that_ends_by_itself_is_a_crash_and_is_restarted(tmp_path: Path) -> None:
    config = tmp_path / "bad.toml"
    config.write_text("[ib]\nport = -1\n")  # refused at start-up: exit 78, by itself
    daemon = DaemonProcess(config, tmp_path / "state", tmp_path / "daemon.out")
    await daemon.start()
    watcher = asyncio.create_task(daemon.watch_crashes(restart_delay_s=0.0))
    try:
        async with asyncio.timeout(LIMIT):
            while len(daemon.crashes) < 2:
                daemon.crash_seen.clear()
                await daemon.crash_seen.wait()
    finally:
        watcher.cancel()
        await daemon.terminate()
    assert daemon.crashes[:2] == [78, 78]
    assert daemon.lives >= 2  # the first crash was replaced by a life of its own
    report = Report(crashes=daemon.crashes)
    assert any("ended by itself" in failure for failure in report.failures)


async def test_a_killed_life_is_not_a_crash(tmp_path: Path) -> None:
    config = tmp_path / "idle.toml"  # nothing listens on port 1: it retries until killed
    config.write_text(
        f'[ib]\nport = 1\n[paths]\nstate_dir = "{tmp_path / "state"}"\n'
        f'log_dir = "{tmp_path / "logs"}"\n[metrics]\nenabled = false\n'
    )
    daemon = DaemonProcess(config, tmp_path / "state", tmp_path / "daemon.out")
    await daemon.start()
    daemon.kill()
    await daemon.wait(LIMIT)
    assert not daemon.crashed()
    assert daemon.crashes == []
