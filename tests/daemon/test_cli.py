"""`orderflowd` as systemd and a trader run it: a real process against a real simulated gateway."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from ibsim.gateway import Gateway, GatewayConfig
from ibsim.market import SyntheticSource
from tests.daemon.broker.conftest import SIM_START, WAIT


async def _run(*args: str, env: dict[str, str] | None = None) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "daemon",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={**os.environ, "ORDERFLOWD_METRICS__ENABLED": "false", **(env or {})},
    )


@pytest.mark.parametrize(
    ("args", "key"),
    [
        (["--set", "ib.colour=blue"], "ib.colour: unknown key"),
        (["--port", "abc"], "ib.port"),
        (["--port", "70000"], "ib.port"),
        (["--set", "ib.client_id=seven"], "ib.client_id"),
        (["--port", "4001"], "ib.port: 4001 is the IB Gateway live port"),
        (["--set", "strategy.params.stop_tickz=3"], "strategy.params.stop_tickz: unknown"),
        (["--set", "strategy.path=nowhere.mod:Nope"], "strategy.path: cannot import"),
        (["--set", "risk.daily_loss_limit=inf"], "risk.daily_loss_limit: must be a finite"),
    ],
    ids=[
        "unknown-key",
        "wrong-type",
        "out-of-range",
        "bad-int",
        "live-port",
        "param",
        "path",
        "infinite-limit",
    ],
)
async def test_bad_config_exits_78_naming_the_key(
    tmp_path: Path, args: list[str], key: str
) -> None:
    proc = await _run("run", "--state-dir", str(tmp_path), *args)
    _, err = await asyncio.wait_for(proc.communicate(), WAIT)
    assert proc.returncode == 78
    assert key in err.decode()
    assert "Traceback" not in err.decode()


async def test_bad_toml_file_exits_78(tmp_path: Path) -> None:
    config = tmp_path / "bad.toml"
    config.write_text("[ib]\nport = 4002\nclient_idd = 3\n")
    proc = await _run("check-config", "--config", str(config))
    _, err = await asyncio.wait_for(proc.communicate(), WAIT)
    assert proc.returncode == 78
    assert "ib.client_idd" in err.decode()


async def test_check_config_masks_the_account(tmp_path: Path) -> None:
    proc = await _run("check-config", "--set", "ib.account=DU7654321", "--port", "4002")
    out, _ = await asyncio.wait_for(proc.communicate(), WAIT)
    assert proc.returncode == 0
    doc = json.loads(out)
    assert doc["ib"]["account"] == "*****4321"
    assert "7654321" not in out.decode()


async def test_status_without_a_running_daemon_says_so(tmp_path: Path) -> None:
    proc = await _run("status", "--state-dir", str(tmp_path))
    _, err = await asyncio.wait_for(proc.communicate(), WAIT)
    assert proc.returncode == 69
    assert "no status" in err.decode()


@pytest.fixture
async def gateway() -> AsyncIterator[Gateway]:
    gw = Gateway(
        GatewayConfig(port=0, client_id_release_delay=0.0),
        SyntheticSource(seed=11, start_time=SIM_START.timestamp()),
        speed=20.0,
    )
    await gw.start()
    yield gw
    await gw.stop()


class NotifySocket:
    """A fake systemd NOTIFY_SOCKET: collects the daemon's sd_notify datagrams."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(path))
        self.sock.setblocking(False)
        self.messages: list[str] = []

    async def until(self, wanted: str) -> None:
        loop = asyncio.get_running_loop()
        async with asyncio.timeout(WAIT):
            while not any(wanted in m for m in self.messages):
                data = await loop.sock_recv(self.sock, 4096)
                self.messages.extend(data.decode().splitlines())

    def close(self) -> None:
        self.sock.close()


async def test_systemd_lifecycle_ready_watchdog_status_stopping(
    tmp_path: Path, gateway: Gateway
) -> None:
    notify = NotifySocket(tmp_path / "notify.sock")
    state = tmp_path / "state"
    proc = await _run(
        "run",
        "--port",
        str(gateway.port),
        "--client-id",
        "5",
        "--state-dir",
        str(state),
        "--set",
        "status.interval_s=0.1",
        "--log-format",
        "json",
        env={"NOTIFY_SOCKET": str(notify.path), "WATCHDOG_USEC": "200000", "WATCHDOG_PID": ""},
    )
    try:
        await notify.until("READY=1")
        await notify.until("WATCHDOG=1")
        await notify.until("STATUS=READY ESZ6 tick-by-tick")
        doc = json.loads((state / "status.json").read_text())
        assert doc["state"] == "READY"
        assert doc["contract"] == "ESZ6"
        assert doc["accounts"] == ["*****4567"]
        proc.send_signal(signal.SIGTERM)
        await notify.until("STOPPING=1")
        _, err = await asyncio.wait_for(proc.communicate(), WAIT)
        assert proc.returncode == 0, err.decode()[-2000:]
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
        notify.close()
    lines = [json.loads(x[3:] if x.startswith("<") else x) for x in err.decode().splitlines()]
    events = [x["event"] for x in lines]
    assert "connected" in events
    assert events[-1] == "stopped"
    assert "DU1234567" not in err.decode()  # the account is masked everywhere
    assert json.loads((state / "status.json").read_text())["state"] == "STOPPED"


async def test_ready_is_sent_even_when_the_gateway_is_down(tmp_path: Path) -> None:
    notify = NotifySocket(tmp_path / "notify.sock")
    with socket.socket() as probe:  # a port with nothing listening
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    proc = await _run(
        "run",
        "--port",
        str(port),
        "--state-dir",
        str(tmp_path / "s"),
        "--set",
        "status.interval_s=0.1",
        env={"NOTIFY_SOCKET": str(notify.path), "WATCHDOG_USEC": "200000"},
    )
    try:
        await notify.until("READY=1")
        await notify.until("WATCHDOG=1")  # healthy: the gateway is not the daemon's health
        await notify.until("STATUS=")
        proc.send_signal(signal.SIGINT)
        await asyncio.wait_for(proc.communicate(), WAIT)
        assert proc.returncode == 0
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
        notify.close()


async def test_a_journal_it_cannot_use_exits_74_and_is_left_alone(tmp_path: Path) -> None:
    journal = tmp_path / "journal.sqlite"
    journal.write_text("not a database\n")
    proc = await _run(
        "run", "--state-dir", str(tmp_path), "--port", "1", "--set", "trading.enabled=true"
    )
    _, err = await asyncio.wait_for(proc.communicate(), WAIT)
    assert proc.returncode == 74
    assert "journal" in err.decode()
    assert "Traceback" not in err.decode()
    assert journal.read_text() == "not a database\n"


async def test_a_second_daemon_on_the_same_state_dir_exits_75(tmp_path: Path) -> None:
    first = await _run("run", "--state-dir", str(tmp_path), "--port", "1")
    try:
        assert first.stderr is not None
        async with asyncio.timeout(WAIT):  # its log says when the control socket listens
            while b"control_listening" not in await first.stderr.readline():
                pass
        second = await _run("run", "--state-dir", str(tmp_path), "--port", "1")
        _, err = await asyncio.wait_for(second.communicate(), WAIT)
        assert second.returncode == 75
        assert "another orderflowd is running" in err.decode()
    finally:
        first.send_signal(signal.SIGTERM)
        await asyncio.wait_for(first.communicate(), WAIT)
