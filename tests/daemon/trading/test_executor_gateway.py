"""The executor against an `OrderGateway` of its own: what it sends, and what it makes of the
broker's events, including the ones the broker edge could not read."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import pytest

from daemon.core.gateway import (
    ExecutionReport,
    OrderError,
    OrderEvent,
    OrderGateway,
    OrderReport,
    StatusReport,
    Unreadable,
)
from daemon.core.orders import Order, OrderType, Side, Status
from daemon.settings import ExecutionSettings
from daemon.trading.execution import Executor, FillReport
from daemon.trading.journal import Journal
from daemon.trading.ownership import Ownership

T0 = 1_795_185_000.0
DAY = "2026-11-20"
INTENT = "ofd-20261120-0001"
CLIENT = 3


@dataclass
class Sent:
    order_id: int
    ref: str
    transmit: bool
    parent_order_id: int
    price: float | None


@dataclass
class PaperGateway:
    """Holds what it was sent; the test speaks for the broker through `say`."""

    client_id: int = CLIENT
    con_id: int = 495512563
    sent: list[Sent] = field(default_factory=list)
    cancelled: list[int] = field(default_factory=list)
    listener: Callable[[OrderEvent], None] | None = None
    _next: int = 100

    def next_order_id(self) -> int:
        self._next += 1
        return self._next

    def place(self, order: Order, *, transmit: bool, parent_order_id: int) -> None:
        self.sent.append(Sent(order.order_id, order.ref, transmit, parent_order_id, order.price))

    def modify(self, order: Order, *, parent_order_id: int = 0) -> None:
        self.place(order, transmit=True, parent_order_id=parent_order_id)

    def cancel(self, order: Order) -> None:
        self.cancelled.append(order.order_id)

    def listen(self, listener: Callable[[OrderEvent], None]) -> None:
        self.listener = listener

    def say(self, event: OrderEvent) -> None:
        assert self.listener is not None
        self.listener(event)


@dataclass
class Heard:
    fills: list[FillReport] = field(default_factory=list)
    rejects: list[tuple[str | None, int]] = field(default_factory=list)
    anomalies: list[tuple[str, str]] = field(default_factory=list)


@pytest.fixture
def journal(tmp_path: Path) -> Iterator[Journal]:
    with Journal(tmp_path / "journal.sqlite", synchronous="normal") as j:
        j.record_intent(
            INTENT, time=T0, day=DAY, target=1, entry="LMT", offset_ticks=0, stop_ticks=8,
            target_ticks=16, reason="test",
        )  # fmt: skip
        yield j


def executor(journal: Journal, gateway: OrderGateway, heard: Heard) -> Executor:
    return Executor(
        gateway,
        journal,
        ExecutionSettings(),
        on_fill=heard.fills.append,
        on_order=lambda rec, old: None,
        on_reject=lambda rec, code, _: heard.rejects.append((rec and rec.ref, code)),
        on_anomaly=lambda kind, _, detail: heard.anomalies.append((kind, detail)),
        on_journal_error=lambda exc: heard.anomalies.append(("journal", str(exc))),
        ownership=Ownership("ofd", (CLIENT,), lambda ref: journal.intent(ref) is not None),
        market_price=lambda: 5000.0,
        day_of=lambda _: DAY,
        wall=lambda: T0,
    )


def bracket(ex: Executor) -> list[Order]:
    return ex.send_bracket(INTENT, Side.BUY, 1, OrderType.LMT, 5000.0, 4998.0, 5004.0, T0)


def report(rec: Order, status: Status | None, **changes: Any) -> OrderReport:
    """The broker's open order for ``rec``."""
    said = OrderReport(
        client_id=CLIENT, order_id=rec.order_id, perm_id=0, ref=rec.ref, status=status,
        action=rec.action, quantity=float(rec.quantity), order_type=rec.order_type,
        lmt_price=rec.lmt_price, aux_price=rec.aux_price, tif=rec.tif, oca_group=rec.oca_group,
        parent_id=0, filled=None,
    )  # fmt: skip
    return replace(said, **changes)


