"""The report's PNG: five panels on one US/Central time axis, drawn with Agg only.

Price (bar range, close, session VWAP with +-1 and 2 SD bands, fills), cumulative delta, volume,
delta per bar, realized PnL. Journal marks are lines across every panel, halted and
disconnected stretches shaded. A `Figure` of its own per call (no pyplot, no global state) at
a fixed size, so the PNG is always `size_px(dpi)` pixels.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Final

from matplotlib import dates as mdates
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.collections import PolyCollection
from matplotlib.figure import Figure

from daemon.flow.sessions import CENTRAL
from daemon.report.data import ReportData
from daemon.report.files import write_atomic

FIG_SIZE_IN: Final = (16.0, 11.0)
DEFAULT_DPI: Final = 100
_SECONDS_PER_DAY: Final = 86400.0
_BUY, _SELL = "#1a9850", "#d73027"
_SHADE_COLORS: Final = {"halted": "#fdae61", "disconnected": "#999999"}
_LINE_COLORS: Final = {
    "connect": "#4575b4",
    "disconnect": "#555555",
    "halt": "#d73027",
    "reduce": "#f46d43",
    "resume": "#1a9850",
    "flatten": "#762a83",
    "reject": "#c51b7d",
    "mismatch": "#b35806",
    "shutdown": "#000000",
}


def size_px(dpi: int = DEFAULT_DPI) -> tuple[int, int]:
    """(width, height) in pixels of a PNG rendered at `dpi`."""
    return round(FIG_SIZE_IN[0] * dpi), round(FIG_SIZE_IN[1] * dpi)


def _num(times: Sequence[float]) -> list[float]:
    """Epoch seconds as matplotlib date numbers (days since its epoch, a setting)."""
    zero = float(mdates.date2num(datetime.fromtimestamp(0, UTC)))  # type: ignore[no-untyped-call]
    return [zero + t / _SECONDS_PER_DAY for t in times]


def _price_panel(ax: Axes, data: ReportData, x: list[float]) -> None:
    bars = data.bars
    ax.vlines(x, [b.low for b in bars], [b.high for b in bars], color="#bbbbbb", linewidth=1)
    ax.plot(x, [b.close for b in bars], color="#222222", linewidth=0.9, label="close")
    shown = [(xi, b) for xi, b in zip(x, data.bands, strict=True) if b is not None]
    if shown:
        bx = [xi for xi, _ in shown]
        vwap = [b.vwap for _, b in shown]
        ax.fill_between(
            bx, [b.lower2 for _, b in shown], [b.upper2 for _, b in shown], color="#9ecae1",
            alpha=0.25, linewidth=0, label="VWAP \u00b12\u03c3",
        )  # fmt: skip
        ax.fill_between(
            bx, [b.lower1 for _, b in shown], [b.upper1 for _, b in shown], color="#6baed6",
            alpha=0.3, linewidth=0, label="VWAP \u00b11\u03c3",
        )  # fmt: skip
        ax.plot(bx, vwap, color="#08519c", linewidth=1.2, label="session VWAP")
    for side, marker, color in (("BUY", "^", _BUY), ("SELL", "v", _SELL)):
        for kind, face in (("entry", color), ("exit", "none")):
            chosen = [f for f in data.fills if f.side == side and f.kind == kind]
            if chosen:
                ax.scatter(
                    _num([f.time for f in chosen]), [f.price for f in chosen], marker=marker,
                    s=70, facecolors=face, edgecolors=color, linewidths=1.5, zorder=5,
                    label=f"{side.lower()} {kind}",
                )  # fmt: skip
    if not data.fills:
        ax.text(0.01, 0.95, "no fills", transform=ax.transAxes, va="top", color="#555555")
    ax.set_ylabel("price")
    ax.legend(loc="upper right", fontsize=7, ncols=4)


def _bars_panel(
    ax: Axes, spans: list[tuple[float, float]], values: list[float], colors: list[str], label: str
) -> None:
    """One rectangle per bar from 0 to its value, as a single collection (fast to draw)."""
    boxes = [[(a, 0.0), (a, v), (b, v), (b, 0.0)] for (a, b), v in zip(spans, values, strict=True)]
    ax.add_collection(PolyCollection(boxes, facecolors=colors, linewidths=0), autolim=True)
    ax.autoscale_view()
    ax.axhline(0.0, color="#888888", linewidth=0.6)
    ax.set_ylabel(label)


def _marks(axes: Sequence[Axes], data: ReportData) -> None:
    top = axes[0]
    for s in data.shades:
        for ax in axes:
            ax.axvspan(*_num([s.start, s.end]), color=_SHADE_COLORS[s.kind], alpha=0.25, lw=0)
        top.text(
            _num([s.start])[0], 1.0, s.kind, transform=top.get_xaxis_transform(), fontsize=7,
            va="bottom", color="#444444",
        )  # fmt: skip
    for m in data.marks:
        at = _num([m.time])[0]
        for ax in axes:
            ax.axvline(at, color=_LINE_COLORS.get(m.kind, "#000000"), linewidth=0.8, ls="--")
        top.text(
            at, 0.02, m.label, transform=top.get_xaxis_transform(), rotation=90, fontsize=7,
            va="bottom", ha="right", color=_LINE_COLORS.get(m.kind, "#000000"),
        )  # fmt: skip


def draw(data: ReportData) -> Figure:
    """The report's figure (not yet written)."""
    fig = Figure(figsize=FIG_SIZE_IN, layout="constrained")
    FigureCanvasAgg(fig)  # Agg explicitly: no display, no pyplot
    axes = fig.subplots(5, 1, sharex=True, height_ratios=[4.0, 1.6, 1.1, 1.1, 1.4])
    price, cvd, volume, delta, pnl = axes
    bars = data.bars
    mids = _num([b.start + (b.end - b.start) / 2 for b in bars])
    spans = list(zip(_num([b.start for b in bars]), _num([b.end for b in bars]), strict=True))
    _price_panel(price, data, mids)
    cvd.plot(mids, data.cvd, color="#542788", linewidth=1.0)
    cvd.axhline(0.0, color="#888888", linewidth=0.6)
    cvd.set_ylabel("cum. delta")
    _bars_panel(volume, spans, [b.volume for b in bars], ["#6a6a6a"] * len(bars), "volume")
    deltas = [b.delta for b in bars]
    _bars_panel(delta, spans, deltas, [_BUY if d >= 0 else _SELL for d in deltas], "delta")
    steps = data.pnl
    pnl_x = _num([s.time for s in steps] + [max(data.end, steps[-1].time)])
    pnl_y = [s.realized for s in steps] + [steps[-1].realized]
    pnl.step(pnl_x, pnl_y, where="post", color="#08306b", linewidth=1.2)
    pnl.axhline(0.0, color="#888888", linewidth=0.6)
    pnl.set_ylabel("realized PnL $")
    _marks(list(axes), data)
    locator = mdates.AutoDateLocator(tz=CENTRAL)  # type: ignore[no-untyped-call]
    pnl.xaxis.set_major_locator(locator)
    formatter = mdates.ConciseDateFormatter(locator, tz=CENTRAL)  # type: ignore[no-untyped-call]
    pnl.xaxis.set_major_formatter(formatter)
    pnl.set_xlabel("exchange time (US/Central)")
    for ax in axes:
        ax.grid(True, linewidth=0.3, alpha=0.6)
    fig.suptitle(f"orderflowd session report — trading day {data.day}")
    return fig


def render_png(data: ReportData, path: Path, dpi: int = DEFAULT_DPI) -> Path:
    """Write the PNG atomically (a temporary file renamed over `path`); returns `path`."""
    buffer = io.BytesIO()
    draw(data).savefig(buffer, format="png", dpi=dpi, metadata={"Software": None})
    return write_atomic(path, buffer.getvalue())
