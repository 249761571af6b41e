"""Conformance driver for IB's reference client, ibapi 9.81 (run in .venv).

Reads the spec of tests/conformance/flows.py on standard input and prints one JSON line per flow:
what ibapi's callbacks delivered. ibapi is threaded: `EClient.connect` does the handshake here,
`EClient.run` (a thread of its own) calls the EWrapper methods, each of which this driver
records in one log under a condition variable; the flows wait on that condition for the
callbacks they expect, each wait bounded by the spec's timeout. The driver observes; it judges
nothing.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import socket
import sys
import threading
import traceback
from collections.abc import Callable
from typing import Any, TypeVar

from ibapi.client import EClient
from ibapi.contract import Contract
from ibapi.execution import ExecutionFilter
from ibapi.order import Order
from ibapi.wrapper import EWrapper

T = TypeVar("T")
UNSET = 1e300  # IB's unset double is 1.7976931348623157e308
TICK_NAMES = {
    0: "bidSize",
    1: "bid",
    2: "ask",
    3: "askSize",
    4: "last",
    5: "lastSize",
    6: "high",
    7: "low",
    8: "volume",
    9: "close",
    14: "open",
}
RECORDED = (
    "nextValidId",
    "managedAccounts",
    "currentTime",
    "error",
    "connectionClosed",
    "contractDetails",
    "contractDetailsEnd",
    "tickPrice",
    "tickSize",
    "tickSnapshotEnd",
    "tickByTickAllLast",
    "tickByTickBidAsk",
    "historicalData",
    "historicalDataEnd",
    "historicalDataUpdate",
    "historicalTicksLast",
    "historicalTicksBidAsk",
    "headTimestamp",
    "histogramData",
    "marketRule",
    "realtimeBar",
    "symbolSamples",
    "familyCodes",
    "accountSummary",
    "accountSummaryEnd",
    "updateAccountValue",
    "accountDownloadEnd",
    "orderStatus",
    "openOrder",
    "openOrderEnd",
    "execDetails",
    "execDetailsEnd",
    "commissionReport",
    "position",
    "positionEnd",
    "pnl",
    "pnlSingle",
    "completedOrder",
    "completedOrdersEnd",
)


def num(x: Any) -> Any:
    if isinstance(x, float) and (x != x or abs(x) >= UNSET):
        return None
    return x


class App(EWrapper, EClient):
    """An ibapi client whose callbacks all land in `log` as (name, args)."""

    def __init__(self, timeout: float) -> None:
        EWrapper.__init__(self)
        EClient.__init__(self, wrapper=self)
        self.timeout = timeout
        self.cond = threading.Condition()
        self.log: list[tuple[str, tuple[Any, ...]]] = []
        self.threads: list[threading.Thread] = []
        self.crash: BaseException | None = None

    def record(self, name: str, args: tuple[Any, ...]) -> None:
        with self.cond:
            self.log.append((name, args))
            self.cond.notify_all()

    def wait(self, predicate: Callable[[], T], what: str) -> T:
        with self.cond:
            got = self.cond.wait_for(lambda: predicate() or self.crash, self.timeout)
        if self.crash is not None:
            raise RuntimeError(f"ibapi's message loop died: {self.crash!r}")
        if not got:
            raise TimeoutError(f"no {what} within {self.timeout}s")
        return got

    def calls(self, name: str) -> list[tuple[Any, ...]]:
        with self.cond:
            return [args for n, args in self.log if n == name]

    def mark(self) -> int:
        with self.cond:
            return len(self.log)

    def since(self, mark: int, name: str) -> list[tuple[Any, ...]]:
        with self.cond:
            return [args for n, args in self.log[mark:] if n == name]

    def closed(self) -> bool:
        return bool(self.calls("connectionClosed"))

    def errors(self, req_id: int | None = None) -> list[list[Any]]:
        return [[r, c] for r, c, *_ in self.calls("error") if req_id is None or r == req_id]

    # --- lifecycle ---

    def start(self) -> None:
        self.threads = [self.reader, threading.Thread(target=self._loop, daemon=True)]
        self.threads[1].start()

    def _loop(self) -> None:
        try:
            self.run()
        except BaseException as exc:  # a decode error escapes run(): fail the waits at once
            with self.cond:
                self.crash = exc
                self.cond.notify_all()

    def close(self) -> None:
        conn = self.conn
        sock = conn.socket if conn is not None else None
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)  # EOF now, not after the reader's 1 s timeout
        for thread in self.threads:
            if thread is not None and thread.is_alive():
                thread.join(self.timeout)
        self.disconnect()


def _recorder(name: str) -> Callable[..., None]:
    def callback(self: App, *args: Any) -> None:
        self.record(name, args)

    callback.__name__ = name
    return callback


for _name in RECORDED:
    setattr(App, _name, _recorder(_name))


def contract_of(fields: dict[str, Any]) -> Contract:
    c = Contract()
    for key, value in fields.items():
        setattr(c, key, value)
    return c


def order_of(action: str, kind: str, qty: int, **fields: Any) -> Order:
    o = Order()
    o.action, o.orderType, o.totalQuantity = action, kind, qty
    for key, value in fields.items():
        setattr(o, key, value)
    return o


def bar_of(bar: Any) -> dict[str, Any]:
    return {
        "time": int(bar.date),
        "open": bar.open,
        "high": bar.high,
        "low": bar.low,
        "close": bar.close,
        "volume": bar.volume,
    }


class Driver:
    def __init__(self, spec: dict[str, Any]) -> None:
        self.spec = spec
        self.timeout: float = spec["timeout"]
        self.tick: float = spec["tick"]
        self.account: str = spec["account"]
        self.req_ids = itertools.count(1000)
        self.app: App = App(self.timeout)
        self.front: Contract | None = None
        self.next_order = 0
        self.state: dict[str, Any] = {}

    # --- plumbing ---

    def connect(self, client_id: int) -> App:
        app = App(self.timeout)
        app.connect(self.spec["host"], self.spec["port"], client_id)
        if not app.isConnected():
            raise ConnectionError("ibapi could not connect")
        app.start()
        return app

    def open(self, client_id: int) -> App:
        """Connect and wait for the start of the API (nextValidId), as an ibapi program does."""
        app = self.connect(client_id)
        app.wait(lambda: app.calls("nextValidId") or app.closed(), "nextValidId")
        self.app = app
        self.next_order = app.calls("nextValidId")[-1][0] if app.calls("nextValidId") else 0
        return app

    def req_id(self) -> int:
        return next(self.req_ids)

    def order_id(self) -> int:
        oid = self.next_order
        self.next_order += 1
        return oid

    def bid(self) -> float:
        return float(self.snapshot()["bid"])

    def snapshot(self) -> dict[str, float]:
        app, rid = self.app, self.req_id()
        app.reqMktData(rid, self.front, "", True, False, [])
        app.wait(lambda: [a for a in app.calls("tickSnapshotEnd") if a[0] == rid], "snapshot")
        ticks: dict[str, float] = {}
        for name in ("tickPrice", "tickSize"):
            for r, tick_type, value, *_ in app.calls(name):
                if r == rid and tick_type in TICK_NAMES:
                    ticks[TICK_NAMES[tick_type]] = float(value)
        return ticks

    def price(self, bid: float, offset: int) -> float:
        return round(bid + offset * self.tick, 2)

    def place(self, order: Order) -> int:
        oid = self.order_id()
        self.app.placeOrder(oid, self.front, order)
        return oid

    def status(self, oid: int) -> str | None:
        seen = [a for a in self.app.calls("orderStatus") if a[0] == oid]
        return seen[-1][1] if seen else None

    def wait_status(self, oid: int, *wanted: str) -> str:
        return self.app.wait(
            lambda: self.status(oid) if self.status(oid) in wanted else None,
            f"order {oid} {wanted}",
        )

    def perm_id(self, oid: int) -> int:
        for args in self.app.calls("orderStatus"):
            if args[0] == oid and args[5]:
                return int(args[5])
        raise LookupError(f"no permId for order {oid}")

    def end(self, name: str, rid: int | None = None) -> None:
        app = self.app
        if rid is None:
            mark = app.mark()
            app.wait(lambda: app.since(mark, name), name)
        else:
            app.wait(lambda: [a for a in app.calls(name) if a[0] == rid], f"{name} {rid}")

    # --- flows ---

    def flow_connect(self, p: dict[str, Any]) -> dict[str, Any]:
        app = self.open(p["client_id"])
        first_id = self.next_order
        app.wait(lambda: app.calls("managedAccounts"), "managedAccounts")
        accounts = app.calls("managedAccounts")[0][0].split(",")
        mark = app.mark()
        app.reqManagedAccts()
        app.reqIds(-1)
        app.reqCurrentTime()
        app.wait(lambda: app.since(mark, "managedAccounts"), "managedAccounts")
        app.wait(lambda: app.since(mark, "nextValidId"), "nextValidId")
        now = app.wait(lambda: app.since(mark, "currentTime"), "currentTime")[0][0]
        return {
            "server_version": app.serverVersion(),
            "next_valid_id": first_id,
            "accounts": accounts,
            "managed_accounts": app.since(mark, "managedAccounts")[0][0].split(","),
            "req_ids_next": app.since(mark, "nextValidId")[-1][0],
            "farm_codes": sorted({c for _, c in app.errors() if 2100 <= c < 2200}),
            "current_time": now,
        }

    def flow_contract_details(self, p: dict[str, Any]) -> dict[str, Any]:
        rid = self.req_id()
        self.app.reqContractDetails(rid, contract_of(p["contract"]))
        self.end("contractDetailsEnd", rid)
        details = [d for r, d in self.app.calls("contractDetails") if r == rid]
        self.front = details[0].contract
        out = []
        for d in details:
            c = d.contract
            out.append(
                {
                    "symbol": c.symbol,
                    "secType": c.secType,
                    "exchange": c.exchange,
                    "currency": c.currency,
                    "localSymbol": c.localSymbol,
                    "lastTradeDate": c.lastTradeDateOrContractMonth,
                    "conId": c.conId,
                    "multiplier": c.multiplier,
                    "tradingClass": c.tradingClass,
                    "minTick": d.minTick,
                    "timeZoneId": d.timeZoneId,
                    "tradingHours": d.tradingHours,
                    "liquidHours": d.liquidHours,
                    "marketRuleIds": d.marketRuleIds,
                    "longName": d.longName,
                    "orderTypes": d.orderTypes,
                }
            )
        return {"details": out}

    def flow_unknown_contract(self, p: dict[str, Any]) -> dict[str, Any]:
        app, contract = self.app, contract_of(p["contract"])
        details_rid, bars_rid = self.req_id(), self.req_id()
        app.reqContractDetails(details_rid, contract)
        app.reqHistoricalData(bars_rid, contract, "", "60 S", "1 min", "TRADES", 0, 2, False, [])
        for rid in (details_rid, bars_rid):
            app.wait(lambda rid=rid: app.errors(rid), f"an error for {rid}")
        return {
            "details": [str(d) for r, d in app.calls("contractDetails") if r == details_rid],
            "bars": [bar_of(b) for r, b in app.calls("historicalData") if r == bars_rid],
            "details_req_id": details_rid,
            "bars_req_id": bars_rid,
            "errors": app.errors(details_rid) + app.errors(bars_rid),
        }

    def flow_snapshot(self, p: dict[str, Any]) -> dict[str, Any]:
        return {"ticks": self.snapshot(), "snapshot_end": True}

    def _tick_by_tick(self, kind: str, callback: str, count: int) -> list[tuple[Any, ...]]:
        app, rid = self.app, self.req_id()
        app.reqTickByTickData(rid, self.front, kind, 0, False)
        try:
            app.wait(lambda: len([a for a in app.calls(callback) if a[0] == rid]) >= count, kind)
        finally:
            app.cancelTickByTickData(rid)
        return [a for a in app.calls(callback) if a[0] == rid]

    def flow_tick_by_tick(self, p: dict[str, Any]) -> dict[str, Any]:
        n = p["count"]
        last = self._tick_by_tick("AllLast", "tickByTickAllLast", n)
        quotes = self._tick_by_tick("BidAsk", "tickByTickBidAsk", n)
        return {
            "count": n,
            "all_last": [{"time": a[2], "price": a[3], "size": a[4]} for a in last],
            "bid_ask": [
                {"time": a[1], "bid": a[2], "ask": a[3], "bidSize": a[4], "askSize": a[5]}
                for a in quotes
            ],
        }

    def flow_historical_bars(self, p: dict[str, Any]) -> dict[str, Any]:
        app = self.app
        args = (p["duration"], p["bar_size"], p["what"], 0, 2)
        rid, live = self.req_id(), self.req_id()
        app.reqHistoricalData(rid, self.front, "", *args, False, [])
        self.end("historicalDataEnd", rid)
        app.reqHistoricalData(live, self.front, "", *args, True, [])
        self.end("historicalDataEnd", live)
        try:
            app.wait(
                lambda: [a for a in app.calls("historicalDataUpdate") if a[0] == live],
                "historicalDataUpdate",
            )
        finally:
            app.cancelHistoricalData(live)
        update = next(b for r, b in app.calls("historicalDataUpdate") if r == live)
        return {
            "bars": [bar_of(b) for r, b in app.calls("historicalData") if r == rid],
            "keep_up_to_date": {
                "bars": [bar_of(b) for r, b in app.calls("historicalData") if r == live],
                "update": bar_of(update),
            },
        }

    def _historical_ticks(self, p: dict[str, Any], what: str, callback: str) -> list[Any]:
        app, rid = self.app, self.req_id()
        app.reqHistoricalTicks(rid, self.front, p["start"], "", p["count"], what, 0, True, [])
        app.wait(lambda: [a for a in app.calls(callback) if a[0] == rid and a[2]], what)
        return [t for r, ticks, _ in app.calls(callback) if r == rid for t in ticks]

    def flow_historical_ticks(self, p: dict[str, Any]) -> dict[str, Any]:
        trades = self._historical_ticks(p, "TRADES", "historicalTicksLast")
        quotes = self._historical_ticks(p, "BID_ASK", "historicalTicksBidAsk")
        return {
            "count": p["count"],
            "trades": [{"time": t.time, "price": t.price, "size": t.size} for t in trades],
            "bid_ask": [
                {
                    "time": t.time,
                    "bid": t.priceBid,
                    "ask": t.priceAsk,
                    "bidSize": t.sizeBid,
                    "askSize": t.sizeAsk,
                }
                for t in quotes
            ],
        }

    def flow_head_timestamp(self, p: dict[str, Any]) -> dict[str, Any]:
        app, rid = self.app, self.req_id()
        app.reqHeadTimeStamp(rid, self.front, p["what"], 0, 2)
        self.end("headTimestamp", rid)
        return {"head": int(next(h for r, h in app.calls("headTimestamp") if r == rid))}

    def flow_histogram(self, p: dict[str, Any]) -> dict[str, Any]:
        app, rid = self.app, self.req_id()
        app.reqHistogramData(rid, self.front, False, p["period"])
        self.end("histogramData", rid)
        rows = next(items for r, items in app.calls("histogramData") if r == rid)
        return {"rows": [{"price": x.price, "size": x.count} for x in rows]}

    def flow_market_rule(self, p: dict[str, Any]) -> dict[str, Any]:
        self.app.reqMarketRule(p["rule_id"])
        self.end("marketRule", p["rule_id"])
        rule = next(inc for r, inc in self.app.calls("marketRule") if r == p["rule_id"])
        return {"increments": [{"lowEdge": x.lowEdge, "increment": x.increment} for x in rule]}

    def flow_realtime_bars(self, p: dict[str, Any]) -> dict[str, Any]:
        app, rid = self.app, self.req_id()
        app.reqRealTimeBars(rid, self.front, 5, "TRADES", False, [])

        def bars() -> list[tuple[Any, ...]]:
            return [a for a in app.calls("realtimeBar") if a[0] == rid]

        try:
            app.wait(lambda: len(bars()) >= p["count"], "realtimeBar")
        finally:
            app.cancelRealTimeBars(rid)
        return {
            "count": p["count"],
            "bars": [
                {"time": t, "open": o, "high": h, "low": lo, "close": c, "volume": v}
                for _, t, o, h, lo, c, v, *_ in bars()
            ],
        }

    def flow_matching_symbols(self, p: dict[str, Any]) -> dict[str, Any]:
        app, rid = self.app, self.req_id()
        app.reqMatchingSymbols(rid, p["pattern"])
        self.end("symbolSamples", rid)
        found = next(d for r, d in app.calls("symbolSamples") if r == rid)
        return {
            "matching": [
                {
                    "symbol": d.contract.symbol,
                    "secType": d.contract.secType,
                    "primaryExchange": d.contract.primaryExchange,
                    "conId": d.contract.conId,
                    "derivativeSecTypes": list(d.derivativeSecTypes),
                }
                for d in found
            ]
        }

    def flow_family_codes(self, p: dict[str, Any]) -> dict[str, Any]:
        mark = self.app.mark()
        self.app.reqFamilyCodes()
        self.app.wait(lambda: self.app.since(mark, "familyCodes"), "familyCodes")
        (codes,) = self.app.since(mark, "familyCodes")[0]
        return {
            "family_codes": [
                {"accountID": f.accountID, "familyCode": f.familyCodeStr} for f in codes
            ]
        }

    def flow_user_info(self, p: dict[str, Any]) -> dict[str, Any]:
        return {"unsupported": "ibapi 9.81 has no reqUserInfo"}

    def flow_account(self, p: dict[str, Any]) -> dict[str, Any]:
        app, rid = self.app, self.req_id()
        app.reqAccountSummary(rid, "All", p["tags"])
        self.end("accountSummaryEnd", rid)
        app.cancelAccountSummary(rid)
        mark = app.mark()
        app.reqAccountUpdates(True, self.account)
        app.wait(lambda: app.since(mark, "accountDownloadEnd"), "accountDownloadEnd")
        app.reqAccountUpdates(False, self.account)
        return {
            "summary": [
                {"account": a, "tag": t, "value": v, "currency": c}
                for r, a, t, v, c in app.calls("accountSummary")
                if r == rid
            ],
            "updates": [
                {"key": k, "value": v, "currency": c}
                for k, v, c, _ in app.since(mark, "updateAccountValue")
            ],
            "download_end": app.since(mark, "accountDownloadEnd")[0][0],
        }

    def flow_bracket(self, p: dict[str, Any]) -> dict[str, Any]:
        app, qty = self.app, p["qty"]
        bid = self.bid()
        target_price = self.price(bid, p["target_offset"])
        mark = app.mark()
        ids = {"parent": self.place(order_of("BUY", "MKT", qty, transmit=False))}
        parent = ids["parent"]
        target = order_of("SELL", "LMT", qty, lmtPrice=target_price, parentId=parent)
        target.transmit = False
        ids["target"] = self.place(target)
        stop_price = self.price(bid, p["stop_offset"])
        ids["stop"] = self.place(order_of("SELL", "STP", qty, auxPrice=stop_price, parentId=parent))
        self.wait_status(ids["parent"], "Filled")
        self.wait_status(ids["target"], "Filled")
        self.wait_status(ids["stop"], "Cancelled")

        def live_fills() -> list[Any]:
            return [e for r, _, e in app.since(mark, "execDetails") if r == -1]

        def reports() -> list[Any]:
            return [c for (c,) in app.since(mark, "commissionReport")]

        app.wait(lambda: len(live_fills()) == 2 and len(reports()) == 2, "2 fills + reports")
        fills, commissions = live_fills(), reports()  # reqExecutions sends the reports again
        rid = self.req_id()
        filt = ExecutionFilter()
        filt.clientId = 1
        app.reqExecutions(rid, filt)
        self.end("execDetailsEnd", rid)
        self.state["bracket_parent"] = parent
        return {
            "qty": qty,
            "target_price": target_price,
            "ids": ids,
            "perm_ids": {k: self.perm_id(oid) for k, oid in ids.items()},
            "status": {k: self.status(oid) for k, oid in ids.items()},
            "executions": [
                {
                    "orderId": e.orderId,
                    "execId": e.execId,
                    "side": e.side,
                    "shares": e.shares,
                    "price": e.price,
                    "account": e.acctNumber,
                }
                for e in fills
            ],
            "commissions": [
                {
                    "execId": c.execId,
                    "commission": c.commission,
                    "currency": c.currency,
                    "realizedPNL": num(c.realizedPNL),
                }
                for c in commissions
            ],
            "req_executions": [
                {"execId": e.execId} for r, _, e in app.calls("execDetails") if r == rid
            ],
        }

    def flow_cancel_filled(self, p: dict[str, Any]) -> dict[str, Any]:
        oid = self.state["bracket_parent"]
        self.app.cancelOrder(oid)
        self.app.wait(lambda: [1 for _, c in self.app.errors(oid) if c == 10148], "10148")
        return {"order_id": oid, "errors": self.app.errors(oid), "status": self.status(oid)}

    def flow_ioc(self, p: dict[str, Any]) -> dict[str, Any]:
        price = self.price(self.bid(), p["offset"])
        oid = self.place(order_of("BUY", "LMT", 1, lmtPrice=price, tif="IOC"))
        self.wait_status(oid, "Cancelled", "Filled")
        last = [a for a in self.app.calls("orderStatus") if a[0] == oid][-1]
        fills = [e for _, _, e in self.app.calls("execDetails") if e.orderId == oid]
        return {"status": last[1], "filled": last[2], "fills": len(fills)}

    def flow_cancel(self, p: dict[str, Any]) -> dict[str, Any]:
        price = self.price(self.bid(), p["offset"])
        oid = self.place(order_of("BUY", "LMT", 1, lmtPrice=price))
        before = self.wait_status(oid, "Submitted")
        self.app.cancelOrder(oid)
        self.wait_status(oid, "Cancelled")
        self.app.wait(lambda: [1 for _, c in self.app.errors(oid) if c == 202], "202")
        return {
            "order_id": oid,
            "status_before": before,
            "status": self.status(oid),
            "errors": self.app.errors(oid),
        }

    def _open_order_price(self, oid: int, since: int) -> float | None:
        seen = [o.lmtPrice for i, _, o, _ in self.app.since(since, "openOrder") if i == oid]
        return seen[-1] if seen else None

    def flow_modify(self, p: dict[str, Any]) -> dict[str, Any]:
        app, bid = self.app, self.bid()
        order = order_of("BUY", "LMT", 1, lmtPrice=self.price(bid, p["offset"]))
        oid = self.place(order)
        self.wait_status(oid, "Submitted")
        lmt_before, perm_before = self._open_order_price(oid, 0), self.perm_id(oid)
        new_price = self.price(bid, p["new_offset"])
        order.lmtPrice = new_price
        mark = app.mark()
        app.placeOrder(oid, self.front, order)
        app.wait(lambda: self._open_order_price(oid, mark) is not None, "openOrder")
        lmt_after = self._open_order_price(oid, mark)
        perm_after = [o.permId for i, _, o, _ in app.since(mark, "openOrder") if i == oid][-1]
        mark = app.mark()
        app.reqOpenOrders()
        app.wait(lambda: app.since(mark, "openOrderEnd"), "openOrderEnd")
        return {
            "status": self.status(oid),
            "lmt_before": lmt_before,
            "lmt_after": lmt_after,
            "new_price": new_price,
            "perm_before": perm_before,
            "perm_after": perm_after,
            "open_order_lmt": self._open_order_price(oid, mark),
        }

    def flow_global_cancel(self, p: dict[str, Any]) -> dict[str, Any]:
        bid = self.bid()
        oids = [
            self.place(order_of("BUY", "LMT", 1, lmtPrice=self.price(bid, off)))
            for off in p["offsets"]
        ]
        before = [self.wait_status(oid, "Submitted") for oid in oids]
        self.app.reqGlobalCancel()
        for oid in oids:
            self.wait_status(oid, "Cancelled")
        return {"status_before": before, "status": [self.status(oid) for oid in oids]}

    def flow_positions(self, p: dict[str, Any]) -> dict[str, Any]:
        app = self.app
        oid = self.place(order_of("BUY", "MKT", p["qty"]))
        self.wait_status(oid, "Filled")
        fill_price = [a for a in app.calls("orderStatus") if a[0] == oid][-1][4]
        mark = app.mark()
        app.reqPositions()
        app.wait(lambda: app.since(mark, "positionEnd"), "positionEnd")
        app.cancelPositions()
        return {
            "qty": p["qty"],
            "fill_price": fill_price,
            "positions": [
                {"account": a, "conId": c.conId, "position": pos, "avgCost": cost}
                for a, c, pos, cost in app.since(mark, "position")
            ],
        }

    def flow_pnl(self, p: dict[str, Any]) -> dict[str, Any]:
        app, rid, single = self.app, self.req_id(), self.req_id()
        app.reqPnL(rid, self.account, "")
        app.reqPnLSingle(single, self.account, "", self.front.conId)
        try:
            app.wait(lambda: [a for a in app.calls("pnl") if a[0] == rid], "pnl")
            app.wait(lambda: [a for a in app.calls("pnlSingle") if a[0] == single], "pnlSingle")
        finally:
            app.cancelPnL(rid)
            app.cancelPnLSingle(single)
        _, daily, unrealized, realized = next(a for a in app.calls("pnl") if a[0] == rid)
        _, pos, s_daily, s_unr, s_real, value = next(
            a for a in app.calls("pnlSingle") if a[0] == single
        )
        return {
            "pnl": {
                "dailyPnL": num(daily),
                "unrealizedPnL": num(unrealized),
                "realizedPnL": num(realized),
            },
            "single": {
                "pos": pos,
                "dailyPnL": num(s_daily),
                "unrealizedPnL": num(s_unr),
                "realizedPnL": num(s_real),
                "value": num(value),
            },
        }

    def _open_orders(self, request: Callable[[], None]) -> list[dict[str, Any]]:
        mark = self.app.mark()
        request()
        self.app.wait(lambda: self.app.since(mark, "openOrderEnd"), "openOrderEnd")
        return [
            {"orderRef": o.orderRef, "permId": o.permId, "status": st.status}
            for _, _, o, st in self.app.since(mark, "openOrder")
        ]

    def flow_orders(self, p: dict[str, Any]) -> dict[str, Any]:
        app = self.app
        price = self.price(self.bid(), p["offset"])
        oid = self.place(order_of("BUY", "LMT", 1, lmtPrice=price, orderRef=p["order_ref"]))
        self.wait_status(oid, "Submitted")
        open_orders = self._open_orders(app.reqOpenOrders)
        all_open = self._open_orders(app.reqAllOpenOrders)
        mark = app.mark()
        app.reqCompletedOrders(False)
        app.wait(lambda: app.since(mark, "completedOrdersEnd"), "completedOrdersEnd")
        return {
            "order_ref": p["order_ref"],
            "order_id": oid,
            "perm_id": self.perm_id(oid),
            "open": open_orders,
            "all_open": all_open,
            "completed": [
                {"orderRef": o.orderRef, "permId": o.permId, "status": st.status}
                for _, o, st in app.since(mark, "completedOrder")
            ],
        }

    def flow_duplicate_client_id(self, p: dict[str, Any]) -> dict[str, Any]:
        second = self.connect(p["client_id"])
        try:
            second.wait(lambda: second.calls("connectionClosed"), "the socket closed")
            connected = second.isConnected()
        finally:
            second.close()
        mark = self.app.mark()
        self.app.reqCurrentTime()
        self.app.wait(lambda: self.app.since(mark, "currentTime"), "currentTime")
        return {
            "codes": [c for _, c in second.errors()],
            "connected": connected,
            "first_still_works": self.app.isConnected(),
        }

    def flow_reconnect(self, p: dict[str, Any]) -> dict[str, Any]:
        self.app.close()
        refused = 0
        for _ in range(20):  # the id is freed once the gateway has seen the socket close
            app = self.open(p["client_id"])
            if not [1 for _, c in app.errors() if c == 326]:
                break
            refused += 1
            app.close()
        else:
            raise RuntimeError("client id still in use after 20 attempts")
        opened = self._open_orders(app.reqOpenOrders)
        mark = app.mark()
        app.reqPositions()
        app.wait(lambda: app.since(mark, "positionEnd"), "positionEnd")
        app.cancelPositions()
        rid = self.req_id()
        app.reqExecutions(rid, ExecutionFilter())
        self.end("execDetailsEnd", rid)
        return {
            "refused_326": refused,
            "server_version": app.serverVersion(),
            "next_valid_id": self.next_order,
            "open_perm_ids": [o["permId"] for o in opened],
            "positions": {str(c.conId): pos for _, c, pos, _ in app.since(mark, "position")},
            "exec_ids": [e.execId for r, _, e in app.calls("execDetails") if r == rid],
        }

    # --- running ---

    def run(self) -> None:
        for flow in self.spec["flows"]:
            name = flow["name"]
            method = getattr(self, f"flow_{name}", None)
            try:
                if method is None:
                    raise NotImplementedError(f"no flow_{name} in this driver")
                obs = method(flow["params"])
                line = (
                    {"flow": name, "unsupported": obs["unsupported"]}
                    if "unsupported" in obs
                    else {"flow": name, "obs": obs}
                )
            except Exception:
                line = {"flow": name, "error": traceback.format_exc()}
            print(json.dumps(line), flush=True)
        self.app.close()


def main() -> int:
    Driver(json.load(sys.stdin)).run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
