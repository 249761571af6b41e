"""The short seeded subset of `make chaos`: every fault kind once, the same code as the full run.

The real daemon (`python -m daemon run`, a child process) trades replayed real ES trades with
the default strategy against an in-process ibsim; each fault must end with the daemon healthy
again, and the gateway's orders and executions must agree with the daemon's journal.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from chaos.__main__ import DATA
from chaos.faults import CATALOGUE
from chaos.run import ChaosConfig, format_report, run


@pytest.mark.timeout(200)
async def test_every_fault_once_leaves_no_duplicate_order_no_lost_fill(tmp_path: Path) -> None:
    config = ChaosConfig(
        data=DATA,
        workdir=tmp_path,
        seed=7,
        rounds=1,
        warmup_s=2.0,
        gap_s=(0.3, 1.0),  # faults on the heels of each other: compounds too
        fault_scale=0.5,
        recover_timeout_s=45.0,
        order_wait_s=40.0,
    )
    lines: list[str] = []
    report = await run(config, progress=lines.append)
    text = format_report(report, config)
    print("\n".join(lines) + "\n" + text)  # the figures, shown with -s or on failure
    assert report.failures == []
    assert {o.kind for o in report.outcomes} == set(CATALOGUE)  # none skipped for want of orders
    assert all(o.recovered_s is not None for o in report.outcomes)
    assert report.fills > 0  # it traded: the order invariants were tested, not vacuous
    assert "duplicate orders: 0" in text.splitlines()
    assert "lost fills: 0" in text.splitlines()
