"""Reconcile on (re)connect, and whether our position can be trusted.

`BrokerSync` is the connection's session and disconnect hook. On a new session it claims the
order-ref prefix (or the daemon exits 78), routes orders to the account and contract, and
reconciles the broker's orders, executions and positions against the journal (`reconcile`);
only a clean reconcile on a live socket makes the position trusted, and with it any order
possible. A mismatch halts trading and is kept (`mismatches`) until the operator resumes, which
adopts the broker's position as an offset to the journal's fills (journaled, so it outlives a
restart) and marks orders the broker no longer knows as Lost.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import structlog

from daemon.broker.connection import Connection
from daemon.broker.contracts import Listing
from daemon.broker.ib.client import IbClient
from daemon.trading.alarms import Alarms
from daemon.trading.closing import BrokerPositions
from daemon.trading.execution import Executor
from daemon.trading.instance import PrefixClaim
from daemon.trading.journal import Journal, JournalError
from daemon.trading.pnl import DayPnl
from daemon.trading.reconcile import reconcile
from daemon.trading.risk import RiskManager
from daemon.trading.tasks import Changes

log = structlog.get_logger("daemon.trading.sync")

__all__ = ["BrokerSync"]


class BrokerSync:
    """The broker's state against the journal after every connect (see the module docstring)."""

    def __init__(
        self,
        conn: Connection,
        executor: Executor,
        journal: Journal,
        positions: BrokerPositions,
        claim: PrefixClaim,
        pnl: DayPnl,
        risk: RiskManager,
        alarms: Alarms,
        changes: Changes,
        *,
        symbol: str,
        wait_s: float,
        contract: Callable[[], Listing | None],  # the front contract, once known
        route: Callable[[object | None, str], None],  # orders go to (contract, account)
        record_event: Callable[..., None],
        wall: Callable[[], float],
    ) -> None:
        self.conn = conn
        self.executor = executor
        self.journal = journal
        self.positions = positions
        self.claim = claim
        self.pnl = pnl
        self.risk = risk
        self.alarms = alarms
        self.changes = changes
        self.symbol = symbol
        self.wait_s = wait_s
        self._contract = contract
        self._route = route
        self._event = record_event
        self._wall = wall
        self.reconciled = False
        self.last_reconcile: dict[str, Any] | None = None
        self.mismatches: list[str] = []
        self.offsets: dict[int, int] = {}  # con_id -> adopted broker position - journaled fills
        self._fills_at_disconnect = 0
        for ev in journal.events("adopt_position"):
            self.offsets[int(ev.data["con_id"])] = int(ev.data["offset"])

    # --- the position ---

    @property
    def position(self) -> int | None:
        """Our position in the front contract; None when it cannot be trusted."""
        if not self.reconciled or not self.conn.ready:
            return None
        return self.raw_position()

    def raw_position(self) -> int:
        """The journal's fills (and any adopted offset), trusted or not."""
        con_id = self.con_id()
        return self.pnl.ledger.position if con_id is None else self.position_of(con_id)

    def position_of(self, con_id: int) -> int:
        return self.pnl.journaled(con_id) + self.offsets.get(con_id, 0)

    def held_elsewhere(self) -> dict[int, int]:
        """This instance's positions in contracts other than the front one (a month rolled
        out of with ``instrument.on_roll = "keep"``), by conId."""
        front = self.con_id()
        held = {c: self.position_of(c) for c in {*self.pnl.positions, *self.offsets}}
        return {c: p for c, p in held.items() if p and c != front}

    def broker_position(self) -> int | None:
        """The account's position in the front contract as the broker last pushed it (None:
        not connected, or the contract not known yet)."""
        return self.positions.last(self.con_id())

    def con_id(self) -> int | None:
        """The front contract's id, once known."""
        contract = self._contract()
        return None if contract is None else contract.con_id

    def route_to_front(self) -> None:
        """New orders go to the front contract (at each session, and when the front rolls);
        orders already sent keep their own contract."""
        front = self._contract()
        self._route(None if front is None else front.contract, self.conn.account or "")

    # --- the connection's hooks ---

    async def on_session(self, client: IbClient) -> None:
        self.reconciled = False
        self.route_to_front()
        self.claim.claim(self.conn.account or "", self.conn.status.port)  # or exit 78
        self._event("connect", client_id=client.client_id, port=self.conn.status.port)
        await self.reconcile(client)

    def on_disconnect(self) -> None:
        self.reconciled = False
        self._fills_at_disconnect = self.executor.new_fills
        self.executor.forget_session()
        self.positions.forget()
        self._event("disconnect")

    # --- reconcile ---

    async def reconcile(self, client: IbClient) -> None:
        """The broker's state against the journal (see `reconcile`); a journal that cannot be
        written leaves the position untrusted: no orders until it is."""
        try:
            await self._reconcile(client)
        except JournalError as exc:
            self.alarms.journal_failed(exc)

    async def _reconcile(self, client: IbClient) -> None:
        result = await reconcile(
            client,
            self.executor,
            self.journal,
            symbol=self.symbol,
            account=self.conn.account or "",
            offsets=self.offsets,
            wait_s=self.wait_s,
            positions_of=self.positions,
            client_ids=self.executor.ownership.client_ids,
        )
        result.recovered_fills = self.executor.new_fills - self._fills_at_disconnect
        self._fills_at_disconnect = self.executor.new_fills
        self.pnl.rebuild()
        self.mismatches = result.mismatches
        self.last_reconcile = {
            "at": self._wall(),
            "ok": result.ok,
            "recovered_fills": result.recovered_fills,
            "abandoned": result.abandoned,
            "live_orders": result.live_orders,
            "mismatches": result.mismatches,
        }
        self._event("reconcile", **self.last_reconcile)
        con_id = self.con_id()
        if con_id is not None:
            self.journal.record_position(
                time=self._wall(),
                con_id=con_id,
                account=self.conn.account or "",
                broker_qty=result.broker_positions.get(con_id, 0),
                journal_qty=self.position_of(con_id),
                avg_cost=self.pnl.ledger.avg_price or 0.0,
                source="reconcile",
            )
        log.info(
            "reconciled",
            ok=result.ok,
            recovered_fills=result.recovered_fills,
            abandoned=len(result.abandoned),
            live_orders=result.live_orders,
            position=self.raw_position(),
        )
        if not result.ok:
            for line in result.mismatches:
                log.error("reconcile_mismatch", detail=line)
            self._event("mismatch", mismatches=result.mismatches)
            self.risk.halt("reconcile mismatch: " + "; ".join(result.mismatches))
            return
        self.reconciled = True
        self.changes.set()

    async def recheck(self) -> None:
        """Ask the broker again (after an alarm): the position is untrusted until it answers."""
        self.reconciled = False
        await self.reconcile(self.conn.client)

    # --- the operator's answer to a mismatch ---

    def accept_broker(self) -> str | None:
        """After a mismatch, the broker's word stands: its position adopted, orders it does not
        know marked Lost. None when done (or nothing to accept), else why it cannot be now."""
        if not self.mismatches:
            return None
        con_id = self.con_id()
        if con_id is None or self.positions.last(con_id) is None:
            return (
                "the broker's position is not known (not connected): resume once the daemon "
                "is connected again"
            )
        self._adopt(con_id)
        gone = [r for r in self.executor.live() if r.ref not in self.executor.seen_at_broker]
        self.executor.lose(gone, "the broker has no such order (accepted by the operator)")
        self.mismatches = []
        self.reconciled = self.conn.ready
        return None

    def _adopt(self, con_id: int) -> None:
        broker = self.positions.last(con_id) or 0  # known: checked by the caller
        journal = self.journal.journal_position(con_id)
        offset = broker - journal
        self.offsets[con_id] = offset
        self._event("adopt_position", con_id=con_id, broker=broker, journal=journal, offset=offset)
        log.warning("position_adopted", con_id=con_id, broker=broker, journal=journal)
