"""Client→server request parsing: the fields the simulator acts on, read in wire order.

Layouts follow TWS_PROTOCOL.md §4; each parser consumes a `Fields` cursor positioned after the
message id and raises `WireError` (naming the message and field) on anything malformed.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from ibsim.model import UNSET_DOUBLE, OrderType, Side
from ibsim.ordertypes import WIRE_ORDER_TYPES
from ibsim.wire import Fields, WireError


@dataclass(frozen=True, slots=True)
class ContractFields:
    """The 12 contract fields every request carries."""

    con_id: int
    symbol: str
    sec_type: str
    expiry: str
    strike: float
    right: str
    multiplier: str
    exchange: str
    primary_exchange: str
    currency: str
    local_symbol: str
    trading_class: str


# lastTradeDateOrContractMonth as TWS itself writes it in CONTRACT_DATA: "20261218 08:30 US/Central"
_DATE_TIME_ZONE = re.compile(r"(\d{8})\s+\d{1,2}:\d{2}(?::\d{2})?(?:\s+\S+)?")


def read_expiry(text: str) -> str:
    """lastTradeDateOrContractMonth: "", "YYYYMM", "YYYYMMDD", or the date of TWS's own
    "YYYYMMDD HH:MM zone" form, which @stoqey/ib hands its users unsplit (its decoder splits on
    the literal text "\\s+") and so sends back for every contract it looked up."""
    m = _DATE_TIME_ZONE.fullmatch(text.strip())
    return m.group(1) if m else text


def read_contract(f: Fields) -> ContractFields:
    return ContractFields(
        con_id=f.integer(),
        symbol=f.text(),
        sec_type=f.text(),
        expiry=read_expiry(f.text()),
        strike=f.opt_float() or 0.0,
        right=f.text(),
        multiplier=f.text(),
        exchange=f.text(),
        primary_exchange=f.text(),
        currency=f.text(),
        local_symbol=f.text(),
        trading_class=f.text(),
    )


@dataclass(frozen=True, slots=True)
class PlacedOrder:
    """A PLACE_ORDER message: the contract plus the order fields the engine uses."""

    order_id: int
    contract: ContractFields
    action: Side
    total_quantity: float
    order_type: OrderType
    lmt_price: float | None
    aux_price: float | None
    tif: str
    oca_group: str
    account: str
    order_ref: str
    transmit: bool
    parent_id: int
    outside_rth: bool
    oca_type: int
    what_if: bool
    good_till_date: str = ""
    trail_stop_price: float | None = None
    trailing_percent: float | None = None
    lmt_price_offset: float | None = None  # None also when conditions hide it (not simulated)


_ACTIONS = {"BUY": Side.BUY, "SELL": Side.SELL}


class UnsupportedOrderError(ValueError):
    """A well-formed order the simulator does not model (answered with error 201 or 387)."""


def read_place_order(f: Fields, server_version: int) -> PlacedOrder:
    """Parse PLACE_ORDER (no version field) up to `lmtPriceOffset`; the rest is not needed."""
    order_id = f.integer()
    contract = read_contract(f)
    f.skip(2)  # secIdType, secId
    action_text = f.text()
    quantity = f.opt_float()
    type_text = f.text()
    lmt_price = f.opt_float()
    aux_price = f.opt_float()
    tif = f.text()
    oca_group = f.text()
    account = f.text()
    f.skip(2)  # openClose, origin
    order_ref = f.text()
    transmit = f.flag()
    parent_id = f.integer()
    f.skip(4)  # blockOrder, sweepToFill, displaySize, triggerMethod
    outside_rth = f.flag()
    f.skip(1)  # hidden
    if contract.sec_type == "BAG":
        raise UnsupportedOrderError("combo (BAG) orders are not simulated")
    f.skip(3)  # sharesAllocation, discretionaryAmt, goodAfterTime
    good_till_date = f.text()
    f.skip(3)  # faGroup, faMethod, faPercentage
    if server_version < 177:
        f.skip(1)  # faProfile
    f.skip(4)  # modelCode, shortSaleSlot, designatedLocation, exemptCode
    oca_type = f.integer()
    f.skip(17)  # rule80A .. volatilityType
    delta_neutral_type = f.text()
    f.skip(1)  # deltaNeutralAuxPrice
    if delta_neutral_type:
        f.skip(8)
    f.skip(2)  # continuousUpdate, referencePriceType
    trail_stop_price = f.opt_float()
    trailing_percent = f.opt_float()
    f.skip(2)  # scaleInitLevelSize, scaleSubsLevelSize
    increment = f.opt_float()
    if increment is not None and 0 < increment < UNSET_DOUBLE:
        f.skip(7)
    f.skip(3)  # scaleTable, activeStartTime, activeStopTime
    if f.text():  # hedgeType
        f.skip(1)
    f.skip(4)  # optOutSmartRouting, clearingAccount, clearingIntent, notHeld
    if f.flag():  # dncFlag
        f.skip(3)
    if f.text():  # algoStrategy
        f.skip(2 * f.integer())
    f.skip(1)  # algoId
    what_if = f.flag()
    f.skip(4)  # orderMiscOptions, solicited, randomizeSize, randomizePrice
    if type_text in ("PEG BENCH", "PEGBENCH"):
        f.skip(5)
    lmt_price_offset = None
    if f.integer() == 0:  # conditions: not simulated, so the fields after them are not read
        f.skip(2)  # adjustedOrderType, triggerPrice
        lmt_price_offset = f.opt_float()

    if action_text not in _ACTIONS:
        raise WireError(f"placeOrder: action {action_text!r} is not BUY or SELL")
    if type_text not in WIRE_ORDER_TYPES:
        raise UnsupportedOrderError(f"order type {type_text!r} is not simulated")
    return PlacedOrder(
        order_id=order_id,
        contract=contract,
        action=_ACTIONS[action_text],
        total_quantity=quantity or 0.0,
        order_type=WIRE_ORDER_TYPES[type_text],
        lmt_price=lmt_price,
        aux_price=aux_price,
        tif=tif or "DAY",
        oca_group=oca_group,
        account=account,
        order_ref=order_ref,
        transmit=transmit,
        parent_id=parent_id,
        outside_rth=outside_rth,
        oca_type=oca_type,
        what_if=what_if,
        good_till_date=good_till_date,
        trail_stop_price=trail_stop_price,
        trailing_percent=trailing_percent,
        lmt_price_offset=lmt_price_offset,
    )


@dataclass(frozen=True, slots=True)
class MktDataRequest:
    req_id: int
    contract: ContractFields
    generic_ticks: frozenset[str]
    snapshot: bool


def read_mkt_data(f: Fields) -> MktDataRequest:
    f.skip(1)  # version
    req_id = f.integer()
    contract = read_contract(f)
    if contract.sec_type == "BAG":
        f.skip(4 * f.integer())
    if f.flag():  # delta-neutral contract
        f.skip(3)
    generic = frozenset(t.strip() for t in f.text().split(",") if t.strip())
    snapshot = f.flag()
    return MktDataRequest(req_id, contract, generic, snapshot)


@dataclass(frozen=True, slots=True)
class ExecutionFilterFields:
    client_id: int
    account: str
    time: str
    symbol: str
    sec_type: str
    exchange: str
    side: str


def read_executions(f: Fields) -> tuple[int, ExecutionFilterFields]:
    f.skip(1)  # version
    req_id = f.integer()
    flt = ExecutionFilterFields(
        client_id=f.integer(),
        account=f.text(),
        time=f.text(),
        symbol=f.text(),
        sec_type=f.text(),
        exchange=f.text(),
        side=f.text(),
    )
    return req_id, flt


@dataclass(frozen=True, slots=True)
class HistoricalDataRequest:
    req_id: int
    contract: ContractFields
    include_expired: bool
    end: str
    bar_size: str
    duration: str
    use_rth: bool
    what_to_show: str
    format_date: int
    keep_up_to_date: bool


def read_historical_data(f: Fields) -> HistoricalDataRequest:
    req_id = f.integer()
    contract = read_contract(f)
    include_expired = f.flag()
    end = f.text()
    bar_size = f.text()
    duration = f.text()
    use_rth = f.flag()
    what = f.text()
    format_date = f.integer()
    if contract.sec_type == "BAG":
        f.skip(4 * f.integer())
    keep = f.flag()
    return HistoricalDataRequest(
        req_id, contract, include_expired, end, bar_size, duration, use_rth, what, format_date, keep
    )


@dataclass(frozen=True, slots=True)
class HistoricalTicksRequest:
    req_id: int
    contract: ContractFields
    include_expired: bool
    start: str
    end: str
    count: int
    what_to_show: str
    use_rth: bool


def read_historical_ticks(f: Fields) -> HistoricalTicksRequest:
    req_id = f.integer()
    contract = read_contract(f)
    include_expired = f.flag()
    start = f.text()
    end = f.text()
    count = f.integer()
    what = f.text()
    use_rth = f.flag()
    return HistoricalTicksRequest(
        req_id, contract, include_expired, start, end, count, what, use_rth
    )


@dataclass(frozen=True, slots=True)
class TickByTickRequest:
    req_id: int
    contract: ContractFields
    tick_type: str
    number_of_ticks: int


def read_tick_by_tick(f: Fields) -> TickByTickRequest:
    req_id = f.integer()
    contract = read_contract(f)
    tick_type = f.text()
    number = f.integer()
    return TickByTickRequest(req_id, contract, tick_type, number)
