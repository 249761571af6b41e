"""IB's unmodified reference client `ibapi` 9.81 against the simulated gateway.

ibapi is synchronous and threaded: `EClient.connect` does the handshake on the calling thread,
`EClient.run` is a blocking message loop (fed by ibapi's own `EReader` socket thread) and every
callback arrives on the loop thread. The gateway lives in the test's event loop, so every ibapi
call is made with `asyncio.to_thread`, and tests wait for callbacks on a `threading.Condition`
that each callback notifies. ibapi 9.81 asks for server versions 100..157, so the gateway
negotiates 157.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import math
import socket
import threading
from collections import defaultdict
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any, TypeVar

import pytest
from ibapi.client import EClient
from ibapi.commission_report import CommissionReport
from ibapi.common import TickAttribBidAsk, TickAttribLast
from ibapi.contract import Contract, ContractDetails
from ibapi.execution import Execution, ExecutionFilter
from ibapi.order import Order
from ibapi.order_state import OrderState
from ibapi.wrapper import EWrapper

from ibsim.gateway import Gateway
from ibsim.model import Side, TradeTick
from tests.ibsim.conftest import WAIT, GatewayFactory, quote, synthetic

T = TypeVar("T")
HOST = "127.0.0.1"
FARMS = {2104, 2106, 2158}


class App(EWrapper, EClient):
    """An ibapi client that records its callbacks; tests wait on them with `until`."""

    def __init__(self) -> None:
        EWrapper.__init__(self)
        EClient.__init__(self, wrapper=self)
        self.cond = threading.Condition()
        self._req_ids = itertools.count(9001)
        self.next_id: int | None = None
        self.accounts: str | None = None
        self.errors: list[tuple[int, int, str]] = []
        self.ends: set[tuple[str, int]] = set()  # (callback, reqId); reqId -1 when it has none
        self.details: dict[int, list[ContractDetails]] = defaultdict(list)
        self.times: list[int] = []
        self.last: dict[int, list[tuple[int, float, int]]] = defaultdict(list)
        self.bid_ask: dict[int, list[tuple[float, float, int, int]]] = defaultdict(list)
        self.statuses: dict[int, list[tuple[str, float, float, float]]] = defaultdict(list)
        self.open_orders: dict[int, Order] = {}
        self.execs: list[tuple[int, Execution]] = []
        self.commissions: dict[str, CommissionReport] = {}
        self.positions: list[tuple[str, int, float]] = []
        self.completed: list[tuple[Order, OrderState]] = []
        self.closed = False
        self.crash: BaseException | None = None
        self.ereader: threading.Thread | None = None
        self.loop_thread: threading.Thread | None = None

    # --- waiting ---

    @contextlib.contextmanager
    def _changing(self) -> Iterator[None]:
        with self.cond:
            yield
            self.cond.notify_all()

    def wait_for(self, predicate: Callable[[], T], timeout: float = WAIT) -> T:
        """Block until `predicate()` is truthy (re-checked after every callback); return it."""
        with self.cond:
            result = self.cond.wait_for(predicate, timeout)
        if not result:
            raise AssertionError(
                f"timed out after {timeout}s; errors={self.errors} closed={self.closed} "
                f"crash={self.crash!r}"
            )
        return result

    async def until(self, predicate: Callable[[], T], within: float = WAIT) -> T:
        """`wait_for` on a worker thread, so the gateway's event loop keeps running."""
        return await asyncio.to_thread(self.wait_for, predicate, within)

    def req_id(self) -> int:
        return next(self._req_ids)

    def status_of(self, order_id: int) -> str | None:
        seen = self.statuses.get(order_id)
        return seen[-1][0] if seen else None

    def fills(self, order_id: int, req_id: int = -1) -> list[Execution]:
        return [e for r, e in self.execs if r == req_id and e.orderId == order_id]

    # --- lifecycle (called from worker threads) ---

    def start(self) -> None:
        """After `connect`: run ibapi's message loop in a thread."""
        self.ereader = self.reader  # `disconnect` resets `reader`; keep it to join it later
        self.loop_thread = threading.Thread(target=self._loop, name="ibapi-run", daemon=True)
        self.loop_thread.start()

    def _loop(self) -> None:
        try:
            self.run()
        except BaseException as exc:  # a decode error escapes run(): record it for the test
            with self._changing():
                self.crash = exc

    def close(self) -> None:
        """Disconnect and join both ibapi threads."""
        conn = self.conn
        sock = conn.socket if conn is not None else None
        if sock is not None:
            # Wakes the EReader's blocking recv with EOF, so it exits now rather than after
            # its 1 s socket timeout (and never races `disconnect` on `conn.socket`).
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
        for thread in (self.ereader, self.loop_thread):
            if thread is not None:
                thread.join(WAIT)
                assert not thread.is_alive(), f"{thread.name} did not stop"
        self.disconnect()  # a no-op once run() has disconnected itself

    # --- EWrapper callbacks (ibapi's loop thread) ---

    def connectionClosed(self) -> None:
        with self._changing():
            self.closed = True

    def nextValidId(self, orderId: int) -> None:
        with self._changing():
            self.next_id = orderId

    def managedAccounts(self, accountsList: str) -> None:
        with self._changing():
            self.accounts = accountsList

    def error(self, reqId: int, errorCode: int, errorString: str) -> None:
        with self._changing():
            self.errors.append((reqId, errorCode, errorString))

    def currentTime(self, time: int) -> None:
        with self._changing():
            self.times.append(time)

    def contractDetails(self, reqId: int, contractDetails: ContractDetails) -> None:
        with self._changing():
            self.details[reqId].append(contractDetails)

    def contractDetailsEnd(self, reqId: int) -> None:
        with self._changing():
            self.ends.add(("contractDetails", reqId))

    def tickByTickAllLast(
        self,
        reqId: int,
        tickType: int,
        time: int,
        price: float,
        size: int,
        tickAttribLast: TickAttribLast,
        exchange: str,
        specialConditions: str,
    ) -> None:
        with self._changing():
            self.last[reqId].append((time, price, size))

    def tickByTickBidAsk(
        self,
        reqId: int,
        time: int,
        bidPrice: float,
        askPrice: float,
        bidSize: int,
        askSize: int,
        tickAttribBidAsk: TickAttribBidAsk,
    ) -> None:
        with self._changing():
            self.bid_ask[reqId].append((bidPrice, askPrice, bidSize, askSize))

    def orderStatus(
        self,
        orderId: int,
        status: str,
        filled: float,
        remaining: float,
        avgFillPrice: float,
        *args: Any,
    ) -> None:
        with self._changing():
            self.statuses[orderId].append((status, filled, remaining, avgFillPrice))

    def openOrder(
        self, orderId: int, contract: Contract, order: Order, orderState: OrderState
    ) -> None:
        with self._changing():
            self.open_orders[orderId] = order

    def openOrderEnd(self) -> None:
        with self._changing():
            self.ends.add(("openOrder", -1))

    def execDetails(self, reqId: int, contract: Contract, execution: Execution) -> None:
        with self._changing():
            self.execs.append((reqId, execution))

    def execDetailsEnd(self, reqId: int) -> None:
        with self._changing():
            self.ends.add(("execDetails", reqId))

    def commissionReport(self, commissionReport: CommissionReport) -> None:
        with self._changing():
            self.commissions[commissionReport.execId] = commissionReport

    def position(self, account: str, contract: Contract, position: float, avgCost: float) -> None:
        with self._changing():
            self.positions.append((account, contract.conId, position))

    def positionEnd(self) -> None:
        with self._changing():
            self.ends.add(("position", -1))

    def completedOrder(self, contract: Contract, order: Order, orderState: OrderState) -> None:
        with self._changing():
            self.completed.append((order, orderState))

    def completedOrdersEnd(self) -> None:
        with self._changing():
            self.ends.add(("completedOrders", -1))


