"""Contract details from a real ibsim gateway through a real ib_async client."""

from __future__ import annotations

import asyncio
from datetime import datetime

import pytest

from daemon.broker.contracts import (
    NoContractError,
    SessionCalendar,
    next_after,
    select_front,
)
from daemon.broker.ib.contracts import fetch_future_details
from tests.daemon.broker.conftest import CENTRAL, SIM_START, WAIT, ClientFactory, GatewayFactory


async def test_front_month_and_hours_from_the_gateway(
    make_gateway: GatewayFactory, connect: ClientFactory
) -> None:
    ib = await connect(await make_gateway(SIM_START))
    async with asyncio.timeout(WAIT):
        details = await fetch_future_details(ib, "ES", "CME", "USD")

    assert [cd.contract.localSymbol for cd in details if cd.contract] == [
        "ESZ6", "ESH7", "ESM7", "ESU7"
    ]  # fmt: skip
    front = select_front(details, SIM_START)
    assert front.contract is not None
    assert front.contract.localSymbol == "ESZ6"
    assert front.contract.lastTradeDateOrContractMonth == "20261218"
    following = next_after(details, front)
    assert following is not None
    assert following.contract is not None
    assert following.contract.localSymbol == "ESH7"

    calendar = SessionCalendar.from_details(front)
    assert calendar.is_open(SIM_START)
    assert calendar.is_liquid(SIM_START)
    assert calendar.session_at(SIM_START) == (
        datetime(2026, 11, 19, 17, 0, tzinfo=CENTRAL),
        datetime(2026, 11, 20, 16, 0, tzinfo=CENTRAL),
    )
    assert calendar.next_close(SIM_START) == datetime(2026, 11, 20, 16, 0, tzinfo=CENTRAL)
    # The weekend, then Thanksgiving 2026-11-26 closing at 12:00.
    saturday = datetime(2026, 11, 21, 12, 0, tzinfo=CENTRAL)
    assert not calendar.is_open(saturday)
    assert calendar.next_open(saturday) == datetime(2026, 11, 22, 17, 0, tzinfo=CENTRAL)
    thanksgiving = datetime(2026, 11, 26, 9, 0, tzinfo=CENTRAL)
    assert calendar.next_close(thanksgiving) == datetime(2026, 11, 26, 12, 0, tzinfo=CENTRAL)


async def test_after_the_roll_the_gateway_listing_gives_the_next_contract(
    make_gateway: GatewayFactory, connect: ClientFactory
) -> None:
    rolled = datetime(2026, 12, 10, 8, 30, tzinfo=CENTRAL)
    ib = await connect(await make_gateway(rolled))
    async with asyncio.timeout(WAIT):
        details = await fetch_future_details(ib, "ES", "CME", "USD")
    assert len(details) == 4
    front = select_front(details, rolled)
    assert front.contract is not None
    assert front.contract.localSymbol == "ESH7"
    assert SessionCalendar.from_details(front).is_liquid(rolled)


async def test_unknown_symbol_is_a_clear_error(
    make_gateway: GatewayFactory, connect: ClientFactory
) -> None:
    ib = await connect(await make_gateway())
    async with asyncio.timeout(WAIT):
        with pytest.raises(NoContractError, match="FUT ZZ on CME in USD"):
            await fetch_future_details(ib, "ZZ", "CME", "USD")
