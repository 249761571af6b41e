"""The control channel: a real AF_UNIX server in the test's loop, the client in a thread."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import socket
import stat
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import structlog

from daemon.runtime.control import (
    COMMANDS,
    CONTROL_SOCKET,
    MAX_LINE,
    UNIX_PATH_MAX,
    ControlError,
    ControlServer,
    ControlUnavailable,
    control_path,
    send_command,
)

WAIT = 5.0


class Recorder:
    """A handler that records what reaches it; reason "boom" raises, "bad" returns a non-reply."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, dict[str, Any]]] = []

    async def __call__(self, cmd: str, request: dict[str, Any]) -> dict[str, Any]:
        self.calls.append((cmd, request))
        if request["reason"] == "boom":
            raise RuntimeError("broker gone")
        if request["reason"] == "bad":
            return ["not", "a", "dict"]  # type: ignore[return-value]  # deliberately wrong
        return {"ok": True, "state": cmd.upper(), "reason": request["reason"]}


@pytest.fixture
def sock_path(tmp_path: Path) -> Path:
    return control_path(tmp_path / "state")


@pytest.fixture
def recorder() -> Recorder:
    return Recorder()


@pytest.fixture
async def server(sock_path: Path, recorder: Recorder) -> AsyncIterator[ControlServer]:
    srv = ControlServer(sock_path, recorder)
    await asyncio.wait_for(srv.start(), WAIT)
    yield srv
    await asyncio.wait_for(srv.stop(), WAIT)


async def send(
    path: Path, cmd: str, reason: str = "", client_timeout: float = WAIT
) -> dict[str, Any]:
    return await asyncio.wait_for(
        asyncio.to_thread(send_command, path, cmd, reason, client_timeout), WAIT + 1
    )


def mode_of(path: Path) -> int:
    return path.lstat().st_mode


def exists(path: Path) -> bool:
    return path.exists()


async def raw(path: Path, data: bytes) -> dict[str, Any]:
    """Send bytes as they are and read the one reply line."""
    reader, writer = await asyncio.wait_for(asyncio.open_unix_connection(str(path)), WAIT)
    try:
        writer.write(data)
        await asyncio.wait_for(writer.drain(), WAIT)
        line = await asyncio.wait_for(reader.readline(), WAIT)
    finally:
        writer.close()
        with contextlib.suppress(OSError):
            await asyncio.wait_for(writer.wait_closed(), WAIT)
    reply: dict[str, Any] = json.loads(line)
    return reply


@pytest.mark.parametrize("cmd", COMMANDS)
async def test_each_command_reaches_the_handler_with_its_reason(
    server: ControlServer, recorder: Recorder, sock_path: Path, cmd: str
) -> None:
    reply = await send(sock_path, cmd, "lunch")
    assert reply == {"ok": True, "state": cmd.upper(), "reason": "lunch"}
    assert recorder.calls == [(cmd, {"cmd": cmd, "reason": "lunch"})]


async def test_a_missing_reason_reaches_the_handler_as_empty(
    server: ControlServer, recorder: Recorder, sock_path: Path
) -> None:
    reply = await raw(sock_path, b'{"cmd": "halt"}\n')
    assert reply["ok"] is True
    assert recorder.calls == [("halt", {"cmd": "halt", "reason": ""})]


async def test_each_accepted_command_is_logged(server: ControlServer, sock_path: Path) -> None:
    with structlog.testing.capture_logs() as logs:
        await send(sock_path, "resume", "back from lunch")
    commands = [e for e in logs if e["event"] == "control_command"]
    assert commands == [
        {
            "event": "control_command",
            "log_level": "info",
            "cmd": "resume",
            "reason": "back from lunch",
        }
    ]


async def test_socket_is_0600_in_a_0700_state_dir(server: ControlServer, sock_path: Path) -> None:
    assert sock_path.name == CONTROL_SOCKET
    assert stat.S_ISSOCK(mode_of(sock_path))
    assert stat.S_IMODE(mode_of(sock_path)) == 0o600
    assert stat.S_IMODE(mode_of(sock_path.parent)) == 0o700


async def test_stop_removes_the_socket_file(sock_path: Path, recorder: Recorder) -> None:
    srv = ControlServer(sock_path, recorder)
    await asyncio.wait_for(srv.start(), WAIT)
    assert exists(sock_path)
    await asyncio.wait_for(srv.stop(), WAIT)
    assert not exists(sock_path)
    with pytest.raises(ControlUnavailable, match="no control socket at"):
        await send(sock_path, "status")


def leave_stale_socket(path: Path) -> None:
    """What a crashed daemon leaves behind: the socket file, nobody listening."""
    path.parent.mkdir(parents=True, exist_ok=True)
    dead = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    dead.bind(str(path))
    dead.close()


