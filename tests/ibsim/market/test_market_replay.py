"""CSV loading and replay with synthesized quotes."""

from __future__ import annotations

import gzip
import itertools
import re
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ibsim.market import (
    MarketSource,
    RawTrade,
    ReplayFileError,
    ReplaySource,
    load_trades_csv,
)
from ibsim.model import MarketEvent, QuoteTick, Side, TradeTick

StreamChecker = Callable[[Iterable[MarketEvent]], list[TradeTick]]
SLICE_PATH = Path(__file__).parent / "data" / "es_trades_2013-09-01_first2000.csv.gz"
FULL_FILE = Path("/work/shared/data/es_trades_2013-09-01_02.csv.gz")
CHICAGO = ZoneInfo("America/Chicago")
HEADER = "time_ct,price,size\n"


def _utc(local: str) -> float:
    """Reference conversion, one full datetime parse per row (slow but obviously right)."""
    return datetime.fromisoformat(local).replace(tzinfo=CHICAGO).timestamp()


def _write(tmp_path: Path, text: str, name: str = "t.csv") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def _csv_rows(path: Path) -> list[list[str]]:
    with gzip.open(path, "rt", encoding="utf-8") as f:
        return [line.split(",") for line in f.read().splitlines()[1:]]


# --- loading ---------------------------------------------------------------------------------


def test_slice_loads_every_row_exactly() -> None:
    trades = load_trades_csv(SLICE_PATH)
    rows = _csv_rows(SLICE_PATH)
    assert len(trades) == len(rows) == 2000
    for trade, (time_ct, price, size) in zip(trades, rows, strict=True):
        assert trade == RawTrade(_utc(time_ct), float(price), int(size))
    # 17:00:00.083 CDT is 22:00:00.083 UTC.
    assert trades[0].time_utc == datetime(2013, 9, 1, 22, 0, 0, 83000, tzinfo=UTC).timestamp()


def test_plain_csv_crlf_and_blank_lines(tmp_path: Path) -> None:
    text = (
        "time_ct,price,size\r\n"
        "2013-09-01 17:00:00.083,1640.25,8\r\n"
        "\r\n"
        "2013-09-01 17:00:01,1640.5,1\r\n"
    )
    trades = load_trades_csv(_write(tmp_path, text))
    assert trades == [
        RawTrade(_utc("2013-09-01 17:00:00.083"), 1640.25, 8),
        RawTrade(_utc("2013-09-01 17:00:01"), 1640.5, 1),
    ]


def test_dst_cst_and_cdt(tmp_path: Path) -> None:
    text = (
        HEADER
        + "2013-01-15 12:00:00.250,1500.00,1\n"  # CST, UTC-6
        + "2013-07-15 12:00:00,1600.00,1\n"  # CDT, UTC-5
        + "2013-11-03 01:30:00,1700.00,1\n"  # ambiguous fall-back hour: first (CDT) reading
    )
    trades = load_trades_csv(_write(tmp_path, text))
    assert [t.time_utc for t in trades] == [
        datetime(2013, 1, 15, 18, 0, 0, 250000, tzinfo=UTC).timestamp(),
        datetime(2013, 7, 15, 17, 0, 0, tzinfo=UTC).timestamp(),
        datetime(2013, 11, 3, 6, 30, 0, tzinfo=UTC).timestamp(),
    ]


_OK = "2013-09-01 17:00:00.083,1640.25,8\n"

BAD_FILES = [
    # (content after the header, line, column, words in the reason)
    ("2013-09-01 17:00:00.083,1640.25\n", 2, "size", "2 columns"),
    (_OK + "2013-09-01 17:00:00.083,1640.25,8,9\n", 3, "4 (extra)", "4 columns"),
    ("2013-09-01T17:00:00,1640.25,8\n", 2, "time_ct", "YYYY-MM-DD"),
    ("2013-02-30 17:00:00,1640.25,8\n", 2, "time_ct", "day is out of range"),
    ("2013-09-01 17:61:00,1640.25,8\n", 2, "time_ct", "out of range"),
    ("2013-03-10 02:30:00,1640.25,8\n", 2, "time_ct", "DST gap"),
    (_OK + _OK + "2013-09-01 17:00:00.082,1640.25,8\n", 4, "time_ct", "before the previous"),
    ("2013-09-01 17:00:00.083,abc,8\n", 2, "price", "not a number"),
    ("2013-09-01 17:00:00.083,nan,8\n", 2, "price", "finite positive"),
    ("2013-09-01 17:00:00.083,inf,8\n", 2, "price", "finite positive"),
    ("2013-09-01 17:00:00.083,0,8\n", 2, "price", "finite positive"),
    ("2013-09-01 17:00:00.083,-1640.25,8\n", 2, "price", "finite positive"),
    ("2013-09-01 17:00:00.083,1640.1,8\n", 2, "price", "multiple of 0.25"),
    ("2013-09-01 17:00:00.083,1640.25,1.5\n", 2, "size", "not an integer"),
    ("2013-09-01 17:00:00.083,1640.25,\n", 2, "size", "not an integer"),
    ("2013-09-01 17:00:00.083,1640.25,0\n", 2, "size", "not positive"),
    ("2013-09-01 17:00:00.083,1640.25,-3\n", 2, "size", "not positive"),
]


