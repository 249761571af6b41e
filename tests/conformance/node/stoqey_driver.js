// Conformance driver for @stoqey/ib (its IBApi event interface), run under node.
//
// Reads the spec of tests/conformance/flows.py on standard input and prints one JSON line per
// flow: what the library's events delivered. Every event lands in one log (IBApi's "all"
// event); each wait re-checks its condition on every event and is bounded by the spec's
// timeout. The driver observes; it judges nothing.
"use strict";

const { IBApi, EventName } = require("@stoqey/ib");

const UNSET = 1e300; // IB's unset double; the library shows it as undefined
const TICK_NAMES = {
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
};

function num(x) {
  if (x === undefined || x === null || Number.isNaN(x) || Math.abs(x) >= UNSET) return null;
  return x;
}

function bar(time, open, high, low, close, volume) {
  return { time: Number(time), open, high, low, close, volume };
}

class Conn {
  constructor(spec) {
    this.timeout = spec.timeout;
    this.ib = new IBApi({ host: spec.host, port: spec.port });
    this.log = [];
    this.waiters = new Set();
    this.ib.on(EventName.all, (event, args) => this.record(event, args));
  }

  record(event, args) {
    this.log.push([event, args]);
    for (const waiter of [...this.waiters]) waiter();
  }

  // Resolves with predicate()'s first truthy value, re-checked after every event.
  wait(predicate, what) {
    return new Promise((resolve, reject) => {
      let timer = null;
      const waiter = () => {
        let value;
        try {
          value = predicate();
        } catch (err) {
          this.waiters.delete(waiter);
          clearTimeout(timer);
          reject(err);
          return;
        }
        if (value) {
          this.waiters.delete(waiter);
          clearTimeout(timer);
          resolve(value);
        }
      };
      timer = setTimeout(() => {
        this.waiters.delete(waiter);
        reject(new Error(`no ${what} within ${this.timeout}s`));
      }, this.timeout * 1000);
      this.waiters.add(waiter);
      waiter();
    });
  }

  calls(name, from = 0) {
    return this.log.slice(from).filter(([e]) => e === name).map(([, args]) => args);
  }

  mark() {
    return this.log.length;
  }

  // the calls of `name` since `from`, or null while there are none (a wait's predicate)
  some(name, from = 0) {
    const found = this.calls(name, from);
    return found.length ? found : null;
  }

  someFor(name, reqId) {
    const found = this.forReq(name, reqId);
    return found.length ? found : null;
  }

  forReq(name, reqId) {
    return this.calls(name).filter((args) => args[0] === reqId);
  }

  // [reqId, code] of every error and notice (notices are the errors without a request id)
  errors(reqId) {
    const out = [];
    for (const [event, args] of this.log) {
      if (event === EventName.error) out.push([args[2], args[1]]);
      else if (event === EventName.info) out.push([-1, args[1]]);
    }
    return reqId === undefined ? out : out.filter(([r]) => r === reqId);
  }

  closed() {
    return this.calls(EventName.disconnected).length > 0;
  }
}

class Driver {
  constructor(spec) {
    this.spec = spec;
    this.tick = spec.tick;
    this.account = spec.account;
    this.reqIds = 1000;
    this.conn = null;
    this.front = null;
    this.nextOrder = 0;
    this.state = {};
  }

  // --- plumbing ---

  connect(clientId) {
    const conn = new Conn(this.spec);
    conn.ib.connect(clientId);
    return conn;
  }

  async open(clientId) {
    const conn = this.connect(clientId);
    await conn.wait(() => conn.calls("nextValidId").length || conn.closed(), "nextValidId");
    const ids = conn.calls("nextValidId");
    this.nextOrder = ids.length ? ids[ids.length - 1][0] : 0;
    this.conn = conn;
    return conn;
  }

  reqId() {
    return this.reqIds++;
  }

