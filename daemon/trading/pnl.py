"""The day's PnL and the journaled position, both from the journal's executions.

`DayPnl` rebuilds the front contract's `Ledger` (position, average price) and the trading day's
realized PnL and commissions from the journal: after every fill, after a reconcile, and when the
trading day rolls (which also starts the risk manager's new day). Unrealized and net PnL are
marked at the last trade. The journaled position per contract (Σ its fills) is cached between
fills: it is on every trade's path.
"""

from __future__ import annotations

from collections.abc import Callable

from daemon.core.instrument import Instrument
from daemon.flow.sessions import SessionSchedule
from daemon.trading.journal import Journal
from daemon.trading.ledger import DayLedger, Ledger

__all__ = ["DayPnl"]


class DayPnl:
    """The trading day's realized PnL, commissions and the front contract's ledger."""

    def __init__(
        self,
        journal: Journal,
        schedule: SessionSchedule,
        *,
        con_id: Callable[[], int | None],  # the front contract's, once known
        instrument: Callable[[], Instrument],
        mark: Callable[[], float | None],  # the last trade's price
        on_new_day: Callable[[str], None],
    ) -> None:
        self.journal = journal
        self.schedule = schedule
        self._con_id = con_id
        self._instrument = instrument
        self._mark = mark
        self._on_new_day = on_new_day
        self.day = ""
        self.ledger = Ledger(instrument().multiplier)
        self.realized = 0.0
        self.commissions = 0.0
        self.positions: dict[int, int] = {}  # con_id -> Σ journaled fills, every contract
        self.rebuild()

    def rebuild(self) -> None:
        """Position, average price and the day's PnL from the journal's executions."""
        self.positions = self.journal.positions_by_contract()
        con_id = self._con_id()
        multiplier = self._instrument().multiplier
        executions = self.journal.executions(con_id=con_id)
        day = DayLedger.from_executions(executions, self.day, multiplier)
        self.ledger = day.ledger(con_id) if con_id is not None else Ledger(multiplier)
        self.realized = day.realized
        self.commissions = day.commissions

    def journaled(self, con_id: int) -> int:
        """Σ the journal's fills in ``con_id`` (as of the last `rebuild`: every fill and
        reconcile makes one)."""
        return self.positions.get(con_id, 0)

    def unrealized(self) -> float | None:
        return self.ledger.unrealized(self._mark())

    def net(self) -> float | None:
        """realized - commissions + unrealized; None while the unrealized part is unknown."""
        unrealized = self.unrealized()
        if unrealized is None:
            return None
        return self.realized - self.commissions + unrealized

    def roll(self, now: float) -> None:
        """At market time ``now``: a new trading day starts the risk's day and a rebuild."""
        day = self.schedule.trading_day(now)
        if day != self.day:
            self.day = day
            self._on_new_day(day)
            self.rebuild()

    def record(self, net: float | None, time: float) -> None:
        """The day's figures into the journal's daily PnL row (when ``net`` is known)."""
        if net is None:
            return
        self.journal.upsert_daily_pnl(
            self.day,
            realized=self.realized,
            unrealized=self.unrealized() or 0.0,
            commissions=self.commissions,
            net=net,
            time=time,
        )
