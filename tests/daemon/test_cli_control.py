"""`orderflowd halt | resume | flatten` against an in-test control server; `status` rendering."""

from __future__ import annotations

import asyncio
import io
import json
from collections.abc import AsyncIterator
from datetime import UTC
from pathlib import Path
from typing import Any

import pytest
import structlog

from daemon.cli import EX_SOFTWARE, EX_UNAVAILABLE, EX_USAGE, main
from daemon.runtime.control import ControlServer, control_path
from daemon.runtime.status import status_line
from daemon.runtime.status_view import format_trading

WAIT = 10.0

Reply = dict[str, Any]


class Daemon:
    """Stands in for the daemon's handler: records commands, answers with `reply`."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str]] = []
        self.reply: Reply = {"ok": True}

    async def __call__(self, cmd: str, request: dict[str, Any]) -> Reply:
        self.calls.append((cmd, request["reason"]))
        return self.reply


@pytest.fixture
async def daemon(tmp_path: Path) -> AsyncIterator[Daemon]:
    fake = Daemon()
    server = ControlServer(control_path(tmp_path), fake)
    with structlog.testing.capture_logs():  # the server's logs, kept out of the CLI's stdout
        await asyncio.wait_for(server.start(), WAIT)
        yield fake
        await asyncio.wait_for(server.stop(), WAIT)


async def cli(*argv: str) -> int:
    """`main` in a thread (it blocks on the socket) so the server in this loop can answer."""
    return await asyncio.wait_for(asyncio.to_thread(main, list(argv)), WAIT)


class FakeTTY(io.StringIO):
    def isatty(self) -> bool:
        return True


async def test_halt_prints_the_daemons_message(
    daemon: Daemon, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    daemon.reply = {
        "ok": True,
        "state": "HALTED",
        "message": "HALTED (operator: lunch) — 2 entries cancelled",
    }
    assert await cli("halt", "--state-dir", str(tmp_path), "--reason", "lunch") == 0
    out, err = capsys.readouterr()
    assert out == "orderflowd: HALTED (operator: lunch) — 2 entries cancelled\n"
    assert err == ""
    assert daemon.calls == [("halt", "lunch")]


async def test_resume_without_message_prints_state_and_reason(
    daemon: Daemon, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    daemon.reply = {"ok": True, "state": "ACTIVE", "reason": "operator"}
    assert await cli("resume", "--state-dir", str(tmp_path)) == 0
    assert capsys.readouterr().out == "orderflowd: ACTIVE (operator)\n"
    assert daemon.calls == [("resume", "operator")]  # the default reason


async def test_a_refusal_exits_1_with_the_daemons_error(
    daemon: Daemon, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    daemon.reply = {"ok": False, "error": "not reconciled yet: try again in a moment"}
    assert await cli("resume", "--state-dir", str(tmp_path), "--reason", "x") == 1
    out, err = capsys.readouterr()
    assert out == ""
    assert err == "orderflowd resume: not reconciled yet: try again in a moment\n"


async def test_no_daemon_exits_69_saying_so(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert await cli("halt", "--state-dir", str(tmp_path)) == EX_UNAVAILABLE
    out, err = capsys.readouterr()
    assert out == ""
    assert err == (
        f"orderflowd: orderflowd is not running (no control socket at {control_path(tmp_path)})\n"
    )


async def test_a_reply_that_is_not_json_exits_70(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    async def garbage(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readline()
        writer.write(b"HTTP/1.1 400 Bad Request\n")
        await writer.drain()
        writer.close()

    server = await asyncio.start_unix_server(garbage, str(control_path(tmp_path)))
    try:
        assert await cli("halt", "--state-dir", str(tmp_path)) == EX_SOFTWARE
    finally:
        server.close()
        await asyncio.wait_for(server.wait_closed(), WAIT)
    assert "orderflowd halt: reply is not JSON" in capsys.readouterr().err


async def test_flatten_without_yes_on_a_pipe_exits_64_and_sends_nothing(
    daemon: Daemon,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO("y\n"))  # not a TTY, even with a "y" waiting
    assert await cli("flatten", "--state-dir", str(tmp_path)) == EX_USAGE
    assert "pass --yes" in capsys.readouterr().err
    assert daemon.calls == []


async def test_flatten_with_yes_goes_through(daemon: Daemon, tmp_path: Path) -> None:
    daemon.reply = {"ok": True, "state": "HALTED"}
    assert await cli("flatten", "--state-dir", str(tmp_path), "--yes", "--reason", "news") == 0
    assert daemon.calls == [("flatten", "news")]


@pytest.mark.parametrize(("answer", "code", "sent"), [("y\n", 0, 1), ("\n", 1, 0), ("no\n", 1, 0)])
async def test_flatten_asks_on_a_tty(
    daemon: Daemon,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    answer: str,
    code: int,
    sent: int,
) -> None:
    monkeypatch.setattr("sys.stdin", FakeTTY(answer))
    daemon.reply = {"ok": True, "state": "HALTED"}
    assert await cli("flatten", "--state-dir", str(tmp_path)) == code
    out, err = capsys.readouterr()
    assert "closes the position. Go? [y/N]" in out
    assert len(daemon.calls) == sent
    if not sent:
        assert "not confirmed; nothing sent" in err


TRADING = {
    "enabled": True,
    "state": "HALTED",
    "reason": "operator: lunch",
    "position": -2,
    "avg_price": 5401.25,
    "realized_pnl": 1250.0,
    "unrealized_pnl": -37.5,
    "commissions": 8.6,
    "net_pnl": 1203.9,
    "working_orders": [
        {
            "ref": "b7.stop",
            "role": "stop",
            "action": "BUY",
            "quantity": 2,
            "order_type": "STP",
            "price": 5404.0,
            "status": "Submitted",
        },
        {
            "ref": "b7.exit",
            "role": "flatten",
            "action": "BUY",
            "quantity": 2,
            "order_type": "MKT",
            "price": None,
            "status": "PendingSubmit",
        },
    ],
    "refusals": {"max_position": 3, "data_health": 1},
    "last_refusals": [
        {"time": 1_700_000_000.0, "rule": "max_position", "detail": "target -3 exceeds 2"},
        {"time": 1_700_000_061.5, "rule": "data_health", "detail": "data DEGRADED"},
    ],
    "reconciled": False,
}


def test_format_trading_renders_every_part() -> None:
    assert format_trading({"state": "READY", "trading": TRADING}, tz=UTC) == [
        "trading: HALTED (operator: lunch)",
        "  not reconciled with the broker: no new orders",
        "  position: -2 @ 5401.25",
        "  pnl: realized +1,250.00  unrealized -37.50  commissions 8.60  net +1,203.90",
        "  working orders: 2",
        "    b7.stop stop BUY 2 STP 5404.00 Submitted",
        "    b7.exit flatten BUY 2 MKT PendingSubmit",
        "  refusals: data_health 1, max_position 3",
        "  last refusals:",
        "    2023-11-14 22:13:20 max_position: target -3 exceeds 2",
        "    2023-11-14 22:14:21 data_health: data DEGRADED",
    ]


def test_format_trading_flat_unknown_and_empty() -> None:
    quiet = {
        "enabled": False,
        "state": "DISABLED",
        "reason": "",
        "position": 0,
        "avg_price": None,
        "realized_pnl": 0.0,
        "unrealized_pnl": None,
        "commissions": 0.0,
        "net_pnl": None,
        "working_orders": [],
        "refusals": {},
        "last_refusals": [],
        "reconciled": True,
    }
    assert format_trading({"trading": quiet}) == [
        "trading: DISABLED",
        "  position: flat",
        "  pnl: realized +0.00  unrealized n/a  commissions 0.00  net n/a",
        "  working orders: none",
    ]
    unknown = {**quiet, "position": None}
    assert format_trading({"trading": {**unknown, "reconciled": False}})[2] == (
        "  position: unknown (not reconciled with the broker)"
    )
    assert format_trading({"state": "DISCONNECTED", "trading": unknown})[1] == (
        "  position: unknown (connection DISCONNECTED)"
    )
    assert format_trading({"trading": unknown})[1] == (
        "  position: unknown (not confirmed by the broker)"
    )


def test_format_trading_shows_what_needs_a_person() -> None:
    alarming = {
        **TRADING,
        "reconciled": True,
        "working_orders": [],
        "refusals": {},
        "last_refusals": [],
        "account_position": -3,
        "journal_error": "database or disk is full",
        "strategy_error": None,
        "alarms": [
            {"at": 1_700_000_000.0, "kind": "bad_fill", "detail": "execution e1: price 0"},
        ],
        "last_flatten": {"ok": False, "message": "flatten (shutdown): cancels not confirmed"},
    }
    assert format_trading({"state": "READY", "trading": alarming}, tz=UTC)[2:6] == [
        "  account position at the broker: -3",
        "  journal FAILED: database or disk is full",
        "  alarms (trading halted until orderflowd resume):",
        "    2023-11-14 22:13:20 bad_fill: execution e1: price 0",
    ]
    assert format_trading({"state": "READY", "trading": alarming}, tz=UTC)[6] == (
        "  last flatten NOT confirmed: flatten (shutdown): cancels not confirmed"
    )


def test_format_trading_disabled_is_one_line() -> None:
    disabled = {"enabled": False, "state": "DISABLED"}
    assert format_trading({"state": "READY", "trading": disabled}) == ["trading: DISABLED"]


def test_format_trading_without_trading_is_empty() -> None:
    assert format_trading({"state": "READY"}) == []
    assert format_trading({"state": "READY", "trading": None}) == []


def test_status_prints_the_trading_block(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "status.json").write_text(json.dumps({"state": "READY", "trading": TRADING}))
    assert main(["status", "--state-dir", str(tmp_path)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == status_line({"state": "READY", "trading": TRADING})
    assert lines[1:5] == [
        "trading: HALTED (operator: lunch)",
        "  not reconciled with the broker: no new orders",
        "  position: -2 @ 5401.25",
        "  pnl: realized +1,250.00  unrealized -37.50  commissions 8.60  net +1,203.90",
    ]
    assert len(lines) == 12


def test_status_json_is_the_file_with_the_verdict(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    doc = {"state": "READY", "trading": TRADING}
    (tmp_path / "status.json").write_text(json.dumps(doc))
    assert main(["status", "--state-dir", str(tmp_path), "--json"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown.pop("liveness")["verdict"] == "running"  # no pid: a fresh file is all it has
    assert shown == doc


def test_status_shows_an_untrusted_position_as_unknown(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    trading = {**TRADING, "state": "ACTIVE", "reason": "", "position": None, "reconciled": True}
    doc = {"state": "DISCONNECTED", "trading": trading}
    (tmp_path / "status.json").write_text(json.dumps(doc))
    assert main(["status", "--state-dir", str(tmp_path)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert "ACTIVE pos unknown" in lines[0]
    assert lines[2] == "  position: unknown (connection DISCONNECTED)"
