"""Time in force and trailing fields in OPEN_ORDER and COMPLETED_ORDER, decoded by both clients."""

from __future__ import annotations

import pytest

from ibsim.encoders import Encoder
from ibsim.model import Order, OrderRequest, OrderStatus, OrderType, Side
from tests.ibsim.decoding import decode_ib_async, decode_ibapi
from tests.ibsim.test_encoders import ASYNC_VERSIONS, SPEC, _one

GTD = "20261120 15:00:00 US/Central"


def _trailing(kind: OrderType, status: OrderStatus = OrderStatus.SUBMITTED, **kw: object) -> Order:
    req = OrderRequest(
        client_id=7, order_id=43, con_id=SPEC.con_id, action=Side.SELL, total_quantity=1,
        order_type=kind, tif="GTD", good_till_date=GTD, account="DU1234567", **kw,  # type: ignore[arg-type]
    )  # fmt: skip
    return Order(request=req, perm_id=1987654322, status=status, trail_stop=5001.75)


@pytest.mark.parametrize("sv", ASYNC_VERSIONS)
def test_trail_limit_fields_decode_in_ib_async(sv: int) -> None:
    order = _trailing(OrderType.TRAIL_LIMIT, aux_price=1.25, lmt_price_offset=0.5)
    frame = Encoder(sv).open_order(SPEC, order, None)
    _oid, _c, o, _st = _one(decode_ib_async(sv, frame), "openOrder")
    assert (o.orderType, o.tif, o.goodTillDate) == ("TRAIL LIMIT", "GTD", GTD)  # type: ignore[attr-defined]
    assert (o.auxPrice, o.trailStopPrice, o.lmtPriceOffset) == (1.25, 5001.75, 0.5)  # type: ignore[attr-defined]

    done = _trailing(OrderType.TRAIL, OrderStatus.CANCELLED, trailing_percent=0.5)
    calls = decode_ib_async(sv, Encoder(sv).completed_order(SPEC, done))
    _c, o, st = _one(calls, "completedOrder")
    assert (o.orderType, o.goodTillDate, o.trailingPercent) == ("TRAIL", GTD, 0.5)  # type: ignore[attr-defined]
    assert o.trailStopPrice == 5001.75  # type: ignore[attr-defined]
    assert st.status == "Cancelled"  # type: ignore[attr-defined]


def test_trailing_fields_decode_in_ibapi() -> None:
    enc = Encoder(157)
    live = _trailing(OrderType.TRAIL, trailing_percent=0.5)
    done = _trailing(
        OrderType.TRAIL_LIMIT, OrderStatus.CANCELLED, aux_price=1.0, lmt_price_offset=0.25
    )
    calls = decode_ibapi(157, enc.open_order(SPEC, live, None) + enc.completed_order(SPEC, done))
    _oid, _c, o, _st = _one(calls, "openOrder")
    assert (o.orderType, o.tif, o.goodTillDate, o.trailingPercent) == ("TRAIL", "GTD", GTD, 0.5)  # type: ignore[attr-defined]
    assert o.trailStopPrice == 5001.75  # type: ignore[attr-defined]
    _c, o, st = _one(calls, "completedOrder")
    assert (o.orderType, o.lmtPriceOffset, o.trailStopPrice) == ("TRAIL LIMIT", 0.25, 5001.75)  # type: ignore[attr-defined]
    assert st.status == "Cancelled"  # type: ignore[attr-defined]
