"""`orderflowd replay` and the report's bars price the configured product: RTY's 0.1 grid here."""

from __future__ import annotations

import csv
from datetime import datetime
from pathlib import Path

import pytest

from daemon.cli import main
from daemon.flow.events import TradeEvent
from daemon.flow.sessions import CENTRAL
from daemon.report.data import market_bars
from daemon.settings import InstrumentSettings, Settings

# RTY trades of one minute, as its file would hold them: prices on the 0.1 grid, most off ES's.
RTY_TRADES = [
    ("2026-11-19 09:00:01.000", "2340.2", 3),
    ("2026-11-19 09:00:02.000", "2340.3", 2),
    ("2026-11-19 09:00:03.000", "2340.7", 1),
    ("2026-11-19 09:00:04.000", "2340.1", 4),
    ("2026-11-19 09:00:05.000", "2340.1", 1),
]


def rty_file(tmp_path: Path) -> Path:
    path = tmp_path / "rty.csv"
    lines = ["time_ct,price,size", *(f"{t},{p},{s}" for t, p, s in RTY_TRADES)]
    path.write_text("\n".join(lines) + "\n")
    return path


def test_replay_prices_the_configured_symbols_grid(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    trades, out = rty_file(tmp_path), tmp_path / "bars.csv"
    monkeypatch.setenv("ORDERFLOWD_INSTRUMENT__SYMBOL", "RTY")
    assert main(["replay", "--ticks", str(trades), "--out", str(out)]) == 0
    assert "rejected ticks: none" in capsys.readouterr().err
    with out.open() as f:
        (row,) = list(csv.DictReader(f))
    assert [row[k] for k in ("open", "high", "low", "close", "volume")] == [
        "2340.2",
        "2340.7",
        "2340.1",
        "2340.1",
        "11",
    ]
    assert (row["delta"], row["cvd"]) == ("-2", "-2")  # tick rule: +2 +1 -4 -1 (first unknown)


def test_the_same_file_read_as_es_is_off_its_grid(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    trades, out = rty_file(tmp_path), tmp_path / "bars.csv"
    monkeypatch.setenv("ORDERFLOWD_INSTRUMENT__SYMBOL", "ES")
    assert main(["replay", "--ticks", str(trades), "--out", str(out)]) == 0
    assert "rejected ticks: off_grid 5" in capsys.readouterr().err


def test_report_bars_and_bands_are_on_the_configured_grid() -> None:
    t0 = datetime(2026, 11, 19, 9, 0, tzinfo=CENTRAL).timestamp()
    events = [
        TradeEvent(n, float(price), float(size), t0 + n, t0 + n)
        for n, (_, price, size) in enumerate(RTY_TRADES, 1)
    ]
    settings = Settings(instrument=InstrumentSettings(symbol="RTY"))
    bars, bands, trades, rejected = market_bars(events, settings)
    assert (trades, rejected) == (5, {})
    (bar,) = bars
    assert (bar.open, bar.high, bar.low, bar.close) == (2340.2, 2340.7, 2340.1, 2340.1)
    assert sorted(bar.footprint) == [23401, 23402, 23403, 23407]
    (band,) = bands
    assert band is not None
    total = sum(float(p) * s for _, p, s in RTY_TRADES) / sum(s for _, _, s in RTY_TRADES)
    assert band.vwap == pytest.approx(total, rel=1e-12)
    es = market_bars(events, Settings())
    assert (es[2], es[3]) == (0, {"off_grid": 5})
