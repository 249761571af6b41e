"""The journal's queries: `JournalQueries`, mixed into `daemon.trading.journal.Journal`.

Reads only, on the journal's one connection; nothing here writes or commits.
"""

from __future__ import annotations

import json
import sqlite3

from daemon.core.orders import Order
from daemon.trading.fills import ExecVersion, exec_version
from daemon.trading.journal_schema import (
    DAILY_COLS,
    DONE_SQL,
    EVENT_COLS,
    EXEC_COLS,
    INTENT_COLS,
    ORDER_COLS,
    POSITION_COLS,
    STATUS_COLS,
    DailyPnl,
    EventRow,
    ExecRow,
    IntentRow,
    PositionRow,
    StatusRow,
    check_day,
    order_from_row,
    where_clause,
)


def find_version(db: sqlite3.Connection, version: ExecVersion) -> ExecRow | None:
    """The journaled version of the fill ``version`` names, if any (at most one is kept); also
    read by `JournalWrites.record_fill` inside its transaction."""
    pattern = version.stem.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    rows = db.execute(
        f"SELECT {EXEC_COLS} FROM executions WHERE exec_id LIKE ? ESCAPE '\\'",
        (pattern + ".%",),
    )
    for found in rows:
        other = exec_version(found[0])
        if other is not None and other.stem == version.stem:
            return ExecRow(*found)
    return None


