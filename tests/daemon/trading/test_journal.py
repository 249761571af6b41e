"""The SQLite trading journal: opening and migrating, every table's API, bad input that writes
nothing, and durability across a kill -9 in both synchronous modes."""

from __future__ import annotations

import enum
import os
import sqlite3
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Literal

import pytest

from daemon.core.orders import Order, OrderType, Role, Side, Status
from daemon.trading import journal as journal_module
from daemon.trading.journal import (
    MIGRATIONS,
    UNSET_DOUBLE,
    ExecRow,
    FillOutcome,
    Journal,
    JournalError,
)

ROOT = Path(__file__).parents[3]
DAY = "2026-11-22"
T0 = 1_795_000_000.0
INTENT = "ofd-20261122-0001"
CURRENT = len(MIGRATIONS)  # the schema version this code writes


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "state" / "journal.sqlite"


@pytest.fixture
def journal(path: Path) -> Iterator[Journal]:
    with Journal(path, synchronous="normal") as j:
        yield j


def add_intent(j: Journal, ref: str = INTENT, *, day: str = DAY, time: float = T0) -> None:
    j.record_intent(
        ref,
        time=time,
        day=day,
        target=1,
        entry="LMT",
        offset_ticks=0,
        stop_ticks=8,
        target_ticks=16,
        reason="stacked buy imbalance",
    )


def bracket(intent_ref: str = INTENT, *, time: float = T0) -> list[Order]:
    oca = f"{intent_ref}-oca"
    return [
        Order(
            ref=f"{intent_ref}-P", intent_ref=intent_ref, role=Role.ENTRY, client_id=7, order_id=11,
            action=Side.BUY, quantity=1, order_type=OrderType.LMT, lmt_price=5000.0, created=time,
        ),
        Order(
            ref=f"{intent_ref}-T", intent_ref=intent_ref, role=Role.TARGET, client_id=7,
            order_id=12,
            parent_ref=f"{intent_ref}-P", action=Side.SELL, quantity=1, order_type=OrderType.LMT,
            lmt_price=5004.0, oca_group=oca, tif="GTC", created=time,
        ),
        Order(
            ref=f"{intent_ref}-S", intent_ref=intent_ref, role=Role.STOP, client_id=7, order_id=13,
            parent_ref=f"{intent_ref}-P", action=Side.SELL, quantity=1, order_type=OrderType.STP,
            aux_price=4998.0, oca_group=oca, tif="GTC", created=time,
        ),
    ]  # fmt: skip


def fill(exec_id: str = "e1", **changes: Any) -> ExecRow:
    row = ExecRow(
        exec_id=exec_id, order_ref=f"{INTENT}-P", perm_id=900, order_id=11, client_id=7,
        time=T0 + 1, day=DAY, con_id=495512563, account="DU1234567", side="BUY", shares=1,
        price=5000.0, cum_qty=1, avg_price=5000.0,
    )  # fmt: skip
    return replace(row, **changes)


