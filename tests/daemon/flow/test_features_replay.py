"""Real ES trades (2013-09-01/02) through `Features`: volume, bars and CVD checked independently.

Needs `../shared/data/` (see its README); skipped where that folder is absent.
"""

from __future__ import annotations

import csv
import gzip
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from daemon.core.instrument import Instrument
from daemon.flow.features import Bar, Features
from daemon.flow.prints import Method, Print
from daemon.flow.sessions import SessionSchedule
from daemon.settings import FlowSettings

CT = ZoneInfo("America/Chicago")
ES = Instrument.of_product("ES")
DATA = Path(__file__).resolve().parents[4] / "shared" / "data" / "es_trades_2013-09-01_02.csv.gz"
MONDAY_OPEN = datetime(2013, 9, 2, 17, 0, tzinfo=CT).timestamp()

pytestmark = pytest.mark.skipif(not DATA.exists(), reason=f"real ES trades not present: {DATA}")


def tick_rule_prints() -> list[Print]:
    """The file's trades, classified by the tick rule (the first trade unclassified)."""
    prints: list[Print] = []
    last_tick: int | None = None
    side = ""
    with gzip.open(DATA, "rt", newline="") as f:
        for row in csv.DictReader(f):
            local = datetime.strptime(row["time_ct"], "%Y-%m-%d %H:%M:%S.%f")
            t = local.replace(tzinfo=CT).timestamp()
            tick = ES.tick_index(float(row["price"]))
            assert tick is not None
            size = float(row["size"])
            if last_tick is not None and tick != last_tick:
                side = "buy" if tick > last_tick else "sell"
            last_tick = tick
            buy = size if side == "buy" else 0.0
            sell = size if side == "sell" else 0.0
            method = Method.TICK if side else Method.NONE
            prints.append(Print(t, tick, size, buy, sell, method, 0.7 if side else 0.0))
    return prints


def test_replayed_day_matches_independent_totals() -> None:
    prints = tick_rule_prints()
    closed: list[Bar] = []
    features = Features(
        FlowSettings(bar=60, volume_bar=500, bars_kept=5000),
        SessionSchedule(),
        closed.append,
        instrument=ES,
    )
    for p in prints:
        features.on_print(p)
    snap = features.snapshot()
    features.flush()
    time_bars = [b for b in closed if b.kind == "time"]
    volume_bars = [b for b in closed if b.kind == "volume"]

    total = sum(p.size for p in prints)
    assert sum(b.volume for b in time_bars) == total
    assert sum(b.volume for b in volume_bars) == total
    # One-minute bars, never empty: one per minute that traded (minutes are whole CT minutes).
    assert len(time_bars) == len({int(p.time // 60) for p in prints})
    assert sum(b.trades for b in time_bars) == len(prints)

    # The Labor Day evening session (from Monday 17:00) is the one shown at the end.
    monday = [p for p in prints if p.time >= MONDAY_OPEN]
    assert snap.session_start == MONDAY_OPEN
    assert snap.session_volume == sum(p.size for p in monday)
    assert snap.cvd_session == sum(p.delta for p in monday)
    assert snap.rth is False
    assert snap.cvd_rth is None
    assert snap.vwap == pytest.approx(
        sum(p.tick * p.size for p in monday) / sum(p.size for p in monday) / 4
    )
    low = min(p.tick for p in monday) / 4
    high = max(p.tick for p in monday) / 4
    assert snap.val is not None
    assert snap.vah is not None
    assert snap.poc is not None
    assert low <= snap.val <= snap.poc <= snap.vah <= high
    # Bars of the first session are tagged with it; none spans the 16:00 close.
    sunday_open = datetime(2013, 9, 1, 17, 0, tzinfo=CT).timestamp()
    assert {b.session for b in time_bars} == {sunday_open, MONDAY_OPEN}
    assert all(b.end <= MONDAY_OPEN - 3600 for b in time_bars if b.session == sunday_open)
    assert any(b.rth for b in time_bars)  # 08:30-10:59 Monday morning
