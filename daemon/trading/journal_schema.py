"""The journal's schema and rows: migrations, row types, their SQL and the checks on them.

Shared by the journal's modules; `daemon.trading.journal` re-exports the public names.
"""

from __future__ import annotations

import enum
import json
import math
import re
from collections.abc import Sequence
from dataclasses import asdict, dataclass, fields, is_dataclass
from datetime import date
from pathlib import Path
from typing import Any, Final

from daemon.core.orders import Order, OrderType, Role, Side, Status
from daemon.flow.guards import UNSET_DOUBLE

BUSY_TIMEOUT_S: Final = 5.0
INTENT_STATUSES: Final = frozenset({"new", "sent", "done", "rejected", "abandoned", "refused"})
ORDER_ROLES: Final = frozenset(r.value for r in Role)
DONE_ORDER_STATUSES: Final = frozenset(s.value for s in Status if s.done)

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
    (
        # A corrected execution replaces the row it corrects; what it replaced is kept here.
        """CREATE TABLE exec_corrections (
            id INTEGER PRIMARY KEY,
            time REAL NOT NULL,
            exec_id TEXT NOT NULL,
            replaced_exec_id TEXT NOT NULL,
            replaced TEXT NOT NULL
        )""",
        "CREATE INDEX exec_corrections_exec ON exec_corrections (exec_id)",
    ),
    (
        # Each order's contract (a roll leaves orders in the old month working); NULL: an
        # order journaled before, in the front month of its day.
        "ALTER TABLE orders ADD COLUMN con_id INTEGER",
    ),
]


class FillOutcome(enum.StrEnum):
    """What journaling an execution did."""

    NEW = "new"  # a fill not seen before
    DUPLICATE = "duplicate"  # this execId is journaled already: nothing changed
    CORRECTION = "correction"  # it replaced an earlier version of the same fill
    SUPERSEDED = "superseded"  # an earlier version of a fill journaled as corrected: ignored


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


INTENT_COLS: Final = _columns(IntentRow)
ORDER_COLS: Final = (
    "ref, intent_ref, role, client_id, order_id, perm_id, parent_ref, action, quantity, "
    "order_type, lmt_price, aux_price, tif, oca_group, status, filled, remaining, "
    "avg_fill_price, created, updated, con_id"
)
STATUS_COLS: Final = _columns(StatusRow)
EXEC_COLS: Final = _columns(ExecRow)
POSITION_COLS: Final = _columns(PositionRow)
DAILY_COLS: Final = _columns(DailyPnl)
EVENT_COLS: Final = _columns(EventRow)
INSERT_INTENT: Final = _insert("intents", IntentRow)
INSERT_ORDER: Final = f"INSERT INTO orders ({ORDER_COLS}) VALUES ({', '.join('?' * 21)})"
INSERT_STATUS: Final = _insert("order_status", StatusRow)
INSERT_EXEC: Final = _insert("executions", ExecRow)
INSERT_POSITION: Final = _insert("positions", PositionRow)
INSERT_DAILY: Final = _insert("daily_pnl", DailyPnl)
DONE_SQL: Final = ", ".join(f"'{s}'" for s in sorted(DONE_ORDER_STATUSES))


def order_from_row(row: Sequence[Any]) -> Order:
    """An `Order` from a row of ORDER_COLS (the stored remaining and updated time drop out)."""
    (ref, intent_ref, role, client_id, order_id, perm_id, parent_ref, action, quantity,
     order_type, lmt_price, aux_price, tif, oca_group, status, filled, _remaining,
     avg_fill_price, created, _updated, con_id) = row  # fmt: skip
    return Order(
        ref=ref,
        role=Role(role),
        client_id=client_id,
        action=Side(action),
        quantity=quantity,
        order_type=OrderType(order_type),
        intent_ref=intent_ref,
        parent_ref=parent_ref,
        order_id=order_id or 0,
        lmt_price=lmt_price,
        aux_price=aux_price,
        tif=tif,
        oca_group=oca_group or "",
        status=Status(status),
        perm_id=perm_id,
        filled=filled or 0,
        avg_fill_price=avg_fill_price,
        created=created,
        con_id=con_id or 0,
    )


