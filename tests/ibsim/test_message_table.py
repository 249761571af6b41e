"""The request table: every id the clients can send has a handler, the docs page shows the table
as the code has it, and every request that TWS answers gets an answer from ibsim."""

from __future__ import annotations

import asyncio
import inspect
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import ib_async.client
from ib_async import IB, Contract, ExecutionFilter, ScannerSubscription, Stock
from ibapi.message import OUT

from ibsim.answers.table import REQUESTS, Answer, markdown_table
from tests.ibsim.conftest import WAIT, GatewayFactory, front_month

DOC = Path(__file__).parents[2] / "docs" / "ibsim-messages.md"

# @stoqey/ib `src/io/encoder.ts` OUT_MSG_ID: 1-25, 49-59 and 61-99, the same ids as ibapi 9.81
STOQEY_IB_IDS = {*range(1, 26), *range(49, 60), *range(61, 100)}


def _ib_async_ids() -> set[int]:
    source = inspect.getsource(ib_async.client.Client)
    return {int(m) for m in re.findall(r"(?:self\.send\(|fields = \[)\s*(\d+)", source)}


def _ibapi_ids() -> dict[int, str]:
    return {v: k for k, v in vars(OUT).items() if k.isupper() and isinstance(v, int)}


def test_the_table_covers_every_request_id_of_the_three_clients() -> None:
    ibapi = _ibapi_ids()
    assert set(ibapi) == STOQEY_IB_IDS
    assert set(REQUESTS) == set(ibapi) | _ib_async_ids()
    for msg_id, name in ibapi.items():
        assert REQUESTS[msg_id].name == name


def test_the_docs_page_shows_the_table_as_the_code_has_it() -> None:
    assert markdown_table() in DOC.read_text()


async def test_the_session_has_a_handler_for_every_request_in_the_table(
    make_gateway: GatewayFactory,
) -> None:
    gw = await make_gateway()
    ib = IB()
    await ib.connectAsync("127.0.0.1", gw.port, clientId=1, timeout=WAIT)
    try:
        (session,) = gw.sessions
        assert set(session._handlers) == set(REQUESTS)
    finally:
        ib.disconnect()


ES_BAD = Stock("ZZZZQ", "SMART", "USD")
Call = Callable[[ib_async.client.Client, int, Contract], None]

