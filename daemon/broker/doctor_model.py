"""What `orderflowd doctor` reports: the checks, their results and its timeouts."""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass

from daemon.settings import PORT_NAMES

PORTS, HANDSHAKE, CLIENT_ID, SERVER_VERSION = "ports", "handshake", "client id", "server version"
ACCOUNTS, MARKET_DATA, TICK_BY_TICK = "accounts", "market data", "tick-by-tick"
READ_ONLY, CLOCK = "read-only API", "clock skew"
CHECKS = (
    PORTS,
    HANDSHAKE,
    CLIENT_ID,
    SERVER_VERSION,
    ACCOUNTS,
    MARKET_DATA,
    TICK_BY_TICK,
    READ_ONLY,
    CLOCK,
)
"""Every check, in the order it runs and is reported."""


class Status(enum.StrEnum):
    PASS = "PASS"
    WARN = "WARN"
    FAIL = "FAIL"
    SKIP = "SKIP"


@dataclass(frozen=True, slots=True)
class CheckResult:
    """One row of the report: what was checked, how it went, and what to do about it."""

    check: str
    status: Status
    detail: str
    fix: str = ""


@dataclass(frozen=True, slots=True)
class DoctorTimeouts:
    """Seconds: `port` per TCP probe, `step` per handshake or request, `listen` for refusals."""

    port: float = 1.0
    step: float = 5.0
    listen: float = 2.0

    @classmethod
    def for_step(cls, step: float) -> DoctorTimeouts:
        """Timeouts derived from one per-step budget (the CLI's `--timeout`)."""
        if not step > 0:
            raise ValueError(f"timeout must be > 0 seconds, got {step}")
        return cls(port=min(step, 1.0), step=step, listen=min(step, 2.0))


def exit_code(results: Sequence[CheckResult]) -> int:
    """0 when nothing failed (WARN and SKIP-after-success do not fail), else 1."""
    return 1 if any(r.status is Status.FAIL for r in results) else 0


def port_name(port: int) -> str:
    return f"{port} ({PORT_NAMES.get(port, 'configured')})"
