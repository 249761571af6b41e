"""The front month rolls while the daemon holds a position (issue 15, part 4).

ibsim lists ESZ6 and ESH7; its market starts before the break that ends with ESZ6's roll
(2026-12-09 17:00 CT)
and every print reaches the back month too. Orders carry their contract: after the roll new
orders go to ESH7 while ESZ6's own orders stay where they are, and `instrument.on_roll` says
what happens to ESZ6's position: kept with its bracket, closed, or rolled into ESH7.
"""

from __future__ import annotations

import math
from collections.abc import AsyncIterator, Callable
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import structlog

from daemon.broker import marketdata
from ibsim.contracts import listed_futures
from ibsim.gateway import Gateway, GatewayConfig
from ibsim.market import ListSource
from tests.e2e.harness import CLIENT, Daemon, Market

CENTRAL = ZoneInfo("America/Chicago")
BEFORE_ROLL = datetime(2026, 12, 9, 15, 30, tzinfo=CENTRAL).timestamp()  # ESZ6, before the break
ROLL = datetime(2026, 12, 9, 17, 0, tzinfo=CENTRAL).timestamp()  # the session that trades ESH7


def roll_gateway() -> Gateway:
    """ibsim listing ESZ6 and ESH7 from before ESZ6's roll, every print reaching ESH7 too."""
    return Gateway(
        GatewayConfig(port=0, client_id_release_delay=0.0, back_month_activity=1.0),
        ListSource.one_quote(BEFORE_ROLL),
        speed=math.inf,
    )


@pytest.fixture
async def gateway() -> AsyncIterator[Gateway]:
    gw = roll_gateway()
    await gw.start()
    yield gw
    await gw.stop()


@pytest.fixture(autouse=True)
def _clock_resynced_every_check(monkeypatch: pytest.MonkeyPatch) -> None:
    """The daemon reads the gateway's clock at every check, so that it sees the roll at once."""
    monkeypatch.setattr(marketdata, "CLOCK_RESYNC_S", 0.0)


def con_ids(gw: Gateway) -> tuple[int, int]:
    """(ESZ6, ESH7)."""
    by_name = {spec.local_symbol: spec.con_id for spec in listed_futures(BEFORE_ROLL)}
    return by_name["ESZ6"], by_name["ESH7"]


def held(gw: Gateway, con_id: int) -> int:
    return sum(p.quantity for p in gw.engine.positions() if p.con_id == con_id)


def working(gw: Gateway, con_id: int) -> list[Any]:
    return [o for o in gw.engine.open_orders(CLIENT) if o.request.con_id == con_id]


async def _long_one_then_roll(d: Daemon, market: Market, gw: Gateway) -> None:
    await d.ready(market)
    await d.send(market, d.strategy.intent(1, entry="MKT"))
    old, _ = con_ids(gw)
    await d.until(lambda: d.trader.position == 1 and len(working(gw, old)) == 2)
    market.t = ROLL + 1
    market.quote(market.bid)
    market.trade()
    await d.prodding(lambda: d.sup.market.stats.contract == "ESH7")


async def test_keep_leaves_the_old_bracket_working_and_trades_the_new_month(
    gateway: Gateway, daemon: Callable[..., Daemon]
) -> None:
    market = Market(gateway, start=BEFORE_ROLL)
    d = daemon(gateway, risk={"no_entry_on_roll_day": False})
    d.trader.upkeep.strays.grace_s = 0.0
    await _long_one_then_roll(d, market, gateway)
    old, new = con_ids(gateway)
    runs = d.trader.upkeep.runs
    await d.prodding(lambda: d.trader.upkeep.runs >= runs + 2)
    assert held(gateway, old) == 1
    assert len(working(gateway, old)) == 2  # ESZ6's stop and target still protect it
    assert d.trader.position == 0  # in ESH7, the contract traded now
    status = d.trader.status()
    assert status["held_elsewhere"] == {str(old): 1}  # shown beside the front month's
    assert status["roll"] == {"policy": "keep", "open": None}
    await d.send(market, d.strategy.intent(1, entry="MKT"))
    await d.until(lambda: d.trader.position == 1 and len(working(gateway, new)) == 2)
    assert held(gateway, new) == 1  # the entry went to ESH7, not to ESZ6
    assert held(gateway, old) == 1
    assert len(working(gateway, old)) == 2