Connect = Callable[..., Awaitable[App]]


@pytest.fixture
async def ibapi_connect() -> AsyncIterator[Connect]:
    """Connect ibapi clients; all are disconnected (threads joined) after the test.

    Fails the test if ibapi's loop crashed or ibapi logged an error (e.g. a message it dropped
    because its field count was wrong).
    """
    apps: list[App] = []
    logged: list[logging.LogRecord] = []
    handler = logging.Handler(logging.ERROR)
    handler.emit = logged.append  # type: ignore[method-assign]
    ibapi_log = logging.getLogger("ibapi")
    ibapi_log.addHandler(handler)

    async def _connect(gw: Gateway, client_id: int = 1, *, ready: bool = True) -> App:
        app = App()
        apps.append(app)
        await asyncio.to_thread(app.connect, HOST, gw.port, client_id)
        # not isConnected(): a rejected client may already have been closed by the gateway
        assert app.serverVersion() is not None, "handshake failed"
        app.start()
        if ready:
            await app.until(lambda: app.next_id is not None and app.accounts is not None)
        return app

    try:
        yield _connect
    finally:
        try:
            for app in apps:
                await asyncio.to_thread(app.close)
        finally:
            ibapi_log.removeHandler(handler)
    assert [a.crash for a in apps if a.crash is not None] == []
    assert [r.getMessage() for r in logged] == []


