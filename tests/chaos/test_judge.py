"""The chaos judge fails a run when the gateway and the journal disagree."""

from __future__ import annotations

import asyncio
import math
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from ib_async import IB, LimitOrder, MarketOrder

from chaos.judge import PositionWatch, judge
from daemon.trading.journal import Journal
from ibsim.gateway import Gateway, GatewayConfig
from ibsim.market import ListSource
from tests.ibsim.conftest import START, WAIT, front_month, until


@pytest.fixture
async def gateway() -> AsyncIterator[Gateway]:
    asyncio.set_event_loop(asyncio.get_running_loop())
    gw = Gateway(
        GatewayConfig(port=0, client_id_release_delay=0.0),
        ListSource.one_quote(START, bid=5000.0, ask=5000.25),
        speed=math.inf,
    )
    await gw.start()
    yield gw
    await gw.stop()


async def test_a_doubled_order_and_an_unjournaled_fill_fail_the_run(
    gateway: Gateway, tmp_path: Path
) -> None:
    watch = PositionWatch(gateway)
    ib = IB()
    await ib.connectAsync("127.0.0.1", gateway.port, clientId=3, timeout=WAIT)
    try:
        contract = await front_month(ib)
        for _ in range(2):  # the same orderRef sent twice: what a resend after a crash does
            ib.placeOrder(contract, LimitOrder("BUY", 1, 4990.0, orderRef="ofd-1-0001-P"))
        ib.placeOrder(contract, MarketOrder("BUY", 1, orderRef="ofd-1-0002-P"))
        await until(ib, lambda: len(gateway.engine.executions()) == 1)
        await until(ib, lambda: len(gateway.engine.open_orders()) == 2)
    finally:
        ib.disconnect()
    Journal(tmp_path / "journal.sqlite").close()  # a journal that never saw the fill
    checks = {
        c.name: c
        for c in judge(
            gateway, tmp_path / "journal.sqlite", prefix="ofd", max_position=0, watch=watch
        )
    }
    assert (checks["duplicate orders"].value, checks["duplicate orders"].ok) == (1, False)
    assert (checks["lost fills"].value, checks["lost fills"].ok) == (1, False)
    assert not checks["journal executions = ibsim executions"].ok
    assert not checks["final position journal = ibsim"].ok  # journal 0, ibsim 1
    assert (checks["max position"].value, checks["max position"].ok) == (1, False)
    assert checks["peak messages in 1 s"].ok
