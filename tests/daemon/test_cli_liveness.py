"""A real `orderflowd run` against an in-process ibsim: SIGHUP (running, starting, and under
`debug`), and what `orderflowd status` says when the daemon is alive, hung (SIGSTOP), dead
(kill -9) or cleanly stopped."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any, TypeVar

import pytest

from daemon.cli import EX_STATUS_DEAD, EX_STATUS_HUNG, EX_STATUS_STOPPED, main
from daemon.runtime.status import judge, process_start
from ibsim.gateway import Gateway, GatewayConfig
from ibsim.market import SyntheticSource
from tests.daemon.broker.conftest import SIM_START

START_WAIT = 30.0  # python start-up, imports and the connect, on a busy machine
WAIT = 10.0
POLL_S = 0.02
T = TypeVar("T")
needs_proc = pytest.mark.skipif(
    not Path("/proc/self/stat").exists(), reason="process states come from /proc (Linux)"
)


async def until(probe: Callable[[], T], limit: float = WAIT) -> T:
    """Poll *probe* until it returns something truthy; that value (TimeoutError after *limit*)."""
    async with asyncio.timeout(limit):
        while True:
            value = probe()
            if value:
                return value
            await asyncio.sleep(POLL_S)


def proc_state(pid: int) -> str | None:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0]
    except OSError:
        return None


async def orderflowd(*args: str) -> tuple[int, str, str]:
    """Run an `orderflowd` command to its end: exit code, stdout, stderr."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "daemon",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), WAIT)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


class Daemon:
    """`orderflowd run` as a child process, its output in files, its state dir and log file."""

    def __init__(self, tmp: Path, port: int) -> None:
        self.state = tmp / "state"
        self.log_file = tmp / "logs" / "orderflowd.jsonl"
        self.output = tmp / "output.txt"
        self.port = port
        self.proc: asyncio.subprocess.Process | None = None

    async def start(self) -> None:
        with self.output.open("wb") as out:
            self.proc = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "daemon", "run", "--port", str(self.port),
                "--client-id", "9", "--state-dir", str(self.state), "--log-format", "json",
                "--set", "status.interval_s=0.1", "--set", f"logging.file={self.log_file}",
                stdin=asyncio.subprocess.DEVNULL, stdout=out, stderr=out,
                env={**os.environ, "ORDERFLOWD_METRICS__ENABLED": "false"},
            )  # fmt: skip
        await until(lambda: self.status().get("state") == "READY", START_WAIT)

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def status(self) -> dict[str, Any]:
        try:
            doc: dict[str, Any] = json.loads((self.state / "status.json").read_text())
        except FileNotFoundError:
            return {}
        return doc

    async def next_heartbeat(self) -> float:
        """Wait for status.json to be rewritten; its new heartbeat."""
        seen = self.status()["heartbeat"]
        beat: float = await until(lambda: (h := self.status()["heartbeat"]) > seen and h)
        return beat

    def send(self, sig: signal.Signals) -> None:
        assert self.proc is not None
        self.proc.send_signal(sig)

    async def wait(self) -> int:
        assert self.proc is not None
        return await asyncio.wait_for(self.proc.wait(), 25.0)

    async def status_command(self, *extra: str) -> tuple[int, str, str]:
        return await orderflowd("status", "--state-dir", str(self.state), *extra)

    async def stop(self) -> None:
        if self.proc is not None and self.proc.returncode is None:
            self.proc.send_signal(signal.SIGCONT)
            self.proc.kill()
            await self.proc.wait()


@pytest.fixture
async def gateway() -> AsyncIterator[Gateway]:
    gw = Gateway(
        GatewayConfig(port=0, client_id_release_delay=0.0),
        SyntheticSource(seed=5, start_time=SIM_START.timestamp()),
        speed=20.0,
    )
    await gw.start()
    yield gw
    await gw.stop()


@pytest.fixture
async def daemon(tmp_path: Path, gateway: Gateway) -> AsyncIterator[Daemon]:
    d = Daemon(tmp_path, gateway.port)
    try:
        await d.start()
        yield d
    finally:
        await d.stop()


def events(path: Path) -> list[str]:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return []
    return [json.loads(line)["event"] for line in text.splitlines() if line.endswith("}")]


# --- SIGHUP ---------------------------------------------------------------------------------------


