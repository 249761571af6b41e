"""`orderflowd replay`: the live extractor run over a trades file, one CSV row per bar.

Reading and writing live here; the order-flow work is `daemon.flow`, exactly as live. The
output appears only complete: rows are collected, then written to a temporary file beside the
target and renamed over it, so a malformed input line leaves no half-written file behind.
"""

from __future__ import annotations

import csv
import gzip
import io
import os
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from daemon.core.instrument import Instrument
from daemon.flow.extractor import OrderFlow
from daemon.flow.features import Bar
from daemon.flow.replay import BAR_COLUMNS, bar_row, parse_trades
from daemon.settings import DataSettings, FlowSettings

_GZIP_MAGIC = b"\x1f\x8b"


@dataclass(frozen=True)
class ReplaySummary:
    """What a replay did, for the closing line on stderr."""

    trades: int
    bars: int
    volume: float
    rejected: dict[str, int]


def _lines(path: Path) -> Iterator[str]:
    with path.open("rb") as raw:
        gzipped = raw.read(2) == _GZIP_MAGIC
    if gzipped:
        with gzip.open(path, "rt", encoding="utf-8", newline="") as text:
            yield from text
    else:
        with path.open("r", encoding="utf-8", newline="") as text:
            yield from text


def replay_rows(
    path: Path, flow: FlowSettings, data: DataSettings, instrument: Instrument
) -> tuple[list[list[str]], ReplaySummary]:
    """Run the extractor over `path`, prices on `instrument`'s grid; the bar rows and a summary
    (raises TradesFileError)."""
    rows: list[list[str]] = []
    extractor: OrderFlow

    def on_bar(bar: Bar) -> None:
        if bar.kind == "time":
            rows.append(bar_row(bar, extractor.features.cvd_session))

    extractor = OrderFlow(flow, data, instrument=instrument, on_bar=on_bar, quotes=False)
    on_event = extractor.on_event
    for event in parse_trades(_lines(path), str(path)):
        on_event(event)
    extractor.flush()
    state = extractor.state()
    volume = sum(float(r[5]) for r in rows)
    return rows, ReplaySummary(extractor.trades, len(rows), volume, state.rejected)


def write_csv(rows: list[list[str]], out: Path | None) -> None:
    """Write header and rows to `out` atomically, or to stdout when `out` is None."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(BAR_COLUMNS)
    writer.writerows(rows)
    if out is None:
        sys.stdout.write(buffer.getvalue())
        return
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{out.name}.", dir=out.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as f:
            f.write(buffer.getvalue())
        os.replace(tmp, out)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def print_summary(summary: ReplaySummary, stream: TextIO | None = None) -> None:
    """One closing line: trades, bars, volume and rejected ticks by reason (stderr)."""
    rejected = ", ".join(f"{k} {v}" for k, v in sorted(summary.rejected.items())) or "none"
    print(
        f"orderflowd replay: {summary.trades} trades, {summary.bars} bars, "
        f"volume {summary.volume:g}, rejected ticks: {rejected}",
        file=stream or sys.stderr,
    )
