"""bench.__main__: the one-run table, its rows and the machine, without running benchmarks."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from bench.__main__ import (
    BENCHES,
    ROOT,
    Machine,
    Outcome,
    arguments,
    cpu_model,
    main,
    parse_figures,
    render,
    rows_of,
)

CPUINFO = """processor\t: 0
vendor_id\t: GenuineIntel
model name\t: Intel(R) Xeon(R) Processor @ 2.50GHz
processor\t: 1
model name\t: Intel(R) Xeon(R) Processor @ 2.50GHz
"""

E2E = {
    "figures": {
        "bare_ticks_per_s": 80_000.0,
        "daemon_ticks_per_s": 72_000.0,
        "ratio": 0.9,
        "pair_ratios": [0.88, 0.92],
        "ratio_per_cpu_s": 0.95,
        "target_ratio": 0.85,
    }
}


def machine() -> Machine:
    return Machine(
        cpu="Xeon",
        cores=2,
        kernel="Linux",
        python="CPython 3.11.7",
        ib_async="2.1.0",
        loop="uvloop 0.21",
        commit="abc1234",
        started="2026-11-22T05:00:00+00:00",
        load_before=(1.0, 0.5, 0.25),
        load_after=(1.5, 0.75, 0.5),
        seconds=600.0,
        steal=0.02,
        others=0.1,
    )


def test_cpu_model_is_the_first_model_name() -> None:
    assert cpu_model(CPUINFO) == "Intel(R) Xeon(R) Processor @ 2.50GHz"
    assert cpu_model("processor\t: 0\nFeatures\t: fp asimd\n") is None


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("e2e: 70,000 ticks/s", "printed no JSON"),
        ("[1, 2]", "printed JSON list, not an object"),
        ('{"absent": "data/x.csv.gz"}', r"no data file \(data/x.csv.gz\)"),
    ],
)
def test_output_that_is_not_figures_is_named(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_figures(text)


def test_a_quick_run_passes_quick_arguments_and_the_data_file() -> None:
    extractor = next(b for b in BENCHES if b.name == "flow_extractor")
    data = ROOT / "data" / "trades.csv.gz"
    assert arguments(extractor, True, data) == [
        "--passes",
        "2",
        "--data",
        "data/trades.csv.gz",
    ]
    assert arguments(extractor, False, None) == []


def test_the_e2e_row_shows_the_ratio_against_bare_ib_async() -> None:
    [row] = rows_of(Outcome("e2e_throughput", "python -m bench.e2e_throughput", 90.0, E2E))
    _, value, baseline, command = row
    assert value == "72,000 ticks/s"
    assert "bare ib_async 80,000 ticks/s: ratio **0.90**" in baseline
    assert "per consumer CPU-second 0.95" in baseline
    assert baseline.endswith("target >= 0.85: met")
    assert command == "`python -m bench.e2e_throughput`"


def test_a_failed_or_unreadable_benchmark_gets_one_row_saying_so() -> None:
    failed = Outcome("tick_to_order", "python -m bench.tick_to_order", 5.0, error="exit status 1")
    assert rows_of(failed) == [
        ("tick_to_order", "**failed**", "exit status 1", "`python -m bench.tick_to_order`")
    ]
    odd: dict[str, Any] = {"figures": {"ratio": 0.9}}
    [row] = rows_of(Outcome("e2e_throughput", "python -m bench.e2e_throughput", 5.0, odd))
    assert row[1] == "**failed**"
    assert row[2] == "figures not understood (KeyError: 'target_ratio')"


def test_the_table_is_markdown_with_the_machine_below() -> None:
    outcomes = [
        Outcome("e2e_throughput", "python -m bench.e2e_throughput", 90.0, E2E),
        Outcome("flow_accuracy", "python -m bench.flow_accuracy", 7.0, error="a | b"),
    ]
    text = render(outcomes, machine(), quick=False)
    lines = text.splitlines()
    assert lines[2] == "| figure | value | baseline / ratio | command |"
    assert lines[5] == (
        "| flow_accuracy | **failed** | a \\| b | `python -m bench.flow_accuracy` |"
    )
    assert "- CPU: Xeon, 2 cores; Linux" in lines
    load = "1.00 / 0.50 / 0.25 before, 1.50 / 0.75 / 0.50 after"
    assert f"- load average (1 / 5 / 15 min): {load}" in lines
    assert "steal 2.0% of a core" in text
    assert "Seconds per benchmark: e2e_throughput 90, flow_accuracy 7." in text


def test_an_unknown_benchmark_name_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["--only", "e2e_throughput,latency", "--out", str(Path("/nonexistent/x.md"))])
    assert exited.value.code == 2
    err = capsys.readouterr().err
    assert "--only: unknown benchmark(s) ['latency']" in err
    assert "known: ibsim_throughput, e2e_throughput" in err
