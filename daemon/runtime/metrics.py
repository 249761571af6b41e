"""Prometheus metrics: the daemon's live state, read at scrape time, served over HTTP.

The HTTP server (`metrics_http`: bounded connections, each with timeouts) answers on its own
threads, while the state belongs to the event loop. So a scrape asks the loop for a `Sample`
(plain numbers copied in one loop callback: consistent, and no work on the tick path), then
builds the metric families off the loop. The sources are the ones status.json is built from
(connection status, feed stats, the flow's guard counts, the loop-lag histogram, the trader),
so the two never disagree by counting twice.

`CATALOGUE` lists every metric; docs/metrics.md and the Grafana dashboard are checked against it.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from threading import Thread
from typing import Final, Literal

import structlog
from prometheus_client import CollectorRegistry, make_wsgi_app
from prometheus_client.metrics_core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    InfoMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from daemon.broker.connection import ConnectionStatus, ConnState
from daemon.broker.marketdata import FeedStats
from daemon.flow.events import DataMode
from daemon.flow.extractor import OrderFlow
from daemon.flow.guards import Reason
from daemon.flow.prints import Health
from daemon.runtime.metrics_http import (
    DEADLINE_S,
    IO_TIMEOUT_S,
    MAX_CONNECTIONS,
    POLL_S,
    BoundedWSGIServer,
    best_family,
)
from daemon.runtime.status import LoopLagHistogram
from daemon.settings import MetricsSettings
from daemon.trading.model import TradingState
from daemon.trading.trader import Trader

log = structlog.get_logger("daemon.runtime.metrics")

SCRAPE_TIMEOUT_S: Final = 5.0  # a loop that cannot answer this fast fails the scrape (HTTP 500)
STOP_TIMEOUT_S: Final = 5.0
DISABLED: Final = "DISABLED"  # trading state label when trading.enabled = false

Kind = Literal["gauge", "counter", "histogram", "info"]


@dataclass(frozen=True, slots=True)
class MetricDoc:
    """One exported metric: the name PromQL uses, its type, labels and meaning."""

    name: str
    kind: Kind
    labels: tuple[str, ...]
    help: str

    @property
    def family(self) -> str:
        """The family name prometheus_client wants (without `_total` / `_info`)."""
        if self.kind == "counter":
            return self.name.removesuffix("_total")
        if self.kind == "info":
            return self.name.removesuffix("_info")
        return self.name

    @property
    def series(self) -> tuple[str, ...]:
        """Sample names a scrape shows for it."""
        if self.kind == "histogram":
            return (f"{self.name}_bucket",)  # no _sum is kept, so no _count either: +Inf is it
        return (self.name,)


def _doc(name: str, kind: Kind, help: str, *labels: str) -> MetricDoc:
    return MetricDoc(f"orderflowd_{name}", kind, labels, help)


CATALOGUE: Final = (
    _doc(
        "connection_state",
        "gauge",
        "1 for the connection's current state, 0 for the others.",
        "state",
    ),
    _doc("reconnects_total", "counter", "Reconnects to the gateway since start."),
    _doc(
        "gateway_info",
        "info",
        "The gateway session: server version, client id and port (once connected).",
        "server_version",
        "client_id",
        "port",
    ),
    _doc("data_mode", "gauge", "1 for the market-data mode in use, 0 for the other.", "mode"),
    _doc(
        "ticks_received_total",
        "counter",
        "Market events received: tick-by-tick trades and quotes, and reqMktData samples "
        '(mode="snapshot": the data in snapshot mode, a volume check in tick-by-tick mode).',
        "mode",
        "kind",
    ),
    _doc("flow_trades_total", "counter", "Trades the order-flow extractor accepted."),
    _doc("data_health", "gauge", "1 for the order flow's current data health.", "health"),
    _doc(
        "rejected_ticks_total", "counter", "Ticks the flow's guards rejected, by reason.", "reason"
    ),
    _doc(
        "event_loop_lag_seconds",
        "histogram",
        "Event-loop lag of the probe every 0.25 s (buckets only: the +Inf bucket counts probes).",
    ),
    _doc("event_loop_lag_max_seconds", "gauge", "Largest event-loop lag since start."),
    _doc(
        "metrics_connections_refused_total",
        "counter",
        f"Connections to this endpoint closed unserved: {MAX_CONNECTIONS} were open already.",
    ),
    _doc("trading_state", "gauge", "1 for the trading state (DISABLED: trading off).", "state"),
    _doc(
        "orders",
        "gauge",
        "Orders held in memory by last broker status: every working order, and finished ones "
        "until 5 minutes after their bracket ends.",
        "status",
    ),
    _doc("position_contracts", "gauge", "Position in the front contract (absent while unknown)."),
    _doc(
        "position_known",
        "gauge",
        "1 while the position is trusted (reconciled with the broker, connected); 0 while it is "
        "not, and then position_contracts, pnl_unrealized_usd and pnl_net_usd are absent.",
    ),
    _doc("pnl_realized_usd", "gauge", "Realized PnL of the trading day, before commissions."),
    _doc(
        "pnl_unrealized_usd",
        "gauge",
        "Unrealized PnL at the last price (absent while the price or the position is unknown).",
    ),
    _doc("commissions_usd", "gauge", "Commissions of the trading day."),
    _doc(
        "pnl_net_usd",
        "gauge",
        "Realized - commissions + unrealized (absent while unrealized is).",
    ),
    _doc("risk_refusals_total", "counter", "Orders the risk rules refused, by rule.", "rule"),
    _doc(
        "messages_sent_total",
        "counter",
        "Order messages sent to the gateway (place, modify, cancel).",
    ),
    _doc("fills_total", "counter", "Executions journaled for the first time."),
)
BY_NAME: Final = {m.name: m for m in CATALOGUE}


def metrics_table() -> str:
    """The metric list of docs/metrics.md, as a Markdown table (a test keeps the doc in step)."""
    rows = ["| Metric | Type | Labels | Meaning |", "| --- | --- | --- | --- |"]
    for m in CATALOGUE:
        labels = ", ".join(f"`{label}`" for label in m.labels)
        rows.append(f"| `{m.name}` | {m.kind} | {labels} | {m.help} |")
    return "\n".join(rows) + "\n"


# --- what a scrape reads ---


@dataclass(frozen=True, slots=True)
class TradingSample:
    """The trader's figures at one moment."""

    state: str
    position: int | None
    realized: float
    unrealized: float | None
    commissions: float
    net: float | None
    orders: dict[str, int]
    refusals: dict[str, int]
    messages: int
    fills: int


