"""The Prometheus endpoint: the whole daemon against ibsim, scraped over HTTP like Prometheus does.

Each value scraped is compared with what the daemon's own objects (or the gateway) say, after
driving the state there: a reconnect, a bad tick, a filled order, a refused one.
"""

from __future__ import annotations

import asyncio
import json
import re
import socket
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import structlog
from prometheus_client.metrics_core import Metric
from prometheus_client.parser import text_string_to_metric_families

from daemon.runtime.metrics import (
    BY_NAME,
    CATALOGUE,
    MetricDoc,
    MetricsServer,
    Sample,
    metrics_table,
)
from daemon.runtime.supervisor import LAG_PROBE_S
from daemon.settings import ConfigError, MetricsSettings, load_settings
from daemon.trading.model import TradingState
from ibsim.feed import BadTick
from ibsim.gateway import Gateway
from tests.daemon.broker.conftest import WAIT
from tests.e2e.harness import CLIENT, Daemon, Market, position

ROOT = Path(__file__).resolve().parents[3]
DASHBOARD = ROOT / "docs" / "grafana" / "orderflowd.json"
METRICS_DOC = ROOT / "docs" / "metrics.md"

Families = dict[str, Metric]


async def scrape(port: int) -> Families:
    """GET /metrics as Prometheus would, parsed by prometheus_client's own parser."""

    def get() -> str:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=WAIT) as reply:
            body: bytes = reply.read()
            return body.decode()

    text = await asyncio.to_thread(get)
    return {family.name: family for family in text_string_to_metric_families(text)}


def value(families: Families, sample: str, **labels: str) -> float | None:
    """The value of the one sample named `sample` whose labels include `labels`."""
    for family in families.values():
        for s in family.samples:
            if s.name == sample and labels.items() <= s.labels.items():
                return float(s.value)
    return None


def by_label(families: Families, sample: str, label: str) -> dict[str, float]:
    return {
        s.labels[label]: s.value
        for family in families.values()
        for s in family.samples
        if s.name == sample
    }


def port_of(d: Daemon) -> int:
    port = d.sup.metrics.port
    assert port is not None, "the metrics endpoint is not listening"
    return port


async def test_connection_state_and_reconnects(
    gateway: Gateway, daemon: Callable[..., Daemon]
) -> None:
    d = daemon(gateway)
    await d.until(lambda: d.sup.conn.ready)
    port = port_of(d)
    assert port != 0
    m = await scrape(port)
    states = by_label(m, "orderflowd_connection_state", "state")
    assert states.pop("READY") == 1
    assert set(states.values()) == {0}
    assert value(m, "orderflowd_reconnects_total") == 0
    status = d.sup.conn.status
    assert value(m, "orderflowd_gateway_info", client_id=str(CLIENT), port=str(gateway.port)) == 1
    assert value(m, "orderflowd_gateway_info", server_version=str(status.server_version)) == 1

    gateway.drop_clients()
    await d.until(lambda: d.sup.conn.status.reconnect_count == 1 and d.sup.conn.ready)
    m = await scrape(port)
    assert value(m, "orderflowd_reconnects_total") == 1
    assert value(m, "orderflowd_connection_state", state="READY") == 1


