"""The state directory is private whatever the umask: 0700, and every file in it 0600.

Each test sets a permissive umask itself (0o022 is the usual login default; 0 is the worst), so
a writer that leaves its mode to the umask shows up here, as it did for another local user who
read the account id and every fill out of a 0644 journal.
"""

from __future__ import annotations

import asyncio
import os
import sqlite3
import stat
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import structlog

from daemon.runtime.pacing_store import PACING_FILE
from daemon.runtime.statedir import (
    replace_private,
    secure_state_dir,
    touch_private,
    write_private,
)
from daemon.runtime.status import STATUS_FILE
from daemon.runtime.supervisor import JOURNAL_FILE
from daemon.trading.journal import Journal
from ibsim.gateway import Gateway
from tests.e2e.harness import Daemon, Market


def mode(path: Path) -> int:
    return stat.S_IMODE(path.lstat().st_mode)


@pytest.fixture(params=[0o022, 0o000], ids=["umask022", "umask000"])
def umask(request: pytest.FixtureRequest) -> Iterator[int]:
    """A permissive umask for the test (process-wide: restored after it)."""
    old = os.umask(request.param)
    try:
        yield request.param
    finally:
        os.umask(old)


def loose_state_dir(state: Path) -> dict[str, Path]:
    """A state directory as an older orderflowd left it under umask 022: 0755 and 0644."""
    files = {
        "journal": state / JOURNAL_FILE,
        "wal": state / f"{JOURNAL_FILE}-wal",
        "shm": state / f"{JOURNAL_FILE}-shm",
        "status": state / STATUS_FILE,
        "pacing": state / PACING_FILE,
        "recording": state / "recordings" / "ES-2026-11-19.csv.gz",
    }
    files["recording"].parent.mkdir(parents=True)
    for path in files.values():
        path.write_bytes(b"private: U1234567 bought 1 ES")
        path.chmod(0o644)
    files["recording"].parent.chmod(0o755)
    state.chmod(0o755)
    return files


def test_a_new_state_dir_is_created_0700(tmp_path: Path, umask: int) -> None:
    state = tmp_path / "a" / "state"
    with structlog.testing.capture_logs() as logs:
        secure_state_dir(state)
    assert mode(state) == 0o700
    assert logs == []  # nothing to tighten: nothing to say


def test_a_loose_state_dir_and_everything_in_it_are_tightened_and_logged(
    tmp_path: Path, umask: int
) -> None:
    state = tmp_path / "state"
    state.mkdir()
    files = loose_state_dir(state)
    read_only = state / "notes.txt"
    read_only.write_text("kept read-only")
    read_only.chmod(0o400)
    outside = tmp_path / "outside.txt"  # a link out of the state dir is not followed
    outside.write_text("not ours to change")
    outside.chmod(0o644)
    (state / "link").symlink_to(outside)

    with structlog.testing.capture_logs() as logs:
        secure_state_dir(state)

    assert mode(state) == 0o700
    assert mode(state / "recordings") == 0o700
    assert {name: mode(path) for name, path in files.items()} == dict.fromkeys(files, 0o600)
    assert files["journal"].read_bytes() == b"private: U1234567 bought 1 ES"  # content untouched
    assert mode(read_only) == 0o400  # tightened means fewer bits, never more
    assert mode(outside) == 0o644
    (event,) = logs
    assert event["event"] == "state_dir_tightened"
    assert event["log_level"] == "warning"
    assert event["dir_mode_was"] == "0755"
    assert event["changed"] == 8  # the dir, recordings/ and the six files
    assert "journal.sqlite-wal" in event["paths"]


def test_a_state_dir_that_cannot_be_created_is_logged_not_raised(tmp_path: Path) -> None:
    blocker = tmp_path / "state"
    blocker.write_text("a file where the state directory should be")
    with structlog.testing.capture_logs() as logs:
        secure_state_dir(blocker / "below-a-file")  # the writers then say what fails for them
    (event,) = logs
    assert event["event"] == "state_dir_unavailable"
    assert event["log_level"] == "error"


def test_the_writers_helpers_make_files_0600(tmp_path: Path, umask: int) -> None:
    write_private(tmp_path / "new", b"1")
    replace_private(tmp_path / "replaced", b"2")
    touch_private(tmp_path / "touched")
    existing = tmp_path / "existing"
    existing.write_bytes(b"kept")
    existing.chmod(0o644)
    touch_private(existing)
    replaced = tmp_path / "replaced-loose"
    replaced.write_bytes(b"old")
    replaced.chmod(0o644)
    replace_private(replaced, b"new")
    names = ["new", "replaced", "touched", "existing", "replaced-loose"]
    assert {n: mode(tmp_path / n) for n in names} == dict.fromkeys(names, 0o600)
    assert existing.read_bytes() == b"kept"
    assert replaced.read_bytes() == b"new"
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(names)  # no temporary left


def test_the_journal_and_its_wal_and_shm_are_0600(tmp_path: Path, umask: int) -> None:
    path = tmp_path / "state" / JOURNAL_FILE
    with Journal(path):  # creating the schema writes to the WAL
        wal, shm = Path(f"{path}-wal"), Path(f"{path}-shm")
        assert wal.exists()
        assert shm.exists()
        assert (mode(path), mode(wal), mode(shm)) == (0o600, 0o600, 0o600)
    with sqlite3.connect(path) as db:  # still a journal SQLite can read: nothing but the mode
        assert db.execute("PRAGMA journal_mode").fetchone() == ("wal",)


async def test_the_running_daemon_keeps_its_state_dir_private(
    tmp_path: Path,
    umask: int,
    gateway: Gateway,
    daemon: Callable[..., Daemon],
) -> None:
    """The supervisor in-process (no `orderflowd run` umask to hide behind), trading on."""
    state = tmp_path / "state"
    state.mkdir()
    stale = loose_state_dir(state)
    for name in ("journal", "wal", "shm"):  # not a journal: the daemon starts a new one
        stale[name].unlink()
    market = Market(gateway)
    with structlog.testing.capture_logs() as logs:
        d = daemon(gateway)
        assert mode(state) == 0o700  # tightened in Supervisor.__init__, before any write
        await d.ready(market)
    assert any(e["event"] == "state_dir_tightened" for e in logs)
    await d.send(market, d.strategy.intent(1, entry="MKT"))  # a fill in the journal
    await d.until(lambda: d.trader.position == 1)
    await asyncio.wait_for(d.sup.warm_start.pacer.acquire("ES"), 5)  # the pacing file
    await d.sup.recorder.flush()
    status_mtime = (state / STATUS_FILE).stat().st_mtime_ns
    await d.until(lambda: (state / STATUS_FILE).stat().st_mtime_ns != status_mtime)

    recordings = state / "recordings"
    written = {
        JOURNAL_FILE,
        f"{JOURNAL_FILE}-wal",
        f"{JOURNAL_FILE}-shm",
        STATUS_FILE,
        PACING_FILE,
        *(f"recordings/{p.name}" for p in recordings.iterdir()),
    }
    assert len(written) == 7  # the stale recording and today's
    assert {name: mode(state / name) for name in written} == dict.fromkeys(written, 0o600)
    assert mode(state) == 0o700
    assert mode(recordings) == 0o700
    assert not [p for p in state.rglob("*") if mode(p) & 0o077]  # the control socket too
