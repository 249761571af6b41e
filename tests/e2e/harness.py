"""The trading end-to-end harness: the whole daemon against an in-process ibsim, and its fixtures.

`Market` is the test's hand on the gateway's market; `daemon(gw, **sections)` starts a
Supervisor with trading on and the scripted strategy (`tests.e2e.scripted:Scripted`). The
fixtures `gateway` and `daemon` are registered for the whole suite (tests/conftest.py).
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from ib_async import Contract

from daemon.flow.prints import Health
from daemon.runtime.supervisor import Supervisor
from daemon.settings import Settings
from daemon.trading.model import Intent
from ibsim.gateway import Gateway, GatewayConfig
from ibsim.market import ListSource
from ibsim.model import QuoteTick, Side, TradeTick
from tests.daemon.broker.conftest import SIM_START, WAIT
from tests.e2e.scripted import Scripted
from tests.e2e.test_flow_e2e import Changes

T0 = SIM_START.timestamp()
CLIENT = 7
STRATEGY = "tests.e2e.scripted:Scripted"


class Market:
    """The test's hand on the gateway's market: quotes and trades, a tenth of a second apart."""

    def __init__(self, gw: Gateway, start: float = T0) -> None:
        self.gw = gw
        self.t = start
        self.bid = 5000.0

    def _step(self) -> float:
        self.t += 0.1
        self.gw.clock.advance_to(self.t)
        return self.t

    def quote(self, bid: float, ask: float | None = None, size: int = 10) -> None:
        self.bid = bid
        t = self._step()
        self.gw.apply(QuoteTick(t, bid, bid + 0.25 if ask is None else ask, size, size))

    def trade(self, price: float | None = None, size: int = 1, side: Side = Side.BUY) -> None:
        t = self._step()
        self.gw.apply(TradeTick(t, self.bid + 0.25 if price is None else price, size, side))


class Daemon:
    """A running supervisor with trading on, and ways to wait for it."""

    def __init__(self, sup: Supervisor, task: asyncio.Task[int]) -> None:
        self.sup = sup
        self.task = task
        self.changes = Changes(sup)

    @property
    def trader(self) -> Any:
        assert self.sup.trader is not None
        return self.sup.trader

    @property
    def strategy(self) -> Scripted:
        strategy = self.trader.strategy
        assert isinstance(strategy, Scripted)
        return strategy

    async def until(self, predicate: Callable[[], bool], limit: float = WAIT) -> None:
        await self.changes.until(predicate, limit)

    async def prodding(self, predicate: Callable[[], bool], limit: float = WAIT) -> None:
        """Until `predicate`, for changes no socket read announces (the monitor's work): each
        turn asks the gateway the time, whose answer is a read that wakes the next check."""
        async with asyncio.timeout(limit):
            while not predicate():
                await self.sup.client.current_time()

    async def round_trip(self) -> None:
        """One request answered by the gateway: whatever the daemon sent before has been read.
        (A request of its own, keyed by its id: the daemon's clock reads share theirs.)"""
        ask = Contract(secType="FUT", symbol="ES", exchange="CME")
        await asyncio.wait_for(self.sup.client.ib.reqContractDetailsAsync(ask), WAIT)

    async def wait_exit(self, limit: float = WAIT) -> int:
        """The supervisor's exit code, once it ends by itself."""
        return await asyncio.wait_for(self.task, limit)

    async def ready(self, market: Market) -> None:
        """Connected, reconciled, and the data OK: trades flow until the flow says so."""
        await self.until(lambda: self.trader.sync.reconciled and self.sup.market.stats.resubscribes)
        await self.sup.client.current_time()  # the subscriptions have reached the gateway
        market.quote(market.bid)
        for _ in range(3):
            market.trade()
        await self.until(lambda: self.sup.flow.trades >= 3 and self.sup.flow.health is Health.OK)

    async def send(self, market: Market, *intents: Intent) -> None:
        """Queue intents; one trade each lets them out through the strategy."""
        self.strategy.queue.extend(intents)
        for _ in intents:
            market.trade()
        await self.until(lambda: not self.strategy.queue)


def gateway_orders(gw: Gateway) -> list[Any]:
    orders = (gw.engine.order(CLIENT, oid) for oid in range(1, gw.engine.next_order_id(CLIENT)))
    return [o for o in orders if o is not None]


def position(gw: Gateway) -> int:
    return sum(p.quantity for p in gw.engine.positions())


def live(gw: Gateway) -> list[Any]:
    return gw.engine.open_orders(CLIENT)


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


@pytest.fixture
async def daemon(tmp_path: Path) -> AsyncIterator[Callable[..., Daemon]]:
    asyncio.set_event_loop(asyncio.get_running_loop())
    running: list[Daemon] = []

    def start(gw: Gateway, **sections: dict[str, Any]) -> Daemon:
        config: dict[str, Any] = {
            "ib": {"port": gw.port, "client_id": CLIENT, "connect_timeout": 5.0},
            "paths": {"state_dir": str(tmp_path / "state")},
            "status": {"interval_s": 0.05},
            "data": {"backfill": False},
            "trading": {"enabled": True},
            "strategy": {"path": STRATEGY},
            "metrics": {"port": 0},  # served, on a free port (test_metrics scrapes it)
        }
        for name, values in sections.items():
            config[name] = {**config.get(name, {}), **values}
        sup = Supervisor(Settings(**config))
        d = Daemon(sup, asyncio.create_task(sup.run()))
        running.append(d)
        return d

    yield start
    for d in running:
        d.sup.request_stop("test_end")
        await asyncio.wait_for(d.task, WAIT)
