"""One recorded session replayed as several consecutive CME sessions (`--sessions N`)."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable
from datetime import datetime, time
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from ibsim.cli import EX_USAGE, build_parser, main, make_source
from ibsim.market import RawTrade, ReplaySource, load_trades_csv
from ibsim.market.replay import repeat_sessions
from ibsim.model import MarketEvent, TradeTick

StreamChecker = Callable[[Iterable[MarketEvent]], list[TradeTick]]
SLICE_PATH = Path(__file__).parent / "data" / "es_trades_2013-09-01_first2000.csv.gz"
CHICAGO = ZoneInfo("America/Chicago")


def ct(year: int, month: int, day: int, hour: int, minute: int = 0, second: float = 0) -> float:
    whole = int(second)
    micro = round((second - whole) * 1e6)
    return datetime(year, month, day, hour, minute, whole, micro, tzinfo=CHICAGO).timestamp()


def local(t: float) -> datetime:
    return datetime.fromtimestamp(t, CHICAGO)


def copies(trades: list[RawTrade]) -> list[list[RawTrade]]:
    """Split a repeated replay at its gaps of more than an hour (one list per session)."""
    out: list[list[RawTrade]] = [[trades[0]]]
    for prev, trade in itertools.pairwise(trades):
        if trade.time_utc - prev.time_utc > 3600:
            out.append([])
        out[-1].append(trade)
    return out


def test_slice_lands_on_consecutive_evenings_and_skips_the_weekend() -> None:
    raw = load_trades_csv(SLICE_PATH)  # Sunday 2013-09-01 from 17:00 CT, all in one session
    repeated = repeat_sessions(raw, 6)
    sessions = copies(repeated)
    assert len(sessions) == 6
    opens = [local(s[0].time_utc) for s in sessions]
    # Sun, Mon, Tue, Wed, Thu evenings, then the next Sunday (no Friday or Saturday evening).
    assert [d.date().isoformat() for d in opens] == [
        "2013-09-01",
        "2013-09-02",
        "2013-09-03",
        "2013-09-04",
        "2013-09-05",
        "2013-09-08",
    ]
    for session in sessions:
        assert len(session) == len(raw)
        shift = session[0].time_utc - raw[0].time_utc
        assert shift % 86400 == 0
        assert session == [RawTrade(t.time_utc + shift, t.price, t.size) for t in raw]


def test_only_the_first_session_is_repeated() -> None:
    raw = [
        RawTrade(ct(2013, 9, 1, 17, 0, 1.5), 1640.25, 2),
        RawTrade(ct(2013, 9, 2, 10, 30), 1641.00, 1),
        RawTrade(ct(2013, 9, 2, 17, 5), 1642.00, 3),  # the next session: dropped
    ]
    repeated = repeat_sessions(raw, 2)
    assert [local(t.time_utc).isoformat() for t in repeated] == [
        "2013-09-01T17:00:01.500000-05:00",
        "2013-09-02T10:30:00-05:00",
        "2013-09-02T17:00:01.500000-05:00",
        "2013-09-03T10:30:00-05:00",
    ]
    assert [t.size for t in repeated] == [2, 1, 2, 1]


def test_holidays_are_skipped_and_early_closes_cut_the_copy() -> None:
    # Tuesday evening 2013-11-26 (trade date Wed 27th); Thanksgiving Thu 28th closes at 12:00,
    # the Friday after at 12:15; then Sunday evening for Monday December 2nd.
    raw = [
        RawTrade(ct(2013, 11, 26, 17, 0), 1800.00, 1),
        RawTrade(ct(2013, 11, 27, 11, 30), 1800.25, 2),
        RawTrade(ct(2013, 11, 27, 12, 10), 1800.50, 3),
        RawTrade(ct(2013, 11, 27, 12, 30), 1800.75, 4),
    ]
    repeated = repeat_sessions(raw, 4)
    stamps = [local(t.time_utc).strftime("%a %d %H:%M") for t in repeated]
    assert stamps == [
        "Tue 26 17:00",
        "Wed 27 11:30",
        "Wed 27 12:10",
        "Wed 27 12:30",
        "Wed 27 17:00",
        "Thu 28 11:30",  # 12:10 and 12:30 are after Thanksgiving's noon close
        "Thu 28 17:00",
        "Fri 29 11:30",
        "Fri 29 12:10",  # 12:30 is after the 12:15 close
        "Sun 01 17:00",
        "Mon 02 11:30",
        "Mon 02 12:10",
        "Mon 02 12:30",
    ]


def test_copies_keep_the_local_time_of_day_across_a_dst_change() -> None:
    # Thursday evening 2013-10-31 (CDT); summer time ends Sunday 2013-11-03 at 02:00.
    raw = [
        RawTrade(ct(2013, 10, 31, 17, 0, 0.25), 1760.00, 1),
        RawTrade(ct(2013, 11, 1, 8, 30), 1761.00, 1),
    ]
    repeated = repeat_sessions(raw, 2)
    assert [local(t.time_utc).time() for t in repeated] == [
        time(17, 0, 0, 250000),
        time(8, 30),
    ] * 2
    assert local(repeated[2].time_utc).isoformat() == "2013-11-03T17:00:00.250000-06:00"
    assert repeated[2].time_utc - repeated[0].time_utc == 3 * 86400 + 3600


@pytest.mark.parametrize("sessions", [0, -1])
def test_fewer_than_one_session_is_refused(sessions: int) -> None:
    raw = load_trades_csv(SLICE_PATH)
    with pytest.raises(ValueError, match=rf"sessions must be an integer >= 1, got {sessions}"):
        repeat_sessions(raw, sessions)
    with pytest.raises(ValueError, match="sessions must be"):
        ReplaySource(raw, sessions=sessions)


def test_a_first_trade_outside_trading_hours_is_refused() -> None:
    saturday = [RawTrade(ct(2013, 9, 7, 12, 0), 1650.00, 1)]
    with pytest.raises(ValueError, match=r"2013-09-07 12:00:00 CDT\) is outside CME trading"):
        repeat_sessions(saturday, 2)


def test_replay_source_serves_every_copy_consistently(stream_checker: StreamChecker) -> None:
    raw = load_trades_csv(SLICE_PATH)
    source = ReplaySource(raw, seed=3, sessions=3)
    assert source.start_time == raw[0].time_utc
    trades = stream_checker(source.events())
    assert [(t.time, t.price, t.size) for t in trades] == [
        tuple(r) for r in repeat_sessions(raw, 3)
    ]
    # Sides are drawn on across the copies, so the sessions are not identical twins.
    sides = [t.aggressor for t in trades]
    n = len(raw)
    assert sides[:n] != sides[n : 2 * n]
    # Without `sessions` the file is replayed as it is.
    plain = [e for e in ReplaySource(raw, seed=3).events() if isinstance(e, TradeTick)]
    assert len(plain) == n


def test_cli_builds_a_repeated_replay() -> None:
    args = build_parser().parse_args(
        ["--source", "replay", "--ticks", str(SLICE_PATH), "--sessions", "2"]
    )
    source = make_source(args)
    assert isinstance(source, ReplaySource)
    trades = [e for e in source.events() if isinstance(e, TradeTick)]
    assert len(trades) == 2 * 2000


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--source", "replay", "--sessions", "0"], "--sessions must be at least 1, got 0"),
        (["--source", "synthetic", "--sessions", "2"], "--sessions needs --source replay"),
    ],
)
def test_cli_refuses_bad_sessions(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["--port", "0", "--ticks", str(SLICE_PATH), *argv]) == EX_USAGE
    assert f"ibsim: error: {message}" in capsys.readouterr().err
