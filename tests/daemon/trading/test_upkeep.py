"""Which contracts of the position no live stop at the broker covers."""

from __future__ import annotations

import pytest

from daemon.core.orders import Role
from daemon.trading.upkeep import unprotected
from tests.daemon.trading.test_strays import rec


@pytest.mark.parametrize(
    ("position", "stops", "naked"),
    [
        (None, [], 0),  # not trusted: nothing to say
        (0, [], 0),
        (2, [], 2),
        (2, [("SELL", 1)], 1),
        (2, [("SELL", 1), ("SELL", 1)], 0),
        (2, [("SELL", 3)], 0),  # more stop than position: still covered, never negative
        (2, [("BUY", 2)], 2),  # a stop the other way closes nothing of a long
        (-3, [("BUY", 2)], 1),
    ],
)
def test_contracts_no_stop_covers(
    position: int | None, stops: list[tuple[str, int]], naked: int
) -> None:
    live = [rec(f"s{i}-S", Role.STOP, side, quantity=q) for i, (side, q) in enumerate(stops)]
    live.append(rec("t0-T", Role.TARGET, "SELL", quantity=5))  # a target protects nothing
    assert unprotected(position, live) == naked


def test_a_partly_filled_stop_covers_only_what_remains() -> None:
    stop = rec("s-S", Role.STOP, "SELL", quantity=2, filled=1, status="Submitted")
    assert unprotected(2, [stop]) == 1
