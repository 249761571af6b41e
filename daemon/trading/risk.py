"""Pre-trade risk: every order message is checked here before it is sent.

Pure and deterministic: the world comes in as a `RiskContext` built by the caller, time for the
rate windows comes from an injected monotonic clock (`MessageBudget` keeps them), and nothing
here does I/O besides logging.
"""

from __future__ import annotations

import enum
import math
import time
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo

import structlog

from daemon.flow.prints import Health
from daemon.settings import RiskSettings, parse_window
from daemon.trading.message_budget import MessageBudget
from daemon.trading.model import Refusal, TradingState

log = structlog.get_logger("daemon.trading.risk")

ACTIONS = ("BUY", "SELL")
LAST_REFUSALS = 10
_EPSILON = 1e-9  # prices on the tick grid are exact in binary; this absorbs off-grid rounding


class OrderKind(enum.StrEnum):
    """What an order message does."""

    ENTRY = "ENTRY"
    EXIT = "EXIT"
    MODIFY = "MODIFY"
    CANCEL = "CANCEL"
    FLATTEN = "FLATTEN"


_ALLOWED: dict[TradingState, frozenset[OrderKind]] = {
    TradingState.ACTIVE: frozenset(OrderKind),
    TradingState.REDUCING: frozenset(
        {OrderKind.CANCEL, OrderKind.FLATTEN, OrderKind.EXIT, OrderKind.MODIFY}
    ),
    TradingState.HALTED: frozenset({OrderKind.CANCEL, OrderKind.FLATTEN}),
}


@dataclass(frozen=True, slots=True)
class OrderCheck:
    """An order message about to be sent. ValueError names the field when it makes no sense."""

    kind: OrderKind
    action: str  # "BUY" | "SELL" (ignored for CANCEL)
    quantity: int  # contracts (0 for CANCEL)
    price: float | None  # limit/stop price of the entry; None for MKT or CANCEL
    messages: int = 1  # wire messages it costs (an entry bracket = 3)
    new_orders: int = 0  # orders it adds to the working set (a bracket = 3, modify/cancel = 0)

    def __post_init__(self) -> None:
        if not isinstance(self.kind, OrderKind):
            raise ValueError(f"OrderCheck.kind: {self.kind!r} is not an OrderKind")
        if self.kind is not OrderKind.CANCEL and self.action not in ACTIONS:
            raise ValueError(f"OrderCheck.action: {self.action!r} is not BUY or SELL")
        if self.quantity < 0:
            raise ValueError(f"OrderCheck.quantity: {self.quantity} is negative")
        if self.kind is OrderKind.ENTRY and self.quantity == 0:
            raise ValueError("OrderCheck.quantity: an ENTRY needs at least 1 contract")
        if self.price is not None and not (math.isfinite(self.price) and self.price > 0):
            raise ValueError(f"OrderCheck.price: {self.price!r} is not a positive price")
        if self.messages < 0:
            raise ValueError(f"OrderCheck.messages: {self.messages} is negative")
        if self.new_orders < 0:
            raise ValueError(f"OrderCheck.new_orders: {self.new_orders} is negative")

    @property
    def signed_quantity(self) -> int:
        """+quantity for a BUY, -quantity for a SELL."""
        return self.quantity if self.action == "BUY" else -self.quantity


@dataclass(frozen=True, slots=True)
class RiskContext:
    """The world at the moment of the check, built by the caller."""

    now: float  # market time, epoch seconds (UTC)
    position: int | None  # signed; None = not trusted (not reconciled)
    broker_position: int | None  # the account's, as the broker last pushed it; None = unknown
    working_entries: int  # signed contracts in entries sent and not yet filled
    working_orders: int  # orders working at the broker (all roles)
    bid: float | None
    ask: float | None
    health: Health  # order-flow data health
    connection_ready: bool  # connection READY
    reconciled: bool  # the last reconcile found no mismatch
    session_end: float | None  # end of the current trading span (epoch), None = unknown/outside
    roll_day: bool
    tick_size: float  # the traded instrument's (the collar counts its ticks)

    def __post_init__(self) -> None:
        if not math.isfinite(self.now):
            raise ValueError(f"RiskContext.now: {self.now!r} is not a time")
        if self.working_orders < 0:
            raise ValueError(f"RiskContext.working_orders: {self.working_orders} is negative")

    def mid(self) -> float | None:
        """Mid of a usable two-sided quote; None when a side is missing, non-positive or crossed."""
        bid, ask = self.bid, self.ask
        if bid is None or ask is None or not (math.isfinite(bid) and math.isfinite(ask)):
            return None
        if bid <= 0 or ask < bid:
            return None
        return (bid + ask) / 2


