"""The broker edge without a socket: one error router, and IB's order messages as typed events.

Messages are handed to a real ib_async `IB` the way its decoder does (`errorEvent`, the
wrapper's methods), so the taps, the routing and ib_async's own bookkeeping all run.
"""

from __future__ import annotations

from datetime import UTC, datetime

import structlog
from ib_async import IB, CommissionReport, Execution, Future, OrderState
from ib_async import Order as IbOrder

from daemon.broker import tws_errors
from daemon.broker.ib.client import IbClient
from daemon.core.gateway import CommissionReport as Commission
from daemon.core.gateway import (
    ExecutionReport,
    OrderError,
    OrderEvent,
    OrderReport,
    StatusReport,
)
from daemon.core.orders import OrderType, Side, Status

ES = Future("ES", "20261218", "CME", conId=2, localSymbol="ESZ6")


class Link:
    """A connection state machine that only writes down what it hears."""

    def __init__(self) -> None:
        self.messages: list[tuple[int, int, str]] = []
        self.errors: list[tuple[int, str]] = []
        self.lost = 0

    def on_link_message(self, req_id: int, code: int, message: str) -> None:
        self.messages.append((req_id, code, message))

    def on_link_error(self, code: int, message: str) -> None:
        self.errors.append((code, message))

    def on_link_lost(self) -> None:
        self.lost += 1

    def on_link_idle(self, idle: float) -> None:
        pass

    def on_frame_oversized(self, announced: int, limit: int) -> None:
        pass


def client_with_listeners() -> tuple[IbClient, Link, list[OrderEvent]]:
    client = IbClient(IB())
    link = Link()
    client.listen(link)
    events: list[OrderEvent] = []
    client.orders.listen(events.append)
    return client, link, events


# --- the error router ---


def test_each_code_goes_to_the_one_owner_of_its_req_id() -> None:
    client, link, events = client_with_listeners()
    owned: list[tuple[int, str]] = []
    client.errors.own(17, lambda code, message: owned.append((code, message)))
    emit = client.ib.errorEvent.emit
    with structlog.testing.capture_logs() as logs:
        emit(17, 10189, "no tick-by-tick", None)  # a subscription's
        emit(23, 201, "rejected: margin", None)  # any other id: an order's
        emit(-1, 2104, "farm ok", None)  # the connection's
        emit(-1, tws_errors.CLIENT_ID_IN_USE, "in use", None)
    assert owned == [(10189, "no tick-by-tick")]
    assert events == [OrderError(23, 201, "rejected: margin")]
    assert link.messages == [(-1, 2104, "farm ok"), (-1, 326, "in use")]
    # the status hears every serious code, whoever owns it; a farm notice is not one
    assert link.errors == [(10189, "no tick-by-tick"), (201, "rejected: margin"), (326, "in use")]
    # named once each, except the farm notice, which has an event of its own
    assert [(e["code"], e["req_id"]) for e in logs if e["event"] == "tws_message"] == [
        (10189, 17),
        (201, 23),
        (326, -1),
    ]


def test_a_closed_socket_forgets_every_req_id_in_one_reset() -> None:
    client, link, events = client_with_listeners()
    owned: list[int] = []
    client.errors.own(17, lambda code, _: owned.append(code))
    client.ib.disconnectedEvent.emit()
    assert link.lost == 1
    client.ib.errorEvent.emit(17, 10189, "late", None)
    assert owned == []
    assert events == [OrderError(17, 10189, "late")]  # no subscription owns 17 any more


def test_a_request_owner_disowns_its_req_id() -> None:
    client, _, events = client_with_listeners()
    owned: list[int] = []
    client.errors.own(5, lambda code, _: owned.append(code))
    client.errors.disown(5)
    client.ib.errorEvent.emit(5, 162, "pacing", None)
    assert owned == []
    assert events == [OrderError(5, 162, "pacing")]


# --- order messages as events ---


def ib_order(**fields: object) -> IbOrder:
    order = IbOrder(
        orderId=7, clientId=3, permId=9001, action="BUY", totalQuantity=2.0, orderType="LMT",
        lmtPrice=5000.25, tif="GTC", orderRef="ofd-1-P", ocaGroup="", parentId=0,
    )  # fmt: skip
    for name, value in fields.items():
        setattr(order, name, value)
    return order


def test_an_open_order_becomes_a_typed_report_and_ib_async_still_sees_it() -> None:
    client, _, events = client_with_listeners()
    client.ib.wrapper.openOrder(7, ES, ib_order(), OrderState(status="Submitted"))
    assert events == [
        OrderReport(
            client_id=3,
            order_id=7,
            perm_id=9001,
            ref="ofd-1-P",
            status=Status.SUBMITTED,
            action=Side.BUY,
            quantity=2.0,
            order_type=OrderType.LMT,
            lmt_price=5000.25,
            aux_price=None,
            tif="GTC",
            oca_group="",
            parent_id=0,
            filled=None,
        )
    ]
    assert [t.order.permId for t in client.ib.trades()] == [9001]


def test_words_the_edge_cannot_read_are_named_not_raised() -> None:
    client, _, events = client_with_listeners()
    wrapper = client.ib.wrapper
    wrapper.openOrder(7, ES, ib_order(action="SSHORT"), OrderState(status="Exploded"))
    wrapper.orderStatus(7, "Exploded", 0.0, 2.0, 0.0, 9001, 0, 0.0, 3, "")
    (report, status) = events
    assert isinstance(report, OrderReport)
    assert (report.status, report.action) == (None, None)
    assert report.problems == (("status", "Exploded"), ("action", "SSHORT"))
    assert status == StatusReport(3, 7, 9001, None, 0.0, 0.0, (("status", "Exploded"),))


def test_executions_and_commissions_carry_plain_values() -> None:
    client, _, events = client_with_listeners()
    when = datetime(2026, 11, 20, 14, 30, 5, tzinfo=UTC)
    execution = Execution(
        execId="e1", time=when, acctNumber="DU1234567", side="SLD", shares=2.0, price=5001.0,
        permId=9001, clientId=3, orderId=7, cumQty=2.0, avgPrice=5001.0, orderRef="ofd-1-T",
    )  # fmt: skip
    client.ib.wrapper.execDetails(-1, ES, execution)
    client.ib.wrapper.commissionReport(
        CommissionReport(execId="e1", commission=2.25, realizedPNL=1.7976931348623157e308)
    )
    assert events == [
        ExecutionReport(
            exec_id="e1",
            client_id=3,
            order_id=7,
            perm_id=9001,
            ref="ofd-1-T",
            side=Side.SELL,
            shares=2.0,
            price=5001.0,
            cum_qty=2.0,
            avg_price=5001.0,
            time=when.timestamp(),
            con_id=2,
            account="DU1234567",
        ),
        Commission("e1", 2.25, None),  # IB's unset realized PnL is not a number
    ]
    unread = Execution(execId="e2", side="XYZ", orderRef="ofd-1-T", permId=9001)
    client.ib.wrapper.execDetails(-1, ES, unread)
    assert isinstance(events[-1], ExecutionReport)
    assert (events[-1].side, events[-1].problems) == (None, (("side", "XYZ"),))
