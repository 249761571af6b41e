"""The trading journal: intents, orders, fills, positions, daily PnL and events in SQLite.

Every write commits before the method returns, so whatever the caller relies on next (sending
an order whose ``orderRef`` is journaled, say) survives a ``kill -9``. WAL mode; ``synchronous``
"full" also survives power loss, "normal" may lose the last commits then. One connection, used
from one thread (the event loop). The schema is versioned with ``PRAGMA user_version`` and
migrated forward by `MIGRATIONS`; a file newer than this code is refused, never touched.
"""

from __future__ import annotations

import enum
import json
import math
import re
import sqlite3
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, fields, is_dataclass
from datetime import date
from pathlib import Path
from types import TracebackType
from typing import Any, Final, Literal

import structlog

from daemon.flow.guards import UNSET_DOUBLE
from daemon.trading.ledger import normalize_side
from daemon.trading.model import EntryType

log = structlog.get_logger("daemon.trading.journal")

BUSY_TIMEOUT_S: Final = 5.0
INTENT_STATUSES: Final = frozenset({"new", "sent", "done", "rejected", "abandoned", "refused"})
ORDER_ROLES: Final = frozenset({"entry", "stop", "target", "exit", "flatten", "adopted"})
ORDER_ACTIONS: Final = frozenset({"BUY", "SELL"})
JOURNALED: Final = "Journaled"  # an order's status from journaling until IB reports one
ABANDONED: Final = "Abandoned"  # ours: journaled but never reached the broker
DONE_ORDER_STATUSES: Final = frozenset(
    {"Filled", "Cancelled", "ApiCancelled", "Inactive", ABANDONED}
)

_DAY = re.compile(r"\d{4}-\d{2}-\d{2}")

# Version N is MIGRATIONS[N - 1]: statements run in one transaction that also sets
# user_version. Append a tuple to migrate; never edit a released entry. Roles and statuses are
# checked in Python, not by CHECK constraints, so adding one needs no table rebuild.
MIGRATIONS: list[tuple[str, ...]] = [
    (
        """CREATE TABLE intents (
            ref TEXT PRIMARY KEY,
            time REAL NOT NULL,
            day TEXT NOT NULL,
            target INTEGER NOT NULL,
            entry TEXT NOT NULL,
            offset_ticks INTEGER NOT NULL,
            stop_ticks INTEGER NOT NULL,
            target_ticks INTEGER NOT NULL,
            reason TEXT NOT NULL,
            status TEXT NOT NULL,
            detail TEXT NOT NULL
        )""",
        "CREATE INDEX intents_day ON intents (day)",
        """CREATE TABLE orders (
            ref TEXT PRIMARY KEY,
            intent_ref TEXT REFERENCES intents (ref),
            role TEXT NOT NULL,
            client_id INTEGER NOT NULL,
            order_id INTEGER,
            perm_id INTEGER,
            parent_ref TEXT REFERENCES orders (ref) DEFERRABLE INITIALLY DEFERRED,
            action TEXT NOT NULL CHECK (action IN ('BUY', 'SELL')),
            quantity INTEGER NOT NULL CHECK (quantity > 0),
            order_type TEXT NOT NULL,
            lmt_price REAL,
            aux_price REAL,
            tif TEXT NOT NULL,
            oca_group TEXT NOT NULL,
            status TEXT NOT NULL,
            filled INTEGER NOT NULL,
            remaining INTEGER NOT NULL,
            avg_fill_price REAL,
            created REAL NOT NULL,
            updated REAL NOT NULL
        )""",
        "CREATE INDEX orders_intent ON orders (intent_ref)",
        "CREATE INDEX orders_perm ON orders (perm_id)",
        "CREATE INDEX orders_client_order ON orders (client_id, order_id)",
        """CREATE TABLE order_status (
            id INTEGER PRIMARY KEY,
            ref TEXT NOT NULL REFERENCES orders (ref),
            time REAL NOT NULL,
            status TEXT NOT NULL,
            filled INTEGER NOT NULL,
            remaining INTEGER NOT NULL,
            detail TEXT NOT NULL
        )""",
        "CREATE INDEX order_status_ref ON order_status (ref)",
        # order_ref is no foreign key on purpose: a fill is never refused, even one of an
        # order the journal does not know.
        """CREATE TABLE executions (
            exec_id TEXT PRIMARY KEY,
            order_ref TEXT,
            perm_id INTEGER,
            order_id INTEGER,
            client_id INTEGER,
            time REAL NOT NULL,
            day TEXT NOT NULL,
            con_id INTEGER NOT NULL,
            account TEXT NOT NULL,
            side TEXT NOT NULL CHECK (side IN ('BUY', 'SELL')),
            shares INTEGER NOT NULL CHECK (shares > 0),
            price REAL NOT NULL,
            cum_qty INTEGER NOT NULL,
            avg_price REAL NOT NULL,
            commission REAL,
            realized_pnl REAL
        )""",
        "CREATE INDEX executions_day ON executions (day)",
        "CREATE INDEX executions_con ON executions (con_id, account)",
        "CREATE INDEX executions_order ON executions (order_ref)",
        """CREATE TABLE positions (
            id INTEGER PRIMARY KEY,
            time REAL NOT NULL,
            con_id INTEGER NOT NULL,
            account TEXT NOT NULL,
            broker_qty INTEGER,
            journal_qty INTEGER NOT NULL,
            avg_cost REAL,
            source TEXT NOT NULL
        )""",
        """CREATE TABLE daily_pnl (
            day TEXT PRIMARY KEY,
            realized REAL NOT NULL,
            unrealized REAL,
            commissions REAL NOT NULL,
            net REAL,
            updated REAL NOT NULL
        )""",
        """CREATE TABLE events (
            id INTEGER PRIMARY KEY,
            time REAL NOT NULL,
            kind TEXT NOT NULL,
            detail TEXT NOT NULL
        )""",
        "CREATE INDEX events_kind ON events (kind)",
    ),
]