def counts(path: Path) -> dict[str, int]:
    """Rows per table, read through a separate connection (what another process would see)."""
    with sqlite3.connect(path) as db:
        tables = [r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table'")]
        return {t: db.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in tables}


# --- opening, schema, migrations ----------------------------------------------------------


@pytest.mark.parametrize(("mode", "level"), [("full", 2), ("normal", 1)])
def test_open_creates_a_wal_file_with_the_current_schema(
    path: Path, mode: Literal["full", "normal"], level: int
) -> None:
    with Journal(path, synchronous=mode) as j:
        assert j.schema_version == CURRENT == 3
        # Connection settings are per connection: read them from the journal's own.
        db = j._db
        assert db.execute("PRAGMA synchronous").fetchone()[0] == level
        assert db.execute("PRAGMA foreign_keys").fetchone()[0] == 1
        assert db.execute("PRAGMA busy_timeout").fetchone()[0] == 5000
    assert path.exists()
    with sqlite3.connect(path) as other:
        assert other.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert other.execute("PRAGMA user_version").fetchone()[0] == CURRENT
    assert set(counts(path)) == {
        "intents", "orders", "order_status", "executions", "positions", "daily_pnl", "events",
        "exec_corrections",
    }  # fmt: skip


def test_an_order_keeps_its_contract_and_an_older_journal_gains_the_column(path: Path) -> None:
    with Journal(path) as j:
        add_intent(j)
        parent, target, stop = bracket()
        parent.con_id = 624545943
        j.record_orders([parent, target, stop])
    with Journal(path) as j:
        assert [o.con_id for o in j.orders()] == [624545943, 0, 0]  # 0: not known
    version_2 = path.parent / "v2.sqlite"
    db = sqlite3.connect(version_2)
    with db:
        for version, statements in enumerate(journal_module.MIGRATIONS[:2], start=1):
            for statement in statements:
                db.execute(statement)
            db.execute(f"PRAGMA user_version = {version}")
        db.execute(
            "INSERT INTO intents VALUES ('i', 0, '2026-12-09', 1, 'MKT', 0, 8, 16, '', 'sent', '')"
        )
        db.execute(
            "INSERT INTO orders (ref, intent_ref, role, client_id, action, quantity, order_type, "
            "tif, oca_group, status, filled, remaining, created, updated) "
            "VALUES ('i-P', 'i', 'entry', 7, 'BUY', 1, 'MKT', 'DAY', '', 'Filled', 1, 0, 0, 0)"
        )
    db.close()
    with Journal(version_2) as j:
        assert j.schema_version == CURRENT
        [old] = j.orders()
        assert (old.ref, old.con_id, old.status) == ("i-P", 0, Status.FILLED)


def test_reopening_keeps_rows_and_the_version(path: Path) -> None:
    with Journal(path) as j:
        add_intent(j)
    with Journal(path) as j:
        assert j.schema_version == CURRENT
        assert [i.ref for i in j.intents()] == [INTENT]


def test_bad_synchronous_is_refused(path: Path) -> None:
    with pytest.raises(ValueError, match="synchronous must be"):
        Journal(path, synchronous="off")  # type: ignore[arg-type]


def test_a_file_that_is_not_sqlite_is_refused_and_left_alone(path: Path) -> None:
    path.parent.mkdir(parents=True)
    path.write_bytes(b"time_ct,price,size\n" * 400)
    with pytest.raises(JournalError, match="is not a SQLite database") as err:
        Journal(path)
    assert str(path) in str(err.value)
    assert path.read_bytes() == b"time_ct,price,size\n" * 400


def test_a_directory_in_place_of_the_file_is_refused(path: Path) -> None:
    path.mkdir(parents=True)
    with pytest.raises(JournalError, match="cannot open journal") as err:
        Journal(path)
    assert str(path) in str(err.value)


def test_an_unrelated_sqlite_database_is_refused(path: Path) -> None:
    path.parent.mkdir(parents=True)
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE bookmarks (url TEXT)")
    with pytest.raises(JournalError, match="not an orderflowd journal"):
        Journal(path)
    assert counts(path) == {"bookmarks": 0}


def test_a_newer_file_is_refused_naming_both_versions_and_never_touched(path: Path) -> None:
    path.parent.mkdir(parents=True)
    db = sqlite3.connect(path)
    db.execute("CREATE TABLE intents (ref TEXT)")
    db.execute("PRAGMA user_version = 5")
    db.commit()
    db.close()
    before = path.read_bytes()
    with pytest.raises(JournalError, match=f"schema version 5, newer than this code's {CURRENT}"):
        Journal(path)
    assert path.read_bytes() == before  # still in rollback-journal mode: not switched to WAL
    assert not path.with_name(path.name + "-wal").exists()


def test_an_older_file_is_migrated_forward_keeping_its_data(
    path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with Journal(path) as j:
        add_intent(j)
        j.record_orders(bracket())
    v2 = (
        "ALTER TABLE intents ADD COLUMN strategy TEXT NOT NULL DEFAULT ''",
        "CREATE TABLE fills_seen (exec_id TEXT PRIMARY KEY)",
    )
    monkeypatch.setattr(journal_module, "MIGRATIONS", [*MIGRATIONS, v2])
    with Journal(path) as j:
        assert j.schema_version == CURRENT + 1
        assert j.intent(INTENT) is not None
        assert [o.ref for o in j.orders()] == [f"{INTENT}-P", f"{INTENT}-T", f"{INTENT}-S"]
        strategy = j._db.execute("SELECT strategy FROM intents").fetchone()[0]
    assert strategy == ""
    assert counts(path)["fills_seen"] == 0
    with Journal(path) as j:  # already there: nothing runs again
        assert j.schema_version == CURRENT + 1


def test_a_version_1_journal_gains_the_corrections_table_and_keeps_its_fills(path: Path) -> None:
    path.parent.mkdir(parents=True)
    with sqlite3.connect(path) as db:  # the journal as the first release wrote it
        for statement in MIGRATIONS[0]:
            db.execute(statement)
        db.execute("PRAGMA user_version = 1")
        db.execute(
            "INSERT INTO executions VALUES "
            "('x.01.01', NULL, 1, 1, 7, ?, ?, 495512563, 'DU1', 'BUY', 1, 5000.0, 1, 5000.0, "
            "NULL, NULL)",
            (T0, DAY),
        )
    with Journal(path) as j:
        assert j.schema_version == CURRENT
        assert [e.exec_id for e in j.executions()] == ["x.01.01"]
        assert j.record_fill(fill("x.01.02"))[0] is FillOutcome.CORRECTION


def test_a_failing_migration_is_rolled_back_whole(
    path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with Journal(path) as j:
        add_intent(j)
    broken = ("CREATE TABLE half_done (x INTEGER)", "ALTER TABLE no_such_table ADD COLUMN y")
    monkeypatch.setattr(journal_module, "MIGRATIONS", [*MIGRATIONS, broken])
    with pytest.raises(JournalError, match=rf"to schema version {CURRENT + 1} failed.*no_such"):
        Journal(path)
    monkeypatch.setattr(journal_module, "MIGRATIONS", list(MIGRATIONS))
    with Journal(path) as j:
        assert j.schema_version == CURRENT
        assert j.intent(INTENT) is not None
    assert "half_done" not in counts(path)


# --- intents --------------------------------------------------------------------------------


def test_intent_refs_count_per_prefix_and_day_and_survive_a_restart(path: Path) -> None:
    with Journal(path) as j:
        assert j.next_intent_ref("ofd", DAY) == "ofd-20261122-0001"
        add_intent(j, "ofd-20261122-0001")
        add_intent(j, "ofd-20261122-0002")
        add_intent(j, "ofd-20261123-0001", day="2026-11-23")
        add_intent(j, "alt-20261122-0001")
        assert j.next_intent_ref("ofd", DAY) == "ofd-20261122-0003"
        assert j.next_intent_ref("alt", DAY) == "alt-20261122-0002"
        assert j.next_intent_ref("ofd", "2026-11-24") == "ofd-20261124-0001"
    with Journal(path) as j:
        assert j.next_intent_ref("ofd", DAY) == "ofd-20261122-0003"


def test_intent_ref_follows_the_highest_number_in_use(journal: Journal) -> None:
    add_intent(journal, "ofd-20261122-0007")
    assert journal.next_intent_ref("ofd", DAY) == "ofd-20261122-0008"


@pytest.mark.parametrize(
    ("prefix", "day", "message"),
    [
        ("", DAY, "prefix must not be empty"),
        ("ofd", "20261122", "day must be a date as YYYY-MM-DD"),
        ("ofd", "2026-02-30", "day must be a date as YYYY-MM-DD"),
    ],
)
def test_intent_ref_bad_input(journal: Journal, prefix: str, day: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        journal.next_intent_ref(prefix, day)


def test_intents_are_stored_read_and_their_status_set(journal: Journal) -> None:
    add_intent(journal, "a", time=T0 + 5)
    add_intent(journal, "b", time=T0, day="2026-11-21")
    row = journal.intent("a")
    assert row is not None
    assert (row.time, row.day, row.target, row.entry, row.stop_ticks, row.target_ticks) == (
        T0 + 5, DAY, 1, "LMT", 8, 16,
    )  # fmt: skip
    assert (row.status, row.detail) == ("new", "")
    assert journal.set_intent_status("a", "refused", "max_position: 1 + 1 > 1") is True
    assert journal.set_intent_status("zzz", "done") is False
    row = journal.intent("a")
    assert row is not None
    assert (row.status, row.detail) == ("refused", "max_position: 1 + 1 > 1")
    assert [i.ref for i in journal.intents()] == ["b", "a"]  # by time
    assert [i.ref for i in journal.intents(DAY)] == ["a"]
    assert journal.intent("zzz") is None


def test_intent_bad_input_writes_nothing(journal: Journal) -> None:
    add_intent(journal)
    with pytest.raises(JournalError, match=r"intent 'ofd-20261122-0001' not recorded.*UNIQUE"):
        add_intent(journal)
    with pytest.raises(ValueError, match="intent status must be one of"):
        journal.set_intent_status(INTENT, "finished")
    with pytest.raises(ValueError, match="entry must be LMT or MKT, got 'STP'"):
        journal.record_intent(
            "x", time=T0, day=DAY, target=1, entry="STP", offset_ticks=0, stop_ticks=8,
            target_ticks=16, reason="",
        )  # fmt: skip
    with pytest.raises(ValueError, match="time must be finite"):
        add_intent(journal, "y", time=float("nan"))
    assert [i.ref for i in journal.intents()] == [INTENT]


# --- orders ---------------------------------------------------------------------------------


def test_a_bracket_is_journaled_in_one_go(journal: Journal) -> None:
    add_intent(journal)
    journal.record_orders(bracket())
    parent = journal.order(f"{INTENT}-P")
    stop = journal.order(f"{INTENT}-S")
    assert parent is not None
    assert stop is not None
    assert (parent.status, parent.filled, parent.remaining, parent.live) == (
        "Journaled",
        0,
        1,
        True,
    )
    assert (parent.lmt_price, parent.aux_price, parent.perm_id) == (5000.0, None, None)
    assert (stop.role, stop.action, stop.order_type, stop.aux_price) == (
        "stop",
        "SELL",
        "STP",
        4998.0,
    )
    assert (stop.parent_ref, stop.oca_group, stop.tif) == (f"{INTENT}-P", f"{INTENT}-oca", "GTC")
    assert stop.created == T0
    assert [h.time for h in journal.order_history(stop.ref)] == [T0]
    [journaled] = journal.order_history(f"{INTENT}-S")
    assert (journaled.status, journaled.filled, journaled.remaining) == ("Journaled", 0, 1)


def test_a_duplicate_ref_raises_and_inserts_none_of_the_batch(journal: Journal) -> None:
    add_intent(journal)
    add_intent(journal, "ofd-20261122-0002")
    journal.record_orders(bracket())
    batch = [*bracket("ofd-20261122-0002"), bracket()[2]]
    with pytest.raises(JournalError, match=r"orders not recorded.*UNIQUE constraint failed"):
        journal.record_orders(batch)
    assert len(journal.orders()) == 3
    assert journal.order("ofd-20261122-0002-P") is None
    assert counts(journal.path)["order_status"] == 3


def test_unknown_intent_or_parent_raises_and_writes_nothing(journal: Journal) -> None:
    with pytest.raises(JournalError, match="FOREIGN KEY"):
        journal.record_orders(bracket())  # its intent was never recorded
    add_intent(journal)
    orphan = replace(bracket()[2], parent_ref="ofd-20261122-0009-P")
    with pytest.raises(JournalError, match="FOREIGN KEY"):
        journal.record_orders([bracket()[0], orphan])  # checked at commit (deferred)
    assert journal.orders() == []
    assert counts(journal.path)["order_status"] == 0


def test_a_child_may_come_before_its_parent_in_the_batch(journal: Journal) -> None:
    add_intent(journal)
    journal.record_orders(list(reversed(bracket())))
    assert len(journal.orders()) == 3


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"quantity": 0}, "quantity must be > 0, got 0"),
        ({"quantity": -2}, "quantity must be > 0, got -2"),
        ({"quantity": 1.5}, "quantity must be an int, got 1.5"),
        ({"role": "hedge"}, "role must be one of"),
        ({"action": "BOT"}, "action must be BUY or SELL, got 'BOT'"),
        ({"order_type": ""}, "order_type must be MKT, LMT or STP"),
        ({"lmt_price": None}, "lmt_price is required for a LMT order"),
        ({"lmt_price": float("inf")}, "lmt_price must be finite"),
        ({"created": float("nan")}, "created must be finite"),
        ({"ref": ""}, "order ref must not be empty"),
    ],
)
def test_bad_order_fields_raise_naming_the_field_and_write_nothing(
    journal: Journal, changes: dict[str, Any], message: str
) -> None:
    add_intent(journal)
    rows = bracket()
    rows[1] = replace(rows[1], **changes)
    with pytest.raises(ValueError, match=message):
        journal.record_orders(rows)
    assert journal.orders() == []


