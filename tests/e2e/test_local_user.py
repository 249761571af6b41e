"""No unprivileged local user can cut the real daemon off or read its state.

The daemon runs as `python -m daemon run` in a child process against an in-test ibsim, as
in production: its own descriptor limit, its own umask, its own threads. The "other user" is
this test: it opens more idle connections to the metrics port than the daemon has descriptors,
and it looks at the modes of what the daemon leaves in its state directory.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import os
import re
import resource
import selectors
import signal
import socket
import stat
import sys
import time
import urllib.request
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from daemon.runtime.control import control_path, send_command
from daemon.runtime.logs import RATE_LIMIT
from daemon.runtime.metrics_http import IO_TIMEOUT_S, MAX_CONNECTIONS
from daemon.runtime.pacing_store import PACING_FILE
from daemon.runtime.status import STATUS_FILE
from daemon.runtime.supervisor import JOURNAL_FILE
from ibsim.gateway import Gateway, GatewayConfig
from ibsim.market import ListSource
from tests.e2e.harness import CLIENT, T0, Market

pytestmark = pytest.mark.timeout(120)  # two or three daemon processes, each importing the stack

ROOT = Path(__file__).resolve().parents[2]
LIFE = 30.0  # bound on anything one life of the daemon is waited for
POLL_S = 0.05  # status.json is rewritten every 0.05 s (`[status] interval_s` below)
CHILD_NOFILE = 256  # the daemon's soft descriptor limit in these tests
FLOOD = CHILD_NOFILE + 64  # idle connections: more than the daemon has descriptors

# Runs in the child before the daemon: lower its soft descriptor limit, set its umask, then
# become `python -m daemon ...` (exec: same pid, signals reach the daemon). No preexec_fn:
# forking a threaded test process and running Python before exec can deadlock.
LAUNCHER = """\
import os, resource, sys
nofile, umask = int(sys.argv[1]), int(sys.argv[2], 8)
if nofile:
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (nofile, hard))
os.umask(umask)
os.execv(sys.executable, [sys.executable, "-m", "daemon", *sys.argv[3:]])
"""


@pytest.fixture
async def gateway() -> AsyncIterator[Gateway]:
    gw = Gateway(
        GatewayConfig(port=0, client_id_release_delay=0.0),
        ListSource.one_quote(T0),
        speed=math.inf,
    )
    await gw.start()
    yield gw
    await gw.stop()


class Child:
    """One life of `orderflowd run`: its process, its state directory and its JSON log."""

    def __init__(self, proc: asyncio.subprocess.Process, state: Path, log: Path) -> None:
        self.proc = proc
        self.state = state
        self.log = log

    def status(self) -> dict[str, Any]:
        try:
            doc: dict[str, Any] = json.loads((self.state / STATUS_FILE).read_text())
        except (FileNotFoundError, json.JSONDecodeError):
            return {}
        return doc

    def events(self, name: str) -> list[dict[str, Any]]:
        out = []
        for line in self.log.read_text(errors="replace").splitlines():
            with contextlib.suppress(ValueError):
                doc = json.loads(line)
                if isinstance(doc, dict) and doc.get("event") == name:
                    out.append(doc)
        return out

    async def until(self, predicate: Callable[[], Any], what: str) -> Any:
        """Poll `predicate` (files written by another process) until it is truthy: `what`."""
        try:
            async with asyncio.timeout(LIFE):
                while not (result := predicate()):
                    assert self.proc.returncode is None, f"daemon exited: {self.log.read_text()}"
                    await asyncio.sleep(POLL_S)
        except TimeoutError:
            pytest.fail(f"not within {LIFE} s: {what}")
        return result

    async def metrics_port(self) -> int:
        listening = await self.until(lambda: self.events("metrics_listening"), "metrics port")
        port: int = listening[0]["port"]
        return port

    async def terminate(self) -> int:
        if self.proc.returncode is None:
            self.proc.send_signal(signal.SIGTERM)
        return await asyncio.wait_for(self.proc.wait(), LIFE)

    def kill(self) -> None:
        if self.proc.returncode is None:
            self.proc.send_signal(signal.SIGKILL)


def write_config(tmp_path: Path, port: int, *, trading: bool, extra: str = "") -> Path:
    """The config of one test's daemon; ``extra``: more TOML sections, appended."""
    config = tmp_path / "daemon.toml"
    config.write_text(
        f"""
[ib]
port = {port}
client_id = {CLIENT}
connect_timeout = 5.0
[data]
backfill = false
[trading]
enabled = {str(trading).lower()}
[strategy]
path = "tests.e2e.scripted:Scripted"
[strategy.params]
enter_once = 1
[paths]
state_dir = "{tmp_path / "state"}"
log_dir = "{tmp_path / "logs"}"
[status]
interval_s = {POLL_S}
[recording]
flush_s = 0.1
[metrics]
port = 0
[logging]
format = "json"
"""
        + extra
    )
    return config