class JournalError(Exception):
    """The journal file cannot be used, or a write broke its integrity (nothing was written)."""


# --- rows -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class IntentRow:
    ref: str
    time: float
    day: str
    target: int
    entry: str
    offset_ticks: int
    stop_ticks: int
    target_ticks: int
    reason: str
    status: str
    detail: str


@dataclass(frozen=True, slots=True, kw_only=True)
class NewOrder:
    """An order as journaled before it is sent: status ``Journaled``, nothing filled."""

    ref: str  # the orderRef sent to IB
    role: str
    client_id: int
    action: str
    quantity: int
    order_type: str
    created: float
    intent_ref: str | None = None
    order_id: int | None = None
    perm_id: int | None = None
    parent_ref: str | None = None
    lmt_price: float | None = None
    aux_price: float | None = None
    tif: str = "DAY"
    oca_group: str = ""


@dataclass(frozen=True, slots=True)
class OrderRow:
    ref: str
    intent_ref: str | None
    role: str
    client_id: int
    order_id: int | None
    perm_id: int | None
    parent_ref: str | None
    action: str
    quantity: int
    order_type: str
    lmt_price: float | None
    aux_price: float | None
    tif: str
    oca_group: str
    status: str
    filled: int
    remaining: int
    avg_fill_price: float | None
    created: float
    updated: float

    @property
    def live(self) -> bool:
        """Not in a final state: journaled, pending or working at the broker."""
        return self.status not in DONE_ORDER_STATUSES


@dataclass(frozen=True, slots=True)
class StatusRow:
    """One change of an order's status or filled quantity."""

    ref: str
    time: float
    status: str
    filled: int
    remaining: int
    detail: str


