"""The recorder: every normalized trade and quote the daemon receives, into daily gzip files.

`add` (on the tick path) only appends the event to an in-memory batch; a task writes the batch
every `flush_s` seconds as one complete gzip member appended to the day's file, in a worker
thread. A kill -9 therefore loses at most the unflushed batch and leaves a file whose last
member may be cut short: the reader stops there with a warning, and the next recorder to open
the file cuts the partial member off before appending. Any error writing (disk full, no
permission) is logged as `recording_failed`, the batch is dropped and trading goes on.

Events are filed under the CME trading day of their exchange time (the date the Globex session
ends on: `SessionSchedule.trading_day`, as the journal names days); live events only: warm-start
history goes straight into the extractor and is not recorded (a restart leaves a gap in the file
rather than a second copy of what was already recorded).
"""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import math
import os
import time
import zlib
from collections.abc import Callable
from pathlib import Path

import structlog

from daemon.flow.events import DataMode, MarketEvent, SnapshotEvent
from daemon.flow.sessions import SessionSchedule
from daemon.recording.format import DIRECTORY, day_of_name, file_name, head_text, rows
from daemon.runtime.statedir import private_dir, touch_private, write_private
from daemon.settings import RecordingSettings

log = structlog.get_logger("daemon.recording.writer")

COMPRESS_LEVEL = 6
_CHUNK = 1 << 16
_GZIP = 31