def test_a_stop_needs_its_stop_price(journal: Journal) -> None:
    add_intent(journal)
    with pytest.raises(ValueError, match=r"aux_price .* required for a STP order"):
        journal.record_orders([replace(bracket()[2], aux_price=None, parent_ref=None)])


def test_update_order_changes_only_the_given_fields(journal: Journal) -> None:
    add_intent(journal)
    journal.record_orders(bracket())
    ref = f"{INTENT}-P"
    assert journal.update_order(ref, perm_id=900, time=T0 + 1) is True
    assert journal.update_order(ref, status="Submitted", time=T0 + 2, detail="ack") is True
    assert journal.update_order(ref, remaining=1, time=T0 + 3) is True  # unchanged: no write
    row = journal.order(ref)
    assert row is not None
    assert (row.perm_id, row.status, row.order_id, row.lmt_price) == (900, "Submitted", 11, 5000.0)
    updated = journal._db.execute("SELECT updated FROM orders WHERE ref = ?", (ref,)).fetchone()
    assert updated == (T0 + 2,)  # the unchanged remaining wrote nothing
    assert journal.update_order(
        ref, status="Filled", filled=1, remaining=0, avg_fill_price=5000.0, time=T0 + 4
    )
    row = journal.order(ref)
    assert row is not None
    assert (row.status, row.filled, row.remaining, row.avg_fill_price) == ("Filled", 1, 0, 5000.0)
    assert row.live is False
    history = [
        (h.time, h.status, h.filled, h.remaining, h.detail) for h in journal.order_history(ref)
    ]
    assert history == [
        (T0, "Journaled", 0, 1, ""),
        (T0 + 2, "Submitted", 0, 1, "ack"),
        (T0 + 4, "Filled", 1, 0, ""),
    ]


