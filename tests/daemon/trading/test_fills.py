"""The pure checks on a fill, an intent and an order's ownership (what each refuses and why)."""

from __future__ import annotations

import math
from dataclasses import replace

import pytest

from daemon.core.orders import Role
from daemon.trading.fills import ExecVersion, FillFacts, exec_version, fill_problem
from daemon.trading.model import EntryType, Intent, intent_problem
from daemon.trading.ownership import Ownership, Verdict, intent_of

GOOD = FillFacts(
    shares=1.0,
    price=5000.25,
    cum_qty=1.0,
    avg_price=5000.25,
    order_quantity=1,
    filled_before=0,
    reference_price=5000.0,
    band_pct=5.0,
)


def test_exec_versions_split_at_the_final_period() -> None:
    assert exec_version("0000e0d5.6575e1a1.01.02") == ExecVersion("0000e0d5.6575e1a1.01", 2)
    assert exec_version("a.01.10").supersedes(exec_version("a.01.09"))  # type: ignore[union-attr]
    assert not ExecVersion("a.01", 1).supersedes(ExecVersion("a.01", 1))
    assert not ExecVersion("a.01", 2).supersedes(ExecVersion("b.01", 1))
    for no_version in ("", "abc", "a.", ".01", "a.x1"):
        assert exec_version(no_version) is None


def test_a_sane_fill_passes() -> None:
    assert fill_problem(GOOD) is None
    assert fill_problem(replace(GOOD, reference_price=None, price=1.0)) is None


@pytest.mark.parametrize(
    ("changes", "words"),
    [
        ({"price": 0.0}, "price 0 is not a positive price"),
        ({"price": -1640.0}, "price -1640 is not a positive price"),
        ({"price": math.nan}, "not a positive price"),
        ({"price": 500_025.0}, "more than 5 % from the market (5000)"),
        ({"shares": 1e9}, "takes the order past its quantity 1"),
        ({"shares": 0.5}, "size 0.5 is not a whole number"),
        ({"shares": 0.0}, "size 0 is not a whole number"),
        ({"shares": math.inf}, "not a whole number"),
        ({"filled_before": 1}, "takes the order past its quantity 1 (1 filled before)"),
        ({"cum_qty": 3.0}, "cumulative quantity 3 is over the order's 1"),
        ({"cum_qty": math.nan}, "cumulative quantity nan does not add up"),
        ({"cum_qty": 0.0}, "cumulative quantity 0 does not add up with size 1"),
        ({"avg_price": -math.inf}, "average price -inf is not a positive price"),
    ],
)
def test_an_impossible_fill_is_named(changes: dict[str, float], words: str) -> None:
    problem = fill_problem(replace(GOOD, **changes))
    assert problem is not None
    assert words in problem


@pytest.mark.parametrize(
    ("intent", "words"),
    [
        (Intent(1, 0, 4), "stop_ticks 0 must be > 0"),
        (Intent(-1, 4, -4), "target_ticks -4 must be > 0"),
        (Intent(1.5, 4, 4), "target 1.5 is not a whole number"),  # type: ignore[arg-type]
        (Intent(True, 4, 4), "target True is not a whole number"),
        (Intent(1, 4.0, 4), "stop_ticks 4.0 is not a whole number"),  # type: ignore[arg-type]
        (Intent(1, 4, 4, entry="STP"), "entry 'STP' is not LMT or MKT"),  # type: ignore[arg-type]
        ("buy", "not an Intent but str"),
    ],
)
def test_an_unusable_intent_is_named(intent: object, words: str) -> None:
    problem = intent_problem(intent)
    assert problem is not None
    assert words in problem


def test_a_well_formed_intent_passes() -> None:
    assert intent_problem(Intent(-2, 4, 8, EntryType.MKT, offset_ticks=-3)) is None
    assert intent_problem(Intent(0, 1, 1)) is None


def test_ownership_of_an_order_the_journal_does_not_know() -> None:
    known = {"ofd-20261122-0001"}
    owner = Ownership("ofd", (7, 8), known.__contains__)
    assert owner.verdict(7, "ofd-20261122-0001-T") is Verdict.PROVABLY_OURS
    assert owner.verdict(8, "ofd-20261122-0001-P") is Verdict.PROVABLY_OURS  # a fallback id
    assert owner.verdict(7, "ofd-20261122-0002-P") is Verdict.ANOMALY  # intent not journaled
    assert owner.verdict(7, "") is Verdict.ANOMALY  # our client id, no ref: not ours to guess
    assert owner.verdict(9, "ofd-20261122-0001-P") is Verdict.ANOMALY  # another instance
    assert owner.verdict(0, "manual") is Verdict.NOT_OURS
    assert owner.verdict(9, "ofdx-1-P") is Verdict.NOT_OURS  # another prefix
    assert owner.verdict(9, "ofd-b-20261122-0001-P") is Verdict.NOT_OURS  # "ofd-b" is not ours
    assert owner.ours_by_ref("ofd-flatten-1795000000-F")  # an unjournaled flatten's
    assert "another instance with the same prefix" in owner.describe(
        "an execution", 9, 3, 555, "ofd-20261122-0001-P"
    )
    assert "the journal has no such order" in owner.describe("a status", 7, 3, 0, "")
    assert "or an order whose journal row was lost" in owner.describe(
        "a completed order", 0, 0, 555, "ofd-20261122-0001-P"
    )


def test_intent_refs_and_roles_from_an_order_ref() -> None:
    assert intent_of("ofd-20261122-0001-S") == ("ofd-20261122-0001", Role.STOP)
    assert intent_of("ofd-20261122-0001-F") == ("ofd-20261122-0001", Role.FLATTEN)
    assert intent_of("ofd-20261122-0001-Q") is None
    assert intent_of("plain") is None
