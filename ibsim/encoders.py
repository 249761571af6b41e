"""Server→client messages, one method each, with the field layouts gated by server version.

Layouts follow TWS_PROTOCOL.md §5; every method is decoded back by ib_async (and ibapi at 157)
in tests/ibsim/test_encoders.py. Version gates are data (the `_GATES` table), not scattered ifs.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo

from ibsim.answers.encoding import AnswerEncoding
from ibsim.model import (
    UNSET_DOUBLE,
    UNSET_INTEGER,
    Execution,
    FutureSpec,
    Order,
    Position,
)
from ibsim.ordertypes import ADVERTISED_TEXT
from ibsim.wire import frame_text, message, message_from

CENTRAL = ZoneInfo("America/Chicago")


class In:
    """Incoming (client→server) message ids."""

    REQ_MKT_DATA = 1
    CANCEL_MKT_DATA = 2
    PLACE_ORDER = 3
    CANCEL_ORDER = 4
    REQ_OPEN_ORDERS = 5
    REQ_ACCOUNT_UPDATES = 6
    REQ_EXECUTIONS = 7
    REQ_IDS = 8
    REQ_CONTRACT_DATA = 9
    REQ_MKT_DEPTH = 10
    CANCEL_MKT_DEPTH = 11
    REQ_AUTO_OPEN_ORDERS = 15
    REQ_ALL_OPEN_ORDERS = 16
    REQ_MANAGED_ACCTS = 17
    REQ_HISTORICAL_DATA = 20
    CANCEL_HISTORICAL_DATA = 25
    REQ_CURRENT_TIME = 49
    REQ_GLOBAL_CANCEL = 58
    REQ_MARKET_DATA_TYPE = 59
    REQ_POSITIONS = 61
    REQ_ACCOUNT_SUMMARY = 62
    CANCEL_ACCOUNT_SUMMARY = 63
    CANCEL_POSITIONS = 64
    START_API = 71
    REQ_POSITIONS_MULTI = 74
    CANCEL_POSITIONS_MULTI = 75
    REQ_ACCOUNT_UPDATES_MULTI = 76
    CANCEL_ACCOUNT_UPDATES_MULTI = 77
    REQ_HISTORICAL_TICKS = 96
    REQ_TICK_BY_TICK = 97
    CANCEL_TICK_BY_TICK = 98
    REQ_COMPLETED_ORDERS = 99


class Out:
    """Outgoing (server→client) message ids."""

    TICK_PRICE = 1
    TICK_SIZE = 2
    ORDER_STATUS = 3
    ERR_MSG = 4
    OPEN_ORDER = 5
    ACCT_VALUE = 6
    PORTFOLIO_VALUE = 7
    ACCT_UPDATE_TIME = 8
    NEXT_VALID_ID = 9
    CONTRACT_DATA = 10
    EXECUTION_DATA = 11
    MANAGED_ACCTS = 15
    HISTORICAL_DATA = 17
    TICK_GENERIC = 45
    TICK_STRING = 46
    CURRENT_TIME = 49
    CONTRACT_DATA_END = 52
    OPEN_ORDER_END = 53
    ACCT_DOWNLOAD_END = 54
    EXECUTION_DATA_END = 55
    TICK_SNAPSHOT_END = 57
    MARKET_DATA_TYPE = 58
    COMMISSION_REPORT = 59
    POSITION_DATA = 61
    POSITION_END = 62
    ACCOUNT_SUMMARY = 63
    ACCOUNT_SUMMARY_END = 64
    POSITION_MULTI = 71
    POSITION_MULTI_END = 72
    ACCOUNT_UPDATE_MULTI = 73
    ACCOUNT_UPDATE_MULTI_END = 74
    TICK_REQ_PARAMS = 81
    HISTORICAL_TICKS = 96
    HISTORICAL_TICKS_BID_ASK = 97
    HISTORICAL_TICKS_LAST = 98
    TICK_BY_TICK = 99
    COMPLETED_ORDER = 101
    COMPLETED_ORDERS_END = 102


# Server versions this simulator can speak. 158 and 163 are excluded on purpose: at 158 TWS
# sends OPEN_ORDER.duration that ib_async only reads from 159, and ib_async special-cases
# CONTRACT_DATA at exactly 163 (TWS_PROTOCOL.md §6).
MIN_VERSION = 157
MAX_VERSION = 178
UNSUPPORTED_VERSIONS = frozenset({158, 163})


@dataclass(frozen=True, slots=True)
class _Gates:
    """Which optional fields a server version carries."""

    contract_data_version: bool  # <164: CONTRACT_DATA version field + mdSizeMultiplier
    size_rules: bool  # ≥164: minSize, sizeIncrement, suggestedSizeIncrement
    err_advanced_json: bool  # ≥166
    fa_profile: bool  # <177
    duration: bool  # ≥158
    post_to_ats: bool  # ≥160
    auto_cancel_parent: bool  # ≥162
    peg_offsets: bool  # ≥170
    pending_price_revision: bool  # ≥178


def _gates(sv: int) -> _Gates:
    return _Gates(
        contract_data_version=sv < 164,
        size_rules=sv >= 164,
        err_advanced_json=sv >= 166,
        fa_profile=sv < 177,
        duration=sv >= 158,
        post_to_ats=sv >= 160,
        auto_cancel_parent=sv >= 162,
        peg_offsets=sv >= 170,
        pending_price_revision=sv >= 178,
    )


def negotiate(client_min: int, client_max: int, pinned: int | None = None) -> int | None:
    """Highest version both sides speak, or None when there is none."""
    if pinned is not None:
        ok = client_min <= pinned <= client_max and pinned not in UNSUPPORTED_VERSIONS
        return pinned if ok else None
    for sv in range(min(client_max, MAX_VERSION), max(client_min, MIN_VERSION) - 1, -1):
        if sv not in UNSUPPORTED_VERSIONS:
            return sv
    return None


def ib_time(epoch: float, zone: ZoneInfo = CENTRAL) -> str:
    """`YYYYMMDD HH:MM:SS <zone>` as TWS writes execution and connection times."""
    dt = datetime.fromtimestamp(epoch, zone)
    return f"{dt:%Y%m%d %H:%M:%S} {zone.key}"


ORDER_TYPES = ADVERTISED_TEXT  # only what the engine implements (ordertypes.py)

_U_D = UNSET_DOUBLE
_U_I = UNSET_INTEGER
_U_LONG = 2**63 - 1


def _price(value: float | None) -> float:
    return _U_D if value is None else value


def _trail_stop(order: Order) -> float:
    """A trailing order's stop now (its initial one until the market is known)."""
    stop = order.trail_stop if order.trail_stop is not None else order.request.trail_stop_price
    return _price(stop)


