"""Fixtures: a real `Gateway` on 127.0.0.1:0 in the test's loop, and real ib_async clients."""

from __future__ import annotations

import asyncio
import math
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
from ib_async import IB, Contract, Future

from ibsim.gateway import Gateway, GatewayConfig
from ibsim.market import ListSource, SyntheticSource
from ibsim.model import QuoteTick

# Friday 2026-11-20 08:30 US/Central: the market is open and ESZ6 is the front month.
START = 1795185000.0
WAIT = 10.0  # upper bound for any awaited condition


def quote(
    bid: float, ask: float, bid_size: int = 10, ask_size: int = 10, t: float = START
) -> QuoteTick:
    return QuoteTick(t, bid, ask, bid_size, ask_size)


GatewayFactory = Callable[..., Awaitable[Gateway]]


@pytest.fixture
async def make_gateway() -> AsyncIterator[GatewayFactory]:
    """Start gateways (synthetic market by default); all are stopped after the test."""
    asyncio.set_event_loop(asyncio.get_running_loop())  # aeventkit schedules on this loop
    started: list[Gateway] = []

    async def make(source: Any = None, speed: float = math.inf, **config: Any) -> Gateway:
        config.setdefault("port", 0)
        config.setdefault("client_id_release_delay", 0.0)
        gw = Gateway(
            GatewayConfig(**config),
            source if source is not None else ListSource([quote(5000.0, 5000.25)]),
            speed=speed,
        )
        await gw.start()
        started.append(gw)
        return gw

    yield make
    for gw in started:
        await gw.stop()


@pytest.fixture
async def connect() -> AsyncIterator[Callable[..., Awaitable[IB]]]:
    """Connect real ib_async clients; all are disconnected after the test."""
    clients: list[IB] = []

    async def _connect(gw: Gateway, client_id: int = 1, **kw: Any) -> IB:
        ib = IB()
        await ib.connectAsync("127.0.0.1", gw.port, clientId=client_id, timeout=WAIT, **kw)
        clients.append(ib)
        return ib

    yield _connect
    for ib in clients:
        ib.disconnect()


async def until(ib: IB, predicate: Callable[[], bool], limit: float = WAIT) -> None:
    """Wait for `predicate` to hold, re-checking after every batch the client processes."""
    async with asyncio.timeout(limit):
        while not predicate():
            await ib.updateEvent


async def front_month(ib: IB) -> Contract:
    """ESZ6, qualified through the gateway (the front month at `START`)."""
    (contract,) = await ib.qualifyContractsAsync(Future("ES", "202612", exchange="CME"))
    return contract


def collect_errors(ib: IB) -> list[tuple[int, int]]:
    """(reqId, code) of every error the client receives from now on."""
    seen: list[tuple[int, int]] = []
    ib.errorEvent += lambda req_id, code, *_: seen.append((req_id, code))
    return seen


def synthetic(seed: int = 7) -> SyntheticSource:
    return SyntheticSource(seed=seed, start_time=START)


async def run_ibsim(*args: str) -> tuple[int | None, bytes, bytes]:
    """`python -m ibsim --port 0 ARGS` until it exits: its code, standard output and error."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "ibsim", "--port", "0", *args,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(proc.communicate(), WAIT)
    return proc.returncode, out, err
