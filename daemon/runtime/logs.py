"""Logging: structlog on top of stdlib `logging`, one renderer for our events and for libraries.

Our events are `snake_case` names with key-value context. stdlib records (ib_async logs that way)
go through the same processors via `structlog.stdlib.ProcessorFormatter`, so every line has the
same shape: console on a terminal, JSON lines with an sd-daemon(3) `<N>` priority prefix under
journald, and plain JSON lines in the optional rotating file. `reopen_log_files` (SIGHUP) opens
that file again at its path, after logrotate has moved it away.
"""

from __future__ import annotations

import logging
import logging.handlers
import math
import os
import re
import sys
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal, TextIO

import structlog
from structlog.typing import EventDict, Processor, WrappedLogger

__all__ = [
    "LogFormat",
    "RateLimiter",
    "configure_logging",
    "flush_suppressed",
    "get_logger",
    "mask_account",
    "mask_accounts",
    "reopen_log_files",
    "reset_logging",
]

LogFormat = Literal["auto", "console", "json"]

FILE_MAX_BYTES = 10 * 1024 * 1024
FILE_BACKUP_COUNT = 5
RATE_LIMIT = 5
RATE_WINDOW_S = 60.0
NOISY_LOGGERS = ("ib_async",)
# ib_async's own lines for TWS messages ("Error 202, reqId 7: ...", and the Trade it then marks
# cancelled or invalid): the connection logs each message once as `tws_message`, with the
# catalogue's name and action, at the level the catalogue gives it.
_IB_ASYNC_TWS_LINES = ("Error ", "Warning ", "Canceled order: ", "IBKR API validation warning: ")

# sd-daemon(3) priorities; critical maps to <3> like error (project convention, not LOG_CRIT).
_PRIORITY = {"critical": 3, "error": 3, "warning": 4, "info": 6, "debug": 7}
_LEVELS = frozenset(_PRIORITY)
_LEVEL_ALIASES = {"exception": "error", "warn": "warning", "fatal": "critical", "msg": "info"}

# IB account ids: U1234567 (live), DU1234567 (paper). Five digits minimum keeps e.g. "U2" alone.
_ACCOUNT_ID = re.compile(r"(?<![A-Za-z0-9])D?U\d{5,}(?![A-Za-z0-9])")
_ACCOUNT_KEY_SUFFIXES = (
    "account",
    "accounts",
    "acct",
    "acctnumber",
    "acctid",
    "accountid",
    "accountcode",
    "accountnumber",
)
_META_KEYS = frozenset({"_record", "_from_structlog"})
_MAX_DEPTH = 6


def mask_account(s: str) -> str:
    """Mask all but the last 4 characters (`DU1234567` → `*****4567`); 4 or fewer: all."""
    keep = 4 if len(s) > 4 else 0
    return "*" * (len(s) - keep) + s[len(s) - keep :]


def _mask_text(text: str) -> str:
    return _ACCOUNT_ID.sub(lambda m: mask_account(m.group()), text)


@lru_cache(maxsize=1024)
def _is_account_key(key: str) -> bool:
    return key.lower().replace("_", "").endswith(_ACCOUNT_KEY_SUFFIXES)


def _scrub(value: Any, depth: int = 0) -> Any:
    """Mask account ids found anywhere in *value*, keeping its type where it has no ids."""
    if value is None or isinstance(value, str | int | float):
        return _mask_text(value) if isinstance(value, str) else value
    if depth < _MAX_DEPTH:
        if isinstance(value, dict):
            return _scrub_mapping(value, depth + 1)
        if type(value) in (list, tuple):
            return type(value)(_scrub(v, depth + 1) for v in value)
    # Other objects (ib_async Position, Order, ...) are rendered by repr anyway.
    text = repr(value)
    masked = _mask_text(text)
    return value if masked == text else masked