class JournalQueries:
    """What the journal holds: intents, orders and their history, fills, positions, daily PnL
    and events."""

    _db: sqlite3.Connection  # opened by `Journal`

    # --- intents ----------------------------------------------------------------------------

    def next_intent_ref(self, prefix: str, day: str) -> str:
        """``{prefix}-{YYYYMMDD}-{n:04d}``, n = 1 + the day's intents with that prefix.

        Read from the table, so unique across restarts; the ref is not reserved until
        `record_intent` stores it. n follows the highest number in use, should a ref have been
        recorded out of sequence.
        """
        if not prefix:
            raise ValueError("prefix must not be empty")
        check_day(day)
        head = f"{prefix}-{day.replace('-', '')}-"
        row = self._db.execute(
            "SELECT count(*), max(CAST(substr(ref, ?) AS INTEGER)) FROM intents "
            "WHERE substr(ref, 1, ?) = ?",
            (len(head) + 1, len(head), head),
        ).fetchone()
        count, highest = row[0], row[1] or 0
        return f"{head}{max(count, highest) + 1:04d}"

    def intent(self, ref: str) -> IntentRow | None:
        """The intent with this ref, or None."""
        row = self._db.execute(f"SELECT {INTENT_COLS} FROM intents WHERE ref = ?", (ref,))
        found = row.fetchone()
        return IntentRow(*found) if found else None

    def intents(self, day: str | None = None) -> list[IntentRow]:
        """Intents (of one trading day, or all) by time."""
        if day is None:
            rows = self._db.execute(f"SELECT {INTENT_COLS} FROM intents ORDER BY time, rowid")
        else:
            rows = self._db.execute(
                f"SELECT {INTENT_COLS} FROM intents WHERE day = ? ORDER BY time, rowid", (day,)
            )
        return [IntentRow(*row) for row in rows]

    # --- orders -----------------------------------------------------------------------------

    def order(self, ref: str) -> Order | None:
        """The order with this ref, or None."""
        found = self._db.execute(f"SELECT {ORDER_COLS} FROM orders WHERE ref = ?", (ref,))
        row = found.fetchone()
        return order_from_row(row) if row else None

    def order_by_perm(self, perm_id: int) -> Order | None:
        """The newest order with this IB perm id, or None."""
        found = self._db.execute(
            f"SELECT {ORDER_COLS} FROM orders WHERE perm_id = ? "
            "ORDER BY created DESC, rowid DESC LIMIT 1",
            (perm_id,),
        ).fetchone()
        return order_from_row(found) if found else None

    def order_by_id(self, client_id: int, order_id: int) -> Order | None:
        """The newest order with this client and order id (IB order ids may repeat when the
        gateway's id sequence is reset)."""
        found = self._db.execute(
            f"SELECT {ORDER_COLS} FROM orders WHERE client_id = ? AND order_id = ? "
            "ORDER BY created DESC, rowid DESC LIMIT 1",
            (client_id, order_id),
        ).fetchone()
        return order_from_row(found) if found else None

    def orders(self, *, live_only: bool = False) -> list[Order]:
        """Orders by creation; ``live_only`` leaves out Filled, Cancelled, ApiCancelled,
        Inactive and Abandoned ones."""
        where = f" WHERE status NOT IN ({DONE_SQL})" if live_only else ""
        rows = self._db.execute(f"SELECT {ORDER_COLS} FROM orders{where} ORDER BY created, rowid")
        return [order_from_row(row) for row in rows]

    def order_history(self, ref: str) -> list[StatusRow]:
        """Status changes of one order, oldest first (the first is ``Journaled``)."""
        rows = self._db.execute(
            f"SELECT {STATUS_COLS} FROM order_status WHERE ref = ? ORDER BY id", (ref,)
        )
        return [StatusRow(*row) for row in rows]

    # --- executions -------------------------------------------------------------------------

    def other_version(self, version: ExecVersion) -> ExecRow | None:
        """The journaled version of the fill ``version`` names, if any (at most one is kept)."""
        return find_version(self._db, version)

    def execution(self, exec_id: str) -> ExecRow | None:
        """The journaled fill with exactly this execId."""
        found = self._db.execute(
            f"SELECT {EXEC_COLS} FROM executions WHERE exec_id = ?", (exec_id,)
        )
        row = found.fetchone()
        return ExecRow(*row) if row else None

    def corrections(self, exec_id: str | None = None) -> list[tuple[str, ExecRow]]:
        """(correcting execId, the row it replaced), oldest first; of one execId if given."""
        where, params = where_clause(("exec_id", exec_id))
        rows = self._db.execute(
            f"SELECT exec_id, replaced FROM exec_corrections{where} ORDER BY id", params
        )
        return [(new, ExecRow(**json.loads(old))) for new, old in rows]

    def order_fills(self, order_ref: str, *, without: str | None = None) -> int:
        """Shares journaled as filled for one order (leaving out the execId ``without``)."""
        row = self._db.execute(
            "SELECT coalesce(sum(shares), 0) FROM executions WHERE order_ref = ? "
            "AND exec_id IS NOT ?",
            (order_ref, without),
        ).fetchone()
        filled: int = row[0]
        return filled

    def executions(self, *, day: str | None = None, con_id: int | None = None) -> list[ExecRow]:
        """Fills by time, optionally of one trading day and/or one contract."""
        where, params = where_clause(("day", day), ("con_id", con_id))
        rows = self._db.execute(
            f"SELECT {EXEC_COLS} FROM executions{where} ORDER BY time, rowid", params
        )
        return [ExecRow(*row) for row in rows]

    def positions_by_contract(self) -> dict[int, int]:
        """Σ signed shares of the journaled fills of every contract (conId) with any."""
        rows = self._db.execute(
            "SELECT con_id, sum(CASE side WHEN 'BUY' THEN shares ELSE -shares END) "
            "FROM executions GROUP BY con_id ORDER BY con_id"
        )
        return {int(con_id): int(position) for con_id, position in rows}

    def journal_position(self, con_id: int, account: str | None = None) -> int:
        """Σ signed shares of every journaled fill of a contract (and account)."""
        where, params = where_clause(("con_id", con_id), ("account", account))
        row = self._db.execute(
            "SELECT coalesce(sum(CASE side WHEN 'BUY' THEN shares ELSE -shares END), 0) "
            f"FROM executions{where}",
            params,
        ).fetchone()
        position: int = row[0]
        return position

    # --- positions, daily PnL, events -------------------------------------------------------

    def positions(self, con_id: int | None = None) -> list[PositionRow]:
        """Position snapshots, oldest first."""
        where, params = where_clause(("con_id", con_id))
        rows = self._db.execute(f"SELECT {POSITION_COLS} FROM positions{where} ORDER BY id", params)
        return [PositionRow(*row) for row in rows]

    def daily_pnl(self, day: str) -> DailyPnl | None:
        """One trading day's PnL, or None when none is stored."""
        found = self._db.execute(f"SELECT {DAILY_COLS} FROM daily_pnl WHERE day = ?", (day,))
        row = found.fetchone()
        return DailyPnl(*row) if row else None

    def events(self, kind: str | None = None, limit: int | None = None) -> list[EventRow]:
        """Events (of one kind, or all), newest last; ``limit`` keeps the newest ones."""
        if limit is not None and limit < 0:
            raise ValueError(f"limit must be >= 0, got {limit!r}")
        where, params = where_clause(("kind", kind))
        newest = self._db.execute(
            f"SELECT {EVENT_COLS} FROM events{where} ORDER BY id DESC LIMIT ?",
            (*params, -1 if limit is None else limit),
        ).fetchall()
        return [EventRow(*row) for row in reversed(newest)]
