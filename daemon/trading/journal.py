"""The trading journal: intents, orders, fills, positions, daily PnL and events in SQLite.

Every write commits before the method returns, so whatever the caller relies on next (sending
an order whose ``orderRef`` is journaled, say) survives a ``kill -9``. WAL mode; ``synchronous``
"full" also survives power loss, "normal" may lose the last commits then. One connection, used
from one thread (the event loop). The schema is versioned with ``PRAGMA user_version`` and
migrated forward by `MIGRATIONS`; a file newer than this code is refused, never touched.

Here: `Journal`, the file's life (open, migrate, check on disk, close), and every public name of
the journal modules: the queries are in `journal_queries`, the writes in `journal_writes`, the
schema, row types and input checks in `journal_schema`.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from types import TracebackType
from typing import Final, Literal

import structlog

from daemon.flow.guards import UNSET_DOUBLE
from daemon.trading.journal_queries import JournalQueries
from daemon.trading.journal_schema import (
    BUSY_TIMEOUT_S,
    DONE_ORDER_STATUSES,
    INTENT_STATUSES,
    MIGRATIONS,
    ORDER_ROLES,
    DailyPnl,
    EventRow,
    ExecRow,
    FillOutcome,
    IntentRow,
    JournalError,
    PositionRow,
    StatusRow,
)
from daemon.trading.journal_writes import JournalWrites

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


class Journal(JournalQueries, JournalWrites):
    """The trading journal in one SQLite file (see the module docstring).

    This class opens, migrates, checks and closes the file; the queries come from
    `JournalQueries`, the writes from `JournalWrites`.
    """

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
        """The journal file."""
        return self._path

    @property
    def schema_version(self) -> int:
        """The file's ``PRAGMA user_version``."""
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