def test_a_partial_fill_without_status_change_is_history(journal: Journal) -> None:
    add_intent(journal)
    rows = [replace(bracket()[0], quantity=3)]
    journal.record_orders(rows)
    ref = rows[0].ref
    journal.update_order(ref, status="Submitted", time=T0 + 1)
    journal.update_order(ref, filled=1, remaining=2, time=T0 + 2)
    journal.update_order(ref, remaining=2, perm_id=901, time=T0 + 3)  # neither status nor filled
    assert [(h.status, h.filled, h.remaining) for h in journal.order_history(ref)] == [
        ("Journaled", 0, 3),
        ("Submitted", 0, 3),
        ("Submitted", 1, 2),
    ]


def test_update_order_unknown_ref_and_bad_values(journal: Journal) -> None:
    assert journal.update_order("nope", status="Submitted", time=T0) is False
    add_intent(journal)
    journal.record_orders(bracket())
    ref = f"{INTENT}-P"
    with pytest.raises(ValueError, match="filled must be >= 0"):
        journal.update_order(ref, filled=-1, time=T0)
    with pytest.raises(ValueError, match="avg_fill_price must be finite"):
        journal.update_order(ref, avg_fill_price=float("nan"), time=T0)
    with pytest.raises(ValueError, match="status must not be empty"):
        journal.update_order(ref, status="", time=T0)
    assert len(journal.order_history(ref)) == 1


