"""The ES futures listing: quarterly expiries as IB describes them, and contract lookup.

ES lists March (H), June (M), September (U) and December (Z) contracts. The last trade date is
the third Friday of the contract month, or the business day before it when that Friday is an
exchange holiday; trading ends with the final settlement at 08:30 CT that day.

conIds are synthetic but stable: `CON_ID_BASE + CON_ID_STEP * (12 * year + month)`, a 9-digit
value unique per expiry, so any quarterly expiry from FIRST_YEAR to LAST_YEAR can be looked up.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import NamedTuple

from ibsim import calendar
from ibsim.model import FutureSpec

MONTH_CODES = {3: "H", 6: "M", 9: "U", 12: "Z"}
_MONTH_BY_CODE = {code: month for month, code in MONTH_CODES.items()}

LAST_TRADE_TIME = time(8, 30)
FIRST_YEAR = 2010
LAST_YEAR = 2040
CON_ID_BASE = 600_000_000
CON_ID_STEP = 1_009

_EXCHANGES = frozenset({"", "CME", "GLOBEX"})  # IB still maps GLOBEX to CME
_LOCAL_SYMBOL = re.compile(r"ES([HMUZ])(\d)")


def last_trade_date(year: int, month: int) -> date:
    """Last trade date of the contract for `year`/`month`: its third Friday, or the business
    day before when that is a holiday."""
    first = date(year, month, 1)
    d = first + timedelta(days=(4 - first.weekday()) % 7 + 14)
    while d.weekday() >= 5 or calendar.is_exchange_holiday(d):
        d -= timedelta(days=1)
    return d


class _Expiry(NamedTuple):
    """One quarterly contract, identified by its contract month."""

    year: int
    month: int

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
        return CON_ID_BASE + CON_ID_STEP * (12 * self.year + self.month)

    @property
    def local_symbol(self) -> str:
        return f"ES{MONTH_CODES[self.month]}{self.year % 10}"

    @property
    def contract_month(self) -> str:
        return f"{self.year:04d}{self.month:02d}"

    def expired(self, now_utc: float) -> bool:
        return now_utc >= self.last_trade_utc

    def next(self) -> _Expiry:
        return _Expiry(self.year + 1, 3) if self.month == 12 else _Expiry(self.year, self.month + 3)

    def spec(self, now_utc: float | None) -> FutureSpec:
        hours = ("", "")
        if now_utc is not None:
            hours = (calendar.trading_hours(now_utc), calendar.liquid_hours(now_utc))
        return FutureSpec(
            con_id=self.con_id,
            symbol="ES",
            local_symbol=self.local_symbol,
            expiry=f"{self.last_trade_date:%Y%m%d}",
            contract_month=self.contract_month,
            last_trade_time=f"{LAST_TRADE_TIME:%H:%M}",
            trading_hours=hours[0],
            liquid_hours=hours[1],
        )


def _all_expiries() -> list[_Expiry]:
    return [_Expiry(y, m) for y in range(FIRST_YEAR, LAST_YEAR + 1) for m in MONTH_CODES]


def listed_futures(now_utc: float, count: int = 4) -> list[FutureSpec]:
    """The next `count` quarterly contracts not expired at epoch time `now_utc`, nearest first.

    This is what a gateway answers for an unqualified `Future('ES', exchange='CME')`.
    """
    today = datetime.fromtimestamp(now_utc, calendar.CENTRAL).date()
    expiry = _Expiry(today.year, (today.month + 2) // 3 * 3)
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
    index, remainder = divmod(con_id - CON_ID_BASE, CON_ID_STEP)
    if remainder:
        return None
    year, month_index = divmod(index - 1, 12)
    expiry = _Expiry(year, month_index + 1)
    return expiry if expiry.month in MONTH_CODES and FIRST_YEAR <= year <= LAST_YEAR else None


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
    if not _describes_es(query):
        return []
    if query.con_id:
        found = _expiry_from_con_id(query.con_id)
        candidates = [] if found is None else [found]
    elif query.local_symbol:
        candidates = _decode_local_symbol(query.local_symbol, now_utc, query.include_expired)
    elif query.expiry:
        candidates = [e for e in _all_expiries() if _expiry_matches(e, query.expiry)]
    else:
        return listed_futures(now_utc)
    return [
        e.spec(now_utc)
        for e in candidates
        if (query.include_expired or not e.expired(now_utc))
        and (not query.expiry or _expiry_matches(e, query.expiry))
        and (not query.local_symbol or e.local_symbol == query.local_symbol.upper())
    ]


def _describes_es(query: ContractQuery) -> bool:
    sec_type = query.sec_type.upper()
    symbol = query.symbol.upper()
    return (
        (sec_type == "FUT" or (sec_type == "" and query.con_id != 0))
        and (symbol == "ES" or (symbol == "" and (query.con_id != 0 or query.local_symbol != "")))
        and query.exchange.upper() in _EXCHANGES
        and query.currency.upper() in {"", "USD"}
        and query.trading_class.upper() in {"", "ES"}
    )


def _expiry_matches(expiry: _Expiry, wanted: str) -> bool:
    if len(wanted) == 6:
        return expiry.contract_month == wanted
    return len(wanted) == 8 and f"{expiry.last_trade_date:%Y%m%d}" == wanted


def _decode_local_symbol(local_symbol: str, now_utc: float, include_expired: bool) -> list[_Expiry]:
    """The contract a one-digit-year local symbol means at `now_utc`: the nearest live one, or
    with `include_expired` whichever of that and the latest expired one is closer in time."""
    match = _LOCAL_SYMBOL.fullmatch(local_symbol.upper())
    if match is None:
        return []
    month, digit = _MONTH_BY_CODE[match[1]], int(match[2])
    same = [e for e in _all_expiries() if e.month == month and e.year % 10 == digit]
    live = [e for e in same if not e.expired(now_utc)][:1]
    dead = [e for e in same if e.expired(now_utc)][-1:]
    if not include_expired or not dead:
        return live
    if not live:
        return dead
    nearer = min(live[0], dead[0], key=lambda e: abs(e.last_trade_utc - now_utc))
    return [nearer]