def journaled_values(o: Order) -> tuple[Any, ...]:
    """The row a new order is journaled as: status Journaled, nothing filled yet."""
    return (
        o.ref, o.intent_ref, o.role.value, o.client_id, o.order_id or None, o.perm_id,
        o.parent_ref, o.action.value, o.quantity, o.order_type.value, o.lmt_price, o.aux_price,
        o.tif, o.oca_group, Status.JOURNALED.value, 0, o.quantity, None, o.created, o.created,
        o.con_id or None,
    )  # fmt: skip


# --- checks ---------------------------------------------------------------------------------


def where_clause(*conditions: tuple[str, object]) -> tuple[str, tuple[object, ...]]:
    """`` WHERE a = ? AND b = ?`` for the conditions whose value is not None."""
    given = [(column, value) for column, value in conditions if value is not None]
    if not given:
        return "", ()
    return " WHERE " + " AND ".join(f"{c} = ?" for c, _ in given), tuple(v for _, v in given)


def check_day(day: str) -> None:
    try:
        if _DAY.fullmatch(day):
            date.fromisoformat(day)
            return
    except ValueError:
        pass
    raise ValueError(f"day must be a date as YYYY-MM-DD, got {day!r}")


def check_time(time: float) -> None:
    if not math.isfinite(time):
        raise ValueError(f"time must be finite epoch seconds, got {time!r}")


def check_intent_status(status: str) -> None:
    if status not in INTENT_STATUSES:
        raise ValueError(f"intent status must be one of {sorted(INTENT_STATUSES)}, got {status!r}")


def check_new_order(order: Order) -> None:
    def bad(field: str, why: str) -> ValueError:
        return ValueError(f"order {order.ref!r}: {field} {why}")

    if not order.ref:
        raise ValueError("order ref must not be empty")
    if not isinstance(order.role, Role):
        raise bad("role", f"must be one of {sorted(ORDER_ROLES)}, got {order.role!r}")
    if not isinstance(order.action, Side):
        raise bad("action", f"must be BUY or SELL, got {order.action!r}")
    if isinstance(order.quantity, bool) or not isinstance(order.quantity, int):
        raise bad("quantity", f"must be an int, got {order.quantity!r}")
    if order.quantity <= 0:
        raise bad("quantity", f"must be > 0, got {order.quantity!r}")
    if not isinstance(order.order_type, OrderType):
        raise bad("order_type", f"must be MKT, LMT or STP, got {order.order_type!r}")
    for name, price in (("lmt_price", order.lmt_price), ("aux_price", order.aux_price)):
        if price is not None and not math.isfinite(price):
            raise bad(name, f"must be finite, got {price!r}")
    if order.order_type is OrderType.LMT and order.lmt_price is None:
        raise bad("lmt_price", "is required for a LMT order")
    if order.order_type is OrderType.STP and order.aux_price is None:
        raise bad("aux_price", "(the stop price) is required for a STP order")
    if not math.isfinite(order.created):
        raise bad("created", f"must be finite epoch seconds, got {order.created!r}")


def check_commission(commission: float | None) -> float | None:
    if commission is not None and not math.isfinite(commission):
        raise ValueError(f"commission must be finite, got {commission!r}")
    return commission


def check_realized_pnl(value: float | None) -> float | None:
    if value is None or value == UNSET_DOUBLE:
        return None
    if not math.isfinite(value):
        raise ValueError(f"realized_pnl must be finite, got {value!r}")
    return value


def json_default(value: object) -> object:
    if isinstance(value, enum.Enum):
        return value.value
    if is_dataclass(value) and not isinstance(value, type):
        return asdict(value)
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"event detail value of type {type(value).__name__} is not JSON-serialisable")