@dataclass(frozen=True, slots=True)
class Sample:
    """The daemon's figures at one moment, as plain data (safe to hand to another thread)."""

    connection_state: str
    reconnects: int
    server_version: int | None
    client_id: int | None
    port: int | None
    data_mode: str | None
    ticks: dict[tuple[str, str], int]  # (mode, kind) -> count
    flow_trades: int
    data_health: str
    rejected: dict[str, int]
    lag_buckets: list[tuple[str, int]]  # (upper edge in seconds, cumulative count), +Inf last
    lag_max_s: float
    trading: TradingSample | None


def read_trading(trader: Trader) -> TradingSample:
    """The trader's figures (on the loop: the trader is not thread-safe)."""
    executor = trader.executor
    position = trader.position  # None: not reconciled or not connected, so not trusted
    trusted = position is not None
    return TradingSample(
        state=trader.risk.state.value if trader.enabled else DISABLED,
        position=position,
        realized=trader.pnl.realized,
        unrealized=trader.pnl.unrealized() if trusted else None,  # of a position that may be gone
        commissions=trader.pnl.commissions,
        net=trader.pnl.net() if trusted else None,
        orders=dict(Counter(rec.status for rec in executor.orders.values())),
        refusals=dict(trader.risk.refusals),
        messages=executor.messages_sent,
        fills=executor.new_fills,
    )