@dataclass(frozen=True, slots=True)
class ExecRow:
    """One fill. ``side`` is BUY or SELL (IB's BOT/SLD are accepted and stored as such)."""

    exec_id: str
    order_ref: str | None  # None: not an order the journal knows
    perm_id: int | None
    order_id: int | None
    client_id: int | None
    time: float
    day: str  # trading day, YYYY-MM-DD
    con_id: int
    account: str
    side: str
    shares: int
    price: float
    cum_qty: int
    avg_price: float
    commission: float | None = None  # None until the commission report
    realized_pnl: float | None = None  # IB's, from the commission report


@dataclass(frozen=True, slots=True)
class PositionRow:
    time: float
    con_id: int
    account: str
    broker_qty: int | None
    journal_qty: int
    avg_cost: float | None
    source: str


@dataclass(frozen=True, slots=True)
class DailyPnl:
    day: str
    realized: float
    unrealized: float | None  # None: a position had no mark
    commissions: float
    net: float | None
    updated: float


@dataclass(frozen=True, slots=True)
class EventRow:
    id: int
    time: float
    kind: str
    detail: str  # JSON object, sorted keys

    @property
    def data(self) -> dict[str, Any]:
        """``detail`` decoded."""
        decoded: dict[str, Any] = json.loads(self.detail)
        return decoded


def _columns(row_type: type) -> str:
    return ", ".join(f.name for f in fields(row_type))


def _insert(table: str, row_type: type) -> str:
    marks = ", ".join("?" * len(fields(row_type)))
    return f"INSERT INTO {table} ({_columns(row_type)}) VALUES ({marks})"


_INTENT_COLS: Final = _columns(IntentRow)
_ORDER_COLS: Final = _columns(OrderRow)
_STATUS_COLS: Final = _columns(StatusRow)
_EXEC_COLS: Final = _columns(ExecRow)
_POSITION_COLS: Final = _columns(PositionRow)
_DAILY_COLS: Final = _columns(DailyPnl)
_EVENT_COLS: Final = _columns(EventRow)
_INSERT_INTENT: Final = _insert("intents", IntentRow)
_INSERT_ORDER: Final = _insert("orders", OrderRow)
_INSERT_STATUS: Final = _insert("order_status", StatusRow)
_INSERT_EXEC: Final = _insert("executions", ExecRow)
_INSERT_POSITION: Final = _insert("positions", PositionRow)
_INSERT_DAILY: Final = _insert("daily_pnl", DailyPnl)
_DONE_SQL: Final = ", ".join(f"'{s}'" for s in sorted(DONE_ORDER_STATUSES))


# --- the journal ----------------------------------------------------------------------------


