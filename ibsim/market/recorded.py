"""Replay of an orderflowd recording: the real day's trades AND quotes, as they arrived.

The format (docs/recording.md) is read here with ibsim's own parser: gzip members of CSV (or the
same text unzipped), first line `# orderflowd recording v1`, then the column line. Values are
replayed as recorded, bad ones included (-1, 0, NaN prices: the client's guards judge them; the
matching engine ignores them). What cannot be put on the wire is adapted: sizes become ints (an
event whose size is not a whole number is skipped and counted in `skipped`), a time earlier than
the one before it is held at the one before (the gateway's clock only moves forward; IB times
are whole seconds anyway), and the trade-attribute mask is not replayed.

Aggressor: a trade at or above the latest recorded ask is a BUY, at or below the bid a SELL;
between them (or with no usable quote) the tick rule against the previous trade decides, an
unchanged price keeping the previous side.

The recording is taken as the prices of one product: every positive, finite bid and ask must
lie on its tick grid, or the file is refused naming the first line that does not (a recording
of another product). Trades are not held to the grid: an off-grid print (a spike, a bad tick)
is one of the bad values a recording keeps for the client's guards to judge.
"""

from __future__ import annotations

import logging
import math
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Final

from ibsim.market.replay import ReplayFileError
from ibsim.model import MarketEvent, QuoteTick, Side, TradeTick
from ibsim.products import PRODUCTS, Product, grid_index

MAGIC: Final = "# orderflowd recording v1"
MAGIC_PREFIX: Final = "# orderflowd recording"
HEADER: Final = "kind,exchange_time,received,price,size,mask,bid,ask,bid_size,ask_size,mode"
_COLUMNS: Final = HEADER.split(",")
_MODES: Final = frozenset({"tick-by-tick", "snapshot"})
_GZIP: Final = 31
_GZIP_MAGIC: Final = b"\x1f\x8b"

log = logging.getLogger("ibsim.market.recorded")


def is_recording(path: Path) -> bool:
    """True when `path` starts like an orderflowd recording (gzip whose first line is ours)."""
    try:
        with path.open("rb") as fh:
            head = fh.read(4096)
        text = zlib.decompressobj(_GZIP).decompress(head) if head[:2] == _GZIP_MAGIC else head
    except (OSError, zlib.error):
        return False
    return text.startswith(MAGIC_PREFIX.encode())


def load_recording(path: Path, product: Product = PRODUCTS["ES"]) -> tuple[list[MarketEvent], int]:
    """The replayable events of a recording of `product` and how many were skipped;
    `ReplayFileError` names file, line and column of anything that is not the format, and of
    the first quote off the product's grid."""
    text, truncated = _text(path)
    lines = text.split("\n")
    if truncated:
        lines.pop()  # the partial line the cut left
        log.warning("%s: last gzip member truncated; replaying up to line %d", path, len(lines))
    if lines[0] != MAGIC:
        raise ReplayFileError(path, f"first line is {lines[0][:60]!r}, expected {MAGIC!r}", 1)
    if len(lines) < 2 or lines[1] != HEADER:
        got = repr(lines[1][:120]) if len(lines) > 1 else "missing"
        raise ReplayFileError(path, f"column line is {got}, expected {HEADER!r}", 2)
    events: list[MarketEvent] = []
    skipped = 0
    prev_time = -math.inf
    bid = ask = math.nan
    last = math.nan
    side = Side.BUY
    for lineno, line in enumerate(lines[2:], start=3):
        if not line:
            continue
        f = line.split(",")
        if len(f) != len(_COLUMNS):
            raise ReplayFileError(path, f"{len(f)} columns, expected {len(_COLUMNS)}", lineno)
        if f[10] not in _MODES:
            raise ReplayFileError(path, f"mode {f[10]!r} is unknown", lineno, "mode")
        t = _number(path, lineno, "exchange_time", f[1])
        if not math.isfinite(t):
            raise ReplayFileError(path, f"exchange_time {f[1]!r} is not finite", lineno)
        t = max(t, prev_time)
        prev_time = t
        if f[0] == "T":
            price = _number(path, lineno, "price", f[3])
            size = _whole(path, lineno, "size", f[4])
            if size is None:
                skipped += 1
                continue
            if price >= ask:
                side = Side.BUY
            elif price <= bid:
                side = Side.SELL
            elif price > last:
                side = Side.BUY
            elif price < last:
                side = Side.SELL
            if math.isfinite(price) and price > 0:
                last = price
            events.append(TradeTick(t, price, size, side))
        elif f[0] == "Q":
            b = _number(path, lineno, "bid", f[6])
            a = _number(path, lineno, "ask", f[7])
            bid_size = _whole(path, lineno, "bid_size", f[8])
            ask_size = _whole(path, lineno, "ask_size", f[9])
            if bid_size is None or ask_size is None:
                skipped += 1
                continue
            _check_grid(path, lineno, product, (("bid", f[6], b), ("ask", f[7], a)))
            if 0 < b <= a:  # a usable book for deciding sides (False for NaN)
                bid, ask = b, a
            events.append(QuoteTick(t, b, a, bid_size, ask_size))
        else:
            raise ReplayFileError(path, f"kind {f[0]!r} is neither T nor Q", lineno, "kind")
    if not events:
        raise ReplayFileError(path, "no trades or quotes after the header", 3)
    return events, skipped