async def test_a_stale_socket_file_is_replaced(sock_path: Path, recorder: Recorder) -> None:
    leave_stale_socket(sock_path)
    with pytest.raises(ControlUnavailable, match="stale control socket"):
        await send(sock_path, "halt")
    srv = ControlServer(sock_path, recorder)
    with structlog.testing.capture_logs() as logs:
        await asyncio.wait_for(srv.start(), WAIT)
    try:
        assert "control_stale_socket_removed" in [e["event"] for e in logs]
        assert (await send(sock_path, "halt", "x"))["ok"] is True
    finally:
        await asyncio.wait_for(srv.stop(), WAIT)


async def test_a_second_server_on_a_live_socket_is_refused(
    server: ControlServer, sock_path: Path, recorder: Recorder
) -> None:
    second = ControlServer(sock_path, recorder)
    with structlog.testing.capture_logs() as logs:
        with pytest.raises(ControlError, match=f"another orderflowd is running on {sock_path}"):
            await asyncio.wait_for(second.start(), WAIT)
        await asyncio.wait_for(second.stop(), WAIT)  # must not remove the first server's socket
        # The probe connection was accepted before this one, so it has been handled by now.
        assert (await send(sock_path, "status"))["ok"] is True
    events = [e["event"] for e in logs]
    assert "control_command" in events
    assert "control_rejected" not in events  # the second server's probe is not an error


async def test_a_regular_file_in_the_way_is_not_removed(
    sock_path: Path, recorder: Recorder
) -> None:
    regular = sock_path.parent / "regular"
    regular.parent.mkdir(parents=True)
    await asyncio.to_thread(regular.write_text, "precious")
    with pytest.raises(ControlError, match="is not a socket"):
        await asyncio.wait_for(ControlServer(regular, recorder).start(), WAIT)
    assert await asyncio.to_thread(regular.read_text) == "precious"


@pytest.mark.parametrize(
    ("line", "error"),
    [
        (b"halt please\n", "request is not JSON"),
        (b'["halt"]\n', "request must be a JSON object, not list"),
        (b'{"cmd": "sell"}\n', "unknown cmd 'sell': expected one of halt, resume, flatten, status"),
        (b'{"reason": "x"}\n', "missing cmd: expected one of halt, resume"),
        (b'{"cmd": "halt", "reason": 5}\n', "reason must be a string, not int"),
        (b"\n", "empty request"),
        (b'{"cmd": "halt", "reason": "\xff"}\n', "request is not UTF-8"),
        (b'{"cmd": "halt", "reason": "' + b"a" * MAX_LINE + b'"}\n', "request line too long"),
        (b"x" * (3 * MAX_LINE) + b"\n", "request line too long"),
    ],
    ids=[
        "not-json",
        "array",
        "unknown-cmd",
        "no-cmd",
        "reason-type",
        "empty",
        "utf8",
        "long",
        "huge",
    ],
)
async def test_a_malformed_line_gets_an_error_and_the_server_keeps_serving(
    server: ControlServer, recorder: Recorder, sock_path: Path, line: bytes, error: str
) -> None:
    reply = await raw(sock_path, line)
    assert reply["ok"] is False
    assert error in reply["error"]
    assert recorder.calls == []
    assert (await send(sock_path, "status", "after"))["ok"] is True


async def test_a_line_of_exactly_max_bytes_is_accepted(
    server: ControlServer, recorder: Recorder, sock_path: Path
) -> None:
    head = b'{"cmd": "halt", "reason": "'
    line = head + b"a" * (MAX_LINE - len(head) - 2) + b'"}'
    assert len(line) == MAX_LINE
    assert (await raw(sock_path, line + b"\n"))["ok"] is True
    assert len(recorder.calls[0][1]["reason"]) == MAX_LINE - len(head) - 2


async def test_a_handler_exception_gets_an_error_reply_and_is_logged(
    server: ControlServer, sock_path: Path
) -> None:
    with structlog.testing.capture_logs() as logs:
        reply = await send(sock_path, "flatten", "boom")
    assert reply == {"ok": False, "error": "flatten failed: RuntimeError: broker gone"}
    failed = [e for e in logs if e["event"] == "control_failed"]
    assert len(failed) == 1
    assert failed[0]["cmd"] == "flatten"
    assert failed[0]["exc_info"] is True
    assert (await send(sock_path, "status", "still alive"))["ok"] is True


async def test_a_handler_reply_without_ok_is_an_error(
    server: ControlServer, sock_path: Path
) -> None:
    reply = await send(sock_path, "halt", "bad")
    assert reply["ok"] is False
    assert "not a dict with a bool 'ok'" in reply["error"]