# What a real client sends for each request that TWS answers, and the first reply expected: a
# message id, or ("error", code).
ANSWERED: dict[int, tuple[Call, object]] = {
    5: (lambda c, r, es: c.reqOpenOrders(), 53),
    6: (lambda c, r, es: c.reqAccountUpdates(True, "DU1234567"), 6),
    7: (lambda c, r, es: c.reqExecutions(r, ExecutionFilter()), 55),
    8: (lambda c, r, es: c.reqIds(1), 9),
    9: (lambda c, r, es: c.reqContractDetails(r, es), 10),
    10: (lambda c, r, es: c.reqMktDepth(r, es, 5, False, []), ("error", 10092)),
    16: (lambda c, r, es: c.reqAllOpenOrders(), 53),
    17: (lambda c, r, es: c.reqManagedAccts(), 15),
    18: (lambda c, r, es: c.requestFA(1), ("error", 321)),
    19: (lambda c, r, es: c.replaceFA(r, 1, "<x/>"), ("error", 321)),
    20: (
        lambda c, r, es: c.reqHistoricalData(
            r, ES_BAD, "", "60 S", "1 min", "TRADES", 0, 1, False, []
        ),
        ("error", 200),
    ),
    21: (lambda c, r, es: c.exerciseOptions(r, es, 1, 1, "", 0), ("error", 200)),
    22: (lambda c, r, es: c.reqScannerSubscription(r, ScannerSubscription(), [], []), 20),
    24: (lambda c, r, es: c.reqScannerParameters(), 19),
    49: (lambda c, r, es: c.reqCurrentTime(), 49),
    50: (lambda c, r, es: c.reqRealTimeBars(r, ES_BAD, 5, "TRADES", False, []), ("error", 200)),
    52: (lambda c, r, es: c.reqFundamentalData(r, es, "ReportSnapshot", []), ("error", 430)),
    54: (lambda c, r, es: c.calculateImpliedVolatility(r, es, 1.0, 5000.0, []), ("error", 200)),
    55: (lambda c, r, es: c.calculateOptionPrice(r, es, 0.2, 5000.0, []), ("error", 200)),
    61: (lambda c, r, es: c.reqPositions(), 62),
    62: (lambda c, r, es: c.reqAccountSummary(r, "All", "NetLiquidation"), 63),
    65: (lambda c, r, es: c.verifyRequest("app", "1"), 66),
    66: (lambda c, r, es: c.verifyMessage("data"), 66),
    67: (lambda c, r, es: c.queryDisplayGroups(r), 67),
    68: (lambda c, r, es: c.subscribeToGroupEvents(r, 1), 68),
    72: (lambda c, r, es: c.verifyAndAuthRequest("app", "1", "key"), 70),
    73: (lambda c, r, es: c.verifyAndAuthMessage("data", "response"), 70),
    74: (lambda c, r, es: c.reqPositionsMulti(r, "DU1234567", ""), 72),
    76: (lambda c, r, es: c.reqAccountUpdatesMulti(r, "DU1234567", "", False), 73),
    78: (lambda c, r, es: c.reqSecDefOptParams(r, "ES", "CME", "FUT", es.conId), 76),
    79: (lambda c, r, es: c.reqSoftDollarTiers(r), 77),
    80: (lambda c, r, es: c.reqFamilyCodes(), 78),
    81: (lambda c, r, es: c.reqMatchingSymbols(r, "ES"), 79),
    82: (lambda c, r, es: c.reqMktDepthExchanges(), 80),
    83: (lambda c, r, es: c.reqSmartComponents(r, "a6"), 82),
    84: (lambda c, r, es: c.reqNewsArticle(r, "BZ", "BZ$1", []), ("error", 10276)),
    85: (lambda c, r, es: c.reqNewsProviders(), 85),
    86: (lambda c, r, es: c.reqHistoricalNews(r, es.conId, "BZ", "", "", 10, []), ("error", 10276)),
    87: (lambda c, r, es: c.reqHeadTimeStamp(r, es, "BID_ASK", False, 2), 88),
    88: (lambda c, r, es: c.reqHistogramData(r, es, False, "1 day"), 89),
    91: (lambda c, r, es: c.reqMarketRule(67), 93),
    92: (lambda c, r, es: c.reqPnL(r, "DU1234567", ""), 94),
    94: (lambda c, r, es: c.reqPnLSingle(r, "DU1234567", "", es.conId), 95),
    96: (
        lambda c, r, es: c.reqHistoricalTicks(
            r, es, "", "20261120 08:30:00 US/Central", 10, "BID_ASK", False, False, []
        ),
        97,
    ),
    97: (lambda c, r, es: c.reqTickByTickData(r, ES_BAD, "BidAsk", 0, False), ("error", 200)),
    99: (lambda c, r, es: c.reqCompletedOrders(False), 102),
    100: (lambda c, r, es: c.reqWshMetaData(r), ("error", 10276)),
    102: (
        lambda c, r, es: c.reqWshEventData(r, ib_async.WshEventData(conId=es.conId)),
        ("error", 10276),
    ),
    104: (lambda c, r, es: c.reqUserInfo(r), 107),
}


def _tap(ib: IB) -> list[tuple[int, Any]]:
    """(message id, error code or None) of every message the client decodes from now on."""
    seen: list[tuple[int, Any]] = []
    decoder = ib.client.decoder
    interpret = decoder.interpret

    def record(fields: list[str]) -> None:
        msg_id = int(fields[0])
        seen.append((msg_id, int(fields[3]) if msg_id == 4 else None))
        interpret(fields)

    decoder.interpret = record  # type: ignore[method-assign]
    return seen


async def test_every_request_tws_answers_gets_its_answer(
    make_gateway: GatewayFactory,
) -> None:
    """Each request in turn, then reqCurrentTime as a barrier: the session answers in order, so
    the answer (or error) arrives before the time. The streams (1, 3, 4, 50, 58, 69, 97) are
    driven with live data in their own tests."""
    untested = {
        r.msg_id
        for r in REQUESTS.values()
        if r.answer is not Answer.NONE and r.msg_id not in ANSWERED
    }
    assert untested == {1, 3, 4, 58, 69, 71}
    gw = await make_gateway()
    ib = IB()
    await ib.connectAsync("127.0.0.1", gw.port, clientId=2, timeout=WAIT)
    try:
        es = await front_month(ib)
        seen = _tap(ib)
        for msg_id, (call, expected) in ANSWERED.items():
            seen.clear()
            call(ib.client, ib.client.getReqId(), es)
            await asyncio.wait_for(ib.reqCurrentTimeAsync(), WAIT)
            want = (4, expected[1]) if isinstance(expected, tuple) else (expected, None)
            assert want in seen, (msg_id, seen)
    finally:
        ib.disconnect()