  async snapshot() {
    const conn = this.conn;
    const rid = this.reqId();
    conn.ib.reqMktData(rid, this.front, "", true, false);
    await conn.wait(() => conn.forReq("tickSnapshotEnd", rid).length, "tickSnapshotEnd");
    const ticks = {};
    for (const name of ["tickPrice", "tickSize"]) {
      for (const [r, type, value] of conn.calls(name)) {
        if (r === rid && TICK_NAMES[type] !== undefined && value !== undefined) {
          ticks[TICK_NAMES[type]] = Number(value);
        }
      }
    }
    return ticks;
  }

  async bid() {
    return (await this.snapshot()).bid;
  }

  price(bid, offset) {
    return Math.round((bid + offset * this.tick) * 100) / 100;
  }

  place(order) {
    const oid = this.nextOrder++;
    this.conn.ib.placeOrder(oid, this.front, { transmit: true, ...order });
    return oid;
  }

  status(oid) {
    const seen = this.conn.calls("orderStatus").filter((a) => a[0] === oid);
    return seen.length ? seen[seen.length - 1][1] : null;
  }

  waitStatus(oid, ...wanted) {
    return this.conn.wait(
      () => (wanted.includes(this.status(oid)) ? this.status(oid) : null),
      `order ${oid} ${wanted}`,
    );
  }

  permId(oid) {
    for (const args of this.conn.calls("orderStatus")) {
      if (args[0] === oid && args[5]) return args[5];
    }
    throw new Error(`no permId for order ${oid}`);
  }

  async openOrders(request) {
    const conn = this.conn;
    const mark = conn.mark();
    request();
    await conn.wait(() => conn.calls("openOrderEnd", mark).length, "openOrderEnd");
    return conn.calls("openOrder", mark).map(([, , order, state]) => ({
      orderRef: order.orderRef || "",
      permId: order.permId,
      status: state.status,
    }));
  }

  // --- flows ---

  async flow_connect(p) {
    const conn = await this.open(p.client_id);
    const firstId = this.nextOrder;
    await conn.wait(() => conn.calls("managedAccounts").length, "managedAccounts");
    const accounts = conn.calls("managedAccounts")[0][0].split(",");
    const mark = conn.mark();
    conn.ib.reqManagedAccts();
    conn.ib.reqIds();
    conn.ib.reqCurrentTime();
    await conn.wait(() => conn.calls("managedAccounts", mark).length, "managedAccounts");
    await conn.wait(() => conn.calls("nextValidId", mark).length, "nextValidId");
    const [[now]] = await conn.wait(() => conn.some("currentTime", mark), "currentTime");
    const ids = conn.calls("nextValidId", mark);
    return {
      server_version: conn.ib.serverVersion,
      next_valid_id: firstId,
      accounts,
      managed_accounts: conn.calls("managedAccounts", mark)[0][0].split(","),
      req_ids_next: ids[ids.length - 1][0],
      farm_codes: [...new Set(conn.errors().map(([, c]) => c))]
        .filter((c) => c >= 2100 && c < 2200)
        .sort((a, b) => a - b),
      current_time: now,
    };
  }

  async flow_contract_details(p) {
    const conn = this.conn;
    const rid = this.reqId();
    conn.ib.reqContractDetails(rid, { ...p.contract });
    await conn.wait(() => conn.forReq("contractDetailsEnd", rid).length, "contractDetailsEnd");
    const details = conn.forReq("contractDetails", rid).map(([, d]) => d);
    this.front = details[0].contract;
    return {
      details: details.map((d) => ({
        symbol: d.contract.symbol,
        secType: d.contract.secType,
        exchange: d.contract.exchange,
        currency: d.contract.currency,
        localSymbol: d.contract.localSymbol,
        lastTradeDate: d.contract.lastTradeDateOrContractMonth,
        conId: d.contract.conId,
        multiplier: String(d.contract.multiplier),
        tradingClass: d.contract.tradingClass,
        minTick: d.minTick,
        timeZoneId: d.timeZoneId,
        tradingHours: d.tradingHours,
        liquidHours: d.liquidHours,
        marketRuleIds: d.marketRuleIds,
        longName: d.longName,
        orderTypes: d.orderTypes,
      })),
    };
  }

