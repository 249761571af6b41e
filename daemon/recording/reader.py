"""Reading recordings back: `read_day`, `list_days`, and `read_file` for one file.

A file cut short by a crash (its last gzip member truncated) is read up to the cut with a
`recording_truncated` warning; anything else that is not the format raises
`RecordingFileError` naming the file and line.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterator
from pathlib import Path

import structlog

from daemon.flow.events import QuoteEvent, TradeEvent
from daemon.recording.format import (
    DIRECTORY,
    HEADER,
    MAGIC,
    SUFFIX,
    RecordedEvent,
    RowError,
    day_of_name,
    file_name,
    is_day,
    parse_row,
)

log = structlog.get_logger("daemon.recording.reader")

_CHUNK = 1 << 16
_GZIP = 31  # zlib wbits for one gzip member


class RecordingFileError(ValueError):
    """A recording that cannot be read; the message names the file and, where known, the line."""

    def __init__(self, path: Path, reason: str, line: int | None = None) -> None:
        self.path = path
        self.reason = reason
        self.line = line
        where = str(path) if line is None else f"{path}, line {line}"
        super().__init__(f"{where}: {reason}")


def recordings_dir(state_dir: Path) -> Path:
    return Path(state_dir) / DIRECTORY


def list_days(state_dir: Path) -> list[str]:
    """The trading days (`YYYY-MM-DD`) with a recording under `state_dir`, oldest first."""
    folder = recordings_dir(state_dir)
    if not folder.is_dir():
        return []
    days = {d for d in (day_of_name(p.name) for p in folder.iterdir()) if d is not None}
    return sorted(days)


def day_file(state_dir: Path, day: str, symbol: str | None = None) -> Path:
    """The file of `day`; FileNotFoundError when there is none, ValueError when ambiguous."""
    if not is_day(day):
        raise ValueError(f"day {day!r} is not YYYY-MM-DD")
    folder = recordings_dir(state_dir)
    if symbol is not None:
        path = folder / file_name(symbol, day)
        if not path.is_file():
            raise FileNotFoundError(f"no recording {path}")
        return path
    found = sorted(folder.glob(f"*-{day}{SUFFIX}")) if folder.is_dir() else []
    if not found:
        raise FileNotFoundError(
            f"no recording of {day} in {folder} (recorded days: {list_days(state_dir) or 'none'})"
        )
    if len(found) > 1:
        names = ", ".join(p.name for p in found)
        raise ValueError(f"several recordings of {day} ({names}): pass symbol=")
    return found[0]


def read_day(
    state_dir: Path, day: str, symbol: str | None = None
) -> Iterator[TradeEvent | QuoteEvent]:
    """The trades and quotes recorded on trading day `day` (`YYYY-MM-DD`), in arrival order.

    `seq` numbers the events of the day from 1. `symbol` is needed only when recordings of
    several instruments share the directory.
    """
    return read_file(day_file(state_dir, day, symbol))


def read_file(path: Path) -> Iterator[RecordedEvent]:
    """The events of one recording file, checked row by row."""
    lines = _lines(path)
    first = next(lines, None)
    if first is None:
        raise RecordingFileError(path, "empty: no header", 1)
    if first[1] != MAGIC:
        raise RecordingFileError(path, f"first line is {first[1][:60]!r}, expected {MAGIC!r}", 1)
    second = next(lines, None)
    if second is None or second[1] != HEADER:
        got = "nothing" if second is None else repr(second[1][:120])
        raise RecordingFileError(path, f"column line is {got}, expected {HEADER!r}", 2)
    seq = 0
    for lineno, text in lines:
        if not text:
            continue
        seq += 1
        try:
            yield parse_row(text, seq)
        except RowError as exc:
            raise RecordingFileError(path, str(exc), lineno) from None


def _lines(path: Path) -> Iterator[tuple[int, str]]:
    """Numbered text lines of all gzip members; a truncated last member ends them early."""
    lineno = 0
    rest = b""
    truncated = False
    try:
        for chunk, cut in _members(path):
            if cut:
                truncated = True
                break
            rest += chunk
            *complete, rest = rest.split(b"\n")
            for raw in complete:
                lineno += 1
                yield lineno, _decode(path, raw, lineno)
    except zlib.error as exc:
        raise RecordingFileError(path, f"corrupt gzip data after line {lineno}: {exc}") from None
    if truncated:
        log.warning(
            "recording_truncated",
            path=str(path),
            lines=lineno,
            dropped_bytes=len(rest),
            action="read up to the cut (the writer was killed mid-flush)",
        )
    elif rest:
        lineno += 1
        yield lineno, _decode(path, rest, lineno)


def _decode(path: Path, raw: bytes, lineno: int) -> str:
    try:
        return raw.decode("ascii").rstrip("\r")
    except UnicodeDecodeError as exc:
        raise RecordingFileError(path, f"not ASCII (byte {raw[exc.start]:#04x})", lineno) from None


def _members(path: Path) -> Iterator[tuple[bytes, bool]]:
    """(decompressed bytes, False) member after member; (b"", True) at a truncated last one."""
    with path.open("rb") as fh:
        d = zlib.decompressobj(_GZIP)
        inside = False  # part of a member has been read
        while chunk := fh.read(_CHUNK):
            while chunk:
                out = d.decompress(chunk)
                inside = True
                if out:
                    yield out, False
                if d.eof:
                    chunk = d.unused_data
                    d = zlib.decompressobj(_GZIP)
                    inside = False
                else:
                    chunk = b""
        if inside:
            tail = d.flush()
            if tail:
                yield tail, False
            yield b"", True
