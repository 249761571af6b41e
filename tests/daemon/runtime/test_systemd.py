"""sd_notify against real AF_UNIX datagram sockets standing in for systemd's NOTIFY_SOCKET."""

from __future__ import annotations

import io
import json
import os
import socket
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from daemon.runtime.logs import configure_logging
from daemon.runtime.systemd import Notifier

RECV_TIMEOUT = 2.0


def receiver(address: str) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(address)
    sock.settimeout(RECV_TIMEOUT)
    return sock


@pytest.fixture
def path_socket(tmp_path: Path) -> Iterator[tuple[socket.socket, str]]:
    path = str(tmp_path / "notify.sock")
    with receiver(path) as sock:
        yield sock, path


@pytest.fixture
def abstract_socket() -> Iterator[tuple[socket.socket, str]]:
    name = f"orderflowd-test-{uuid.uuid4().hex}"
    with receiver("\0" + name) as sock:
        yield sock, "@" + name


@pytest.mark.parametrize("fixture", ["path_socket", "abstract_socket"])
def test_sends_exact_datagrams(fixture: str, request: pytest.FixtureRequest) -> None:
    sock, address = request.getfixturevalue(fixture)
    notifier = Notifier({"NOTIFY_SOCKET": address})
    assert notifier.enabled
    sent = [
        ("READY=1",),
        ("STATUS=connected to 127.0.0.1:4002, READY",),
        ("WATCHDOG=1",),
        ("STOPPING=1", "STATUS=stopping"),
    ]
    for lines in sent:
        assert notifier.notify(*lines) is True
    received = [sock.recv(4096) for _ in sent]
    assert received == [
        b"READY=1",
        b"STATUS=connected to 127.0.0.1:4002, READY",
        b"WATCHDOG=1",
        b"STOPPING=1\nSTATUS=stopping",
    ]


def test_a_newline_cannot_inject_another_assignment(
    path_socket: tuple[socket.socket, str],
) -> None:
    sock, address = path_socket
    assert Notifier({"NOTIFY_SOCKET": address}).notify("STATUS=a\nREADY=1")
    assert sock.recv(4096) == b"STATUS=a READY=1"


@pytest.mark.parametrize("environ", [{}, {"NOTIFY_SOCKET": ""}])
def test_without_notify_socket_it_is_a_no_op(environ: dict[str, str]) -> None:
    notifier = Notifier(environ)
    assert not notifier.enabled
    assert notifier.notify("READY=1") is False


def test_nothing_to_send_returns_false(path_socket: tuple[socket.socket, str]) -> None:
    _, address = path_socket
    assert Notifier({"NOTIFY_SOCKET": address}).notify() is False


def test_vanished_socket_returns_false_and_logs_at_debug(tmp_path: Path) -> None:
    path = tmp_path / "gone.sock"
    receiver(str(path)).close()
    path.unlink()
    out = io.StringIO()
    configure_logging("json", "debug", stream=out, environ={})
    assert Notifier({"NOTIFY_SOCKET": str(path)}).notify("WATCHDOG=1") is False
    (record,) = (json.loads(line) for line in out.getvalue().splitlines())
    assert record["event"] == "sd_notify_failed"
    assert record["level"] == "debug"


def test_bound_but_dead_socket_returns_false(tmp_path: Path) -> None:
    path = tmp_path / "dead.sock"
    receiver(str(path)).close()  # the file stays, nobody listens
    assert Notifier({"NOTIFY_SOCKET": str(path)}).notify("READY=1") is False


def test_a_full_receiver_queue_fails_fast_instead_of_blocking(
    path_socket: tuple[socket.socket, str],
) -> None:
    _, address = path_socket
    notifier = Notifier({"NOTIFY_SOCKET": address})
    assert notifier.notify("WATCHDOG=1") is True
    # Nobody reads: the kernel queue fills within a few datagrams and sends must then fail.
    assert not all(notifier.notify("WATCHDOG=1") for _ in range(10_000))


WATCHDOG_CASES = [
    ({}, None),
    ({"WATCHDOG_USEC": "30000000"}, 15.0),
    ({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": str(os.getpid())}, 15.0),
    ({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": str(os.getpid() + 1)}, None),
    ({"WATCHDOG_USEC": "0"}, None),
    ({"WATCHDOG_USEC": "soon"}, None),
    ({"WATCHDOG_USEC": "1000000", "WATCHDOG_PID": "not-a-pid"}, None),
]


@pytest.mark.parametrize(("environ", "expected"), WATCHDOG_CASES)
def test_watchdog_interval(environ: dict[str, str], expected: float | None) -> None:
    assert Notifier(environ).watchdog_interval() == expected