  async flow_unknown_contract(p) {
    const conn = this.conn;
    const detailsRid = this.reqId();
    const barsRid = this.reqId();
    conn.ib.reqContractDetails(detailsRid, { ...p.contract });
    conn.ib.reqHistoricalData(barsRid, { ...p.contract }, "", "60 S", "1 min", "TRADES", 0, 2, false);
    for (const rid of [detailsRid, barsRid]) {
      await conn.wait(() => conn.errors(rid).length, `an error for ${rid}`);
    }
    return {
      details: conn.forReq("contractDetails", detailsRid).map(([, d]) => d.contract.localSymbol),
      bars: conn
        .forReq("historicalData", barsRid)
        .filter((a) => !String(a[1]).startsWith("finished"))
        .map((a) => bar(...a.slice(1, 7))),
      details_req_id: detailsRid,
      bars_req_id: barsRid,
      errors: conn.errors(detailsRid).concat(conn.errors(barsRid)),
    };
  }

  async flow_snapshot() {
    return { ticks: await this.snapshot(), snapshot_end: true };
  }

  async tickByTick(kind, event, count) {
    const conn = this.conn;
    const rid = this.reqId();
    conn.ib.reqTickByTickData(rid, this.front, kind, 0, false);
    try {
      await conn.wait(() => conn.forReq(event, rid).length >= count, kind);
    } finally {
      conn.ib.cancelTickByTickData(rid);
    }
    return conn.forReq(event, rid);
  }

  async flow_tick_by_tick(p) {
    const n = p.count;
    const last = await this.tickByTick("AllLast", "tickByTickAllLast", n);
    const quotes = await this.tickByTick("BidAsk", "tickByTickBidAsk", n);
    return {
      count: n,
      all_last: last.map((a) => ({ time: Number(a[2]), price: a[3], size: a[4] })),
      bid_ask: quotes.map((a) => ({
        time: Number(a[1]),
        bid: a[2],
        ask: a[3],
        bidSize: a[4],
        askSize: a[5],
      })),
    };
  }

  async flow_historical_bars(p) {
    const conn = this.conn;
    const ended = (rid) => conn.forReq("historicalData", rid).some((a) => String(a[1]).startsWith("finished"));
    const bars = (rid) =>
      conn
        .forReq("historicalData", rid)
        .filter((a) => !String(a[1]).startsWith("finished"))
        .map((a) => bar(...a.slice(1, 7)));
    const rid = this.reqId();
    const live = this.reqId();
    const args = [p.duration, p.bar_size, p.what, 0, 2];
    conn.ib.reqHistoricalData(rid, this.front, "", ...args, false);
    await conn.wait(() => ended(rid), "the end of the bars");
    conn.ib.reqHistoricalData(live, this.front, "", ...args, true);
    await conn.wait(() => ended(live), "the end of the bars");
    try {
      await conn.wait(() => conn.forReq("historicalDataUpdate", live).length, "historicalDataUpdate");
    } finally {
      conn.ib.cancelHistoricalData(live);
    }
    const update = conn.forReq("historicalDataUpdate", live)[0];
    return {
      bars: bars(rid),
      keep_up_to_date: { bars: bars(live), update: bar(...update.slice(1, 7)) },
    };
  }

  async historicalTicks(p, what, event) {
    const conn = this.conn;
    const rid = this.reqId();
    conn.ib.reqHistoricalTicks(rid, this.front, p.start, "", p.count, what, 0, true);
    await conn.wait(() => conn.forReq(event, rid).some((a) => a[2]), what);
    return conn.forReq(event, rid).flatMap((a) => a[1]);
  }

