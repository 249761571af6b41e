"""The metrics endpoint's HTTP server: few connections at once, none of them for long.

prometheus_client's `start_http_server` runs a thread per connection and never times one out:
~1000 idle connections from any local user used up the daemon's descriptors, and with them
the gateway reconnects, the control socket and status.json. This server is built the same way
(wsgiref, prometheus_client's WSGI app, a thread per connection) with three bounds:

- at most `max_connections` at once: one more is closed as soon as it is accepted, counted in
  `refused` and logged at a bounded rate;
- every read and write on a connection times out after `io_timeout_s` (an idle client);
- a connection still open `deadline_s` after it was accepted is shut down (a slow client
  trickling bytes), checked at every poll of the accept loop.
"""

from __future__ import annotations

import contextlib
import math
import socket
import sys
import threading
import time
from collections.abc import Callable
from socketserver import ThreadingMixIn
from typing import Any, Final
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer

import structlog

log = structlog.get_logger("daemon.runtime.metrics")

MAX_CONNECTIONS: Final = 8  # Prometheus holds one; a few more for curl and a second scraper
IO_TIMEOUT_S: Final = 5.0
DEADLINE_S: Final = 10.0  # a scrape's own bound (metrics.SCRAPE_TIMEOUT_S, 5 s) and slack
POLL_S: Final = 0.5  # the accept loop's poll: granularity of the deadline and of stop()
BACKLOG: Final = 64  # connections the kernel queues before they are accepted (no descriptor)


class _QuietHandler(WSGIRequestHandler):
    """wsgiref's handler without an access log (as prometheus_client's own handler)."""

    def log_message(self, format: str, *args: Any) -> None:
        pass


def best_family(host: str, port: int) -> tuple[socket.AddressFamily, str]:
    """The address family and address to bind `host` with (IPv6 for "::1")."""
    family, _, _, _, sockaddr = socket.getaddrinfo(
        host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
    )[0]
    return family, str(sockaddr[0])


def _peer(address: Any) -> str:
    try:
        return f"{address[0]}:{address[1]}"
    except (TypeError, IndexError):
        return str(address)


class BoundedWSGIServer(ThreadingMixIn, WSGIServer):
    """A threaded WSGI server that bounds its connections in number and in time."""

    daemon_threads = True
    request_queue_size = BACKLOG

    def __init__(
        self,
        address: tuple[str, int],
        *,
        family: socket.AddressFamily = socket.AF_INET,
        max_connections: int = MAX_CONNECTIONS,
        io_timeout_s: float = IO_TIMEOUT_S,
        deadline_s: float = DEADLINE_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.address_family = family
        self.max_connections = max_connections
        self.deadline_s = deadline_s
        self.refused = 0  # connections closed unserved since start
        self._clock = clock
        self._lock = threading.Lock()
        self._open: dict[socket.socket, float] = {}  # admitted connection -> its deadline
        # StreamRequestHandler.setup() puts `timeout` on the connection's socket.
        handler = type("MetricsHandler", (_QuietHandler,), {"timeout": io_timeout_s})
        super().__init__(address, handler)

    @property
    def active(self) -> int:
        """Connections being served now."""
        with self._lock:
            return len(self._open)

    def process_request(self, request: Any, client_address: Any) -> None:
        with self._lock:
            admitted = len(self._open) < self.max_connections
            if admitted:
                self._open[request] = self._clock() + self.deadline_s
            else:
                self.refused += 1
                refused = self.refused
        if not admitted:
            log.warning(
                "metrics_connection_refused",
                client=_peer(client_address),
                limit=self.max_connections,
                refused_total=refused,
                rate_limited=True,
            )
            self.shutdown_request(request)
            return
        try:
            super().process_request(request, client_address)  # starts the connection's thread
        except BaseException:
            self._forget(request)
            raise

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            self.finish_request(request, client_address)
        except Exception:
            self.handle_error(request, client_address)
        finally:
            self._forget(request)  # before the close: the reaper never sees a closed socket
            self.shutdown_request(request)

    def _forget(self, request: socket.socket) -> None:
        with self._lock:
            self._open.pop(request, None)

    def service_actions(self) -> None:
        """At every poll of the accept loop: shut down the connections past their deadline."""
        now = self._clock()
        with self._lock:  # held across shutdown(): a connection is only closed once forgotten
            late = [sock for sock, deadline in self._open.items() if deadline <= now]
            if not late:
                return
            log.info(
                "metrics_connection_dropped",
                reason="deadline",
                seconds=self.deadline_s,
                connections=len(late),
                rate_limited=True,
            )
            for sock in late:
                self._open[sock] = math.inf
                _shutdown(sock)

    def close_connections(self) -> None:
        """Shut down every admitted connection (their threads then end at once)."""
        with self._lock:
            for sock in self._open:
                _shutdown(sock)

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client's timeout or reset is logged quietly; nothing goes to stderr."""
        exc = sys.exc_info()[1]
        if isinstance(exc, OSError):
            log.info(
                "metrics_connection_dropped",
                reason="timeout" if isinstance(exc, TimeoutError) else "error",
                client=_peer(client_address),
                error=repr(exc),
                rate_limited=True,
            )
            return
        log.error(
            "metrics_request_failed",
            client=_peer(client_address),
            error=repr(exc),
            rate_limited=True,
        )


def _shutdown(sock: socket.socket) -> None:
    """Wake the thread blocked on `sock` (its read returns end-of-file); it closes the socket."""
    with contextlib.suppress(OSError):  # already reset by the peer
        sock.shutdown(socket.SHUT_RDWR)
