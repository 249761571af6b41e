"""Every encoder, decoded back by ib_async at each layout-changing version and by ibapi at 157."""

from __future__ import annotations

import math
from datetime import datetime

import pytest

from ibsim.encoders import Encoder, Out, ib_time, negotiate
from ibsim.model import (
    Execution,
    FutureSpec,
    Order,
    OrderRequest,
    OrderStatus,
    OrderType,
    Position,
    Side,
)
from ibsim.wire import message
from tests.ibsim.decoding import decode_ib_async, decode_ibapi, drop_last_field

# 157 is the only version both clients accept; the others are where a layout changes.
ASYNC_VERSIONS = [157, 159, 160, 162, 164, 166, 169, 170, 176, 177, 178]

SPEC = FutureSpec(
    con_id=624542916,
    symbol="ES",
    local_symbol="ESZ6",
    expiry="20261218",
    contract_month="202612",
    last_trade_time="08:30",
    trading_hours="20261120:1700-20261121:1600;20261121:CLOSED",
    liquid_hours="20261120:0830-20261120:1600;20261121:CLOSED",
)


def _order(**kw: object) -> Order:
    req = OrderRequest(
        client_id=7,
        order_id=42,
        con_id=SPEC.con_id,
        action=Side.BUY,
        total_quantity=2,
        order_type=OrderType.LMT,
        lmt_price=5012.25,
        account="DU1234567",
        order_ref="intent-0001",
        parent_id=41,
    )
    fields: dict[str, object] = {"perm_id": 1987654321, "status": OrderStatus.SUBMITTED}
    fields.update(kw)
    return Order(request=req, **fields)  # type: ignore[arg-type]


EXEC = Execution(
    exec_id="0000e0d5.6543a1b2.01.01",
    time=datetime(2026, 11, 20, 15, 30, 5).timestamp(),
    client_id=7,
    order_id=42,
    perm_id=1987654321,
    con_id=SPEC.con_id,
    account="DU1234567",
    side=Side.SELL,
    shares=2,
    price=5012.25,
    cum_qty=2,
    avg_price=5012.25,
    order_ref="intent-0001",
    commission=4.5,
    realized_pnl=120.5,
    liquidity=2,
)


def _one(calls: list[tuple[str, tuple[object, ...]]], name: str) -> tuple[object, ...]:
    matching = [args for n, args in calls if n == name]
    assert len(matching) == 1, f"expected one {name} call, got {calls}"
    return matching[0]


def test_negotiate_picks_highest_common_and_skips_bad_versions() -> None:
    assert negotiate(157, 178) == 178
    assert negotiate(100, 157) == 157
    assert negotiate(157, 158) == 157
    assert negotiate(160, 163) == 162
    assert negotiate(100, 150) is None
    assert negotiate(157, 178, pinned=176) == 176
    assert negotiate(100, 157, pinned=176) is None
    assert negotiate(157, 178, pinned=158) is None


@pytest.mark.parametrize("sv", ASYNC_VERSIONS)
def test_contract_data_decodes_in_ib_async(sv: int) -> None:
    enc = Encoder(sv)
    data = enc.contract_data(5, SPEC) + enc.end(Out.CONTRACT_DATA_END, 5)
    calls = decode_ib_async(sv, data)
    req_id, cd = _one(calls, "contractDetails")
    assert req_id == 5
    c = cd.contract  # type: ignore[attr-defined]
    assert (c.conId, c.localSymbol, c.secType, c.exchange) == (SPEC.con_id, "ESZ6", "FUT", "CME")
    assert c.lastTradeDateOrContractMonth == "20261218"
    assert c.multiplier == "50"
    assert cd.minTick == 0.25  # type: ignore[attr-defined]
    assert cd.lastTradeTime == "08:30"  # type: ignore[attr-defined]
    assert cd.timeZoneId == "US/Central"  # type: ignore[attr-defined]
    assert cd.tradingHours == SPEC.trading_hours  # type: ignore[attr-defined]
    assert cd.liquidHours == SPEC.liquid_hours  # type: ignore[attr-defined]
    assert cd.contractMonth == "202612"  # type: ignore[attr-defined]
    assert cd.longName == "E-mini S&P 500"  # type: ignore[attr-defined]
    assert ("contractDetailsEnd", (5,)) in calls


