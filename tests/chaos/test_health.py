"""What the chaos harness calls recovered: READY, data OK and fresh, reconciled, ACTIVE."""

from __future__ import annotations

from typing import Any

from chaos.daemon import healthy, unhealthy

GOOD: dict[str, Any] = {
    "state": "READY",
    "data_health": "OK",
    "data_stale": False,
    "trading": {"reconciled": True, "state": "ACTIVE"},
}


def test_a_ready_reconciled_active_daemon_with_fresh_data_is_healthy() -> None:
    assert unhealthy(GOOD) == []
    assert healthy(GOOD)


def test_each_condition_is_named_when_it_fails() -> None:
    bad = {
        "state": "SYNCING",
        "data_health": "DEGRADED",
        "data_stale": True,
        "trading": {"reconciled": False, "state": "HALTED"},
    }
    assert unhealthy(bad) == [
        "state=SYNCING",
        "data_health=DEGRADED",
        "data_stale=True",
        "reconciled=False",
        "trading=HALTED",
    ]
    assert not healthy({})  # no status yet


def test_stale_data_is_not_held_against_it_while_the_replayed_market_is_silent() -> None:
    stale = {**GOOD, "data_stale": True, "data_health": "INVALID"}  # a new life, no quote yet
    assert unhealthy(stale) == ["data_health=INVALID", "data_stale=True"]
    assert unhealthy(stale, market_silent=True) == []
    assert not healthy({**stale, "state": "DISCONNECTED"}, market_silent=True)
