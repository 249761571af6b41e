"""The family ibsim lists, as real clients decode it: ES, MES, NQ, MNQ, RTY, M2K (CME) and YM,
MYM (CBOT) — contract details, lookups by every key, symbol search and market rules.

The expected values are the exchanges' published contract terms, written out here rather than
read from `ibsim.products`, so the table is checked, not echoed.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest
from ib_async import IB, Contract, Future, PriceIncrement

from ibsim.gateway import Gateway
from tests.ibsim.conftest import GatewayFactory, collect_errors, until
from tests.ibsim.test_e2e_ibapi import HOST, es_future
from tests.ibsim.test_e2e_ibapi_answers import AnswersApp

Connect = Callable[..., Awaitable[IB]]

# symbol, exchange, minTick, multiplier as IB writes it, market rule id
FAMILY = [
    ("ES", "CME", 0.25, "50", 67),
    ("MES", "CME", 0.25, "5", 67),
    ("NQ", "CME", 0.25, "20", 67),
    ("MNQ", "CME", 0.25, "2", 67),
    ("RTY", "CME", 0.1, "50", 9010),
    ("M2K", "CME", 0.1, "5", 9010),
    ("YM", "CBOT", 1.0, "5", 9100),
    ("MYM", "CBOT", 1.0, "0.5", 9100),
]


async def test_every_product_lists_four_quarterlies_with_its_own_terms(
    make_gateway: GatewayFactory, connect: Connect
) -> None:
    """ib_async decodes each product's details: exchange, tick, multiplier, local symbols,
    hours and market rules as IB sends them; every conId in the family is distinct."""
    gw = await make_gateway()
    ib = await connect(gw)
    con_ids: set[int] = set()
    for symbol, exchange, min_tick, multiplier, rule in FAMILY:
        details = await ib.reqContractDetailsAsync(Future(symbol, exchange=exchange))
        locals_ = [d.contract.localSymbol for d in details]
        assert locals_ == [f"{symbol}Z6", f"{symbol}H7", f"{symbol}M7", f"{symbol}U7"]
        for d in details:
            c = d.contract
            assert (c.symbol, c.secType, c.exchange, c.currency) == (symbol, "FUT", exchange, "USD")
            assert (c.tradingClass, c.multiplier) == (symbol, multiplier)
            assert d.minTick == min_tick
            assert d.priceMagnifier == 1
            assert d.validExchanges == f"{exchange},QBALGO"
            assert d.marketRuleIds == f"{rule},{rule}"
            assert d.underSymbol == symbol
            assert d.timeZoneId == "US/Central"
            assert d.tradingHours.startswith("20261119:1700-20261120:1600")
            assert "LMT" in d.orderTypes.split(",")
            con_ids.add(c.conId)
        assert details[0].contract.lastTradeDateOrContractMonth == "20261218"  # third Friday
        assert details[0].lastTradeTime == "08:30"
    assert len(con_ids) == 4 * len(FAMILY)


@pytest.mark.parametrize(
    ("contract", "local_symbol"),
    [
        (Future("MES", "202612", exchange="GLOBEX"), "MESZ6"),  # IB's old name for CME
        (Future("YM", "202703", exchange="ECBOT"), "YMH7"),  # ... and for CBOT
        (Future(localSymbol="M2KZ6", exchange="CME"), "M2KZ6"),
        (Future(localSymbol="MYMM7", exchange="CBOT"), "MYMM7"),
        (Future("MNQ", "20270917", exchange="CME"), "MNQU7"),
    ],
)
async def test_one_contract_by_expiry_alias_or_local_symbol(
    make_gateway: GatewayFactory, connect: Connect, contract: Contract, local_symbol: str
) -> None:
    gw = await make_gateway()
    ib = await connect(gw)
    (found,) = await ib.qualifyContractsAsync(contract)
    assert found.localSymbol == local_symbol
    (by_id,) = await ib.reqContractDetailsAsync(Contract(conId=found.conId))
    assert by_id.contract.localSymbol == local_symbol


async def test_unknown_symbols_and_wrong_exchanges_get_200(
    make_gateway: GatewayFactory, connect: Connect
) -> None:
    gw = await make_gateway()
    ib = await connect(gw)
    errors = collect_errors(ib)
    asks = [
        Future("ZZZZQ", exchange="CME"),  # not listed
        Future("YM", exchange="CME"),  # YM is on CBOT
        Future("RTY", exchange="CBOT"),  # RTY is on CME
        Future("MES", exchange="CME", tradingClass="ES"),  # another product's class
        Future(localSymbol="MESZ6", symbol="ES", exchange="CME"),
    ]
    for contract in asks:
        assert await ib.reqContractDetailsAsync(contract) == []
    await until(ib, lambda: [code for _, code in errors].count(200) == len(asks))


async def test_symbol_search_finds_the_family_by_symbol_or_name(
    make_gateway: GatewayFactory, connect: Connect
) -> None:
    gw = await make_gateway()
    ib = await connect(gw)

    async def search(pattern: str) -> list[tuple[str, str, str]]:
        found = await ib.reqMatchingSymbolsAsync(pattern)
        return [(d.contract.symbol, d.contract.secType, d.contract.primaryExchange) for d in found]

    assert await search("es") == [("ES", "IND", "CME")]
    assert await search("MYM") == [("MYM", "IND", "CBOT")]
    assert await search("russell") == [("RTY", "IND", "CME"), ("M2K", "IND", "CME")]
    assert [s for s, _, _ in await search("e-mini")] == [s for s, *_ in FAMILY]
    assert await search("ZZZZQ") == []


async def test_each_products_market_rule_is_its_tick(
    make_gateway: GatewayFactory, connect: Connect
) -> None:
    """The rule a contract's details name answers with the same increment as its minTick."""
    gw = await make_gateway()
    ib = await connect(gw)
    for symbol, exchange, min_tick, _, rule in FAMILY:
        (details,) = await ib.reqContractDetailsAsync(Future(symbol, "202612", exchange=exchange))
        named = int(details.marketRuleIds.split(",")[0])
        assert named == rule
        assert await ib.reqMarketRuleAsync(named) == [PriceIncrement(0.0, min_tick)]