@pytest.mark.parametrize("sv", ASYNC_VERSIONS)
@pytest.mark.parametrize("what_if", [False, True])
def test_open_order_decodes_in_ib_async(sv: int, what_if: bool) -> None:
    enc = Encoder(sv)
    order = _order()
    order.request.what_if = what_if
    frame = enc.open_order(SPEC, order, 12500.0 if what_if else None)
    order_id, contract, o, st = _one(decode_ib_async(sv, frame), "openOrder")
    assert order_id == 42
    assert contract.localSymbol == "ESZ6"  # type: ignore[attr-defined]
    assert (o.action, o.totalQuantity, o.orderType) == ("BUY", 2, "LMT")  # type: ignore[attr-defined]
    assert o.lmtPrice == 5012.25  # type: ignore[attr-defined]
    assert o.permId == 1987654321  # type: ignore[attr-defined]
    assert o.clientId == 7  # type: ignore[attr-defined]
    assert o.parentId == 41  # type: ignore[attr-defined]
    assert o.orderRef == "intent-0001"  # type: ignore[attr-defined]
    assert o.account == "DU1234567"  # type: ignore[attr-defined]
    assert st.status == "Submitted"  # type: ignore[attr-defined]
    assert o.whatIf is what_if  # type: ignore[attr-defined]
    if what_if:
        assert st.initMarginChange == "12500.00"  # type: ignore[attr-defined]
    # ib_async unpacks the tail exactly: one field short must break the decode
    assert decode_ib_async(sv, drop_last_field(frame)) == []


@pytest.mark.parametrize("sv", ASYNC_VERSIONS)
def test_completed_order_decodes_in_ib_async(sv: int) -> None:
    enc = Encoder(sv)
    order = _order(status=OrderStatus.FILLED, filled=2, completed_time=EXEC.time)
    frame = enc.completed_order(SPEC, order) + enc.completed_orders_end()
    calls = decode_ib_async(sv, frame)
    contract, o, st = _one(calls, "completedOrder")
    assert contract.conId == SPEC.con_id  # type: ignore[attr-defined]
    assert o.permId == 1987654321  # type: ignore[attr-defined]
    assert o.filledQuantity == 2  # type: ignore[attr-defined]
    assert st.status == "Filled"  # type: ignore[attr-defined]
    # in TWS's time zone, as a real gateway writes it ("20250708 02:34:46 America/New_York")
    assert st.completedTime == ib_time(EXEC.time)  # type: ignore[attr-defined]
    assert st.completedTime.endswith(" America/Chicago")  # type: ignore[attr-defined]
    assert o.parentPermId == 2**63 - 1  # type: ignore[attr-defined]
    assert ("completedOrdersEnd", ()) in calls
    assert decode_ib_async(sv, drop_last_field(enc.completed_order(SPEC, order))) == []


@pytest.mark.parametrize("sv", ASYNC_VERSIONS)
def test_execution_and_commission_decode_in_ib_async(sv: int) -> None:
    enc = Encoder(sv)
    data = enc.execution(-1, SPEC, EXEC) + enc.commission_report(EXEC)
    calls = decode_ib_async(sv, data)
    req_id, contract, ex = _one(calls, "execDetails")
    assert req_id == -1
    assert contract.localSymbol == "ESZ6"  # type: ignore[attr-defined]
    assert ex.execId == EXEC.exec_id  # type: ignore[attr-defined]
    assert (ex.side, ex.shares, ex.price) == ("SLD", 2, 5012.25)  # type: ignore[attr-defined]
    assert (ex.orderId, ex.permId, ex.clientId) == (42, 1987654321, 7)  # type: ignore[attr-defined]
    assert ex.orderRef == "intent-0001"  # type: ignore[attr-defined]
    assert ex.lastLiquidity == 2  # type: ignore[attr-defined]
    assert ex.time.timestamp() == EXEC.time  # type: ignore[attr-defined]
    (report,) = _one(calls, "commissionReport")
    assert report.execId == EXEC.exec_id  # type: ignore[attr-defined]
    assert report.commission == 4.5  # type: ignore[attr-defined]
    assert report.realizedPNL == 120.5  # type: ignore[attr-defined]


@pytest.mark.parametrize("sv", ASYNC_VERSIONS)
def test_error_message_layout_by_version(sv: int) -> None:
    enc = Encoder(sv)
    calls = decode_ib_async(sv, enc.error(42, 201, "Order rejected - reason: test"))
    args = _one(calls, "error")
    assert args[:3] == (42, 201, "Order rejected - reason: test")


