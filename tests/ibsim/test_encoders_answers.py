"""The answers' encoders, decoded back by ib_async and by ibapi 9.81 (at 157), and the order
values TWS writes (unused prices 0, parentPermId, completedTime)."""

from __future__ import annotations

import pytest

from ibsim.answers.encoding import SymbolSample
from ibsim.encoders import Encoder, ib_time
from ibsim.model import Order, OrderRequest, OrderStatus, OrderType, Side
from tests.ibsim.decoding import decode_ib_async, decode_ibapi
from tests.ibsim.test_encoders import SPEC

VERSIONS = [157, 176, 178]
ES_FAMILY = SymbolSample(11004968, "ES", "IND", "CME", "USD", ("FUT",), "E-mini S&P 500")


def _one(calls: list[tuple[str, tuple[object, ...]]], name: str) -> tuple[object, ...]:
    (args,) = [a for n, a in calls if n == name]
    return args


def _all_answers(enc: Encoder) -> bytes:
    return (
        enc.head_timestamp(3, "20261120 08:30:00 US/Central")
        + enc.market_rule(67, [(0.0, 0.25)])
        + enc.real_time_bar(4, 1795185005, 5000.0, 5001.25, 4999.75, 5001.0, 17, 5000.5, 9)
        + enc.historical_data_update(
            5, 12, "20261120 08:31:00 US/Central", 5000.0, 5001.0, 5001.25, 4999.75, 5000.4, 33
        )
        + enc.histogram_data(6, [(5000.0, 12), (5000.25, 7)])
        + enc.pnl(7, 170.5, 170.5, 0.0)
        + enc.pnl_single(8, -2, -34.0, 12.5, -46.5, -500200.0)
        + enc.symbol_samples(9, [ES_FAMILY])
        + enc.sec_def_opt_params_end(10)
        + enc.soft_dollar_tiers(11)
        + enc.family_codes([("DU1234567", "")])
        + enc.mkt_depth_exchanges()
        + enc.smart_components(12)
        + enc.news_providers()
        + enc.scanner_parameters("<ScanParameterResponse/>")
        + enc.scanner_data_empty(13)
        + enc.display_group_list(14, "1|2|3|4|5|6|7")
        + enc.display_group_updated(15, "624542916@CME")
        + enc.verify_completed(False, "no")
        + enc.verify_completed(False, "no", auth=True)
    )


@pytest.mark.parametrize("sv", VERSIONS)
def test_answers_decode_in_ib_async(sv: int) -> None:
    calls = decode_ib_async(sv, _all_answers(Encoder(sv)) + Encoder(sv).user_info(16, ""))
    assert _one(calls, "headTimestamp") == (3, "20261120 08:30:00 US/Central")
    (rule_id, increments) = _one(calls, "marketRule")
    assert rule_id == 67
    assert [(i.lowEdge, i.increment) for i in increments] == [(0.0, 0.25)]  # type: ignore[attr-defined]
    assert _one(calls, "realtimeBar") == (
        4, 1795185005, 5000.0, 5001.25, 4999.75, 5001.0, 17.0, 5000.5, 9
    )  # fmt: skip
    req_id, bar = _one(calls, "historicalDataUpdate")
    assert req_id == 5
    assert (bar.open, bar.high, bar.low, bar.close) == (5000.0, 5001.25, 4999.75, 5001.0)  # type: ignore[attr-defined]
    assert (bar.volume, bar.barCount, bar.average) == (33, 12, 5000.4)  # type: ignore[attr-defined]
    req_id, rows = _one(calls, "histogramData")
    assert [(r.price, r.count) for r in rows] == [(5000.0, 12), (5000.25, 7)]  # type: ignore[attr-defined]
    assert _one(calls, "pnl") == (7, 170.5, 170.5, 0.0)
    assert _one(calls, "pnlSingle") == (8, -2, -34.0, 12.5, -46.5, -500200.0)
    req_id, (found,) = _one(calls, "symbolSamples")  # type: ignore[misc]
    assert (found.contract.conId, found.contract.secType) == (11004968, "IND")  # type: ignore[attr-defined]
    assert found.derivativeSecTypes == ["FUT"]  # type: ignore[attr-defined]
    if sv >= 176:
        assert found.contract.description == "E-mini S&P 500"  # type: ignore[attr-defined]
    assert _one(calls, "securityDefinitionOptionParameterEnd") == (10,)
    assert _one(calls, "softDollarTiers") == (11, [])
    (codes,) = _one(calls, "familyCodes")
    assert [(c.accountID, c.familyCodeStr) for c in codes] == [("DU1234567", "")]  # type: ignore[attr-defined]
    assert _one(calls, "mktDepthExchanges") == ([],)
    assert _one(calls, "smartComponents") == (12, [])
    assert _one(calls, "newsProviders") == ([],)
    assert _one(calls, "scannerParameters") == ("<ScanParameterResponse/>",)
    assert _one(calls, "scannerDataEnd") == (13,)
    assert _one(calls, "displayGroupList") == (14, "1|2|3|4|5|6|7")
    assert _one(calls, "displayGroupUpdated") == (15, "624542916@CME")
    assert _one(calls, "verifyCompleted") == (False, "no")
    assert _one(calls, "verifyAndAuthCompleted") == (False, "no")
    assert _one(calls, "userInfo") == (16, "")


