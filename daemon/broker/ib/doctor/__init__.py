"""`orderflowd doctor`: the connection and permissions checklist, run against the configured host.

Checks run in `CHECKS` order; one whose prerequisite failed is SKIP with the reason. Nothing is
ever placed: the read-only check sends a what-if order, which IB evaluates without creating
one. Every attempt uses its own short-lived `IB` (never the daemon's), disconnected in
`finally`. This module runs checks 1-3 (ports, handshake, client id) and hands the connected
session to `checks`.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence

from ib_async import Client

from daemon.broker import tws_errors
from daemon.broker.doctor_model import (
    ACCOUNTS,
    CHECKS,
    CLIENT_ID,
    CLOCK,
    HANDSHAKE,
    MARKET_DATA,
    PORTS,
    READ_ONLY,
    SERVER_VERSION,
    TICK_BY_TICK,
    CheckResult,
    DoctorTimeouts,
    Status,
    exit_code,
    port_name,
)
from daemon.broker.ib.doctor.checks import API_SETTINGS, SKEW_FAIL_S, SKEW_WARN_S, SessionChecks
from daemon.broker.ib.doctor.probe import Outcome, Session, accepts_tcp, attempt
from daemon.settings import (
    GATEWAY_LIVE_PORT,
    GATEWAY_PAPER_PORT,
    LIVE_PORTS,
    TWS_LIVE_PORT,
    TWS_PAPER_PORT,
    Settings,
)

__all__ = [
    "ACCOUNTS",
    "CHECKS",
    "CLIENT_ID",
    "CLOCK",
    "CONVENTIONAL_PORTS",
    "HANDSHAKE",
    "MARKET_DATA",
    "PORTS",
    "READ_ONLY",
    "SERVER_VERSION",
    "SKEW_FAIL_S",
    "SKEW_WARN_S",
    "TICK_BY_TICK",
    "CheckResult",
    "DoctorTimeouts",
    "Status",
    "exit_code",
    "run_doctor",
]

CONVENTIONAL_PORTS = (TWS_PAPER_PORT, TWS_LIVE_PORT, GATEWAY_PAPER_PORT, GATEWAY_LIVE_PORT)
NEARBY_IDS = 3  # ids after ib.client_id tried when every configured one is in use


async def run_doctor(
    settings: Settings,
    *,
    ports: Sequence[int] | None = None,
    timeouts: DoctorTimeouts | None = None,
    wall: Callable[[], float] = time.time,
) -> list[CheckResult]:
    """Run every check against `settings.ib`; `ports` replaces 7497/7496/4002/4001 as probes.

    `wall` is the local wall clock (epoch seconds) compared with the server's time.
    """
    doctor = _Doctor(settings, timeouts or DoctorTimeouts(), wall)
    await doctor.run(ports or CONVENTIONAL_PORTS)
    return doctor.report()


class _Doctor(SessionChecks):
    """Checks 1-3, then the session checks on the first client id that connects."""

    async def run(self, probe_ports: Sequence[int]) -> None:
        port = await self.check_ports(probe_ports)
        if port is None:
            self.skip_rest("needs a listening API port")
            return
        await self.connect_and_check(port)

    # --- 1. ports ---

    async def check_ports(self, probe_ports: Sequence[int]) -> int | None:
        """Probe the ports; the first of ib.port's candidates that listens, if any."""
        host, candidates = self.ib_settings.host, self.ib_settings.candidate_ports
        ports = list(dict.fromkeys([*probe_ports, *candidates]))
        answers = await asyncio.gather(*(accepts_tcp(host, p, self.timeouts.port) for p in ports))
        listening = [p for p, up in zip(ports, answers, strict=True) if up]
        silent = [p for p in ports if p not in listening]
        seen = "; ".join(
            part
            for part in (
                "listening: " + ", ".join(map(port_name, listening)) if listening else "",
                "nothing listens on " + ", ".join(map(port_name, silent)) if silent else "",
            )
            if part
        )
        chosen = next((p for p in candidates if p in listening), None)
        if chosen is not None:
            self.set(PORTS, Status.PASS, f"{host}: {seen}; using {chosen}")
            return chosen
        wanted = (
            f'ib.port = "auto" tries {", ".join(map(str, candidates))}'
            if self.ib_settings.port == "auto"
            else f"ib.port = {candidates[0]}"
        )
        fix = tws_errors.FIXES[502]
        others = [p for p in listening if p not in candidates]
        if others:
            live = ' (and trading.mode = "live" with --live)' if others[0] in LIVE_PORTS else ""
            fix += f"; or, if {port_name(others[0])} is your TWS/Gateway, set ib.port = "
            fix += f"{others[0]}{live}"
        self.set(PORTS, Status.FAIL, f"{host}: {wanted}; {seen}", fix)
        return None

    # --- 2-3. handshake and client id ---

    async def connect_and_check(self, port: int) -> None:
        configured = [self.ib_settings.client_id, *self.ib_settings.fallback_client_ids]
        nearby = [
            i
            for i in range(self.ib_settings.client_id + 1, self.ib_settings.client_id + 99)
            if i not in configured
        ][:NEARBY_IDS]
        in_use: list[int] = []
        for client_id in [*configured, *nearby]:
            async with attempt(
                self.ib_settings.host, port, client_id, self.timeouts.step
            ) as session:
                if not in_use:
                    self.check_handshake(port, session)
                if session.outcome is Outcome.CONNECTED:
                    self.check_client_id(client_id, in_use, configured)
                    await self.session_checks(session)
                    return
                if session.outcome is not Outcome.IN_USE:
                    if in_use:
                        self.set(
                            CLIENT_ID,
                            Status.FAIL,
                            f"client id {in_use[-1]} is in use (326); id {client_id}: "
                            f"{session.outcome.value} {session.message}".rstrip(),
                            tws_errors.FIXES[tws_errors.CLIENT_ID_IN_USE],
                        )
                    self.skip_rest("needs a completed API handshake")
                    return
                in_use.append(client_id)
        self.set(
            CLIENT_ID,
            Status.FAIL,
            f"client ids {', '.join(map(str, in_use))} are all in use (326)",
            tws_errors.FIXES[tws_errors.CLIENT_ID_IN_USE],
        )
        self.skip_rest("needs a free client id")

    def check_handshake(self, port: int, session: Session) -> None:
        where = f"{self.ib_settings.host}:{port}"
        version = session.server_version
        enable = f'tick "Enable ActiveX and Socket Clients" in TWS ({API_SETTINGS})'
        trust = (
            "add 127.0.0.1 (or this host's address) to Trusted IPs there and accept TWS's "
            "incoming-connection prompt"
        )
        if session.outcome in (Outcome.CONNECTED, Outcome.IN_USE):
            self.set(HANDSHAKE, Status.PASS, f"{where} answered: server version {version}")
        elif version and version < Client.MinClientVersion:
            self.set(
                HANDSHAKE,
                Status.FAIL,
                f"{where} speaks server version {version}; ib_async needs at least "
                f"{Client.MinClientVersion}",
                "update TWS / IB Gateway to a current stable release",
            )
        elif session.outcome is Outcome.SILENT:
            self.set(
                HANDSHAKE,
                Status.FAIL,
                f"{where} accepted TCP but never answered the API handshake within "
                f"{self.timeouts.step:g} s",
                f"{enable}; {trust}",
            )
        elif session.outcome is Outcome.NO_START:
            self.set(
                HANDSHAKE,
                Status.FAIL,
                f"{where} answered the handshake (server version {version}) but never "
                f"confirmed the API session within {self.timeouts.step:g} s",
                f"{trust}; restart TWS / IB Gateway if it persists",
            )
        elif session.outcome is Outcome.CLOSED:
            why = f": {session.message}" if session.message else ""
            self.set(
                HANDSHAKE,
                Status.FAIL,
                f"{where} closed the connection during the API handshake{why}",
                f"{trust}; {enable}",
            )
        else:
            self.set(
                HANDSHAKE,
                Status.FAIL,
                f"{where} refused the connection: {session.message}",
                tws_errors.FIXES[502],
            )

    def check_client_id(self, client_id: int, in_use: list[int], configured: list[int]) -> None:
        if not in_use:
            self.set(CLIENT_ID, Status.PASS, f"client id {client_id} is free")
            return
        taken = f"client id {', '.join(map(str, in_use))} in use (326); {client_id} is free"
        if client_id in configured:
            self.set(
                CLIENT_ID,
                Status.WARN,
                f"{taken}: the daemon falls back to it after repeated refusals of "
                f"{self.ib_settings.client_id}",
                f"close the other API session using client id {self.ib_settings.client_id}, "
                f"or set ib.client_id = {client_id}",
            )
        else:
            self.set(
                CLIENT_ID,
                Status.FAIL,
                f"{taken}, but not configured",
                f"set ib.client_id = {client_id} (or add it to ib.fallback_client_ids), or "
                f"close the other API session using client id {self.ib_settings.client_id}",
            )
