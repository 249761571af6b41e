"""The state directory is private: the directory and its subdirectories 0700, files 0600.

It holds the account id and every fill (journal.sqlite and its -wal/-shm), status.json, the
recordings and the pacing history. Under systemd `UMask=0077` and `StateDirectoryMode=0700`
keep it so; run by hand with the usual umask 022 it would be readable by every local user.
So the modes never depend on the umask: `secure_state_dir` runs first thing at start (creates
the directory, tightens what an older version or another umask left), and the writers create
their files through the helpers below, born 0600.

SQLite creates `-wal` and `-shm` with the mode of the database file, so the journal's file is
made 0600 (`touch_private`) before SQLite opens it.
"""

from __future__ import annotations

import os
import stat
import tempfile
from pathlib import Path
from typing import Final

import structlog

log = structlog.get_logger("daemon.runtime.statedir")

DIR_MODE: Final = 0o700
FILE_MODE: Final = 0o600
_SHOWN: Final = 10  # paths named in the log line; the count says how many there were


def _tightened(mode: int, private: int) -> int | None:
    """The mode without group and other bits, or None when `mode` has none of them."""
    bits = stat.S_IMODE(mode)
    return None if not bits & 0o077 else bits & private


def private_dir(path: Path) -> None:
    """Create `path` (and missing parents) with the directory itself 0700, or tighten it."""
    path.mkdir(DIR_MODE, parents=True, exist_ok=True)  # FileExistsError: not a directory
    mode = _tightened(path.stat().st_mode, DIR_MODE)
    if mode is not None:
        path.chmod(mode)


def open_private(path: Path, flags: int) -> int:
    """`os.open(path, flags | O_CREAT)`, a new file born 0600 and an existing one tightened."""
    fd = os.open(path, flags | os.O_CREAT | os.O_CLOEXEC, FILE_MODE)
    try:
        mode = _tightened(os.fstat(fd).st_mode, FILE_MODE)
        if mode is not None:
            os.fchmod(fd, mode)
    except OSError as exc:  # not our file (a report run by another user), a read-only mount
        log.warning("file_not_private", path=str(path), error=str(exc), rate_limited=True)
    except BaseException:
        os.close(fd)
        raise
    return fd


def touch_private(path: Path) -> None:
    """Make sure `path` exists, 0600 (its content untouched)."""
    os.close(open_private(path, os.O_RDONLY))


def write_private(path: Path, data: bytes) -> None:
    """Create or truncate `path`, 0600, and write `data` to it."""
    fd = open_private(path, os.O_WRONLY | os.O_TRUNC)
    with os.fdopen(fd, "wb") as f:
        f.write(data)


def replace_private(path: Path, data: bytes) -> None:
    """Write `data` to `path` atomically (readers see the old file or the new one), 0600."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)  # mkstemp: 0600
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def secure_state_dir(state_dir: Path) -> None:
    """Create `state_dir` 0700, and take group and other access off everything in it.

    Symbolic links are neither followed nor changed. Failures are logged, never raised: the
    writers report a directory they cannot use themselves, and trading does not stop for a mode.
    """
    state_dir = Path(state_dir)
    try:
        state_dir.mkdir(DIR_MODE, parents=True, exist_ok=True)
        was = stat.S_IMODE(state_dir.stat().st_mode)
    except OSError as exc:
        log.error("state_dir_unavailable", path=str(state_dir), error=str(exc))
        return
    changed: list[str] = []
    failed: list[str] = []

    def tighten(path: Path, private: int) -> None:
        try:
            st = path.lstat()
            if stat.S_ISLNK(st.st_mode):
                return
            mode = _tightened(st.st_mode, private)
            if mode is not None:
                path.chmod(mode)
                changed.append(str(path.relative_to(state_dir)))
        except OSError as exc:
            failed.append(f"{path}: {exc.strerror or exc}")

    tighten(state_dir, DIR_MODE)  # before reading its content: nobody else may add to it
    for root, dirs, files in os.walk(state_dir, onerror=lambda e: failed.append(str(e))):
        for name in dirs:
            tighten(Path(root) / name, DIR_MODE)
        for name in files:
            tighten(Path(root) / name, FILE_MODE)
    if changed:
        log.warning(
            "state_dir_tightened",
            path=str(state_dir),
            dir_mode_was=f"{was:04o}",
            changed=len(changed),
            paths=changed[:_SHOWN],
            why="other local users could read the journal (account id, fills) and the status",
        )
    if failed:
        log.error(
            "state_dir_not_private",
            path=str(state_dir),
            failed=len(failed),
            errors=failed[:_SHOWN],
            fix=f"give {state_dir} and everything in it to the daemon's user, then "
            f"chmod -R go-rwx {state_dir}",
        )
