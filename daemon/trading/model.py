"""Types the trading layer shares: trading states, intents, what a strategy sees, refusals."""

from __future__ import annotations

import enum
from dataclasses import dataclass

from daemon.flow.extractor import FlowState
from daemon.flow.prints import Health


class TradingState(enum.StrEnum):
    """ACTIVE: entries allowed. REDUCING: only orders that reduce the position. HALTED: cancels
    only (and an operator's flatten)."""

    ACTIVE = "ACTIVE"
    REDUCING = "REDUCING"
    HALTED = "HALTED"


class EntryType(enum.StrEnum):
    LMT = "LMT"
    MKT = "MKT"


@dataclass(frozen=True, slots=True)
class Intent:
    """What a strategy wants: a target position and how to get there. Never an order.

    ``target`` is the signed position in contracts after the intent (0 = flat). An entry is
    a bracket: the parent (``entry``; a LMT at ``offset_ticks`` through the near touch, 0 =
    join the bid for a buy / the ask for a sell, 1 = one tick more aggressive), a stop
    ``stop_ticks`` and a target ``target_ticks`` from the entry price.
    """

    target: int
    stop_ticks: int
    target_ticks: int
    entry: EntryType = EntryType.LMT
    offset_ticks: int = 0
    reason: str = ""


@dataclass(frozen=True, slots=True)
class TradeUpdate:
    """Accepted trades since the last call (never a rejected tick)."""

    time: float  # exchange time of the last trade, epoch seconds
    price: float  # last trade price
    size: float  # contracts traded since the last update
    trades: int  # prints since the last update


@dataclass(frozen=True, slots=True)
class StrategyView:
    """Everything a strategy may base an intent on, besides the bar or trade itself.

    ``position`` is None whenever it cannot be trusted: before the first reconcile, while
    reconciling, disconnected, or after a mismatch. ``flow`` is None on trade updates (the full
    state costs tens of microseconds; bars get it).
    """

    time: float
    health: Health
    connected: bool  # connection READY (not DEGRADED, SYNCING or down)
    trading_state: TradingState
    position: int | None
    working_entries: int  # signed contracts in entries sent and not yet filled
    flow: FlowState | None = None

    @property
    def trusted(self) -> bool:
        """True when data health is OK, the connection is ready and the position is known."""
        return self.health is Health.OK and self.connected and self.position is not None


@dataclass(frozen=True, slots=True)
class Refusal:
    """A risk rule said no: which rule, and why in words with the numbers."""

    rule: str
    detail: str


def intent_problem(intent: object) -> str | None:
    """What makes a strategy's intent unusable, in words; None when it is well formed.

    The stop and the target must be at least a tick away (the trader places them on the right
    side of the entry), the target position and every distance whole numbers.
    """
    if not isinstance(intent, Intent):
        return f"not an Intent but {type(intent).__name__}"
    for name in ("target", "stop_ticks", "target_ticks", "offset_ticks"):
        value = getattr(intent, name)
        if isinstance(value, bool) or not isinstance(value, int):
            return f"{name} {value!r} is not a whole number"
    entry: object = intent.entry  # a strategy may hand in anything: checked, not trusted
    if not isinstance(entry, EntryType):
        return f"entry {entry!r} is not LMT or MKT"
    if intent.stop_ticks <= 0:
        return f"stop_ticks {intent.stop_ticks} must be > 0: the stop goes on the losing side"
    if intent.target_ticks <= 0:
        return f"target_ticks {intent.target_ticks} must be > 0: the target on the winning side"
    return None
