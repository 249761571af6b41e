"""The metrics HTTP server bounds its connections in number and in time, over real sockets."""

from __future__ import annotations

import socket
import threading
import time
import urllib.request
from collections.abc import Callable, Iterable, Iterator
from contextlib import ExitStack, contextmanager
from typing import Any

import pytest
import structlog

from daemon.runtime.metrics_http import BoundedWSGIServer, best_family

WAIT = 10.0
BODY = b"orderflowd_up 1\n"


def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [BODY]


@contextmanager
def serving(**bounds: Any) -> Iterator[BoundedWSGIServer]:
    server = BoundedWSGIServer(("127.0.0.1", 0), **bounds)
    server.set_app(app)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.close_connections()
        server.server_close()
        thread.join(WAIT)


def connect(server: BoundedWSGIServer) -> socket.socket:
    return socket.create_connection(("127.0.0.1", server.server_port), timeout=WAIT)


def closed_by_server(sock: socket.socket) -> bool:
    """Blocks until the server closes `sock` (True) or WAIT passes (False)."""
    try:
        return sock.recv(1) == b""
    except ConnectionResetError:
        return True
    except TimeoutError:
        return False


def get(server: BoundedWSGIServer) -> bytes:
    url = f"http://127.0.0.1:{server.server_port}/metrics"
    with urllib.request.urlopen(url, timeout=WAIT) as reply:
        body: bytes = reply.read()
        return body


def until(predicate: Callable[[], bool]) -> None:
    deadline = time.monotonic() + WAIT
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached"
        time.sleep(0.01)  # polling a server thread's counter: nothing to wait on


def test_beyond_the_limit_a_connection_is_closed_at_once_counted_and_logged() -> None:
    with serving(max_connections=2, io_timeout_s=60.0, deadline_s=60.0) as server:
        with ExitStack() as held, structlog.testing.capture_logs() as logs:
            idle = [held.enter_context(connect(server)) for _ in range(2)]
            until(lambda: server.active == 2)
            extra = [held.enter_context(connect(server)) for _ in range(3)]
            assert all(closed_by_server(s) for s in extra)
            assert server.refused == 3
            assert server.active == 2
            for s in idle:
                s.settimeout(0.2)
                assert not closed_by_server(s)  # the admitted ones are still being served
        refusals = [e for e in logs if e["event"] == "metrics_connection_refused"]
        assert len(refusals) == 3  # rate-limited by the logging chain, not dropped here
        assert refusals[-1]["refused_total"] == 3
        assert refusals[-1]["limit"] == 2
        until(lambda: server.active == 0)
        assert get(server) == BODY  # the slots are free again once the clients leave


def test_an_idle_connection_is_dropped_after_the_io_timeout() -> None:
    with serving(max_connections=2, io_timeout_s=0.3, deadline_s=60.0) as server:
        with connect(server) as idle, structlog.testing.capture_logs() as logs:
            started = time.monotonic()
            assert closed_by_server(idle)
            assert time.monotonic() - started < WAIT
        until(lambda: server.active == 0)
        assert [e["reason"] for e in logs if e["event"] == "metrics_connection_dropped"] == [
            "timeout"
        ]
        assert get(server) == BODY


def test_a_slow_client_is_dropped_at_its_deadline_whatever_it_sends() -> None:
    # The read timeout alone would let a client that sends a byte now and then stay forever.
    with serving(max_connections=1, io_timeout_s=60.0, deadline_s=0.3) as server:
        with connect(server) as slow, structlog.testing.capture_logs() as logs:
            slow.sendall(b"GET /metr")  # an unfinished request line: the handler keeps reading
            assert closed_by_server(slow)
        until(lambda: server.active == 0)
        assert any(e.get("reason") == "deadline" for e in logs)
        assert get(server) == BODY


def test_a_scrape_within_the_bounds_is_served_whole() -> None:
    with serving(max_connections=1, io_timeout_s=5.0, deadline_s=5.0) as server:
        for _ in range(3):  # each scrape frees its slot for the next
            assert get(server) == BODY
            until(lambda: server.active == 0)  # freed as its thread ends, after the reply
        assert server.refused == 0


@pytest.mark.parametrize(
    ("host", "family"), [("127.0.0.1", socket.AF_INET), ("::1", socket.AF_INET6)]
)
def test_the_address_family_follows_the_host(host: str, family: socket.AddressFamily) -> None:
    assert best_family(host, 0) == (family, host)