class Encoder(AnswerEncoding):
    """Builds framed server messages for one negotiated server version."""

    def __init__(self, server_version: int) -> None:
        self.server_version = server_version
        self.gates = _gates(server_version)

    # --- handshake and session ---

    def handshake(self, conn_time: float) -> bytes:
        return message(self.server_version, ib_time(conn_time))

    def next_valid_id(self, order_id: int) -> bytes:
        return message(Out.NEXT_VALID_ID, 1, order_id)

    def managed_accounts(self, accounts: Sequence[str]) -> bytes:
        return message(Out.MANAGED_ACCTS, 1, ",".join(accounts))

    def error(self, req_id: int, code: int, text: str) -> bytes:
        if self.gates.err_advanced_json:
            return message(Out.ERR_MSG, 2, req_id, code, text, "")
        return message(Out.ERR_MSG, 2, req_id, code, text)

    def current_time(self, epoch: float) -> bytes:
        return message(Out.CURRENT_TIME, 1, int(epoch))

    def end(self, msg_id: int, req_id: int) -> bytes:
        """The `…_END` messages that carry only a reqId (52, 55, 57, 64, 72, 74)."""
        return message(msg_id, 1, req_id)

    def open_order_end(self) -> bytes:
        return message(Out.OPEN_ORDER_END, 1)

    def position_end(self) -> bytes:
        return message(Out.POSITION_END, 1)

    def completed_orders_end(self) -> bytes:
        return message(Out.COMPLETED_ORDERS_END)

    # --- market data ---

    def tick_price(self, req_id: int, tick_type: int, price: float, size: int, mask: int) -> bytes:
        return message(Out.TICK_PRICE, 6, req_id, tick_type, price, size, mask)

    def tick_size(self, req_id: int, tick_type: int, size: int) -> bytes:
        return message(Out.TICK_SIZE, 6, req_id, tick_type, size)

    def tick_string(self, req_id: int, tick_type: int, value: str) -> bytes:
        return message(Out.TICK_STRING, 6, req_id, tick_type, value)

    def tick_generic(self, req_id: int, tick_type: int, value: float) -> bytes:
        return message(Out.TICK_GENERIC, 6, req_id, tick_type, value)

    def tick_req_params(self, req_id: int, min_tick: float, bbo_exchange: str) -> bytes:
        return message(Out.TICK_REQ_PARAMS, req_id, min_tick, bbo_exchange, 3)

    def market_data_type(self, req_id: int, data_type: int) -> bytes:
        return message(Out.MARKET_DATA_TYPE, 1, req_id, data_type)

    # The two tick-by-tick encoders are the gateway's hot path (one call per market event and
    # subscriber): they format directly, producing exactly the text `message` would for these
    # types (ints, finite floats via repr); tests compare both.
    def tick_by_tick_last(
        self, req_id: int, tick_type: int, t: int, price: float, size: int, mask: int = 0
    ) -> bytes:
        return frame_text(f"99\0{req_id}\0{tick_type}\0{t}\0{price!r}\0{size}\0{mask}\0CME\0\0")

    def tick_by_tick_bid_ask(
        self, req_id: int, t: int, bid: float, ask: float, bid_size: int, ask_size: int
    ) -> bytes:
        return frame_text(
            f"99\0{req_id}\0003\0{t}\0{bid!r}\0{ask!r}\0{bid_size}\0{ask_size}\0000\0"
        )

    def tick_by_tick_midpoint(self, req_id: int, t: int, mid: float) -> bytes:
        return message(Out.TICK_BY_TICK, req_id, 4, t, mid)

    def historical_data(
        self, req_id: int, start: str, end: str, bars: Sequence[tuple[object, ...]]
    ) -> bytes:
        """`bars` rows: (date, open, high, low, close, volume:int, wap, barCount:int)."""
        fields: list[object] = [Out.HISTORICAL_DATA, req_id, start, end, len(bars)]
        for bar in bars:
            fields.extend(bar)
        return message_from(fields)

    def historical_ticks_last(
        self,
        req_id: int,
        ticks: Sequence[tuple[int, float, int]],
        done: bool,
        exchange: str = "CME",
    ) -> bytes:
        """`ticks` rows: (epoch seconds, price, size)."""
        fields: list[object] = [Out.HISTORICAL_TICKS_LAST, req_id, len(ticks)]
        for t, price, size in ticks:
            fields += (t, 0, price, size, exchange, "")
        fields.append(done)
        return message_from(fields)

    def historical_ticks_bid_ask(
        self, req_id: int, ticks: Sequence[tuple[int, float, float, int, int]], done: bool
    ) -> bytes:
        """`ticks` rows: (epoch seconds, bid, ask, bid size, ask size)."""
        fields: list[object] = [Out.HISTORICAL_TICKS_BID_ASK, req_id, len(ticks)]
        for t, bid, ask, bid_size, ask_size in ticks:
            fields += (t, 0, bid, ask, bid_size, ask_size)
        fields.append(done)
        return message_from(fields)

    def historical_ticks_midpoint(
        self, req_id: int, ticks: Sequence[tuple[int, float]], done: bool
    ) -> bytes:
        fields: list[object] = [Out.HISTORICAL_TICKS, req_id, len(ticks)]
        for t, price in ticks:
            fields += (t, 0, price, 0)
        fields.append(done)
        return message_from(fields)

    # --- contracts ---

    def contract_data(self, req_id: int, spec: FutureSpec) -> bytes:
        g = self.gates
        fields: list[object] = [Out.CONTRACT_DATA]
        if g.contract_data_version:
            fields.append(8)
        fields += [
            req_id,
            spec.symbol,
            "FUT",
            f"{spec.expiry} {spec.last_trade_time} {spec.time_zone_id}",
            0.0,
            "",
            spec.exchange,
            spec.currency,
            spec.local_symbol,
            spec.trading_class,  # marketName
            spec.trading_class,
            spec.con_id,
            spec.min_tick,
        ]
        if g.contract_data_version:
            fields.append(1)  # mdSizeMultiplier
        fields += [
            str(spec.multiplier),
            ORDER_TYPES,
            f"{spec.exchange},QBALGO",  # validExchanges
            1,  # priceMagnifier
            spec.under_con_id,
            spec.long_name,
            "",  # primaryExchange
            spec.contract_month,
            "",
            "",
            "",
            spec.time_zone_id,
            spec.trading_hours,
            spec.liquid_hours,
            "",  # evRule
            0,  # evMultiplier
            0,  # nSecIds
            0,  # aggGroup
            spec.symbol,  # underSymbol
            "IND",
            f"{spec.market_rule_id},{spec.market_rule_id}",  # marketRuleIds, per valid exchange
            spec.expiry,  # realExpirationDate
            "",  # stockType
        ]
        if g.size_rules:
            fields += [1, 1, 1]
        return message_from(fields)

    # --- orders ---

    def _contract11(self, spec: FutureSpec) -> list[object]:
        return [
            spec.con_id,
            spec.symbol,
            "FUT",
            spec.expiry,
            0.0,
            "?",
            str(spec.multiplier),
            spec.exchange,
            spec.currency,
            spec.local_symbol,
            spec.trading_class,
        ]

    def _order_head(self, order: Order, *, completed: bool) -> list[object]:
        req = order.request
        head: list[object] = [
            req.action.value,
            req.total_quantity,
            req.order_type.value,
            req.lmt_price or 0.0,  # TWS sends 0 for a price the order type does not use
            req.aux_price or 0.0,
            req.tif,
            req.oca_group,
            req.account,
            "",  # openClose (futures)
            0,  # origin: customer
            req.order_ref,
        ]
        if not completed:
            head.append(req.client_id)
        head += [order.perm_id, req.outside_rth, False, 0.0, ""]  # hidden, discAmt, goodAfter
        if not completed:
            head.append("")  # sharesAllocation (ignored)
        head += ["", "", ""]  # faGroup, faMethod, faPercentage
        if self.gates.fa_profile:
            head.append("")
        return head

    def open_order(self, spec: FutureSpec, order: Order, what_if_margin: float | None) -> bytes:
        req = order.request
        fields: list[object] = [Out.OPEN_ORDER, req.order_id, *self._contract11(spec)]
        fields += self._order_head(order, completed=False)
        fields += [
            "",  # modelCode
            req.good_till_date,
            "",  # rule80A
            _U_D,  # percentOffset
            "",  # settlingFirm
            0,  # shortSaleSlot
            "",  # designatedLocation
            -1,  # exemptCode
            0,  # auctionStrategy
            _U_D,  # startingPrice
            _U_D,  # stockRefPrice
            _U_D,  # delta
            _U_D,  # stockRangeLower
            _U_D,  # stockRangeUpper
            0,  # displaySize
            False,  # blockOrder
            False,  # sweepToFill
            False,  # allOrNone
            _U_I,  # minQty
            req.oca_type or 3,  # ocaType
            False,  # eTradeOnly
            False,  # firmQuoteOnly
            _U_D,  # nbboPriceCap
            req.parent_id,
            0,  # triggerMethod
            _U_D,  # volatility
            0,  # volatilityType
            "",  # deltaNeutralOrderType: empty, so no delta-neutral group follows
            _U_D,  # deltaNeutralAuxPrice
        ]
        fields += [
            False,  # continuousUpdate
            0,  # referencePriceType
            _trail_stop(order),
            _price(req.trailing_percent),
            _U_D,  # basisPoints
            _U_I,  # basisPointsType
            "",  # comboLegsDescrip
            0,  # nComboLegs
            0,  # nOrderComboLegs
            0,  # nSmartComboRoutingParams
            _U_I,  # scaleInitLevelSize
            _U_I,  # scaleSubsLevelSize
            _U_D,  # scalePriceIncrement
            "",  # hedgeType
            False,  # optOutSmartRouting
            "",  # clearingAccount
            "",  # clearingIntent
            False,  # notHeld
            False,  # dncPresent
            "",  # algoStrategy
            False,  # solicited
        ]
        fields += self._order_state(order, what_if_margin)
        fields += [False, False]  # randomizeSize, randomizePrice
        fields.append(0)  # nConditions
        fields += [
            "None",  # adjustedOrderType
            _U_D,  # triggerPrice
            _trail_stop(order),
            _price(req.lmt_price_offset),
            _U_D,  # adjustedStopPrice
            _U_D,  # adjustedStopLimitPrice
            _U_D,  # adjustedTrailingAmount
            0,  # adjustableTrailingUnit
            "",  # softDollarTier name
            "",  # value
            "",  # displayName
            _U_D,  # cashQty
            False,  # dontUseAutoPriceForHedge
            False,  # isOmsContainer
            False,  # discretionaryUpToLimitPrice
            False,  # usePriceMgmtAlgo
        ]
        fields += self._order_tail(order)
        return message_from(fields)

    def _order_state(self, order: Order, what_if_margin: float | None) -> list[object]:
        """whatIf, status, margins (as strings), commissions, warning text."""
        req = order.request
        if what_if_margin is None:
            margins: list[object] = [_U_D] * 9
            commission: list[object] = [_U_D, _U_D, _U_D, ""]
        else:
            pos_margin = f"{what_if_margin:.2f}"
            margins = ["0.00", "0.00", "0.00", pos_margin, pos_margin, "0.00"]
            margins += [pos_margin, pos_margin, "0.00"]
            fee = 2.25 * req.total_quantity
            commission = [fee, fee, fee, "USD"]
        return [req.what_if, order.status.value, *margins, *commission, ""]

    def _order_tail(self, order: Order) -> list[object]:
        g = self.gates
        tail: list[object] = []
        if g.duration:
            tail.append(_U_I)
        if g.post_to_ats:
            tail.append(_U_I)
        if g.auto_cancel_parent:
            tail.append(False)
        if g.peg_offsets:
            tail += [_U_I, _U_I, _U_D, _U_D, _U_D]
        return tail

    def order_status(self, order: Order) -> bytes:
        req = order.request
        return message(
            Out.ORDER_STATUS,
            req.order_id,
            order.status.value,
            order.filled,
            order.remaining,
            order.avg_fill_price,
            order.perm_id,
            req.parent_id,
            order.last_fill_price,
            req.client_id,
            order.why_held,
            0.0,
        )

    def completed_order(self, spec: FutureSpec, order: Order) -> bytes:
        req = order.request
        fields: list[object] = [Out.COMPLETED_ORDER, *self._contract11(spec)]
        fields += self._order_head(order, completed=True)
        fields += [
            "",  # modelCode
            req.good_till_date,
            "",  # rule80A
            _U_D,  # percentOffset
            "",  # settlingFirm
            0,  # shortSaleSlot
            "",  # designatedLocation
            -1,  # exemptCode
            _U_D,  # startingPrice
            _U_D,  # stockRefPrice
            _U_D,  # delta
            _U_D,  # stockRangeLower
            _U_D,  # stockRangeUpper
            0,  # displaySize
            False,  # sweepToFill
            False,  # allOrNone
            _U_I,  # minQty
            req.oca_type or 3,
            0,  # triggerMethod
            _U_D,  # volatility
            0,  # volatilityType
            "",  # deltaNeutralOrderType
            _U_D,  # deltaNeutralAuxPrice
            False,  # continuousUpdate
            0,  # referencePriceType
            _trail_stop(order),
            _price(req.trailing_percent),
            "",  # comboLegsDescrip
            0,
            0,
            0,  # combo legs, order combo legs, smart params
            _U_I,
            _U_I,
            _U_D,  # scale
            "",  # hedgeType
            "",  # clearingAccount
            "",  # clearingIntent
            False,  # notHeld
            False,  # dncPresent
            "",  # algoStrategy
            False,  # solicited
            order.status.value,
            False,  # randomizeSize
            False,  # randomizePrice
            0,  # nConditions
            _trail_stop(order),
            _price(req.lmt_price_offset),
            _U_D,  # cashQty
            False,  # dontUseAutoPriceForHedge
            False,  # isOmsContainer
            "",  # autoCancelDate
            order.filled,  # filledQuantity
            0,  # refFuturesConId
            False,  # autoCancelParent
            "",  # shareholder
            False,  # imbalanceOnly
            False,  # routeMarketableToBbo
            _U_LONG,  # parentPermId: TWS's unset long
            _completed_time(order.completed_time),
            _completed_status(order),
        ]
        if self.gates.peg_offsets:
            fields += [_U_I, _U_I, _U_D, _U_D, _U_D]
        return message_from(fields)

    def execution(self, req_id: int, spec: FutureSpec, ex: Execution) -> bytes:
        fields: list[object] = [
            Out.EXECUTION_DATA,
            req_id,
            ex.order_id,
            *self._contract11(spec)[:3],
            spec.expiry,
            0.0,
            "",
            str(spec.multiplier),
            spec.exchange,
            spec.currency,
            spec.local_symbol,
            spec.trading_class,
            ex.exec_id,
            ib_time(ex.time),
            ex.account,
            spec.exchange,
            "BOT" if ex.side == "BUY" else "SLD",
            ex.shares,
            ex.price,
            ex.perm_id,
            ex.client_id,
            0,  # liquidation
            ex.cum_qty,
            ex.avg_price,
            ex.order_ref,
            "",  # evRule
            _U_D,  # evMultiplier
            "",  # modelCode
            ex.liquidity,
        ]
        if self.gates.pending_price_revision:
            fields.append(False)
        return message_from(fields)

    def commission_report(self, ex: Execution) -> bytes:
        pnl = _U_D if ex.realized_pnl is None else ex.realized_pnl
        return message(Out.COMMISSION_REPORT, 1, ex.exec_id, ex.commission, "USD", pnl, _U_D, "")

    # --- account ---

    def position(self, spec: FutureSpec, pos: Position) -> bytes:
        return message(
            Out.POSITION_DATA,
            3,
            pos.account,
            spec.con_id,
            spec.symbol,
            "FUT",
            spec.expiry,
            0.0,
            "",
            str(spec.multiplier),
            spec.exchange,
            spec.currency,
            spec.local_symbol,
            spec.trading_class,
            pos.quantity,
            pos.avg_cost,
        )

    def portfolio_value(self, spec: FutureSpec, pos: Position, mark: float) -> bytes:
        value = pos.quantity * mark * spec.multiplier
        unrealized = value - pos.quantity * pos.avg_cost
        return message(
            Out.PORTFOLIO_VALUE,
            8,
            spec.con_id,
            spec.symbol,
            "FUT",
            spec.expiry,
            0.0,
            "",
            str(spec.multiplier),
            "",  # primaryExchange
            spec.currency,
            spec.local_symbol,
            spec.trading_class,
            pos.quantity,
            mark,
            round(value, 2),
            pos.avg_cost,
            round(unrealized, 2),
            round(pos.realized_pnl, 2),
            pos.account,
        )

    def account_value(self, key: str, value: str, currency: str, account: str) -> bytes:
        return message(Out.ACCT_VALUE, 2, key, value, currency, account)

    def account_update_time(self, epoch: float) -> bytes:
        return message(Out.ACCT_UPDATE_TIME, 1, f"{datetime.fromtimestamp(epoch, CENTRAL):%H:%M}")

    def account_download_end(self, account: str) -> bytes:
        return message(Out.ACCT_DOWNLOAD_END, 1, account)

    def account_update_multi(
        self, req_id: int, account: str, key: str, value: str, currency: str
    ) -> bytes:
        return message(Out.ACCOUNT_UPDATE_MULTI, 1, req_id, account, "", key, value, currency)

    def account_summary(
        self, req_id: int, account: str, tag: str, value: str, currency: str
    ) -> bytes:
        return message(Out.ACCOUNT_SUMMARY, 1, req_id, account, tag, value, currency)

    def position_multi(self, req_id: int, spec: FutureSpec, pos: Position) -> bytes:
        return message(
            Out.POSITION_MULTI,
            1,
            req_id,
            pos.account,
            spec.con_id,
            spec.symbol,
            "FUT",
            spec.expiry,
            0.0,
            "",
            str(spec.multiplier),
            spec.exchange,
            spec.currency,
            spec.local_symbol,
            spec.trading_class,
            pos.quantity,
            pos.avg_cost,
            "",
        )


def _completed_time(epoch: float | None) -> str:
    """In TWS's time zone, as it writes every time (`20250708 02:34:46 America/New_York`)."""
    return "" if epoch is None else ib_time(epoch)


def _completed_status(order: Order) -> str:
    if order.status == "Filled":
        return "Filled Size: " + str(order.filled)
    if order.status == "Inactive":
        return "Rejected"
    return "Cancelled by Trader"
