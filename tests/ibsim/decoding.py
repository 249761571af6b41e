"""Decode framed server messages with the real client libraries' decoders (no sockets)."""

from __future__ import annotations

import struct
from typing import Any
from zoneinfo import ZoneInfo

from ib_async.decoder import Decoder as AsyncDecoder
from ibapi.decoder import Decoder as IbapiDecoder
from ibapi.wrapper import EWrapper

Call = tuple[str, tuple[Any, ...]]


def split_frames(data: bytes) -> list[bytes]:
    """Payloads of the length-prefixed frames in `data`; fails on a partial frame."""
    payloads = []
    while data:
        (n,) = struct.unpack(">I", data[:4])
        assert len(data) >= 4 + n, "partial frame"
        payloads.append(data[4 : 4 + n])
        data = data[4 + n :]
    return payloads


class _AsyncRecorder:
    """Stands in for ib_async's Wrapper: every method call is recorded."""

    def __init__(self) -> None:
        self.calls: list[Call] = []
        self.defaultTimezone = ZoneInfo("UTC")
        self.ib = type("IBStub", (), {"TimezoneTWS": None})()

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)

        def record(*args: Any) -> None:
            self.calls.append((name, args))

        return record


def decode_ib_async(server_version: int, data: bytes) -> list[Call]:
    """Wrapper calls ib_async makes for `data`; a message it cannot decode makes none."""
    recorder = _AsyncRecorder()
    decoder = AsyncDecoder(recorder, server_version)  # type: ignore[arg-type]
    for payload in split_frames(data):
        fields = payload.decode().split("\0")[:-1]
        decoder.interpret(fields)
    return recorder.calls


class _IbapiRecorder(EWrapper):  # type: ignore[misc]
    def __init__(self) -> None:
        super().__init__()
        self.calls: list[Call] = []

    def __getattribute__(self, name: str) -> Any:
        if name in EWrapper.__dict__ and not name.startswith("_"):
            calls = object.__getattribute__(self, "calls")

            def record(*args: Any) -> None:
                calls.append((name, args))

            return record
        return object.__getattribute__(self, name)


def decode_ibapi(server_version: int, data: bytes) -> list[Call]:
    """Wrapper calls ibapi makes for `data` (raises where ibapi's reader thread would die)."""
    recorder = _IbapiRecorder()
    decoder = IbapiDecoder(recorder, server_version)
    for payload in split_frames(data):
        fields = tuple(payload.split(b"\0")[:-1])
        decoder.interpret(fields)
    return recorder.calls


def drop_last_field(frame: bytes) -> bytes:
    """The same message with its last field removed (for exact-count checks)."""
    payload = frame[4:]
    fields = payload.split(b"\0")[:-1]
    new = b"\0".join(fields[:-1]) + b"\0"
    return struct.pack(">I", len(new)) + new
