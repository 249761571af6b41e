"""`orderflowd replay` over real ES trades: the bar file checked against an independent tick rule.

The slice in tests/data is the first 3,000 trades of the shared real data (MIT, licence beside
it); the whole shared file is used too where it is present.
"""

from __future__ import annotations

import csv
import gzip
import math
from collections import defaultdict
from datetime import datetime
from pathlib import Path

import pytest

from daemon.cli import EX_DATAERR, EX_NOINPUT, main
from daemon.flow.sessions import CENTRAL

SLICE = Path(__file__).parent.parent / "data" / "es_trades_2013-09-01_slice.csv"
SHARED = Path(__file__).parents[3] / "shared" / "data" / "es_trades_2013-09-01_02.csv.gz"
REQUIRED = [
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
]


def reference_bars(path: Path, bar_s: int) -> dict[str, dict[str, float]]:
    """Bars computed here, independently: plain tick rule, first trades unclassified."""
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt") as f:
        rows = list(csv.DictReader(f))
    bars: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
    last_price: float | None = None
    side = 0
    for row in rows:
        price, size = float(row["price"]), float(row["size"])
        if last_price is not None and price != last_price:
            side = 1 if price > last_price else -1
        last_price = price
        local = datetime.fromisoformat(row["time_ct"]).replace(tzinfo=CENTRAL)
        start = math.floor(local.timestamp() / bar_s) * bar_s  # CT offsets are whole hours
        key = datetime.fromtimestamp(start, CENTRAL).isoformat()
        bar = bars[key]
        if not bar["trades"]:
            bar["open"] = price
            bar["low"] = price
        bar["high"] = max(bar["high"], price)
        bar["low"] = min(bar["low"], price)
        bar["close"] = price
        bar["volume"] += size
        bar["buy_volume"] += size if side > 0 else 0
        bar["sell_volume"] += size if side < 0 else 0
        bar["trades"] += 1
    for bar in bars.values():
        bar["delta"] = bar["buy_volume"] - bar["sell_volume"]
    return bars


def read_out(path: Path) -> tuple[list[str], list[dict[str, str]]]:
    with path.open(newline="") as f:
        reader = csv.DictReader(f)
        return list(reader.fieldnames or []), list(reader)


def check_against_reference(out: Path, ticks: Path, bar_s: int) -> list[dict[str, str]]:
    header, rows = read_out(out)
    assert header[: len(REQUIRED)] == REQUIRED
    expected = reference_bars(ticks, bar_s)
    assert [r["bar_start"] for r in rows] == sorted(expected)
    for row in rows:
        want = expected[row["bar_start"]]
        for column in REQUIRED[1:]:
            assert float(row[column]) == pytest.approx(want[column]), (row["bar_start"], column)
        total = float(row["buy_volume"]) + float(row["sell_volume"]) + float(row["unclassified"])
        assert total == pytest.approx(float(row["volume"]))
    return rows


def test_replay_slice_matches_an_independent_tick_rule(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "bars.csv"
    assert main(["replay", "--ticks", str(SLICE), "--out", str(out)]) == 0
    rows = check_against_reference(out, SLICE, 60)
    # The first trades, before the price first moves, have no tick-rule side: unclassified.
    assert float(rows[0]["unclassified"]) > 0
    assert sum(float(r["unclassified"]) for r in rows[1:]) == 0
    # CVD is the running sum of the bar deltas (one Globex session in this slice).
    cvd = 0.0
    for row in rows:
        cvd += float(row["delta"])
        assert float(row["cvd"]) == pytest.approx(cvd)
    assert "3000 trades" in capsys.readouterr().err


def test_gzip_input_and_bar_option(tmp_path: Path) -> None:
    packed = tmp_path / "slice.csv.gz"
    packed.write_bytes(gzip.compress(SLICE.read_bytes()))
    out = tmp_path / "bars.csv"
    assert main(["replay", "--ticks", str(packed), "--bar", "5min", "--out", str(out)]) == 0
    rows = check_against_reference(out, packed, 300)
    assert all(datetime.fromisoformat(r["bar_start"]).minute % 5 == 0 for r in rows)


def test_stdout_when_no_out(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["replay", "--ticks", str(SLICE), "--bar", "1h"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split(",")[: len(REQUIRED)] == REQUIRED
    assert len(lines) == 2  # 17:00-17:22 fits one hour bar


@pytest.mark.skipif(not SHARED.exists(), reason=f"shared real data not present at {SHARED}")
def test_replay_whole_shared_file(tmp_path: Path) -> None:
    out = tmp_path / "bars.csv"
    assert main(["replay", "--ticks", str(SHARED), "--out", str(out)]) == 0
    rows = check_against_reference(out, SHARED, 60)
    with gzip.open(SHARED, "rt") as f:
        assert sum(float(r["volume"]) for r in rows) == sum(
            float(row["size"]) for row in csv.DictReader(f)
        )


def test_malformed_line_fails_naming_it_and_leaves_no_output(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    lines = SLICE.read_text().splitlines()
    lines[1500] = "2013-09-01 17:10:00.000,1641.25"
    bad = tmp_path / "bad.csv"
    bad.write_text("\n".join(lines) + "\n")
    out = tmp_path / "bars.csv"
    assert main(["replay", "--ticks", str(bad), "--out", str(out)]) == EX_DATAERR
    err = capsys.readouterr().err
    assert f"{bad}, line 1501: expected 3 fields" in err
    assert "no output written" in err
    assert list(tmp_path.iterdir()) == [bad]  # no output file, no temporary left behind


def test_corrupt_gzip_and_missing_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    broken = tmp_path / "broken.csv.gz"
    broken.write_bytes(gzip.compress(SLICE.read_bytes())[:4000])
    assert main(["replay", "--ticks", str(broken), "--out", str(tmp_path / "o.csv")]) == EX_DATAERR
    assert "cannot read" in capsys.readouterr().err
    missing = tmp_path / "nope.csv"
    assert main(["replay", "--ticks", str(missing)]) == EX_NOINPUT
    assert str(missing) in capsys.readouterr().err
    assert not (tmp_path / "o.csv").exists()


def test_bad_bar_option_is_a_config_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["replay", "--ticks", str(SLICE), "--bar", "7min"]) == 78
    assert "flow.bar" in capsys.readouterr().err
