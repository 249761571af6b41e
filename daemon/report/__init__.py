"""The session report: one trading day's price, VWAP bands, delta, volume, fills, PnL and
journal events as a PNG and a self-contained HTML page.

`data` collects and computes, `render` draws the PNG, `html` writes the page, `command` is
`orderflowd report`.
"""

from daemon.report.command import Missing, ReportError, ReportFiles, make_report
from daemon.report.data import ReportData, build_report_data
from daemon.report.html import render_html
from daemon.report.render import render_png

__all__ = [
    "Missing",
    "ReportData",
    "ReportError",
    "ReportFiles",
    "build_report_data",
    "make_report",
    "render_html",
    "render_png",
]