def test_answers_decode_in_ibapi() -> None:
    calls = decode_ibapi(157, _all_answers(Encoder(157)))
    assert _one(calls, "headTimestamp") == (3, "20261120 08:30:00 US/Central")
    rule_id, increments = _one(calls, "marketRule")
    assert (rule_id, [(i.lowEdge, i.increment) for i in increments]) == (67, [(0.0, 0.25)])  # type: ignore[attr-defined]
    assert _one(calls, "realtimeBar") == (
        4, 1795185005, 5000.0, 5001.25, 4999.75, 5001.0, 17, 5000.5, 9
    )  # fmt: skip
    req_id, bar = _one(calls, "historicalDataUpdate")
    assert req_id == 5
    assert (bar.close, bar.volume, bar.barCount) == (5001.0, 33, 12)  # type: ignore[attr-defined]
    _, rows = _one(calls, "histogramData")
    assert [(r.price, r.count) for r in rows] == [(5000.0, 12), (5000.25, 7)]  # type: ignore[attr-defined]
    assert _one(calls, "pnl") == (7, 170.5, 170.5, 0.0)
    assert _one(calls, "pnlSingle") == (8, -2, -34.0, 12.5, -46.5, -500200.0)
    _, (found,) = _one(calls, "symbolSamples")  # type: ignore[misc]
    assert (found.contract.symbol, found.derivativeSecTypes) == ("ES", ["FUT"])  # type: ignore[attr-defined]
    assert _one(calls, "securityDefinitionOptionParameterEnd") == (10,)
    assert _one(calls, "softDollarTiers") == (11, [])
    assert len(_one(calls, "familyCodes")[0]) == 1  # type: ignore[arg-type]
    assert _one(calls, "mktDepthExchanges") == ([],)
    assert _one(calls, "smartComponents") == (12, [])
    assert _one(calls, "newsProviders") == ([],)
    assert _one(calls, "scannerParameters") == ("<ScanParameterResponse/>",)
    assert _one(calls, "scannerDataEnd") == (13,)
    assert _one(calls, "displayGroupList") == (14, "1|2|3|4|5|6|7")
    assert _one(calls, "displayGroupUpdated") == (15, "624542916@CME")
    assert _one(calls, "verifyCompleted") == ("0", "no")  # ibapi passes the int text on
    assert _one(calls, "verifyAndAuthCompleted") == ("0", "no")


def _order(order_type: OrderType, lmt: float | None, aux: float | None) -> Order:
    req = OrderRequest(
        client_id=7, order_id=42, con_id=SPEC.con_id, action=Side.BUY, total_quantity=1,
        order_type=order_type, lmt_price=lmt, aux_price=aux, account="DU1234567",
    )  # fmt: skip
    return Order(
        request=req,
        perm_id=1987654321,
        status=OrderStatus.FILLED,
        filled=1,
        completed_time=1795185062.0,
    )


@pytest.mark.parametrize(
    ("order_type", "lmt", "aux"),
    [(OrderType.MKT, None, None), (OrderType.LMT, 5000.25, None), (OrderType.STP, None, 4990.0)],
)
def test_unused_prices_are_zero_as_tws_sends_them(
    order_type: OrderType, lmt: float | None, aux: float | None
) -> None:
    order = _order(order_type, lmt, aux)
    for sv in VERSIONS:
        enc = Encoder(sv)
        data = enc.open_order(SPEC, order, None) + enc.completed_order(SPEC, order)
        calls = decode_ib_async(sv, data)
        _, _, opened, _ = _one(calls, "openOrder")
        _, done, state = _one(calls, "completedOrder")
        for o in (opened, done):
            assert (o.lmtPrice, o.auxPrice) == (lmt or 0.0, aux or 0.0)  # type: ignore[attr-defined]
        assert done.parentPermId == 2**63 - 1  # type: ignore[attr-defined]
        assert state.completedTime == ib_time(1795185062.0)  # type: ignore[attr-defined]
        assert state.completedTime == "20261120 08:31:02 America/Chicago"  # type: ignore[attr-defined]
    enc = Encoder(157)
    calls = decode_ibapi(157, enc.open_order(SPEC, order, None) + enc.completed_order(SPEC, order))
    _, _, opened, _ = _one(calls, "openOrder")
    _, done, state = _one(calls, "completedOrder")
    assert (opened.lmtPrice, opened.auxPrice) == (lmt or 0.0, aux or 0.0)  # type: ignore[attr-defined]
    assert (done.lmtPrice, done.auxPrice) == (lmt or 0.0, aux or 0.0)  # type: ignore[attr-defined]
    assert done.parentPermId == 2**63 - 1  # type: ignore[attr-defined]
    assert state.completedTime == "20261120 08:31:02 America/Chicago"  # type: ignore[attr-defined]
