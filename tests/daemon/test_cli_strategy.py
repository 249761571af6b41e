"""Strategy modules that exit, loop or raise at import: `orderflowd run` and `check-config` refuse
them with exit 78 and one line naming the path, and the daemon does not start."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from pathlib import Path

import pytest

from daemon.cli import EX_INTERRUPTED
from daemon.settings import EX_CONFIG

WAIT = 20.0

MODULES = {
    "exits_0": ("import sys\nsys.exit(0)\n", "raised SystemExit: 0"),
    "loops": ("while True:\n    pass\n", "did not finish within strategy.load_timeout_s = 0.5 s"),
    "ctrl_c": ("raise KeyboardInterrupt\n", "raised KeyboardInterrupt"),
    "base": ("class Boom(BaseException):\n    pass\nraise Boom('no')\n", "raised Boom: no"),
}


async def orderflowd(
    tmp_path: Path, *args: str
) -> tuple[asyncio.subprocess.Process, asyncio.StreamReader]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "daemon",
        *args,
        "--state-dir",
        str(tmp_path / "state"),
        "--port",
        "1",
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
        env={
            **os.environ,
            "PYTHONPATH": str(tmp_path),
            "ORDERFLOWD_METRICS__ENABLED": "false",
        },
    )
    assert proc.stderr is not None
    return proc, proc.stderr


@pytest.mark.parametrize("command", ["run", "check-config"])
@pytest.mark.parametrize("name", list(MODULES))
async def test_a_strategy_that_exits_loops_or_raises_at_import_is_refused(
    tmp_path: Path, command: str, name: str
) -> None:
    body, problem = MODULES[name]
    (tmp_path / f"{name}.py").write_text(body)
    path = f"{name}:Strategy"
    proc, stderr = await orderflowd(
        tmp_path,
        command,
        "--set",
        f"strategy.path={path}",
        "--set",
        "strategy.load_timeout_s=0.5",
    )
    err = (await asyncio.wait_for(stderr.read(), WAIT)).decode()
    assert await asyncio.wait_for(proc.wait(), WAIT) == EX_CONFIG
    assert err.splitlines() == [
        f"orderflowd: config error: strategy.path: importing {path!r} {problem}"
        + (" (a loop or a blocking call?)" if name == "loops" else "")
    ]
    assert not (tmp_path / "state" / "status.json").exists()  # the daemon never started
    assert not (tmp_path / "state" / "control.sock").exists()


async def test_a_real_ctrl_c_still_stops_the_command(tmp_path: Path) -> None:
    (tmp_path / "waits.py").write_text(
        "import sys, time\n"
        "print('importing', file=sys.stderr, flush=True)\n"
        "while True:\n"
        "    time.sleep(0.05)\n"
    )
    proc, stderr = await orderflowd(
        tmp_path, "check-config", "--set", "strategy.path=waits:Strategy"
    )  # the default limit, 20 s, is far away
    assert await asyncio.wait_for(stderr.readline(), WAIT) == b"importing\n"
    proc.send_signal(signal.SIGINT)
    err = (await asyncio.wait_for(stderr.read(), WAIT)).decode()
    assert await asyncio.wait_for(proc.wait(), WAIT) == EX_INTERRUPTED == 130
    assert err == "orderflowd: interrupted\n"
