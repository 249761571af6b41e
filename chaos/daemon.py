"""The daemon under test: a child process started, killed and restarted, and what it reports."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
POLL_S = 0.05  # status.json is rewritten every 0.1 s (`[status] interval_s` of the config)
TERM_WAIT_S = 25.0  # the supervisor's stop budget (15 s) plus start-up slack

Status = dict[str, Any]


def unhealthy(doc: Status, *, market_silent: bool = False) -> list[str]:
    """What keeps the daemon from the state every fault must end in: connected, data good,
    reconciled and allowed to trade. Empty when it is there. While the replayed market itself
    is silent (the data has a gap) there is nothing to judge the data by: stale or unhealthy
    data is then not held against it."""
    trading = doc.get("trading") or {}
    values = {
        "state": doc.get("state"),
        "data_health": doc.get("data_health"),
        "data_stale": doc.get("data_stale"),
        "reconciled": trading.get("reconciled"),
        "trading": trading.get("state"),
    }
    wanted = {"state": "READY", "data_health": "OK", "reconciled": True, "trading": "ACTIVE"}
    return [
        f"{name}={value}"
        for name, value in values.items()
        if not (market_silent and name in ("data_stale", "data_health"))
        and (bool(value) if name == "data_stale" else value != wanted[name])
    ]


def healthy(doc: Status, *, market_silent: bool = False) -> bool:
    return bool(doc) and not unhealthy(doc, market_silent=market_silent)


class DaemonProcess:
    """`python -m daemon run --config <config>`, one process per life, logs appended to a file."""

    def __init__(self, config: Path, state_dir: Path, log_path: Path) -> None:
        self.config = config
        self.state_dir = state_dir
        self.log_path = log_path
        self.lives = 0
        self.exit_codes: list[int] = []
        self.crashes: list[int] = []  # exit codes of lives that ended without being asked to
        self.crash_seen = asyncio.Event()  # set at each crash counted
        self._proc: asyncio.subprocess.Process | None = None
        self._asked_to_end = False
        self.on_end: Callable[[], None] | None = None  # called just before a kill or SIGTERM

    @property
    def pid(self) -> int | None:
        return None if self._proc is None else self._proc.pid

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.returncode is None

    async def start(self) -> None:
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        with self.log_path.open("ab") as log:
            self._proc = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "daemon", "run", "--config", str(self.config),
                cwd=ROOT, env=env, stdin=asyncio.subprocess.DEVNULL, stdout=log, stderr=log,
            )  # fmt: skip
        self.lives += 1
        self._asked_to_end = False

    def kill(self) -> bool:
        """SIGKILL now (safe to call from a gateway callback); False if it was not running."""
        if not self.running or self._proc is None:
            return False
        self._asked_to_end = True
        if self.on_end is not None:
            self.on_end()
        self._proc.send_signal(signal.SIGKILL)
        return True

    def crashed(self) -> bool:
        """The current life ended although nobody killed or stopped it."""
        return self._proc is not None and not self.running and not self._asked_to_end

    async def watch_crashes(self, restart_delay_s: float) -> None:
        """Like systemd's Restart=always: a life that ended by itself is counted and replaced."""
        while True:
            await asyncio.sleep(POLL_S)
            if self.crashed():
                assert self._proc is not None
                self.crashes.append(self._proc.returncode or 0)
                self.crash_seen.set()
                self._asked_to_end = True
                await asyncio.sleep(restart_delay_s)
                await self.start()

    async def wait(self, limit_s: float = TERM_WAIT_S) -> int:
        assert self._proc is not None
        code = await asyncio.wait_for(self._proc.wait(), limit_s)
        self.exit_codes.append(code)
        return code

    async def terminate(self) -> int:
        """SIGTERM and the exit code (SIGKILL if it overruns its stop budget: -9)."""
        if not self.running or self._proc is None:
            return self._proc.returncode if self._proc and self._proc.returncode is not None else 0
        self._asked_to_end = True
        if self.on_end is not None:
            self.on_end()
        self._proc.send_signal(signal.SIGTERM)
        try:
            return await self.wait()
        except TimeoutError:
            self._proc.send_signal(signal.SIGKILL)
            return await self.wait()

    def status(self) -> Status:
        """The last status.json, {} while there is none (or it is being replaced)."""
        try:
            doc: Status = json.loads((self.state_dir / "status.json").read_text())
        except (FileNotFoundError, json.JSONDecodeError):
            return {}
        return doc

    def status_mtime(self) -> float:
        try:
            return (self.state_dir / "status.json").stat().st_mtime
        except FileNotFoundError:
            return 0.0

    async def until(self, predicate: Callable[[Status], bool], limit_s: float) -> Status | None:
        """Poll status.json until `predicate` holds; the matching document, or None after
        `limit_s`."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + limit_s
        while True:
            doc = self.status()
            if doc and predicate(doc):
                return doc
            if loop.time() >= deadline:
                return None
            await asyncio.sleep(POLL_S)