# --- helpers ---


def es_future(**fields: Any) -> Contract:
    c = Contract()
    c.symbol, c.secType, c.exchange, c.currency = "ES", "FUT", "CME", "USD"
    for name, value in fields.items():
        setattr(c, name, value)
    return c


def limit(action: str, qty: int, price: float, parent: int = 0, transmit: bool = True) -> Order:
    o = Order()
    o.action, o.totalQuantity, o.orderType, o.lmtPrice = action, qty, "LMT", price
    o.parentId, o.transmit = parent, transmit
    return o


def stop(action: str, qty: int, price: float, parent: int = 0, transmit: bool = True) -> Order:
    o = Order()
    o.action, o.totalQuantity, o.orderType, o.auxPrice = action, qty, "STP", price
    o.parentId, o.transmit = parent, transmit
    return o


def bracket(
    parent_id: int, qty: int, entry: float, take: float, stop_at: float
) -> list[tuple[int, Order]]:
    """BUY entry LMT, then SELL take-profit LMT and SELL STP; only the last transmits."""
    return [
        (parent_id, limit("BUY", qty, entry, transmit=False)),
        (parent_id + 1, limit("SELL", qty, take, parent=parent_id, transmit=False)),
        (parent_id + 2, stop("SELL", qty, stop_at, parent=parent_id)),
    ]


async def place(app: App, contract: Contract, orders: list[tuple[int, Order]]) -> None:
    def send() -> None:
        for order_id, order in orders:
            app.placeOrder(order_id, contract, order)

    await asyncio.to_thread(send)


async def front_month(app: App) -> Contract:
    req = app.req_id()
    await asyncio.to_thread(
        app.reqContractDetails, req, es_future(lastTradeDateOrContractMonth="202612")
    )
    await app.until(lambda: ("contractDetails", req) in app.ends)
    (details,) = app.details[req]
    return details.contract


async def gone_from_gateway(gw: Gateway, client_id: int) -> None:
    """Wait until the gateway has seen the client's socket close (its id is free again)."""
    async with asyncio.timeout(WAIT):
        while gw.session_of(client_id) is not None:
            await gw.session_ended.wait()


# --- tests ---


async def test_connect_negotiates_157_and_announces_farms(
    make_gateway: GatewayFactory, ibapi_connect: Connect
) -> None:
    gw = await make_gateway()
    app = await ibapi_connect(gw, 3)
    assert app.serverVersion() == 157
    assert app.twsConnectionTime()
    assert app.next_id is not None
    assert app.next_id > 0
    assert app.accounts == "DU1234567"
    farms = await app.until(
        lambda: {code for _, code, _ in app.errors} >= FARMS and list(app.errors)
    )
    assert {(req, code) for req, code, _ in farms} == {(-1, c) for c in FARMS}
    texts = {code: text for _, code, text in farms}
    assert texts[2104] == "Market data farm connection is OK:usfarm"
    assert texts[2106] == "HMDS data farm connection is OK:ushmds"
    assert texts[2158] == "Sec-def data farm connection is OK:secdefil"
    assert app.isConnected()