class Recorder:
    """Buffers market events and appends them to `state_dir/recordings/{symbol}-{day}.csv.gz`."""

    def __init__(
        self,
        state_dir: Path,
        symbol: str,
        settings: RecordingSettings,
        schedule: SessionSchedule,
    ) -> None:
        self.folder = Path(state_dir) / DIRECTORY
        self.symbol = symbol
        self.settings = settings
        self.schedule = schedule
        self.enabled = settings.enabled
        self.written = 0  # events handed to a successful write
        self.lost = 0  # events dropped by failed writes
        self._batch: list[MarketEvent] = []
        self._sealed: list[tuple[str, list[MarketEvent]]] = []  # batches of days that ended
        self._day: str | None = None
        self._lo = self._hi = math.nan  # the Globex span of `_day`: no lookup inside it
        self._prepared: set[str] = set()  # days whose file this process has checked
        self._files = 0
        self._failing = False
        self._lock = asyncio.Lock()
        self._task: asyncio.Task[None] | None = None
        self.listeners: list[Callable[[], None]] = []  # called after each flush

    @property
    def day(self) -> str | None:
        """The trading day events are currently filed under."""
        return self._day

    def path(self, day: str) -> Path:
        return self.folder / file_name(self.symbol, day)

    # --- tick path ---

    def add(self, ev: MarketEvent) -> None:
        """Queue one event for the next flush (tick-by-tick volume snapshots are not recorded)."""
        if not self.enabled:
            return
        if type(ev) is SnapshotEvent and ev.mode is not DataMode.SNAPSHOT:
            return
        t = ev.exchange_time
        if not self._lo <= t < self._hi:
            self._locate(t)
        self._batch.append(ev)

    def _locate(self, t: float) -> None:
        """Which trading day `t` belongs to; a new day seals the batch of the old one."""
        if not math.isfinite(t):
            if self._day is None:
                self._day = self.schedule.trading_day(time.time())
            return
        span = self.schedule.globex_at(t)
        day = self.schedule.trading_day(t)
        self._lo, self._hi = (span.start, span.end) if span is not None else (math.nan, math.nan)
        if day != self._day:
            if self._day is not None and self._batch:
                self._sealed.append((self._day, self._batch))
                self._batch = []
            self._day = day

    # --- lifetime ---

    def start(self) -> None:
        """Start the flush task (call from the running loop)."""
        if self.enabled and self._task is None:
            self._task = asyncio.create_task(self._run(), name="recording")

    async def close(self) -> None:
        """Stop the flush task and write what is still buffered."""
        task, self._task = self._task, None
        try:
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            await self.flush()
        except Exception as exc:  # shutdown goes on whatever happened to the recorder
            log.error("recording_failed", error=repr(exc), action="the last batch is lost")

    async def _run(self) -> None:
        await asyncio.to_thread(self._retain, None)
        while True:
            await asyncio.sleep(self.settings.flush_s)
            # Shielded: a cancel (shutdown) must not return while a write is still appending.
            await asyncio.shield(self.flush())

    async def flush(self) -> None:
        """Write every buffered event, one gzip member per day touched."""
        async with self._lock:
            batches, self._sealed = self._sealed, []
            if self._batch and self._day is not None:
                batches.append((self._day, self._batch))
                self._batch = []
            for day, events in batches:
                await asyncio.to_thread(self._write, day, events)
        for listener in self.listeners:
            listener()

    # --- files (worker thread) ---

    def _write(self, day: str, events: list[MarketEvent]) -> None:
        path = self.path(day)
        try:
            if day not in self._prepared:
                self._prepare(day, path)
            text = rows(events)
            if text:
                append_member(path, gzip.compress(text.encode("ascii"), COMPRESS_LEVEL, mtime=0))
        except Exception as exc:  # never into the daemon: the recording gets a gap
            self.lost += len(events)
            self._failing = True
            log.error(
                "recording_failed",
                path=str(path),
                error=repr(exc),
                events_lost=len(events),
                action=f"free disk space or fix permissions of {self.folder}; trading goes on",
                rate_limited=True,
            )
            return
        self.written += len(events)
        if self._failing:
            self._failing = False
            log.info("recording_resumed", path=str(path))

    def _prepare(self, day: str, path: Path) -> None:
        """Create the day's file with its header, or make an existing one safe to append to.

        The folder is 0700 and the file 0600 whatever the umask: every print of the day."""
        private_dir(self.folder)
        size = path.stat().st_size if path.exists() else 0
        kept = complete_length(path) if size else 0
        if kept < size:
            with path.open("r+b") as fh:
                fh.truncate(kept)
            log.warning("recording_repaired", path=str(path), dropped_bytes=size - kept)
        if kept == 0:
            write_private(path, gzip.compress(head_text().encode("ascii"), COMPRESS_LEVEL, mtime=0))
        else:
            touch_private(path)  # appended to as it is: only its mode is made private
        self._prepared.add(day)
        self._files += 1
        log.info(
            "recording_started" if self._files == 1 else "recording_rotated",
            path=str(path),
            day=day,
            appending=kept > 0,
        )
        self._retain(day)

    def _retain(self, current: str | None) -> None:
        """Delete all but the newest `keep_days` days of this symbol (never the current one)."""
        keep = self.settings.keep_days
        if keep == 0 or not self.folder.is_dir():
            return
        try:
            files = sorted(
                (day, p)
                for p in self.folder.iterdir()
                if p.name.startswith(f"{self.symbol}-")
                and (day := day_of_name(p.name)) is not None
                and p.name == file_name(self.symbol, day)
            )
            for day, p in files[:-keep]:
                if day != current:
                    p.unlink()
                    log.info("recording_deleted", path=str(p), keep_days=keep)
        except OSError as exc:
            log.error("recording_retention_failed", folder=str(self.folder), error=repr(exc))


def append_member(path: Path, member: bytes) -> None:
    """Append one gzip member; a write that fails half-way (disk full) is cut off again, so the
    members already in the file and those appended later stay readable."""
    fd = os.open(path, os.O_WRONLY | os.O_APPEND)
    try:
        start = os.lseek(fd, 0, os.SEEK_END)
        view = memoryview(member)
        try:
            while view:
                view = view[os.write(fd, view) :]
        except OSError:
            with contextlib.suppress(OSError):
                os.ftruncate(fd, start)
            raise
    finally:
        os.close(fd)


def complete_length(path: Path) -> int:
    """Bytes of `path` up to the end of its last complete gzip member (0: none complete)."""
    good = pos = 0
    with path.open("rb") as fh:
        d = zlib.decompressobj(_GZIP)
        while chunk := fh.read(_CHUNK):
            while chunk:
                try:
                    d.decompress(chunk)
                except zlib.error:
                    return good
                if d.eof:
                    pos += len(chunk) - len(d.unused_data)
                    good = pos
                    chunk = d.unused_data
                    d = zlib.decompressobj(_GZIP)
                else:
                    pos += len(chunk)
                    chunk = b""
    return good