  async flow_historical_ticks(p) {
    const trades = await this.historicalTicks(p, "TRADES", "historicalTicksLast");
    const quotes = await this.historicalTicks(p, "BID_ASK", "historicalTicksBidAsk");
    return {
      count: p.count,
      trades: trades.map((t) => ({ time: t.time, price: t.price, size: t.size })),
      bid_ask: quotes.map((t) => ({
        time: t.time,
        bid: t.priceBid,
        ask: t.priceAsk,
        bidSize: t.sizeBid,
        askSize: t.sizeAsk,
      })),
    };
  }

  async flow_head_timestamp(p) {
    const conn = this.conn;
    const rid = this.reqId();
    conn.ib.reqHeadTimestamp(rid, this.front, p.what, false, 2);
    const [[, head]] = await conn.wait(() => conn.someFor("headTimestamp", rid), "headTimestamp");
    return { head: Number(head) };
  }

  async flow_histogram(p) {
    const conn = this.conn;
    const rid = this.reqId();
    const [count, unit] = p.period.split(" ");
    conn.ib.reqHistogramData(rid, this.front, false, Number(count), unit.toUpperCase());
    const [[, rows]] = await conn.wait(() => conn.someFor("histogramData", rid), "histogramData");
    return { rows: rows.map((r) => ({ price: r.price, size: r.size })) };
  }

  async flow_market_rule(p) {
    const conn = this.conn;
    conn.ib.reqMarketRule(p.rule_id);
    const [[, rule]] = await conn.wait(() => conn.someFor("marketRule", p.rule_id), "marketRule");
    return { increments: rule.map((r) => ({ lowEdge: r.lowEdge, increment: r.increment })) };
  }

  async flow_realtime_bars(p) {
    const conn = this.conn;
    const rid = this.reqId();
    conn.ib.reqRealTimeBars(rid, this.front, 5, "TRADES", false);
    try {
      await conn.wait(() => conn.forReq("realtimeBar", rid).length >= p.count, "realtimeBar");
    } finally {
      conn.ib.cancelRealTimeBars(rid);
    }
    return {
      count: p.count,
      bars: conn.forReq("realtimeBar", rid).map((a) => bar(...a.slice(1, 7))),
    };
  }

  async flow_matching_symbols(p) {
    const conn = this.conn;
    const rid = this.reqId();
    conn.ib.reqMatchingSymbols(rid, p.pattern);
    const [[, found]] = await conn.wait(() => conn.someFor("symbolSamples", rid), "symbolSamples");
    return {
      matching: found.map((d) => ({
        symbol: d.contract.symbol,
        secType: d.contract.secType,
        primaryExchange: d.contract.primaryExch,
        conId: d.contract.conId,
        derivativeSecTypes: d.derivativeSecTypes,
      })),
    };
  }

  async flow_family_codes() {
    const conn = this.conn;
    const mark = conn.mark();
    conn.ib.reqFamilyCodes();
    const [[codes]] = await conn.wait(() => conn.some("familyCodes", mark), "familyCodes");
    return {
      family_codes: codes.map((f) => ({ accountID: f.accountID, familyCode: f.familyCode })),
    };
  }

  async flow_user_info() {
    const conn = this.conn;
    const rid = this.reqId();
    conn.ib.reqUserInfo(rid);
    const [[, id]] = await conn.wait(() => conn.someFor("userInfo", rid), "userInfo");
    return { completed: true, white_branding_id: id };
  }

  async flow_account(p) {
    const conn = this.conn;
    const rid = this.reqId();
    conn.ib.reqAccountSummary(rid, "All", p.tags);
    await conn.wait(() => conn.forReq("accountSummaryEnd", rid).length, "accountSummaryEnd");
    conn.ib.cancelAccountSummary(rid);
    const mark = conn.mark();
    conn.ib.reqAccountUpdates(true, this.account);
    await conn.wait(() => conn.calls("accountDownloadEnd", mark).length, "accountDownloadEnd");
    conn.ib.reqAccountUpdates(false, this.account);
    return {
      summary: conn
        .forReq("accountSummary", rid)
        .map(([, account, tag, value, currency]) => ({ account, tag, value, currency })),
      updates: conn
        .calls("updateAccountValue", mark)
        .map(([key, value, currency]) => ({ key, value, currency })),
      download_end: conn.calls("accountDownloadEnd", mark)[0][0],
    };
  }

