"""Recorder and reader on real files: round trip, days, crashes, bad files, retention, errors."""

from __future__ import annotations

import asyncio
import gzip
import math
import resource
import signal
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import structlog

from daemon.flow.events import DataMode, QuoteEvent, RtPrint, SnapshotEvent, TradeEvent
from daemon.flow.sessions import SessionSchedule
from daemon.recording import Recorder, RecordingFileError, list_days, read_day, read_file
from daemon.recording.format import head_text
from daemon.settings import RecordingSettings

CT = ZoneInfo("America/Chicago")
# Thursday 2026-11-19 10:00 CT: inside the Globex session that ends Thursday 16:00.
THU = datetime(2026, 11, 19, 10, 0, tzinfo=CT).timestamp()
THU_EVENING = datetime(2026, 11, 19, 17, 0, 5, tzinfo=CT).timestamp()  # Friday's session
NAN = math.nan


def recorder(state: Path, **settings: object) -> Recorder:
    return Recorder(state, "ES", RecordingSettings(**settings), SessionSchedule())


def same(a: float, b: float) -> bool:
    return a == b or (math.isnan(a) and math.isnan(b))


def trade(t: float, price: float, size: float, **kw: object) -> TradeEvent:
    return TradeEvent(0, price, size, t, 1000.123456789 + t % 7, **kw)  # type: ignore[arg-type]


def quote(t: float, bid: float, ask: float, bs: float = 10.0, az: float = 12.0) -> QuoteEvent:
    return QuoteEvent(0, bid, ask, bs, az, t, 2000.000001 + t % 5)


async def test_round_trip_keeps_every_field_bad_values_included(tmp_path: Path) -> None:
    sent = [
        quote(THU, 5000.0, 5000.25),
        trade(THU + 0.5, 5000.25, 3.0),
        trade(THU + 1, -1.0, 0.0, past_limit=True),
        trade(THU + 1, NAN, NAN, unreported=True),
        trade(THU + 2, 0.0, 1e-7, past_limit=True, unreported=True),
        quote(THU + 2, -1.0, NAN, -1.0, 0.0),
        quote(THU + 3, 5000.25, 5000.0, math.inf, 1.0),  # crossed
        TradeEvent(0, 5000.5, 2.0, THU + 4, 0.1, mode=DataMode.SNAPSHOT),
    ]
    rec = recorder(tmp_path)
    for ev in sent:
        rec.add(ev)
    await rec.flush()
    got = list(read_day(tmp_path, "2026-11-19"))
    assert [type(e) for e in got] == [type(e) for e in sent]
    assert [e.seq for e in got] == list(range(1, len(sent) + 1))
    for a, b in zip(sent, got, strict=True):
        for name in a.__slots__:  # type: ignore[union-attr]
            if name != "seq":
                assert same(getattr(a, name), getattr(b, name)) or getattr(a, name) == getattr(
                    b, name
                ), (name, a, b)
    assert list_days(tmp_path) == ["2026-11-19"]


async def test_snapshot_mode_is_recorded_as_quote_and_prints_volume_snapshots_are_not(
    tmp_path: Path,
) -> None:
    prints = (
        RtPrint(5000.25, 2.0, THU + 0.25, 10.0, True),
        RtPrint(5000.5, 4.0, THU + 0.5, 14, False),
    )
    snap = SnapshotEvent(1, 5000.0, 5000.25, 7.0, 9.0, 5000.5, 4.0, 14.0, THU + 0.5, 3.0, prints)
    volume_only = SnapshotEvent(
        2, 5000.0, 5000.25, 7.0, 9.0, 5000.5, 4.0, 14.0, THU + 1, 4.0, prints, DataMode.TICK_BY_TICK
    )
    rec = recorder(tmp_path)
    rec.add(snap)
    rec.add(volume_only)
    await rec.close()
    got = list(read_day(tmp_path, "2026-11-19"))
    assert got == [
        QuoteEvent(1, 5000.0, 5000.25, 7.0, 9.0, THU + 0.5, 3.0, DataMode.SNAPSHOT),
        TradeEvent(2, 5000.25, 2.0, THU + 0.25, 3.0, mode=DataMode.SNAPSHOT),
        TradeEvent(3, 5000.5, 4.0, THU + 0.5, 3.0, mode=DataMode.SNAPSHOT),
    ]


