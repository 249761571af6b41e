"""Position and PnL from fills, with average-cost accounting. Pure: no I/O, no clock.

`Ledger` follows one contract. `DayLedger` rebuilds a trading day from journaled executions,
one `Ledger` per contract id (a roll day holds two). Realized PnL is in USD before commissions;
commissions are summed apart, so ``net = realized - commissions + unrealized``.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING

from daemon.settings import mask_account

if TYPE_CHECKING:
    from daemon.trading.journal import ExecRow


_SIDE_SIGN = {"BUY": 1, "BOT": 1, "SELL": -1, "SLD": -1}


def normalize_side(side: str) -> str:
    """``"BUY"`` or ``"SELL"`` for an order action or an IB execution side (``BOT``/``SLD``)."""
    sign = _SIDE_SIGN.get(side)
    if sign is None:
        raise ValueError(f"side must be BUY, SELL, BOT or SLD, got {side!r}")
    return "BUY" if sign > 0 else "SELL"


class Ledger:
    """Signed position, average entry price, realized PnL and commissions of one contract."""

    __slots__ = ("_avg", "_commissions", "_multiplier", "_position", "_realized")

    def __init__(self, multiplier: float) -> None:
        if not (math.isfinite(multiplier) and multiplier > 0):
            raise ValueError(f"multiplier must be a positive finite number, got {multiplier!r}")
        self._multiplier = multiplier
        self._position = 0
        self._avg: float | None = None
        self._realized = 0.0
        self._commissions = 0.0

    @property
    def multiplier(self) -> float:
        return self._multiplier

    @property
    def position(self) -> int:
        """Signed contracts: positive long, negative short."""
        return self._position

    @property
    def avg_price(self) -> float | None:
        """Average entry price of the open position; None when flat."""
        return self._avg

    @property
    def realized(self) -> float:
        """Σ realized PnL in USD, before commissions."""
        return self._realized

    @property
    def commissions(self) -> float:
        return self._commissions

    def apply(self, side: str, shares: int, price: float, commission: float = 0.0) -> float:
        """Apply one fill; return the PnL it realized (USD, before commission).

        Opening or adding realizes 0.0 and moves the average price. Reducing realizes against
        the average price, which stays. A flip closes the old side, then opens the remainder at
        the fill price.
        """
        sign = _SIDE_SIGN.get(side)
        if sign is None:
            raise ValueError(f"side must be BUY, SELL, BOT or SLD, got {side!r}")
        if isinstance(shares, bool) or not isinstance(shares, int) or shares <= 0:
            raise ValueError(f"shares must be an int > 0, got {shares!r}")
        if not math.isfinite(price):
            raise ValueError(f"price must be finite, got {price!r}")
        if not math.isfinite(commission):
            raise ValueError(f"commission must be finite, got {commission!r}")
        self._commissions += commission
        held = self._position
        if held == 0 or (held > 0) == (sign > 0):
            avg = self._avg if self._avg is not None else price
            total = abs(held) + shares
            self._avg = (avg * abs(held) + price * shares) / total
            self._position = held + sign * shares
            return 0.0
        assert self._avg is not None  # not flat, so an average exists
        closed = min(shares, abs(held))
        direction = 1 if held > 0 else -1
        realized = (price - self._avg) * closed * direction * self._multiplier
        self._realized += realized
        self._position = held + sign * shares
        if self._position == 0:
            self._avg = None
        elif (self._position > 0) != (held > 0):
            self._avg = price
        return realized

    def unrealized(self, mark: float | None) -> float | None:
        """Open PnL at ``mark`` in USD: 0.0 when flat, None when not flat and no mark is known."""
        if self._position == 0:
            return 0.0
        if mark is None:
            return None
        if not math.isfinite(mark):
            raise ValueError(f"mark must be finite, got {mark!r}")
        assert self._avg is not None
        return (mark - self._avg) * self._position * self._multiplier

    def net(self, mark: float | None) -> float | None:
        """realized - commissions + unrealized; None when the unrealized part is unknown."""
        open_pnl = self.unrealized(mark)
        if open_pnl is None:
            return None
        return self._realized - self._commissions + open_pnl


class DayLedger:
    """One trading day's PnL rebuilt from journaled executions of one account.

    Every execution, in time order, builds the positions and average costs (one `Ledger` per
    contract id); only executions of ``day`` count towards the day's realized PnL and
    commissions. Simplification: a position carried into the day is marked against its average
    entry price, not the previous settlement, so closing it today realizes its whole PnL since
    entry. Only journaled fills are known: a position the journal never saw filled is not here.
    A fill whose commission report has not arrived counts 0 commission and is counted in
    `pending_commissions`; rebuild after the report to include it.
    """

    __slots__ = (
        "_account",
        "_commissions",
        "_day",
        "_ledgers",
        "_multiplier",
        "_pending",
        "_realized",
    )

    def __init__(self, day: str, multiplier: float) -> None:
        if not (math.isfinite(multiplier) and multiplier > 0):
            raise ValueError(f"multiplier must be a positive finite number, got {multiplier!r}")
        self._day = day
        self._multiplier = multiplier
        self._ledgers: dict[int, Ledger] = {}
        self._account: str | None = None
        self._realized = 0.0
        self._commissions = 0.0
        self._pending = 0

    @classmethod
    def from_executions(
        cls, executions: Iterable[ExecRow], day: str, multiplier: float
    ) -> DayLedger:
        """Rebuild from executions in any order (sorted here by time, then exec id)."""
        ledger = cls(day, multiplier)
        for execution in sorted(executions, key=lambda e: (e.time, e.exec_id)):
            ledger.apply(execution)
        return ledger

    def apply(self, execution: ExecRow) -> float:
        """Apply one execution (in time order); return its realized PnL, counted or not."""
        if self._account is None:
            self._account = execution.account
        elif execution.account != self._account:
            raise ValueError(
                f"executions of several accounts: {mask_account(self._account)} and "
                f"{mask_account(execution.account)} (exec_id {execution.exec_id})"
            )
        ledger = self._ledgers.get(execution.con_id)
        if ledger is None:
            ledger = self._ledgers[execution.con_id] = Ledger(self._multiplier)
        commission = execution.commission if execution.commission is not None else 0.0
        realized = ledger.apply(execution.side, execution.shares, execution.price, commission)
        if execution.day == self._day:
            self._realized += realized
            self._commissions += commission
            if execution.commission is None:
                self._pending += 1
        return realized

    @property
    def day(self) -> str:
        return self._day

    @property
    def realized(self) -> float:
        """The day's realized PnL in USD, before commissions."""
        return self._realized

    @property
    def commissions(self) -> float:
        """The day's commissions (reports received so far)."""
        return self._commissions

    @property
    def pending_commissions(self) -> int:
        """The day's executions still without a commission report."""
        return self._pending

    def positions(self) -> dict[int, int]:
        """Signed position per contract id, flat contracts left out."""
        return {con: led.position for con, led in self._ledgers.items() if led.position != 0}

    def ledger(self, con_id: int) -> Ledger:
        """The ledger of one contract (a fresh flat one when it never traded)."""
        return self._ledgers.get(con_id) or Ledger(self._multiplier)

    def unrealized(self, marks: Mapping[int, float]) -> float | None:
        """Open PnL of every position at ``marks`` (price by contract id); None when a position
        has no mark."""
        total = 0.0
        for con_id, ledger in self._ledgers.items():
            open_pnl = ledger.unrealized(marks.get(con_id))
            if open_pnl is None:
                return None
            total += open_pnl
        return total

    def net(self, marks: Mapping[int, float]) -> float | None:
        """The day's realized - commissions + unrealized; None when a mark is missing."""
        open_pnl = self.unrealized(marks)
        if open_pnl is None:
            return None
        return self._realized - self._commissions + open_pnl