class Journal:
    """The trading journal in one SQLite file (see the module docstring)."""

    def __init__(self, path: Path, *, synchronous: Literal["full", "normal"] = "full") -> None:
        if synchronous not in ("full", "normal"):
            raise ValueError(f'synchronous must be "full" or "normal", got {synchronous!r}')
        self._path = Path(path)
        try:
            self._path.parent.mkdir(parents=True, exist_ok=True)
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
        _check_day(day)
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
        _check_time(time)
        _check_day(day)
        _check_intent_status(status)
        try:
            entry = EntryType(entry).value
        except ValueError:
            raise ValueError(f"entry must be LMT or MKT, got {entry!r}") from None
        values = (
            ref, time, day, target, entry, offset_ticks, stop_ticks, target_ticks, reason, status,
            detail,
        )  # fmt: skip
        self._write(_INSERT_INTENT, values, f"intent {ref!r} not recorded")

    def set_intent_status(self, ref: str, status: str, detail: str = "") -> bool:
        """Set an intent's status and detail; False when the ref is unknown."""
        _check_intent_status(status)
        cursor = self._write(
            "UPDATE intents SET status = ?, detail = ? WHERE ref = ?",
            (status, detail, ref),
            f"intent {ref!r} not updated",
        )
        return cursor.rowcount == 1

    def intent(self, ref: str) -> IntentRow | None:
        row = self._db.execute(f"SELECT {_INTENT_COLS} FROM intents WHERE ref = ?", (ref,))
        found = row.fetchone()
        return IntentRow(*found) if found else None

    def intents(self, day: str | None = None) -> list[IntentRow]:
        """Intents (of one trading day, or all) by time."""
        if day is None:
            rows = self._db.execute(f"SELECT {_INTENT_COLS} FROM intents ORDER BY time, rowid")
        else:
            rows = self._db.execute(
                f"SELECT {_INTENT_COLS} FROM intents WHERE day = ? ORDER BY time, rowid", (day,)
            )
        return [IntentRow(*row) for row in rows]

    # --- orders -----------------------------------------------------------------------------

    def record_orders(self, rows: Sequence[NewOrder]) -> None:
        """Journal orders (a bracket) in one transaction, status ``Journaled``, before sending.

        Every row is checked first (`ValueError` naming the field); a duplicate ref, an unknown
        ``intent_ref`` or ``parent_ref`` raises `JournalError`. Either way nothing is written.
        """
        for row in rows:
            _check_new_order(row)
        orders = [
            (o.ref, o.intent_ref, o.role, o.client_id, o.order_id, o.perm_id, o.parent_ref,
             o.action, o.quantity, o.order_type, o.lmt_price, o.aux_price, o.tif, o.oca_group,
             JOURNALED, 0, o.quantity, None, o.created, o.created)
            for o in rows
        ]  # fmt: skip
        history = [(o.ref, o.created, JOURNALED, 0, o.quantity, "") for o in rows]
        refs = ", ".join(o.ref for o in rows)
        with self._transaction(f"orders not recorded ({refs})") as db:
            db.executemany(_INSERT_ORDER, orders)
            db.executemany(_INSERT_STATUS, history)

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
        _check_time(time)
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
                    _INSERT_STATUS,
                    (ref, time, new["status"], new["filled"], new["remaining"], detail),
                )
        return True

    def order(self, ref: str) -> OrderRow | None:
        found = self._db.execute(f"SELECT {_ORDER_COLS} FROM orders WHERE ref = ?", (ref,))
        row = found.fetchone()
        return OrderRow(*row) if row else None

    def order_by_perm(self, perm_id: int) -> OrderRow | None:
        found = self._db.execute(
            f"SELECT {_ORDER_COLS} FROM orders WHERE perm_id = ? "
            "ORDER BY created DESC, rowid DESC LIMIT 1",
            (perm_id,),
        ).fetchone()
        return OrderRow(*found) if found else None

    def order_by_id(self, client_id: int, order_id: int) -> OrderRow | None:
        """The newest order with this client and order id (IB order ids may repeat when the
        gateway's id sequence is reset)."""
        found = self._db.execute(
            f"SELECT {_ORDER_COLS} FROM orders WHERE client_id = ? AND order_id = ? "
            "ORDER BY created DESC, rowid DESC LIMIT 1",
            (client_id, order_id),
        ).fetchone()
        return OrderRow(*found) if found else None

    def orders(self, *, live_only: bool = False) -> list[OrderRow]:
        """Orders by creation; ``live_only`` leaves out Filled, Cancelled, ApiCancelled,
        Inactive and Abandoned ones."""
        where = f" WHERE status NOT IN ({_DONE_SQL})" if live_only else ""
        rows = self._db.execute(f"SELECT {_ORDER_COLS} FROM orders{where} ORDER BY created, rowid")
        return [OrderRow(*row) for row in rows]

    def order_history(self, ref: str) -> list[StatusRow]:
        """Status changes of one order, oldest first (the first is ``Journaled``)."""
        rows = self._db.execute(
            f"SELECT {_STATUS_COLS} FROM order_status WHERE ref = ? ORDER BY id", (ref,)
        )
        return [StatusRow(*row) for row in rows]

    # --- executions -------------------------------------------------------------------------

    def record_execution(self, execution: ExecRow) -> bool:
        """Store a fill (``side`` BUY/SELL or IB's BOT/SLD, stored as BUY/SELL). True when new,
        False when its exec_id is already journaled: the stored row is then left as it is."""
        e = execution
        if not e.exec_id:
            raise ValueError("exec_id must not be empty")
        _check_time(e.time)
        _check_day(e.day)
        if isinstance(e.shares, bool) or not isinstance(e.shares, int) or e.shares <= 0:
            raise ValueError(f"shares must be an int > 0, got {e.shares!r}")
        for name, value in (("price", e.price), ("avg_price", e.avg_price)):
            if not math.isfinite(value):
                raise ValueError(f"{name} must be finite, got {value!r}")
        row = (
            e.exec_id, e.order_ref, e.perm_id, e.order_id, e.client_id, e.time, e.day, e.con_id,
            e.account, normalize_side(e.side), e.shares, e.price, e.cum_qty, e.avg_price,
            _check_commission(e.commission), _realized_pnl(e.realized_pnl),
        )  # fmt: skip
        cursor = self._write(
            f"{_INSERT_EXEC} ON CONFLICT (exec_id) DO NOTHING",
            row,
            f"execution {e.exec_id!r} not recorded",
        )
        return cursor.rowcount == 1

    def set_commission(self, exec_id: str, commission: float, realized_pnl: float | None) -> bool:
        """Attach a commission report; False when the exec_id is unknown. IB's unset
        realized PnL (1.797e308) is stored as None."""
        cursor = self._write(
            "UPDATE executions SET commission = ?, realized_pnl = ? WHERE exec_id = ?",
            (_check_commission(commission), _realized_pnl(realized_pnl), exec_id),
            f"commission of {exec_id!r} not recorded",
        )
        return cursor.rowcount == 1

    def executions(self, *, day: str | None = None, con_id: int | None = None) -> list[ExecRow]:
        """Fills by time, optionally of one trading day and/or one contract."""
        where, params = _where(("day", day), ("con_id", con_id))
        rows = self._db.execute(
            f"SELECT {_EXEC_COLS} FROM executions{where} ORDER BY time, rowid", params
        )
        return [ExecRow(*row) for row in rows]

    def journal_position(self, con_id: int, account: str | None = None) -> int:
        """Σ signed shares of every journaled fill of a contract (and account)."""
        where, params = _where(("con_id", con_id), ("account", account))
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
        _check_time(time)
        self._write(
            _INSERT_POSITION,
            (time, con_id, account, broker_qty, journal_qty, avg_cost, source),
            "position not recorded",
        )

    def positions(self, con_id: int | None = None) -> list[PositionRow]:
        """Position snapshots, oldest first."""
        where, params = _where(("con_id", con_id))
        rows = self._db.execute(
            f"SELECT {_POSITION_COLS} FROM positions{where} ORDER BY id", params
        )
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
        _check_day(day)
        _check_time(time)
        for name, value in (
            ("realized", realized),
            ("unrealized", unrealized),
            ("commissions", commissions),
            ("net", net),
        ):
            if value is not None and not math.isfinite(value):
                raise ValueError(f"{name} must be finite, got {value!r}")
        self._write(
            f"{_INSERT_DAILY} ON CONFLICT (day) DO UPDATE SET realized = excluded.realized, "
            "unrealized = excluded.unrealized, commissions = excluded.commissions, "
            "net = excluded.net, updated = excluded.updated",
            (day, realized, unrealized, commissions, net, time),
            f"daily PnL of {day} not recorded",
        )

    def daily_pnl(self, day: str) -> DailyPnl | None:
        found = self._db.execute(f"SELECT {_DAILY_COLS} FROM daily_pnl WHERE day = ?", (day,))
        row = found.fetchone()
        return DailyPnl(*row) if row else None

    def record_event(self, kind: str, time: float, **detail: Any) -> None:
        """Store an event; ``detail`` becomes a JSON object with sorted keys (enums by value,
        dataclasses as objects, paths as strings)."""
        if not kind:
            raise ValueError("event kind must not be empty")
        _check_time(time)
        try:
            text = json.dumps(detail, sort_keys=True, default=_json_default, allow_nan=False)
        except ValueError as e:  # NaN or infinity
            raise ValueError(f"event {kind!r} detail is not valid JSON: {e}") from e
        self._write(
            f"INSERT INTO events ({_EVENT_COLS}) VALUES (NULL, ?, ?, ?)",
            (time, kind, text),
            f"event {kind!r} not recorded",
        )

    def events(self, kind: str | None = None, limit: int | None = None) -> list[EventRow]:
        """Events (of one kind, or all), newest last; ``limit`` keeps the newest ones."""
        if limit is not None and limit < 0:
            raise ValueError(f"limit must be >= 0, got {limit!r}")
        where, params = _where(("kind", kind))
        newest = self._db.execute(
            f"SELECT {_EVENT_COLS} FROM events{where} ORDER BY id DESC LIMIT ?",
            (*params, -1 if limit is None else limit),
        ).fetchall()
        return [EventRow(*row) for row in reversed(newest)]