async def test_flow_orders_position_and_refusals_match_the_daemon(
    gateway: Gateway, daemon: Callable[..., Daemon]
) -> None:
    market = Market(gateway)
    d = daemon(gateway, risk={"max_position": 1})
    await d.ready(market)
    gateway.bad_tick(BadTick.OFF_GRID)
    await d.until(lambda: d.sup.flow.state().rejected.get("off_grid") == 1)

    await d.send(market, d.strategy.intent(1, entry="MKT"))
    await d.until(lambda: d.trader.position == 1)
    await d.send(market, d.strategy.intent(2))  # over max_position: refused
    statuses = {"Filled": 1, "Submitted": 2}  # the entry, and its stop and target working
    await d.until(lambda: Counter(r.status for r in d.trader.executor.orders.values()) == statuses)
    lag = d.sup.lag_histogram
    async with asyncio.timeout(WAIT):  # the lag probe (every 0.25 s) signals nothing: poll it
        while lag.probes == 0:  # noqa: ASYNC110
            await asyncio.sleep(LAG_PROBE_S / 5)
    stats, flow = d.sup.market.stats, d.sup.flow
    seen = (stats.ticks_total, stats.trades, flow.trades)
    m = await scrape(port_of(d))
    assert (stats.ticks_total, stats.trades, flow.trades) == seen, "the market moved: rescrape"

    ticks = by_label(m, "orderflowd_ticks_received_total", "kind")
    assert sum(ticks.values()) == stats.ticks_total
    assert value(m, "orderflowd_ticks_received_total", mode="tick-by-tick", kind="trade") == (
        stats.trades
    )
    assert ticks["sample"] == stats.snapshots
    assert value(m, "orderflowd_flow_trades_total") == flow.trades
    assert value(m, "orderflowd_data_mode", mode="tick-by-tick") == 1
    rejected = by_label(m, "orderflowd_rejected_ticks_total", "reason")
    assert rejected.pop("off_grid") == 1
    assert set(rejected.values()) == {0}  # every other reason is there, at zero

    assert by_label(m, "orderflowd_orders", "status") == statuses
    assert value(m, "orderflowd_position_contracts") == 1
    assert value(m, "orderflowd_fills_total") == 1
    assert value(m, "orderflowd_messages_sent_total") == d.trader.executor.messages_sent >= 3
    assert by_label(m, "orderflowd_risk_refusals_total", "rule") == {"max_position": 1}
    assert value(m, "orderflowd_trading_state", state=TradingState.ACTIVE.value) == 1
    assert value(m, "orderflowd_trading_state", state="DISABLED") == 0
    assert value(m, "orderflowd_pnl_realized_usd") == d.trader.pnl.realized
    assert value(m, "orderflowd_commissions_usd") == d.trader.pnl.commissions
    unrealized = d.trader.pnl.unrealized()
    assert unrealized is not None
    assert value(m, "orderflowd_pnl_unrealized_usd") == pytest.approx(unrealized)
    assert value(m, "orderflowd_pnl_net_usd") == pytest.approx(d.trader.pnl.net())

    buckets = {s.labels["le"]: s.value for s in m["orderflowd_event_loop_lag_seconds"].samples}
    counts = list(buckets.values())[:-1]  # the +Inf bucket and _count follow the edges
    assert counts == sorted(counts)
    assert 0 < buckets["+Inf"] <= lag.probes
    assert "0.01" in buckets  # the 10 ms soak bound is an edge, in seconds

    # Every family served is in the catalogue (so in the docs and the dashboard), as its type.
    served = {(f.name, f.type) for f in m.values()}
    assert served == {text_format(c) for c in CATALOGUE}


async def test_an_untrusted_position_is_unknown_never_flat(
    gateway: Gateway, daemon: Callable[..., Daemon]
) -> None:
    """Long 1 at the broker, then cut off from it: neither 0 (flat) nor the last 1 is served."""
    market = Market(gateway)
    d = daemon(gateway)
    await d.ready(market)
    port = port_of(d)
    m = await scrape(port)
    assert value(m, "orderflowd_position_contracts") == 0  # flat, and known to be
    assert value(m, "orderflowd_position_known") == 1
    await d.send(market, d.strategy.intent(1, entry="MKT"))
    await d.until(lambda: d.trader.position == 1)
    m = await scrape(port)
    assert value(m, "orderflowd_position_contracts") == 1
    assert value(m, "orderflowd_position_known") == 1
    assert value(m, "orderflowd_pnl_net_usd") is not None

    gateway.clash_client_ids(60.0)  # dropped, and its client id held: no way back for now
    await d.until(lambda: not d.sup.conn.ready)
    assert d.trader.position is None
    m = await scrape(port)
    assert value(m, "orderflowd_connection_state", state="READY") == 0
    assert value(m, "orderflowd_position_known") == 0
    assert "orderflowd_position_contracts" in m  # the family is described, with no sample
    assert value(m, "orderflowd_position_contracts") is None
    assert value(m, "orderflowd_pnl_unrealized_usd") is None  # of a position that may be gone
    assert value(m, "orderflowd_pnl_net_usd") is None
    assert value(m, "orderflowd_pnl_realized_usd") == d.trader.pnl.realized  # journaled: kept
    assert position(gateway) == 1  # still long at the broker


async def test_before_the_first_reconciliation_the_position_is_unknown(
    daemon: Callable[..., Daemon],
) -> None:
    with socket.socket() as closed:  # bound, never listening: every connect is refused
        closed.bind(("127.0.0.1", 0))
        gw = SimpleNamespace(port=closed.getsockname()[1])
        d = daemon(gw)
        await d.until(lambda: d.sup.metrics.port is not None)
        m = await scrape(port_of(d))
    assert value(m, "orderflowd_connection_state", state="READY") == 0
    assert value(m, "orderflowd_position_known") == 0
    assert value(m, "orderflowd_position_contracts") is None


def text_format(doc: MetricDoc) -> tuple[str, str]:
    """(family name, type) as the Prometheus text format shows it: an info is a gauge there."""
    return (doc.name, "gauge") if doc.kind == "info" else (doc.family, doc.kind)


async def test_port_in_use_logs_the_fix_and_the_daemon_keeps_running(
    gateway: Gateway, daemon: Callable[..., Daemon]
) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with structlog.testing.capture_logs() as logs:
            d = daemon(gateway, metrics={"port": port})
            market = Market(gateway)
            await d.ready(market)  # connected, reconciled, trading on its data
        assert d.sup.metrics.port is None
        assert not d.task.done()
        errors = [e for e in logs if e["event"] == "metrics_unavailable"]
        assert len(errors) == 1
        assert errors[0]["log_level"] == "error"
        assert errors[0]["port"] == port
        assert "metrics.port" in errors[0]["fix"]
        assert "metrics.enabled = false" in errors[0]["fix"]
        assert not any(e["event"] == "metrics_listening" for e in logs)


