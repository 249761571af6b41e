"""Trading end to end: the whole daemon (strategy → risk → execution → journal) against ibsim.

The strategy is `tests.e2e.scripted:Scripted`, loaded by import path like any other: the test
queues intents and each accepted trade lets one through, so an order only ever leaves the
daemon the way it would in production. What the gateway's matching engine did (orders,
executions, positions) is the judge; the daemon's journal must agree with it.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import structlog

from daemon.core.orders import Role
from daemon.trading.model import TradingState
from ibsim.gateway import Gateway, GatewayConfig
from ibsim.journal import Journal as WireJournal
from ibsim.market import ListSource
from ibsim.model import OrderStatus, OrderType, Side
from tests.daemon.broker.conftest import WAIT
from tests.e2e.harness import (
    CLIENT,
    T0,
    Daemon,
    Market,
    gateway_orders,
    live,
    position,
)


async def test_entry_is_a_complete_bracket_and_stop_and_target_cancel_each_other(
    gateway: Gateway, daemon: Callable[..., Daemon]
) -> None:
    market = Market(gateway)
    d = daemon(gateway)
    await d.ready(market)
    await d.send(market, d.strategy.intent(1, reason="test"))
    await d.until(lambda: len(live(gateway)) == 3)
    parent, target, stop = gateway_orders(gateway)
    assert (parent.request.action, parent.request.order_type) == (Side.BUY, OrderType.LMT)
    assert parent.request.lmt_price == 5000.0  # joins the bid
    assert (stop.request.order_type, stop.request.aux_price) == (OrderType.STP, 4998.0)
    assert (target.request.order_type, target.request.lmt_price) == (OrderType.LMT, 5003.0)
    for child in (stop, target):
        assert child.request.action is Side.SELL
        assert child.request.parent_id == parent.request.order_id
        assert child.request.oca_group == stop.request.oca_group != ""
    refs = {o.request.order_ref for o in (parent, target, stop)}
    assert len(refs) == 3
    assert all(r.startswith("ofd-") for r in refs)
    assert stop.status is OrderStatus.PRE_SUBMITTED  # children wait for the parent's fill

    market.quote(4999.75, 5000.0)  # the ask comes down to the parent's limit: filled
    await d.until(lambda: d.trader.position == 1 and stop.status is OrderStatus.SUBMITTED)
    assert position(gateway) == 1
    await d.until(lambda: d.trader.unprotected() == 0)  # the stop covers the position
    market.quote(5003.0, 5003.25)
    market.trade(5003.25, 5)  # through the target
    await d.until(lambda: d.trader.position == 0 and not d.trader.executor.live())
    assert position(gateway) == 0
    assert target.status is OrderStatus.FILLED
    assert stop.status is OrderStatus.CANCELLED
    journal = d.trader.journal
    assert {e.exec_id for e in journal.executions()} == {
        e.exec_id for e in gateway.engine.executions()
    }
    assert d.trader.pnl.realized == pytest.approx(3.0 * 50)


async def test_a_burst_of_signals_never_exceeds_the_max_position(
    gateway: Gateway, daemon: Callable[..., Daemon]
) -> None:
    market = Market(gateway)
    risk = {
        "max_position": 2,
        "max_order_size": 5,
        "max_orders_per_second": 100,
        "max_orders_per_minute": 1000,
    }
    d = daemon(gateway, risk=risk)
    await d.ready(market)
    burst = [d.strategy.intent(t, entry="MKT") for t in (1, 2, 3, 4, 5, 3, 5)]
    await d.send(market, *burst)
    market.quote(5000.0, 5000.25, size=50)
    await d.until(lambda: d.trader.position == 2)
    entries = [o for o in gateway_orders(gateway) if not o.request.parent_id]
    assert sum(o.request.total_quantity for o in entries) == 2
    assert max(abs(p.quantity) for p in gateway.engine.positions()) == 2
    assert d.trader.risk.refusals["max_position"] >= 1


async def test_daily_loss_limit_halts_and_cancels_working_entries(
    gateway: Gateway, daemon: Callable[..., Daemon]
) -> None:
    market = Market(gateway)
    d = daemon(gateway, risk={"daily_loss_limit": 150.0})
    await d.ready(market)
    await d.send(market, d.strategy.intent(1, entry="MKT", stop_ticks=40))
    await d.until(lambda: d.trader.position == 1)
    await d.send(market, d.strategy.intent(2, offset_ticks=-4))
    await d.until(lambda: len(live(gateway)) == 5)  # 2 children + a second bracket
    market.quote(4996.0, 4996.25)  # 4 points down on one contract: -200 USD
    market.trade(4996.0, side=Side.SELL)
    await d.until(lambda: d.trader.risk.state is TradingState.HALTED)
    assert "daily loss limit" in d.trader.risk.reason
    await d.until(lambda: len(live(gateway)) == 2)
    kept = {o.request.order_type for o in live(gateway)}
    assert kept == {OrderType.STP, OrderType.LMT}  # the position keeps its bracket
    assert position(gateway) == 1
    await d.send(market, d.strategy.intent(2))
    assert len(gateway_orders(gateway)) == 6  # HALTED: nothing new went out


async def test_socket_drop_between_place_and_fill_recovers_the_fill_without_duplicates(
    gateway: Gateway, daemon: Callable[..., Daemon]
) -> None:
    market = Market(gateway)
    d = daemon(gateway)
    await d.ready(market)
    await d.send(market, d.strategy.intent(1))
    await d.until(lambda: len(live(gateway)) == 3)
    reconnects = d.sup.conn.status.reconnect_count
    gateway.drop_clients(reset=True)
    await d.until(lambda: not d.sup.conn.ready)
    market.quote(4999.75, 5000.0)  # filled while the daemon is away
    assert position(gateway) == 1
    await d.until(
        lambda: d.sup.conn.status.reconnect_count > reconnects and d.trader.sync.reconciled
    )
    assert d.trader.sync.last_reconcile["recovered_fills"] == 1
    assert d.trader.position == 1
    market.trade()
    market.trade()
    await d.round_trip()
    assert len(gateway_orders(gateway)) == 3  # nothing was sent again
    assert [e.exec_id for e in d.trader.journal.executions()] == [
        e.exec_id for e in gateway.engine.executions()
    ]


async def test_a_storm_of_rejects_halts_after_n_without_a_retry_loop(
    gateway: Gateway, daemon: Callable[..., Daemon]
) -> None:
    market = Market(gateway)
    d = daemon(gateway, risk={"max_consecutive_rejects": 3})
    await d.ready(market)
    gateway.reject_next_orders(201)
    executor = d.trader.executor
    for _ in range(10):  # the strategy keeps asking; each attempt is refused by the gateway
        if d.trader.risk.state is TradingState.HALTED:
            break
        await d.send(market, d.strategy.intent(1))
        await d.until(lambda: not executor.live())
    assert d.trader.risk.state is TradingState.HALTED
    assert "3" in d.trader.risk.reason
    sent = len(gateway_orders(gateway))
    for _ in range(5):
        market.trade()
    await d.round_trip()
    assert len(gateway_orders(gateway)) == sent <= 3 * 3
    assert position(gateway) == 0


async def test_pacing_never_exceeds_45_messages_in_any_second(
    tmp_path: Path, daemon: Callable[..., Daemon]
) -> None:
    wire = tmp_path / "wire.jsonl"
    journal = WireJournal(wire)
    gw = Gateway(
        GatewayConfig(port=0, client_id_release_delay=0.0),
        ListSource.one_quote(T0),
        speed=math.inf,
        journal=journal,
    )
    await gw.start()
    try:
        market = Market(gw)
        unlimited = {
            "max_position": 100,
            "max_order_size": 100,
            "max_working_orders": 1000,
            "max_orders_per_second": 1000,
            "max_orders_per_minute": 10000,
            "efficiency_grace_messages": 100000,
        }
        d = daemon(gw, risk=unlimited)
        await d.ready(market)
        intents = [d.strategy.intent(n, offset_ticks=-8) for n in range(1, 31)]
        await d.send(market, *intents)
        await d.until(lambda: len(live(gw)) == 90, limit=WAIT * 2)
    finally:
        await gw.stop()
        journal.close()
    import json

    times = [
        e["t"]
        for e in map(json.loads, wire.read_text().splitlines())
        if e["dir"] == "in" and e["client"] == CLIENT
    ]
    assert len(times) > 90
    worst = max(sum(1 for u in times[i:] if u - t < 1.0) for i, t in enumerate(times))
    assert worst <= 45


async def test_halted_then_flatten_leaves_flat_with_no_working_orders(
    gateway: Gateway, daemon: Callable[..., Daemon]
) -> None:
    market = Market(gateway)
    d = daemon(gateway)
    await d.ready(market)
    await d.send(market, d.strategy.intent(2, entry="MKT"))
    await d.until(lambda: d.trader.position == 2 and len(live(gateway)) == 2)
    from daemon.runtime.control import send_command

    sock = d.sup.control.path
    halted = await asyncio.wait_for(asyncio.to_thread(send_command, sock, "halt", "test"), WAIT)
    assert halted["ok"]
    assert d.trader.risk.state is TradingState.HALTED
    flat = await asyncio.wait_for(asyncio.to_thread(send_command, sock, "flatten", "test"), WAIT)
    assert flat["ok"], flat
    assert position(gateway) == 0
    assert live(gateway) == []
    assert d.trader.risk.state is TradingState.HALTED
    roles = [r.role for r in d.trader.executor.orders.values()]
    assert roles.count(Role.FLATTEN) == 1


async def test_a_position_the_journal_cannot_explain_halts_and_resume_adopts_it(
    gateway: Gateway, daemon: Callable[..., Daemon]
) -> None:
    from ib_async import IB, MarketOrder

    market = Market(gateway)
    d = daemon(gateway)
    await d.ready(market)
    other = IB()  # someone trading the same account by hand, from another client id
    await other.connectAsync("127.0.0.1", gateway.port, clientId=CLIENT + 1, timeout=WAIT)
    try:
        assert d.sup.market.contract is not None
        other.placeOrder(d.sup.market.contract, MarketOrder("BUY", 1))
        await other.reqCurrentTimeAsync()
    finally:
        other.disconnect()
    assert position(gateway) == 1
    reconnects = d.sup.conn.status.reconnect_count
    gateway.drop_clients()
    await d.until(
        lambda: (
            d.sup.conn.status.reconnect_count > reconnects
            and d.trader.risk.state is TradingState.HALTED
        )
    )
    assert d.trader.position is None  # not trusted: strategies see no position
    assert d.trader.sync.mismatches == [
        f"position in ESZ6 (conId {d.sup.market.contract.conId}): account at the broker 1, "
        "this instance's journaled fills 0"
    ]
    d.trader.handle_intent(d.strategy.intent(1), market.t, None)  # even if a strategy insisted
    await d.round_trip()
    assert len(gateway_orders(gateway)) == 0  # nothing is sent while it does not add up
    reply = await d.trader.command("resume", {"reason": "checked: my manual trade"})
    assert reply["ok"]
    assert d.trader.position == 1  # the broker's word, remembered as an adjustment
    assert d.trader.unprotected() == 1  # a manual position has no stop: status says so
    kinds = [e.kind for e in d.trader.journal.events()]
    assert "mismatch" in kinds
    assert "adopt_position" in kinds


@pytest.mark.parametrize("policy", ["keep", "cancel_entries", "flatten"])
async def test_sigterm_follows_the_shutdown_policy(
    gateway: Gateway, daemon: Callable[..., Daemon], policy: str
) -> None:
    market = Market(gateway)
    d = daemon(gateway, trading={"enabled": True, "on_shutdown": policy}, risk={"max_position": 3})
    await d.ready(market)
    await d.send(market, d.strategy.intent(1, entry="MKT"))
    await d.until(lambda: d.trader.position == 1)
    await d.send(market, d.strategy.intent(2, offset_ticks=-4))  # a resting entry
    await d.until(lambda: len(live(gateway)) == 5)
    d.sup.request_stop("SIGTERM")
    assert await asyncio.wait_for(d.task, WAIT) == 0
    types = sorted(o.request.order_type.value for o in live(gateway))
    expected = {
        "keep": (1, ["LMT", "LMT", "LMT", "STP", "STP"]),
        "cancel_entries": (1, ["LMT", "STP"]),
        "flatten": (0, []),
    }[policy]
    assert (position(gateway), types) == expected


async def test_once_the_shutdown_policy_has_run_the_operators_commands_are_refused(
    gateway: Gateway, daemon: Callable[..., Daemon]
) -> None:
    d = daemon(gateway)
    await d.until(lambda: d.trader.sync.reconciled)
    d.sup.request_stop("SIGTERM")
    assert await d.wait_exit() == 0
    reply = await d.sup._command("flatten", {"reason": "too late"})  # as the control socket would
    assert reply == {"ok": False, "error": "orderflowd is stopping: its shutdown policy has run"}


async def test_an_exit_moves_the_target_once_however_often_it_is_asked(
    gateway: Gateway, daemon: Callable[..., Daemon]
) -> None:
    market = Market(gateway)
    d = daemon(gateway)
    await d.ready(market)
    await d.send(market, d.strategy.intent(1, entry="MKT"))
    await d.until(lambda: d.trader.position == 1 and len(live(gateway)) == 2)
    sent = d.trader.executor.messages_sent
    market.quote(5001.0, 5001.25, size=0)  # nobody on the bid: the moved target must wait
    await d.send(market, *(d.strategy.intent(0) for _ in range(3)))
    await d.round_trip()
    assert d.trader.executor.messages_sent == sent + 1  # one modify, not three
    target = next(o for o in live(gateway) if o.request.order_type is OrderType.LMT)
    assert target.request.lmt_price == 5000.5  # the bid, two ticks through
    market.quote(5000.75, 5001.0)
    await d.until(lambda: d.trader.position == 0 and not live(gateway))


async def test_orders_journaled_but_never_sent_are_abandoned_not_sent(
    tmp_path: Path, gateway: Gateway, daemon: Callable[..., Daemon]
) -> None:
    from daemon.core.orders import Order, OrderType, Role, Side
    from daemon.trading.journal import Journal

    # The previous life died between the journal write and the send.
    with Journal(tmp_path / "state" / "journal.sqlite") as journal:
        ref = "ofd-20261120-0001"
        journal.record_intent(
            ref, time=T0, day="2026-11-20", target=1, entry="LMT", offset_ticks=0,
            stop_ticks=8, target_ticks=12, reason="before the crash",
        )  # fmt: skip
        common = {"client_id": CLIENT, "created": T0, "intent_ref": ref, "quantity": 1}
        journal.record_orders(
            [
                Order(ref=f"{ref}-P", role=Role.ENTRY, action=Side.BUY, order_type=OrderType.LMT,
                         order_id=1, lmt_price=5000.0, **common),
                Order(ref=f"{ref}-T", role=Role.TARGET, action=Side.SELL, order_type=OrderType.LMT,
                         order_id=2, parent_ref=f"{ref}-P", lmt_price=5003.0, **common),
                Order(ref=f"{ref}-S", role=Role.STOP, action=Side.SELL, order_type=OrderType.STP,
                         order_id=3, parent_ref=f"{ref}-P", aux_price=4998.0, **common),
            ]
        )  # fmt: skip
    market = Market(gateway)
    d = daemon(gateway)
    await d.ready(market)
    assert d.trader.sync.last_reconcile["abandoned"] == [f"{ref}-P", f"{ref}-T", f"{ref}-S"]
    assert d.trader.sync.last_reconcile["ok"]
    assert d.trader.journal.intent(ref).status == "abandoned"
    assert d.trader.working_entries() == 0
    assert gateway_orders(gateway) == []  # nothing was re-sent on the old intent's behalf
    await d.send(market, d.strategy.intent(1))  # and the strategy may trade again
    await d.until(lambda: len(live(gateway)) == 3)


async def test_reversing_a_working_entry_waits_for_its_cancel_then_enters_only_the_target(
    gateway: Gateway, daemon: Callable[..., Daemon]
) -> None:
    market = Market(gateway)
    d = daemon(gateway)
    await d.ready(market)
    await d.send(market, d.strategy.intent(1, offset_ticks=-8))  # a buy resting below
    await d.until(lambda: len(live(gateway)) == 3)
    await d.send(market, d.strategy.intent(-1, offset_ticks=-8))

    def parents(action: str) -> list[Any]:
        return [
            o
            for o in gateway_orders(gateway)
            if not o.request.parent_id and o.request.action == action
        ]

    await d.until(lambda: bool(parents("SELL")))
    # Sized from the confirmed state (the buy is cancelled): -1, not -1 minus a buy that
    # might still have filled (a SELL 2 would end at -2 whenever the cancel succeeds).
    assert [o.request.total_quantity for o in parents("SELL")] == [1]
    assert [o.status for o in parents("BUY")] == [OrderStatus.CANCELLED]
    assert position(gateway) == 0


async def test_a_stop_whose_position_was_closed_otherwise_is_cancelled_not_left_working(
    gateway: Gateway, daemon: Callable[..., Daemon]
) -> None:
    market = Market(gateway)
    d = daemon(gateway)
    await d.ready(market)
    placed = 0

    def reject_the_target(event: str) -> None:  # the order after the parent is its target
        nonlocal placed
        if event == "order":
            placed += 1
            if placed == 1:
                gateway.reject_next_orders(1)

    gateway.observers.append(reject_the_target)
    await d.send(market, d.strategy.intent(1, entry="MKT"))
    await d.until(lambda: d.trader.position == 1)  # parent and stop went out, the target not
    gateway.observers.remove(reject_the_target)
    assert [o.request.order_type for o in live(gateway)] == [OrderType.STP]
    await d.send(market, d.strategy.intent(0))  # no target to move: an exit order closes it
    await d.until(lambda: position(gateway) == 0)
    await d.until(lambda: not live(gateway))  # the stop would have opened a short when hit
    assert [e.kind for e in d.trader.journal.events("stray_cancel")] == ["stray_cancel"]


async def test_a_rejected_exit_of_a_reversal_is_not_retried_and_the_daemon_keeps_running(
    gateway: Gateway, daemon: Callable[..., Daemon]
) -> None:
    market = Market(gateway)
    d = daemon(gateway)
    await d.ready(market)
    placed = 0

    def reject_the_target(event: str) -> None:
        nonlocal placed
        if event == "order":
            placed += 1
            if placed == 1:
                gateway.reject_next_orders(1)

    gateway.observers.append(reject_the_target)
    await d.send(market, d.strategy.intent(1, entry="MKT"))
    await d.until(lambda: d.trader.position == 1)
    gateway.observers.remove(reject_the_target)
    gateway.reject_next_orders(1)  # the exit order of the reversal
    await d.send(market, d.strategy.intent(-1))

    def exits() -> list[Any]:
        return [o for o in gateway_orders(gateway) if o.request.order_ref.endswith("-X")]

    await d.until(lambda: len(exits()) == 1 and exits()[0].status is OrderStatus.INACTIVE)
    ref = exits()[0].request.order_ref.removesuffix("-X")
    await d.until(lambda: d.trader.journal.intent(ref).status == "done")
    for _ in range(5):  # trades and monitor ticks: nothing is sent again
        market.trade()
    await d.until(lambda: d.sup.flow.trades >= 8)
    assert len(exits()) == 1
    assert not d.task.done()  # it used to die on the second exit order's duplicate ref
    assert position(gateway) == 1


async def test_a_fill_recovered_at_reconnect_counts_for_its_order_so_the_exit_moves_the_target(
    gateway: Gateway, daemon: Callable[..., Daemon]
) -> None:
    market = Market(gateway)
    d = daemon(gateway)
    await d.ready(market)
    await d.send(market, d.strategy.intent(1))
    await d.until(lambda: len(live(gateway)) == 3)
    gateway.drop_clients(reset=True)
    await d.until(lambda: not d.sup.conn.ready)
    market.quote(4999.75, 5000.0)  # the parent fills while the daemon is away
    await d.until(lambda: d.trader.sync.reconciled and d.trader.position == 1)
    parent = next(r for r in d.trader.executor.orders.values() if r.role is Role.ENTRY)
    assert (parent.status, parent.filled) == ("Filled", 1)
    await d.send(market, d.strategy.intent(0))
    await d.until(lambda: position(gateway) == 0 and not live(gateway))
    refs = [o.request.order_ref for o in gateway_orders(gateway)]
    assert not [ref for ref in refs if ref.endswith("-X")]  # the target was moved, as designed


async def test_finished_brackets_leave_memory_and_a_later_word_about_them_finds_the_journal(
    gateway: Gateway, daemon: Callable[..., Daemon]
) -> None:
    market = Market(gateway)
    d = daemon(gateway)
    await d.ready(market)
    executor = d.trader.executor
    await d.send(market, d.strategy.intent(1))
    await d.until(lambda: len(live(gateway)) == 3)
    market.quote(4999.75, 5000.0)  # the parent fills
    market.quote(5003.0, 5003.25)
    market.trade(5003.25, 5)  # through the target: the first bracket is over
    await d.until(lambda: d.trader.position == 0 and not executor.live())
    finished = set(executor.orders)
    await d.send(market, d.strategy.intent(1))
    await d.until(lambda: len(live(gateway)) == 3)
    market.quote(4999.75, 5000.0)  # the second parent fills; its stop and target work
    await d.until(lambda: d.trader.position == 1 and d.trader.unprotected() == 0)
    working = set(executor.orders) - finished
    assert len(finished) == len(working) == 3

    assert executor.forget_finished(keep_s=3600.0) == 0
    assert executor.forget_finished(keep_s=0.0) == 3  # the first bracket only, as a whole
    assert set(executor.orders) == working
    assert executor.forget_finished(keep_s=0.0) == 0  # a bracket with live orders stays

    # At the reconnect the gateway reports the forgotten orders again (completed orders, their
    # executions): they are recalled from the journal, not adopted, and nothing is counted twice.
    reconnects = d.sup.conn.status.reconnect_count
    gateway.drop_clients(reset=True)
    await d.until(
        lambda: d.sup.conn.status.reconnect_count > reconnects and d.trader.sync.reconciled
    )
    assert d.trader.sync.last_reconcile["recovered_fills"] == 0
    assert finished <= set(executor.orders)
    assert d.trader.journal.events("adopt") == []
    reconnected = d.trader.journal.events("connect")[-1].data
    assert T0 <= reconnected["market_time"] <= gateway.clock.now()  # the market clock (1 s)
    assert d.trader.position == 1
    await d.send(market, d.strategy.intent(0))  # the exit moves the working bracket's target
    await d.until(lambda: position(gateway) == 0 and not live(gateway))
    assert not [o for o in gateway_orders(gateway) if o.request.order_ref.endswith("-X")]
    assert [e.exec_id for e in d.trader.journal.executions()] == [
        e.exec_id for e in gateway.engine.executions()
    ]


async def test_an_unanswered_cancel_is_not_sent_again_every_second(
    gateway: Gateway, daemon: Callable[..., Daemon]
) -> None:
    # The entry times out while the gateway is stalled: the daemon's checks run every 50 ms and
    # each still sees the entry live. One cancel goes out, not one per check (each of which the
    # gateway would answer, once it reads again, with 10147: no such order).
    market = Market(gateway)
    d = daemon(gateway, execution={"entry_timeout_s": 0.2})
    await d.ready(market)
    await d.send(market, d.strategy.intent(1, offset_ticks=-8))
    await d.until(lambda: len(live(gateway)) == 3)
    stall = asyncio.create_task(gateway.stall(1.0))
    await d.until(lambda: d.trader.executor.messages_sent > 3)  # the cancel, during the stall
    await asyncio.wait_for(stall, WAIT)
    await d.until(lambda: not live(gateway) and not d.trader.executor.live())
    parent, *_ = gateway_orders(gateway)
    assert parent.status is OrderStatus.CANCELLED
    assert d.trader.executor.messages_sent == 4  # 3 to place the bracket, 1 cancel
    assert d.trader.journal.events("reject") == []


async def test_a_cancel_is_logged_as_asked_for_or_not(
    gateway: Gateway, daemon: Callable[..., Daemon]
) -> None:
    market = Market(gateway)
    d = daemon(gateway)
    await d.ready(market)
    await d.send(market, d.strategy.intent(1, offset_ticks=-8))  # an entry that waits
    await d.until(lambda: len(live(gateway)) == 3)
    first = {o.request.order_ref for o in gateway_orders(gateway)}
    parent_id = gateway_orders(gateway)[0].request.order_id
    with structlog.testing.capture_logs() as logs:
        gateway.dispatch(gateway.engine.cancel(CLIENT, parent_id))  # IB's doing, not ours
        await d.until(lambda: not live(gateway) and not d.trader.executor.live())
        await d.send(market, d.strategy.intent(1, offset_ticks=-8))
        await d.until(lambda: len(live(gateway)) == 3)
        await d.send(market, d.strategy.intent(0))  # ours: the daemon cancels its entry
        await d.until(lambda: not live(gateway) and not d.trader.executor.live())
    cancelled = {e["ref"]: e["asked"] for e in logs if e["event"] == "order_cancelled"}
    assert len(cancelled) == 6
    assert {ref: cancelled[ref] for ref in first} == dict.fromkeys(first, False)
    assert [asked for ref, asked in cancelled.items() if ref not in first] == [True] * 3
    assert not [e for e in logs if e["log_level"] in ("warning", "error")]


async def test_an_entry_that_fills_before_its_cancel_is_exited_and_the_reversal_goes_on(
    gateway: Gateway, daemon: Callable[..., Daemon]
) -> None:
    market = Market(gateway)
    d = daemon(gateway)
    await d.ready(market)
    await d.send(market, d.strategy.intent(1))  # a long entry joining the bid
    await d.until(lambda: len(live(gateway)) == 3)
    # The strategy turns short on a trade; right behind that trade, at the gateway, the long
    # entry fills: the daemon cancels an entry that has already filled.
    d.strategy.queue.append(d.strategy.intent(-1, reason="reverse"))
    market.trade()
    market.quote(4999.75, 5000.0)  # the ask comes down to the entry's limit: filled
    await d.until(lambda: not d.strategy.queue)
    # The long is exited, and the short bracket goes out instead of the flip being dropped.
    await d.until(lambda: position(gateway) == 0 and len(live(gateway)) == 3)
    (entry,) = [o for o in live(gateway) if o.request.order_ref.endswith("-P")]
    assert entry.request.action is Side.SELL
    price = entry.request.lmt_price
    market.quote(price, price + 0.25)  # a bid at the short entry's limit: filled
    await d.until(lambda: position(gateway) == -1 and d.trader.position == -1)
    (late,) = d.trader.journal.events("too_late")  # the cancel crossed the fill: 10148
    assert late.data["code"] == 10148  # "cannot be cancelled, state: Filled", as TWS says
    assert d.trader.journal.events("reject") == []  # not counted as a refused order
    assert d.trader.risk.summary()["consecutive_rejects"] == 0
    assert d.trader.unprotected() == 0
