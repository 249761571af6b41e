"""`orderflowd doctor` against in-process ibsim gateways, one failure mode at a time."""

from __future__ import annotations

import asyncio
import json
import re
import socket
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import structlog

from daemon.broker import tws_errors
from daemon.broker.doctor_report import render_json, render_table
from daemon.broker.ib.doctor import (
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
    run_doctor,
)
from daemon.cli import main
from daemon.settings import EX_CONFIG, Settings
from ibsim.gateway import Gateway, GatewayConfig
from ibsim.market import ListSource
from tests.daemon.broker.conftest import SIM_START, WAIT, ClientFactory, GatewayFactory

FAST = DoctorTimeouts(port=0.5, step=1.0, listen=0.3)


def sim_wall() -> float:
    """The local clock, in step with the gateway's frozen simulated clock."""
    return SIM_START.timestamp()


async def doctor(gw: Gateway, **settings: Any) -> dict[str, CheckResult]:
    ib = {"port": gw.port, "client_id": 5, **settings.pop("ib", {})}
    config = Settings(ib=ib, **settings)
    results = await asyncio.wait_for(
        run_doctor(config, ports=[gw.port], timeouts=FAST, wall=sim_wall), WAIT
    )
    assert [r.check for r in results] == list(CHECKS)
    return {r.check: r for r in results}


def statuses(report: dict[str, CheckResult]) -> dict[str, Status]:
    return {check: r.status for check, r in report.items()}


def assert_nothing_placed(gw: Gateway) -> None:
    snap = gw.engine.snapshot()
    assert snap["orders"] == []
    assert snap["executions"] == []
    assert snap["positions"] == []


async def test_all_good_passes_every_check_and_places_nothing(make_gateway: GatewayFactory) -> None:
    gw = await make_gateway()
    report = await doctor(gw)
    assert statuses(report) == dict.fromkeys(CHECKS, Status.PASS), report
    assert exit_code(list(report.values())) == 0
    assert "ESZ6" in report[MARKET_DATA].detail
    assert "server version 178" in report[HANDSHAKE].detail
    assert "*****4567" in report[ACCOUNTS].detail
    assert "DU1234567" not in report[ACCOUNTS].detail
    assert_nothing_placed(gw)
    assert not gw.engine.open_orders(None)


async def test_nothing_listening_fails_ports_with_the_fix_and_skips_the_rest() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again: nothing listens there
    config = Settings(ib={"port": port})
    results = await asyncio.wait_for(
        run_doctor(config, ports=[port], timeouts=FAST, wall=sim_wall), WAIT
    )
    by = {r.check: r for r in results}
    assert by[PORTS].status is Status.FAIL
    assert f"{port} (configured)" in by[PORTS].detail
    assert "Enable ActiveX and Socket Clients" in by[PORTS].fix
    assert all(by[c].status is Status.SKIP for c in CHECKS[1:])
    assert "listening API port" in by[HANDSHAKE].detail
    assert exit_code(results) == 1


async def test_a_gateway_on_another_port_is_named_in_the_fix(
    make_gateway: GatewayFactory,
) -> None:
    gw = await make_gateway()
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        dead = s.getsockname()[1]
    config = Settings(ib={"port": dead})
    results = await run_doctor(config, ports=[gw.port], timeouts=FAST, wall=sim_wall)
    assert results[0].status is Status.FAIL
    assert f"listening: {gw.port} (configured)" in results[0].detail
    assert f"set ib.port = {gw.port}" in results[0].fix


async def test_silent_handshake_fails_with_api_settings_fix(make_gateway: GatewayFactory) -> None:
    gw = await make_gateway(handshake_silent=True)
    report = await doctor(gw)
    assert report[PORTS].status is Status.PASS
    assert report[HANDSHAKE].status is Status.FAIL
    assert "never answered the API handshake" in report[HANDSHAKE].detail
    assert "Enable ActiveX and Socket Clients" in report[HANDSHAKE].fix
    assert "Trusted IPs" in report[HANDSHAKE].fix
    assert report[CLIENT_ID].status is Status.SKIP


async def test_socket_closed_at_handshake_fails_with_trusted_ips_fix(
    make_gateway: GatewayFactory,
) -> None:
    gw = await make_gateway(handshake_close=True)
    report = await doctor(gw)
    assert report[HANDSHAKE].status is Status.FAIL
    assert "closed the connection during the API handshake" in report[HANDSHAKE].detail
    assert report[HANDSHAKE].fix.startswith("add 127.0.0.1")
    assert report[CLIENT_ID].status is Status.SKIP


async def test_client_id_in_use_finds_a_free_nearby_id(
    make_gateway: GatewayFactory, connect: ClientFactory
) -> None:
    gw = await make_gateway()
    await connect(gw, client_id=5)
    await connect(gw, client_id=6)
    report = await doctor(gw)
    assert report[HANDSHAKE].status is Status.PASS
    assert report[CLIENT_ID].status is Status.FAIL
    assert "client id 5, 6 in use (326); 7 is free" in report[CLIENT_ID].detail
    assert "set ib.client_id = 7" in report[CLIENT_ID].fix
    # the checks after it ran on the free id
    assert report[MARKET_DATA].status is Status.PASS
    assert report[CLOCK].status is Status.PASS