@pytest.mark.parametrize("sv", [157, 178])
def test_market_data_messages_decode_in_ib_async(sv: int) -> None:
    enc = Encoder(sv)
    data = (
        enc.tick_req_params(3, 0.25, "CME")
        + enc.market_data_type(3, 1)
        + enc.tick_price(3, 1, 5012.25, 17, 0)
        + enc.tick_size(3, 8, 123456)
        + enc.tick_string(3, 48, "5012.5;3;1763739005123;123459;5011.98;true")
        + enc.tick_generic(3, 49, 0.0)
        + enc.tick_by_tick_last(4, 2, 1763739005, 5012.5, 3)
        + enc.tick_by_tick_bid_ask(5, 1763739005, 5012.25, 5012.5, 40, 55)
        + enc.tick_by_tick_midpoint(6, 1763739005, 5012.375)
        + enc.end(Out.TICK_SNAPSHOT_END, 3)
    )
    calls = decode_ib_async(sv, data)
    assert _one(calls, "tickReqParams") == (3, 0.25, "CME", 3)
    assert _one(calls, "marketDataType") == (3, 1)
    assert _one(calls, "priceSizeTick") == (3, 1, 5012.25, 17.0)
    assert _one(calls, "tickSize") == (3, 8, 123456.0)
    assert _one(calls, "tickString")[2].startswith("5012.5;3;")
    assert _one(calls, "tickGeneric") == (3, 49, 0.0)
    assert _one(calls, "tickByTickAllLast")[:5] == (4, 2, 1763739005, 5012.5, 3.0)
    assert _one(calls, "tickByTickBidAsk")[:6] == (5, 1763739005, 5012.25, 5012.5, 40.0, 55.0)
    assert _one(calls, "tickByTickMidPoint") == (6, 1763739005, 5012.375)
    assert _one(calls, "tickSnapshotEnd") == (3,)


def test_tick_price_and_tick_by_tick_have_exact_field_counts() -> None:
    enc = Encoder(178)
    for frame in (
        enc.tick_price(3, 1, 5012.25, 17, 0),
        enc.tick_by_tick_last(4, 2, 1763739005, 5012.5, 3),
        enc.tick_by_tick_bid_ask(5, 1763739005, 5012.25, 5012.5, 40, 55),
    ):
        assert decode_ib_async(178, frame) != []
        assert decode_ib_async(178, drop_last_field(frame)) == []


@pytest.mark.parametrize("sv", [157, 178])
def test_historical_messages_decode_in_ib_async(sv: int) -> None:
    enc = Encoder(sv)
    bars = [("20261120 08:30:00 US/Central", 5010.0, 5013.25, 5009.5, 5012.0, 1523, 5011.4, 311)]
    data = (
        enc.historical_data(8, "20261120 08:30:00", "20261120 08:31:00", bars)
        + enc.historical_ticks_last(9, [(1763739005, 5012.5, 3), (1763739006, 5012.25, 1)], True)
        + enc.historical_ticks_bid_ask(10, [(1763739005, 5012.25, 5012.5, 40, 55)], False)
        + enc.historical_ticks_midpoint(11, [(1763739005, 5012.375)], True)
    )
    calls = decode_ib_async(sv, data)
    req_id, bar = _one(calls, "historicalData")
    assert req_id == 8
    assert (bar.open, bar.high, bar.low, bar.close) == (5010.0, 5013.25, 5009.5, 5012.0)  # type: ignore[attr-defined]
    assert (bar.volume, bar.barCount) == (1523, 311)  # type: ignore[attr-defined]
    assert _one(calls, "historicalDataEnd")[0] == 8
    req_id, ticks, done = _one(calls, "historicalTicksLast")
    assert done is True
    assert [(t.price, t.size) for t in ticks] == [(5012.5, 3.0), (5012.25, 1.0)]  # type: ignore[attr-defined]
    req_id, ticks, done = _one(calls, "historicalTicksBidAsk")
    assert done is False
    tick = ticks[0]  # type: ignore[index]
    assert (tick.priceBid, tick.priceAsk, tick.sizeBid, tick.sizeAsk) == (5012.25, 5012.5, 40, 55)
    req_id, ticks, done = _one(calls, "historicalTicks")
    assert ticks[0].price == 5012.375  # type: ignore[index]


