"""RollOp.open_in: the roll operation a journal leaves open, step by step (no sockets)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from daemon.trading.journal import Journal
from daemon.trading.roll import RollOp

STARTED: dict[str, Any] = {
    "policy": "roll", "con_id": 624542916, "front": 624545943, "position": 2, "carry": 2,
    "stop_ticks": 8, "target_ticks": 12,
}  # fmt: skip


@pytest.fixture
def journal(tmp_path: Path) -> Journal:
    return Journal(tmp_path / "journal.sqlite")


def record(journal: Journal, *events: tuple[str, dict[str, Any]]) -> None:
    for i, (kind, data) in enumerate(events):
        journal.record_event(kind, float(i), **data)


def test_nothing_journaled_is_nothing_open(journal: Journal) -> None:
    record(journal, ("flatten", {"reason": "x"}))
    assert RollOp.open_in(journal) is None


@pytest.mark.parametrize(
    ("steps", "closed", "opening"),
    [
        ([], False, None),
        ([("roll_closed", {"op": "a", "closed": 2})], True, None),
        (
            [
                ("roll_closed", {"op": "a", "closed": 2}),
                ("roll_opening", {"op": "a", "intent": "i"}),
            ],
            True,
            "i",
        ),
    ],
)
def test_an_operation_is_open_at_the_step_last_journaled(
    journal: Journal, steps: list[tuple[str, dict[str, Any]]], closed: bool, opening: str | None
) -> None:
    record(journal, ("roll_started", {"op": "a", **STARTED}), *steps)
    op = RollOp.open_in(journal)
    assert op == RollOp("a", "roll", 624542916, 2, 8, 12, closed=closed, opening=opening)


@pytest.mark.parametrize("end", ["roll_done", "roll_failed"])
def test_an_ended_operation_is_not_open(journal: Journal, end: str) -> None:
    record(journal, ("roll_started", {"op": "a", **STARTED}), (end, {"op": "a", "detail": ""}))
    assert RollOp.open_in(journal) is None


def test_steps_of_another_operation_do_not_count(journal: Journal) -> None:
    record(
        journal,
        ("roll_started", {"op": "a", **STARTED}),
        ("roll_done", {"op": "a"}),
        ("roll_started", {"op": "b", **STARTED, "policy": "close", "carry": 0}),
        ("roll_closed", {"op": "a", "closed": 2}),  # late, of the one that ended
    )
    op = RollOp.open_in(journal)
    assert op is not None
    assert (op.op, op.policy, op.carry, op.closed) == ("b", "close", 0, False)
