"""What needs a person: broker anomalies, a journal that cannot be written, a failing strategy.

Each halts new entries and cancels those not filled yet (the brackets at the broker keep
protecting the position), is logged once with what differs, journaled when the journal still
takes it, and shown in status.json until the operator resumes. Nothing here decides what the
broker's truth is: it only refuses to go on trading while something cannot be accounted for.
"""

from __future__ import annotations

import time
import traceback
from collections import deque
from collections.abc import Callable
from typing import Any

import structlog

from daemon.trading.journal import JournalError
from daemon.trading.risk import RiskManager

log = structlog.get_logger("daemon.trading.alarms")

__all__ = ["Alarms"]

SHOWN = 10  # alarms kept for status.json
_KEYS_KEPT = 1000  # keys remembered for deduplication (one order's messages raise one alarm)


class Alarms:
    """Raise an alarm: log it once, journal it if possible, halt trading, show it."""

    def __init__(
        self,
        risk: RiskManager,
        record_event: Callable[..., None],
        cancel_entries: Callable[[], None],
        wall: Callable[[], float] = time.time,
    ) -> None:
        self.risk = risk
        self._record_event = record_event
        self._cancel_entries = cancel_entries
        self._wall = wall
        self.recent: deque[dict[str, Any]] = deque(maxlen=SHOWN)
        self._keys: deque[str] = deque(maxlen=_KEYS_KEPT)
        self.journal_error: str | None = None
        self.strategy_error: str | None = None
        self.unresolved = False  # an alarm was raised since the last resume

    def anomaly(self, kind: str, key: str, detail: str) -> None:
        """The broker said something that cannot be accounted for (once per ``key``)."""
        if key in self._keys:
            return
        self._keys.append(key)
        log.error("broker_anomaly", kind=kind, detail=detail)
        self._raise(kind, detail, f"broker anomaly: {detail}")

    def journal_failed(self, exc: JournalError) -> None:
        """A journal write failed: nothing more is sent that would need one."""
        first = self.journal_error is None
        self.journal_error = str(exc)
        if first:
            log.error(
                "journal_failed",
                error=str(exc),
                action="trading halted; free the disk or fix the file, then orderflowd resume",
            )
            self._raise("journal", str(exc), f"journal cannot be written: {exc}")

    def strategy_failed(self, exc: BaseException, where: str) -> None:
        """The strategy raised: it is not called again until the operator resumes."""
        self.strategy_error = f"{where}: {type(exc).__name__}: {exc}"
        log.error(
            "strategy_failed",
            where=where,
            error=repr(exc),
            traceback="".join(traceback.format_exception(exc)),
            action="trading halted, brackets kept; fix the strategy, then orderflowd resume",
        )
        self._raise("strategy", self.strategy_error, f"strategy failed in {self.strategy_error}")

    def resumed(self) -> None:
        """The operator resumed: the strategy is called again, the journal is tried again."""
        self.strategy_error = None
        self.journal_error = None
        self.unresolved = False
        self._keys.clear()

    def _raise(self, kind: str, detail: str, reason: str) -> None:
        self.unresolved = True
        self.recent.append({"at": self._wall(), "kind": kind, "detail": detail})
        try:
            self._record_event("alarm", alarm=kind, detail=detail)
        except JournalError as exc:
            if kind != "journal":
                self.journal_failed(exc)
        except ValueError:  # a detail that is not JSON: the log line above has it
            pass
        self.risk.halt(reason)
        self._cancel_entries()  # halted: entries not filled yet must not fill now

    def as_status(self) -> dict[str, Any]:
        return {
            "alarms": list(self.recent),
            "journal_error": self.journal_error,
            "strategy_error": self.strategy_error,
        }