@pytest.mark.parametrize(("body", "line", "column", "reason"), BAD_FILES)
def test_bad_rows_name_line_and_column(
    tmp_path: Path, body: str, line: int, column: str, reason: str
) -> None:
    path = _write(tmp_path, HEADER + body)
    with pytest.raises(ReplayFileError) as info:
        load_trades_csv(path)
    message = str(info.value)
    assert str(path) in message
    assert f"line {line}" in message
    assert f"column {column}" in message
    assert reason in message
    assert (info.value.line, info.value.column) == (line, column)


def test_bad_rows_in_gzip_file_too(tmp_path: Path) -> None:
    path = tmp_path / "t.csv.gz"
    path.write_bytes(gzip.compress((HEADER + _OK + "2013-09-01 17:00:01,1,x\n").encode()))
    with pytest.raises(ReplayFileError, match=r"line 3, column size: size 'x' is not an integer"):
        load_trades_csv(path)


@pytest.mark.parametrize(
    ("text", "where"),
    [
        ("", "line 1: empty file"),
        (HEADER, "line 2: no trades"),
        ("time,price,size\n" + _OK, "line 1, column time_ct: header is 'time,price,size'"),
        ("time_ct,price\n" + _OK, "line 1, column size: header is"),
        ("time_ct,price,size,x\n" + _OK, "line 1, column 4 (extra): header is"),
    ],
)
def test_empty_file_and_wrong_header(tmp_path: Path, text: str, where: str) -> None:
    with pytest.raises(ReplayFileError, match=re.escape(where)):
        load_trades_csv(_write(tmp_path, text))


def test_not_utf8_names_the_line(tmp_path: Path) -> None:
    path = tmp_path / "t.csv"
    path.write_bytes((HEADER + _OK).encode() + b"2013-09-01 17:00:01,1640.25,\xff\n")
    with pytest.raises(ReplayFileError, match=r"line 3: not UTF-8 \(byte 0xff\)"):
        load_trades_csv(path)


def test_unreadable_gzip(tmp_path: Path) -> None:
    path = _write(tmp_path, HEADER + _OK, name="t.csv.gz")  # plain text under a .gz name
    with pytest.raises(ReplayFileError, match="unreadable gzip"):
        load_trades_csv(path)
    truncated = tmp_path / "cut.csv.gz"
    truncated.write_bytes(gzip.compress((HEADER + _OK * 50).encode())[:-12])
    with pytest.raises(ReplayFileError, match="unreadable gzip"):
        load_trades_csv(truncated)


def test_replay_file_error_is_a_value_error(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="no trades"):
        load_trades_csv(_write(tmp_path, HEADER))


# --- replay ----------------------------------------------------------------------------------


def test_replay_of_slice_is_consistent_and_reproduces_every_trade(
    stream_checker: StreamChecker,
) -> None:
    raw = load_trades_csv(SLICE_PATH)
    source = ReplaySource(raw, seed=7)
    assert isinstance(source, MarketSource)
    events = list(source.events())
    assert isinstance(events[0], QuoteTick)
    assert events[0].time == source.start_time == raw[0].time_utc
    trades = stream_checker(events)
    assert [(t.time, t.price, t.size) for t in trades] == [tuple(r) for r in raw]


def test_tick_rule_agrees_with_truth_on_most_but_not_all_of_the_slice(
    tick_rule_agreement: Callable[[list[TradeTick]], float],
) -> None:
    raw = load_trades_csv(SLICE_PATH)
    for seed in range(3):
        trades = [e for e in ReplaySource(raw, seed).events() if isinstance(e, TradeTick)]
        agreement = tick_rule_agreement(trades)
        assert 0.6 < agreement < 0.95, (seed, agreement)  # about 0.78 with these seeds