def test_orders_are_found_by_perm_id_by_client_order_id_and_live(journal: Journal) -> None:
    add_intent(journal)
    journal.record_orders(bracket())
    journal.update_order(f"{INTENT}-T", perm_id=902, time=T0 + 1)
    journal.update_order(f"{INTENT}-P", status="Filled", filled=1, remaining=0, time=T0 + 2)
    journal.update_order(f"{INTENT}-S", status="Submitted", time=T0 + 2)
    by_perm = journal.order_by_perm(902)
    by_id = journal.order_by_id(7, 13)
    assert by_perm is not None
    assert by_perm.ref == f"{INTENT}-T"
    assert by_id is not None
    assert by_id.ref == f"{INTENT}-S"
    assert journal.order_by_perm(1) is None
    assert journal.order_by_id(8, 13) is None
    assert [o.ref for o in journal.orders(live_only=True)] == [f"{INTENT}-T", f"{INTENT}-S"]
    assert len(journal.orders()) == 3


def test_an_abandoned_order_is_not_live(journal: Journal) -> None:
    add_intent(journal)
    journal.record_orders(bracket()[:1])
    journal.update_order(f"{INTENT}-P", status="Abandoned", time=T0 + 1, detail="never sent")
    assert journal.orders(live_only=True) == []


