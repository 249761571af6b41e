"""The trading journal: intents, orders, fills, positions, daily PnL and events in SQLite.

Every write commits before the method returns, so whatever the caller relies on next (sending
an order whose ``orderRef`` is journaled, say) survives a ``kill -9``. WAL mode; ``synchronous``
"full" also survives power loss, "normal" may lose the last commits then. One connection, used
from one thread (the event loop). The schema is versioned with ``PRAGMA user_version`` and
migrated forward by `MIGRATIONS`; a file newer than this code is refused, never touched.
"""

from __future__ import annotations

import json
import math
import sqlite3
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict
from pathlib import Path
from types import TracebackType
from typing import Any, Final, Literal

import structlog

from daemon.core.orders import Order, Status
from daemon.flow.guards import UNSET_DOUBLE
from daemon.trading.fills import ExecVersion, exec_version
from daemon.trading.journal_schema import (
    BUSY_TIMEOUT_S,
    DAILY_COLS,
    DONE_ORDER_STATUSES,
    DONE_SQL,
    EVENT_COLS,
    EXEC_COLS,
    INSERT_DAILY,
    INSERT_EXEC,
    INSERT_INTENT,
    INSERT_ORDER,
    INSERT_POSITION,
    INSERT_STATUS,
    INTENT_COLS,
    INTENT_STATUSES,
    MIGRATIONS,
    ORDER_COLS,
    ORDER_ROLES,
    POSITION_COLS,
    STATUS_COLS,
    DailyPnl,
    EventRow,
    ExecRow,
    FillOutcome,
    IntentRow,
    JournalError,
    PositionRow,
    StatusRow,
    check_commission,
    check_day,
    check_intent_status,
    check_new_order,
    check_realized_pnl,
    check_time,
    journaled_values,
    json_default,
    order_from_row,
    where_clause,
)
from daemon.trading.ledger import normalize_side
from daemon.trading.model import EntryType

__all__ = [
    "DONE_ORDER_STATUSES",
    "INTENT_STATUSES",
    "MIGRATIONS",
    "ORDER_ROLES",
    "UNSET_DOUBLE",
    "DailyPnl",
    "EventRow",
    "ExecRow",
    "FillOutcome",
    "IntentRow",
    "Journal",
    "JournalError",
    "PositionRow",
    "StatusRow",
]

log = structlog.get_logger("daemon.trading.journal")

# Rows a restart would read back: compared between this connection and a fresh one.
_FINGERPRINT: Final = (
    "SELECT (SELECT count(*) FROM executions), (SELECT count(*) FROM orders), "
    "(SELECT coalesce(max(id), 0) FROM order_status), (SELECT coalesce(max(id), 0) FROM events)"
)


# --- the journal ----------------------------------------------------------------------------