async def test_contract_details_list_four_expiries_and_unknown_symbol_gets_200(
    make_gateway: GatewayFactory, ibapi_connect: Connect
) -> None:
    gw = await make_gateway()
    app = await ibapi_connect(gw)
    req = app.req_id()
    await asyncio.to_thread(app.reqContractDetails, req, es_future())
    await app.until(lambda: ("contractDetails", req) in app.ends)
    details = app.details[req]
    assert [d.contract.localSymbol for d in details] == ["ESZ6", "ESH7", "ESM7", "ESU7"]
    expiries = [d.contract.lastTradeDateOrContractMonth for d in details]
    assert expiries == sorted(expiries)
    assert len({d.contract.conId for d in details}) == 4
    front = details[0]
    assert front.contract.conId == gw.front.con_id
    assert front.contract.multiplier == "50"
    assert front.contract.tradingClass == "ES"
    assert front.contractMonth == "202612"
    assert front.minTick == 0.25
    assert front.timeZoneId == "US/Central"
    assert front.tradingHours.startswith("20261119:1700-20261120:1600")
    assert front.liquidHours

    unknown = app.req_id()
    await asyncio.to_thread(app.reqContractDetails, unknown, es_future(symbol="NQX"))
    await asyncio.to_thread(app.reqCurrentTime)  # answered in order: a barrier after `unknown`
    await app.until(lambda: app.times)
    assert [(r, c) for r, c, _ in app.errors if c == 200] == [(unknown, 200)]
    assert ("contractDetails", unknown) not in app.ends
    assert unknown not in app.details


async def test_tick_by_tick_last_is_the_tape_and_bid_ask_is_never_crossed(
    make_gateway: GatewayFactory, ibapi_connect: Connect
) -> None:
    gw = await make_gateway(source=synthetic(), speed=2000.0)
    app = await ibapi_connect(gw)
    contract = await front_month(app)
    trades, quotes = app.req_id(), app.req_id()

    def subscribe() -> None:
        app.reqTickByTickData(trades, contract, "AllLast", 0, False)
        app.reqTickByTickData(quotes, contract, "BidAsk", 0, False)

    await asyncio.to_thread(subscribe)
    await app.until(lambda: len(app.last[trades]) >= 1000 and len(app.bid_ask[quotes]) >= 100)

    def unsubscribe() -> None:
        app.cancelTickByTickData(trades)
        app.cancelTickByTickData(quotes)

    await asyncio.to_thread(unsubscribe)
    with app.cond:
        received, book = list(app.last[trades]), list(app.bid_ask[quotes])

    assert all(type(size) is int and size > 0 for _, _, size in received)
    assert all(price % 0.25 == 0 for _, price, _ in received)
    # exactly a stretch of the gateway's tape: same times, prices and sizes, none missing
    tape = [(int(t.time), t.price, t.size) for t in gw.history.trades.between(0, math.inf)]
    starts = [i for i in range(len(tape)) if tape[i : i + len(received)] == received]
    assert starts, "tick-by-tick trades are not one contiguous stretch of the tape"

    assert all(bid < ask and bid_size > 0 and ask_size > 0 for bid, ask, bid_size, ask_size in book)
    assert all(bid % 0.25 == 0 and ask % 0.25 == 0 for bid, ask, _, _ in book)
    tops = [(q.bid, q.ask, q.bid_size, q.ask_size) for q in gw.history.quotes.between(0, math.inf)]
    assert any(tops[i : i + len(book)] == book for i in range(len(tops)))


async def test_bracket_parent_fills_then_take_profit_fills_and_stop_is_cancelled(
    make_gateway: GatewayFactory, ibapi_connect: Connect
) -> None:
    gw = await make_gateway()  # one quote: 5000.00 / 5000.25, 10 x 10
    app = await ibapi_connect(gw, 11)
    contract = await front_month(app)
    assert app.next_id is not None
    pid, tp, sl = app.next_id, app.next_id + 1, app.next_id + 2
    await place(app, contract, bracket(pid, 2, 5000.25, 5001.25, 4999.25))

    await app.until(
        lambda: (
            app.status_of(pid) == "Filled"
            and app.status_of(tp) == "Submitted"
            and app.status_of(sl) == "Submitted"
            and app.fills(pid)
        )
    )
    (entry,) = app.fills(pid)
    assert (entry.side, entry.shares, entry.price) == ("BOT", 2, 5000.25)
    assert entry.acctNumber == "DU1234567"
    assert app.statuses[pid][-1] == ("Filled", 2, 0, 5000.25)
    assert app.open_orders[tp].parentId == pid
    assert app.open_orders[sl].parentId == pid
    assert app.open_orders[sl].orderType == "STP"
    assert app.open_orders[sl].auxPrice == 4999.25

    gw.apply(quote(5001.25, 5001.5, bid_size=50))
    await app.until(
        lambda: (
            app.status_of(tp) == "Filled"
            and app.status_of(sl) == "Cancelled"
            and app.fills(tp)
            and app.fills(tp)[-1].execId in app.commissions
        )
    )
    (exit_fill,) = app.fills(tp)
    assert (exit_fill.side, exit_fill.shares, exit_fill.price) == ("SLD", 2, 5001.25)
    assert app.statuses[tp][-1] == ("Filled", 2, 0, 5001.25)
    report = app.commissions[exit_fill.execId]
    assert report.commission == pytest.approx(4.5)
    assert report.currency == "USD"
    assert report.realizedPNL > 0
    assert app.commissions[entry.execId].commission == pytest.approx(4.5)
    assert app.fills(sl) == []
    assert [c for _, c, _ in app.errors if c not in FARMS] == []


