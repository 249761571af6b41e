"""Offline replay, the pure part: trades CSV text in, `TradeEvent`s out; bars out as CSV rows.

The file format is the one of `../shared/data/`: a `time_ct,price,size` header, then one trade
per line with US/Central local time (`2013-09-01 17:00:00.083`). Opening files (gzip or not)
and writing output belong to the caller; this module only turns lines into events and bars into
rows, raising `TradesFileError` naming the line and the problem for anything malformed.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from datetime import datetime
from typing import Final

from daemon.flow.events import TradeEvent
from daemon.flow.features import Bar
from daemon.flow.sessions import CENTRAL

HEADER: Final = "time_ct,price,size"
BAR_COLUMNS: Final = (
    "bar_start",
    "open",
    "high",
    "low",
    "close",
    "volume",
    "buy_volume",
    "sell_volume",
    "delta",
    "trades",
    "unclassified",
    "delta_min",
    "delta_max",
    "cvd",
    "buy_imbalances",
    "sell_imbalances",
    "stacked_buy",
    "stacked_sell",
)
"""Output columns: the required ten first, in the required order, then further features."""


class TradesFileError(ValueError):
    """A malformed trades file: `str()` names the source, the line and what is wrong."""

    def __init__(self, source: str, line: int, reason: str) -> None:
        self.source = source
        self.line = line
        self.reason = reason
        super().__init__(f"{source}, line {line}: {reason}")


class _HourClock:
    """Local `YYYY-MM-DD HH` -> epoch of that hour, cached: one zoneinfo call per hour of data.

    A wall-clock hour that occurs twice (the autumn change) is read as its first occurrence; one
    that does not exist (the spring change) is an error.
    """

    def __init__(self) -> None:
        self._prefix = ""
        self._epoch = 0.0

    def hour(self, prefix: str) -> float:
        if prefix != self._prefix:
            local = datetime.strptime(prefix, "%Y-%m-%d %H").replace(tzinfo=CENTRAL)
            if datetime.fromtimestamp(local.timestamp(), CENTRAL).hour != local.hour:
                raise ValueError(f"{prefix}:xx does not exist in US/Central (clock change)")
            self._prefix, self._epoch = prefix, local.timestamp()
        return self._epoch


def _parse_second(text: str, clock: _HourClock) -> float:
    """Epoch of a `YYYY-MM-DD HH:MM:SS` local time."""
    if len(text) != 19 or text[10] != " " or text[13] != ":" or text[16] != ":":
        raise ValueError(f"time_ct {text!r} is not YYYY-MM-DD HH:MM:SS[.fff]")
    minute, second = text[14:16], text[17:19]
    if not (minute.isdigit() and second.isdigit()):
        raise ValueError(f"time_ct {text!r} is not YYYY-MM-DD HH:MM:SS[.fff]")
    m, sec = int(minute), int(second)
    if m > 59 or sec > 59:
        raise ValueError(f"time_ct {text!r} is out of range")
    return clock.hour(text[:13]) + m * 60 + sec


def parse_trades(lines: Iterable[str], source: str) -> Iterator[TradeEvent]:
    """Trades of a `time_ct,price,size` file, in file order, with `seq` = line number.

    Prices and sizes are checked to be numbers only: judging them (zero, off-grid, spikes) is
    the guards' job, exactly as live. Blank lines are skipped.
    """
    clock = _HourClock()
    numbered = enumerate(lines, 1)
    first = next(numbered, None)
    if first is None or first[1].strip() == "":
        raise TradesFileError(source, 1, f"empty file: expected the header {HEADER!r}")
    if first[1].strip().lstrip("\ufeff") != HEADER:
        raise TradesFileError(source, 1, f"header is {first[1].strip()!r}, expected {HEADER!r}")
    last_head, base = "", 0.0  # trades share seconds: each second's epoch is computed once
    for number, raw in numbered:
        parts = raw.split(",")
        if len(parts) != 3:
            if not raw.strip():
                continue
            raise TradesFileError(
                source, number, f"expected 3 fields, got {len(parts)}: {raw.strip()!r}"
            )
        stamp = parts[0]
        head, fraction = stamp[:19], stamp[19:]
        try:
            if head != last_head:
                base = _parse_second(head, clock)
                last_head = head
            if fraction and (fraction[0] != "." or not fraction[1:].isdigit()):
                raise ValueError(f"time_ct {stamp!r} is not YYYY-MM-DD HH:MM:SS[.fff]")
        except ValueError as exc:
            raise TradesFileError(source, number, str(exc)) from None
        try:
            price = float(parts[1])
            size = float(parts[2])
        except ValueError:
            raise TradesFileError(
                source,
                number,
                f"price and size must be numbers, got {parts[1]!r}, {parts[2].strip()!r}",
            ) from None
        if price - price != 0.0 or size - size != 0.0:  # NaN or infinite
            raise TradesFileError(source, number, f"not a finite number: {raw.strip()!r}")
        time = base + float(fraction) if fraction else base
        yield TradeEvent(number, price, size, time, time)


def _number(value: float) -> str:
    return str(int(value)) if value == int(value) else f"{value:.6f}".rstrip("0")


def bar_row(bar: Bar, cvd: float) -> list[str]:
    """One output row for `bar` (columns as `BAR_COLUMNS`); `cvd` is session CVD at its close."""
    start = datetime.fromtimestamp(bar.start, CENTRAL).isoformat()
    return [
        start,
        _number(bar.open),
        _number(bar.high),
        _number(bar.low),
        _number(bar.close),
        _number(bar.volume),
        _number(bar.buy_volume),
        _number(bar.sell_volume),
        _number(bar.delta),
        str(bar.trades),
        _number(bar.unclassified),
        _number(bar.delta_min),
        _number(bar.delta_max),
        _number(cvd),
        str(len(bar.buy_imbalances)),
        str(len(bar.sell_imbalances)),
        str(len(bar.stacked_buy)),
        str(len(bar.stacked_sell)),
    ]
