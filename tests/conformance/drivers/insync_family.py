"""Conformance driver for ib_insync and its fork ib_async, which keep the same API.

Run as `PYTHON insync_family.py --lib ib_async` (in .venv) or `--lib ib_insync` (in
.venv-insync: the two must never share a venv). Reads the spec of tests/conformance/flows.py on
standard input and prints one JSON line per flow: what the library's own high-level API showed.
Every wait is on the library's events or futures, bounded by the spec's timeout. The driver
observes; it judges nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import importlib
import json
import math
import sys
import traceback
from collections.abc import Callable
from typing import Any

UNSET = 1e300  # IB's unset double is 1.7976931348623157e308


def num(x: Any) -> Any:
    """A JSON-safe number: NaN and IB's unset double become null."""
    if isinstance(x, float) and (math.isnan(x) or abs(x) >= UNSET):
        return None
    return x


def epoch(t: Any) -> int:
    if isinstance(t, dt.datetime):
        if t.tzinfo is None:
            t = t.replace(tzinfo=dt.UTC)
        return int(t.timestamp())
    if isinstance(t, dt.date):
        raise TypeError(f"a date where a time was expected: {t!r}")
    return int(t)


class Driver:
    def __init__(self, lib: Any, spec: dict[str, Any]) -> None:
        self.lib = lib
        self.spec = spec
        self.timeout: float = spec["timeout"]
        self.tick: float = spec["tick"]
        self.account: str = spec["account"]
        self.ib: Any = None
        self.errors: list[list[Any]] = []
        self.next_ids: list[int] = []
        self.front: Any = None
        self.state: dict[str, Any] = {}

    # --- plumbing ---

    def new_ib(self, errors: list[list[Any]], next_ids: list[int]) -> Any:
        ib = self.lib.IB()
        ib.errorEvent += lambda req_id, code, *_: errors.append([req_id, code])
        wrapper = ib.wrapper
        original = wrapper.nextValidId

        def next_valid_id(order_id: int) -> None:
            next_ids.append(order_id)
            original(order_id)

        wrapper.nextValidId = next_valid_id
        return ib

    async def attempt(
        self, client_id: int, errors: list[list[Any]], next_ids: list[int]
    ) -> tuple[Any, str | None]:
        """Connect: (ib, None), or (None, why) when the gateway refused or closed the socket.

        The library reports a socket closed during the handshake (as after 326) on
        client.apiError, but its connectAsync goes on waiting for the API start until its own
        timeout: the attempt ends at whichever comes first."""
        ib = self.new_ib(errors, next_ids)
        api_error: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        ib.client.apiError += lambda msg: api_error.done() or api_error.set_result(msg)
        connecting = asyncio.ensure_future(
            ib.connectAsync(
                self.spec["host"], self.spec["port"], clientId=client_id, timeout=self.timeout
            )
        )
        await asyncio.wait({connecting, api_error}, return_when=asyncio.FIRST_COMPLETED)
        if connecting.done() and not connecting.cancelled() and connecting.exception() is None:
            return ib, None
        connecting.cancel()
        (outcome,) = await asyncio.gather(connecting, return_exceptions=True)
        ib.disconnect()
        return None, api_error.result() if api_error.done() else repr(outcome)

    async def connect(self, client_id: int) -> Any:
        self.errors, self.next_ids = [], []
        ib, why = await self.attempt(client_id, self.errors, self.next_ids)
        if ib is None:
            raise ConnectionError(f"client id {client_id}: {why}")
        self.ib = ib
        return ib

    async def until(self, predicate: Callable[[], bool]) -> None:
        """Wait for `predicate`, re-checked each time the client has processed a batch."""
        async with asyncio.timeout(self.timeout):
            while not predicate():
                await self.ib.updateEvent

    def next_req_id(self) -> int:
        """The id the client hands its next request (to find that request's errors)."""
        return int(self.ib.client._reqIdSeq)

    def contract(self, fields: dict[str, Any]) -> Any:
        return self.lib.Contract(**fields)

    async def bid(self) -> float:
        (ticker,) = await self.ib.reqTickersAsync(self.front)
        return float(ticker.bid)

    def price(self, bid: float, offset: int) -> float:
        return round(bid + offset * self.tick, 2)

    async def place(self, order: Any) -> Any:
        return self.ib.placeOrder(self.front, order)

    async def status(self, trade: Any, *wanted: str) -> None:
        await self.until(lambda: trade.orderStatus.status in wanted)

    # --- flows ---

    async def flow_connect(self, p: dict[str, Any]) -> dict[str, Any]:
        ib = await self.connect(p["client_id"])
        first_id = self.next_ids[0] if self.next_ids else None
        accounts = ib.managedAccounts()
        seen = len(self.next_ids)
        ib.client.reqManagedAccts()
        ib.client.reqIds(-1)
        now = await ib.reqCurrentTimeAsync()
        await self.until(lambda: len(self.next_ids) > seen)
        return {
            "server_version": ib.client.serverVersion(),
            "next_valid_id": first_id,
            "accounts": accounts,
            "managed_accounts": ib.managedAccounts(),
            "req_ids_next": self.next_ids[-1],
            "farm_codes": sorted({code for _, code in self.errors if 2100 <= code < 2200}),
            "current_time": epoch(now),
        }

    async def flow_contract_details(self, p: dict[str, Any]) -> dict[str, Any]:
        details = await self.ib.reqContractDetailsAsync(self.contract(p["contract"]))
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

    async def flow_unknown_contract(self, p: dict[str, Any]) -> dict[str, Any]:
        contract = self.contract(p["contract"])
        details_req_id = self.next_req_id()
        details = await self.ib.reqContractDetailsAsync(contract)
        bars_req_id = self.next_req_id()
        bars = await self.ib.reqHistoricalDataAsync(
            contract, "", "60 S", "1 min", "TRADES", useRTH=False, formatDate=2
        )
        return {
            "details": [str(d) for d in details],
            "bars": [self.bar(b) for b in bars],
            "details_req_id": details_req_id,
            "bars_req_id": bars_req_id,
            "errors": [e for e in self.errors if e[0] in (details_req_id, bars_req_id)],
        }

    async def flow_snapshot(self, p: dict[str, Any]) -> dict[str, Any]:
        (t,) = await self.ib.reqTickersAsync(self.front)
        names = ("bid", "ask", "last", "high", "low", "close", "open")
        names += ("bidSize", "askSize", "lastSize", "volume")
        ticks = {n: num(float(getattr(t, n))) for n in names}
        return {"ticks": {k: v for k, v in ticks.items() if v is not None}, "snapshot_end": True}

    async def _tick_by_tick(self, kind: str, count: int) -> list[Any]:
        ticker = self.ib.reqTickByTickData(self.front, kind, 0, False)
        seen: list[Any] = []

        def collect(t: Any) -> None:
            seen.extend(t.tickByTicks)

        ticker.updateEvent += collect
        try:
            await self.until(lambda: len(seen) >= count)
        finally:
            ticker.updateEvent -= collect
            self.ib.cancelTickByTickData(self.front, kind)
        return seen

    async def flow_tick_by_tick(self, p: dict[str, Any]) -> dict[str, Any]:
        n = p["count"]
        last = await self._tick_by_tick("AllLast", n)
        quotes = await self._tick_by_tick("BidAsk", n)
        return {
            "count": n,
            "all_last": [{"time": epoch(t.time), "price": t.price, "size": t.size} for t in last],
            "bid_ask": [
                {
                    "time": epoch(t.time),
                    "bid": t.bidPrice,
                    "ask": t.askPrice,
                    "bidSize": t.bidSize,
                    "askSize": t.askSize,
                }
                for t in quotes
            ],
        }

    @staticmethod
    def bar(b: Any) -> dict[str, Any]:
        return {
            "time": epoch(b.date),
            "open": b.open,
            "high": b.high,
            "low": b.low,
            "close": b.close,
            "volume": b.volume,
        }

    async def flow_historical_bars(self, p: dict[str, Any]) -> dict[str, Any]:
        args = (self.front, "", p["duration"], p["bar_size"], p["what"])
        bars = await self.ib.reqHistoricalDataAsync(*args, useRTH=False, formatDate=2)
        live = await self.ib.reqHistoricalDataAsync(
            *args, useRTH=False, formatDate=2, keepUpToDate=True
        )
        initial = [self.bar(b) for b in live]
        try:
            await asyncio.wait_for(live.updateEvent, self.timeout)
        finally:
            self.ib.cancelHistoricalData(live)
        return {
            "bars": [self.bar(b) for b in bars],
            "keep_up_to_date": {"bars": initial, "update": self.bar(live[-1])},
        }

    async def flow_historical_ticks(self, p: dict[str, Any]) -> dict[str, Any]:
        n = p["count"]
        trades = await self.ib.reqHistoricalTicksAsync(
            self.front, p["start"], "", n, "TRADES", useRth=False
        )
        quotes = await self.ib.reqHistoricalTicksAsync(
            self.front, p["start"], "", n, "BID_ASK", useRth=False
        )
        return {
            "count": n,
            "trades": [{"time": epoch(t.time), "price": t.price, "size": t.size} for t in trades],
            "bid_ask": [
                {
                    "time": epoch(t.time),
                    "bid": t.priceBid,
                    "ask": t.priceAsk,
                    "bidSize": t.sizeBid,
                    "askSize": t.sizeAsk,
                }
                for t in quotes
            ],
        }

    async def flow_head_timestamp(self, p: dict[str, Any]) -> dict[str, Any]:
        head = await self.ib.reqHeadTimeStampAsync(self.front, p["what"], False, 2)
        return {"head": epoch(head)}

    async def flow_histogram(self, p: dict[str, Any]) -> dict[str, Any]:
        rows = await self.ib.reqHistogramDataAsync(self.front, False, p["period"])
        return {"rows": [{"price": r.price, "size": r.count} for r in rows]}

    async def flow_market_rule(self, p: dict[str, Any]) -> dict[str, Any]:
        rule = await self.ib.reqMarketRuleAsync(p["rule_id"])
        return {"increments": [{"lowEdge": r.lowEdge, "increment": r.increment} for r in rule]}

    async def flow_realtime_bars(self, p: dict[str, Any]) -> dict[str, Any]:
        bars = self.ib.reqRealTimeBars(self.front, 5, "TRADES", False)
        try:
            await self.until(lambda: len(bars) >= p["count"])
        finally:
            self.ib.cancelRealTimeBars(bars)
        return {
            "count": p["count"],
            "bars": [
                {
                    "time": epoch(b.time),
                    "open": b.open_,
                    "high": b.high,
                    "low": b.low,
                    "close": b.close,
                    "volume": b.volume,
                }
                for b in bars
            ],
        }

    async def flow_matching_symbols(self, p: dict[str, Any]) -> dict[str, Any]:
        found = await self.ib.reqMatchingSymbolsAsync(p["pattern"])
        return {
            "matching": [
                {
                    "symbol": d.contract.symbol,
                    "secType": d.contract.secType,
                    "primaryExchange": d.contract.primaryExchange,
                    "conId": d.contract.conId,
                    "derivativeSecTypes": list(d.derivativeSecTypes),
                }
                for d in found or []
            ]
        }

    async def flow_family_codes(self, p: dict[str, Any]) -> dict[str, Any]:
        return {"unsupported": "the library's wrapper.familyCodes is a no-op (`pass`)"}

    async def flow_user_info(self, p: dict[str, Any]) -> dict[str, Any]:
        value = await self.ib.reqUserInfoAsync()
        # both libraries end the request without the id (wrapper.userInfo: `_endReq(reqId)`)
        return {"completed": True, "white_branding_id": value if isinstance(value, str) else None}

    async def flow_account(self, p: dict[str, Any]) -> dict[str, Any]:
        summary = await self.ib.accountSummaryAsync(self.account)
        await self.ib.reqAccountUpdatesAsync(self.account)
        return {
            "summary": [
                {"account": v.account, "tag": v.tag, "value": v.value, "currency": v.currency}
                for v in summary
            ],
            "updates": [
                {"key": v.tag, "value": v.value, "currency": v.currency}
                for v in self.ib.accountValues(self.account)
            ],
            "download_end": self.account,  # reqAccountUpdatesAsync ends on accountDownloadEnd
        }

    async def flow_bracket(self, p: dict[str, Any]) -> dict[str, Any]:
        lib, qty = self.lib, p["qty"]
        bid = await self.bid()
        target_price = self.price(bid, p["target_offset"])
        parent = lib.MarketOrder("BUY", qty, transmit=False)
        parent_trade = await self.place(parent)
        target = lib.LimitOrder("SELL", qty, target_price, parentId=parent.orderId, transmit=False)
        stop_price = self.price(bid, p["stop_offset"])
        stop = lib.StopOrder("SELL", qty, stop_price, parentId=parent.orderId, transmit=True)
        trades = {"parent": parent_trade}
        trades["target"] = await self.place(target)
        trades["stop"] = await self.place(stop)
        fills: list[Any] = []
        self.ib.execDetailsEvent += lambda trade, fill: fills.append(fill)
        await self.status(trades["parent"], "Filled")
        await self.status(trades["target"], "Filled")
        await self.status(trades["stop"], "Cancelled")

        def reported() -> bool:
            return len(fills) == 2 and all(f.commissionReport.execId for f in fills)

        await self.until(reported)
        filtered = await self.ib.reqExecutionsAsync(lib.ExecutionFilter(clientId=1))
        self.state["bracket_parent"] = parent
        return {
            "qty": qty,
            "target_price": target_price,
            "ids": {k: t.order.orderId for k, t in trades.items()},
            "perm_ids": {k: t.order.permId for k, t in trades.items()},
            "status": {k: t.orderStatus.status for k, t in trades.items()},
            "executions": [
                {
                    "orderId": f.execution.orderId,
                    "execId": f.execution.execId,
                    "side": f.execution.side,
                    "shares": f.execution.shares,
                    "price": f.execution.price,
                    "account": f.execution.acctNumber,
                }
                for f in fills
            ],
            "commissions": [
                {
                    "execId": f.commissionReport.execId,
                    "commission": f.commissionReport.commission,
                    "currency": f.commissionReport.currency,
                    "realizedPNL": num(f.commissionReport.realizedPNL),
                }
                for f in fills
            ],
            "req_executions": [{"execId": f.execution.execId} for f in filtered],
        }

    async def flow_cancel_filled(self, p: dict[str, Any]) -> dict[str, Any]:
        parent = self.state["bracket_parent"]
        trade = self.ib.cancelOrder(parent)
        await self.until(lambda: any(r == parent.orderId and c == 10148 for r, c in self.errors))
        return {
            "order_id": parent.orderId,
            "errors": [e for e in self.errors if e[0] == parent.orderId],
            "status": trade.orderStatus.status,
        }

    async def flow_ioc(self, p: dict[str, Any]) -> dict[str, Any]:
        price = self.price(await self.bid(), p["offset"])
        trade = await self.place(self.lib.LimitOrder("BUY", 1, price, tif="IOC"))
        await self.until(trade.isDone)
        return {
            "status": trade.orderStatus.status,
            "filled": trade.orderStatus.filled,
            "fills": len(trade.fills),
        }

    async def flow_cancel(self, p: dict[str, Any]) -> dict[str, Any]:
        price = self.price(await self.bid(), p["offset"])
        trade = await self.place(self.lib.LimitOrder("BUY", 1, price))
        await self.status(trade, "Submitted")
        before = trade.orderStatus.status
        self.ib.cancelOrder(trade.order)
        await self.status(trade, "Cancelled")
        order_id = trade.order.orderId
        await self.until(lambda: any(r == order_id and c == 202 for r, c in self.errors))
        return {
            "order_id": order_id,
            "status_before": before,
            "status": trade.orderStatus.status,
            "errors": [e for e in self.errors if e[0] == order_id],
        }

    async def flow_modify(self, p: dict[str, Any]) -> dict[str, Any]:
        bid = await self.bid()
        trade = await self.place(self.lib.LimitOrder("BUY", 1, self.price(bid, p["offset"])))
        await self.status(trade, "Submitted")
        lmt_before, perm_before = trade.order.lmtPrice, trade.order.permId
        new_price = self.price(bid, p["new_offset"])
        confirmed: list[float] = []

        def on_open(t: Any) -> None:
            if t is trade:
                confirmed.append(t.order.lmtPrice)

        self.ib.openOrderEvent += on_open
        trade.order.lmtPrice = new_price
        self.ib.placeOrder(self.front, trade.order)
        await self.until(lambda: bool(confirmed))
        open_trades = await self.ib.reqOpenOrdersAsync()
        mine = [t for t in open_trades if t.order.permId == perm_before]
        return {
            "status": trade.orderStatus.status,
            "lmt_before": lmt_before,
            "lmt_after": confirmed[-1],
            "new_price": new_price,
            "perm_before": perm_before,
            "perm_after": trade.order.permId,
            "open_order_lmt": mine[0].order.lmtPrice if mine else None,
        }

    async def flow_global_cancel(self, p: dict[str, Any]) -> dict[str, Any]:
        bid = await self.bid()
        trades = [
            await self.place(self.lib.LimitOrder("BUY", 1, self.price(bid, off)))
            for off in p["offsets"]
        ]
        for t in trades:
            await self.status(t, "Submitted")
        before = [t.orderStatus.status for t in trades]
        self.ib.reqGlobalCancel()
        for t in trades:
            await self.status(t, "Cancelled")
        return {"status_before": before, "status": [t.orderStatus.status for t in trades]}

    async def flow_positions(self, p: dict[str, Any]) -> dict[str, Any]:
        trade = await self.place(self.lib.MarketOrder("BUY", p["qty"]))
        await self.status(trade, "Filled")
        positions = await self.ib.reqPositionsAsync()
        return {
            "qty": p["qty"],
            "fill_price": trade.orderStatus.avgFillPrice,
            "positions": [
                {
                    "account": x.account,
                    "conId": x.contract.conId,
                    "position": x.position,
                    "avgCost": x.avgCost,
                }
                for x in positions
            ],
        }

    async def flow_pnl(self, p: dict[str, Any]) -> dict[str, Any]:
        pnl = self.ib.reqPnL(self.account)
        single = self.ib.reqPnLSingle(self.account, "", self.front.conId)
        try:
            await self.until(lambda: num(pnl.dailyPnL) is not None)
            await self.until(lambda: num(single.value) is not None)
        finally:
            self.ib.cancelPnL(self.account)
            self.ib.cancelPnLSingle(self.account, "", self.front.conId)
        return {
            "pnl": {
                "dailyPnL": num(pnl.dailyPnL),
                "unrealizedPnL": num(pnl.unrealizedPnL),
                "realizedPnL": num(pnl.realizedPnL),
            },
            "single": {
                "pos": single.position,
                "dailyPnL": num(single.dailyPnL),
                "unrealizedPnL": num(single.unrealizedPnL),
                "realizedPnL": num(single.realizedPnL),
                "value": num(single.value),
            },
        }

    @staticmethod
    def order_row(t: Any) -> dict[str, Any]:
        return {
            "orderRef": t.order.orderRef,
            "permId": t.order.permId,
            "status": t.orderStatus.status,
        }

    async def flow_orders(self, p: dict[str, Any]) -> dict[str, Any]:
        price = self.price(await self.bid(), p["offset"])
        trade = await self.place(self.lib.LimitOrder("BUY", 1, price, orderRef=p["order_ref"]))
        await self.status(trade, "Submitted")
        open_trades = await self.ib.reqOpenOrdersAsync()
        all_open = await self.ib.reqAllOpenOrdersAsync()
        completed = await self.ib.reqCompletedOrdersAsync(False)
        return {
            "order_ref": p["order_ref"],
            "order_id": trade.order.orderId,
            "perm_id": trade.order.permId,
            "open": [self.order_row(t) for t in open_trades],
            "all_open": [self.order_row(t) for t in all_open],
            "completed": [self.order_row(t) for t in completed],
        }

    async def flow_duplicate_client_id(self, p: dict[str, Any]) -> dict[str, Any]:
        errors: list[list[Any]] = []
        second, why = await self.attempt(p["client_id"], errors, [])
        connected = second is not None and second.isConnected()
        if second is not None:
            second.disconnect()
        works = await asyncio.wait_for(self.ib.reqCurrentTimeAsync(), self.timeout)
        return {
            "codes": [code for _, code in errors],
            "failure": why,
            "connected": connected,
            "first_still_works": works is not None and self.ib.isConnected(),
        }

    async def flow_reconnect(self, p: dict[str, Any]) -> dict[str, Any]:
        self.ib.disconnect()
        refused = 0
        for _ in range(20):  # the id is freed once the gateway has seen the socket close
            try:
                ib = await self.connect(p["client_id"])
                break
            except ConnectionError:
                if 326 not in [code for _, code in self.errors]:
                    raise
                refused += 1
        else:
            raise RuntimeError("client id still in use after 20 attempts")
        return {
            "refused_326": refused,
            "server_version": ib.client.serverVersion(),
            "next_valid_id": self.next_ids[0],
            "open_perm_ids": [t.order.permId for t in ib.openTrades()],
            "positions": {str(x.contract.conId): x.position for x in ib.positions()},
            "exec_ids": [f.execution.execId for f in ib.fills()],
        }

    # --- running ---

    async def run(self) -> None:
        for flow in self.spec["flows"]:
            name = flow["name"]
            method = getattr(self, f"flow_{name}", None)
            try:
                if method is None:
                    raise NotImplementedError(f"no flow_{name} in this driver")
                obs = await asyncio.wait_for(method(flow["params"]), 4 * self.timeout)
                line = (
                    {"flow": name, "unsupported": obs["unsupported"]}
                    if "unsupported" in obs
                    else {"flow": name, "obs": obs}
                )
            except BaseException as exc:
                if isinstance(exc, KeyboardInterrupt | SystemExit):
                    raise
                line = {"flow": name, "error": "".join(traceback.format_exception(exc))}
            print(json.dumps(line), flush=True)
        if self.ib is not None:
            self.ib.disconnect()


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--lib", choices=("ib_async", "ib_insync"), required=True)
    args = parser.parse_args()
    spec = json.load(sys.stdin)
    # Both libraries' event kits bind to the loop current at import: make it this one.
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    lib = importlib.import_module(args.lib)
    try:
        loop.run_until_complete(Driver(lib, spec).run())
    finally:
        loop.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