# --- checks ---------------------------------------------------------------------------------


def _where(*conditions: tuple[str, object]) -> tuple[str, tuple[object, ...]]:
    """`` WHERE a = ? AND b = ?`` for the conditions whose value is not None."""
    given = [(column, value) for column, value in conditions if value is not None]
    if not given:
        return "", ()
    return " WHERE " + " AND ".join(f"{c} = ?" for c, _ in given), tuple(v for _, v in given)


def _check_day(day: str) -> None:
    try:
        if _DAY.fullmatch(day):
            date.fromisoformat(day)
            return
    except ValueError:
        pass
    raise ValueError(f"day must be a date as YYYY-MM-DD, got {day!r}")


def _check_time(time: float) -> None:
    if not math.isfinite(time):
        raise ValueError(f"time must be finite epoch seconds, got {time!r}")


def _check_intent_status(status: str) -> None:
    if status not in INTENT_STATUSES:
        raise ValueError(f"intent status must be one of {sorted(INTENT_STATUSES)}, got {status!r}")


def _check_new_order(order: NewOrder) -> None:
    def bad(field: str, why: str) -> ValueError:
        return ValueError(f"order {order.ref!r}: {field} {why}")

    if not order.ref:
        raise ValueError("order ref must not be empty")
    if order.role not in ORDER_ROLES:
        raise bad("role", f"must be one of {sorted(ORDER_ROLES)}, got {order.role!r}")
    if order.action not in ORDER_ACTIONS:
        raise bad("action", f"must be BUY or SELL, got {order.action!r}")
    if isinstance(order.quantity, bool) or not isinstance(order.quantity, int):
        raise bad("quantity", f"must be an int, got {order.quantity!r}")
    if order.quantity <= 0:
        raise bad("quantity", f"must be > 0, got {order.quantity!r}")
    if not order.order_type:
        raise bad("order_type", "must not be empty")
    for name, price in (("lmt_price", order.lmt_price), ("aux_price", order.aux_price)):
        if price is not None and not math.isfinite(price):
            raise bad(name, f"must be finite, got {price!r}")
    if order.order_type == "LMT" and order.lmt_price is None:
        raise bad("lmt_price", "is required for a LMT order")
    if order.order_type == "STP" and order.aux_price is None:
        raise bad("aux_price", "(the stop price) is required for a STP order")
    if not math.isfinite(order.created):
        raise bad("created", f"must be finite epoch seconds, got {order.created!r}")


def _check_commission(commission: float | None) -> float | None:
    if commission is not None and not math.isfinite(commission):
        raise ValueError(f"commission must be finite, got {commission!r}")
    return commission


def _realized_pnl(value: float | None) -> float | None:
    if value is None or value == UNSET_DOUBLE:
        return None
    if not math.isfinite(value):
        raise ValueError(f"realized_pnl must be finite, got {value!r}")
    return value


def _json_default(value: object) -> object:
    if isinstance(value, enum.Enum):
        return value.value
    if is_dataclass(value) and not isinstance(value, type):
        return asdict(value)
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"event detail value of type {type(value).__name__} is not JSON-serialisable")
