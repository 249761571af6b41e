"""The session report over the vendored real ES trades and a journal with known fills and events.

The market data goes through the real recorder into `state_dir/recordings` and is read back
with `daemon.recording.read_day`, as `orderflowd report` does. Expected values (volume, VWAP,
PnL, marks) are computed here independently from the CSV and from the journal written below.
"""

from __future__ import annotations

import asyncio
import gzip
import re
import struct
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import pytest

from daemon.cli import EX_NOINPUT, EX_USAGE, main
from daemon.core.orders import Order, OrderType, Role, Side
from daemon.flow.events import TradeEvent
from daemon.flow.replay import parse_trades
from daemon.flow.sessions import CENTRAL, SessionSchedule
from daemon.recording import Recorder, list_days, read_day
from daemon.report import build_report_data, render_html, render_png
from daemon.report.data import NoMarketDataError, ReportData
from daemon.report.html import page
from daemon.report.render import draw, size_px
from daemon.runtime.supervisor import JOURNAL_FILE
from daemon.settings import RecordingSettings, Settings
from daemon.trading.journal import ExecRow, Journal

DATA = Path(__file__).parents[3] / "data" / "es_trades_2013-09-01_02.csv.gz"
DAY = "2013-09-02"  # the Globex session Sun 2013-09-01 17:00 CT .. Mon 16:00 CT
NEXT_DAY = "2013-09-03"  # the file ends with the first hours of this session
DPI = 40
CON_ID = 12345
ACCOUNT = "DU1234567"


def ct(text: str) -> float:
    """Epoch seconds of a US/Central wall time."""
    return datetime.fromisoformat(text).replace(tzinfo=CENTRAL).timestamp()


def trades() -> list[TradeEvent]:
    with gzip.open(DATA, "rt", encoding="utf-8", newline="") as f:
        return list(parse_trades(f, str(DATA)))


def record(state_dir: Path, events: list[TradeEvent]) -> None:
    """The events written by the real recorder, one file per trading day."""
    recorder = Recorder(state_dir, "ES", RecordingSettings(), SessionSchedule())
    for ev in events:
        recorder.add(ev)
    asyncio.run(recorder.flush())


def add_fill(
    j: Journal, exec_id: str, ref: str | None, side: str, qty: int, price: float, at: str, day: str
) -> None:
    j.record_execution(
        ExecRow(
            exec_id, ref, None, None, 7, ct(at), day, CON_ID, ACCOUNT, side, qty, price, qty,
            price, commission=2.25,
        )
    )  # fmt: skip


def order(ref: str, role: str, action: str, qty: int, at: str) -> Order:
    return Order(
        ref=ref, role=Role(role), client_id=7, action=Side(action), quantity=qty,
        order_type=OrderType.MKT,
        created=ct(at),
    )  # fmt: skip