@pytest.mark.timeout(120)
async def test_sighup_reopens_the_log_file_and_the_daemon_lives_on(daemon: Daemon) -> None:
    log = daemon.log_file
    assert "started" in events(log)
    rotated = log.rename(log.with_name("orderflowd.jsonl.1"))  # logrotate's move

    daemon.send(signal.SIGHUP)

    await until(lambda: "sighup" in events(log))  # a new file, at the configured path
    await daemon.next_heartbeat()  # status.json is still being rewritten
    await daemon.next_heartbeat()
    assert daemon.proc is not None
    assert daemon.proc.returncode is None
    assert daemon.status()["state"] == "READY"
    daemon.send(signal.SIGTERM)
    assert await daemon.wait() == 0
    after = events(log)
    assert after[0] == "sighup"
    assert after[-1] == "stopped"  # what came after the reopen went to the new file
    assert "sighup" not in events(rotated)
    assert "started" in events(rotated)
    assert "sighup" in events(daemon.output)  # and to the console / journal as ever


async def start_without_gateway(
    tmp_path: Path, command: str, *args: str, env: dict[str, str] | None = None
) -> asyncio.subprocess.Process:
    """`orderflowd <command>` against a port nobody listens on; its output in output.txt."""
    with (tmp_path / "output.txt").open("wb") as out:
        return await asyncio.create_subprocess_exec(
            sys.executable, "-m", "daemon", command, "--port", "1",
            "--state-dir", str(tmp_path / "state"), "--set", "status.interval_s=0.1", *args,
            stdin=asyncio.subprocess.DEVNULL, stdout=out, stderr=out,
            env={**os.environ, "ORDERFLOWD_METRICS__ENABLED": "false", **(env or {})},
        )  # fmt: skip


@pytest.mark.timeout(120)
async def test_sighup_while_starting_does_not_kill_it(tmp_path: Path) -> None:
    # The strategy's import holds start-up until the test has sent its SIGHUP.
    go = tmp_path / "go"
    (tmp_path / "slow.py").write_text(
        "import pathlib, sys, time\n"
        "print('importing', file=sys.stderr, flush=True)\n"
        f"while not pathlib.Path({str(go)!r}).exists():\n"
        "    time.sleep(0.01)\n"
        "from daemon.trading.strategy.stacked import StackedImbalance as Strategy\n"
    )
    proc = await start_without_gateway(
        tmp_path, "run", "--set", "strategy.path=slow:Strategy", env={"PYTHONPATH": str(tmp_path)}
    )
    try:
        await until(lambda: "importing" in (tmp_path / "output.txt").read_text(), START_WAIT)
        proc.send_signal(signal.SIGHUP)
        go.touch()
        await until(lambda: (tmp_path / "state" / "status.json").exists(), START_WAIT)
        assert proc.returncode is None
        proc.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(proc.wait(), 25.0) == 0
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


@pytest.mark.timeout(120)
async def test_sighup_does_not_stop_debug_either(tmp_path: Path) -> None:
    proc = await start_without_gateway(tmp_path, "debug", "--log-format", "json")
    try:
        status = tmp_path / "state" / "status.json"
        await until(lambda: status.exists(), START_WAIT)
        proc.send_signal(signal.SIGHUP)
        output = tmp_path / "output.txt"
        await until(lambda: '"event": "sighup"' in output.read_text(), START_WAIT)
        written = status.stat().st_mtime_ns
        await until(lambda: status.stat().st_mtime_ns > written, START_WAIT)  # still alive
        assert proc.returncode is None
        proc.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(proc.wait(), 25.0) == 0
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    assert json.loads(status.read_text())["state"] == "STOPPED"


# --- orderflowd status --------------------------------------------------------------------------


@needs_proc
@pytest.mark.timeout(120)
async def test_status_of_a_live_then_hung_then_stopped_daemon(daemon: Daemon) -> None:
    code, out, _ = await daemon.status_command()
    assert code == 0
    assert out.startswith("READY ESZ6")

    daemon.send(signal.SIGSTOP)
    try:
        await until(lambda: proc_state(daemon.pid) == "T")
        code, out, _ = await daemon.status_command()
    finally:
        daemon.send(signal.SIGCONT)
    assert code == EX_STATUS_HUNG == 4
    assert out.startswith(f"orderflowd: the daemon is hung: process {daemon.pid} is stopped")
    assert "its last status (READY" in out
    assert "ESZ6" not in out  # not its last words: they are stale

    await daemon.next_heartbeat()  # SIGCONT: it writes again, and is running again
    code, _, _ = await daemon.status_command()
    assert code == 0

    daemon.send(signal.SIGTERM)
    assert await daemon.wait() == 0
    assert daemon.status()["state"] == "STOPPED"
    code, out, _ = await daemon.status_command()
    assert code == EX_STATUS_STOPPED == 3
    assert out.startswith("orderflowd: the daemon is stopped (STOPPED at shutdown")
    assert "dead" not in out