def test_side_rule_and_sweeps() -> None:
    t0 = 1_378_072_800.0
    raw = [
        RawTrade(t0, 1640.25, 3),
        RawTrade(t0 + 1, 1640.50, 2),  # up-tick: BUY
        RawTrade(t0 + 2, 1640.25, 4),  # down-tick: SELL
        RawTrade(t0 + 3, 1640.00, 5),  # sweep of one level, bigger than any displayed size
        RawTrade(t0 + 3, 1640.00, 500),
        RawTrade(t0 + 3, 1640.00, 400),
    ]
    events = list(ReplaySource(raw, seed=1).events())
    trades = [e for e in events if isinstance(e, TradeTick)]
    assert [t.aggressor for t in trades[1:]] == [Side.BUY] + [Side.SELL] * 4
    first_of_sweep = events.index(trades[3])
    quote = events[first_of_sweep - 1]
    assert isinstance(quote, QuoteTick)
    assert quote.bid == 1640.00
    assert quote.bid_size >= 905


def test_zero_ticks_sometimes_flip_the_side() -> None:
    t0 = 1_378_072_800.0
    raw = [RawTrade(t0 + i, 1640.25, 1) for i in range(400)]
    trades = [e for e in ReplaySource(raw, seed=3).events() if isinstance(e, TradeTick)]
    flips = sum(a.aggressor != b.aggressor for a, b in itertools.pairwise(trades))
    assert 0.2 < flips / 399 < 0.4  # KEEP_SIDE_ON_ZERO_TICK = 0.7


def test_same_seed_same_stream_other_seed_other_sides() -> None:
    raw = load_trades_csv(SLICE_PATH)
    source = ReplaySource(raw, seed=11)
    first = list(source.events())
    assert list(source.events()) == first
    assert list(ReplaySource(raw, seed=11).events()) == first
    other = list(ReplaySource(raw, seed=12).events())
    assert other != first
    sides = [e.aggressor for e in first if isinstance(e, TradeTick)]
    assert sides != [e.aggressor for e in other if isinstance(e, TradeTick)]


@pytest.mark.parametrize(
    "trades",
    [
        [],
        [RawTrade(1.0, 1640.1, 1)],
        [RawTrade(1.0, 0.25, 1)],
        [RawTrade(1.0, 1640.0, 0)],
        [RawTrade(2.0, 1640.0, 1), RawTrade(1.0, 1640.0, 1)],
        [RawTrade(float("nan"), 1640.0, 1)],
    ],
)
def test_replay_source_rejects_bad_trades(trades: list[RawTrade]) -> None:
    with pytest.raises(ValueError, match=r"trade|no trades"):
        ReplaySource(trades)


_steps = st.sampled_from([0, 0, 0, 0, 1, -1, 1, -1, 2, -2, 6, -6])
_gaps = st.sampled_from([0.0, 0.0, 0.001, 0.25, 3.0, 600.0])
_rows = st.lists(st.tuples(_gaps, _steps, st.integers(1, 600)), min_size=1, max_size=150)


@settings(derandomize=True, deadline=None, max_examples=150)
@given(rows=_rows, seed=st.integers(0, 2**32), start_tick=st.integers(2, 30_000))
def test_replay_of_any_trades_is_consistent_and_exact(
    stream_checker: StreamChecker, rows: list[tuple[float, int, int]], seed: int, start_tick: int
) -> None:
    time, tick = 1_378_072_800.0, start_tick
    raw = []
    for gap, step, size in rows:
        time += gap
        tick = max(2, tick + step)
        raw.append(RawTrade(time, tick * 0.25, size))
    source = ReplaySource(raw, seed)
    events = list(source.events())
    trades = stream_checker(events)
    assert [(t.time, t.price, t.size) for t in trades] == [tuple(r) for r in raw]
    assert events == list(source.events())


@pytest.mark.skipif(not FULL_FILE.exists(), reason="shared data folder absent")
def test_full_file_replays_exactly(stream_checker: StreamChecker) -> None:
    raw = load_trades_csv(FULL_FILE)
    assert len(raw) == 66_321
    trades = stream_checker(ReplaySource(raw).events())
    assert [(t.time, t.price, t.size) for t in trades] == [tuple(r) for r in raw]