async def test_rotates_at_the_trading_day_boundary(tmp_path: Path) -> None:
    rec = recorder(tmp_path)
    with structlog.testing.capture_logs() as logs:
        rec.add(trade(THU, 5000.0, 1.0))
        await rec.flush()
        rec.add(trade(THU + 3600, 5001.0, 2.0))
        rec.add(trade(THU_EVENING, 5002.0, 3.0))  # 17:00 Thursday opens Friday's day
        rec.add(trade(THU_EVENING + 1, 5003.0, 4.0))
        await rec.flush()
    assert list_days(tmp_path) == ["2026-11-19", "2026-11-20"]
    assert [e.price for e in read_day(tmp_path, "2026-11-19")] == [5000.0, 5001.0]
    assert [e.price for e in read_day(tmp_path, "2026-11-20")] == [5002.0, 5003.0]
    events = [entry["event"] for entry in logs]
    assert events.count("recording_started") == 1
    assert events.count("recording_rotated") == 1


async def test_truncated_last_member_is_read_up_to_the_cut_and_repaired_on_append(
    tmp_path: Path,
) -> None:
    rec = recorder(tmp_path)
    rec.add(trade(THU, 5000.0, 1.0))
    rec.add(trade(THU + 1, 5000.25, 2.0))
    await rec.flush()
    for i in range(50):  # the second member, to be cut short as a kill -9 would
        rec.add(trade(THU + 2 + i, 5001.0 + i, 1.0))
    await rec.flush()
    path = tmp_path / "recordings" / "ES-2026-11-19.csv.gz"
    data = path.read_bytes()
    path.write_bytes(data[:-30])
    with structlog.testing.capture_logs() as logs:
        got = list(read_file(path))
    assert [e.price for e in got][:2] == [5000.0, 5000.25]
    assert len(got) < 52  # nothing after the cut, nothing invented
    assert all(e.price == 5001.0 + i for i, e in enumerate(got[2:]))
    assert [e["event"] for e in logs] == ["recording_truncated"]

    # The next daemon appends to the same day: the partial member goes, the rest stays readable.
    again = recorder(tmp_path)
    with structlog.testing.capture_logs() as logs:
        again.add(trade(THU + 100, 5100.0, 9.0))
        await again.close()
    assert "recording_repaired" in [e["event"] for e in logs]
    with structlog.testing.capture_logs() as logs:
        prices = [e.price for e in read_day(tmp_path, "2026-11-19")]
    assert prices == [5000.0, 5000.25, 5100.0]
    assert logs == []