def roll_events(d: Daemon) -> list[tuple[str, dict[str, Any]]]:
    return [(e.kind, e.data) for e in d.trader.journal.events() if e.kind.startswith("roll_")]


async def test_close_closes_the_old_month_at_the_roll_and_goes_on_trading(
    gateway: Gateway, daemon: Callable[..., Daemon]
) -> None:
    market = Market(gateway, start=BEFORE_ROLL)
    d = daemon(gateway, instrument={"on_roll": "close"})
    await _long_one_then_roll(d, market, gateway)
    old, new = con_ids(gateway)
    await d.prodding(lambda: d.trader.roller.done == 1)
    assert held(gateway, old) == 0  # sold at market, sized from the broker's 1
    assert working(gateway, old) == []  # its stop and target cancelled first
    assert held(gateway, new) == 0  # nothing opened
    assert working(gateway, new) == []
    kinds = [k for k, _ in roll_events(d)]
    assert kinds == ["roll_started", "roll_closed", "roll_done"]
    (_, started), *_ = roll_events(d)
    assert (started["con_id"], started["position"], started["carry"]) == (old, 1, 0)
    assert d.trader.risk.state.value == "ACTIVE"
    assert d.trader.position == 0


async def test_roll_carries_the_position_into_the_new_month_with_its_bracket(
    gateway: Gateway, daemon: Callable[..., Daemon]
) -> None:
    market = Market(gateway, start=BEFORE_ROLL)
    d = daemon(gateway, instrument={"on_roll": "roll"})  # entries refused on the roll day ...
    await _long_one_then_roll(d, market, gateway)
    old, new = con_ids(gateway)
    await d.prodding(
        lambda: d.trader.roller.done == 1 and held(gateway, new) == 1 == d.trader.position
    )  # ... but not the roll's own opening
    assert held(gateway, old) == 0
    assert working(gateway, old) == []
    stop, target = sorted(working(gateway, new), key=lambda o: o.request.order_type)
    assert (stop.request.order_type.value, target.request.order_type.value) == ("LMT", "STP")
    kinds = [k for k, _ in roll_events(d)]
    assert kinds == ["roll_started", "roll_closed", "roll_opening", "roll_done"]
    (_, started), *_ = roll_events(d)
    assert (started["carry"], started["stop_ticks"], started["target_ticks"]) == (1, 8, 12)
    assert d.trader.risk.state.value == "ACTIVE"


async def test_a_roll_journaled_but_not_carried_out_is_carried_on_at_the_next_start(
    gateway: Gateway, daemon: Callable[..., Daemon]
) -> None:
    """As if killed right after `roll_started`: the next daemon finds the operation open and
    finishes it, once (one close, one opening)."""
    market = Market(gateway, start=BEFORE_ROLL)
    first = daemon(gateway)  # keep: the old month's position and bracket stay
    await _long_one_then_roll(first, market, gateway)
    old, new = con_ids(gateway)
    first.trader.journal.record_event(
        "roll_started", 0.0, op="roll-x", policy="roll", con_id=old, front=new, position=1,
        carry=1, stop_ticks=8, target_ticks=12,
    )  # fmt: skip
    first.sup.request_stop("killed")
    await first.wait_exit()
    second = daemon(gateway, instrument={"on_roll": "roll"})
    await second.ready(market)  # the opening waits for usable data
    await second.prodding(lambda: second.trader.roller.done == 1 and held(gateway, new) == 1)
    assert held(gateway, old) == 0
    assert working(gateway, old) == []
    assert len(working(gateway, new)) == 2
    kinds = [(k, data["op"]) for k, data in roll_events(second)]
    assert kinds == [
        ("roll_started", "roll-x"),
        ("roll_closed", "roll-x"),
        ("roll_opening", "roll-x"),
        ("roll_done", "roll-x"),
    ]


