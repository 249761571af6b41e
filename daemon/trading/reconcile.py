"""After every (re)connect: the broker's orders, executions and positions against the journal.

The broker is the source of truth. Open and completed orders and the executions of the day (of
this instance's client ids only: another client's fills are never ours) are requested again
(the executor's taps journal them: fills missed while away are recovered, each execId once, a
correction in place of what it corrects); journaled orders the broker never heard of were never
sent (a crash between the journal write and the send) and are abandoned, never re-sent; anything
else that differs — an acknowledged order the broker does not know, a position that does not add
up — is a mismatch, spelled out so the operator can see exactly what differs.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, field

import structlog

from daemon.broker.ib.client import IbClient
from daemon.core.orders import Status
from daemon.trading.closing import BrokerPositions
from daemon.trading.execution import Executor
from daemon.trading.journal import Journal

log = structlog.get_logger("daemon.trading.reconcile")


@dataclass
class ReconcileResult:
    mismatches: list[str] = field(default_factory=list)
    recovered_fills: int = 0  # new executions since the socket went down (set by the caller)
    abandoned: list[str] = field(default_factory=list)
    live_orders: int = 0
    broker_positions: dict[int, int] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.mismatches


async def reconcile(
    client: IbClient,
    executor: Executor,
    journal: Journal,
    *,
    symbol: str,
    account: str,
    offsets: dict[int, int],
    wait_s: float,
    positions_of: BrokerPositions,
    client_ids: Sequence[int],
) -> ReconcileResult:
    """Fetch the broker's state, journal what was missed, and list what differs."""
    result = ReconcileResult()
    # Every client's open orders: ours placed under a fallback client id in an earlier life
    # count as seen (the executor leaves other applications' orders alone).
    await asyncio.wait_for(client.open_orders(), wait_s)
    await asyncio.wait_for(client.completed_orders(), wait_s)
    for client_id in dict.fromkeys(client_ids):
        await asyncio.wait_for(client.executions(client_id), wait_s)
    positions = await positions_of.request(wait_s)
    if positions is None:
        raise TimeoutError(f"positions not answered within {wait_s:g} s")

    abandon = []
    for rec in executor.live():
        if rec.ref in executor.seen_at_broker:
            continue
        if rec.perm_id is None and rec.status in (Status.JOURNALED, Status.PENDING_SUBMIT):
            abandon.append(rec)
        else:
            result.mismatches.append(
                f"order {rec.ref} (perm_id {rec.perm_id}) is {rec.status} in the journal but "
                "the broker has no such order"
            )
    executor.abandon(abandon, "never reached the broker (not among its open or completed orders)")
    result.abandoned = [r.ref for r in abandon]
    for ref in {r.intent_ref for r in abandon if r.intent_ref}:
        journal.set_intent_status(ref, "abandoned", "its orders never reached the broker")
    result.live_orders = len(executor.live())

    broker: dict[int, int] = {}
    names: dict[int, str] = {}
    for pos in positions:
        if pos.symbol != symbol or (account and pos.account != account):
            continue
        broker[pos.con_id] = broker.get(pos.con_id, 0) + int(pos.quantity)
        names[pos.con_id] = pos.local_symbol or str(pos.con_id)
    result.broker_positions = broker
    con_ids = set(broker) | {e.con_id for e in journal.executions()} | set(offsets)
    for con_id in sorted(con_ids):
        ours = journal.journal_position(con_id) + offsets.get(con_id, 0)
        theirs = broker.get(con_id, 0)
        if ours != theirs:
            result.mismatches.append(
                f"position in {names.get(con_id, con_id)} (conId {con_id}): account at the "
                f"broker {theirs}, this instance's journaled fills {ours}"
            )
    return result
