"""The futures listing of every product (`products.py`): quarterly expiries as IB describes
them, and contract lookup.

Each product lists March (H), June (M), September (U) and December (Z) contracts. The last trade
date is the third Friday of the contract month, or the business day before it when that Friday
is an exchange holiday; trading ends with the final settlement at 08:30 CT that day (YM and MYM
too: they settle on the Dow's special opening quotation).

conIds are synthetic but stable: `product.con_id_base + CON_ID_STEP * (12 * year + month)`, a
9-digit value unique per product and expiry (the bases are 1,000,000 apart and the expiries of
FIRST_YEAR to LAST_YEAR span less), so any quarterly expiry can be looked up. ES keeps the
base 600,000,000 it always had.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import NamedTuple

from ibsim import calendar
from ibsim.model import FutureSpec
from ibsim.products import PRODUCTS, Product

MONTH_CODES = {3: "H", 6: "M", 9: "U", 12: "Z"}
_MONTH_BY_CODE = {code: month for month, code in MONTH_CODES.items()}

LAST_TRADE_TIME = time(8, 30)
FIRST_YEAR = 2010
LAST_YEAR = 2040
CON_ID_STEP = 1_009

_LOCAL_SYMBOL = re.compile(r"([A-Z0-9]+)([HMUZ])(\d)")  # MESZ6: symbol, month, year digit


def last_trade_date(year: int, month: int) -> date:
    """Last trade date of the contract for `year`/`month`: its third Friday, or the business
    day before when that is a holiday."""
    first = date(year, month, 1)
    d = first + timedelta(days=(4 - first.weekday()) % 7 + 14)
    while d.weekday() >= 5 or calendar.is_exchange_holiday(d):
        d -= timedelta(days=1)
    return d


class _Expiry(NamedTuple):
    """One quarterly contract, identified by its product and contract month."""

    year: int
    month: int
    product: Product

    @property
    def last_trade_date(self) -> date:
        return last_trade_date(self.year, self.month)

    @property
    def last_trade_utc(self) -> float:
        return datetime.combine(
            self.last_trade_date, LAST_TRADE_TIME, tzinfo=calendar.CENTRAL
        ).timestamp()

    @property
    def con_id(self) -> int:
        return self.product.con_id_base + CON_ID_STEP * (12 * self.year + self.month)

    @property
    def local_symbol(self) -> str:
        return f"{self.product.symbol}{MONTH_CODES[self.month]}{self.year % 10}"

    @property
    def contract_month(self) -> str:
        return f"{self.year:04d}{self.month:02d}"

    def expired(self, now_utc: float) -> bool:
        return now_utc >= self.last_trade_utc

    def next(self) -> _Expiry:
        if self.month == 12:
            return _Expiry(self.year + 1, 3, self.product)
        return _Expiry(self.year, self.month + 3, self.product)

    def spec(self, now_utc: float | None) -> FutureSpec:
        hours = ("", "")
        if now_utc is not None:
            hours = (calendar.trading_hours(now_utc), calendar.liquid_hours(now_utc))
        p = self.product
        return FutureSpec(
            con_id=self.con_id,
            symbol=p.symbol,
            local_symbol=self.local_symbol,
            expiry=f"{self.last_trade_date:%Y%m%d}",
            contract_month=self.contract_month,
            last_trade_time=f"{LAST_TRADE_TIME:%H:%M}",
            exchange=p.exchange,
            trading_class=p.symbol,
            multiplier=p.multiplier,
            min_tick=p.tick_size,
            long_name=p.long_name,
            under_con_id=p.under_con_id,
            trading_hours=hours[0],
            liquid_hours=hours[1],
            market_rule_id=p.market_rule_id,
        )


def _all_expiries(product: Product) -> list[_Expiry]:
    years = range(FIRST_YEAR, LAST_YEAR + 1)
    return [_Expiry(y, m, product) for y in years for m in MONTH_CODES]


def listed_futures(now_utc: float, count: int = 4, symbol: str = "ES") -> list[FutureSpec]:
    """The next `count` quarterly contracts of `symbol` not expired at epoch time `now_utc`,
    nearest first.

    This is what a gateway answers for an unqualified `Future('ES', exchange='CME')`.
    """
    today = datetime.fromtimestamp(now_utc, calendar.CENTRAL).date()
    expiry = _Expiry(today.year, (today.month + 2) // 3 * 3, PRODUCTS[symbol])
    result: list[FutureSpec] = []
    while len(result) < count:
        if not expiry.expired(now_utc):
            result.append(expiry.spec(now_utc))
        expiry = expiry.next()
    return result


def by_con_id(con_id: int, now_utc: float | None = None) -> FutureSpec | None:
    """The contract with `con_id` (expired or not), hours filled when `now_utc` is given."""
    expiry = _expiry_from_con_id(con_id)
    return None if expiry is None else expiry.spec(now_utc)


def _expiry_from_con_id(con_id: int) -> _Expiry | None:
    for product in PRODUCTS.values():
        index, remainder = divmod(con_id - product.con_id_base, CON_ID_STEP)
        if remainder:
            continue
        year, month_index = divmod(index - 1, 12)
        expiry = _Expiry(year, month_index + 1, product)
        if expiry.month in MONTH_CODES and FIRST_YEAR <= year <= LAST_YEAR:
            return expiry
    return None


def product_of_con_id(con_id: int) -> Product | None:
    """The product a listed conId belongs to (expired or not); None for any other number."""
    expiry = _expiry_from_con_id(con_id)
    return None if expiry is None else expiry.product


@dataclass(frozen=True, slots=True)
class ContractQuery:
    """The contract fields of a reqContractDetails (or order) request; empty means unset."""

    con_id: int = 0
    symbol: str = ""
    sec_type: str = ""
    expiry: str = ""  # lastTradeDateOrContractMonth: "", "YYYYMM" or "YYYYMMDD"
    local_symbol: str = ""
    exchange: str = ""
    currency: str = ""
    trading_class: str = ""
    include_expired: bool = False


def resolve(query: ContractQuery, now_utc: float) -> list[FutureSpec]:
    """The contracts matching `query` at epoch time `now_utc`; [] when nothing matches.

    A conId, local symbol or expiry picks one contract (which must agree with the other fields
    given); with none of them the query is unqualified and gets the listed contracts. Expired
    contracts only match with `include_expired`.
    """
    product = _described_product(query)
    if product is None:
        return []
    if query.con_id:
        found = _expiry_from_con_id(query.con_id)
        candidates = [] if found is None or found.product != product else [found]
    elif query.local_symbol:
        candidates = _decode_local_symbol(
            product, query.local_symbol, now_utc, query.include_expired
        )
    elif query.expiry:
        candidates = [e for e in _all_expiries(product) if _expiry_matches(e, query.expiry)]
    else:
        return listed_futures(now_utc, symbol=product.symbol)
    return [
        e.spec(now_utc)
        for e in candidates
        if (query.include_expired or not e.expired(now_utc))
        and (not query.expiry or _expiry_matches(e, query.expiry))
        and (not query.local_symbol or e.local_symbol == query.local_symbol.upper())
    ]


def _described_product(query: ContractQuery) -> Product | None:
    """The listed product `query` names (by symbol, else by conId or local symbol) if the
    rest of it fits that product; None otherwise."""
    sec_type = query.sec_type.upper()
    if not (sec_type == "FUT" or (sec_type == "" and query.con_id != 0)):
        return None
    symbol = query.symbol.upper()
    if symbol:
        product = PRODUCTS.get(symbol)
    elif query.con_id:
        product = product_of_con_id(query.con_id)
    else:
        match = _LOCAL_SYMBOL.fullmatch(query.local_symbol.upper())
        product = None if match is None else PRODUCTS.get(match[1])
    if (
        product is None
        or query.exchange.upper() not in product.exchanges
        or query.currency.upper() not in {"", "USD"}
        or query.trading_class.upper() not in {"", product.symbol}
    ):
        return None
    return product


def _expiry_matches(expiry: _Expiry, wanted: str) -> bool:
    if len(wanted) == 6:
        return expiry.contract_month == wanted
    return len(wanted) == 8 and f"{expiry.last_trade_date:%Y%m%d}" == wanted


def _decode_local_symbol(
    product: Product, local_symbol: str, now_utc: float, include_expired: bool
) -> list[_Expiry]:
    """The contract a one-digit-year local symbol means at `now_utc`: the nearest live one, or
    with `include_expired` whichever of that and the latest expired one is closer in time."""
    match = _LOCAL_SYMBOL.fullmatch(local_symbol.upper())
    if match is None or match[1] != product.symbol:
        return []
    month, digit = _MONTH_BY_CODE[match[2]], int(match[3])
    same = [e for e in _all_expiries(product) if e.month == month and e.year % 10 == digit]
    live = [e for e in same if not e.expired(now_utc)][:1]
    dead = [e for e in same if e.expired(now_utc)][-1:]
    if not include_expired or not dead:
        return live
    if not live:
        return dead
    nearer = min(live[0], dead[0], key=lambda e: abs(e.last_trade_utc - now_utc))
    return [nearer]
