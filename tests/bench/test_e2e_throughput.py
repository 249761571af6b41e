"""bench.e2e_throughput: samples, windows and the comparison, without processes."""

from __future__ import annotations

from datetime import datetime

import pytest
from ib_async import TickAttribBidAsk, TickAttribLast
from ib_async.objects import TickByTickAllLast, TickByTickBidAsk
from ib_async.ticker import Ticker

from bench.e2e_throughput import (
    CountingHandler,
    Machine,
    Report,
    Run,
    Sample,
    Usage,
    render,
    sample_from_line,
    sample_from_status,
    window_run,
)

BUSY = Usage(consumer=0.99, gateway=0.5, others=0.05, steal=0.0)


def status(uptime: float, ticks: object, trades: object, **extra: object) -> dict[str, object]:
    return {"uptime_s": uptime, "ticks_total": ticks, "trades_total": trades, **extra}


def test_daemon_status_becomes_a_sample() -> None:
    doc = status(12.5, 1000, 300, warming_up=False, loop_lag_s=0.25, data_health="OK")
    assert sample_from_status(doc) == Sample(12.5, 1000, 300, False, 0.25, "OK")


@pytest.mark.parametrize(
    ("doc", "message"),
    [
        ({"uptime_s": 1.0, "trades_total": 3}, "daemon status lacks 'ticks_total'"),
        (status(1.0, "many", 3), "unreadable count or clock"),
    ],
)
def test_unreadable_daemon_status_is_named(doc: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        sample_from_status(doc)


def test_bare_client_line_becomes_a_sample() -> None:
    assert sample_from_line('{"t": 5.5, "ticks": 70, "trades": 20}\n') == Sample(5.5, 70, 20)


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("Traceback (most recent call last):", "not JSON"),
        ('{"t": 5.5, "ticks": 70}', "lacks 'trades'"),
        ('{"t": "soon", "ticks": 70, "trades": 1}', "unreadable"),
    ],
)
def test_unreadable_bare_client_line_is_named(line: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        sample_from_line(line)


def test_a_window_is_counted_on_the_consumers_own_clock() -> None:
    run = window_run("daemon", Sample(10.0, 1_000, 300), Sample(14.0, 201_000, 60_300), BUSY)
    assert run.rate == 50_000.0
    assert run.trade_share == pytest.approx(0.3)
    assert run.per_cpu_s == pytest.approx(200_000 / (0.99 * 4.0))
    assert run.notes == []


def test_a_window_says_what_makes_it_doubtful() -> None:
    first = Sample(1.0, 0, 0, warming_up=True)
    last = Sample(2.0, 10, 3, health="DEGRADED")
    starved = window_run("daemon", first, last, Usage(0.6, 0.95, 0.3, 0.0))
    assert starved.notes == [
        "the daemon was still warming up (backfill) in the window",
        "the daemon's data health was DEGRADED at the end",
        "the gateway, not the consumer, was saturated",
    ]
    preempted = window_run("bare", Sample(1.0, 0, 0), Sample(2.0, 10, 3), Usage(0.5, 0.5, 1, 0))
    assert "had 50% of a core" in preempted.notes[0]


def test_samples_that_make_no_window_are_refused() -> None:
    with pytest.raises(ValueError, match=r"daemon: samples do not make a window \(0.000 s"):
        window_run("daemon", Sample(3.0, 10, 1), Sample(3.0, 20, 2), BUSY)
    with pytest.raises(ValueError, match="-5 ticks"):
        window_run("bare", Sample(3.0, 10, 1), Sample(4.0, 5, 2), BUSY)


def run(kind: str, rate: float, cpu: float = 1.0) -> Run:
    return Run(kind, 10.0, int(rate * 10), int(rate * 3), cpu, 0.5, 0.1, 0.0)


def test_the_ratio_is_daemon_over_bare_with_each_pair_shown() -> None:
    runs = [run("bare", 100_000), run("daemon", 80_000), run("bare", 60_000), run("daemon", 60_000)]
    report = Report(Machine("linux", 2, "3.11", "uvloop", [0.5]), 10.0, 3.0, runs)
    assert report.ratio == pytest.approx(70_000 / 80_000)
    assert report.pair_ratios == pytest.approx([0.8, 1.0])
    assert report.ratio_per_cpu_s == pytest.approx(0.875)
    text = render(report)
    assert "ratio 0.88 (pairs 0.80, 1.00)" in text
    assert "target: daemon / bare >= 0.85: met" in text


def test_the_bare_handler_counts_ticks_and_trades() -> None:
    ticker = Ticker()
    now = datetime(2026, 11, 20)
    ticker.tickByTicks = [
        TickByTickAllLast(2, now, 5000.25, 3, TickAttribLast(), "CME", ""),
        TickByTickBidAsk(now, 5000.0, 5000.25, 10, 12, TickAttribBidAsk()),
        TickByTickBidAsk(now, 5000.0, 5000.25, 11, 12, TickAttribBidAsk()),
    ]
    counter = CountingHandler()
    counter.on_update(ticker)
    counter.on_update(ticker)
    assert (counter.ticks, counter.trades) == (6, 2)