@pytest.mark.parametrize("sv", [157, 178])
def test_account_messages_decode_in_ib_async(sv: int) -> None:
    enc = Encoder(sv)
    pos = Position(account="DU1234567", con_id=SPEC.con_id, quantity=-2, avg_cost=250612.5)
    data = (
        enc.next_valid_id(101)
        + enc.managed_accounts(["DU1234567"])
        + enc.position(SPEC, pos)
        + enc.position_end()
        + enc.portfolio_value(SPEC, pos, 5010.0)
        + enc.account_value("NetLiquidation", "1000000.00", "USD", "DU1234567")
        + enc.account_update_time(1763739005)
        + enc.account_download_end("DU1234567")
        + enc.account_update_multi(12, "DU1234567", "NetLiquidation", "1000000.00", "USD")
        + enc.end(Out.ACCOUNT_UPDATE_MULTI_END, 12)
        + enc.account_summary(13, "DU1234567", "NetLiquidation", "1000000.00", "USD")
        + enc.end(Out.ACCOUNT_SUMMARY_END, 13)
        + enc.position_multi(14, SPEC, pos)
        + enc.end(Out.POSITION_MULTI_END, 14)
        + enc.order_status(_order(filled=1, avg_fill_price=5012.25, last_fill_price=5012.25))
        + enc.open_order_end()
        + enc.current_time(1763739005)
        + enc.end(Out.EXECUTION_DATA_END, 15)
    )
    calls = decode_ib_async(sv, data)
    assert _one(calls, "nextValidId") == (101,)
    assert _one(calls, "managedAccounts") == ("DU1234567",)
    account, contract, qty, avg = _one(calls, "position")
    assert (account, qty, avg) == ("DU1234567", -2.0, 250612.5)
    assert contract.localSymbol == "ESZ6"  # type: ignore[attr-defined]
    _c, position, mark, _value, _avg, unrealized, _realized, _acct = _one(calls, "updatePortfolio")
    assert (position, mark) == (-2.0, 5010.0)
    assert unrealized == pytest.approx(-2 * 5010.0 * 50 + 2 * 250612.5)
    assert _one(calls, "updateAccountValue") == ("NetLiquidation", "1000000.00", "USD", "DU1234567")
    assert _one(calls, "accountDownloadEnd") == ("DU1234567",)
    assert _one(calls, "accountUpdateMulti")[:4] == (12, "DU1234567", "", "NetLiquidation")
    assert _one(calls, "accountUpdateMultiEnd") == (12,)
    assert _one(calls, "accountSummary")[:3] == (13, "DU1234567", "NetLiquidation")
    assert _one(calls, "accountSummaryEnd") == (13,)
    pm = _one(calls, "positionMulti")
    assert pm[0] == 14
    assert -2.0 in pm
    status = _one(calls, "orderStatus")
    assert status[:5] == (42, "Submitted", 1.0, 1.0, 5012.25)
    assert status[5:9] == (1987654321, 41, 5012.25, 7)
    assert _one(calls, "currentTime") == (1763739005,)
    assert _one(calls, "execDetailsEnd") == (15,)
    assert ("openOrderEnd", ()) in calls
    assert ("positionEnd", ()) in calls


# --- ibapi 9.81 at 157: the reference client's decoders, incl. its strict int typing ---


def test_ibapi_decodes_orders_contracts_and_executions() -> None:
    enc = Encoder(157)
    order = _order()
    done = _order(status=OrderStatus.FILLED, filled=2, completed_time=EXEC.time)
    data = (
        enc.contract_data(5, SPEC)
        + enc.end(Out.CONTRACT_DATA_END, 5)
        + enc.open_order(SPEC, order, None)
        + enc.order_status(order)
        + enc.completed_order(SPEC, done)
        + enc.completed_orders_end()
        + enc.execution(-1, SPEC, EXEC)
        + enc.commission_report(EXEC)
        + enc.error(42, 202, "Order Canceled - reason:")
    )
    calls = decode_ibapi(157, data)
    req_id, cd = _one(calls, "contractDetails")
    assert cd.contract.localSymbol == "ESZ6"  # type: ignore[attr-defined]
    assert cd.tradingHours == SPEC.trading_hours  # type: ignore[attr-defined]
    assert cd.contract.lastTradeDateOrContractMonth == "20261218"  # type: ignore[attr-defined]
    assert cd.lastTradeTime == "08:30"  # type: ignore[attr-defined]
    assert _one(calls, "contractDetailsEnd") == (5,)
    order_id, _contract, o, st = _one(calls, "openOrder")
    assert (order_id, o.permId, o.parentId, o.lmtPrice) == (42, 1987654321, 41, 5012.25)  # type: ignore[attr-defined]
    assert st.status == "Submitted"  # type: ignore[attr-defined]
    assert _one(calls, "orderStatus")[:2] == (42, "Submitted")
    _c, o, st = _one(calls, "completedOrder")
    assert st.status == "Filled"  # type: ignore[attr-defined]
    assert ("completedOrdersEnd", ()) in calls
    req_id, _c, ex = _one(calls, "execDetails")
    assert (req_id, ex.execId, ex.shares, ex.side) == (-1, EXEC.exec_id, 2, "SLD")  # type: ignore[attr-defined]
    (report,) = _one(calls, "commissionReport")
    assert report.commission == 4.5  # type: ignore[attr-defined]
    assert _one(calls, "error")[:2] == (42, 202)