  async flow_bracket(p) {
    const conn = this.conn;
    const qty = p.qty;
    const bid = await this.bid();
    const targetPrice = this.price(bid, p.target_offset);
    const mark = conn.mark();
    const ids = {};
    ids.parent = this.place({ action: "BUY", orderType: "MKT", totalQuantity: qty, transmit: false });
    ids.target = this.place({
      action: "SELL",
      orderType: "LMT",
      totalQuantity: qty,
      lmtPrice: targetPrice,
      parentId: ids.parent,
      transmit: false,
    });
    ids.stop = this.place({
      action: "SELL",
      orderType: "STP",
      totalQuantity: qty,
      auxPrice: this.price(bid, p.stop_offset),
      parentId: ids.parent,
      transmit: true,
    });
    await this.waitStatus(ids.parent, "Filled");
    await this.waitStatus(ids.target, "Filled");
    await this.waitStatus(ids.stop, "Cancelled");
    const fills = () => conn.calls("execDetails", mark).filter((a) => a[0] === -1).map((a) => a[2]);
    const reports = () => conn.calls("commissionReport", mark).map((a) => a[0]);
    await conn.wait(() => fills().length === 2 && reports().length === 2, "2 fills + reports");
    const executions = fills();
    const commissions = reports(); // reqExecutions sends the reports again
    const rid = this.reqId();
    conn.ib.reqExecutions(rid, { clientId: 1 });
    await conn.wait(() => conn.forReq("execDetailsEnd", rid).length, "execDetailsEnd");
    this.state.bracketParent = ids.parent;
    const perm = {};
    const status = {};
    for (const [k, oid] of Object.entries(ids)) {
      perm[k] = this.permId(oid);
      status[k] = this.status(oid);
    }
    return {
      qty,
      target_price: targetPrice,
      ids,
      perm_ids: perm,
      status,
      executions: executions.map((e) => ({
        orderId: e.orderId,
        execId: e.execId,
        side: e.side,
        shares: e.shares,
        price: e.price,
        account: e.acctNumber,
      })),
      commissions: commissions.map((c) => ({
        execId: c.execId,
        commission: c.commission,
        currency: c.currency,
        realizedPNL: num(c.realizedPNL),
      })),
      req_executions: conn.forReq("execDetails", rid).map((a) => ({ execId: a[2].execId })),
    };
  }

  async flow_cancel_filled() {
    const conn = this.conn;
    const oid = this.state.bracketParent;
    conn.ib.cancelOrder(oid);
    await conn.wait(() => conn.errors(oid).some(([, c]) => c === 10148), "10148");
    return { order_id: oid, errors: conn.errors(oid), status: this.status(oid) };
  }

  async flow_ioc(p) {
    const price = this.price(await this.bid(), p.offset);
    const oid = this.place({ action: "BUY", orderType: "LMT", totalQuantity: 1, lmtPrice: price, tif: "IOC" });
    await this.waitStatus(oid, "Cancelled", "Filled");
    const last = this.conn.calls("orderStatus").filter((a) => a[0] === oid).pop();
    const fills = this.conn.calls("execDetails").filter((a) => a[2].orderId === oid);
    return { status: last[1], filled: last[2], fills: fills.length };
  }

  async flow_cancel(p) {
    const conn = this.conn;
    const price = this.price(await this.bid(), p.offset);
    const oid = this.place({ action: "BUY", orderType: "LMT", totalQuantity: 1, lmtPrice: price });
    const before = await this.waitStatus(oid, "Submitted");
    conn.ib.cancelOrder(oid);
    await this.waitStatus(oid, "Cancelled");
    await conn.wait(() => conn.errors(oid).some(([, c]) => c === 202), "202");
    return { order_id: oid, status_before: before, status: this.status(oid), errors: conn.errors(oid) };
  }

