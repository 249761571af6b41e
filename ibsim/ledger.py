"""The broker's book of fills and positions: execution reports, corrections, and positions.

Every execution report of the day is kept in the order it was made (what `reqExecutions`
answers). A correction is a new report whose execId differs from the one it corrects only in
the number after the final period (`….01.01` → `….01.02`); it *replaces* that execution in the
book. Positions are booked fill by fill; a correction rebuilds the position of its account and
contract by replaying the booked fills in their original order, so quantity, average cost and
realized PnL are exactly what they would have been had the corrected fill been right first.

Accounting: commission = ``commission_per_contract`` x shares per fill. Position ``avg_cost``
is USD per contract as IB reports futures: price x multiplier, plus the opening commission per
contract for a long, minus it for a short. A fill that only opens or adds has
``realized_pnl=None``; one that closes ``c`` contracts (fully, partly, or on a flip) has
``realized_pnl = side x (price x multiplier - avg_cost) x c - commission x c / shares``, i.e.
price difference x closed quantity x multiplier minus the opening and the closing commission
of the closed contracts (side is +1 closing a long, -1 closing a short). The remainder of a
flip opens at the fill price with its share of this fill's commission. A correction leaves the
order's filled quantity and status as they were (its lifecycle is not reopened).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable

from ibsim.model import ES_MULTIPLIER, Execution, Position, Side


def next_revision(exec_id: str) -> str:
    """The execId of the correction of `exec_id`: the number after the last period + 1."""
    base, dot, last = exec_id.rpartition(".")
    if not dot or not last.isdigit():
        raise ValueError(f"execId {exec_id!r} does not end in a revision number")
    return f"{base}.{int(last) + 1:0{len(last)}d}"


class Ledger:
    """Execution reports (corrections included) and the positions booked from them."""

    def __init__(
        self,
        multiplier: float = ES_MULTIPLIER,
        multiplier_of: Callable[[int], float] | None = None,
    ) -> None:
        """`multiplier_of` gives a conId's multiplier when contracts differ."""
        self._multiplier_of = multiplier_of or (lambda _con_id: multiplier)
        self._reports: list[Execution] = []  # every report, in the order it was made
        self._booked: dict[str, Execution] = {}  # original execId -> its latest version
        self._original: dict[str, str] = {}  # any execId -> the original it revises
        self._corrected: dict[str, str] = {}  # replaced execId -> the one replacing it
        self._positions: dict[tuple[str, int], Position] = {}

    # --- queries ---

    def reports(self) -> list[Execution]:
        """Every execution report of the day, corrections included, oldest first."""
        return list(self._reports)

    def booked(self) -> list[Execution]:
        """The fills as booked: each in its latest version, in the order they happened."""
        return list(self._booked.values())

    def corrections(self) -> dict[str, str]:
        """Replaced execId -> the execId of the report that replaced it."""
        return dict(self._corrected)

    def current(self, exec_id: str) -> Execution:
        """The latest version of the fill `exec_id` belongs to (KeyError if unknown)."""
        original = self._original.get(exec_id)
        if original is None:
            raise KeyError(f"no execution {exec_id!r}")
        return self._booked[original]

    def latest(self) -> Execution | None:
        """The most recent report (always a booked one: a correction comes after its fill)."""
        return self._reports[-1] if self._reports else None

    def positions(self) -> list[Position]:
        return list(self._positions.values())

    # --- booking ---

    def book_fill(
        self, account: str, con_id: int, side: Side, qty: int, price: float, commission: float
    ) -> float | None:
        """Apply a new fill to its position; the realized PnL, None if nothing closed."""
        pos = self._positions.get((account, con_id))
        if pos is None:
            pos = self._positions[(account, con_id)] = Position(account, con_id)
        return self._apply(pos, side, qty, price, commission)

    def record(self, execution: Execution) -> None:
        """Keep the report of a fill booked with `book_fill`."""
        self._reports.append(execution)
        self._booked[execution.exec_id] = execution
        self._original[execution.exec_id] = execution.exec_id

    def correct(
        self, exec_id: str, *, price: float, shares: int, commission: float, time: float
    ) -> Execution:
        """Replace the fill `exec_id` (its latest version) by a correction; returns it.

        ``cum_qty`` and ``avg_price`` of the correction are its order's totals over the booked
        fills up to this one; ``realized_pnl`` comes from replaying the position.
        """
        if not (math.isfinite(price) and price > 0):
            raise ValueError(f"a corrected price must be finite and positive, got {price}")
        if shares <= 0:
            raise ValueError(f"corrected shares must be positive, got {shares}")
        old = self.current(exec_id)
        root = self._original[old.exec_id]
        new = dataclasses.replace(
            old,
            exec_id=next_revision(old.exec_id),
            time=time,
            price=price,
            shares=shares,
            commission=commission,
        )
        self._booked[root] = new
        cum_qty, cum_value = 0, 0.0
        for ex in self._booked.values():  # the order's booked fills up to the corrected one
            if ex.perm_id == new.perm_id:
                cum_qty += ex.shares
                cum_value += ex.shares * ex.price
                if ex is new:
                    break
        realized = self._rebook(new)
        new = dataclasses.replace(
            new, cum_qty=cum_qty, avg_price=cum_value / cum_qty, realized_pnl=realized
        )
        self._booked[root] = new
        self._original[new.exec_id] = root
        self._corrected[old.exec_id] = new.exec_id
        self._reports.append(new)
        return new

    def _rebook(self, correction: Execution) -> float | None:
        """Replay the booked fills of the correction's position; its realized PnL."""
        key = (correction.account, correction.con_id)
        fresh = Position(*key)
        realized: float | None = None
        for ex in self._booked.values():
            if (ex.account, ex.con_id) == key:
                pnl = self._apply(fresh, ex.side, ex.shares, ex.price, ex.commission)
                if ex.exec_id == correction.exec_id:
                    realized = pnl
        pos = self._positions[key]
        pos.quantity, pos.avg_cost = fresh.quantity, fresh.avg_cost
        pos.realized_pnl = fresh.realized_pnl
        return realized

    def _apply(
        self, pos: Position, side: Side, qty: int, price: float, commission: float
    ) -> float | None:
        signed = qty if side is Side.BUY else -qty
        fee = commission / qty
        value = price * self._multiplier_of(pos.con_id)
        if pos.quantity == 0 or (pos.quantity > 0) == (signed > 0):
            direction = 1 if signed > 0 else -1
            held = abs(pos.quantity)
            pos.avg_cost = (held * pos.avg_cost + qty * (value + direction * fee)) / (held + qty)
            pos.quantity += signed
            return None
        direction = 1 if pos.quantity > 0 else -1
        closed = min(qty, abs(pos.quantity))
        realized = direction * (value - pos.avg_cost) * closed - fee * closed
        pos.realized_pnl += realized
        pos.quantity += signed
        if pos.quantity == 0:
            pos.avg_cost = 0.0
        elif closed < qty:
            pos.avg_cost = value - direction * fee
        return realized