def write_journal(path: Path) -> None:
    """Five fills on DAY realizing +75 - 50 + 50 = 75 USD, one on NEXT_DAY; a reconnect and a
    halt on DAY, a connect on NEXT_DAY."""
    with Journal(path) as j:
        j.record_orders(
            [
                order("o-entry", "entry", "BUY", 2, "2013-09-01 18:00:00"),
                order("o-target", "target", "SELL", 1, "2013-09-01 18:00:00"),
                order("o-stop", "stop", "SELL", 1, "2013-09-01 18:00:00"),
                order("o-adopted", "adopted", "BUY", 1, "2013-09-02 03:30:00"),
            ]
        )
        add_fill(j, "e1", "o-entry", "BUY", 2, 1641.00, "2013-09-01 18:00:05", DAY)
        add_fill(j, "e2", "o-target", "SELL", 1, 1642.50, "2013-09-01 19:30:00", DAY)  # +75
        add_fill(j, "e3", "o-stop", "SLD", 1, 1640.00, "2013-09-01 23:30:00", DAY)  # -50
        add_fill(j, "e4", None, "SELL", 1, 1645.00, "2013-09-02 03:00:00", DAY)  # opens short
        add_fill(j, "e5", "o-adopted", "BOT", 1, 1644.00, "2013-09-02 04:00:00", DAY)  # +50
        add_fill(j, "e6", None, "BUY", 1, 1646.00, "2013-09-02 17:30:00", NEXT_DAY)
        j.record_event("connect", ct("2013-09-01 17:00:30"), client_id=7, port=4002)
        j.record_event("disconnect", ct("2013-09-01 20:00:00"))
        j.record_event("connect", ct("2013-09-01 20:05:00"), client_id=7, port=4002)
        j.record_event("halt", ct("2013-09-01 22:00:00"), previous="ACTIVE", reason="operator")
        j.record_event("resume", ct("2013-09-01 23:00:00"), previous="HALTED", reason="operator")
        j.record_event("connect", ct("2013-09-02 17:10:00"), client_id=7, port=4002)
        # Journaled during a replay at 60x: the wall clock says 2026, the market 05:00.
        j.record_event(
            "flatten", ct("2026-11-22 08:00:00"), market_time=ct("2013-09-02 05:00:00"), reason="x"
        )
        j.upsert_daily_pnl(DAY, 75.0, 0.0, 5 * 2.25, 75.0 - 5 * 2.25, ct("2013-09-02 10:00:00"))


@pytest.fixture(scope="module")
def csv_trades() -> list[TradeEvent]:
    return trades()


@pytest.fixture(scope="module")
def state_dir(tmp_path_factory: pytest.TempPathFactory, csv_trades: list[TradeEvent]) -> Path:
    state = tmp_path_factory.mktemp("state")
    record(state, csv_trades)
    write_journal(state / JOURNAL_FILE)
    return state


@pytest.fixture
def journal(state_dir: Path) -> Iterator[Journal]:
    with Journal(state_dir / JOURNAL_FILE) as j:
        yield j


@pytest.fixture(scope="module")
def data(state_dir: Path) -> ReportData:
    """DAY's report data, built once: read-only in every test."""
    with Journal(state_dir / JOURNAL_FILE) as j:
        return build_report_data(j, read_day(state_dir, DAY), DAY, Settings())


def test_the_recording_holds_both_trading_days(state_dir: Path) -> None:
    assert list_days(state_dir) == [DAY, NEXT_DAY]


def test_bars_delta_and_vwap_of_the_day(data: ReportData, csv_trades: list[TradeEvent]) -> None:
    start, end = ct("2013-09-01 17:00:00"), ct("2013-09-02 17:00:00")
    day_trades = [t for t in csv_trades if start <= t.exchange_time < end]
    volume = sum(t.size for t in day_trades)
    vwap = sum(t.price * t.size for t in day_trades) / volume

    assert 900 < len(data.bars) <= 23 * 60  # one-minute bars with trades, none of the next day
    assert all(start <= b.start and b.end <= end for b in data.bars)
    assert data.trades == len(day_trades)
    assert data.volume == volume
    assert data.low == min(t.price for t in day_trades)
    assert data.high == max(t.price for t in day_trades)
    assert data.cvd[-1] == pytest.approx(sum(b.delta for b in data.bars))
    steps = [b - a for a, b in zip([0.0, *data.cvd], data.cvd, strict=False)]
    assert steps == pytest.approx([b.delta for b in data.bars])
    assert any(b.delta for b in data.bars)
    final = data.bands[-1]
    assert final is not None
    assert final.vwap == pytest.approx(vwap, abs=1e-9)
    assert data.low <= final.vwap <= data.high
    assert final.sd > 0
    assert final.lower2 < final.lower1 < final.vwap < final.upper1 < final.upper2