  openOrderPrices(oid, from) {
    return this.conn
      .calls("openOrder", from)
      .filter((a) => a[0] === oid)
      .map((a) => a[2]);
  }

  async flow_modify(p) {
    const conn = this.conn;
    const bid = await this.bid();
    const order = { action: "BUY", orderType: "LMT", totalQuantity: 1, lmtPrice: this.price(bid, p.offset) };
    const oid = this.place(order);
    await this.waitStatus(oid, "Submitted");
    const before = this.openOrderPrices(oid, 0).pop();
    const newPrice = this.price(bid, p.new_offset);
    let mark = conn.mark();
    conn.ib.placeOrder(oid, this.front, { transmit: true, ...order, lmtPrice: newPrice });
    await conn.wait(() => this.openOrderPrices(oid, mark).length, "openOrder");
    const after = this.openOrderPrices(oid, mark).pop();
    mark = conn.mark();
    await this.openOrders(() => conn.ib.reqOpenOrders());
    const listed = this.openOrderPrices(oid, mark).pop();
    return {
      status: this.status(oid),
      lmt_before: before.lmtPrice,
      lmt_after: after.lmtPrice,
      new_price: newPrice,
      perm_before: this.permId(oid),
      perm_after: after.permId,
      open_order_lmt: listed ? listed.lmtPrice : null,
    };
  }

  async flow_global_cancel(p) {
    const bid = await this.bid();
    const oids = p.offsets.map((off) =>
      this.place({ action: "BUY", orderType: "LMT", totalQuantity: 1, lmtPrice: this.price(bid, off) }),
    );
    const before = [];
    for (const oid of oids) before.push(await this.waitStatus(oid, "Submitted"));
    this.conn.ib.reqGlobalCancel();
    for (const oid of oids) await this.waitStatus(oid, "Cancelled");
    return { status_before: before, status: oids.map((oid) => this.status(oid)) };
  }

  async flow_positions(p) {
    const conn = this.conn;
    const oid = this.place({ action: "BUY", orderType: "MKT", totalQuantity: p.qty });
    await this.waitStatus(oid, "Filled");
    const fillPrice = conn.calls("orderStatus").filter((a) => a[0] === oid).pop()[4];
    const mark = conn.mark();
    conn.ib.reqPositions();
    await conn.wait(() => conn.calls("positionEnd", mark).length, "positionEnd");
    conn.ib.cancelPositions();
    return {
      qty: p.qty,
      fill_price: fillPrice,
      positions: conn.calls("position", mark).map(([account, contract, position, avgCost]) => ({
        account,
        conId: contract.conId,
        position,
        avgCost,
      })),
    };
  }

  async flow_pnl() {
    const conn = this.conn;
    const rid = this.reqId();
    const single = this.reqId();
    conn.ib.reqPnL(rid, this.account, "");
    conn.ib.reqPnLSingle(single, this.account, "", this.front.conId);
    try {
      await conn.wait(() => conn.forReq("pnl", rid).length, "pnl");
      await conn.wait(() => conn.forReq("pnlSingle", single).length, "pnlSingle");
    } finally {
      conn.ib.cancelPnL(rid);
      conn.ib.cancelPnLSingle(single);
    }
    const [, daily, unrealized, realized] = conn.forReq("pnl", rid)[0];
    const [, pos, sDaily, sUnrealized, sRealized, value] = conn.forReq("pnlSingle", single)[0];
    return {
      pnl: { dailyPnL: num(daily), unrealizedPnL: num(unrealized), realizedPnL: num(realized) },
      single: {
        pos,
        dailyPnL: num(sDaily),
        unrealizedPnL: num(sUnrealized),
        realizedPnL: num(sRealized),
        value: num(value),
      },
    };
  }