class Journal:
    """The trading journal in one SQLite file (see the module docstring)."""

    def __init__(self, path: Path, *, synchronous: Literal["full", "normal"] = "full") -> None:
        if synchronous not in ("full", "normal"):
            raise ValueError(f'synchronous must be "full" or "normal", got {synchronous!r}')
        self._path = Path(path)
        try:
            self._path.parent.mkdir(parents=True, exist_ok=True)
            from daemon.runtime.statedir import touch_private

            touch_private(self._path)  # 0600 before SQLite: its -wal/-shm copy the file's mode
            self._db = sqlite3.connect(self._path, timeout=BUSY_TIMEOUT_S)
        except (OSError, sqlite3.Error) as e:
            raise JournalError(f"cannot open journal {self._path}: {e}") from e
        try:
            self._open(synchronous)
        except BaseException:
            self._db.close()
            raise

    def _open(self, synchronous: str) -> None:
        try:
            found = self._user_version()
        except sqlite3.DatabaseError as e:
            raise JournalError(f"{self._path} is not a SQLite database: {e}") from e
        self._refuse_newer(found)
        try:
            mode = self._db.execute("PRAGMA journal_mode = WAL").fetchone()[0]
            self._db.execute(f"PRAGMA synchronous = {synchronous.upper()}")
        except sqlite3.Error as e:
            raise JournalError(f"cannot set up journal {self._path}: {e}") from e
        if mode != "wal":
            raise JournalError(f"journal {self._path} cannot use WAL mode (got {mode!r})")
        self._migrate()
        # After migrating: a migration that rebuilds a table needs foreign keys off.
        self._db.execute("PRAGMA foreign_keys = ON")

    def _user_version(self) -> int:
        version: int = self._db.execute("PRAGMA user_version").fetchone()[0]
        return version

    def _refuse_newer(self, found: int) -> None:
        if found > len(MIGRATIONS):
            raise JournalError(
                f"journal {self._path} has schema version {found}, newer than this code's "
                f"{len(MIGRATIONS)}: upgrade orderflowd or use another state_dir"
            )

    def _migrate(self) -> None:
        db = self._db
        for version in range(self._user_version() + 1, len(MIGRATIONS) + 1):
            try:
                db.execute("BEGIN IMMEDIATE")
                found = self._user_version()  # again under the write lock: another opener
                self._refuse_newer(found)  # may have migrated meanwhile
                if found >= version:
                    db.rollback()
                    continue
                if found == 0 and db.execute("SELECT count(*) FROM sqlite_master").fetchone()[0]:
                    raise JournalError(
                        f"{self._path} is a SQLite database but not an orderflowd journal "
                        "(schema version 0 with tables in it)"
                    )
                for statement in MIGRATIONS[version - 1]:
                    db.execute(statement)
                db.execute(f"PRAGMA user_version = {version}")
                db.commit()
            except sqlite3.Error as e:
                db.rollback()
                raise JournalError(
                    f"migrating journal {self._path} to schema version {version} failed: {e}"
                ) from e
            except BaseException:
                db.rollback()
                raise
            log.info("journal_migrated", path=str(self._path), version=version)

    @property
    def path(self) -> Path:
        return self._path

    @property
    def schema_version(self) -> int:
        return self._user_version()

    def check_on_disk(self) -> str | None:
        """What a new connection (the next start) would find wrong, or None: the file must open
        and hold what this connection committed. A damaged WAL shows only this way while the
        process runs (its own connection keeps reading the pages it has)."""
        try:
            other = sqlite3.connect(f"{self._path.resolve().as_uri()}?mode=ro", uri=True)
        except (OSError, sqlite3.Error) as e:
            return f"journal {self._path} cannot be opened again: {e}"
        try:
            theirs = other.execute(_FINGERPRINT).fetchone()
        except sqlite3.Error as e:
            return f"journal {self._path} is damaged on disk: {e}"
        finally:
            other.close()
        ours = self._db.execute(_FINGERPRINT).fetchone()
        if tuple(theirs) != tuple(ours):
            return (
                f"journal {self._path} on disk differs from what was written (rows of "
                f"executions, orders, status history, events: disk {tuple(theirs)}, "
                f"written {tuple(ours)})"
            )
        return None

    def close(self) -> None:
        """Close the connection (idempotent). Every write is already committed."""
        self._db.close()

    def __enter__(self) -> Journal:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

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

    def intent(self, ref: str) -> IntentRow | None:
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

    def order(self, ref: str) -> Order | None:
        found = self._db.execute(f"SELECT {ORDER_COLS} FROM orders WHERE ref = ?", (ref,))
        row = found.fetchone()
        return order_from_row(row) if row else None

    def order_by_perm(self, perm_id: int) -> Order | None:
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
            earlier = None if version is None else self.other_version(version)
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

    def other_version(self, version: ExecVersion) -> ExecRow | None:
        """The journaled version of the fill ``version`` names, if any (at most one is kept)."""
        pattern = version.stem.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        rows = self._db.execute(
            f"SELECT {EXEC_COLS} FROM executions WHERE exec_id LIKE ? ESCAPE '\\'",
            (pattern + ".%",),
        )
        for found in rows:
            other = exec_version(found[0])
            if other is not None and other.stem == version.stem:
                return ExecRow(*found)
        return None

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

    def set_commission(self, exec_id: str, commission: float, realized_pnl: float | None) -> bool:
        """Attach a commission report; False when the exec_id is unknown. IB's unset
        realized PnL (1.797e308) is stored as None."""
        cursor = self._write(
            "UPDATE executions SET commission = ?, realized_pnl = ? WHERE exec_id = ?",
            (check_commission(commission), check_realized_pnl(realized_pnl), exec_id),
            f"commission of {exec_id!r} not recorded",
        )
        return cursor.rowcount == 1

    def executions(self, *, day: str | None = None, con_id: int | None = None) -> list[ExecRow]:
        """Fills by time, optionally of one trading day and/or one contract."""
        where, params = where_clause(("day", day), ("con_id", con_id))
        rows = self._db.execute(
            f"SELECT {EXEC_COLS} FROM executions{where} ORDER BY time, rowid", params
        )
        return [ExecRow(*row) for row in rows]

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

    def positions(self, con_id: int | None = None) -> list[PositionRow]:
        """Position snapshots, oldest first."""
        where, params = where_clause(("con_id", con_id))
        rows = self._db.execute(f"SELECT {POSITION_COLS} FROM positions{where} ORDER BY id", params)
        return [PositionRow(*row) for row in rows]

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

    def daily_pnl(self, day: str) -> DailyPnl | None:
        found = self._db.execute(f"SELECT {DAILY_COLS} FROM daily_pnl WHERE day = ?", (day,))
        row = found.fetchone()
        return DailyPnl(*row) if row else None

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