@pytest.mark.timeout(120)
async def test_status_of_a_killed_daemon_says_dead_not_ready(daemon: Daemon) -> None:
    daemon.send(signal.SIGKILL)
    assert await daemon.wait() == -signal.SIGKILL
    assert daemon.status()["state"] == "READY"  # its last words
    assert daemon.status()["pid"] == daemon.pid

    code, out, _ = await daemon.status_command()
    assert code == EX_STATUS_DEAD == 1
    first = out.splitlines()[0]
    assert first.startswith(
        f"orderflowd: the daemon is dead: process {daemon.pid} no longer exists; its last "
        "status (READY, written "
    )
    assert first.endswith(" ago) is stale")
    assert "READY ESZ6" not in out

    code, out, err = await daemon.status_command("--json")
    assert code == EX_STATUS_DEAD
    doc = json.loads(out)
    assert doc["state"] == "READY"
    assert doc["liveness"]["verdict"] == "dead"
    assert "the daemon is dead" in err


# --- verdicts on crafted files, with real processes behind them ----------------------------------


def write_status(state: Path, **doc: Any) -> None:
    state.mkdir(parents=True, exist_ok=True)
    (state / "status.json").write_text(json.dumps({"state": "READY", **doc}))


def test_an_old_heartbeat_of_a_live_process_is_hung(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    me = os.getpid()  # alive, and not writing the file
    write_status(
        tmp_path, pid=me, pid_start=process_start(me), heartbeat=time.time() - 60, interval_s=1.0
    )
    assert main(["status", "--state-dir", str(tmp_path)]) == EX_STATUS_HUNG
    out = capsys.readouterr().out
    assert out.startswith(
        f"orderflowd: the daemon is hung: process {me} is alive but has not rewritten "
        "status.json for 60 s (late after 10 s)"
    )


def test_hung_means_several_intervals_late() -> None:
    me = os.getpid()
    doc = {"state": "READY", "pid": me, "pid_start": process_start(me), "interval_s": 4.0}
    assert judge({**doc, "heartbeat": 100.0}, now=119.0).verdict == "running"  # < 5 x 4 s
    assert judge({**doc, "heartbeat": 100.0}, now=121.0).verdict == "hung"


def test_a_file_without_heartbeat_is_judged_by_its_age(tmp_path: Path) -> None:
    write_status(tmp_path)  # written by a daemon from before heartbeats
    mtime = (tmp_path / "status.json").stat().st_mtime
    assert judge({"state": "READY"}, mtime=mtime, now=mtime + 1).verdict == "running"
    assert judge({"state": "READY"}, mtime=mtime, now=mtime + 600).verdict == "hung"


def test_a_reused_pid_is_dead(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    me = os.getpid()
    start = process_start(me)
    if start is None:
        pytest.skip("no /proc: the start time cannot be compared")
    write_status(tmp_path, pid=me, pid_start=start - 1, heartbeat=time.time(), interval_s=1.0)
    assert main(["status", "--state-dir", str(tmp_path)]) == EX_STATUS_DEAD
    assert f"process {me} is another program now" in capsys.readouterr().out


@needs_proc
def test_an_exited_but_unreaped_process_is_dead() -> None:
    child = subprocess.Popen(["true"])
    try:
        deadline = time.monotonic() + WAIT
        while proc_state(child.pid) != "Z":  # exited; its parent (this test) has not reaped it
            assert time.monotonic() < deadline, "the child never exited"
            time.sleep(POLL_S)
        doc = {"state": "READY", "pid": child.pid, "heartbeat": time.time()}
        verdict = judge(doc)
        assert verdict.verdict == "dead"
        assert verdict.detail.startswith(f"the daemon is dead: process {child.pid} has exited")
    finally:
        child.wait()