async def test_client_id_in_use_with_a_free_configured_fallback_warns(
    make_gateway: GatewayFactory, connect: ClientFactory
) -> None:
    gw = await make_gateway()
    await connect(gw, client_id=5)
    report = await doctor(gw, ib={"fallback_client_ids": [9]})
    assert report[CLIENT_ID].status is Status.WARN
    assert "9 is free" in report[CLIENT_ID].detail
    assert exit_code(list(report.values())) == 0


async def test_read_only_api_fails_the_what_if_with_321(make_gateway: GatewayFactory) -> None:
    gw = await make_gateway(read_only=True)
    report = await doctor(gw)
    assert report[READ_ONLY].status is Status.FAIL
    assert "321" in report[READ_ONLY].detail
    assert "Read-Only" in report[READ_ONLY].detail
    assert 'untick "Read-Only API"' in report[READ_ONLY].fix
    assert_nothing_placed(gw)


async def test_connection_dropped_mid_checks_fails_the_running_check(
    make_gateway: GatewayFactory,
) -> None:
    gw = await make_gateway()
    gw.observers.append(lambda event: event == "order" and gw.drop_clients())
    report = await doctor(gw)
    assert report[MARKET_DATA].status is Status.PASS
    assert report[READ_ONLY].status is Status.FAIL
    assert "closed the API connection during this check" in report[READ_ONLY].detail
    assert report[CLOCK].status is Status.SKIP
    assert exit_code(list(report.values())) == 1
    assert_nothing_placed(gw)


async def test_no_market_data_permission_is_354(make_gateway: GatewayFactory) -> None:
    gw = await make_gateway(market_data="none")
    report = await doctor(gw)
    assert report[MARKET_DATA].status is Status.FAIL
    assert "354" in report[MARKET_DATA].detail
    assert "delayed" not in report[MARKET_DATA].detail
    assert "CME Real-Time (NP,L1)" in report[MARKET_DATA].fix
    assert report[TICK_BY_TICK].status is Status.WARN  # auto mode falls back to snapshot
    assert exit_code(list(report.values())) == 1


async def test_api_subscription_missing_is_10089_and_delayed_is_noticed(
    make_gateway: GatewayFactory,
) -> None:
    gw = await make_gateway(market_data="delayed")
    report = await doctor(gw)
    md = report[MARKET_DATA]
    assert md.status is Status.FAIL
    assert "10089" in md.detail
    assert "delayed data is available (10167)" in md.detail
    assert "Market Data API Acknowledgement" in md.fix
    assert "CME Real-Time (NP,L1)" in md.fix
    assert report[TICK_BY_TICK].status is Status.WARN
    assert "10089" in report[TICK_BY_TICK].detail


async def test_market_data_farm_connecting_warns_with_2119(make_gateway: GatewayFactory) -> None:
    gw = await make_gateway()
    gw.farm(2119)
    report = await doctor(gw)
    assert report[MARKET_DATA].status is Status.WARN
    assert "A market data farm is connecting (2119)" in report[MARKET_DATA].detail
    assert report[MARKET_DATA].fix == tws_errors.FIXES[2119]
    assert exit_code(list(report.values())) == 0


async def test_tick_by_tick_limit_warns_in_auto_and_fails_when_required(
    make_gateway: GatewayFactory,
) -> None:
    gw = await make_gateway(max_tick_by_tick=0)
    auto = await doctor(gw)
    assert auto[TICK_BY_TICK].status is Status.WARN
    assert "10190" in auto[TICK_BY_TICK].detail
    assert "Time & Sales" in auto[TICK_BY_TICK].fix
    required = await doctor(gw, data={"mode": "tick_by_tick"})
    assert required[TICK_BY_TICK].status is Status.FAIL
    snapshot = await doctor(gw, data={"mode": "snapshot"})
    assert snapshot[TICK_BY_TICK].status is Status.SKIP


@pytest.mark.parametrize(
    ("offset", "expected"), [(0.0, Status.PASS), (10.0, Status.WARN), (-120.0, Status.FAIL)]
)
async def test_clock_skew_limits(
    make_gateway: GatewayFactory, offset: float, expected: Status
) -> None:
    gw = await make_gateway(clock_offset_s=offset)
    report = await doctor(gw)
    assert report[CLOCK].status is expected, report[CLOCK]
    if expected is not Status.PASS:
        assert "timedatectl set-ntp true" in report[CLOCK].fix
        assert ("behind" if offset > 0 else "ahead") in report[CLOCK].detail


async def test_live_account_fails_unless_trading_mode_is_live(
    make_gateway: GatewayFactory,
) -> None:
    gw = await make_gateway(accounts=["U7654321"])
    report = await doctor(gw)
    assert report[ACCOUNTS].status is Status.FAIL
    assert "live" in report[ACCOUNTS].detail
    assert "U7654321" not in report[ACCOUNTS].detail
    assert 'trading.mode = "live"' in report[ACCOUNTS].fix
    assert_nothing_placed(gw)