def test_fills_pnl_and_marks_match_the_journal(data: ReportData, journal: Journal) -> None:

    assert [f.exec_id for f in data.fills] == ["e1", "e2", "e3", "e4", "e5"]
    assert [f.side for f in data.fills] == ["BUY", "SELL", "SELL", "SELL", "BUY"]
    # Roles where the journal knows them; from the position otherwise (e4 opens, e5 closes).
    assert [f.kind for f in data.fills] == ["entry", "exit", "exit", "entry", "exit"]
    assert [f.role for f in data.fills] == ["entry", "target", "stop", None, "adopted"]
    assert [f.realized for f in data.fills] == [0.0, 75.0, -50.0, 0.0, 50.0]
    stored = journal.daily_pnl(DAY)
    assert stored is not None
    assert data.pnl[-1].realized == stored.realized == data.realized == 75.0
    assert [(s.time, s.realized) for s in data.pnl[1:]] == [
        (ct("2013-09-01 19:30:00"), 75.0),
        (ct("2013-09-01 23:30:00"), 25.0),
        (ct("2013-09-02 04:00:00"), 75.0),
    ]
    assert data.commissions == pytest.approx(5 * 2.25)

    assert [(m.label, m.time) for m in data.marks] == [
        ("connect", ct("2013-09-01 17:00:30")),
        ("disconnect", ct("2013-09-01 20:00:00")),
        ("reconnect", ct("2013-09-01 20:05:00")),
        ("halt", ct("2013-09-01 22:00:00")),
        ("resume", ct("2013-09-01 23:00:00")),
        ("flatten", ct("2013-09-02 05:00:00")),  # where the market was, not the wall clock
    ]  # not the connect of the next day
    assert [(s.kind, s.start, s.end) for s in data.shades] == [
        ("disconnected", ct("2013-09-01 20:00:00"), ct("2013-09-01 20:05:00")),
        ("halted", ct("2013-09-01 22:00:00"), ct("2013-09-01 23:00:00")),
    ]


def png_size(path: Path) -> tuple[int, int]:
    raw = path.read_bytes()
    assert raw[:8] == b"\x89PNG\r\n\x1a\n"
    length, kind = struct.unpack(">I4s", raw[8:16])
    assert (length, kind) == (13, b"IHDR")
    width, height = struct.unpack(">II", raw[16:24])
    return width, height


def test_png_and_html_are_written(data: ReportData, tmp_path: Path) -> None:
    png = render_png(data, tmp_path / "out" / "r.png", DPI)
    assert png_size(png) == size_px(DPI)
    assert not [p.name for p in png.parent.iterdir() if p.name.startswith(".")]  # no temp left

    html = render_html(data, png, tmp_path / "out" / "r.html").read_text(encoding="utf-8")
    assert "data:image/png;base64," in html
    assert "http:" not in html  # nothing fetched from anywhere
    assert "https:" not in html
    assert "<script" not in html
    assert "<link" not in html
    for exec_id_time in ("2013-09-01 18:00:05", "2013-09-01 23:30:00", "2013-09-02 04:00:00"):
        assert exec_id_time in html
    assert html.count('<td class="l">BUY</td>') == 2
    assert html.count('<td class="l">SELL</td>') == 3
    assert "reconnect" in html
    assert "halted" in html
    assert ACCOUNT not in html


def test_every_panel_has_data(data: ReportData) -> None:
    price, cvd, volume, delta, pnl = draw(data).axes
    assert len(price.lines) >= 2  # close, VWAP
    assert len(price.collections) >= 5  # ranges, 2 bands, 4 kinds of fills
    assert {t.get_text() for t in price.texts} >= {"reconnect", "halt", "disconnected", "halted"}
    assert cvd.lines
    assert volume.collections
    assert delta.collections
    steps = pnl.lines[0].get_ydata()
    assert list(steps)[-1] == 75.0


def test_a_day_without_fills_still_renders(state_dir: Path, tmp_path: Path) -> None:
    with Journal(tmp_path / "empty.sqlite") as empty:
        data = build_report_data(empty, read_day(state_dir, NEXT_DAY), NEXT_DAY, Settings())
    assert data.bars
    assert data.fills == []
    assert data.marks == []
    assert [s.realized for s in data.pnl] == [0.0]
    html = page(data, b"png")
    assert "no fills" in html
    assert png_size(render_png(data, tmp_path / "r.png", DPI)) == size_px(DPI)


