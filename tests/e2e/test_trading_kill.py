"""`kill -9` of the real daemon process between placing a bracket and its fill, then a restart.

The daemon runs as `python -m daemon run` in a child process against an in-test ibsim; the
strategy (`tests.e2e.scripted:Scripted` with `enter_once = 1`) wants one contract long at its
first trusted trade, in both lives of the process. The second life must adopt the working
bracket from the broker and its journal instead of sending another one.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import os
import signal
import sqlite3
import sys
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from ibsim.gateway import Gateway, GatewayConfig
from ibsim.market import ListSource
from tests.e2e.harness import CLIENT, T0, Market, gateway_orders, live, position

ROOT = Path(__file__).resolve().parents[2]
LIFE = 30.0  # bound on anything one life of the daemon is waited for


@pytest.fixture
async def gateway() -> AsyncIterator[Gateway]:
    gw = Gateway(
        GatewayConfig(port=0, client_id_release_delay=0.0),
        ListSource.one_quote(T0),
        speed=math.inf,
    )
    await gw.start()
    yield gw
    await gw.stop()


def write_config(tmp_path: Path, port: int) -> Path:
    config = tmp_path / "kill.toml"
    config.write_text(
        f"""
[ib]
port = {port}
client_id = {CLIENT}
connect_timeout = 5.0
[data]
backfill = false
[trading]
enabled = true
[strategy]
path = "tests.e2e.scripted:Scripted"
[strategy.params]
enter_once = 1
[paths]
state_dir = "{tmp_path / "state"}"
log_dir = "{tmp_path / "logs"}"
[status]
interval_s = 0.05
[metrics]
enabled = false
"""
    )
    return config


async def spawn(config: Path) -> asyncio.subprocess.Process:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return await asyncio.create_subprocess_exec(
        sys.executable, "-m", "daemon", "run", "--config", str(config),
        cwd=ROOT, env=env, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
    )  # fmt: skip


def status(state: Path) -> dict[str, Any]:
    try:
        doc: dict[str, Any] = json.loads((state / "status.json").read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return {}
    return doc


def trading(state: Path) -> dict[str, Any]:
    result: dict[str, Any] = status(state).get("trading") or {}
    return result


async def trade_until(market: Market, done: Callable[[], bool], changed: asyncio.Event) -> None:
    """Keep the market trading until `done()`: each trade gives the daemon a chance to act."""
    async with asyncio.timeout(LIFE):
        while not done():
            changed.clear()
            market.quote(market.bid)
            market.trade()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(changed.wait(), 0.1)


async def test_kill_9_between_place_and_fill_then_restart_adopts_and_never_doubles(
    tmp_path: Path, gateway: Gateway
) -> None:
    market = Market(gateway)
    changed = asyncio.Event()
    gateway.observers.append(lambda _: changed.set())
    config = write_config(tmp_path, gateway.port)
    state = tmp_path / "state"

    first = await spawn(config)
    try:
        await trade_until(market, lambda: len(live(gateway)) == 3, changed)
    finally:
        first.send_signal(signal.SIGKILL)
        assert await asyncio.wait_for(first.wait(), LIFE) == -signal.SIGKILL
    placed = gateway_orders(gateway)
    assert len(placed) == 3  # a whole bracket, working at the broker
    first_life = status(state)["started"]

    def second_life_trading() -> bool:
        """The restarted daemon is reconciled and its strategy has seen trusted trades."""
        doc = status(state)
        return (
            doc.get("started") != first_life
            and doc["trading"].get("reconciled") is True
            and doc.get("data_health") == "OK"
            and doc.get("trades_total", 0) >= 5
        )

    second = await spawn(config)
    try:
        await trade_until(market, second_life_trading, changed)
        market.quote(4999.75, 5000.0)  # now the parent fills
        await trade_until(market, lambda: trading(state).get("position") == 1, changed)
        assert len(gateway_orders(gateway)) == 3  # the second life sent nothing new
        assert position(gateway) == 1
        working = {o["ref"] for o in trading(state)["working_orders"]}
        assert working == {o.request.order_ref for o in live(gateway)}  # stop and target
        assert len(working) == 2
    finally:
        second.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(second.wait(), LIFE) == 0
    assert len(live(gateway)) == 2  # on_shutdown = "keep": the position stays protected
    with sqlite3.connect(state / "journal.sqlite") as db:
        journaled = {row[0] for row in db.execute("SELECT exec_id FROM executions")}
        refs = [row[0] for row in db.execute("SELECT ref FROM orders")]
    assert journaled == {e.exec_id for e in gateway.engine.executions()}
    assert sorted(refs) == sorted(o.request.order_ref for o in placed)