# --- executions -----------------------------------------------------------------------------


def test_an_execution_is_stored_once_and_never_overwritten(journal: Journal) -> None:
    assert journal.record_execution(fill()) is True
    assert journal.record_execution(fill(price=5001.0, shares=2)) is False
    [row] = journal.executions()
    assert row == fill()


def test_ib_sides_are_stored_as_buy_and_sell(journal: Journal) -> None:
    journal.record_execution(fill("e1", side="BOT", shares=3))
    journal.record_execution(fill("e2", side="SLD", shares=1, time=T0 + 2))
    assert [e.side for e in journal.executions()] == ["BUY", "SELL"]
    assert journal.journal_position(495512563) == 2


def test_a_fill_of_an_unknown_order_keeps_its_fields(journal: Journal) -> None:
    assert journal.record_execution(fill(order_ref="manual-tws", order_id=0, client_id=0))
    assert journal.record_execution(fill("e2", order_ref=None, perm_id=None, time=T0 + 2))
    assert [(e.order_ref, e.order_id) for e in journal.executions()] == [
        ("manual-tws", 0), (None, 11),
    ]  # fmt: skip


def test_commission_reports_are_attached(journal: Journal) -> None:
    journal.record_execution(fill("e1"))
    journal.record_execution(fill("e2", side="SELL", time=T0 + 2))
    assert journal.set_commission("e1", 2.25, UNSET_DOUBLE) is True
    assert journal.set_commission("e2", 2.25, 57.75) is True
    assert journal.set_commission("e9", 2.25, None) is False
    assert [(e.commission, e.realized_pnl) for e in journal.executions()] == [
        (2.25, None), (2.25, 57.75),
    ]  # fmt: skip
    with pytest.raises(ValueError, match="commission must be finite"):
        journal.set_commission("e1", float("nan"), None)


def test_executions_filter_by_day_and_contract_in_time_order(journal: Journal) -> None:
    journal.record_execution(fill("late", time=T0 + 9))
    journal.record_execution(fill("early", time=T0 + 1))
    journal.record_execution(fill("other-day", time=T0 - 80_000, day="2026-11-21"))
    journal.record_execution(fill("other-con", con_id=1, time=T0 + 5))
    assert [e.exec_id for e in journal.executions()] == ["other-day", "early", "other-con", "late"]
    assert [e.exec_id for e in journal.executions(day=DAY)] == ["early", "other-con", "late"]
    assert [e.exec_id for e in journal.executions(day=DAY, con_id=1)] == ["other-con"]
    assert [e.exec_id for e in journal.executions(con_id=495512563)] == [
        "other-day", "early", "late",
    ]  # fmt: skip


def test_a_correction_replaces_the_fill_it_corrects_and_keeps_what_it_replaced(
    journal: Journal,
) -> None:
    first = "0000e0d5.6575e1a1.01.01"
    assert journal.record_fill(fill(first, commission=2.25)) == (FillOutcome.NEW, None)
    corrected = fill("0000e0d5.6575e1a1.01.02", price=5001.25)
    outcome, replaced = journal.record_fill(corrected)
    assert outcome is FillOutcome.CORRECTION
    assert replaced == fill(first, commission=2.25)
    assert journal.executions() == [corrected]  # one fill, the corrected one, no commission yet
    assert journal.journal_position(495512563) == 1  # not 2
    assert journal.corrections() == [(corrected.exec_id, fill(first, commission=2.25))]
    # the same correction again, and the original arriving late, change nothing
    assert journal.record_fill(corrected) == (FillOutcome.DUPLICATE, None)
    assert journal.record_fill(fill(first)) == (FillOutcome.SUPERSEDED, None)
    assert journal.executions() == [corrected]


