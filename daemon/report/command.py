"""`orderflowd report`: pick the day, check what is there, build and write PNG and HTML.

The market data comes through two callables (the recorder's `list_days` and `read_day`), so
this module knows no storage format; the journal is opened only when its file exists (opening
would create one).
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import structlog

from daemon.flow.events import MarketEvent
from daemon.report.data import NoMarketDataError, build_report_data
from daemon.report.html import render_html
from daemon.report.render import DEFAULT_DPI, render_png
from daemon.settings import Settings
from daemon.trading.journal import Journal

log = structlog.get_logger("daemon.report.command")

ListDays = Callable[[Path], list[str]]
ReadDay = Callable[[Path, str], Iterable[MarketEvent]]


class Missing(enum.Enum):
    """What a report could not have."""

    BAD_DATE = "bad date"
    MARKET_DATA = "market data"
    JOURNAL = "journal"


class ReportError(Exception):
    """No report: `missing` says what was lacking, `str()` says it for the operator."""

    def __init__(self, missing: Missing, message: str) -> None:
        self.missing = missing
        super().__init__(message)


@dataclass(frozen=True, slots=True)
class ReportFiles:
    day: str
    png: Path
    html: Path


def _days_text(days: list[str]) -> str:
    return ", ".join(sorted(days)) if days else "none"


def check_day(text: str) -> str:
    """`text` if it is a date as YYYY-MM-DD, else `ReportError` naming it."""
    try:
        if len(text) == 10:
            return date.fromisoformat(text).isoformat()
    except ValueError:
        pass
    raise ReportError(Missing.BAD_DATE, f"--date {text!r} is not a date as YYYY-MM-DD")


def make_report(
    settings: Settings,
    journal_path: Path,
    list_days: ListDays,
    read_day: ReadDay,
    *,
    day: str | None = None,
    out_dir: Path | None = None,
    dpi: int = DEFAULT_DPI,
) -> ReportFiles:
    """Render the report of `day` (default: the latest with market data) into `out_dir`
    (default: `state_dir/reports`) as `report-<day>.png` and `.html`."""
    state_dir = Path(settings.paths.state_dir)
    days = sorted(list_days(state_dir))
    if day is None:
        if not days:
            raise ReportError(
                Missing.MARKET_DATA, f"no recorded market data in {state_dir}: no day to report"
            )
        day = days[-1]
    day = check_day(day)
    if day not in days:
        raise ReportError(
            Missing.MARKET_DATA,
            f"no market data for {day} in {state_dir}; days with data: {_days_text(days)}",
        )
    if not journal_path.is_file():
        raise ReportError(
            Missing.JOURNAL,
            f"no journal for {day}: {journal_path} does not exist "
            f"(days with market data: {_days_text(days)})",
        )
    with Journal(journal_path) as journal:
        try:
            data = build_report_data(journal, read_day(state_dir, day), day, settings)
        except NoMarketDataError as exc:
            raise ReportError(
                Missing.MARKET_DATA, f"{exc}; days with data: {_days_text(days)}"
            ) from exc
    out = out_dir if out_dir is not None else state_dir / "reports"
    png = render_png(data, out / f"report-{day}.png", dpi)
    html = render_html(data, png, out / f"report-{day}.html")
    log.info("report_written", day=day, png=str(png), html=str(html), fills=len(data.fills))
    return ReportFiles(day, png, html)
