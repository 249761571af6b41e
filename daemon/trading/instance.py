"""One instance per account and ``order_ref_prefix``: the second one refuses to start.

Two daemons with the same prefix on one account would each take the other's orders for their
own. Once the account is known (after the first connect), the instance claims an abstract unix
socket named after the account (hashed: the name is visible to local users), the prefix and the
gateway's address; the kernel releases it when the process ends, even on ``kill -9``. A second
claimant finds the name taken, asks the holder's pid, and the daemon exits with 78 naming the
prefix. (Across machines the broker-side check catches it instead: an order with our prefix
under a client id we never use halts trading, see `ownership`.)
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import socket
import struct

import structlog

from daemon.settings import mask_account

log = structlog.get_logger("daemon.trading.instance")

__all__ = ["InstanceConflictError", "PrefixClaim"]


class InstanceConflictError(Exception):
    """Another running orderflowd uses the same order_ref_prefix on the same account."""


class PrefixClaim:
    """Holds the (account, prefix, gateway) name for this process's lifetime."""

    def __init__(self, prefix: str, host: str) -> None:
        self.prefix = prefix
        self.host = host
        self._sock: socket.socket | None = None
        self._name = b""

    def claim(self, account: str, port: int | None) -> None:
        """Take the name, or raise `InstanceConflictError` naming the prefix and the holder.

        A name held by another local user is not another orderflowd of ours (a squatter, or
        another user's daemon): logged, and the broker-side check stays the guard."""
        key = f"{account}\0{self.prefix}\0{_address(self.host)}\0{port}"
        name = b"\0orderflowd-" + hashlib.sha256(key.encode()).hexdigest()[:32].encode()
        if name == self._name:
            return
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.bind(name)
            sock.listen(1)
        except OSError as exc:
            sock.close()
            if exc.errno != errno.EADDRINUSE:  # no abstract sockets here: the broker check stays
                log.warning("instance_claim_unavailable", error=str(exc))
                return
            holder, uid = _holder(name)
            if uid is not None and uid != os.getuid():
                log.warning(
                    "instance_claim_held_by_another_user",
                    uid=uid,
                    action="the prefix check at the broker stays on; look at who holds it",
                )
                return
            raise InstanceConflictError(
                f"execution.order_ref_prefix {self.prefix!r} is already in use on account "
                f"{mask_account(account)} through {self.host}:{port} by another orderflowd"
                f"{f' (pid {holder})' if holder else ''}: give each instance its own prefix"
            ) from None
        self.release()
        self._sock, self._name = sock, name
        log.info("instance_claimed", prefix=self.prefix, account=mask_account(account))

    def release(self) -> None:
        if self._sock is not None:
            self._sock.close()
        self._sock, self._name = None, b""


def _holder(name: bytes) -> tuple[int | None, int | None]:
    """(pid, uid) of the process holding ``name`` (its peer credentials), if it can be asked."""
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        probe.settimeout(1.0)
        probe.connect(name)
        creds = probe.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
        pid, uid, _ = struct.unpack("3i", creds)
        return pid, uid
    except OSError:
        return None, None
    finally:
        with contextlib.suppress(OSError):
            probe.close()


def _address(host: str) -> str:
    """The gateway's address as an IP ("localhost" and "127.0.0.1" are one gateway)."""
    try:
        return str(socket.getaddrinfo(host, None, type=socket.SOCK_STREAM)[0][4][0])
    except (OSError, IndexError):
        return host
