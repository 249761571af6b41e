"""The answers' request decoders, fed with the bytes the real clients send, and with bad input:
a malformed field is a `WireError` (the session drops that client), a well-formed value TWS
refuses is TWS's error, and the gateway goes on serving everyone else."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from ib_async import IB
from ib_async import Contract as AsyncContract
from ibapi.contract import Contract as IbapiContract

from ibsim.answers import inbound
from ibsim.wire import WireError
from tests.ibsim.conftest import WAIT, GatewayFactory, collect_errors, front_month, until
from tests.ibsim.test_e2e_faults import _frame, _raw_client
from tests.ibsim.test_requests import ES, _async_client, _fields, _ibapi_client


def _ibapi_contract() -> IbapiContract:
    contract = IbapiContract()
    for key, value in ES.items():
        setattr(contract, key, value)
    return contract


def _sent_by_both(call_async: Any, call_ibapi: Any) -> list[list[str]]:
    """The request as ib_async (at 178) and as ibapi (at 157) put it on the wire."""
    a, sent_a = _async_client(178)
    call_async(a, AsyncContract(**ES))
    b, sent_b = _ibapi_client()
    call_ibapi(b, _ibapi_contract())
    return [sent_a[0], sent_b[0]]


def test_real_time_bars_request_from_both_clients() -> None:
    for raw in _sent_by_both(
        lambda c, es: c.reqRealTimeBars(5, es, 5, "MIDPOINT", True, []),
        lambda c, es: c.reqRealTimeBars(5, es, 5, "MIDPOINT", True, []),
    ):
        req = inbound.read_real_time_bars(_fields(raw))
        assert (req.req_id, req.bar_size, req.what_to_show, req.use_rth) == (5, 5, "MIDPOINT", True)
        assert req.contract.local_symbol == "ESZ6"


def test_head_timestamp_and_histogram_requests_from_both_clients() -> None:
    for raw in _sent_by_both(
        lambda c, es: c.reqHeadTimeStamp(6, es, "BID_ASK", False, 2),
        lambda c, es: c.reqHeadTimeStamp(6, es, "BID_ASK", False, 2),
    ):
        head = inbound.read_head_timestamp(_fields(raw))
        assert (head.req_id, head.what_to_show, head.use_rth, head.format_date) == (
            6,
            "BID_ASK",
            False,
            2,
        )
        assert head.contract.con_id == ES["conId"]
    for raw in _sent_by_both(
        lambda c, es: c.reqHistogramData(7, es, True, "3 days"),
        lambda c, es: c.reqHistogramData(7, es, True, "3 days"),
    ):
        histogram = inbound.read_histogram(_fields(raw))
        assert (histogram.req_id, histogram.use_rth, histogram.period) == (7, True, "3 days")


def test_pnl_and_option_chain_requests_from_both_clients() -> None:
    for raw in _sent_by_both(
        lambda c, es: c.reqPnLSingle(8, "DU1234567", "", es.conId),
        lambda c, es: c.reqPnLSingle(8, "DU1234567", "", es.conId),
    ):
        req = inbound.read_pnl(_fields(raw), single=True)
        assert (req.req_id, req.account, req.con_id) == (8, "DU1234567", ES["conId"])
    for raw in _sent_by_both(
        lambda c, es: c.reqPnL(9, "DU1234567", ""),
        lambda c, es: c.reqPnL(9, "DU1234567", ""),
    ):
        assert inbound.read_pnl(_fields(raw), single=False).con_id is None
    for raw in _sent_by_both(
        lambda c, es: c.reqSecDefOptParams(10, "ES", "CME", "FUT", es.conId),
        lambda c, es: c.reqSecDefOptParams(10, "ES", "CME", "FUT", es.conId),
    ):
        chain = inbound.read_sec_def_opt_params(_fields(raw))
        assert (chain.req_id, chain.underlying_sec_type, chain.underlying_con_id) == (
            10,
            "FUT",
            ES["conId"],
        )


@pytest.mark.parametrize(
    ("call", "reader", "index", "bad", "problem"),
    [
        ("reqRealTimeBars", inbound.read_real_time_bars, 15, "five", "not an integer"),
        ("reqRealTimeBars", inbound.read_real_time_bars, 17, "yes", "not an integer"),
        ("reqHeadTimeStamp", inbound.read_head_timestamp, 1, "first", "not an integer"),
        ("reqHistogramData", inbound.read_histogram, 14, "maybe", "not an integer"),
    ],
)
def test_malformed_fields_are_wire_errors(
    call: str, reader: Any, index: int, bad: str, problem: str
) -> None:
    client, sent = _async_client(178)
    args = {
        "reqRealTimeBars": (5, AsyncContract(**ES), 5, "TRADES", False, []),
        "reqHeadTimeStamp": (6, AsyncContract(**ES), "TRADES", False, 1),
        "reqHistogramData": (7, AsyncContract(**ES), False, "1 day"),
    }[call]
    getattr(client, call)(*args)
    (raw,) = sent
    broken = list(raw)
    broken[index] = bad
    with pytest.raises(WireError, match=problem):
        reader(_fields(broken))
    with pytest.raises(WireError, match="truncated"):
        reader(_fields(raw[:6]))


def test_malformed_pnl_and_chain_requests_are_wire_errors() -> None:
    with pytest.raises(WireError, match="not an integer"):
        inbound.read_pnl(_fields(["94", "8", "DU1234567", "", "ES"]), single=True)
    with pytest.raises(WireError, match="truncated"):
        inbound.read_pnl(_fields(["92", "9"]), single=False)
    with pytest.raises(WireError, match="not an integer"):
        inbound.read_sec_def_opt_params(_fields(["78", "x", "ES", "CME", "FUT", "1"]))


@pytest.mark.parametrize(
    "payload",
    [
        b"50\x003\x0011\x00",  # reqRealTimeBars cut after the reqId
        b"87\x00one\x00",  # reqHeadTimeStamp with a reqId that is not a number
        b"91\x00sixty-seven\x00",  # reqMarketRule
        b"94\x001\x00DU1234567\x00\x00ES\x00",  # reqPnLSingle with a conId that is no number
        b"81\x00",  # reqMatchingSymbols without its fields
    ],
    ids=["real-time-bars", "head-timestamp", "market-rule", "pnl-single", "matching-symbols"],
)
async def test_a_malformed_request_drops_only_that_client(
    make_gateway: GatewayFactory, payload: bytes
) -> None:
    gw = await make_gateway()
    good = IB()
    await good.connectAsync("127.0.0.1", gw.port, clientId=1, timeout=WAIT)
    try:
        reader, writer = await _raw_client(gw.port, 2)
        writer.write(_frame(payload))
        await writer.drain()
        async with asyncio.timeout(WAIT):
            while await reader.read(65536):
                pass  # the gateway closes the bad client's socket
        writer.close()
        assert good.isConnected()
        assert (await good.reqMarketRuleAsync(67)) is not None
    finally:
        good.disconnect()


async def test_values_tws_refuses_get_its_errors(make_gateway: GatewayFactory) -> None:
    gw = await make_gateway()
    ib = IB()
    await ib.connectAsync("127.0.0.1", gw.port, clientId=3, timeout=WAIT)
    try:
        contract = await front_month(ib)
        errors = collect_errors(ib)
        rt, what, histogram = (ib.client.getReqId() for _ in range(3))
        ib.client.reqRealTimeBars(rt, contract, 7, "TRADES", False, [])
        ib.client.reqRealTimeBars(what, contract, 5, "VOLUME", False, [])
        ib.client.reqHistogramData(histogram, contract, False, "forever")
        await until(ib, lambda: len(errors) >= 3)
        assert sorted(errors) == sorted([(rt, 420), (what, 420), (histogram, 321)])
        assert ib.isConnected()
    finally:
        ib.disconnect()