def test_ibapi_decodes_market_data_historical_and_account() -> None:
    enc = Encoder(157)
    pos = Position(account="DU1234567", con_id=SPEC.con_id, quantity=3, avg_cost=250612.5)
    bars = [("20261120 08:30:00", 5010.0, 5013.25, 5009.5, 5012.0, 1523, 5011.4, 311)]
    data = (
        enc.next_valid_id(101)
        + enc.managed_accounts(["DU1234567"])
        + enc.tick_req_params(3, 0.25, "CME")
        + enc.market_data_type(3, 1)
        + enc.tick_price(3, 1, 5012.25, 17, 0)
        + enc.tick_size(3, 8, 123456)
        + enc.tick_string(3, 48, "5012.5;3;1763739005123;123459;5011.98;true")
        + enc.tick_generic(3, 49, 0.0)
        + enc.tick_by_tick_last(4, 2, 1763739005, 5012.5, 3)
        + enc.tick_by_tick_bid_ask(5, 1763739005, 5012.25, 5012.5, 40, 55)
        + enc.historical_data(8, "20261120 08:30:00", "20261120 08:31:00", bars)
        + enc.historical_ticks_last(9, [(1763739005, 5012.5, 3)], True)
        + enc.historical_ticks_bid_ask(10, [(1763739005, 5012.25, 5012.5, 40, 55)], True)
        + enc.position(SPEC, pos)
        + enc.position_end()
        + enc.portfolio_value(SPEC, pos, 5010.0)
        + enc.account_value("NetLiquidation", "1000000.00", "USD", "DU1234567")
        + enc.account_download_end("DU1234567")
        + enc.current_time(1763739005)
        + enc.error(-1, 2104, "Market data farm connection is OK:usfarm")
    )
    calls = decode_ibapi(157, data)
    assert _one(calls, "nextValidId") == (101,)
    assert _one(calls, "managedAccounts") == ("DU1234567",)
    assert _one(calls, "tickPrice")[:3] == (3, 1, 5012.25)
    assert (3, 8, 123456) in [args for name, args in calls if name == "tickSize"]
    assert _one(calls, "tickGeneric") == (3, 49, 0.0)
    last = _one(calls, "tickByTickAllLast")
    assert last[:5] == (4, 2, 1763739005, 5012.5, 3)
    assert _one(calls, "tickByTickBidAsk")[:6] == (5, 1763739005, 5012.25, 5012.5, 40, 55)
    assert _one(calls, "historicalData")[1].barCount == 311  # type: ignore[attr-defined]
    assert _one(calls, "historicalTicksLast")[1][0].size == 3  # type: ignore[index]
    assert _one(calls, "historicalTicksBidAsk")[1][0].sizeAsk == 55  # type: ignore[index]
    assert _one(calls, "position")[2:] == (3.0, 250612.5)
    assert _one(calls, "updatePortfolio")[1] == 3.0
    assert _one(calls, "currentTime") == (1763739005,)
    assert _one(calls, "error")[:2] == (-1, 2104)


def test_fields_are_ascii_and_unset_markers_are_tws_text() -> None:
    enc = Encoder(178)
    frame = enc.error(-1, 2104, "Marktdaten-Farm OK: ünicode")
    assert frame.decode("ascii")  # no raw non-ASCII byte on the wire
    assert b"\\u00fc" in frame
    frame = enc.open_order(SPEC, _order(), None)
    assert b"1.7976931348623157E308" in frame
    assert math.isfinite(float(b"1.7976931348623157E308"))


@pytest.mark.parametrize(
    ("price", "size", "t"), [(5012.25, 3, 1763739005), (-1.0, 0, 0), (0.0, 1, 2**31 - 2)]
)
def test_tick_by_tick_fast_path_equals_the_generic_encoding(
    price: float, size: int, t: int
) -> None:
    enc = Encoder(178)
    assert enc.tick_by_tick_last(4, 2, t, price, size, 1) == message(
        Out.TICK_BY_TICK, 4, 2, t, price, size, 1, "CME", ""
    )
    assert enc.tick_by_tick_bid_ask(5, t, price, price + 0.25, size, size + 7) == message(
        Out.TICK_BY_TICK, 5, 3, t, price, price + 0.25, size, size + 7, 0
    )
