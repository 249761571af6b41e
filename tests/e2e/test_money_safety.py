"""Money safety under faults found from outside (issue 13): corrections, fills nobody sent,
absurd fills, another instance's orders, bad intents, a failing strategy.

The whole daemon trades against an in-process ibsim whose faults forge or edit what TWS says;
the gateway's book (orders, booked executions, positions) is the judge.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path

import pytest

from daemon.core.orders import Role, Status
from daemon.trading.model import Intent, TradingState
from ibsim.gateway import Gateway
from ibsim.model import OrderType, Side
from tests.e2e.harness import CLIENT, Daemon, Market, gateway_orders, live, position

PREFIX = "ofd"


async def _long_one(d: Daemon, market: Market, gateway: Gateway) -> None:
    """Ready, then long 1 at market with its stop and target working."""
    await d.ready(market)
    await d.send(market, d.strategy.intent(1, entry="MKT"))
    await d.until(lambda: d.trader.position == 1 and len(live(gateway)) == 2)


async def test_a_corrected_fill_replaces_the_fill_it_corrects(
    gateway: Gateway, daemon: Callable[..., Daemon]
) -> None:
    market = Market(gateway)
    d = daemon(gateway)
    await _long_one(d, market, gateway)
    [fill] = gateway.engine.executions()
    corrected = gateway.correct_execution(price=fill.price + 1.0)
    assert corrected is not None
    assert corrected != fill.exec_id
    journal = d.trader.journal
    await d.until(lambda: journal.execution(corrected) is not None)
    assert d.trader.position == 1 == position(gateway)  # not 2: the correction replaced it
    assert [e.exec_id for e in journal.executions()] == [corrected]
    assert journal.executions()[0].price == fill.price + 1.0
    assert [(new, old.exec_id) for new, old in journal.corrections()] == [(corrected, fill.exec_id)]
    assert d.trader.pnl.ledger.avg_price == fill.price + 1.0
    assert d.trader.risk.state is TradingState.ACTIVE  # a correction is IB's normal business
    reply = await d.trader.command("flatten", {"reason": "test"})
    assert reply["ok"], reply
    assert position(gateway) == 0  # sold 1, not 2: nothing left short
    assert not live(gateway)


@pytest.mark.parametrize("message", ["execution", "status", "open_order"])
async def test_a_message_about_an_order_nobody_journaled_halts_and_counts_nothing(
    gateway: Gateway, daemon: Callable[..., Daemon], message: str
) -> None:
    market = Market(gateway)
    d = daemon(gateway)
    await d.ready(market)
    forged = f"{PREFIX}-20261120-0099-P"
    if message == "execution":
        gateway.inject_execution(
            CLIENT, order_id=999, order_ref=forged, side="BUY", shares=2, price=5000.25
        )
    elif message == "status":
        gateway.inject_order_status(
            CLIENT,
            order_id=999,
            status="Filled",
            filled=2,
            remaining=0,
            avg_fill_price=5000.25,
            perm_id=77_000_001,
        )
    else:
        gateway.inject_open_order(
            CLIENT, order_id=999, order_ref=forged, action="BUY", quantity=8, lmt_price=5000.0
        )
    await d.until(lambda: d.trader.risk.state is TradingState.HALTED)
    assert "the journal has no such order" in d.trader.risk.reason
    assert d.trader.position == 0 == position(gateway)
    assert d.trader.journal.executions() == []
    assert [o.ref for o in d.trader.journal.orders()] == []  # never adopted
    alarms = d.trader.status()["alarms"]
    assert [a["kind"] for a in alarms] == ["unknown_order"]
    await d.send(market, d.strategy.intent(1, entry="MKT"))
    assert gateway_orders(gateway) == []  # halted: nothing goes out until a person resumes


async def test_another_instances_fills_are_never_adopted_nor_flattened(
    gateway: Gateway, daemon: Callable[..., Daemon]
) -> None:
    other = CLIENT + 5  # another instance with the same prefix traded the account before
    for n in (1, 2, 3):
        gateway.place_foreign_order(other, f"{PREFIX}-20261120-000{n}-P", "BUY", 1)
    assert position(gateway) == 3
    market = Market(gateway)
    d = daemon(gateway)  # an empty journal, the same account and prefix
    await d.until(lambda: d.trader.risk.state is TradingState.HALTED and d.trader.sync.mismatches)
    details = [a["detail"] for a in d.trader.status()["alarms"]]
    assert len(details) == 3  # one per order: its fill, status and open order raise one alarm
    assert all("another instance with the same prefix" in detail for detail in details)
    assert d.trader.position is None  # not trusted: strategies see no position
    assert d.trader.journal.executions() == []
    assert (
        "account at the broker 3, this instance's journaled fills 0" in d.trader.sync.mismatches[0]
    )
    d.trader.handle_intent(d.strategy.intent(0, entry="MKT"), market.t, None)  # even so
    await d.round_trip()
    assert gateway_orders(gateway) == []  # nothing sold: not ours to close
    assert position(gateway) == 3


async def test_a_second_instance_with_the_same_prefix_refuses_to_start(
    gateway: Gateway, daemon: Callable[..., Daemon], tmp_path: Path
) -> None:
    market = Market(gateway)
    first = daemon(gateway)
    await first.ready(market)
    second = daemon(
        gateway,
        ib={"client_id": CLIENT + 1},
        paths={"state_dir": str(tmp_path / "second")},
    )
    assert await second.wait_exit() == 78  # EX_CONFIG: systemd does not restart it
    assert first.trader.risk.state is TradingState.ACTIVE
    third = daemon(
        gateway,
        ib={"client_id": CLIENT + 2},
        paths={"state_dir": str(tmp_path / "third")},
        execution={"order_ref_prefix": "ofd2"},
    )
    await third.until(lambda: third.trader.sync.reconciled)  # its own prefix: welcome


@pytest.mark.parametrize(
    "kind", ["price_zero", "price_negative", "price_far", "shares_huge", "shares_over_order"]
)
async def test_an_absurd_fill_is_refused_and_the_true_one_counts_after_a_reconnect(
    gateway: Gateway, daemon: Callable[..., Daemon], kind: str
) -> None:
    market = Market(gateway)
    d = daemon(gateway)
    await d.ready(market)
    gateway.corrupt_next_fills(kind)
    await d.send(market, d.strategy.intent(1, entry="MKT"))
    await d.until(lambda: d.trader.risk.state is TradingState.HALTED)
    assert d.trader.risk.reason.startswith("broker anomaly: execution")
    assert d.trader.journal.executions() == []  # nothing absurd is journaled, ever
    assert position(gateway) == 1
    assert d.trader.status()["account_position"] == 1  # shown beside ours
    reconnects = d.sup.conn.status.reconnect_count
    gateway.drop_clients()
    await d.until(
        lambda: d.sup.conn.status.reconnect_count > reconnects and d.trader.sync.reconciled is True
    )
    [row] = d.trader.journal.executions()  # the broker's true fill, under the same execId
    [booked] = gateway.engine.booked_executions()
    assert (row.exec_id, row.shares, row.price) == (booked.exec_id, 1, booked.price)
    assert d.trader.position == 1
    assert len(live(gateway)) == 2  # the bracket kept protecting the broker's position
    assert d.trader.risk.state is TradingState.HALTED  # until a person has looked


async def test_resuming_after_an_absurd_fill_asks_the_broker_again_first(
    gateway: Gateway, daemon: Callable[..., Daemon]
) -> None:
    market = Market(gateway)
    d = daemon(gateway)
    await d.ready(market)
    gateway.corrupt_next_fills("price_zero")
    await d.send(market, d.strategy.intent(1, entry="MKT"))
    await d.until(lambda: d.trader.risk.state is TradingState.HALTED)
    assert d.trader.position == 0  # the refused fill is not counted ...
    reply = await d.trader.command("resume", {"reason": "looked at TWS"})
    assert reply["ok"], reply
    assert d.trader.position == 1 == position(gateway)  # ... its true version is
    [row] = d.trader.journal.executions()
    assert row.price > 0
    assert d.trader.risk.state is TradingState.ACTIVE


async def test_an_intent_with_a_stop_or_target_on_the_wrong_side_is_refused(
    gateway: Gateway, daemon: Callable[..., Daemon]
) -> None:
    market = Market(gateway)
    d = daemon(gateway)
    await d.ready(market)
    for bad in (Intent(1, 0, 4), Intent(1, 4, -4), Intent(1.5, 4, 4)):  # type: ignore[arg-type]
        await d.send(market, bad)
    assert gateway_orders(gateway) == []
    assert d.trader.risk.refusals["invalid_intent"] == 3
    assert d.trader.risk.state is TradingState.ACTIVE


async def test_a_strategy_that_raises_halts_trading_and_keeps_the_bracket(
    gateway: Gateway, daemon: Callable[..., Daemon]
) -> None:
    market = Market(gateway)
    d = daemon(gateway)
    await _long_one(d, market, gateway)
    d.strategy.error = RuntimeError("boom")
    for _ in range(5):
        market.trade()
    await d.until(lambda: d.trader.risk.state is TradingState.HALTED)
    await d.until(lambda: d.sup.flow.trades >= 9)
    assert d.strategy.calls == 1  # logged once, not called again until resumed
    assert "RuntimeError: boom" in d.trader.risk.reason
    assert d.trader.status()["strategy_error"] == "on_trade: RuntimeError: boom"
    assert not d.task.done()  # alive
    assert {o.request.order_type for o in live(gateway)} == {OrderType.STP, OrderType.LMT}
    assert position(gateway) == 1
    d.strategy.error = None
    reply = await d.trader.command("resume", {"reason": "fixed"})
    assert reply["ok"]
    await d.send(market, d.strategy.intent(0, entry="MKT"))
    await d.until(lambda: d.trader.position == 0)
    assert position(gateway) == 0
    sells = [o for o in gateway_orders(gateway) if o.request.action is Side.SELL]
    assert sells
    assert all(o.request.total_quantity == 1 for o in sells)


async def test_another_instances_order_under_our_very_ref_never_rebinds_ours(
    gateway: Gateway, daemon: Callable[..., Daemon]
) -> None:
    market = Market(gateway)
    d = daemon(gateway)
    await _long_one(d, market, gateway)
    ours = d.trader.journal.order(f"{PREFIX}-20261120-0001-P")
    assert ours is not None
    assert ours.perm_id
    # Another instance with the same prefix counts its intents the same way: same ref, today.
    gateway.place_foreign_order(CLIENT + 5, ours.ref, "BUY", 1)
    reconnects = d.sup.conn.status.reconnect_count
    gateway.drop_clients()  # the next connect sees every client's orders and the position
    await d.until(
        lambda: (
            d.sup.conn.status.reconnect_count > reconnects
            and d.trader.risk.state is TradingState.HALTED
        )
    )
    again = d.trader.journal.order(ours.ref)
    assert again is not None
    assert (again.client_id, again.order_id, again.perm_id) == (
        ours.client_id, ours.order_id, ours.perm_id,
    )  # fmt: skip
    assert len(d.trader.journal.executions()) == 1  # its fill is not ours
    details = " ".join(a["detail"] for a in d.trader.status()["alarms"])
    assert "another instance with the same prefix" in details
    assert position(gateway) == 2


async def test_an_alarm_cancels_the_entries_not_filled_yet(
    gateway: Gateway, daemon: Callable[..., Daemon]
) -> None:
    market = Market(gateway)
    d = daemon(gateway)
    await d.ready(market)
    await d.send(market, d.strategy.intent(1, offset_ticks=-4))  # rests below the bid
    await d.until(lambda: len(live(gateway)) == 3)
    gateway.inject_order_status(
        CLIENT, order_id=999, status="Filled", filled=1, remaining=0, avg_fill_price=5000.0,
        perm_id=77_000_002,
    )  # fmt: skip
    await d.until(lambda: d.trader.risk.state is TradingState.HALTED and not live(gateway))
    assert position(gateway) == 0  # the entry can no longer fill while nobody trades


async def test_a_fill_nobody_told_us_of_is_found_by_asking_the_broker_again(
    gateway: Gateway, daemon: Callable[..., Daemon]
) -> None:
    """The chaos run's finding: every answer about an entry withheld, so only the broker's
    position says it filled. A cancel of it is answered 10148 ("state: Filled"): never taken
    as a refusal of the order (it would leave the entry's 1 lot out of every count, and the next
    entry would make 2); and once our position and the broker's have differed past the grace,
    the broker is asked again and its executions decide."""
    market = Market(gateway)
    d = daemon(gateway)
    await d.ready(market)
    watch = d.trader.position_watch
    watch.grace_s = math.inf  # first, what happens while the two differ
    answers = ["execution", "order_status", "open_order", "commission_report"]
    gateway.delay_messages(answers, 3600.0, withhold=True)
    await d.send(market, d.strategy.intent(1, entry="MKT"))
    await d.prodding(lambda: d.trader.sync.broker_position() == 1)
    assert position(gateway) == 1
    assert d.trader.position == 0  # not one word about the fill reached us
    gateway.release_messages()  # what was withheld is gone
    sent = len(gateway_orders(gateway))
    await d.send(market, d.strategy.intent(0))  # cancels the entry: too late, it filled
    await d.until(lambda: bool(d.trader.journal.events("too_late")))
    [late] = d.trader.journal.events("too_late")
    assert late.data["code"] == 10148
    [entry] = [r for r in d.trader.executor.orders.values() if r.role is Role.ENTRY]
    assert entry.status is not Status.INACTIVE  # the broker has it: not refused
    await d.send(market, d.strategy.intent(1, entry="MKT"), d.strategy.intent(-1, entry="MKT"))
    await d.round_trip()  # anything sent for them has reached the gateway
    assert len(gateway_orders(gateway)) == sent  # nothing sized from our count of 0
    assert position(gateway) == 1
    watch.grace_s = 0.0
    await d.prodding(lambda: watch.rechecks == 1 and d.trader.sync.reconciled)
    [differs] = d.trader.journal.events("position_differs")
    assert (differs.data["ours"], differs.data["broker"]) == (0, 1)
    assert d.trader.position == 1 == position(gateway)  # the broker's executions decided
    [row] = d.trader.journal.executions()
    [booked] = gateway.engine.booked_executions()
    assert row.exec_id == booked.exec_id
    assert d.trader.risk.state is TradingState.ACTIVE  # found, accounted for: no person needed


async def test_no_entry_is_sized_from_a_position_the_broker_does_not_confirm(
    gateway: Gateway, daemon: Callable[..., Daemon]
) -> None:
    """The entry's executions withheld, its statuses not: filled by the broker's word, 0 by our
    count of executions. The next entry would make the broker's position 2: refused."""
    market = Market(gateway)
    d = daemon(gateway, risk={"max_position": 2})
    d.trader.position_watch.grace_s = math.inf
    await d.ready(market)
    gateway.delay_messages(["execution", "commission_report"], 3600.0, withhold=True)
    await d.send(market, d.strategy.intent(1, entry="MKT"))
    await d.prodding(
        lambda: d.trader.sync.broker_position() == 1 and len(d.trader.executor.live()) == 2
    )
    assert d.trader.position == 0
    sent = len(gateway_orders(gateway))
    await d.send(market, d.strategy.intent(1, entry="MKT"))
    await d.round_trip()
    assert d.trader.risk.refusals["position_unconfirmed"] == 1
    assert len(gateway_orders(gateway)) == sent
    assert position(gateway) == 1