async def test_disabled_metrics_listen_nowhere() -> None:
    server = MetricsServer(MetricsSettings(enabled=False, port=0), lambda: pytest.fail("read"))
    with structlog.testing.capture_logs() as logs:
        assert server.start() is False
    assert server.port is None
    assert [e["event"] for e in logs] == ["metrics_disabled"]
    await server.stop()  # nothing to stop: no error


async def test_a_failing_read_fails_the_scrape_not_the_loop() -> None:
    reads = 0

    def read() -> Sample:
        nonlocal reads
        reads += 1
        raise RuntimeError("the daemon's state could not be read")

    server = MetricsServer(MetricsSettings(port=0), read)
    assert server.start()
    assert server.port is not None
    try:
        for _ in range(2):  # the server survives a failed scrape
            with pytest.raises(urllib.error.HTTPError) as err:
                await scrape(server.port)
            assert err.value.code == 500
        assert reads == 2  # each scrape read the state once, on this loop
    finally:
        await server.stop()


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        ({"metrics.port": 65536}, "metrics.port: must be less than or equal to 65535"),
        ({"metrics.port": -1}, "metrics.port: must be greater than or equal to 0"),
        ({"metrics.port": "http"}, "metrics.port: must be a valid integer"),
        ({"metrics.host": "0.0.0.0"}, "metrics.host: is not a loopback address"),
        ({"metrics.host": "metrics.example.com"}, "set metrics.allow_remote = true"),
        ({"metrics.host": ""}, "metrics.host: String should have at least 1 character"),
    ],
)
def test_settings_refuse_bad_ports_and_remote_hosts(
    overrides: dict[str, Any], expected: str
) -> None:
    with pytest.raises(ConfigError) as err:
        load_settings(overrides=overrides, env={}, dotenv=None)
    assert expected in str(err.value)


@pytest.mark.parametrize(
    "overrides",
    [
        {},
        {"metrics.host": "::1"},
        {"metrics.host": "localhost"},
        {"metrics.host": "127.0.0.2", "metrics.port": 0},
        {"metrics.host": "0.0.0.0", "metrics.allow_remote": True},
    ],
)
def test_settings_accept_loopback_or_remote_on_purpose(overrides: dict[str, Any]) -> None:
    settings = load_settings(overrides=overrides, env={}, dotenv=None)
    assert settings.metrics.enabled


def test_settings_from_the_environment_name_the_setting() -> None:
    env = {"ORDERFLOWD_METRICS__HOST": "10.0.0.5"}
    with pytest.raises(ConfigError, match=r"from ORDERFLOWD_METRICS__HOST"):
        load_settings(env=env, dotenv=None)
    env["ORDERFLOWD_METRICS__ALLOW_REMOTE"] = "true"
    assert load_settings(env=env, dotenv=None).metrics.host == "10.0.0.5"


# --- the dashboard and the docs follow the catalogue ---

METRIC_NAME = re.compile(r"\borderflowd_[a-z0-9_]+")


def dashboard_exprs() -> list[str]:
    doc = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    exprs: list[str] = []

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            if isinstance(node.get("expr"), str):
                exprs.append(node["expr"])
            for child in node.values():
                walk(child)
        elif isinstance(node, list):
            for child in node:
                walk(child)

    walk(doc["panels"])
    return exprs


def test_the_dashboard_queries_exactly_the_exported_metrics() -> None:
    exprs = dashboard_exprs()
    assert exprs
    series = {name: m for m in CATALOGUE for name in m.series}
    used = {name for expr in exprs for name in METRIC_NAME.findall(expr)}
    unknown = used - series.keys()
    assert not unknown, f"the dashboard queries metrics the daemon does not export: {unknown}"
    unused = {m.name for m in CATALOGUE} - {series[name].name for name in used}
    assert not unused, f"exported metrics no panel shows: {unused}"


def test_the_dashboard_imports_with_a_prometheus_datasource_input() -> None:
    doc = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    inputs = {i["name"]: i for i in doc["__inputs"]}
    assert inputs["DS_PROMETHEUS"]["pluginId"] == "prometheus"
    sources = json.dumps(doc["panels"])
    assert '"uid": "${DS_PROMETHEUS}"' in sources
    uids = [p.get("datasource", {}).get("uid") for p in doc["panels"] if p.get("type") != "row"]
    assert set(uids) == {"${DS_PROMETHEUS}"}


def test_the_docs_list_every_metric_as_the_catalogue_says() -> None:
    text = METRICS_DOC.read_text(encoding="utf-8")
    begin, end = "<!-- metrics:begin -->\n", "<!-- metrics:end -->"
    listed = text.split(begin, 1)[1].split(end, 1)[0]
    assert listed == metrics_table(), "docs/metrics.md is stale: paste metrics_table() in"
    assert set(BY_NAME) <= set(METRIC_NAME.findall(listed))