def test_market_data_without_a_trade_of_the_day_is_refused(journal: Journal) -> None:
    other_day = [TradeEvent(1, 1650.0, 1.0, ct("2013-09-05 09:00:00"), 0.0)]
    with pytest.raises(NoMarketDataError, match=r"no trades of trading day 2013-09-02"):
        build_report_data(journal, other_day, DAY, Settings())


def test_cli_writes_the_report_and_prints_its_paths(
    state_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "reports"
    args = ["report", "--state-dir", str(state_dir), "--date", DAY, "--out", str(out)]
    assert main([*args, "--bar", "5min"]) == 0
    printed = capsys.readouterr().out.split()
    assert printed == [str(out / f"report-{DAY}.png"), str(out / f"report-{DAY}.html")]
    assert png_size(Path(printed[0])) == size_px()
    html = Path(printed[1]).read_text(encoding="utf-8")
    assert "o-adopted" in html
    assert "of 300 s" in html  # --bar reached the report
    assert "75.00" in html


def test_cli_default_date_is_the_latest_recorded_and_default_out_is_in_state_dir(
    tmp_path: Path, csv_trades: list[TradeEvent], capsys: pytest.CaptureFixture[str]
) -> None:
    state = tmp_path / "state"
    record(state, [t for t in csv_trades if t.exchange_time >= ct("2013-09-02 17:00:00")])
    Journal(state / JOURNAL_FILE).close()
    assert main(["report", "--state-dir", str(state)]) == 0
    reports = state / "reports"
    assert capsys.readouterr().out.split() == [
        str(reports / f"report-{NEXT_DAY}.png"),
        str(reports / f"report-{NEXT_DAY}.html"),
    ]


@pytest.mark.parametrize(
    ("date", "code", "message"),
    [
        ("2013-09-05", EX_NOINPUT, "no market data for 2013-09-05 in .*; days with data: "
         "2013-09-02, 2013-09-03"),
        ("2013-13-01", EX_USAGE, "--date '2013-13-01' is not a date as YYYY-MM-DD"),
        ("yesterday", EX_USAGE, "--date 'yesterday' is not a date"),
    ],
)  # fmt: skip
def test_cli_bad_date(
    state_dir: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    date: str,
    code: int,
    message: str,
) -> None:
    out = tmp_path / "reports"
    assert (
        main(["report", "--state-dir", str(state_dir), "--date", date, "--out", str(out)]) == code
    )
    err = capsys.readouterr().err
    assert err.startswith("orderflowd report: ")
    assert re.search(message, err), err
    assert not out.exists()


def test_cli_without_journal_or_recordings(
    tmp_path: Path, csv_trades: list[TradeEvent], capsys: pytest.CaptureFixture[str]
) -> None:
    empty = tmp_path / "empty"
    assert main(["report", "--state-dir", str(empty)]) == EX_NOINPUT
    assert "no recorded market data in" in capsys.readouterr().err

    state = tmp_path / "no-journal"
    record(state, csv_trades[:2000])
    assert main(["report", "--state-dir", str(state), "--date", DAY]) == EX_NOINPUT
    err = capsys.readouterr().err
    assert f"no journal for {DAY}: {state / JOURNAL_FILE} does not exist" in err
    assert "days with market data: 2013-09-02" in err
    assert not (state / JOURNAL_FILE).exists()  # looking did not create one


def test_events_of_other_days_are_left_out(
    data: ReportData, journal: Journal, csv_trades: list[TradeEvent]
) -> None:
    whole_file = build_report_data(journal, csv_trades, DAY, Settings())  # both days' trades
    assert [b.start for b in whole_file.bars] == [b.start for b in data.bars]
    assert whole_file.volume == data.volume
    assert whole_file.cvd == data.cvd
