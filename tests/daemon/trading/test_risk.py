"""RiskManager: each rule at its boundary, the trading states, feedback counters, a property."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime
from typing import Any

import pytest
import structlog
from hypothesis import given
from hypothesis import strategies as st

from daemon.flow.prints import Health
from daemon.settings import RiskSettings
from daemon.trading.model import Refusal, TradingState
from daemon.trading.risk import OrderCheck, OrderKind, RiskContext, RiskManager

# Tuesday 2024-03-12 15:00 UTC = 10:00 CDT: inside RTH, outside every default no-entry window.
NOON = datetime(2024, 3, 12, 15, 0, tzinfo=UTC).timestamp()


class FakeClock:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


def manager(clock: FakeClock | None = None, **overrides: Any) -> RiskManager:
    return RiskManager(RiskSettings(**overrides), clock=clock or FakeClock())


def ctx(**overrides: Any) -> RiskContext:
    base = RiskContext(
        now=NOON,
        position=0,
        broker_position=0,
        working_entries=0,
        working_orders=0,
        bid=5000.00,
        ask=5000.50,  # mid 5000.25
        health=Health.OK,
        connection_ready=True,
        reconciled=True,
        session_end=NOON + 6 * 3600,
        roll_day=False,
        tick_size=0.25,
    )
    overrides.setdefault("broker_position", overrides.get("position", 0))  # they agree
    return dataclasses.replace(base, **overrides)


def entry(action: str = "BUY", quantity: int = 1, price: float | None = 5000.00) -> OrderCheck:
    return OrderCheck(OrderKind.ENTRY, action, quantity, price, messages=3, new_orders=3)


def order(kind: OrderKind, action: str = "SELL", quantity: int = 1) -> OrderCheck:
    return OrderCheck(kind, action, quantity, None)


CANCEL = OrderCheck(OrderKind.CANCEL, "", 0, None)


def state_of(risk: RiskManager) -> TradingState:
    """The state, read through a call so that mypy does not narrow it across calls."""
    return risk.state


def rule(refusal: Refusal | None) -> str | None:
    return None if refusal is None else refusal.rule


# --- bad input ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"quantity": -1}, "quantity"),
        ({"action": "HOLD"}, "action"),
        ({"action": "buy"}, "action"),
        ({"quantity": 0}, "quantity"),  # an ENTRY of nothing
        ({"price": float("nan")}, "price"),
        ({"price": 0.0}, "price"),
        ({"messages": -1}, "messages"),
        ({"new_orders": -3}, "new_orders"),
    ],
)
def test_bad_order_check_names_the_field(kwargs: dict[str, Any], field: str) -> None:
    args: dict[str, Any] = {
        "kind": OrderKind.ENTRY,
        "action": "BUY",
        "quantity": 1,
        "price": 5000.0,
    } | kwargs
    with pytest.raises(ValueError, match=rf"OrderCheck\.{field}"):
        OrderCheck(**args)


def test_bad_exit_action_and_kind_are_refused_but_cancel_action_is_ignored() -> None:
    with pytest.raises(ValueError, match=r"OrderCheck\.action"):
        OrderCheck(OrderKind.EXIT, "", 1, None)
    with pytest.raises(ValueError, match=r"OrderCheck\.kind"):
        OrderCheck("ENTRY", "BUY", 1, None)  # type: ignore[arg-type]  # the bad input under test
    assert OrderCheck(OrderKind.CANCEL, "", 0, None).quantity == 0


def test_bad_context_and_feedback_raise() -> None:
    with pytest.raises(ValueError, match=r"RiskContext\.working_orders"):
        ctx(working_orders=-1)
    with pytest.raises(ValueError, match=r"RiskContext\.now"):
        ctx(now=float("nan"))
    risk = manager()
    with pytest.raises(ValueError, match="messages"):
        risk.record_sent(-1)
    with pytest.raises(ValueError, match="net"):
        risk.update_pnl(float("nan"))


# --- states, connection, reconcile ------------------------------------------------------------


def test_cancel_always_passes() -> None:
    clock = FakeClock()
    risk = manager(clock, max_orders_per_second=1)
    risk.record_sent(50)
    risk.halt("test")
    dead = ctx(position=None, connection_ready=False, reconciled=False, health=Health.INVALID)
    assert risk.check(CANCEL, dead) is None
    assert not risk.refusals


def test_halted_allows_only_cancel_and_flatten() -> None:
    risk = manager()
    risk.halt("operator")
    for kind in (OrderKind.ENTRY, OrderKind.EXIT, OrderKind.MODIFY):
        refusal = risk.check(order(kind), ctx(position=1))
        assert refusal == Refusal("trading_state", f"{kind} not allowed while HALTED")
    assert risk.check(order(OrderKind.FLATTEN), ctx(position=1)) is None
    assert risk.check(CANCEL, ctx()) is None


def test_reducing_lets_exits_through_but_not_entries() -> None:
    risk = manager()
    risk.reduce("data degraded")
    assert rule(risk.check(entry(), ctx())) == "trading_state"
    for kind in (OrderKind.EXIT, OrderKind.MODIFY, OrderKind.FLATTEN):
        assert risk.check(order(kind), ctx(position=1)) is None
    risk.resume("data ok")
    assert risk.check(entry(), ctx()) is None


def test_connection_not_ready_refuses_everything_but_cancel() -> None:
    risk = manager()
    down = ctx(position=1, connection_ready=False)
    for kind in (OrderKind.ENTRY, OrderKind.EXIT, OrderKind.MODIFY, OrderKind.FLATTEN):
        assert risk.check(order(kind), down) == Refusal("connection", "connection not ready")
    assert risk.check(CANCEL, down) is None


def test_state_is_checked_before_connection_and_reconcile() -> None:
    risk = manager()
    risk.halt("test")
    worst = ctx(position=None, connection_ready=False, reconciled=False)
    assert rule(risk.check(entry(), worst)) == "trading_state"
    assert rule(risk.check(order(OrderKind.FLATTEN), worst)) == "connection"


def test_reconciled_rule() -> None:
    risk = manager()
    unknown = ctx(position=None)
    for kind in (OrderKind.ENTRY, OrderKind.EXIT, OrderKind.MODIFY, OrderKind.FLATTEN):
        assert risk.check(order(kind, "BUY"), unknown) == Refusal("reconciled", "position unknown")
    mismatch = ctx(position=1, reconciled=False)
    for kind in (OrderKind.ENTRY, OrderKind.EXIT, OrderKind.MODIFY):
        assert rule(risk.check(order(kind), mismatch)) == "reconciled"
    assert risk.check(order(OrderKind.FLATTEN), mismatch) is None


# --- entry rules -------------------------------------------------------------------------------


@pytest.mark.parametrize("health", [Health.DEGRADED, Health.INVALID])
def test_data_health_refuses_entries_only(health: Health) -> None:
    risk = manager()
    assert risk.check(entry(), ctx(health=health)) == Refusal(
        "data_health", f"data health {health}"
    )
    assert risk.check(order(OrderKind.EXIT), ctx(position=1, health=health)) is None


def test_an_entry_waits_until_the_broker_confirms_our_position() -> None:
    risk = manager(max_position=2)
    # the broker holds 1 we have not heard of: flat by our count, an entry would make it 2
    refusal = risk.check(entry("BUY", 1), ctx(position=0, broker_position=1))
    assert refusal == Refusal("position_unconfirmed", "our position 0, the broker's 1")
    assert rule(risk.check(entry("SELL", 1), ctx(position=-1, broker_position=0))) == (
        "position_unconfirmed"
    )
    # getting out is not held up by it (exits are sized from the broker's position anyway)
    assert risk.check(order(OrderKind.EXIT), ctx(position=-1, broker_position=0)) is None
    assert risk.check(order(OrderKind.FLATTEN), ctx(position=-1, broker_position=0)) is None
    # not known (nothing pushed yet): the reconciled position stands
    assert risk.check(entry("BUY", 1), ctx(position=1, broker_position=None)) is None
    assert risk.check(entry("BUY", 1), ctx(position=1, broker_position=1)) is None


def test_max_order_size_boundary() -> None:
    risk = manager(max_order_size=2, max_position=5)
    assert risk.check(entry(quantity=2), ctx()) is None
    assert rule(risk.check(entry(quantity=3), ctx())) == "max_order_size"


def test_max_position_boundary_long_and_short() -> None:
    risk = manager(max_position=2)
    assert risk.check(entry("BUY", 1), ctx(position=1)) is None
    refusal = risk.check(entry("BUY", 2), ctx(position=1))
    assert refusal == Refusal("max_position", "position 1 + working 0 + BUY 2 = 3, max ±2")
    assert risk.check(entry("SELL", 1), ctx(position=-1)) is None
    assert rule(risk.check(entry("SELL", 2), ctx(position=-1))) == "max_position"
    # working entries count: a burst of signals cannot exceed the limit
    assert risk.check(entry("BUY", 1), ctx(working_entries=1)) is None
    assert rule(risk.check(entry("BUY", 2), ctx(working_entries=1))) == "max_position"
    assert rule(risk.check(entry("SELL", 1), ctx(position=-1, working_entries=-1))) == (
        "max_position"
    )
    # an entry against the position is fine as long as the result is inside
    assert risk.check(entry("SELL", 2), ctx(position=2)) is None


def test_max_working_orders_boundary() -> None:
    risk = manager(max_working_orders=6)
    assert risk.check(entry(), ctx(working_orders=3)) is None
    assert risk.check(entry(), ctx(working_orders=4)) == Refusal(
        "max_working_orders", "working 4 + new 3 > max 6"
    )


def test_price_collar_boundary_both_sides() -> None:
    risk = manager(price_collar_ticks=20)  # mid 5000.25; 20 ticks = 5.00 points
    assert risk.check(entry(price=5005.25), ctx()) is None
    assert risk.check(entry(price=5005.50), ctx()) == Refusal(
        "price_collar", "price 5005.5 is 21 ticks from mid 5000.25, max 20"
    )
    assert risk.check(entry("SELL", price=4995.25), ctx()) is None
    assert rule(risk.check(entry("SELL", price=4995.00), ctx())) == "price_collar"


def test_entries_need_a_two_sided_quote() -> None:
    risk = manager()
    assert risk.check(entry(price=None), ctx()) is None  # MKT with a quote
    for quote in ({"bid": None}, {"ask": None}, {"bid": 5000.50, "ask": 5000.00}):
        refusal = risk.check(entry(price=None), ctx(**quote))
        assert rule(refusal) == "price_collar"
        assert refusal is not None
        assert "no quote" in refusal.detail
    assert rule(risk.check(entry(price=5000.0), ctx(bid=None))) == "price_collar"


def test_session_close_and_trading_hours() -> None:
    risk = manager(no_entry_before_close_min=15)
    assert risk.check(entry(), ctx(session_end=NOON + 901)) is None
    refusal = risk.check(entry(), ctx(session_end=NOON + 900))
    assert refusal == Refusal(
        "session_close", "15.0 min to session close, no entries in the last 15 min"
    )
    assert risk.check(entry(), ctx(session_end=None)) == Refusal(
        "trading_hours", "outside trading hours"
    )
    assert risk.check(order(OrderKind.EXIT), ctx(position=1, session_end=None)) is None


def utc(year: int, month: int, day: int, hour: int, minute: int) -> float:
    return datetime(year, month, day, hour, minute, tzinfo=UTC).timestamp()


@pytest.mark.parametrize(
    ("now", "refused"),
    [
        # CME break 16:00-17:00 America/Chicago (CDT = UTC-5 on 2024-03-12)
        (utc(2024, 3, 12, 20, 59), False),
        (utc(2024, 3, 12, 21, 0), True),
        (utc(2024, 3, 12, 21, 59), True),
        (utc(2024, 3, 12, 22, 0), False),
        # IB reset 23:45-00:45 America/New_York, across midnight and DST (2024-03-10 02:00)
        (utc(2024, 3, 10, 4, 44), False),  # Sat 23:44 EST
        (utc(2024, 3, 10, 4, 45), True),  # Sat 23:45 EST
        (utc(2024, 3, 10, 5, 44), True),  # Sun 00:44 EST, after midnight
        (utc(2024, 3, 10, 5, 45), False),  # Sun 00:45 EST
        (utc(2024, 3, 11, 3, 45), True),  # Sun 23:45 EDT: the same wall time, an hour earlier
        (utc(2024, 3, 11, 4, 44), True),  # Mon 00:44 EDT
        (utc(2024, 3, 11, 4, 45), False),  # Mon 00:45 EDT (was inside the window in EST)
        (utc(2024, 3, 9, 3, 50), False),  # Fri 22:50 EST (would be 23:50 in EDT)
    ],
)
def test_no_entry_windows_in_their_own_time_zone(now: float, refused: bool) -> None:
    risk = manager()
    refusal = risk.check(entry(), ctx(now=now, session_end=now + 3 * 3600))
    assert rule(refusal) == ("no_entry_window" if refused else None)


def test_no_entry_window_detail_names_the_window() -> None:
    risk = manager(no_entry_windows=["22:00-02:00 Europe/London"])
    now = utc(2024, 7, 1, 0, 30)  # 01:30 BST
    assert risk.check(entry(), ctx(now=now, session_end=now + 3600)) == Refusal(
        "no_entry_window", "inside 22:00-02:00 Europe/London"
    )


def test_roll_day() -> None:
    assert rule(manager().check(entry(), ctx(roll_day=True))) == "roll_day"
    assert manager(no_entry_on_roll_day=False).check(entry(), ctx(roll_day=True)) is None


def test_order_efficiency_budget_after_grace() -> None:
    clock = FakeClock()
    risk = manager(clock, efficiency_grace_messages=40, max_messages_per_fill=20)
    risk.record_sent(39)
    clock.t = 60.0  # out of the rate windows
    assert risk.check(entry(), ctx()) is None  # 39 / 1 but still in grace
    risk.record_sent(1)
    clock.t = 120.0
    assert risk.check(entry(), ctx()) == Refusal(
        "order_efficiency", "40 messages / 0 fills = 40.0 > 20"
    )
    assert risk.check(order(OrderKind.EXIT), ctx(position=1)) is None  # exits are not budgeted
    risk.record_fill()
    risk.record_fill()
    assert risk.check(entry(), ctx()) is None  # 40 / 2 = 20, not above
    risk.record_sent(1)
    clock.t = 180.0
    assert rule(risk.check(entry(), ctx())) == "order_efficiency"  # 41 / 2
    risk.new_day("2024-03-13")
    assert risk.check(entry(), ctx()) is None


# --- rates -------------------------------------------------------------------------------------


def test_rate_windows_slide_with_the_clock() -> None:
    clock = FakeClock()
    risk = manager(clock, max_orders_per_second=5, max_orders_per_minute=8)
    three = dataclasses.replace(entry(), messages=3)
    two = dataclasses.replace(entry(), messages=2)
    risk.record_sent(3)  # t = 0
    assert risk.check(three, ctx()) == Refusal(
        "orders_per_second", "3 sent in the last 1 s + 3 > 5"
    )
    assert risk.check(two, ctx()) is None
    clock.t = 0.999
    assert rule(risk.check(three, ctx())) == "orders_per_second"
    clock.t = 1.0  # the send at t = 0 left the 1 s window
    assert risk.check(three, ctx()) is None
    risk.record_sent(3)  # t = 1: 6 in the minute
    clock.t = 2.0
    assert risk.check(three, ctx()) == Refusal(
        "orders_per_minute", "6 sent in the last 60 s + 3 > 8"
    )
    assert risk.check(two, ctx()) is None
    clock.t = 59.999
    assert rule(risk.check(three, ctx())) == "orders_per_minute"
    clock.t = 60.0  # the send at t = 0 left the minute
    assert risk.check(three, ctx()) is None


def test_rates_apply_to_exits_but_never_to_cancel_or_flatten() -> None:
    risk = manager(max_orders_per_second=2)
    risk.record_sent(2)
    for kind in (OrderKind.EXIT, OrderKind.MODIFY):
        assert rule(risk.check(order(kind), ctx(position=1))) == "orders_per_second"
    assert risk.check(CANCEL, ctx()) is None
    assert risk.check(order(OrderKind.FLATTEN), ctx(position=1)) is None  # getting out


# --- rejects, loss limit, states ---------------------------------------------------------------


def test_reject_streak_halts_after_n_and_accepted_resets_it() -> None:
    changes: list[tuple[TradingState, TradingState, str]] = []
    risk = RiskManager(
        RiskSettings(max_consecutive_rejects=3),
        clock=FakeClock(),
        on_state=lambda old, new, why: changes.append((old, new, why)),
    )
    assert not risk.record_reject(201, "no margin")
    assert not risk.record_reject(201, "no margin")
    risk.record_accepted()
    assert not risk.record_reject(201, "no margin")
    assert not risk.record_reject(201, "no margin")
    assert state_of(risk) is TradingState.ACTIVE
    assert risk.record_reject(202, "price out of range")
    assert state_of(risk) is TradingState.HALTED
    assert risk.reason == "3 consecutive order rejects, last 202: price out of range"
    assert changes == [(TradingState.ACTIVE, TradingState.HALTED, risk.reason)]
    assert not risk.record_reject(201, "again")  # already halted
    risk.resume("operator")
    assert state_of(risk) is TradingState.ACTIVE
    assert not risk.record_reject(201, "x")  # the streak restarted at resume
    assert not risk.record_reject(201, "x")


def test_daily_loss_limit_halts_once() -> None:
    risk = manager(daily_loss_limit=1000)
    assert not risk.flatten_on_loss
    assert not risk.update_pnl(None)
    assert not risk.update_pnl(-999.99)
    assert state_of(risk) is TradingState.ACTIVE
    with structlog.testing.capture_logs() as logs:
        assert risk.update_pnl(-1012.5)
    assert state_of(risk) is TradingState.HALTED
    assert risk.reason == "daily loss limit: net -1012.50 ≤ -1000.00"
    assert [e for e in logs if e["event"] == "trading_state"] == [
        {
            "event": "trading_state",
            "old": "ACTIVE",
            "new": "HALTED",
            "reason": risk.reason,
            "log_level": "warning",
        }
    ]
    assert not risk.update_pnl(-1100)
    assert not risk.update_pnl(None)
    assert rule(risk.check(entry(), ctx())) == "trading_state"
    risk.resume("operator")  # re-arms the limit: a loss still beyond it halts again
    assert risk.update_pnl(-1100)
    assert state_of(risk) is TradingState.HALTED
    risk.new_day("2024-03-13")
    assert state_of(risk) is TradingState.HALTED  # a halt outlives the day
    assert risk.update_pnl(-1000)  # the new day's limit is armed again


def test_loss_limit_exactly_at_the_limit_and_flatten_setting() -> None:
    risk = manager(daily_loss_limit=500, on_loss_limit="flatten")
    assert risk.flatten_on_loss
    assert risk.update_pnl(-500.0)
    assert risk.reason == "daily loss limit: net -500.00 ≤ -500.00"


def test_state_changes_call_back_and_reduce_cannot_lift_a_halt() -> None:
    changes: list[tuple[TradingState, TradingState, str]] = []
    risk = RiskManager(
        RiskSettings(), on_state=lambda old, new, why: changes.append((old, new, why))
    )
    assert (risk.state, risk.reason) == (TradingState.ACTIVE, "start")
    risk.reduce("session closing")
    risk.halt("operator")
    risk.reduce("data degraded")  # ignored: only resume() ends a halt
    assert state_of(risk) is TradingState.HALTED
    risk.resume("operator")
    assert changes == [
        (TradingState.ACTIVE, TradingState.REDUCING, "session closing"),
        (TradingState.REDUCING, TradingState.HALTED, "operator"),
        (TradingState.HALTED, TradingState.ACTIVE, "operator"),
    ]
    assert risk.reason == "operator"


# --- counters and summary ----------------------------------------------------------------------


def test_refusal_counters_last_refusals_and_log() -> None:
    clock = FakeClock()
    risk = manager(clock, max_orders_per_second=5)
    with structlog.testing.capture_logs() as logs:
        for i in range(11):
            risk.check(entry(), ctx(now=NOON + i, roll_day=True))
        risk.check(entry(quantity=2), ctx(now=NOON + 11, position=1))
        risk.check(order(OrderKind.EXIT), ctx(now=NOON + 12, position=None))
    assert risk.refusals == {"roll_day": 11, "max_position": 1, "reconciled": 1}
    assert len(risk.last_refusals) == 10
    assert risk.last_refusals[0] == (
        NOON + 3,
        "roll_day",
        "no entries on the front month's roll day",
    )
    assert risk.last_refusals[-1] == (NOON + 12, "reconciled", "position unknown")
    refused = [e for e in logs if e["event"] == "risk_refused"]
    assert len(refused) == 13
    assert refused[-1] == {
        "event": "risk_refused",
        "rule": "reconciled",
        "detail": "position unknown",
        "kind": "EXIT",
        "rate_limited": True,
        "rate_key": "reconciled",
        "log_level": "info",
    }


def test_summary() -> None:
    clock = FakeClock()
    risk = manager(clock)
    risk.new_day("2024-03-12")
    risk.record_sent(3)
    clock.t = 30.0
    risk.record_sent(1)
    risk.record_fill()
    risk.record_reject(201, "x")
    risk.update_pnl(-12.5)
    risk.check(entry(), ctx(roll_day=True))
    assert risk.summary() == {
        "state": "ACTIVE",
        "reason": "start",
        "refusals": {"roll_day": 1},
        "last_refusals": [
            {"time": NOON, "rule": "roll_day", "detail": "no entries on the front month's roll day"}
        ],
        "rates": {"messages_1s": 1, "messages_60s": 4, "max_per_second": 10, "max_per_minute": 120},
        "efficiency": {
            "day": "2024-03-12",
            "messages": 4,
            "fills": 1,
            "ratio": 4.0,
            "max_messages_per_fill": 20.0,
            "grace_messages": 40,
        },
        "consecutive_rejects": 1,
        "net_pnl": -12.5,
        "daily_loss_limit": 1000.0,
    }


# --- property ----------------------------------------------------------------------------------

step = st.one_of(
    st.tuples(st.just("entry"), st.sampled_from(["BUY", "SELL"]), st.integers(1, 5)),
    st.tuples(st.just("fill"), st.just(""), st.just(0)),
    st.tuples(st.just("cancel"), st.just(""), st.just(0)),
)


@given(
    max_position=st.integers(1, 4),
    max_order_size=st.integers(1, 5),
    start=st.integers(-4, 4),
    steps=st.lists(step, max_size=40),
)
def test_accepted_entries_never_exceed_max_position(
    max_position: int, max_order_size: int, start: int, steps: list[tuple[str, str, int]]
) -> None:
    risk = manager(max_position=max_position, max_order_size=max_order_size)
    position = max(-max_position, min(max_position, start))
    working = 0
    for what, action, quantity in steps:
        if what == "entry":
            check = entry(action, quantity)
            if risk.check(check, ctx(position=position, working_entries=working)) is None:
                working += check.signed_quantity
        elif what == "fill":  # every working entry fills
            position, working = position + working, 0
        else:  # every working entry is cancelled
            working = 0
        assert abs(position + working) <= max_position