def _check_grid(
    path: Path, lineno: int, product: Product, prices: tuple[tuple[str, str, float], ...]
) -> None:
    """A usable (positive, finite) price off the product's grid refuses the file."""
    for column, text, price in prices:
        if 0 < price < math.inf and grid_index(price, product.tick_size) is None:
            tick = product.tick_size
            reason = f"{column} {text!r} is not a multiple of {tick} (the {product.symbol} tick)"
            raise ReplayFileError(path, reason, lineno, column)


def _number(path: Path, lineno: int, column: str, text: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise ReplayFileError(path, f"{column} {text!r} is not a number", lineno, column) from None


def _whole(path: Path, lineno: int, column: str, text: str) -> int | None:
    """The size as an int; None when it is not a whole number (NaN, 1.5: not replayable)."""
    x = _number(path, lineno, column, text)
    return int(x) if math.isfinite(x) and x == int(x) else None


def _text(path: Path) -> tuple[str, bool]:
    """The decompressed text of every gzip member, and whether the last one was cut short."""
    data = path.read_bytes()
    parts: list[bytes] = []
    truncated = False
    if data[:2] != _GZIP_MAGIC:  # a recording someone has unzipped
        parts, data = [data], b""
    try:
        while data:
            d = zlib.decompressobj(_GZIP)
            parts.append(d.decompress(data))
            if not d.eof:
                truncated = True
                break
            data = d.unused_data
    except zlib.error as exc:
        line = b"".join(parts).count(b"\n") + 1
        raise ReplayFileError(path, f"corrupt gzip data: {exc}", line) from None
    raw = b"".join(parts)
    try:
        return raw.decode("ascii"), truncated
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        raise ReplayFileError(path, f"not ASCII (byte {raw[exc.start]:#04x})", line) from None


class RecordedSource:
    """A recorded day served as it arrived: the recorded quotes, the recorded trades."""

    def __init__(self, events: list[MarketEvent], skipped: int = 0) -> None:
        if not events:
            raise ValueError("no recorded events to replay")
        self._events = events
        self.skipped = skipped
        self.start_time: float = events[0].time

    @classmethod
    def from_file(cls, path: Path, product: Product = PRODUCTS["ES"]) -> RecordedSource:
        events, skipped = load_recording(path, product)
        if skipped:
            log.warning("%s: %d events with fractional or NaN sizes skipped", path, skipped)
        return cls(events, skipped)

    def events(self) -> Iterator[MarketEvent]:
        """The recording from its first event."""
        return iter(self._events)
