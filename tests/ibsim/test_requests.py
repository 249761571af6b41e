"""Client→server parsing, fed with the exact bytes the real clients produce."""

from __future__ import annotations

from typing import Any

import pytest
from ib_async import Contract as AsyncContract
from ib_async import LimitOrder, MarketOrder, StopOrder
from ib_async.client import Client as AsyncClient
from ibapi.client import EClient
from ibapi.contract import Contract as IbapiContract
from ibapi.order import Order as IbapiOrder
from ibapi.wrapper import EWrapper

from ibsim.encoders import In
from ibsim.model import OrderType, Side
from ibsim.requests import (
    UnsupportedOrderError,
    read_expiry,
    read_mkt_data,
    read_place_order,
    read_tick_by_tick,
)
from ibsim.wire import Fields, WireError, split_fields

ES: dict[str, Any] = {
    "conId": 624542916,
    "symbol": "ES",
    "secType": "FUT",
    "lastTradeDateOrContractMonth": "20261218",
    "exchange": "CME",
    "currency": "USD",
    "localSymbol": "ESZ6",
}


def _async_client(sv: int) -> tuple[AsyncClient, list[list[str]]]:
    sent: list[list[str]] = []
    client = AsyncClient(None)  # type: ignore[arg-type]
    client._serverVersion = sv
    client.isConnected = lambda: True  # type: ignore[method-assign]
    client.sendMsg = lambda msg: sent.append(msg.split("\0")[:-1])  # type: ignore[method-assign]
    return client, sent


def _ibapi_client() -> tuple[EClient, list[list[str]]]:
    sent: list[list[str]] = []

    class Conn:
        def isConnected(self) -> bool:
            return True

        def sendMsg(self, msg: bytes) -> None:
            sent.append(split_fields(msg[4:]))

    client = EClient(EWrapper())
    client.conn = Conn()
    client.serverVersion_ = 157
    client.setConnState(EClient.CONNECTED)
    return client, sent


def _fields(raw: list[str]) -> Fields:
    f = Fields(raw, "test")
    f.text()  # message id
    return f


@pytest.mark.parametrize("sv", [157, 166, 170, 176, 177, 178])
@pytest.mark.parametrize(
    ("order", "kind"),
    [
        (MarketOrder("BUY", 2), OrderType.MKT),
        (LimitOrder("SELL", 1, 5012.25, orderRef="ref-1", transmit=False), OrderType.LMT),
        (StopOrder("SELL", 1, 5000.0, parentId=41, ocaGroup="g1", ocaType=1), OrderType.STP),
        (LimitOrder("BUY", 3, 5011.0, whatIf=True), OrderType.LMT),
    ],
)
def test_place_order_from_ib_async(sv: int, order: Any, kind: OrderType) -> None:
    client, sent = _async_client(sv)
    client.placeOrder(77, AsyncContract(**ES), order)
    (raw,) = sent
    assert int(raw[0]) == In.PLACE_ORDER
    f = _fields(raw)
    placed = read_place_order(f, sv)
    assert placed.order_id == 77
    assert placed.contract.con_id == ES["conId"]
    assert placed.contract.local_symbol == "ESZ6"
    assert placed.order_type is kind
    assert placed.action is Side(order.action)
    assert placed.total_quantity == order.totalQuantity
    assert placed.transmit is order.transmit
    assert placed.parent_id == order.parentId
    assert placed.order_ref == order.orderRef
    assert placed.oca_group == order.ocaGroup
    assert placed.what_if is order.whatIf
    if kind is OrderType.LMT:
        assert placed.lmt_price == order.lmtPrice
    else:
        assert placed.lmt_price is None
    if kind is OrderType.STP:
        assert placed.aux_price == order.auxPrice
        assert placed.oca_type == 1


def test_place_order_from_ibapi() -> None:
    client, sent = _ibapi_client()
    contract = IbapiContract()
    for key, value in ES.items():
        setattr(contract, key, value)
    order = IbapiOrder()
    order.action, order.orderType, order.totalQuantity = "SELL", "STP", 2
    order.auxPrice, order.parentId, order.transmit = 5001.5, 12, True
    order.whatIf = True
    client.placeOrder(13, contract, order)
    (raw,) = sent
    placed = read_place_order(_fields(raw), 157)
    assert (placed.order_id, placed.action, placed.order_type) == (13, Side.SELL, OrderType.STP)
    assert (placed.aux_price, placed.parent_id, placed.total_quantity) == (5001.5, 12, 2)
    assert placed.lmt_price is None  # ibapi sends UNSET_DOUBLE as text
    assert placed.what_if is True


def test_market_data_and_tick_by_tick_from_ib_async() -> None:
    client, sent = _async_client(178)
    client.reqMktData(5, AsyncContract(**ES), "233,236", False, False, [])
    client.reqTickByTickData(6, AsyncContract(**ES), "BidAsk", 0, False)
    mkt = read_mkt_data(_fields(sent[0]))
    assert (mkt.req_id, mkt.generic_ticks, mkt.snapshot) == (5, frozenset({"233", "236"}), False)
    tbt = read_tick_by_tick(_fields(sent[1]))
    assert (tbt.req_id, tbt.tick_type, tbt.contract.local_symbol) == (6, "BidAsk", "ESZ6")


def test_truncated_and_malformed_orders_name_the_problem() -> None:
    client, sent = _async_client(178)
    client.placeOrder(77, AsyncContract(**ES), MarketOrder("BUY", 2))
    raw = sent[0]
    with pytest.raises(WireError, match="truncated"):
        read_place_order(_fields(raw[:40]), 178)
    bad_qty = list(raw)
    bad_qty[17] = "two"
    with pytest.raises(WireError, match="'two' is not a number"):
        read_place_order(_fields(bad_qty), 178)
    bad_action = list(raw)
    bad_action[16] = "HOLD"
    with pytest.raises(WireError, match="HOLD"):
        read_place_order(_fields(bad_action), 178)
    bad_type = list(raw)
    bad_type[18] = "TRAIL MIT"
    with pytest.raises(UnsupportedOrderError, match="TRAIL MIT"):
        read_place_order(_fields(bad_type), 178)


def test_split_fields_rejects_unterminated_and_non_ascii() -> None:
    with pytest.raises(WireError, match="NUL"):
        split_fields(b"49\x001")
    with pytest.raises(WireError, match="non-ASCII"):
        split_fields(b"49\x00\xff\x00")


@pytest.mark.parametrize(
    ("sent", "read"),
    [
        ("20261218 08:30 US/Central", "20261218"),  # TWS's own CONTRACT_DATA form
        ("20261218 08:30:00 US/Central", "20261218"),
        ("20261218 08:30", "20261218"),
        ("20261218", "20261218"),
        ("202612", "202612"),
        ("", ""),
        ("20261218 tomorrow", "20261218 tomorrow"),  # anything else is left for the lookup
    ],
)
def test_last_trade_date_in_tws_own_form_reads_as_its_date(sent: str, read: str) -> None:
    """@stoqey/ib keeps lastTradeDateOrContractMonth unsplit and sends it back as it got it."""
    assert read_expiry(sent) == read