@contextlib.asynccontextmanager
async def running(
    config: Path, log: Path, *, nofile: int = 0, umask: int = 0o022
) -> AsyncIterator[Child]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop("JOURNAL_STREAM", None)  # plain JSON lines, not journald's prefixed ones
    with log.open("ab") as out:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-c", LAUNCHER, str(nofile), f"{umask:o}",
            "run", "--config", str(config),
            cwd=ROOT, env=env, stdin=asyncio.subprocess.DEVNULL, stdout=out, stderr=out,
        )  # fmt: skip
    child = Child(proc, config.parent / "state", log)
    try:
        yield child
    finally:
        child.kill()
        await asyncio.wait_for(proc.wait(), LIFE)


def soft_nofile(pid: int) -> int:
    limits = Path(f"/proc/{pid}/limits").read_text()
    found = re.search(r"^Max open files\s+(\d+)", limits, re.MULTILINE)
    assert found is not None, limits
    return int(found.group(1))


@contextlib.contextmanager
def descriptors_for(n: int) -> Iterator[None]:
    """This test process may hold `n` more descriptors (within the hard limit)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = min(hard if hard != resource.RLIM_INFINITY else 1 << 20, soft + n)
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, wanted), hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def flood(port: int, n: int) -> list[socket.socket]:
    """`n` connections that send nothing, as another user could open (blocking: a thread)."""
    socks: list[socket.socket] = []
    try:
        for _ in range(n):
            socks.append(socket.create_connection(("127.0.0.1", port), timeout=LIFE))
    except BaseException:
        for s in socks:
            s.close()
        raise
    return socks


def wait_all_closed(socks: list[socket.socket], limit_s: float) -> list[socket.socket]:
    """Wait until the peer has closed every socket; those still open after `limit_s`."""
    open_ = set(socks)
    with selectors.DefaultSelector() as sel:
        for s in socks:
            sel.register(s, selectors.EVENT_READ)
        deadline = time.monotonic() + limit_s
        while open_ and (left := deadline - time.monotonic()) > 0:
            for key, _ in sel.select(left):
                s = key.fileobj
                assert isinstance(s, socket.socket)
                try:
                    data = s.recv(1)
                except ConnectionResetError:
                    data = b""
                assert data == b"", "the metrics endpoint answered a request never sent"
                sel.unregister(s)
                open_.discard(s)
    return list(open_)


def scrape(port: int) -> str:
    url = f"http://127.0.0.1:{port}/metrics"
    with urllib.request.urlopen(url, timeout=LIFE) as reply:
        body: bytes = reply.read()
        return body.decode()


def metric(text: str, name: str) -> float:
    found = re.search(rf"^{name} (\S+)$", text, re.MULTILINE)
    assert found is not None, f"{name} not served"
    return float(found.group(1))


async def test_idle_connections_to_the_metrics_port_cannot_cut_the_daemon_off(
    tmp_path: Path, gateway: Gateway
) -> None:
    config = write_config(tmp_path, gateway.port, trading=False)
    with descriptors_for(FLOOD + 64):
        async with running(config, tmp_path / "daemon.log", nofile=CHILD_NOFILE) as d:
            port = await d.metrics_port()
            assert soft_nofile(d.proc.pid) == CHILD_NOFILE  # the launcher has run: the daemon's
            await d.until(lambda: d.status().get("state") == "READY", "connected")

            socks = await asyncio.to_thread(flood, port, FLOOD)
            try:
                # The daemon still reaches the gateway, answers its operator, reports.
                gateway.drop_clients()
                await d.until(
                    lambda: (
                        d.status().get("reconnect_count") == 1
                        and d.status().get("state") == "READY"
                    ),
                    "reconnected",
                )
                reply = await asyncio.to_thread(send_command, control_path(d.state), "status")
                assert reply["ok"] is True
                assert reply["reconnect_count"] == 1
                uptime = d.status()["uptime_s"]
                await d.until(lambda: d.status().get("uptime_s", 0) > uptime, "status rewritten")
                # And the idle connections are dropped, not kept: at once beyond the limit,
                # after the read timeout within it.
                still_open = await asyncio.to_thread(
                    wait_all_closed, socks, IO_TIMEOUT_S + LIFE / 3
                )
                assert still_open == []
            finally:
                for s in socks:
                    s.close()

            text = await asyncio.to_thread(scrape, port)  # served again once the flood is gone
            refused = metric(text, "orderflowd_metrics_connections_refused_total")
            assert 0 < refused <= FLOOD - MAX_CONNECTIONS  # the first ones had a slot
            refusals = d.events("metrics_connection_refused")
            assert 1 <= len(refusals) <= RATE_LIMIT + 1 < refused  # logged at a bounded rate
            assert not d.events("status_write_failed")
            assert await d.terminate() == 0
    assert "Too many open files" not in (tmp_path / "daemon.log").read_text()


def modes(state: Path) -> dict[str, int]:
    """Every path under the state directory (itself as "."), with its permission bits."""
    out = {".": stat.S_IMODE(state.stat().st_mode)}
    for path in state.rglob("*"):
        out[str(path.relative_to(state))] = stat.S_IMODE(path.lstat().st_mode)
    return out


def private(found: dict[str, int], state: Path) -> dict[str, int]:
    """The paths of `found` whose mode is not 0700 (directories) or 0600 (the rest)."""
    return {
        name: mode
        for name, mode in found.items()
        if mode != (0o700 if (state / name).is_dir() else 0o600)
    }


async def test_the_state_dir_is_private_and_an_old_loose_one_is_tightened_at_start(
    tmp_path: Path, gateway: Gateway
) -> None:
    config = write_config(tmp_path, gateway.port, trading=True)
    state = tmp_path / "state"
    market = Market(gateway)
    wanted = [
        JOURNAL_FILE,
        f"{JOURNAL_FILE}-wal",
        f"{JOURNAL_FILE}-shm",
        STATUS_FILE,
        "recordings",
        "control.sock",
    ]

    def written() -> bool:
        market.quote(market.bid)  # a market for the recorder and the strategy
        market.trade()
        recordings = state / "recordings"
        return all((state / n).exists() for n in wanted) and any(recordings.glob("*.csv.gz"))

    async with running(config, tmp_path / "first.log", umask=0o022) as first:
        await first.until(written, "journal, status and a recording written")
        found = modes(state)
        assert private(found, state) == {}, f"readable by other users: {found}"
        first.kill()  # kill -9: the journal's -wal and -shm stay behind
        await asyncio.wait_for(first.proc.wait(), LIFE)

    # What an older orderflowd left under umask 022, with a pacing history from a backfill.
    (state / PACING_FILE).write_text('{"requests": []}')
    for name in modes(state):
        path = state / name
        if not path.is_socket():
            path.chmod(0o755 if path.is_dir() else 0o644)
    assert (state / f"{JOURNAL_FILE}-wal").exists()
    first_life = json.loads((state / STATUS_FILE).read_text())["started"]

    async with running(config, tmp_path / "second.log", umask=0o022) as second:
        await second.until(
            lambda: (
                second.status().get("started") not in (None, first_life)
                and (second.status().get("trading") or {}).get("reconciled")
            ),
            "second life reconciled",
        )
        found = modes(state)
        assert private(found, state) == {}, f"readable by other users: {found}"
        (tightened,) = second.events("state_dir_tightened")
        assert tightened["dir_mode_was"] == "0755"
        assert {JOURNAL_FILE, f"{JOURNAL_FILE}-wal", PACING_FILE} <= set(tightened["paths"])
        assert await second.terminate() == 0
