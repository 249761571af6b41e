"""The recording file format, shared by the writer and the reader (documented in docs/recording.md).

One gzip file per trading day, `{symbol}-{YYYY-MM-DD}.csv.gz`, made of gzip members appended one
per flush. Decompressed it is CSV text: the `MAGIC` line, the `COLUMNS` line, then one row per
event. Trades (`T`) fill price, size and mask; quotes (`Q`) fill bid, ask and their sizes; the
other columns stay empty. Floats are written with `repr`, so they read back exactly, NaN and
infinities included; values are never judged on the way in or out.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Final

from daemon.flow.events import DataMode, QuoteEvent, SnapshotEvent, TradeEvent

MAGIC: Final = "# orderflowd recording v1"
COLUMNS: Final = (
    "kind",
    "exchange_time",
    "received",
    "price",
    "size",
    "mask",
    "bid",
    "ask",
    "bid_size",
    "ask_size",
    "mode",
)
HEADER: Final = ",".join(COLUMNS)
SUFFIX: Final = ".csv.gz"
DIRECTORY: Final = "recordings"
TRADE: Final = "T"
QUOTE: Final = "Q"
PAST_LIMIT: Final = 1  # mask bits, as IB's tick-by-tick attributes
UNREPORTED: Final = 2

RecordedEvent = TradeEvent | QuoteEvent


def file_name(symbol: str, day: str) -> str:
    """`ES-2026-11-20.csv.gz`."""
    return f"{symbol}-{day}{SUFFIX}"


def head_text() -> str:
    """The two header lines that open every recording."""
    return f"{MAGIC}\n{HEADER}\n"


def rows(events: Iterable[object]) -> str:
    """CSV rows for `events`: trades and quotes; snapshot-mode snapshots as their quote and one
    trade per RTVolume print; tick-by-tick volume snapshots (duplicates of the trades) skipped."""
    out: list[str] = []
    append = out.append
    for ev in events:
        kind = type(ev)
        if kind is TradeEvent:
            assert isinstance(ev, TradeEvent)
            mask = PAST_LIMIT * ev.past_limit + UNREPORTED * ev.unreported
            append(
                f"T,{ev.exchange_time!r},{ev.received!r},{ev.price!r},{ev.size!r},{mask},,,,,"
                f"{ev.mode.value}\n"
            )
        elif kind is QuoteEvent:
            assert isinstance(ev, QuoteEvent)
            append(
                f"Q,{ev.exchange_time!r},{ev.received!r},,,,{ev.bid!r},{ev.ask!r},"
                f"{ev.bid_size!r},{ev.ask_size!r},{ev.mode.value}\n"
            )
        elif kind is SnapshotEvent:
            assert isinstance(ev, SnapshotEvent)
            if ev.mode is not DataMode.SNAPSHOT:
                continue
            append(
                f"Q,{ev.exchange_time!r},{ev.received!r},,,,{ev.bid!r},{ev.ask!r},"
                f"{ev.bid_size!r},{ev.ask_size!r},{ev.mode.value}\n"
            )
            for p in ev.prints:
                append(
                    f"T,{p.time!r},{ev.received!r},{p.price!r},{p.size!r},0,,,,,{ev.mode.value}\n"
                )
    return "".join(out)


class RowError(ValueError):
    """One row that does not read as the format; the message names the column."""


_MODES: Final = {m.value: m for m in DataMode}
_WIDTH: Final = len(COLUMNS)


def _num(text: str, column: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise RowError(f"column {column}: {text!r} is not a number") from None


def parse_row(line: str, seq: int) -> RecordedEvent:
    """One CSV row as the event it recorded (`seq` is assigned by the reader, in file order)."""
    f = line.split(",")
    if len(f) != _WIDTH:
        raise RowError(f"{len(f)} columns, expected {_WIDTH} ({HEADER})")
    mode = _MODES.get(f[10])
    if mode is None:
        raise RowError(f"column mode: {f[10]!r} is not one of {', '.join(_MODES)}")
    t = _num(f[1], "exchange_time")
    received = _num(f[2], "received")
    if f[0] == TRADE:
        try:
            mask = int(f[5])
        except ValueError:
            raise RowError(f"column mask: {f[5]!r} is not an integer") from None
        return TradeEvent(
            seq,
            _num(f[3], "price"),
            _num(f[4], "size"),
            t,
            received,
            bool(mask & PAST_LIMIT),
            bool(mask & UNREPORTED),
            mode,
        )
    if f[0] == QUOTE:
        return QuoteEvent(
            seq,
            _num(f[6], "bid"),
            _num(f[7], "ask"),
            _num(f[8], "bid_size"),
            _num(f[9], "ask_size"),
            t,
            received,
            mode,
        )
    raise RowError(f"column kind: {f[0]!r} is neither {TRADE} nor {QUOTE}")


def day_of_name(name: str) -> str | None:
    """The day in a recording's file name (`ES-2026-11-20.csv.gz`), None for any other name."""
    if not name.endswith(SUFFIX):
        return None
    stem = name[: -len(SUFFIX)]
    day, symbol = stem[-10:], stem[:-11]
    return day if is_day(day) and symbol and stem[-11] == "-" else None


def is_day(text: str) -> bool:
    """True for a `YYYY-MM-DD` string."""
    parts = text.split("-")
    return (
        len(parts) == 3
        and [len(p) for p in parts] == [4, 2, 2]
        and all(p.isascii() and p.isdigit() for p in parts)
    )
