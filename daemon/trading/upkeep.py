"""The once-a-second care of the orders and the journal, apart from the strategy's intents.

`OrderUpkeep`: a position no live stop covers is reported; stops and targets whose position is
gone are cancelled (`strays`), only while the broker's own word agrees that it is gone; entries
older than `execution.entry_timeout_s` are cancelled, or cut to what filled. `JournalCheck`:
every `trading.journal_check_s` the journal on disk is read back. `PositionWatch`: our position
and the one the broker pushes must agree; a difference that outlasts a few seconds (a fill, a
correction or a status one side never heard of) makes ours untrusted and asks the broker again.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Coroutine, Iterable
from typing import Any

import structlog

from daemon.core.orders import Order, Role, Side
from daemon.trading.alarms import Alarms
from daemon.trading.closing import BrokerPositions
from daemon.trading.execution import Executor
from daemon.trading.journal import Journal, JournalError
from daemon.trading.risk import RiskManager
from daemon.trading.strays import StrayWatch, stray_children
from daemon.trading.sync import BrokerSync

log = structlog.get_logger("daemon.trading.upkeep")

__all__ = ["JournalCheck", "OrderUpkeep", "PositionWatch", "unprotected"]

POSITION_GRACE_S = 3.0  # wall seconds a fill may take to reach both our count and the broker's
RECHECK_AGAIN_S = 30.0  # wall seconds between two reconciles started by a difference


def unprotected(position: int | None, live: Iterable[Order]) -> int:
    """Contracts of ``position`` no live stop at the broker would close (0 = all covered)."""
    if not position:
        return 0
    closing = Side.closing(position)
    stops = sum(r.remaining for r in live if r.role is Role.STOP and r.action == closing)
    return max(0, abs(position) - stops)


class OrderUpkeep:
    """The unprotected warning, stray cancels and entry timeouts (call while connected)."""

    def __init__(
        self,
        executor: Executor,
        risk: RiskManager,
        positions: BrokerPositions,
        sync: BrokerSync,
        *,
        entry_timeout_s: float,
        closing: Callable[[], bool],  # exits on their way, or a flatten running
        cancel: Callable[[Order, str], None],
        record_event: Callable[..., None],
        wall: Callable[[], float],
    ) -> None:
        self.executor = executor
        self.risk = risk
        self.positions = positions
        self.sync = sync
        self.entry_timeout_s = entry_timeout_s
        self._closing = closing
        self._cancel = cancel
        self._event = record_event
        self.strays = StrayWatch(wall)
        self.runs = 0  # times `run` has run

    def run(self, now: float) -> None:
        """Once a second at market time ``now``, while connected."""
        self.runs += 1
        if not self._closing():
            self._warn_unprotected()
        self._cancel_strays()
        for rec in self.executor.live():
            if (
                rec.role is not Role.ENTRY
                or now - rec.created < self.entry_timeout_s
                or rec.perm_id is None
            ):
                continue
            if rec.filled == 0:
                self._cancel(rec, "entry timeout")
            elif rec.quantity > rec.filled:
                self.executor.modify(rec, quantity=rec.filled)  # keep what filled, protected
                self.risk.record_sent(1)

    def _warn_unprotected(self) -> None:
        """Contracts no live stop covers: in the front month, and in any month this instance
        still holds (kept at a roll, or left by a roll that failed)."""
        front, position = self.sync.con_id(), self.sync.position
        if front is None or position is None:
            return
        live = self.executor.live()
        months: dict[int, int] = {front: position, **self.sync.held_elsewhere()}
        for con_id, held in months.items():
            orders = [r for r in live if (r.con_id or front) == con_id]
            naked = unprotected(held, orders)
            if naked:
                log.error(
                    "position_unprotected",
                    contracts=naked,
                    position=held,
                    con_id=con_id,
                    action="no live stop covers them at the broker: orderflowd flatten, or "
                    "place one",
                    rate_limited=True,
                    rate_key=f"position_unprotected_{con_id}",
                )

    def _cancel_strays(self) -> None:
        """Cancel stops and targets whose position is gone (see `strays`) — only while the
        broker's own word agrees that it is gone: a fill we refused or have not heard of yet
        must not cost the position its protection."""
        position = self.sync.position
        if position is None or self.positions.last(self.sync.con_id()) != position:
            return
        live = self.executor.live_here()  # a rolled-out month's bracket protects its own
        for rec in self.strays.due(stray_children(live, self.executor.orders, position)):
            log.warning(
                "stray_order_cancelled",
                ref=rec.ref,
                role=rec.role.value,
                action=rec.action,
                remaining=rec.remaining,
                position=position,
            )
            self._event("stray_cancel", ref=rec.ref, role=rec.role.value, position=position)
            self._cancel(rec, "its position is gone")


class JournalCheck:
    """Is the journal on disk what this process wrote? (A damaged WAL shows only to a new
    connection, i.e. at the next start, otherwise.)"""

    def __init__(
        self, journal: Journal, alarms: Alarms, every_s: float, wall: Callable[[], float]
    ) -> None:
        self.journal = journal
        self.alarms = alarms
        self.every_s = every_s
        self._wall = wall
        self._checked = wall()

    def run(self) -> None:
        """Once a second; reads the journal back every ``every_s``."""
        wall = self._wall()
        if wall - self._checked < self.every_s:
            return
        self._checked = wall
        try:
            problem = self.journal.check_on_disk()
        except sqlite3.Error as exc:
            problem = f"journal {self.journal.path} cannot be read back: {exc}"
        if problem is not None:
            self.alarms.journal_failed(JournalError(problem))


class PositionWatch:
    """Our trusted position against the account's as the broker last pushed it.

    A fill is counted by us from its execution and by the broker in its position message; both
    arrive within moments. When they still differ after ``grace_s`` (an execution or its
    correction withheld, a status lost), ours is not trusted any more: the difference is logged
    and journaled with both figures, and the broker is asked again (`BrokerSync.recheck`:
    executions, orders, positions). Its answer decides: a fill recovered makes them agree and
    trading goes on; a difference that remains halts trading as a reconcile mismatch. Entries
    are refused meanwhile (`risk`: position_unconfirmed).
    """

    def __init__(
        self,
        sync: BrokerSync,
        spawn: Callable[[Coroutine[Any, Any, Any]], Any],
        record_event: Callable[..., None],
        wall: Callable[[], float],
        *,
        grace_s: float = POSITION_GRACE_S,
        again_s: float = RECHECK_AGAIN_S,
    ) -> None:
        self.sync = sync
        self._spawn = spawn
        self._event = record_event
        self._wall = wall
        self.grace_s = grace_s
        self.again_s = again_s
        self._since: float | None = None  # wall time the current difference was first seen
        self._last_recheck = -float("inf")
        self.rechecks = 0

    def run(self) -> None:
        """Once a second, while connected."""
        ours, broker = self.sync.position, self.sync.broker_position()
        if ours is None or broker is None or ours == broker:
            self._since = None
            return
        wall = self._wall()
        if self._since is None:
            self._since = wall
        lasted = wall - self._since
        if lasted < self.grace_s or wall - self._last_recheck < self.again_s:
            return
        log.warning(
            "position_differs",
            ours=ours,
            broker=broker,
            seconds=round(lasted, 1),
            action="entries refused; asking the broker again for executions, orders, positions",
        )
        self._event("position_differs", ours=ours, broker=broker, seconds=round(lasted, 1))
        self._since = None
        self._last_recheck = wall
        self.rechecks += 1
        self._spawn(self.sync.recheck())
