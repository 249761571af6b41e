"""The operator's control channel: halt | resume | flatten | status over a local Unix socket.

Only the daemon's own user can reach it: the socket lives in the state directory, is created
mode 0600 and, on Linux, every peer's uid is checked with SO_PEERCRED. Never a network port.

Protocol: one request per connection, one UTF-8 JSON object per line (at most `MAX_LINE`
bytes), `{"cmd": "halt", "reason": "lunch"}`; one JSON line back, `{"ok": true, ...}` from the
handler or `{"ok": false, "error": "..."}`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import socket
import stat
import struct
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import structlog

__all__ = [
    "COMMANDS",
    "CONTROL_SOCKET",
    "MAX_LINE",
    "UNIX_PATH_MAX",
    "ControlError",
    "ControlServer",
    "ControlUnavailable",
    "Handler",
    "control_path",
    "send_command",
]

log = structlog.get_logger("daemon.runtime.control")

CONTROL_SOCKET = "control.sock"
COMMANDS = ("halt", "resume", "flatten", "status")
MAX_LINE = 4096  # bytes of one request line, newline excluded
UNIX_PATH_MAX = 107  # sun_path is 108 bytes on Linux, one of them the terminating NUL
READ_TIMEOUT_S = 5.0
MAX_REPLY = 1 << 20  # a status reply may be larger than a request, but never unbounded
_PROBE_TIMEOUT_S = 1.0

Handler = Callable[[str, dict[str, Any]], Awaitable[dict[str, Any]]]
"""`handler(cmd, request)`: *request* is the whole JSON object, with `reason` always a str."""


class ControlError(Exception):
    """The control channel cannot be set up or used; the message says why."""


class ControlUnavailable(ControlError):  # noqa: N818 - the name callers know
    """No daemon is listening on the control socket."""


def control_path(state_dir: Path) -> Path:
    """Where the control socket of a daemon with this state directory lives."""
    return Path(state_dir) / CONTROL_SOCKET


def _check_length(path: Path) -> None:
    size = len(os.fsencode(path))
    if size > UNIX_PATH_MAX:
        raise ControlError(
            f"control socket path {path} is {size} bytes, longer than the AF_UNIX limit of "
            f"{UNIX_PATH_MAX}: use a shorter paths.state_dir"
        )


def _error(message: str) -> dict[str, Any]:
    return {"ok": False, "error": message}


def _parse_request(line: bytes) -> tuple[str, dict[str, Any]]:
    """`(cmd, request)` from one request line; ValueError naming what is wrong."""
    if len(line.rstrip(b"\r\n")) > MAX_LINE:
        raise ValueError(f"request line too long: more than {MAX_LINE} bytes")
    try:
        text = line.decode("utf-8").strip()
    except UnicodeDecodeError:
        raise ValueError("request is not UTF-8") from None
    if not text:
        raise ValueError("empty request: expected one JSON object per line")
    try:
        request = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(f"request is not JSON: {exc.msg} at column {exc.colno}") from None
    if not isinstance(request, dict):
        raise ValueError(f"request must be a JSON object, not {type(request).__name__}")
    cmd = request.get("cmd")
    if cmd is None:
        raise ValueError(f"missing cmd: expected one of {', '.join(COMMANDS)}")
    if cmd not in COMMANDS:
        raise ValueError(f"unknown cmd {cmd!r}: expected one of {', '.join(COMMANDS)}")
    reason = request.setdefault("reason", "")
    if not isinstance(reason, str):
        raise ValueError(f"reason must be a string, not {type(reason).__name__}")
    return cmd, request


def _encode(reply: dict[str, Any]) -> bytes:
    return json.dumps(reply, ensure_ascii=False).encode("utf-8") + b"\n"


class ControlServer:
    """AF_UNIX stream server at *path* that passes each valid command to *handler*.

    Where SO_PEERCRED exists, only *allowed_uid* (default: our own uid) and root (unless
    *allow_root* is False) are served:
    root so that an operator can halt a daemon running as a systemd DynamicUser
    (`sudo orderflowd halt --state-dir /var/lib/orderflowd`); root could stop it anyway.
    *read_timeout* bounds how long a client may take to send its line.
    """

    def __init__(
        self,
        path: Path,
        handler: Handler,
        *,
        read_timeout: float = READ_TIMEOUT_S,
        allowed_uid: int | None = None,
        allow_root: bool = True,
    ) -> None:
        self.path = Path(path)
        self._handler = handler
        self._read_timeout = read_timeout
        self._allowed_uid = os.getuid() if allowed_uid is None else allowed_uid
        self._allowed = {self._allowed_uid, 0} if allow_root else {self._allowed_uid}
        self._server: asyncio.Server | None = None
        self._inode: int | None = None
        self._clients: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        """Bind and listen; ControlError when the path is too long or another daemon owns it."""
        _check_length(self.path)
        try:
            self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        except OSError as exc:
            raise ControlError(f"cannot create {self.path.parent}: {exc.strerror or exc}") from exc
        await self._clear_stale()
        sock = self._bind()
        try:
            self._server = await asyncio.start_unix_server(
                self._serve, sock=sock, limit=MAX_LINE + 2
            )
        except BaseException:
            sock.close()
            self._unlink_own()
            raise
        log.info("control_listening", path=str(self.path))

    async def stop(self) -> None:
        """Stop listening, abort requests in flight and remove the socket file."""
        server, self._server = self._server, None
        if server is not None:
            server.close()
        for task in list(self._clients):
            task.cancel()
        if self._clients:
            await asyncio.gather(*self._clients, return_exceptions=True)
        if server is not None:
            await server.wait_closed()
        self._unlink_own()

    async def _clear_stale(self) -> None:
        try:
            mode = self.path.lstat().st_mode
        except FileNotFoundError:
            return
        if not stat.S_ISSOCK(mode):
            raise ControlError(f"{self.path} exists and is not a socket: remove it or move it")
        try:
            _, writer = await asyncio.wait_for(
                asyncio.open_unix_connection(str(self.path)), _PROBE_TIMEOUT_S
            )
        except (ConnectionRefusedError, FileNotFoundError):
            self.path.unlink(missing_ok=True)
            log.info("control_stale_socket_removed", path=str(self.path))
            return
        except (TimeoutError, OSError) as exc:
            raise ControlError(
                f"cannot check the existing control socket {self.path}: {exc}"
            ) from exc
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()
        raise ControlError(f"another orderflowd is running on {self.path}")

    def _bind(self) -> socket.socket:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            # The umask makes the socket 0600 from its first moment; chmod in case of an odd fs.
            old_umask = os.umask(0o177)
            try:
                sock.bind(str(self.path))
            finally:
                os.umask(old_umask)
            self._inode = self.path.lstat().st_ino
            os.chmod(self.path, 0o600)
            sock.setblocking(False)
        except OSError as exc:
            sock.close()
            self._unlink_own()
            raise ControlError(f"cannot create the control socket {self.path}: {exc}") from exc
        return sock

    def _unlink_own(self) -> None:
        """Remove the socket file if it is still the one we bound (not a successor's)."""
        if self._inode is None:
            return
        with contextlib.suppress(FileNotFoundError):
            if self.path.lstat().st_ino == self._inode:
                self.path.unlink()
        self._inode = None

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._clients.add(task)
        try:
            reply = await self._reply(reader, writer)
            if reply is not None:
                writer.write(_encode(reply))
                await writer.drain()
        except ConnectionError:
            log.info("control_client_gone", rate_limited=True, rate_key="gone")
        finally:
            if task is not None:
                self._clients.discard(task)
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()

    async def _reply(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> dict[str, Any] | None:
        """The reply to send; None when the peer closed without sending a byte (a probe)."""
        refusal = self._check_peer(writer)
        if refusal is not None:
            return _error(refusal)
        try:
            line = await asyncio.wait_for(reader.readline(), self._read_timeout)
        except TimeoutError:
            return self._rejected(f"no request line within {self._read_timeout:g} s")
        except ValueError:  # the stream's limit: no newline within MAX_LINE + 2 bytes
            return self._rejected(f"request line too long: more than {MAX_LINE} bytes")
        if not line:
            return None  # e.g. a second orderflowd checking whether this socket is live
        try:
            cmd, request = _parse_request(line)
        except ValueError as exc:
            return self._rejected(str(exc))
        log.info("control_command", cmd=cmd, reason=request["reason"])
        try:
            reply = await self._handler(cmd, request)
            if not isinstance(reply, dict) or not isinstance(reply.get("ok"), bool):
                raise TypeError(f"handler returned {reply!r}, not a dict with a bool 'ok'")
            json.dumps(reply)  # fail here, not half-way through the write
        except Exception as exc:
            log.exception("control_failed", cmd=cmd)
            return _error(f"{cmd} failed: {type(exc).__name__}: {exc}")
        return reply

    def _check_peer(self, writer: asyncio.StreamWriter) -> str | None:
        """Why this peer is refused, or None. Without SO_PEERCRED, the 0600 mode is the guard."""
        if not hasattr(socket, "SO_PEERCRED"):
            return None
        sock = writer.get_extra_info("socket")
        if sock is None:
            return "cannot identify the peer"
        try:
            creds = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
        except OSError as exc:
            return f"cannot identify the peer: {exc}"
        pid, uid, _ = struct.unpack("3i", creds)
        if uid in self._allowed:
            return None
        log.warning("control_peer_refused", pid=pid, uid=uid, rate_limited=True, rate_key=str(uid))
        return f"uid {uid} may not control this orderflowd (runs as uid {self._allowed_uid})"

    @staticmethod
    def _rejected(error: str) -> dict[str, Any]:
        log.warning("control_rejected", error=error, rate_limited=True, rate_key="rejected")
        return _error(error)


def send_command(path: Path, cmd: str, reason: str = "", timeout: float = 10.0) -> dict[str, Any]:
    """Send one command to the daemon listening at *path* and return its reply (blocking).

    ControlUnavailable when no daemon listens there; ControlError on a timeout, a request that
    is too long, or a reply that is not one JSON object.
    """
    path = Path(path)
    _check_length(path)
    line = json.dumps({"cmd": cmd, "reason": reason}, ensure_ascii=False).encode("utf-8")
    if len(line) > MAX_LINE:
        raise ControlError(
            f"request is {len(line)} bytes, more than {MAX_LINE}: shorten the reason"
        )
    deadline = time.monotonic() + timeout
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        try:
            sock.settimeout(timeout)
            sock.connect(str(path))
        except FileNotFoundError:
            raise ControlUnavailable(
                f"orderflowd is not running (no control socket at {path})"
            ) from None
        except ConnectionRefusedError:
            raise ControlUnavailable(
                f"orderflowd is not running (stale control socket at {path})"
            ) from None
        except TimeoutError:
            raise ControlError(f"no answer from {path} within {timeout:g} s") from None
        except OSError as exc:
            raise ControlError(f"cannot connect to {path}: {exc.strerror or exc}") from None
        data = _exchange(sock, line + b"\n", deadline, path, timeout)
    return _decode_reply(data)


def _exchange(
    sock: socket.socket, line: bytes, deadline: float, path: Path, timeout: float
) -> bytes:
    data = bytearray()
    try:
        # The daemon may answer (a refusal) before reading the request: read that answer.
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            sock.sendall(line)
        while b"\n" not in data and len(data) <= MAX_REPLY:
            sock.settimeout(max(deadline - time.monotonic(), 0.001))
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
    except TimeoutError:
        raise ControlError(f"no reply from orderflowd on {path} within {timeout:g} s") from None
    except OSError as exc:
        if not data:
            raise ControlError(f"connection to {path} failed: {exc.strerror or exc}") from None
    return bytes(data)


def _decode_reply(data: bytes) -> dict[str, Any]:
    if not data:
        raise ControlError("orderflowd closed the connection without a reply")
    text = data.split(b"\n", 1)[0].decode("utf-8", errors="replace")
    try:
        reply = json.loads(text)
    except json.JSONDecodeError:
        raise ControlError(f"reply is not JSON: {text[:200]!r}") from None
    if not isinstance(reply, dict):
        raise ControlError(f"reply is not one JSON object: {text[:200]!r}")
    return reply
