"""IB's historical-data pacing outlives the process: the last 10 minutes' requests, on disk.

IB counts historical requests per login, not per process. A daemon restarted right after a
backfill (`kill -9`, a crash, systemd's restart) that started counting from zero could send
the next backfill straight into error 162, a pacing violation, and leave the session partial.
The pacer's request times are kept in `<state_dir>/historical_pacing.json` (0600) as
wall-clock times, rewritten atomically after each request, and handed to the next process's
pacer.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable
from pathlib import Path

import structlog

from daemon.broker.backfill import PACING_WINDOW_S, HistoricalPacer
from daemon.runtime.statedir import private_dir, replace_private

log = structlog.get_logger("daemon.runtime.pacing_store")

PACING_FILE = "historical_pacing.json"


class PacingStore:
    """Saves a pacer's recent requests and restores them into the next process's pacer."""

    def __init__(
        self,
        path: Path,
        *,
        wall: Callable[[], float] = time.time,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.path = path
        self._wall = wall
        self._clock = clock

    def attach(self, pacer: HistoricalPacer) -> None:
        """Seed `pacer` with what an earlier process recorded, and save after each request."""
        pacer.seed(self.load())
        pacer.listeners.append(lambda: self.save(pacer.recent()))

    def load(self) -> list[float]:
        """Recorded requests still inside the window, on this process's clock (bad file: none)."""
        try:
            doc = json.loads(self.path.read_text(encoding="utf-8"))
            stamps = [float(t) for t in doc["requests"]]
        except FileNotFoundError:
            return []
        except (OSError, ValueError, TypeError, KeyError) as exc:
            log.warning(
                "pacing_history_unreadable",
                path=str(self.path),
                error=repr(exc),
                action="ignored: the pacer starts from zero, as a fresh login would",
            )
            return []
        now_wall, now = self._wall(), self._clock()
        return [
            now - (now_wall - t)
            for t in sorted(stamps)
            if math.isfinite(t) and now_wall - PACING_WINDOW_S < t <= now_wall
        ]

    def save(self, times: list[float]) -> None:
        """Store `times` (this process's clock) as wall-clock times; errors are logged only."""
        offset = self._wall() - self._clock()
        doc = {"requests": [round(t + offset, 3) for t in times]}
        try:
            private_dir(self.path.parent)
            replace_private(self.path, json.dumps(doc).encode("utf-8"))  # 0600, any umask
        except OSError as exc:
            log.warning(
                "pacing_history_not_saved",
                path=str(self.path),
                error=repr(exc),
                rate_limited=True,
            )