def _mask_account_value(value: Any, depth: int = 0) -> Any:
    """Mask a value stored under an account-like key, whether or not it looks like an id."""
    if value is None:
        return None
    if isinstance(value, str):
        masked = _mask_text(value)
        return masked if masked != value else mask_account(value)
    if depth < _MAX_DEPTH:
        if isinstance(value, dict):
            return _scrub_mapping(value, depth + 1)
        if isinstance(value, list | tuple | set | frozenset):
            return [_mask_account_value(v, depth + 1) for v in value]
    return mask_account(str(value))


def _scrub_mapping(mapping: Mapping[Any, Any], depth: int) -> dict[Any, Any]:
    return {
        _scrub(k, depth): (
            _mask_account_value(v, depth)
            if isinstance(k, str) and _is_account_key(k)
            else _scrub(v, depth)
        )
        for k, v in mapping.items()
    }


def mask_accounts(logger: WrappedLogger, method_name: str, event_dict: EventDict) -> EventDict:
    """Processor: mask values under account-like keys and IB account ids in any value."""
    for key, value in event_dict.items():
        if key in _META_KEYS:
            continue
        event_dict[key] = _mask_account_value(value) if _is_account_key(key) else _scrub(value)
    return event_dict


@dataclass
class _Window:
    start: float
    level: str
    logger_name: str | None
    passed: int = 1
    dropped: int = 0


@dataclass
class _Summary:
    logger_name: str | None
    level: str
    fields: dict[str, Any] = field(default_factory=dict)