def execution(rec: Order, **changes: Any) -> ExecutionReport:
    """An execution of one contract of ``rec`` at 5000."""
    said = ExecutionReport(
        exec_id="e1", client_id=CLIENT, order_id=rec.order_id, perm_id=9001, ref=rec.ref,
        side=rec.action, shares=1.0, price=5000.0, cum_qty=1.0, avg_price=5000.0, time=T0 + 1,
        con_id=2, account="DU1234567",
    )  # fmt: skip
    return replace(said, **changes)


def test_a_bracket_goes_out_journaled_and_only_its_last_order_transmits(
    journal: Journal,
) -> None:
    gateway, heard = PaperGateway(), Heard()
    ex = executor(journal, gateway, heard)
    parent, target, stop = bracket(ex)
    assert [(s.ref, s.transmit, s.parent_order_id) for s in gateway.sent] == [
        (parent.ref, False, 0),
        (target.ref, False, parent.order_id),
        (stop.ref, True, parent.order_id),
    ]
    assert {r.ref for r in journal.orders(live_only=True)} == {parent.ref, target.ref, stop.ref}
    ex.modify(target, lmt_price=5005.0)
    assert (gateway.sent[-1].ref, gateway.sent[-1].parent_order_id) == (target.ref, parent.order_id)
    assert ex.cancel(parent, "test")
    assert gateway.cancelled == [parent.order_id]
    assert ex.messages_sent == 5


def test_the_brokers_word_moves_the_order_and_journals_its_fill(journal: Journal) -> None:
    gateway, heard = PaperGateway(), Heard()
    ex = executor(journal, gateway, heard)
    parent, _, _ = bracket(ex)
    gateway.say(report(parent, Status.SUBMITTED, perm_id=9001))
    gateway.say(StatusReport(CLIENT, parent.order_id, 9001, Status.FILLED, 1.0, 5000.0))
    gateway.say(execution(parent))
    assert (parent.status, parent.perm_id, parent.filled) == (Status.FILLED, 9001, 1)
    assert [(f.exec_id, f.side, f.shares) for f in heard.fills] == [("e1", "BUY", 1)]
    assert heard.anomalies == []


def test_what_the_edge_could_not_read_about_our_order_is_an_anomaly(journal: Journal) -> None:
    gateway, heard = PaperGateway(), Heard()
    ex = executor(journal, gateway, heard)
    parent, _, _ = bracket(ex)
    # an unknown status word: the rest of the message still counts (the perm id is bound)
    gateway.say(report(parent, None, perm_id=9001, problems=(("status", "Exploded"),)))
    assert parent.perm_id == 9001
    assert parent.status is Status.JOURNALED
    gateway.say(execution(parent, side=None, problems=(("side", "XYZ"),)))
    gateway.say(Unreadable("openOrder", "ValueError('garbage')"))
    assert [kind for kind, _ in heard.anomalies] == ["message_failed"] * 3
    assert "status 'Exploded'" in heard.anomalies[0][1]
    assert "side 'XYZ'" in heard.anomalies[1][1]
    assert heard.fills == []
    assert journal.execution("e1") is None


def test_an_order_error_is_a_reject_until_the_broker_acknowledged_the_order(
    journal: Journal,
) -> None:
    gateway, heard = PaperGateway(), Heard()
    ex = executor(journal, gateway, heard)
    parent, target, _ = bracket(ex)
    gateway.say(OrderError(parent.order_id, 201, "rejected: margin"))
    assert parent.status is Status.INACTIVE
    gateway.say(report(target, Status.SUBMITTED, perm_id=9002))
    gateway.say(OrderError(target.order_id, 10148, "cannot cancel"))  # acknowledged: too late
    gateway.say(OrderError(999, 201, "not ours"))
    assert heard.rejects == [(parent.ref, 201)]
    assert target.status is Status.SUBMITTED