@dataclass(frozen=True, slots=True)
class _Window:
    start: int  # minute of the local day
    end: int
    zone: ZoneInfo
    text: str

    def contains(self, now: float) -> bool:
        local = datetime.fromtimestamp(now, self.zone)
        minute = local.hour * 60 + local.minute
        if self.start < self.end:
            return self.start <= minute < self.end
        return minute >= self.start or minute < self.end  # crosses midnight


class RiskManager:
    """The trading state (ACTIVE / REDUCING / HALTED) and the pre-trade rules.

    `check()` returns the first failing rule as a `Refusal`, or None. A CANCEL is never refused.
    `clock` is monotonic and drives only the message-rate windows; rules about market time use
    `RiskContext.now`.
    """

    def __init__(
        self,
        settings: RiskSettings,
        *,
        clock: Callable[[], float] = time.monotonic,
        on_state: Callable[[TradingState, TradingState, str], None] | None = None,
    ) -> None:
        self._settings = settings
        self._budget = MessageBudget(settings, clock)
        self._on_state = on_state
        self._windows = tuple(_window(text) for text in settings.no_entry_windows)
        self._state = TradingState.ACTIVE
        self._reason = "start"
        self._net: float | None = None
        self._loss_hit = False
        self._rejects = 0
        self.refusals: Counter[str] = Counter()
        self.last_refusals: deque[tuple[float, str, str]] = deque(maxlen=LAST_REFUSALS)

    # --- state ------------------------------------------------------------------------------

    @property
    def state(self) -> TradingState:
        """ACTIVE, REDUCING or HALTED."""
        return self._state

    @property
    def reason(self) -> str:
        """Why the last state change happened."""
        return self._reason

    @property
    def flatten_on_loss(self) -> bool:
        """True when hitting the daily loss limit should also close the position."""
        return self._settings.on_loss_limit == "flatten"

    def halt(self, reason: str) -> None:
        """Cancels and flattens only, until an operator resumes."""
        self._set_state(TradingState.HALTED, reason)

    def reduce(self, reason: str) -> None:
        """Only orders that reduce the position. Ignored while HALTED: only resume() ends a halt."""
        if self._state is TradingState.HALTED:
            log.info("trading_reduce_ignored", state=str(self._state), reason=reason)
            return
        self._set_state(TradingState.REDUCING, reason)

    def resume(self, reason: str) -> None:
        """Back to ACTIVE (the operator's call). Resets the reject streak and re-arms the loss
        limit: if the day's net is still at or below it, the next `update_pnl` halts again."""
        self._rejects = 0
        self._loss_hit = False
        self._set_state(TradingState.ACTIVE, reason)

    def _set_state(self, new: TradingState, reason: str) -> None:
        old = self._state
        self._state, self._reason = new, reason
        log.warning("trading_state", old=str(old), new=str(new), reason=reason)
        if old is not new and self._on_state is not None:
            self._on_state(old, new, reason)

    # --- feedback from execution -----------------------------------------------------------

    def record_sent(self, messages: int) -> None:
        """Messages just sent (any kind): feeds the rate windows and the day's efficiency."""
        self._budget.record_sent(messages)

    def record_fill(self) -> None:
        """One execution (a fill of any size) for the day's efficiency ratio."""
        self._budget.record_fill()

    def record_accepted(self) -> None:
        """An order was acknowledged by the broker: the reject streak ends."""
        self._rejects = 0

    def record_reject(self, code: int, detail: str) -> bool:
        """A rejected order; True if this reject completed the streak that halts trading."""
        self._rejects += 1
        limit = self._settings.max_consecutive_rejects
        if self._rejects < limit or self._state is TradingState.HALTED:
            return False
        self.halt(f"{self._rejects} consecutive order rejects, last {code}: {detail}")
        return True

    def update_pnl(self, net: float | None) -> bool:
        """The day's realized + unrealized PnL in USD (None = unknown, changes nothing).

        True once per day (or per resume) when it reaches the loss limit and halts trading;
        the caller then cancels working entries and flattens if `flatten_on_loss`.
        """
        if net is None:
            return False
        if not math.isfinite(net):
            raise ValueError(f"update_pnl: net {net!r} is not a number of USD")
        self._net = net
        limit = self._settings.daily_loss_limit
        if self._loss_hit or net > -limit:
            return False
        self._loss_hit = True
        self.halt(f"daily loss limit: net {net:.2f} ≤ {-limit:.2f}")
        return True

    def new_day(self, day: str) -> None:
        """Start a trading day: clears the day's messages, fills and PnL.

        A HALTED state stays HALTED: a halt lasts until an operator resumes.
        """
        self._budget.new_day(day)
        self._net = None
        self._loss_hit = False

    # --- the check -------------------------------------------------------------------------

    def check(self, order: OrderCheck, ctx: RiskContext) -> Refusal | None:
        """The first rule `order` breaks in `ctx`, or None when it may be sent."""
        if order.kind is OrderKind.CANCEL:
            return None
        refusal = (
            self._check_state(order)
            or self._check_connection(ctx)
            or self._check_reconciled(order, ctx)
        )
        if refusal is None and order.kind is OrderKind.ENTRY and ctx.position is not None:
            refusal = self._check_entry(order, ctx, ctx.position)
        if order.kind is not OrderKind.FLATTEN:  # getting out is never rate-limited here
            refusal = refusal or self._budget.check_rates(order.messages)
        if refusal is not None:
            self.refusals[refusal.rule] += 1
            self.last_refusals.append((ctx.now, refusal.rule, refusal.detail))
            log.info(
                "risk_refused",
                rule=refusal.rule,
                detail=refusal.detail,
                kind=str(order.kind),
                rate_limited=True,
                rate_key=refusal.rule,
            )
        return refusal

    def _check_state(self, order: OrderCheck) -> Refusal | None:
        if order.kind in _ALLOWED[self._state]:
            return None
        return Refusal("trading_state", f"{order.kind} not allowed while {self._state}")

    @staticmethod
    def _check_connection(ctx: RiskContext) -> Refusal | None:
        return None if ctx.connection_ready else Refusal("connection", "connection not ready")

    @staticmethod
    def _check_reconciled(order: OrderCheck, ctx: RiskContext) -> Refusal | None:
        if ctx.position is None:
            return Refusal("reconciled", "position unknown")
        if order.kind is not OrderKind.FLATTEN and not ctx.reconciled:
            return Refusal("reconciled", "last reconcile found a mismatch or has not run")
        return None

    def _check_entry(self, order: OrderCheck, ctx: RiskContext, position: int) -> Refusal | None:
        s = self._settings
        if ctx.health is not Health.OK:
            return Refusal("data_health", f"data health {ctx.health}")
        if ctx.broker_position is not None and ctx.broker_position != position:
            # A fill (or its correction) one of us has not heard of yet: never size from it.
            return Refusal(
                "position_unconfirmed",
                f"our position {position}, the broker's {ctx.broker_position}",
            )
        if order.quantity > s.max_order_size:
            return Refusal("max_order_size", f"quantity {order.quantity} > max {s.max_order_size}")
        after = position + ctx.working_entries + order.signed_quantity
        if abs(after) > s.max_position:
            return Refusal(
                "max_position",
                f"position {position} + working {ctx.working_entries} + "
                f"{order.action} {order.quantity} = {after}, max ±{s.max_position}",
            )
        working = ctx.working_orders + order.new_orders
        if working > s.max_working_orders:
            return Refusal(
                "max_working_orders",
                f"working {ctx.working_orders} + new {order.new_orders} > max "
                f"{s.max_working_orders}",
            )
        return (
            self._check_collar(order, ctx)
            or self._check_hours(ctx)
            or self._budget.check_efficiency()
        )

    def _check_collar(self, order: OrderCheck, ctx: RiskContext) -> Refusal | None:
        mid = ctx.mid()
        if mid is None:
            return Refusal("price_collar", f"no quote (bid {ctx.bid}, ask {ctx.ask})")
        if order.price is None:
            return None
        collar = self._settings.price_collar_ticks
        ticks = abs(order.price - mid) / ctx.tick_size
        if ticks > collar + _EPSILON:
            return Refusal(
                "price_collar",
                f"price {order.price} is {ticks:g} ticks from mid {mid}, max {collar}",
            )
        return None

    def _check_hours(self, ctx: RiskContext) -> Refusal | None:
        s = self._settings
        if ctx.session_end is None:
            return Refusal("trading_hours", "outside trading hours")
        cutoff = ctx.session_end - s.no_entry_before_close_min * 60
        if ctx.now >= cutoff:
            left = (ctx.session_end - ctx.now) / 60
            return Refusal(
                "session_close",
                f"{left:.1f} min to session close, no entries in the last "
                f"{s.no_entry_before_close_min:g} min",
            )
        for window in self._windows:
            if window.contains(ctx.now):
                return Refusal("no_entry_window", f"inside {window.text}")
        if s.no_entry_on_roll_day and ctx.roll_day:
            return Refusal("roll_day", "no entries on the front month's roll day")
        return None

    # --- status ------------------------------------------------------------------------------

    def summary(self) -> dict[str, object]:
        """State, refusals, rates and the day's efficiency, JSON-ready for status output."""
        s = self._settings
        return {
            "state": str(self._state),
            "reason": self._reason,
            "refusals": dict(self.refusals),
            "last_refusals": [
                {"time": t, "rule": rule, "detail": detail}
                for t, rule, detail in self.last_refusals
            ],
            **self._budget.summary(),
            "consecutive_rejects": self._rejects,
            "net_pnl": self._net,
            "daily_loss_limit": s.daily_loss_limit,
        }


def _window(text: str) -> _Window:
    start, end, tz = parse_window(text)
    return _Window(start, end, ZoneInfo(tz), text.strip())
