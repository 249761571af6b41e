"""Executions of our orders, taken in for `OrderReceiver`: checked, journaled, reported once.

An execution is journaled by execId: a redelivered fill is recognised and counted once, a
correction replaces the version it corrects. A fill that cannot be true (`fills.fill_problem`)
is never counted: it is reported as an anomaly.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import structlog

from daemon.core.gateway import ExecutionReport
from daemon.core.orders import Order, Status
from daemon.flow.tick_checks import UNSET_DOUBLE
from daemon.settings import ExecutionSettings
from daemon.trading.fills import FillFacts, exec_version, fill_problem
from daemon.trading.journal import ExecRow, FillOutcome, Journal

log = structlog.get_logger("daemon.trading.execution")


@dataclass(frozen=True, slots=True)
class FillReport:
    """One new execution of ours (never a redelivered one)."""

    exec_id: str
    ref: str | None
    side: str  # BUY | SELL
    shares: int
    price: float
    time: float
    con_id: int
    corrects: str | None = None  # the execId this fill corrects (it replaced that one)


class FillReceiver:
    """Takes in the executions of orders known to be ours (see the module docstring).

    `set_status(order, status, filled, avg_fill_price)` is the receiver's: an execution also
    brings the order's own filled count up to date when its status message comes late.
    """

    def __init__(
        self,
        journal: Journal,
        settings: ExecutionSettings,
        *,
        on_fill: Callable[[FillReport], None],
        on_anomaly: Callable[[str, str, str], None],
        set_status: Callable[[Order, Status, int, float | None], None],
        market_price: Callable[[], float | None],
        day_of: Callable[[float], str],
        wall: Callable[[], float],
    ) -> None:
        self.journal = journal
        self.settings = settings
        self.new_fills = 0  # executions journaled for the first time
        self._on_fill = on_fill
        self._on_anomaly = on_anomaly
        self._set_status = set_status
        self._market_price = market_price
        self._day_of = day_of
        self._wall = wall

    def take(self, rec: Order, ex: ExecutionReport) -> None:
        """An execution of `rec` whose side could be read."""
        assert ex.side is not None  # the receiver reports an unreadable side instead
        if self.journal.execution(ex.exec_id) is not None:  # redelivered: checked before
            self._count_cum_qty(rec, ex)
            return
        version = exec_version(ex.exec_id)
        earlier = None if version is None else self.journal.other_version(version)
        problem = fill_problem(
            FillFacts(
                shares=ex.shares,
                price=ex.price,
                cum_qty=ex.cum_qty,
                avg_price=ex.avg_price,
                order_quantity=self._order_quantity(rec),
                filled_before=self.journal.order_fills(
                    rec.ref, without=None if earlier is None else earlier.exec_id
                ),
                reference_price=rec.price or self._market_price(),
                band_pct=self.settings.fill_price_band_pct,
            )
        )
        if problem is not None:
            detail = f"execution {ex.exec_id} of order {rec.ref} ({ex.side.value}): {problem}"
            self._on_anomaly("bad_fill", f"fill:{ex.exec_id}", detail)
            return
        side = ex.side.value
        shares = int(ex.shares)
        when = ex.time if ex.time is not None else self._wall()
        row = ExecRow(
            exec_id=ex.exec_id,
            order_ref=rec.ref,
            perm_id=ex.perm_id,
            order_id=ex.order_id,
            client_id=ex.client_id,
            time=when,
            day=self._day_of(when),
            con_id=ex.con_id,
            account=ex.account,
            side=side,
            shares=shares,
            price=ex.price,
            cum_qty=int(ex.cum_qty),
            avg_price=ex.avg_price,
        )
        outcome, replaced = self.journal.record_fill(row)
        self._count_cum_qty(rec, ex)
        if outcome not in (FillOutcome.NEW, FillOutcome.CORRECTION):
            log.info("fill_superseded", ref=rec.ref, exec_id=ex.exec_id, outcome=outcome.value)
            return
        self.new_fills += outcome is FillOutcome.NEW
        corrects = None if replaced is None else replaced.exec_id
        log.info(
            "fill" if corrects is None else "fill_corrected",
            ref=rec.ref,
            exec_id=ex.exec_id,
            side=side,
            shares=shares,
            price=ex.price,
            corrects=corrects,
            was=None if replaced is None else f"{replaced.shares} @ {replaced.price:g}",
        )
        self._on_fill(
            FillReport(ex.exec_id, rec.ref, side, shares, ex.price, when, ex.con_id, corrects)
        )

    def _order_quantity(self, rec: Order) -> int:
        """The most this order may fill: what was sent (a modify lowering it in memory may not
        have reached the broker when a fill crosses it)."""
        row = self.journal.order(rec.ref)
        return max(rec.quantity, row.quantity if row is not None else 0)

    def _count_cum_qty(self, rec: Order, ex: ExecutionReport) -> None:
        """The order's own filled count, even when its status message came late."""
        cum_qty = _quantity(ex.cum_qty)
        if cum_qty is not None and cum_qty > rec.filled:
            self._set_status(rec, rec.status, cum_qty, _price(ex.avg_price))


def _quantity(value: float) -> int | None:
    """A whole quantity from the wire; None for IB's unset double or nonsense."""
    number = _price(value)
    if number is None or not math.isfinite(number) or number < 0:
        return None
    return int(number)


def _price(value: float) -> float | None:
    return None if value >= UNSET_DOUBLE or math.isnan(value) else value