def test_corrections_match_the_whole_stem_only(journal: Journal) -> None:
    journal.record_fill(fill("ab.01.01"))
    journal.record_fill(fill("ab_01.01", time=T0 + 2))  # "_" is not a LIKE wildcard here
    journal.record_fill(fill("xab.01.01", time=T0 + 3))
    assert journal.record_fill(fill("ab.01.02", price=5002.0))[0] is FillOutcome.CORRECTION
    assert sorted(e.exec_id for e in journal.executions()) == ["ab.01.02", "ab_01.01", "xab.01.01"]
    assert journal.record_fill(fill("no-suffix")) == (FillOutcome.NEW, None)


def test_an_orders_filled_shares_leave_out_the_fill_being_corrected(journal: Journal) -> None:
    journal.record_fill(fill("a.01.01", shares=1))
    journal.record_fill(fill("a.02.01", shares=2, time=T0 + 2))
    assert journal.order_fills(f"{INTENT}-P") == 3
    assert journal.order_fills(f"{INTENT}-P", without="a.02.01") == 1
    assert journal.order_fills("nobody") == 0


def test_the_disk_check_sees_what_a_restart_would_see(path: Path) -> None:
    with Journal(path) as j:
        add_intent(j)
        j.record_orders(bracket())
        j.record_fill(fill())
        j.record_event("connect", T0)
        assert j.check_on_disk() is None
        wal = path.with_name(path.name + "-wal")
        assert wal.stat().st_size > 0
        wal.write_bytes(b"")  # the WAL is gone: the last commits with it
        problem = j.check_on_disk()
    assert problem is not None
    assert "differs from what was written" in problem or "damaged" in problem