class RateLimiter:
    """Processor for events logged with `rate_limited=True` (other events pass untouched).

    Per (event, `rate_key`) the first `limit` events of a window pass; the rest are dropped and
    counted. Once the window has ended, the next event through the chain (or `flush`) emits one
    `log_suppressed` line with `suppressed_event`, `count` and `window_s`.
    """

    def __init__(
        self,
        limit: int = RATE_LIMIT,
        window_s: float = RATE_WINDOW_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._limit = limit
        self._window_s = window_s
        self._clock = clock
        self._windows: dict[tuple[str, str | None], _Window] = {}
        self._next_due = math.inf
        self._lock = threading.Lock()

    def __call__(self, logger: WrappedLogger, method_name: str, event_dict: EventDict) -> EventDict:
        limited = event_dict.pop("rate_limited", False)
        now = self._clock()
        with self._lock:
            due = self._sweep(now, force=False)
            drop = limited and self._count(now, logger, method_name, event_dict)
        self._emit(due)
        if drop:
            raise structlog.DropEvent
        return event_dict

    def flush(self, *, force: bool = False) -> None:
        """Emit summaries of ended windows; with `force`, of all windows (at shutdown)."""
        with self._lock:
            due = self._sweep(self._clock(), force=force)
        self._emit(due)

    def _count(
        self, now: float, logger: WrappedLogger, method_name: str, event_dict: EventDict
    ) -> bool:
        """Record one event; True when it must be dropped."""
        rate_key = event_dict.get("rate_key")
        key = (str(event_dict.get("event")), None if rate_key is None else str(rate_key))
        window = self._windows.get(key)
        if window is None:
            level = _LEVEL_ALIASES.get(method_name, method_name)
            self._windows[key] = _Window(
                start=now,
                level=level if level in _LEVELS else "warning",
                logger_name=getattr(logger, "name", None),
            )
            self._next_due = min(self._next_due, now + self._window_s)
            return False
        if window.passed < self._limit:
            window.passed += 1
            return False
        window.dropped += 1
        return True

    def _sweep(self, now: float, *, force: bool) -> list[_Summary]:
        if not force and now < self._next_due:
            return []
        due: list[_Summary] = []
        kept: dict[tuple[str, str | None], _Window] = {}
        for (event, rate_key), window in self._windows.items():
            if not force and now < window.start + self._window_s:
                kept[(event, rate_key)] = window
            elif window.dropped:
                fields: dict[str, Any] = {
                    "suppressed_event": event,
                    "count": window.dropped,
                    "window_s": _plain_number(self._window_s),
                }
                if rate_key is not None:
                    fields["rate_key"] = rate_key
                due.append(_Summary(window.logger_name, window.level, fields))
        self._windows = kept
        self._next_due = min((w.start + self._window_s for w in kept.values()), default=math.inf)
        return due

    @staticmethod
    def _emit(due: Iterable[_Summary]) -> None:
        # Outside the lock: the summary goes through the whole chain, this processor included.
        for summary in due:
            logger = structlog.stdlib.get_logger(summary.logger_name)
            getattr(logger, summary.level)("log_suppressed", **summary.fields)


def _plain_number(value: float) -> float | int:
    return int(value) if value.is_integer() else value


class _PriorityPrefixed:
    """Renderer wrapper: prefix each line with the sd-daemon(3) priority for journald."""

    def __init__(self, renderer: Processor) -> None:
        self._renderer = renderer

    def __call__(self, logger: WrappedLogger, method_name: str, event_dict: EventDict) -> str:
        priority = _PRIORITY.get(str(event_dict.get("level", method_name)), 6)
        line = self._renderer(logger, method_name, event_dict)
        return f"<{priority}>{line.decode() if isinstance(line, bytes) else line}"


class _ReopenableFileHandler(logging.handlers.RotatingFileHandler):
    """The rotating log file, which can also be reopened at its path (logrotate's SIGHUP)."""

    def reopen(self) -> None:
        """Open the path anew and switch to it; on failure keep writing to the old file."""
        self.acquire()
        try:
            fresh = self._open()  # OSError: the old stream stays in use
            old, self.stream = self.stream, fresh
            if old is not None:
                old.close()
        finally:
            self.release()


@dataclass
class _Installed:
    handlers: list[logging.Handler]
    root_level: int
    noisy_levels: dict[str, int]
    limiter: RateLimiter


_installed: _Installed | None = None


def _not_a_tws_line_of_ib_async(record: logging.LogRecord) -> bool:
    return not (
        record.name == "ib_async.wrapper"
        and isinstance(record.msg, str)
        and record.msg.startswith(_IB_ASYNC_TWS_LINES)
    )


def _parse_level(level: str) -> int:
    value = logging.getLevelName(level.strip().upper())
    if not isinstance(value, int):
        raise ValueError(f"unknown log level {level!r} (use debug, info, warning, error)")
    return value


def _isatty(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


def _is_journal(stream: TextIO, environ: Mapping[str, str]) -> bool:
    """True when *stream* is journald's: JOURNAL_STREAM set and, if checkable, naming its fd."""
    expected = environ.get("JOURNAL_STREAM")
    if not expected or _isatty(stream):
        return False
    try:
        st = os.fstat(stream.fileno())
    except (AttributeError, OSError, ValueError):
        return True  # not a real fd (tests, wrappers): trust the environment
    return f"{st.st_dev}:{st.st_ino}" == expected


def _pre_chain(*, foreign: bool) -> list[Processor]:
    chain: list[Processor] = [structlog.stdlib.add_log_level, structlog.stdlib.add_logger_name]
    if foreign:
        chain.append(structlog.stdlib.ExtraAdder())
    chain += [
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.processors.StackInfoRenderer(),
        structlog.processors.format_exc_info,
        mask_accounts,  # last: sees tracebacks and extras too
    ]
    return chain


def _formatter(renderer: Processor) -> structlog.stdlib.ProcessorFormatter:
    return structlog.stdlib.ProcessorFormatter(
        processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, renderer],
        foreign_pre_chain=_pre_chain(foreign=True),
    )


def configure_logging(
    fmt: LogFormat,
    level: str,
    file: Path | None = None,
    *,
    stream: TextIO | None = None,
    environ: Mapping[str, str] | None = None,
    clock: Callable[[], float] | None = None,
    library_level: str = "WARNING",
) -> None:
    """Configure structlog and stdlib logging for the process; calling it again replaces it.

    `fmt="auto"`: console on a TTY, JSON under journald (JOURNAL_STREAM), console otherwise.
    Lines written to journald carry a `<N>` priority prefix whatever the format. *file*, if
    given, gets JSON lines without prefix, rotated at 10 MB x 5. *library_level* is the floor
    for ib_async's own loggers. *clock* drives the rate limiter (monotonic seconds).
    """
    out = sys.stderr if stream is None else stream
    env = os.environ if environ is None else environ
    numeric = _parse_level(level)
    floor = max(numeric, _parse_level(library_level))
    if fmt not in ("auto", "console", "json"):
        raise ValueError(f"unknown log format {fmt!r} (use auto, console, json)")
    journal = _is_journal(out, env)
    if fmt == "auto":
        fmt = "json" if journal else "console"

    reset_logging()

    renderer: Processor
    if fmt == "json":
        renderer = structlog.processors.JSONRenderer()
    else:
        colors = _isatty(out) and "NO_COLOR" not in env
        renderer = structlog.dev.ConsoleRenderer(colors=colors)
    stream_handler = logging.StreamHandler(out)
    stream_handler.setFormatter(_formatter(_PriorityPrefixed(renderer) if journal else renderer))
    handlers: list[logging.Handler] = [stream_handler]
    if file is not None:
        file.parent.mkdir(parents=True, exist_ok=True)
        file_handler = _ReopenableFileHandler(
            file, maxBytes=FILE_MAX_BYTES, backupCount=FILE_BACKUP_COUNT, encoding="utf-8"
        )
        file_handler.setFormatter(_formatter(structlog.processors.JSONRenderer()))
        handlers.append(file_handler)

    root = logging.getLogger()
    global _installed
    _installed = _Installed(
        handlers=handlers,
        root_level=root.level,
        noisy_levels={name: logging.getLogger(name).level for name in NOISY_LOGGERS},
        limiter=RateLimiter(clock=time.monotonic if clock is None else clock),
    )
    for handler in handlers:
        handler.addFilter(_not_a_tws_line_of_ib_async)
        root.addHandler(handler)
    root.setLevel(numeric)
    for name in NOISY_LOGGERS:
        logging.getLogger(name).setLevel(floor)

    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.stdlib.filter_by_level,
            _installed.limiter,  # early, so dropped events cost little
            *_pre_chain(foreign=False),
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        # Not cached: module-level loggers must follow a later configure_logging call.
        cache_logger_on_first_use=False,
    )


