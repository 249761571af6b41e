"""TWS socket framing and field text: what goes on the wire and how request fields are read.

A frame is a 4-byte big-endian payload length followed by NUL-terminated text fields.
Formatting follows what both ib_async and ibapi decode (see TWS_PROTOCOL.md §1).
"""

from __future__ import annotations

import math
import struct
from collections.abc import Iterable, Sequence

from ibsim.model import UNSET_DOUBLE, UNSET_INTEGER

MAX_FRAME = 0xFFFFFF  # ibapi refuses larger payloads; we refuse larger requests the same way

UNSET_DOUBLE_TEXT = "1.7976931348623157E308"
UNSET_INTEGER_TEXT = str(UNSET_INTEGER)

_LEN = struct.Struct(">I")


class WireError(ValueError):
    """A client message that cannot be read: the session logs it and drops that client."""


def fmt(value: object) -> str:
    """Render one field the way TWS does (ASCII only, bools as 1/0, unset markers)."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value if value.isascii() else _ascii_escape(value)
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if value >= UNSET_DOUBLE:
            return UNSET_DOUBLE_TEXT
        if math.isinf(value):
            return "Infinite" if value > 0 else "-Infinite"
        return repr(value)
    return str(value)


def _ascii_escape(text: str) -> str:
    return "".join(c if c.isascii() else f"\\u{ord(c):04x}" for c in text)


def frame_text(payload: str) -> bytes:
    """Frame an already-joined payload (fields joined by NUL, with the trailing NUL)."""
    data = payload.encode("ascii")
    return _LEN.pack(len(data)) + data


def message(*fields: object) -> bytes:
    """Encode one framed message from its fields (field 0 is the message id)."""
    return frame_text("\0".join(map(fmt, fields)) + "\0")


def message_from(fields: Iterable[object]) -> bytes:
    """Like `message`, for a field list built up elsewhere."""
    return frame_text("\0".join(map(fmt, fields)) + "\0")


def frame_length(header: bytes) -> int:
    """Payload length from a 4-byte header; rejects sizes no client would send."""
    n: int = _LEN.unpack(header)[0]
    if n == 0 or n > MAX_FRAME:
        raise WireError(f"frame length {n} out of range 1..{MAX_FRAME}")
    return n


def split_fields(payload: bytes) -> list[str]:
    """Split a payload into text fields; the last field must be NUL-terminated."""
    if not payload.endswith(b"\0"):
        raise WireError("payload does not end with a NUL field terminator")
    try:
        text = payload.decode("ascii")
    except UnicodeDecodeError as exc:
        raise WireError(f"non-ASCII byte at offset {exc.start}") from None
    return text[:-1].split("\0")


class Fields:
    """A cursor over one request's fields, with typed readers that name what was wrong."""

    __slots__ = ("_fields", "_pos", "name")

    def __init__(self, fields: Sequence[str], name: str) -> None:
        self._fields = fields
        self._pos = 0
        self.name = name

    @property
    def remaining(self) -> int:
        return len(self._fields) - self._pos

    def text(self) -> str:
        if self._pos >= len(self._fields):
            raise WireError(f"{self.name}: truncated after {self._pos} fields")
        value = self._fields[self._pos]
        self._pos += 1
        return value

    def skip(self, n: int) -> None:
        for _ in range(n):
            self.text()

    def integer(self) -> int:
        """An int; unset ("" or 2147483647) reads as 0."""
        value = self.opt_int()
        return 0 if value is None else value

    def opt_int(self) -> int | None:
        text = self.text()
        if text in ("", UNSET_INTEGER_TEXT):
            return None
        try:
            return int(text)
        except ValueError:
            try:
                as_float = float(text)
            except ValueError:
                as_float = math.nan
            if as_float.is_integer():
                return int(as_float)
            raise WireError(
                f"{self.name}: field {self._pos - 1} {text!r} is not an integer"
            ) from None

    def opt_float(self) -> float | None:
        """A float; unset markers read as None and "Infinite" as +inf."""
        text = self.text()
        if text == "" or text == UNSET_INTEGER_TEXT:
            return None
        if text == "Infinite":
            return math.inf
        try:
            value = float(text)
        except ValueError:
            raise WireError(
                f"{self.name}: field {self._pos - 1} {text!r} is not a number"
            ) from None
        if value >= UNSET_DOUBLE or math.isnan(value):
            return None
        return value

    def _bad(self, text: str, what: str) -> WireError:
        return WireError(f"{self.name}: field {self._pos - 1} {text!r} is not {what}")

    def flag(self) -> bool:
        return self.integer() != 0
