"""Fixtures: a real ibsim `Gateway` on 127.0.0.1:0 in the test's loop, and real ib_async clients."""

from __future__ import annotations

import asyncio
import math
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from ib_async import IB

from ibsim.gateway import Gateway, GatewayConfig
from ibsim.market import ListSource

CENTRAL = ZoneInfo("US/Central")
# Friday 2026-11-20 08:30 CT: RTH has just opened and ESZ6 (last trade 2026-12-18) is the front.
SIM_START = datetime(2026, 11, 20, 8, 30, tzinfo=CENTRAL)
WAIT = 10.0  # upper bound for anything awaited


GatewayFactory = Callable[..., Awaitable[Gateway]]
ClientFactory = Callable[..., Awaitable[IB]]


@pytest.fixture
async def make_gateway() -> AsyncIterator[GatewayFactory]:
    """Start gateways whose simulated clock starts at `start`; all stopped after the test."""
    asyncio.set_event_loop(asyncio.get_running_loop())  # aeventkit schedules on this loop
    started: list[Gateway] = []

    async def make(start: datetime = SIM_START, **config: Any) -> Gateway:
        config.setdefault("port", 0)
        config.setdefault("client_id_release_delay", 0.0)
        gw = Gateway(
            GatewayConfig(**config), ListSource.one_quote(start.timestamp()), speed=math.inf
        )
        await gw.start()
        started.append(gw)
        return gw

    yield make
    for gw in started:
        await gw.stop()


@pytest.fixture
async def connect() -> AsyncIterator[ClientFactory]:
    """Connect real ib_async clients to a gateway; all disconnected after the test."""
    clients: list[IB] = []

    async def _connect(gw: Gateway, client_id: int = 1) -> IB:
        ib = IB()
        await ib.connectAsync("127.0.0.1", gw.port, clientId=client_id, timeout=WAIT)
        clients.append(ib)
        return ib

    yield _connect
    for ib in clients:
        ib.disconnect()