def read_sample(
    conn: ConnectionStatus,
    feed: FeedStats,
    flow: OrderFlow,
    lag: LoopLagHistogram,
    trader: Trader | None,
) -> Sample:
    """Copy the figures out of the live objects; call it on the event loop."""
    lag_status = lag.as_status()
    buckets = [
        (f"{edge / 1000:g}", count)
        for edge, count in zip(lag.edges_ms, lag_status["le_ms"].values(), strict=True)
    ]
    buckets.append(("+Inf", lag.probes))
    # ticks_total counts every event emitted: tick-by-tick trades and quotes, and samples.
    return Sample(
        connection_state=conn.state.value,
        reconnects=conn.reconnect_count,
        server_version=conn.server_version,
        client_id=conn.client_id,
        port=conn.port,
        data_mode=feed.mode.value if feed.mode is not None else None,
        ticks={
            (DataMode.TICK_BY_TICK.value, "trade"): feed.trades,
            (DataMode.TICK_BY_TICK.value, "quote"): feed.ticks_total - feed.trades - feed.snapshots,
            (DataMode.SNAPSHOT.value, "sample"): feed.snapshots,
        },
        flow_trades=flow.trades,
        data_health=flow.health.value,
        rejected=dict(flow.guard.rejected),
        lag_buckets=buckets,
        lag_max_s=lag.max_s,
        trading=None if trader is None else read_trading(trader),
    )


# --- metric families ---


def _one_hot(doc: MetricDoc, values: Iterable[str], current: str | None) -> GaugeMetricFamily:
    family = GaugeMetricFamily(doc.family, doc.help, labels=doc.labels)
    for value in values:
        family.add_metric([value], 1.0 if value == current else 0.0)
    return family


def _gauge(name: str, value: float | None) -> GaugeMetricFamily:
    doc = BY_NAME[name]
    family = GaugeMetricFamily(doc.family, doc.help)
    if value is not None:
        family.add_metric([], value)
    return family


def _counter(name: str, values: int | Iterable[tuple[Sequence[str], int]]) -> CounterMetricFamily:
    """A counter: one value, or (label values, value) pairs."""
    doc = BY_NAME[name]
    family = CounterMetricFamily(doc.family, doc.help, labels=doc.labels)
    for labels, value in [((), values)] if isinstance(values, int) else values:
        family.add_metric(list(labels), value)
    return family


def families(s: Sample) -> list[Metric]:
    """Every metric family of one sample, in `CATALOGUE` order."""
    out: list[Metric] = [
        _one_hot(
            BY_NAME["orderflowd_connection_state"], [c.value for c in ConnState], s.connection_state
        ),
        _counter("orderflowd_reconnects_total", s.reconnects),
    ]
    info = BY_NAME["orderflowd_gateway_info"]
    gateway = InfoMetricFamily(info.family, info.help, labels=())
    if s.server_version is not None:
        gateway.add_metric(
            [],
            {
                "server_version": str(s.server_version),
                "client_id": str(s.client_id),
                "port": str(s.port),
            },
        )
    out.append(gateway)
    out += [
        _one_hot(BY_NAME["orderflowd_data_mode"], [m.value for m in DataMode], s.data_mode),
        _counter("orderflowd_ticks_received_total", s.ticks.items()),
        _counter("orderflowd_flow_trades_total", s.flow_trades),
        _one_hot(BY_NAME["orderflowd_data_health"], [h.value for h in Health], s.data_health),
        # Every reason from the start, so rate() sees the first rejection of each.
        _counter(
            "orderflowd_rejected_ticks_total",
            (((k,), v) for k, v in ({r.value: 0 for r in Reason} | s.rejected).items()),
        ),
    ]
    lag = BY_NAME["orderflowd_event_loop_lag_seconds"]
    histogram = HistogramMetricFamily(lag.family, lag.help)
    histogram.add_metric([], [(le, float(n)) for le, n in s.lag_buckets], sum_value=None)
    out += [histogram, _gauge("orderflowd_event_loop_lag_max_seconds", s.lag_max_s)]
    t = s.trading
    states = [*(state.value for state in TradingState), DISABLED]
    out.append(
        _one_hot(BY_NAME["orderflowd_trading_state"], states, DISABLED if t is None else t.state)
    )
    if t is None:
        return out
    orders = BY_NAME["orderflowd_orders"]
    by_status = GaugeMetricFamily(orders.family, orders.help, labels=orders.labels)
    for status, n in sorted(t.orders.items()):
        by_status.add_metric([status], n)
    out += [
        by_status,
        _gauge("orderflowd_position_contracts", t.position),
        _gauge("orderflowd_position_known", 0.0 if t.position is None else 1.0),
        _gauge("orderflowd_pnl_realized_usd", t.realized),
        _gauge("orderflowd_pnl_unrealized_usd", t.unrealized),
        _gauge("orderflowd_commissions_usd", t.commissions),
        _gauge("orderflowd_pnl_net_usd", t.net),
        _counter(
            "orderflowd_risk_refusals_total", (((k,), v) for k, v in sorted(t.refusals.items()))
        ),
        _counter("orderflowd_messages_sent_total", t.messages),
        _counter("orderflowd_fills_total", t.fills),
    ]
    return out