def reopen_log_files() -> None:
    """SIGHUP: reopen the log file at its configured path and log `sighup` (also without one).

    logrotate renames the file and sends SIGHUP; the lines after it go to a new file at the
    old path. A file that cannot be reopened is logged and the old one kept.
    """
    log = structlog.stdlib.get_logger("daemon.runtime.logs")
    installed = _installed
    files = [
        h
        for h in (installed.handlers if installed else [])
        if isinstance(h, _ReopenableFileHandler)
    ]
    for handler in files:
        try:
            handler.reopen()
        except OSError as exc:
            log.error("log_file_reopen_failed", path=handler.baseFilename, error=str(exc))
    log.info("sighup", action="reopen_log_files", log_files=[h.baseFilename for h in files])


def flush_suppressed(*, force: bool = False) -> None:
    """Emit pending `log_suppressed` summaries (call periodically, and with force at exit)."""
    if _installed is not None:
        _installed.limiter.flush(force=force)


def reset_logging() -> None:
    """Undo `configure_logging`: flush summaries, remove its handlers, restore levels."""
    global _installed
    installed, _installed = _installed, None
    if installed is not None:
        installed.limiter.flush(force=True)
        root = logging.getLogger()
        for handler in installed.handlers:
            root.removeHandler(handler)
            handler.close()
        root.setLevel(installed.root_level)
        for name, lvl in installed.noisy_levels.items():
            logging.getLogger(name).setLevel(lvl)
    structlog.reset_defaults()


def get_logger(name: str | None = None, **context: Any) -> structlog.stdlib.BoundLogger:
    """A structlog logger named *name* (default: the calling module), bound to *context*."""
    if name is None:
        name = sys._getframe(1).f_globals.get("__name__", "orderflowd")
    return structlog.stdlib.get_logger(name, **context)