def test_journal_position_sums_signed_shares_per_contract_and_account(journal: Journal) -> None:
    assert journal.journal_position(495512563) == 0
    journal.record_execution(fill("e1", shares=3))
    journal.record_execution(fill("e2", side="SELL", shares=1))
    journal.record_execution(fill("e3", side="SELL", shares=5, account="DU7654321"))
    journal.record_execution(fill("e4", shares=2, con_id=1))
    assert journal.journal_position(495512563) == -3
    assert journal.journal_position(495512563, "DU1234567") == 2
    assert journal.journal_position(495512563, "DU7654321") == -5
    assert journal.journal_position(1) == 2


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"exec_id": ""}, "exec_id must not be empty"),
        ({"side": "LONG"}, "side must be BUY, SELL, BOT or SLD, got 'LONG'"),
        ({"shares": 0}, "shares must be an int > 0, got 0"),
        ({"shares": 1.0}, "shares must be an int > 0, got 1.0"),
        ({"price": float("nan")}, "price must be finite"),
        ({"day": "22/11/2026"}, "day must be a date as YYYY-MM-DD"),
        ({"time": float("inf")}, "time must be finite"),
        ({"commission": float("nan")}, "commission must be finite"),
    ],
)
def test_bad_execution_fields_raise_and_write_nothing(
    journal: Journal, changes: dict[str, Any], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        journal.record_execution(fill(**changes))
    assert journal.executions() == []


# --- positions, daily PnL, events -----------------------------------------------------------


def test_position_snapshots(journal: Journal) -> None:
    journal.record_position(T0, 495512563, "DU1234567", 2, 1, 5000.25, "reconcile")
    journal.record_position(T0 + 1, 1, "DU1234567", None, 0, None, "startup")
    snaps = journal.positions()
    assert [(p.con_id, p.broker_qty, p.journal_qty, p.avg_cost, p.source) for p in snaps] == [
        (495512563, 2, 1, 5000.25, "reconcile"),
        (1, None, 0, None, "startup"),
    ]
    assert [p.time for p in journal.positions(con_id=1)] == [T0 + 1]


def test_daily_pnl_is_upserted(journal: Journal) -> None:
    assert journal.daily_pnl(DAY) is None
    journal.upsert_daily_pnl(DAY, 62.5, None, 4.5, None, T0)
    first = journal.daily_pnl(DAY)
    assert first is not None
    assert (first.realized, first.unrealized, first.commissions, first.net) == (
        62.5,
        None,
        4.5,
        None,
    )
    journal.upsert_daily_pnl(DAY, 62.5, -25.0, 4.5, 33.0, T0 + 60)
    again = journal.daily_pnl(DAY)
    assert again is not None
    assert (again.unrealized, again.net, again.updated) == (-25.0, 33.0, T0 + 60)
    assert counts(journal.path)["daily_pnl"] == 1
    with pytest.raises(ValueError, match="net must be finite"):
        journal.upsert_daily_pnl(DAY, 0.0, 0.0, 0.0, float("inf"), T0)


class Colour(enum.Enum):
    RED = "red"


@dataclass
class Limit:
    rule: str
    value: int


def test_events_hold_sorted_json_newest_last(journal: Journal) -> None:
    journal.record_event("connect", T0, port=4002, client_id=7)
    journal.record_event("halt", T0 + 1, reason="daily loss", state=Colour.RED)
    journal.record_event("refusal", T0 + 2, refusal=Limit("max_position", 1), path=Path("/x"))
    journal.record_event("halt", T0 + 3)
    events = journal.events()
    assert [e.kind for e in events] == ["connect", "halt", "refusal", "halt"]
    assert events[0].detail == '{"client_id": 7, "port": 4002}'
    assert events[1].data == {"reason": "daily loss", "state": "red"}
    assert events[2].data == {"path": "/x", "refusal": {"rule": "max_position", "value": 1}}
    assert [e.time for e in journal.events("halt")] == [T0 + 1, T0 + 3]
    assert [e.kind for e in journal.events(limit=2)] == ["refusal", "halt"]
    assert [e.time for e in journal.events("halt", limit=1)] == [T0 + 3]
    assert journal.events(limit=0) == []


def test_bad_events_raise_and_write_nothing(journal: Journal) -> None:
    with pytest.raises(TypeError, match="value of type object is not JSON-serialisable"):
        journal.record_event("mismatch", T0, thing=object())
    with pytest.raises(ValueError, match="event 'mismatch' detail is not valid JSON"):
        journal.record_event("mismatch", T0, pnl=float("nan"))
    with pytest.raises(ValueError, match="event kind must not be empty"):
        journal.record_event("", T0)
    with pytest.raises(ValueError, match="limit must be >= 0"):
        journal.events(limit=-1)
    assert journal.events() == []


# --- durability -----------------------------------------------------------------------------

KILLED_WRITER = """
import os, signal
from pathlib import Path
from daemon.trading.journal import Journal
from tests.daemon.trading.test_journal import INTENT, add_intent, bracket, fill

j = Journal(Path({path!r}), synchronous={mode!r})
add_intent(j)
j.record_orders(bracket())
j.update_order(INTENT + "-P", status="Filled", filled=1, remaining=0, time=1.0)
j.record_execution(fill())
j.record_event("flatten", 2.0, reason="test")
os.kill(os.getpid(), signal.SIGKILL)
"""


@pytest.mark.parametrize("mode", ["full", "normal"])
def test_every_committed_row_survives_kill_9(path: Path, mode: Literal["full", "normal"]) -> None:
    script = KILLED_WRITER.format(path=str(path), mode=mode)
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
    }
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(script)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert done.returncode == -9, done.stderr
    assert path.with_name(path.name + "-wal").exists()  # not checkpointed: the WAL holds them
    with Journal(path, synchronous=mode) as j:
        assert j.intent(INTENT) is not None
        assert [o.ref for o in j.orders()] == [f"{INTENT}-P", f"{INTENT}-T", f"{INTENT}-S"]
        parent = j.order(f"{INTENT}-P")
        assert parent is not None
        assert (parent.status, parent.filled) == ("Filled", 1)
        assert j.executions() == [fill()]
        assert [e.kind for e in j.events()] == ["flatten"]