  async flow_orders(p) {
    const conn = this.conn;
    const price = this.price(await this.bid(), p.offset);
    const oid = this.place({
      action: "BUY",
      orderType: "LMT",
      totalQuantity: 1,
      lmtPrice: price,
      orderRef: p.order_ref,
    });
    await this.waitStatus(oid, "Submitted");
    const open = await this.openOrders(() => conn.ib.reqOpenOrders());
    const allOpen = await this.openOrders(() => conn.ib.reqAllOpenOrders());
    const mark = conn.mark();
    conn.ib.reqCompletedOrders(false);
    await conn.wait(() => conn.calls("completedOrdersEnd", mark).length, "completedOrdersEnd");
    return {
      order_ref: p.order_ref,
      order_id: oid,
      perm_id: this.permId(oid),
      open,
      all_open: allOpen,
      completed: conn.calls("completedOrder", mark).map(([, order, state]) => ({
        orderRef: order.orderRef || "",
        permId: order.permId,
        status: state.status,
      })),
    };
  }

  async flow_duplicate_client_id(p) {
    const second = this.connect(p.client_id);
    await second.wait(() => second.closed(), "the socket closed");
    const connected = second.ib.isConnected;
    second.ib.disconnect();
    const conn = this.conn;
    const mark = conn.mark();
    conn.ib.reqCurrentTime();
    await conn.wait(() => conn.calls("currentTime", mark).length, "currentTime");
    return {
      codes: second.errors().map(([, c]) => c),
      connected,
      first_still_works: conn.ib.isConnected,
    };
  }

  async flow_reconnect(p) {
    const old = this.conn;
    old.ib.disconnect();
    await old.wait(() => old.closed(), "the socket closed");
    let conn = null;
    let refused = 0;
    for (let i = 0; i < 20; i++) {
      // the id is freed once the gateway has seen the socket close
      conn = await this.open(p.client_id);
      if (!conn.errors().some(([, c]) => c === 326)) break;
      refused++;
      conn.ib.disconnect();
      conn = null;
    }
    if (conn === null) throw new Error("client id still in use after 20 attempts");
    const opened = await this.openOrders(() => conn.ib.reqOpenOrders());
    const mark = conn.mark();
    conn.ib.reqPositions();
    await conn.wait(() => conn.calls("positionEnd", mark).length, "positionEnd");
    conn.ib.cancelPositions();
    const rid = this.reqId();
    conn.ib.reqExecutions(rid, {});
    await conn.wait(() => conn.forReq("execDetailsEnd", rid).length, "execDetailsEnd");
    const positions = {};
    for (const [, contract, pos] of conn.calls("position", mark)) positions[String(contract.conId)] = pos;
    return {
      refused_326: refused,
      server_version: conn.ib.serverVersion,
      next_valid_id: this.nextOrder,
      open_perm_ids: opened.map((o) => o.permId),
      positions,
      exec_ids: conn.forReq("execDetails", rid).map((a) => a[2].execId),
    };
  }

  // --- running ---

  async run() {
    for (const flow of this.spec.flows) {
      const method = this[`flow_${flow.name}`];
      let line;
      try {
        if (typeof method !== "function") throw new Error(`no flow_${flow.name} in this driver`);
        const obs = await method.call(this, flow.params);
        line = obs.unsupported ? { flow: flow.name, unsupported: obs.unsupported } : { flow: flow.name, obs };
      } catch (err) {
        line = { flow: flow.name, error: String(err && err.stack ? err.stack : err) };
      }
      process.stdout.write(`${JSON.stringify(line)}\n`);
    }
    if (this.conn) this.conn.ib.disconnect();
  }
}

function main() {
  let input = "";
  process.stdin.setEncoding("utf8");
  process.stdin.on("data", (chunk) => {
    input += chunk;
  });
  process.stdin.on("end", () => {
    new Driver(JSON.parse(input))
      .run()
      .then(() => process.exit(0))
      .catch((err) => {
        process.stderr.write(`${err && err.stack ? err.stack : err}\n`);
        process.exit(1);
      });
  });
}

main();
