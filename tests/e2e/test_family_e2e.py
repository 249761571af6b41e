"""The daemon trades any of the family in its own terms (issue 15): MES against `ibsim` driving
MES prices a tick at a tenth of ES's value, the same trade, the same ticks."""

from __future__ import annotations

import math
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from daemon.trading.model import TradingState
from ibsim.gateway import Gateway, GatewayConfig
from ibsim.market import ListSource
from ibsim.model import Side
from tests.e2e.harness import T0, Daemon, Market, position


async def _gateway(symbol: str) -> Gateway:
    gw = Gateway(
        GatewayConfig(port=0, client_id_release_delay=0.0, symbol=symbol),
        ListSource.one_quote(T0),
        speed=math.inf,
    )
    await gw.start()
    return gw


@pytest.fixture
async def gateways() -> AsyncIterator[Callable[[str], Any]]:
    started: list[Gateway] = []

    async def start(symbol: str) -> Gateway:
        gw = await _gateway(symbol)
        started.append(gw)
        return gw

    yield start
    for gw in started:
        await gw.stop()


async def _round_trip(d: Daemon, market: Market, gw: Gateway) -> tuple[float, float]:
    """Long 1 at market, the market 4 ticks up: (unrealized then, realized after the exit)."""
    await d.ready(market)
    await d.send(market, d.strategy.intent(1, entry="MKT", stop_ticks=40))
    await d.until(lambda: d.trader.position == 1)
    entry = d.trader.pnl.ledger.avg_price
    market.quote(entry + 1.0, entry + 1.25)  # 4 ticks above the fill, bid side
    market.trade(entry + 1.0, side=Side.SELL)
    await d.until(lambda: d.sup.flow.features.last_price == entry + 1.0)
    unrealized = d.trader.pnl.unrealized()
    assert unrealized is not None
    await d.send(market, d.strategy.intent(0))
    market.quote(entry + 0.75, entry + 1.0)
    market.trade(entry + 0.5, 5, side=Side.SELL)  # through the moved target
    await d.until(lambda: d.trader.position == 0)
    assert position(gw) == 0
    return unrealized, d.trader.pnl.realized


async def test_mes_pnl_is_a_tenth_of_es_for_the_same_ticks(
    gateways: Callable[[str], Any], daemon: Callable[..., Daemon], tmp_path: Any
) -> None:
    results = {}
    for symbol in ("ES", "MES"):
        gw = await gateways(symbol)
        d = daemon(
            gw,
            instrument={"symbol": symbol},
            paths={"state_dir": str(tmp_path / symbol)},
            execution={"order_ref_prefix": f"t{symbol.lower()}"},
        )
        market = Market(gw)
        results[symbol] = await _round_trip(d, market, gw)
        assert d.sup.market.instrument.multiplier == {"ES": 50.0, "MES": 5.0}[symbol]
        assert d.sup.market.contract is not None
        assert d.sup.market.contract.localSymbol.startswith(symbol)
        d.sup.request_stop("next")
        assert await d.wait_exit() == 0
    es, mes = results["ES"], results["MES"]
    assert es[0] == pytest.approx(4 * 12.5)  # 4 ticks x 12.50 USD
    assert mes[0] == pytest.approx(es[0] / 10)  # exactly one tenth
    assert mes[1] == pytest.approx(es[1] / 10)


async def test_the_loss_limit_counts_mes_dollars(
    gateways: Callable[[str], Any], daemon: Callable[..., Daemon]
) -> None:
    gw = await gateways("MES")
    # 150 USD is 120 MES ticks (30 points): 4 points down is 20 USD, nowhere near it (on ES the
    # same move is 200 USD and halts)
    d = daemon(gw, instrument={"symbol": "MES"}, risk={"daily_loss_limit": 150.0})
    market = Market(gw)
    await d.ready(market)
    await d.send(market, d.strategy.intent(1, entry="MKT", stop_ticks=40))
    await d.until(lambda: d.trader.position == 1)
    market.quote(4996.0, 4996.25)
    market.trade(4996.0, side=Side.SELL)
    await d.until(lambda: d.sup.flow.features.last_price == 4996.0)
    await d.prodding(lambda: d.trader.pnl.net() is not None)
    net = d.trader.pnl.net()
    assert net is not None
    assert -25.0 < net < -15.0  # about 4 points x 5 USD, commissions included
    assert d.trader.risk.state is TradingState.ACTIVE