async def test_a_flatten_after_a_kept_roll_closes_the_old_month_too(
    gateway: Gateway, daemon: Callable[..., Daemon]
) -> None:
    market = Market(gateway, start=BEFORE_ROLL)
    d = daemon(gateway)
    await _long_one_then_roll(d, market, gateway)
    old, _ = con_ids(gateway)
    assert d.trader.sync.held_elsewhere() == {old: 1}
    reply = await d.trader.command("flatten", {"reason": "going home"})
    assert reply["ok"], reply
    assert held(gateway, old) == 0
    assert gateway.engine.open_orders(CLIENT) == []
    assert d.trader.sync.held_elsewhere() == {}


async def test_closing_the_old_month_is_confirmed_while_the_new_one_has_orders_working(
    gateway: Gateway, daemon: Callable[..., Daemon]
) -> None:
    market = Market(gateway, start=BEFORE_ROLL)
    d = daemon(gateway, risk={"no_entry_on_roll_day": False})
    await _long_one_then_roll(d, market, gateway)
    old, new = con_ids(gateway)
    await d.send(market, d.strategy.intent(1, offset_ticks=-8))  # a bid far below: it waits
    await d.until(lambda: len(working(gateway, new)) == 3)
    result = await d.trader.closer.close_contract(old, 1, "test")
    assert result.ok, result.message  # ESH7's working bracket is not ESZ6's business
    assert held(gateway, old) == 0
    assert working(gateway, old) == []
    assert len(working(gateway, new)) == 3


async def test_a_roll_whose_close_is_not_confirmed_halts_sends_nothing_and_resume_retries_it(
    gateway: Gateway, daemon: Callable[..., Daemon]
) -> None:
    market = Market(gateway, start=BEFORE_ROLL)
    d = daemon(gateway, instrument={"on_roll": "roll"}, execution={"confirm_timeout_s": 1.5})
    await d.ready(market)
    await d.send(market, d.strategy.intent(1, entry="MKT"))
    old, new = con_ids(gateway)
    await d.until(lambda: d.trader.position == 1 and len(working(gateway, old)) == 2)
    gateway.delay_messages(["order_status", "open_order", "execution", "error"], 3600.0)
    market.t = ROLL + 1
    market.quote(market.bid)
    market.trade()
    await d.prodding(lambda: d.trader.roller.done == 1)
    assert d.trader.risk.state.value == "HALTED"
    assert "roll" in d.trader.risk.reason  # says what is left where
    kinds = [k for k, _ in roll_events(d)]
    assert kinds == ["roll_started", "roll_failed"]
    assert held(gateway, old) == 1  # no closing order on unconfirmed cancels
    assert [o.request.action for o in working(gateway, old)] == []  # its bracket was cancelled
    gateway.release_messages()  # the cancels are heard: the old month is left without them
    await d.prodding(lambda: not [r for r in d.trader.executor.live() if r.con_id == old])
    runs = d.trader.upkeep.runs
    with structlog.testing.capture_logs() as logs:
        await d.prodding(lambda: d.trader.upkeep.runs >= runs + 2)
    assert d.trader.roller.done == 1  # not retried while the alarm stands
    naked = [e for e in logs if e["event"] == "position_unprotected"]
    assert naked  # said every second until a person acts
    assert (naked[0]["con_id"], naked[0]["position"], naked[0]["contracts"]) == (old, 1, 1)
    reply = await d.trader.command("resume", {"reason": "looked at TWS"})
    assert reply["ok"], reply
    await d.prodding(
        lambda: d.trader.roller.done == 2 and held(gateway, new) == 1 == d.trader.position
    )
    assert held(gateway, old) == 0
    assert [k for k, _ in roll_events(d)][-1] == "roll_done"
