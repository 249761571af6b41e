"""Trades CSV parsing for offline replay: good lines become events, bad ones name the line."""

from __future__ import annotations

from datetime import datetime

import pytest

from daemon.flow.replay import TradesFileError, parse_trades
from daemon.flow.sessions import CENTRAL

HEADER = "time_ct,price,size"


def parse(*lines: str) -> list[tuple[int, float, float, float]]:
    return [(e.seq, e.price, e.size, e.exchange_time) for e in parse_trades(lines, "f.csv")]


def ct(text: str) -> float:
    return datetime.fromisoformat(text).replace(tzinfo=CENTRAL).timestamp()


def test_lines_become_trades_with_central_time() -> None:
    got = parse(HEADER, "2013-09-01 17:00:00.083,1640.25,3", "", "2013-09-01 17:00:01,1640.5,1\r\n")
    assert got == [
        (2, 1640.25, 3.0, ct("2013-09-01 17:00:00.083")),
        (4, 1640.5, 1.0, ct("2013-09-01 17:00:01")),
    ]


def test_hours_across_a_day_and_the_clock_change() -> None:
    # 2026-11-01 01:30 CT happens twice: read as the first (CDT) occurrence, like ibsim does.
    got = parse(HEADER, "2026-10-31 23:59:59.5,6000,1", "2026-11-01 01:30:00,6000,1")
    assert got[0][3] == ct("2026-10-31 23:59:59.5")
    assert got[1][3] == datetime(2026, 11, 1, 1, 30, tzinfo=CENTRAL, fold=0).timestamp()


def test_values_the_guards_judge_are_passed_through() -> None:
    # Zero, negative and off-grid prices are well-formed lines: counted as rejected ticks later.
    got = parse(
        HEADER, "2013-09-01 17:00:00,0,1", "2013-09-01 17:00:00,-1,0", "2013-09-01 17:00:00,1.1,1"
    )
    assert [(p, s) for _, p, s, _ in got] == [(0.0, 1.0), (-1.0, 0.0), (1.1, 1.0)]


@pytest.mark.parametrize(
    ("lines", "line", "words"),
    [
        ((), 1, "empty file"),
        (("time,price,size",), 1, "header"),
        ((HEADER, "2013-09-01 17:00:00,1640.25"), 2, "expected 3 fields"),
        ((HEADER, "2013-09-01 17:00:00,1640.25,1", "2013-09-01 17:00:00,abc,1"), 3, "numbers"),
        ((HEADER, "2013-09-01 17:00:00,1640.25,x"), 2, "numbers"),
        ((HEADER, "2013-09-01T17:00:00,1640.25,1"), 2, "YYYY-MM-DD HH:MM:SS"),
        ((HEADER, "2013-09-01 17:61:00,1640.25,1"), 2, "out of range"),
        ((HEADER, "2013-13-01 17:00:00,1640.25,1"), 2, "2013-13-01 17"),
        ((HEADER, "2026-03-08 02:30:00,6000,1"), 2, "does not exist"),
        ((HEADER, "2013-09-01 17:00:00,nan,1"), 2, "finite"),
        ((HEADER, "2013-09-01 17:00:00,inf,1"), 2, "finite"),
    ],
)
def test_malformed_lines_name_the_line(lines: tuple[str, ...], line: int, words: str) -> None:
    with pytest.raises(TradesFileError) as caught:
        parse(*lines)
    assert caught.value.line == line
    assert str(caught.value).startswith(f"f.csv, line {line}: ")
    assert words in str(caught.value)