# --- IB's reference client ---


@pytest.fixture
async def ibapi_app() -> AsyncIterator[Callable[[Gateway], Awaitable[AnswersApp]]]:
    """Connected ibapi clients (server version 157); the test fails if ibapi could not decode
    a message (it logs an error) or its loop crashed."""
    apps: list[AnswersApp] = []
    logged: list[logging.LogRecord] = []
    handler = logging.Handler(logging.ERROR)
    handler.emit = logged.append  # type: ignore[method-assign]
    logging.getLogger("ibapi").addHandler(handler)

    async def _connect(gw: Gateway) -> AnswersApp:
        app = AnswersApp()
        apps.append(app)
        await asyncio.to_thread(app.connect, HOST, gw.port, 1)
        app.start()
        await app.until(lambda: app.next_id is not None and app.accounts is not None)
        return app

    try:
        yield _connect
    finally:
        for app in apps:
            await asyncio.to_thread(app.close)
        logging.getLogger("ibapi").removeHandler(handler)
    assert [a.crash for a in apps if a.crash is not None] == []
    assert [r.getMessage() for r in logged] == []


async def test_ibapi_decodes_the_cbot_dow_futures_and_their_rule(
    make_gateway: GatewayFactory, ibapi_app: Callable[[Gateway], Awaitable[AnswersApp]]
) -> None:
    gw = await make_gateway()
    app = await ibapi_app(gw)
    ym, mym = app.req_id(), app.req_id()

    def send() -> None:
        app.reqContractDetails(ym, es_future(symbol="YM", exchange="CBOT"))
        app.reqContractDetails(mym, es_future(symbol="MYM", exchange="ECBOT", localSymbol="MYMZ6"))
        app.reqMarketRule(9100)

    await asyncio.to_thread(send)
    await app.until(lambda: {("contractDetails", ym), ("contractDetails", mym)} <= app.ends)
    await app.until(lambda: 9100 in app.rules)
    assert [d.contract.localSymbol for d in app.details[ym]] == ["YMZ6", "YMH7", "YMM7", "YMU7"]
    (micro,) = app.details[mym]
    c = micro.contract
    assert (c.symbol, c.exchange, c.localSymbol, c.tradingClass) == ("MYM", "CBOT", "MYMZ6", "MYM")
    assert (c.multiplier, micro.minTick, micro.priceMagnifier) == ("0.5", 1.0, 1)
    assert (micro.validExchanges, micro.marketRuleIds) == ("CBOT,QBALGO", "9100,9100")
    assert c.conId not in {d.contract.conId for d in app.details[ym]}
    assert app.rules[9100] == [(0.0, 1.0)]