async def test_reconnect_reconciles_a_stop_filled_while_away(
    make_gateway: GatewayFactory, ibapi_connect: Connect
) -> None:
    gw = await make_gateway()
    app = await ibapi_connect(gw, 12)
    contract = await front_month(app)
    assert app.next_id is not None
    pid, tp, sl = app.next_id, app.next_id + 1, app.next_id + 2
    await place(app, contract, bracket(pid, 1, 5000.25, 5002.0, 4998.0))
    await app.until(
        lambda: (
            app.status_of(pid) == "Filled"
            and app.status_of(sl) == "Submitted"
            and app.status_of(tp) == "Submitted"
            and app.fills(pid)
        )
    )
    perm = {oid: app.open_orders[oid].permId for oid in (pid, tp, sl)}
    assert len(set(perm.values())) == 3
    (entry,) = app.fills(pid)
    await asyncio.to_thread(app.close)
    assert app.closed
    await gone_from_gateway(gw, 12)

    # while the client is away the market drops and the stop is elected and filled at the bid
    gw.apply(quote(4998.0, 4998.25))
    gw.apply(TradeTick(gw.clock.now(), 4998.0, 3, aggressor=Side.SELL))

    back = await ibapi_connect(gw, 12)
    assert back.next_id is not None
    assert back.next_id > sl  # ids already used are never handed out again
    await asyncio.to_thread(back.reqOpenOrders)
    await back.until(lambda: ("openOrder", -1) in back.ends)
    assert back.open_orders == {}  # the filled stop and the cancelled take-profit are not open

    req = back.req_id()
    await asyncio.to_thread(back.reqExecutions, req, ExecutionFilter())
    await back.until(lambda: ("execDetails", req) in back.ends)
    execs = [e for r, e in back.execs if r == req]
    assert [e.execId for e in execs if e.orderId == pid] == [entry.execId]
    (stopped,) = [e for e in execs if e.orderId == sl]
    assert (stopped.side, stopped.shares, stopped.permId) == ("SLD", 1, perm[sl])
    assert stopped.price == 4998.0
    assert len(execs) == 2
    assert {e.execId for e in execs} <= set(back.commissions)

    await asyncio.to_thread(back.reqPositions)
    await back.until(lambda: ("position", -1) in back.ends)
    assert back.positions == [("DU1234567", contract.conId, 0)]  # ibapi keeps flat positions

    await asyncio.to_thread(back.reqCompletedOrders, False)
    await back.until(lambda: ("completedOrders", -1) in back.ends)
    finished = {order.permId: state.status for order, state in back.completed}
    assert {oid: finished.get(p) for oid, p in perm.items()} == {
        pid: "Filled",
        tp: "Cancelled",
        sl: "Filled",
    }
    assert [c for _, c, _ in back.errors if c not in FARMS] == []


async def test_client_id_in_use_gets_326_and_the_socket_is_closed(
    make_gateway: GatewayFactory, ibapi_connect: Connect
) -> None:
    gw = await make_gateway()
    first = await ibapi_connect(gw, 21)
    second = await ibapi_connect(gw, 21, ready=False)
    await second.until(lambda: second.closed and any(c == 326 for _, c, _ in second.errors))
    ((req, code, text),) = second.errors
    assert (req, code) == (-1, 326)
    assert "client id is already in use" in text
    assert not second.isConnected()
    assert second.next_id is None
    assert second.accounts is None
    # the first client is untouched
    await asyncio.to_thread(first.reqCurrentTime)
    await first.until(lambda: first.times)
    assert first.isConnected()
    owner = gw.session_of(21)
    assert owner is not None
    assert not owner.closed