async def test_configured_account_not_managed_fails_and_skips_the_what_if(
    make_gateway: GatewayFactory,
) -> None:
    gw = await make_gateway()
    report = await doctor(gw, ib={"account": "DU9999999"})
    assert report[ACCOUNTS].status is Status.FAIL
    assert "*****9999 is not managed" in report[ACCOUNTS].detail
    assert report[READ_ONLY].status is Status.SKIP


async def test_an_unlisted_contract_fails_market_data_and_skips_what_needs_it(
    make_gateway: GatewayFactory,
) -> None:
    gw = await make_gateway()
    report = await doctor(gw, instrument={"symbol": "ES", "exchange": "NYMEX"})  # wrong exchange
    assert report[MARKET_DATA].status is Status.FAIL
    assert "cannot qualify the ES front month" in report[MARKET_DATA].detail
    assert "instrument.symbol" in report[MARKET_DATA].fix
    assert report[TICK_BY_TICK].status is Status.SKIP
    assert report[READ_ONLY].status is Status.SKIP
    assert report[CLOCK].status is Status.PASS


async def test_older_server_version_warns(make_gateway: GatewayFactory) -> None:
    gw = await make_gateway(server_version=176)
    report = await doctor(gw)
    assert report[SERVER_VERSION].status is Status.WARN
    assert "server version 176" in report[SERVER_VERSION].detail


def test_report_renders_table_and_json() -> None:
    results = [
        CheckResult(PORTS, Status.PASS, "listening: 4002"),
        CheckResult(READ_ONLY, Status.FAIL, "what-if refused: 321 read-only", "untick it"),
    ]
    table = render_table(results, "127.0.0.1:4002")
    assert re.search(r"read-only API +\| FAIL", table)
    assert "untick it" in table
    assert "NOT READY to trade" in table
    doc = json.loads(render_json(results, "127.0.0.1:4002"))
    assert doc["ok"] is False
    assert doc["checks"][1]["fix"] == "untick it"


def test_timeouts_refuse_non_positive() -> None:
    with pytest.raises(ValueError, match="timeout must be > 0"):
        DoctorTimeouts.for_step(0)


def test_every_fix_names_a_catalogued_code() -> None:
    assert set(tws_errors.FIXES) <= set(tws_errors.CODES)


# --- the CLI ---


@pytest.fixture
async def live_clock_gateway() -> Any:
    """A gateway whose clock runs in real time from now, so the CLI's wall clock agrees."""
    asyncio.set_event_loop(asyncio.get_running_loop())
    gateways: list[Gateway] = []

    async def make(**config: Any) -> Gateway:
        source = ListSource.one_quote(datetime.now(UTC).timestamp())
        gw = Gateway(GatewayConfig(port=0, client_id_release_delay=0.0, **config), source)
        await gw.start()
        gateways.append(gw)
        return gw

    yield make
    for gw in gateways:
        await gw.stop()


@pytest.fixture
def config(tmp_path: Path) -> str:
    """An empty config file: the CLI tests do not depend on config/orderflowd.toml."""
    path = tmp_path / "doctor.toml"
    path.write_text("")
    return str(path)


async def cli(*argv: str) -> int:
    """`main` in a thread (it runs its own event loop) while the gateway serves in this one."""
    with structlog.testing.capture_logs():
        return await asyncio.wait_for(asyncio.to_thread(main, list(argv)), WAIT + 5)


async def test_cli_doctor_names_the_failing_check_and_its_fix(
    live_clock_gateway: Any, config: str, capsys: pytest.CaptureFixture[str]
) -> None:
    gw = await live_clock_gateway(read_only=True)
    code = await cli(
        "doctor", "--config", config, "--port", str(gw.port), "--client-id", "4", "--timeout", "1"
    )
    out = capsys.readouterr().out
    assert code == 1
    assert re.search(r"read-only API +\| FAIL", out)
    assert 'untick "Read-Only API"' in out
    assert "NOT READY to trade" in out
    assert "fix read-only API" in out
    assert_nothing_placed(gw)


async def test_cli_doctor_json_all_good_exits_0(
    live_clock_gateway: Any, config: str, capsys: pytest.CaptureFixture[str]
) -> None:
    gw = await live_clock_gateway()
    code = await cli(
        "doctor", "--config", config, "--port", str(gw.port), "--json", "--timeout", "1"
    )
    doc = json.loads(capsys.readouterr().out)
    assert code == 0, doc
    assert doc["ok"] is True
    assert [c["check"] for c in doc["checks"]] == list(CHECKS)
    assert all(c["status"] != "FAIL" for c in doc["checks"])


@pytest.mark.parametrize("bad", ["0", "-1", "soon"])
def test_cli_doctor_refuses_a_bad_timeout(bad: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["doctor", "--timeout", bad])
    assert exit_info.value.code == 2
    assert "--timeout" in capsys.readouterr().err


def test_cli_doctor_refuses_a_bad_port(config: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["doctor", "--config", config, "--port", "soon"]) == EX_CONFIG
    assert "ib.port" in capsys.readouterr().err