class DaemonCollector(Collector):
    """Reads a `Sample` on the event loop at each scrape, whichever thread scrapes."""

    def __init__(
        self,
        read: Callable[[], Sample],
        loop: asyncio.AbstractEventLoop,
        timeout_s: float = SCRAPE_TIMEOUT_S,
    ) -> None:
        self._read = read
        self._loop = loop
        self._timeout_s = timeout_s

    def collect(self) -> Iterable[Metric]:
        return families(self.sample())

    def sample(self) -> Sample:
        try:
            on_loop = asyncio.get_running_loop() is self._loop
        except RuntimeError:
            on_loop = False
        if on_loop:
            return self._read()
        result: concurrent.futures.Future[Sample] = concurrent.futures.Future()

        def read_on_loop() -> None:
            if not result.set_running_or_notify_cancel():
                return  # the scrape gave up already
            try:
                result.set_result(self._read())
            except Exception as exc:  # handed to the scraping thread, which fails the scrape
                result.set_exception(exc)

        self._loop.call_soon_threadsafe(read_on_loop)
        try:
            return result.result(self._timeout_s)
        except TimeoutError:
            result.cancel()
            log.warning("metrics_scrape_timeout", seconds=self._timeout_s, rate_limited=True)
            raise


class EndpointCollector(Collector):
    """The HTTP endpoint's own figures (kept by the server thread: no trip to the loop)."""

    def __init__(self, refused: Callable[[], int]) -> None:
        self._refused = refused

    def collect(self) -> Iterable[Metric]:
        return [_counter("orderflowd_metrics_connections_refused_total", self._refused())]


class MetricsServer:
    """The HTTP endpoint: started by the supervisor, never a reason for trading to stop."""

    def __init__(self, settings: MetricsSettings, read: Callable[[], Sample]) -> None:
        self.settings = settings
        self.registry = CollectorRegistry()  # never the process-global default registry
        self._read = read
        self._collector: DaemonCollector | None = None
        self._server: BoundedWSGIServer | None = None
        self._thread: Thread | None = None
        self.port: int | None = None  # the bound port once listening (metrics.port may be 0)

    def start(self) -> bool:
        """Listen, on the running loop's behalf; False (logged) when disabled or it cannot bind."""
        s = self.settings
        if not s.enabled:
            log.info("metrics_disabled")
            return False
        if self._collector is None:
            self._collector = DaemonCollector(self._read, asyncio.get_running_loop())
            self.registry.register(self._collector)
            self.registry.register(EndpointCollector(lambda: self.refused))
        try:
            family, host = best_family(s.host, s.port)
            server = BoundedWSGIServer((host, s.port), family=family)
        except OSError as exc:
            log.error(
                "metrics_unavailable",
                host=s.host,
                port=s.port,
                error=str(exc),
                fix="another process holds metrics.port (a second daemon?): set metrics.port to "
                "a free port, or metrics.enabled = false; trading continues without metrics",
            )
            return False
        server.set_app(make_wsgi_app(self.registry))
        self._server = server
        self._thread = Thread(
            target=server.serve_forever, args=(POLL_S,), name="metrics-http", daemon=True
        )
        self._thread.start()
        self.port = server.server_port
        log.info(
            "metrics_listening",
            host=s.host,
            port=self.port,
            max_connections=MAX_CONNECTIONS,
            io_timeout_s=IO_TIMEOUT_S,
            deadline_s=DEADLINE_S,
        )
        return True

    @property
    def refused(self) -> int:
        """Connections closed unserved because the endpoint had all it takes."""
        return 0 if self._server is None else self._server.refused

    async def stop(self) -> None:
        """Stop serving and close the socket (shutdown waits up to a 0.5 s poll: off the loop)."""
        server, thread = self._server, self._thread
        self._server = self._thread = None
        if server is None:
            return
        await asyncio.to_thread(server.shutdown)
        server.close_connections()  # their threads end now, not at their timeouts
        server.server_close()
        if thread is not None:
            await asyncio.to_thread(thread.join, STOP_TIMEOUT_S)
        log.info("metrics_stopped", port=self.port)
