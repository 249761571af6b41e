"""The `ibsim` command as a user runs it: a real process on 127.0.0.1 with a free port."""

from __future__ import annotations

import asyncio
import gzip
import json
import signal
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from ib_async import IB, Future, MarketOrder, Ticker

from tests.ibsim.conftest import WAIT, run_ibsim, until

SLICE = Path(__file__).parent / "market" / "data" / "es_trades_2013-09-01_first2000.csv.gz"


async def _start(*args: str) -> tuple[asyncio.subprocess.Process, int]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "ibsim",
        "--port",
        "0",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    assert proc.stdout is not None
    line = await asyncio.wait_for(proc.stdout.readline(), WAIT)
    return proc, int(line)


@pytest.fixture
async def processes() -> AsyncIterator[list[asyncio.subprocess.Process]]:
    procs: list[asyncio.subprocess.Process] = []
    yield procs
    for proc in procs:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


async def test_replay_serves_ib_async_and_writes_state_on_sigterm(
    tmp_path: Path, processes: list[asyncio.subprocess.Process]
) -> None:
    asyncio.set_event_loop(asyncio.get_running_loop())
    state, journal = tmp_path / "state.json", tmp_path / "journal.jsonl"
    proc, port = await _start(
        "--source",
        "replay",
        "--ticks",
        str(SLICE),
        "--speed",
        "60",
        "--state-out",
        str(state),
        "--journal",
        str(journal),
    )
    processes.append(proc)
    ib = IB()
    await ib.connectAsync("127.0.0.1", port, clientId=8, timeout=WAIT)
    try:
        details = await ib.reqContractDetailsAsync(Future("ES", exchange="CME"))
        # the simulator's clock follows the data: September 2013, so ESU3 is the front month
        assert details[0].contract.localSymbol == "ESU3"
        assert (await ib.reqCurrentTimeAsync()).year == 2013
        contract = details[0].contract
        ticker = ib.reqTickByTickData(contract, "AllLast")
        prices: list[float] = []

        def collect(t: Ticker) -> None:
            prices.extend(x.price for x in t.tickByTicks)

        ticker.updateEvent += collect
        await until(ib, lambda: len(prices) >= 20)
        assert all(1630 <= p <= 1650 for p in prices)  # the file's price range
        trade = ib.placeOrder(contract, MarketOrder("BUY", 1))
        await until(ib, lambda: trade.orderStatus.status == "Filled")
    finally:
        ib.disconnect()
    proc.send_signal(signal.SIGTERM)
    assert await asyncio.wait_for(proc.wait(), WAIT) == 0
    saved = json.loads(state.read_text())
    assert len(saved["executions"]) == len(trade.fills) >= 1
    assert saved["front"] == "ESU3"
    lines = [json.loads(x) for x in journal.read_text().splitlines()]
    assert {x["dir"] for x in lines} == {"in", "out"}
    assert any(x["dir"] == "in" and x["fields"][0] == "3" for x in lines)  # our placeOrder
    assert all(x["client"] in (8, None) for x in lines)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (
            "time_ct,price,size\n2013-09-01 17:00:00.083,1640.25,8\n2013-09-01 17:00:01,abc,1\n",
            "line 3",
        ),
        ("time_ct,price,size\n2013-09-01 17:00:00.083,1640.30,8\n", "line 2"),
        ("when,price,size\n", "line 1"),
    ],
    ids=["non-numeric", "off-grid", "bad-header"],
)
async def test_corrupt_replay_file_fails_before_listening(
    tmp_path: Path, content: str, message: str
) -> None:
    bad = tmp_path / "bad.csv.gz"
    bad.write_bytes(gzip.compress(content.encode()))
    code, out, err = await run_ibsim("--source", "replay", "--ticks", str(bad))
    assert code == 2
    assert out == b""  # no port printed: it never listened
    assert message in err.decode()
    assert str(bad) in err.decode()


async def test_bad_scenario_file_is_refused(tmp_path: Path) -> None:
    scenario = tmp_path / "s.toml"
    scenario.write_text('[[fault]]\nat = 1\nkind = "meteor"\n')
    code, out, err = await run_ibsim("--scenario", str(scenario))
    assert (code, out) == (2, b"")
    assert "kind 'meteor'" in err.decode()


async def test_exit_after_stops_by_itself(processes: list[asyncio.subprocess.Process]) -> None:
    proc, port = await _start("--source", "synthetic", "--seed", "3", "--exit-after", "0.5")
    processes.append(proc)
    assert port > 0
    assert await asyncio.wait_for(proc.wait(), WAIT) == 0