def write_gz(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(gzip.compress(text.encode()))
    return path


@pytest.mark.parametrize(
    ("text", "line", "words"),
    [
        ("", 1, "empty"),
        ("time_ct,price,size\n", 1, "expected '# orderflowd recording v1'"),
        ("# orderflowd recording v1\nkind,price\n", 2, "column line"),
        (
            head_text() + "T,1.0,2.0,5000.0,1.0,0,,,,,tick-by-tick\nX,1,2,,,,,,,,snapshot\n",
            4,
            "kind",
        ),
        (head_text() + "T,1.0,2.0,abc,1.0,0,,,,,tick-by-tick\n", 3, "price: 'abc'"),
        (head_text() + "Q,1.0,2.0,,,,1,2,3\n", 3, "9 columns"),
        (head_text() + "T,1.0,2.0,5000.0,1.0,0,,,,,live\n", 3, "mode"),
    ],
)
def test_bad_files_name_file_and_line(tmp_path: Path, text: str, line: int, words: str) -> None:
    path = write_gz(tmp_path / "recordings" / "ES-2026-11-19.csv.gz", text)
    with pytest.raises(RecordingFileError) as err:
        list(read_day(tmp_path, "2026-11-19"))
    assert str(path) in str(err.value)
    assert f"line {line}" in str(err.value)
    assert words in str(err.value)


def test_not_gzip_and_missing_day_are_clear(tmp_path: Path) -> None:
    path = tmp_path / "recordings" / "ES-2026-11-19.csv.gz"
    path.parent.mkdir()
    path.write_bytes(b"kind,exchange_time\nnot gzip at all\n")
    with pytest.raises(RecordingFileError, match="corrupt gzip data"):
        list(read_file(path))
    with pytest.raises(FileNotFoundError, match=r"2026-11-18.*recorded days: \['2026-11-19'\]"):
        read_day(tmp_path, "2026-11-18")
    with pytest.raises(ValueError, match="not YYYY-MM-DD"):
        read_day(tmp_path, "20261119")


async def test_retention_deletes_only_old_days_of_this_symbol(tmp_path: Path) -> None:
    folder = tmp_path / "recordings"
    old = ["2026-11-10", "2026-11-11", "2026-11-12", "2026-11-13"]
    for day in old:
        write_gz(folder / f"ES-{day}.csv.gz", head_text())
    other = write_gz(folder / "NQ-2026-11-01.csv.gz", head_text())
    notes = folder / "notes.txt"
    notes.write_text("keep me")
    rec = recorder(tmp_path, keep_days=3)
    rec.add(trade(THU, 5000.0, 1.0))
    await rec.close()
    assert sorted(p.name for p in folder.iterdir()) == [
        "ES-2026-11-12.csv.gz",
        "ES-2026-11-13.csv.gz",
        "ES-2026-11-19.csv.gz",
        "NQ-2026-11-01.csv.gz",
        "notes.txt",
    ]
    assert other.exists()

    forever = recorder(tmp_path, keep_days=0)
    forever.add(trade(THU_EVENING, 5000.0, 1.0))
    await forever.close()
    assert list_days(tmp_path) == [
        "2026-11-01",
        "2026-11-12",
        "2026-11-13",
        "2026-11-19",
        "2026-11-20",
    ]


async def test_disk_errors_are_logged_and_never_raised(tmp_path: Path) -> None:
    (tmp_path / "recordings" / "ES-2026-11-19.csv.gz").mkdir(parents=True)  # in the way
    rec = recorder(tmp_path)
    with structlog.testing.capture_logs() as logs:
        rec.add(trade(THU, 5000.0, 1.0))
        await rec.flush()  # does not raise
        rec.add(trade(THU + 1, 5000.0, 1.0))
        await rec.flush()
    failed = [e for e in logs if e["event"] == "recording_failed"]
    assert len(failed) == 2
    assert "ES-2026-11-19.csv.gz" in failed[0]["path"]
    assert "trading goes on" in failed[0]["action"]
    assert rec.lost == 2
    assert rec.written == 0

    # The next day's file can be written: recording resumes by itself.
    with structlog.testing.capture_logs() as logs:
        rec.add(trade(THU_EVENING, 5001.0, 1.0))
        await rec.flush()
    assert "recording_resumed" in [e["event"] for e in logs]
    assert [e.price for e in read_day(tmp_path, "2026-11-20")] == [5001.0]

    blocked = tmp_path / "blocked"
    blocked.write_text("a file where the state directory should be")
    rec2 = recorder(blocked)
    with structlog.testing.capture_logs() as logs:
        rec2.add(trade(THU, 5000.0, 1.0))
        await rec2.close()
    assert [e["event"] for e in logs] == ["recording_failed"]


async def test_disabled_records_nothing(tmp_path: Path) -> None:
    rec = recorder(tmp_path, enabled=False)
    rec.start()
    rec.add(trade(THU, 5000.0, 1.0))
    await rec.close()
    assert list_days(tmp_path) == []
    assert not (tmp_path / "recordings").exists()


async def test_flush_task_writes_without_being_asked(tmp_path: Path) -> None:
    rec = recorder(tmp_path, flush_s=0.01)
    flushed = asyncio.Event()
    rec.listeners.append(flushed.set)
    rec.start()
    try:
        rec.add(trade(THU, 5000.0, 1.0))
        async with asyncio.timeout(5):
            while not rec.written:
                flushed.clear()
                await flushed.wait()
        path = tmp_path / "recordings" / "ES-2026-11-19.csv.gz"
        assert [e.price for e in read_file(path)] == [5000.0]  # readable while still open
    finally:
        await rec.close()


async def test_a_write_cut_short_by_a_full_disk_leaves_the_file_appendable(tmp_path: Path) -> None:
    rec = recorder(tmp_path)
    rec.add(trade(THU, 5000.0, 1.0))
    await rec.flush()
    path = tmp_path / "recordings" / "ES-2026-11-19.csv.gz"
    size = path.stat().st_size
    # The disk "fills" 10 bytes into the next member (a file size limit: EFBIG, like ENOSPC).
    old_handler = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    resource.setrlimit(resource.RLIMIT_FSIZE, (size + 10, hard))
    try:
        with structlog.testing.capture_logs() as logs:
            for i in range(200):
                rec.add(trade(THU + 1 + i, 5001.0, 1.0))
            await rec.flush()
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
        signal.signal(signal.SIGXFSZ, old_handler)
    assert [e["event"] for e in logs] == ["recording_failed"]
    assert path.stat().st_size == size  # the partial member was cut off again
    rec.add(trade(THU + 300, 5002.0, 1.0))
    await rec.flush()
    assert [e.price for e in read_file(path)] == [5000.0, 5002.0]
