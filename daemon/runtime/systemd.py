"""sd_notify(3) without libsystemd: READY=1, STATUS=..., WATCHDOG=1, STOPPING=1 datagrams."""

from __future__ import annotations

import os
import socket
from collections.abc import Mapping

from daemon.runtime.logs import get_logger

log = get_logger(__name__)


class Notifier:
    """Talks to systemd through NOTIFY_SOCKET; a no-op outside systemd. Never raises."""

    def __init__(self, environ: Mapping[str, str] | None = None) -> None:
        env = os.environ if environ is None else environ
        path = env.get("NOTIFY_SOCKET", "")
        # "@name" is a Linux abstract-namespace socket: a leading NUL byte instead of "@".
        self.address: str | None = "\0" + path[1:] if path.startswith("@") else path or None
        self._watchdog_usec = env.get("WATCHDOG_USEC", "")
        self._watchdog_pid = env.get("WATCHDOG_PID", "")

    @property
    def enabled(self) -> bool:
        return self.address is not None

    def notify(self, *lines: str) -> bool:
        """Send *lines* as one datagram; False when disabled or the send failed."""
        if self.address is None or not lines:
            return False
        payload = "\n".join(line.replace("\n", " ") for line in lines).encode()
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
                sock.setblocking(False)  # a busy systemd must not stall the event loop
                sock.sendto(payload, self.address)
        except (OSError, ValueError) as exc:
            log.debug("sd_notify_failed", lines=lines, error=repr(exc))
            return False
        return True

    def watchdog_interval(self) -> float | None:
        """Seconds between WATCHDOG=1 pings (half of WATCHDOG_USEC), None if not ours or off."""
        try:
            if self._watchdog_pid and int(self._watchdog_pid) != os.getpid():
                return None
            usec = int(self._watchdog_usec)
        except ValueError:
            return None
        return usec / 2_000_000 if usec > 0 else None
