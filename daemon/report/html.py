"""The report's HTML page: the PNG inlined as base64, a summary, the fills and the marks.

Self-contained: no script, no stylesheet or font fetched, no link anywhere, so the file can be
mailed or opened offline. Every value from the journal is escaped.
"""

from __future__ import annotations

import base64
from collections.abc import Iterable, Sequence
from datetime import datetime
from html import escape
from pathlib import Path
from typing import Final

from daemon.flow.sessions import CENTRAL
from daemon.report.data import ReportData
from daemon.report.files import write_atomic

_STYLE: Final = """
body { font-family: sans-serif; margin: 1.5em; color: #222; }
table { border-collapse: collapse; margin: 0.5em 0 1.5em; font-size: 0.9em; }
th, td { border: 1px solid #ccc; padding: 0.2em 0.6em; text-align: right; }
th { background: #f0f0f0; }
td.l, th.l { text-align: left; }
img { max-width: 100%; }
"""


def _clock(t: float) -> str:
    return datetime.fromtimestamp(t, CENTRAL).strftime("%Y-%m-%d %H:%M:%S")


NONE: Final = "-"


def _money(value: float | None) -> str:
    return NONE if value is None else f"{value:,.2f}"


def _table(header: Sequence[str], rows: Iterable[Sequence[object]], left: int = 0) -> str:
    """A table; the first `left` columns are left-aligned text."""

    def cell(tag: str, i: int, value: object) -> str:
        cls = ' class="l"' if i < left else ""
        return f"<{tag}{cls}>{escape(str(value))}</{tag}>"

    head = "".join(cell("th", i, h) for i, h in enumerate(header))
    body = "".join(
        "<tr>" + "".join(cell("td", i, v) for i, v in enumerate(row)) + "</tr>\n" for row in rows
    )
    return f"<table>\n<tr>{head}</tr>\n{body}</table>\n"


def summary_rows(data: ReportData) -> list[tuple[str, str]]:
    """(what, value) lines of the summary table."""
    bands = next((b for b in reversed(data.bands) if b is not None), None)
    ohlc = (data.bars[0].open, data.high, data.low, data.bars[-1].close)
    rejected = ", ".join(f"{k} {v}" for k, v in sorted(data.rejected.items()))
    journal = data.journal_pnl
    stored = (
        "none recorded"
        if journal is None
        else " / ".join(_money(v) for v in (journal.realized, journal.commissions, journal.net))
    )
    return [
        ("trading day", data.day),
        ("from", _clock(data.start) + " CT"),
        ("to", _clock(data.end) + " CT"),
        ("bars", f"{len(data.bars)} of {data.bar_seconds} s"),
        ("trades", str(data.trades)),
        ("volume", f"{data.volume:g}"),
        ("open / high / low / close", " / ".join(f"{p:g}" for p in ohlc)),
        ("cumulative delta", f"{data.cvd[-1]:+g}"),
        ("session VWAP (SD)", NONE if bands is None else f"{bands.vwap:.2f} ({bands.sd:.2f})"),
        ("rejected ticks", rejected or "none"),
        ("fills", str(len(data.fills)) if data.fills else "no fills"),
        ("realized PnL from fills $", _money(data.realized)),
        ("commissions from fills $", _money(data.commissions)),
        ("journal daily PnL: realized / commissions / net $", stored),
        ("halted or disconnected stretches", str(len(data.shades))),
        ("marked events", str(len(data.marks))),
    ]


FILL_COLUMNS: Final = (
    "time (CT)",
    "side",
    "kind",
    "role",
    "order ref",
    "qty",
    "price",
    "realized $",
    "commission $",
)


def _fills(data: ReportData) -> str:
    if not data.fills:
        return "<p>no fills</p>\n"
    rows = (
        (
            _clock(f.time),
            f.side,
            f.kind,
            f.role or "unknown",
            f.order_ref or NONE,
            f.shares,
            f"{f.price:g}",
            _money(f.realized),
            _money(f.commission),
        )
        for f in data.fills
    )
    return _table(FILL_COLUMNS, rows, left=5)


def _events(data: ReportData) -> str:
    if not (data.marks or data.shades):
        return "<p>no halts, reconnects or other marked events</p>\n"
    marks = ((_clock(m.time), m.label) for m in data.marks)
    shades = ((s.kind, _clock(s.start), _clock(s.end)) for s in data.shades)
    return _table(("time (CT)", "event"), marks, left=2) + _table(
        ("stretch", "from (CT)", "to (CT)"), shades, left=3
    )


def page(data: ReportData, png: bytes) -> str:
    """The whole HTML document for `data` with the PNG bytes `png` inlined."""
    image = base64.b64encode(png).decode("ascii")
    title = f"orderflowd report {escape(data.day)}"
    parts = [
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n',
        f"<title>{title}</title>\n<style>{_STYLE}</style>\n</head>\n<body>\n",
        f"<h1>{title}</h1>\n",
        f'<img alt="price, delta, volume and PnL of {escape(data.day)}" ',
        f'src="data:image/png;base64,{image}">\n',
        "<h2>Summary</h2>\n",
        _table(("", ""), summary_rows(data), left=1),
        "<h2>Fills</h2>\n",
        _fills(data),
        "<h2>Events</h2>\n",
        _events(data),
        "</body>\n</html>\n",
    ]
    return "".join(parts)


def render_html(data: ReportData, png_path: Path, path: Path) -> Path:
    """Write the page for `data` with the PNG at `png_path` inlined (atomically); returns it."""
    return write_atomic(path, page(data, png_path.read_bytes()).encode("utf-8"))
