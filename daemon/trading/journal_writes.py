"""The journal's writes: `JournalWrites`, mixed into `daemon.trading.journal.Journal`.

Each write is one transaction, committed before the method returns (see the journal's module
docstring for why); bad input raises `ValueError` and a refused write `JournalError`, and
either way nothing is written.
"""

from __future__ import annotations

import json
import math
import sqlite3
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict
from typing import Any

from daemon.core.orders import Order, Status
from daemon.trading.fills import exec_version
from daemon.trading.journal_queries import find_version
from daemon.trading.journal_schema import (
    EVENT_COLS,
    INSERT_DAILY,
    INSERT_EXEC,
    INSERT_INTENT,
    INSERT_ORDER,
    INSERT_POSITION,
    INSERT_STATUS,
    ExecRow,
    FillOutcome,
    JournalError,
    check_commission,
    check_day,
    check_intent_status,
    check_new_order,
    check_realized_pnl,
    check_time,
    journaled_values,
    json_default,
)
from daemon.trading.ledger import normalize_side
from daemon.trading.model import EntryType


class JournalWrites:
    """Recording intents, orders and their status, fills and commissions, position snapshots,
    daily PnL and events."""

    _db: sqlite3.Connection  # opened by `Journal`

    @contextmanager
    def _transaction(self, what: str) -> Iterator[sqlite3.Connection]:
        """Commit on success; roll back and raise `JournalError` (``what`` failed) on a
        database error, so a caller catches one type whenever nothing was written."""
        try:
            with self._db:
                yield self._db
        except sqlite3.Error as e:
            raise JournalError(f"{what}: {e}") from e

    def _write(self, sql: str, params: Sequence[Any], what: str) -> sqlite3.Cursor:
        """One statement in its own committed transaction."""
        with self._transaction(what) as db:
            return db.execute(sql, params)

    # --- intents ----------------------------------------------------------------------------

    def record_intent(
        self,
        ref: str,
        *,
        time: float,
        day: str,
        target: int,
        entry: str,
        offset_ticks: int,
        stop_ticks: int,
        target_ticks: int,
        reason: str,
        status: str = "new",
        detail: str = "",
    ) -> None:
        """Store an intent; a ref already journaled raises `JournalError`."""
        if not ref:
            raise ValueError("intent ref must not be empty")
        check_time(time)
        check_day(day)
        check_intent_status(status)
        try:
            entry = EntryType(entry).value
        except ValueError:
            raise ValueError(f"entry must be LMT or MKT, got {entry!r}") from None
        values = (
            ref, time, day, target, entry, offset_ticks, stop_ticks, target_ticks, reason, status,
            detail,
        )  # fmt: skip
        self._write(INSERT_INTENT, values, f"intent {ref!r} not recorded")

    def set_intent_status(self, ref: str, status: str, detail: str = "") -> bool:
        """Set an intent's status and detail; False when the ref is unknown."""
        check_intent_status(status)
        cursor = self._write(
            "UPDATE intents SET status = ?, detail = ? WHERE ref = ?",
            (status, detail, ref),
            f"intent {ref!r} not updated",
        )
        return cursor.rowcount == 1

    # --- orders -----------------------------------------------------------------------------

    def record_orders(self, rows: Sequence[Order]) -> None:
        """Journal orders (a bracket) in one transaction, status ``Journaled``, before sending.

        Every row is checked first (`ValueError` naming the field); a duplicate ref, an unknown
        ``intent_ref`` or ``parent_ref`` raises `JournalError`. Either way nothing is written.
        """
        for row in rows:
            check_new_order(row)
        orders = [journaled_values(o) for o in rows]
        history = [(o.ref, o.created, Status.JOURNALED.value, 0, o.quantity, "") for o in rows]
        refs = ", ".join(o.ref for o in rows)
        with self._transaction(f"orders not recorded ({refs})") as db:
            db.executemany(INSERT_ORDER, orders)
            db.executemany(INSERT_STATUS, history)

    def update_order(
        self,
        ref: str,
        *,
        order_id: int | None = None,
        perm_id: int | None = None,
        status: str | None = None,
        filled: int | None = None,
        remaining: int | None = None,
        avg_fill_price: float | None = None,
        time: float,
        detail: str = "",
    ) -> bool:
        """Change the given fields of an order; False when the ref is unknown.

        A history row (with ``detail``) is added when the status or the filled quantity
        changed. Nothing is written when no field changes.
        """
        check_time(time)
        if status is not None and not status:
            raise ValueError("status must not be empty")
        for name, quantity in (("filled", filled), ("remaining", remaining)):
            if quantity is not None and quantity < 0:
                raise ValueError(f"{name} must be >= 0, got {quantity!r}")
        if avg_fill_price is not None and not math.isfinite(avg_fill_price):
            raise ValueError(f"avg_fill_price must be finite, got {avg_fill_price!r}")
        given = {
            "order_id": order_id,
            "perm_id": perm_id,
            "status": status,
            "filled": filled,
            "remaining": remaining,
            "avg_fill_price": avg_fill_price,
        }
        with self._transaction(f"order {ref!r} not updated") as db:
            current = db.execute(
                "SELECT order_id, perm_id, status, filled, remaining, avg_fill_price "
                "FROM orders WHERE ref = ?",
                (ref,),
            ).fetchone()
            if current is None:
                return False
            old = dict(zip(given, current, strict=True))
            changes = {k: v for k, v in given.items() if v is not None and v != old[k]}
            if not changes:
                return True
            assignments = "".join(f"{name} = ?, " for name in changes)
            db.execute(
                f"UPDATE orders SET {assignments}updated = ? WHERE ref = ?",
                (*changes.values(), time, ref),
            )
            if "status" in changes or "filled" in changes:
                new = old | changes
                db.execute(
                    INSERT_STATUS,
                    (ref, time, new["status"], new["filled"], new["remaining"], detail),
                )
        return True

    # --- executions -------------------------------------------------------------------------

    def record_execution(self, execution: ExecRow) -> bool:
        """`record_fill`, True when the fill is new or corrects an earlier version."""
        outcome, _ = self.record_fill(execution)
        return outcome in (FillOutcome.NEW, FillOutcome.CORRECTION)

    def record_fill(self, execution: ExecRow) -> tuple[FillOutcome, ExecRow | None]:
        """Store a fill (``side`` BUY/SELL or IB's BOT/SLD, stored as BUY/SELL), in one
        transaction, and say what that did (with the row a correction replaced).

        An execId journaled already is left as it is. A correction (same execId up to the
        final period, a higher suffix) replaces the row of the version it corrects, commission
        included (its own report follows), and the replaced row is kept in `exec_corrections`;
        an older version arriving after its correction changes nothing.
        """
        e = execution
        if not e.exec_id:
            raise ValueError("exec_id must not be empty")
        check_time(e.time)
        check_day(e.day)
        if isinstance(e.shares, bool) or not isinstance(e.shares, int) or e.shares <= 0:
            raise ValueError(f"shares must be an int > 0, got {e.shares!r}")
        for name, value in (("price", e.price), ("avg_price", e.avg_price)):
            if not math.isfinite(value):
                raise ValueError(f"{name} must be finite, got {value!r}")
        row = (
            e.exec_id, e.order_ref, e.perm_id, e.order_id, e.client_id, e.time, e.day, e.con_id,
            e.account, normalize_side(e.side), e.shares, e.price, e.cum_qty, e.avg_price,
            check_commission(e.commission), check_realized_pnl(e.realized_pnl),
        )  # fmt: skip
        with self._transaction(f"execution {e.exec_id!r} not recorded") as db:
            if db.execute("SELECT 1 FROM executions WHERE exec_id = ?", (e.exec_id,)).fetchone():
                return FillOutcome.DUPLICATE, None
            version = exec_version(e.exec_id)
            earlier = None if version is None else find_version(db, version)
            if earlier is None:
                db.execute(INSERT_EXEC, row)
                return FillOutcome.NEW, None
            known = exec_version(earlier.exec_id)
            if known is None or version is None or not version.supersedes(known):
                return FillOutcome.SUPERSEDED, None
            db.execute("DELETE FROM executions WHERE exec_id = ?", (earlier.exec_id,))
            db.execute(INSERT_EXEC, row)
            db.execute(
                "INSERT INTO exec_corrections (time, exec_id, replaced_exec_id, replaced) "
                "VALUES (?, ?, ?, ?)",
                (e.time, e.exec_id, earlier.exec_id, json.dumps(asdict(earlier), sort_keys=True)),
            )
        return FillOutcome.CORRECTION, earlier

    def set_commission(self, exec_id: str, commission: float, realized_pnl: float | None) -> bool:
        """Attach a commission report; False when the exec_id is unknown. IB's unset
        realized PnL (1.797e308) is stored as None."""
        cursor = self._write(
            "UPDATE executions SET commission = ?, realized_pnl = ? WHERE exec_id = ?",
            (check_commission(commission), check_realized_pnl(realized_pnl), exec_id),
            f"commission of {exec_id!r} not recorded",
        )
        return cursor.rowcount == 1

    # --- positions, daily PnL, events -------------------------------------------------------

    def record_position(
        self,
        time: float,
        con_id: int,
        account: str,
        broker_qty: int | None,
        journal_qty: int,
        avg_cost: float | None,
        source: str,
    ) -> None:
        """Store a position snapshot (``source``: what took it, e.g. ``reconcile``)."""
        check_time(time)
        self._write(
            INSERT_POSITION,
            (time, con_id, account, broker_qty, journal_qty, avg_cost, source),
            "position not recorded",
        )

    def upsert_daily_pnl(
        self,
        day: str,
        realized: float,
        unrealized: float | None,
        commissions: float,
        net: float | None,
        time: float,
    ) -> None:
        """Store or replace one trading day's PnL (USD)."""
        check_day(day)
        check_time(time)
        for name, value in (
            ("realized", realized),
            ("unrealized", unrealized),
            ("commissions", commissions),
            ("net", net),
        ):
            if value is not None and not math.isfinite(value):
                raise ValueError(f"{name} must be finite, got {value!r}")
        self._write(
            f"{INSERT_DAILY} ON CONFLICT (day) DO UPDATE SET realized = excluded.realized, "
            "unrealized = excluded.unrealized, commissions = excluded.commissions, "
            "net = excluded.net, updated = excluded.updated",
            (day, realized, unrealized, commissions, net, time),
            f"daily PnL of {day} not recorded",
        )

    def record_event(self, kind: str, time: float, **detail: Any) -> None:
        """Store an event; ``detail`` becomes a JSON object with sorted keys (enums by value,
        dataclasses as objects, paths as strings)."""
        if not kind:
            raise ValueError("event kind must not be empty")
        check_time(time)
        try:
            text = json.dumps(detail, sort_keys=True, default=json_default, allow_nan=False)
        except ValueError as e:  # NaN or infinity
            raise ValueError(f"event {kind!r} detail is not valid JSON: {e}") from e
        self._write(
            f"INSERT INTO events ({EVENT_COLS}) VALUES (NULL, ?, ?, ?)",
            (time, kind, text),
            f"event {kind!r} not recorded",
        )
