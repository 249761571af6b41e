"""status.json's `process` object: memory, descriptors, tasks and the loop-lag histogram."""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path

import pytest

from daemon.broker.connection import ConnectionStatus
from daemon.broker.marketdata import FeedStats
from daemon.runtime.status import (
    LoopLagHistogram,
    StatusInputs,
    open_fds,
    process_figures,
    process_start,
    read_status,
    rss_mb,
    running_tasks,
    snapshot,
    status_line,
)
from daemon.runtime.supervisor import Supervisor
from daemon.settings import Settings

HAVE_PROC = Path("/proc/self/statm").exists()


def test_lag_histogram_counts_every_probe_cumulatively() -> None:
    lag = LoopLagHistogram((1, 10, 100))
    for seconds in (0.0, 0.0005, 0.001, 0.0011, 0.010, 0.0101, 2.0):
        lag.record(seconds)
    assert lag.as_status() == {
        "probes": 7,
        "max_s": 2.0,
        # 1 ms and 10 ms exactly fall in their own edge's bucket; 2 s is above every edge.
        "le_ms": {"1": 3, "10": 5, "100": 6},
    }


def test_lag_histogram_snapshots_diff_into_a_period() -> None:
    lag = LoopLagHistogram()
    for _ in range(50):
        lag.record(0.030)
    before = lag.as_status()
    for i in range(200):
        lag.record(0.015 if i < 2 else 0.0004)
    after = lag.as_status()
    probes = after["probes"] - before["probes"]
    within_10ms = after["le_ms"]["10"] - before["le_ms"]["10"]
    assert probes == 200
    assert within_10ms == 198  # 1 % above 10 ms: the period's p99 is still within 10 ms
    assert after["le_ms"]["1"] - before["le_ms"]["1"] == 198


@pytest.mark.parametrize("edges", [(), (10, 5), (0, 5), (5, 5)])
def test_lag_histogram_refuses_bad_edges(edges: tuple[float, ...]) -> None:
    with pytest.raises(ValueError, match="lag bucket edges must be positive and increasing"):
        LoopLagHistogram(edges)


def test_rss_and_fds_read_from_a_proc_directory(tmp_path: Path) -> None:
    (tmp_path / "statm").write_text("52000 2560 700 1 0 3000 0\n")
    (tmp_path / "fd").mkdir()
    for name in ("0", "1", "2", "7"):
        (tmp_path / "fd" / name).touch()
    assert rss_mb(tmp_path) == round(2560 * os.sysconf("SC_PAGE_SIZE") / 2**20, 3)
    assert open_fds(tmp_path) == 4


def test_no_procfs_degrades_to_none(tmp_path: Path) -> None:
    assert rss_mb(tmp_path / "absent") is None
    assert open_fds(tmp_path / "absent") is None
    (tmp_path / "statm").write_text("garbage")
    assert rss_mb(tmp_path) is None


@pytest.mark.skipif(not HAVE_PROC, reason="no /proc (not Linux)")
def test_open_fds_of_this_process_follow_an_open_file(tmp_path: Path) -> None:
    before = open_fds()
    assert before is not None
    with (tmp_path / "f").open("w"):
        assert open_fds() == before + 1
    assert open_fds() == before
    rss = rss_mb()
    assert rss is not None
    assert rss > 1.0


def test_tasks_are_none_outside_a_loop() -> None:
    assert running_tasks() is None


async def test_tasks_count_the_loops_live_tasks() -> None:
    before = running_tasks()
    assert before is not None
    gate = asyncio.Event()
    tasks = [asyncio.create_task(gate.wait()) for _ in range(3)]
    await asyncio.sleep(0)
    assert running_tasks() == before + 3
    gate.set()
    await asyncio.wait_for(asyncio.gather(*tasks), 5.0)
    assert running_tasks() == before


def test_python_blocks_follow_live_objects() -> None:
    lag = LoopLagHistogram()
    before = process_figures(lag)["python_blocks"]
    held = [object() for _ in range(10_000)]
    during = process_figures(lag)["python_blocks"]
    assert during - before >= 10_000
    del held
    assert process_figures(lag)["python_blocks"] - before < 1_000


def test_snapshot_carries_the_process_object() -> None:
    lag = LoopLagHistogram()
    lag.record(0.002)
    figures = process_figures(lag)
    inputs = StatusInputs(
        connection=ConnectionStatus(),
        feed=FeedStats(),
        started_wall=0.0,
        started_mono=0.0,
        process=figures,
    )
    doc = snapshot(inputs, 1.0)
    assert doc["process"] is figures
    assert doc["process"]["tasks"] is None  # no running loop here
    assert doc["process"]["loop_lag"]["le_ms"]["2"] == 1
    assert doc["process"]["loop_lag"]["le_ms"]["1"] == 0


async def test_supervisor_writes_its_probes_into_status_json(tmp_path: Path) -> None:
    asyncio.set_event_loop(asyncio.get_running_loop())
    sup = Supervisor(Settings(paths={"state_dir": str(tmp_path)}, metrics={"enabled": False}))
    for lag in (0.0002, 0.004, 0.012):
        sup.lag_histogram.record(lag)
    sup.write_status()
    process = read_status(tmp_path)["process"]
    assert process["loop_lag"]["probes"] == 3
    assert process["loop_lag"]["max_s"] == 0.012
    assert process["loop_lag"]["le_ms"]["10"] == 2
    assert isinstance(process["tasks"], int)
    assert process["tasks"] >= 1  # this test itself
    if HAVE_PROC:
        assert process["open_fds"] > 0
        assert process["rss_mb"] > 1.0


async def test_supervisor_writes_pid_heartbeat_and_interval(tmp_path: Path) -> None:
    asyncio.set_event_loop(asyncio.get_running_loop())
    sup = Supervisor(
        Settings(
            paths={"state_dir": str(tmp_path)},
            metrics={"enabled": False},
            status={"interval_s": 0.5},
        )
    )
    before = time.time()
    sup.write_status()
    after = time.time()
    doc = read_status(tmp_path)
    assert doc["pid"] == os.getpid()
    assert doc["pid_start"] == process_start(os.getpid())
    assert before - 0.001 <= doc["heartbeat"] <= after + 0.001
    assert doc["interval_s"] == 0.5
    if HAVE_PROC:
        assert isinstance(doc["pid_start"], int)


def test_process_start_reads_field_22_past_a_name_with_parentheses(tmp_path: Path) -> None:
    (tmp_path / "42").mkdir()
    # comm "(a) b)" holds a space and parentheses; fields 4..21, then starttime (22).
    middle = " ".join(str(n) for n in range(4, 22))
    (tmp_path / "42" / "stat").write_text(f"42 ((a) b)) S {middle} 987654 0 0\n")
    assert process_start(42, tmp_path) == 987654
    assert process_start(43, tmp_path) is None


def _trading(position: int | None) -> dict[str, object]:
    return {"enabled": True, "state": "ACTIVE", "position": position, "net_pnl": 0.0}


def test_status_line_shows_an_untrusted_position_as_unknown() -> None:
    assert "ACTIVE pos unknown PnL +0.00" in status_line(
        {"state": "DEGRADED", "trading": _trading(None)}
    )
    assert "pos +0" in status_line({"state": "READY", "trading": _trading(0)})
    assert "pos -2" in status_line({"state": "READY", "trading": _trading(-2)})
    disabled = status_line({"state": "READY", "trading": {"enabled": False, "state": "DISABLED"}})
    assert "pos" not in disabled