async def test_a_silent_client_times_out(sock_path: Path, recorder: Recorder) -> None:
    srv = ControlServer(sock_path, recorder, read_timeout=0.05)
    await asyncio.wait_for(srv.start(), WAIT)
    try:
        reply = await raw(sock_path, b"")  # connects, sends nothing
        assert reply == {"ok": False, "error": "no request line within 0.05 s"}
        assert recorder.calls == []
        assert (await send(sock_path, "status"))["ok"] is True
    finally:
        await asyncio.wait_for(srv.stop(), WAIT)


@pytest.mark.skipif(not hasattr(socket, "SO_PEERCRED"), reason="SO_PEERCRED is Linux-only")
async def test_another_users_peer_is_refused(sock_path: Path, recorder: Recorder) -> None:
    srv = ControlServer(sock_path, recorder, allowed_uid=os.getuid() + 1, allow_root=False)
    await asyncio.wait_for(srv.start(), WAIT)
    try:
        reply = await send(sock_path, "flatten", "intruder")
    finally:
        await asyncio.wait_for(srv.stop(), WAIT)
    assert reply["ok"] is False
    assert f"uid {os.getuid()} may not control this orderflowd" in reply["error"]
    assert recorder.calls == []


@pytest.mark.skipif(not hasattr(socket, "SO_PEERCRED"), reason="SO_PEERCRED is Linux-only")
async def test_root_may_control_a_daemon_of_another_user(
    sock_path: Path, recorder: Recorder
) -> None:
    # An operator's `sudo orderflowd halt` reaches a daemon running as a systemd DynamicUser.
    srv = ControlServer(sock_path, recorder, allowed_uid=os.getuid() + 1)
    await asyncio.wait_for(srv.start(), WAIT)
    try:
        reply = await send(sock_path, "halt", "operator")
    finally:
        await asyncio.wait_for(srv.stop(), WAIT)
    assert reply["ok"] is (os.getuid() == 0)
    assert len(recorder.calls) == (1 if os.getuid() == 0 else 0)


async def test_a_path_over_the_af_unix_limit_is_refused(tmp_path: Path, recorder: Recorder) -> None:
    deep = tmp_path / ("d" * (UNIX_PATH_MAX - len(str(tmp_path)))) / CONTROL_SOCKET
    with pytest.raises(ControlError, match=f"{deep} is .* bytes, longer than .* limit of 107"):
        await asyncio.wait_for(ControlServer(deep, recorder).start(), WAIT)
    assert not deep.parent.exists()
    with pytest.raises(ControlError, match="limit of 107"):
        send_command(deep, "status")


def test_client_without_a_daemon_says_it_is_not_running(tmp_path: Path) -> None:
    path = control_path(tmp_path)
    with pytest.raises(ControlUnavailable, match=f"orderflowd is not running .*{path}"):
        send_command(path, "halt")


def test_client_on_a_stale_socket_says_it_is_not_running(tmp_path: Path) -> None:
    path = control_path(tmp_path)
    leave_stale_socket(path)
    with pytest.raises(ControlUnavailable, match="orderflowd is not running"):
        send_command(path, "halt")


def test_client_refuses_a_request_over_the_line_limit(tmp_path: Path) -> None:
    with pytest.raises(ControlError, match="more than 4096: shorten the reason"):
        send_command(control_path(tmp_path), "halt", "x" * MAX_LINE)


@pytest.fixture
async def fake_daemon(tmp_path: Path) -> AsyncIterator[tuple[Path, list[bytes]]]:
    """A server that answers each connection with the next canned reply (b"" = say nothing)."""
    path = tmp_path / "fake.sock"
    replies: list[bytes] = []
    hold = asyncio.Event()

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readline()
        reply = replies.pop(0)
        if reply:
            writer.write(reply)
            await writer.drain()
        else:
            await hold.wait()
        writer.close()

    srv = await asyncio.wait_for(asyncio.start_unix_server(serve, str(path)), WAIT)
    yield path, replies
    hold.set()
    srv.close()
    await asyncio.wait_for(srv.wait_closed(), WAIT)


@pytest.mark.parametrize(
    ("reply", "error"),
    [
        (b"<html>\n", "reply is not JSON"),
        (b"[1, 2]\n", "reply is not one JSON object"),
        (b'{"ok": true', "reply is not JSON"),
    ],
)
async def test_client_rejects_a_reply_that_is_not_one_object(
    fake_daemon: tuple[Path, list[bytes]], reply: bytes, error: str
) -> None:
    path, replies = fake_daemon
    replies.append(reply)
    with pytest.raises(ControlError, match=error):
        await send(path, "status")


async def test_client_times_out_on_a_silent_daemon(
    fake_daemon: tuple[Path, list[bytes]],
) -> None:
    path, replies = fake_daemon
    replies.append(b"")
    with pytest.raises(ControlError, match=r"no reply from orderflowd .* within 0\.1 s"):
        await send(path, "status", client_timeout=0.1)
