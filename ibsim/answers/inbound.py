"""Decoding of the requests the answers in this package act on (layouts as ib_async 2.x and
ibapi 9.81 send them; each reader consumes a `Fields` cursor after the message id and raises
`WireError` on a malformed field)."""

from __future__ import annotations

from dataclasses import dataclass

from ibsim.requests import ContractFields, read_contract
from ibsim.wire import Fields


@dataclass(frozen=True, slots=True)
class RealTimeBarsRequest:
    req_id: int
    contract: ContractFields
    bar_size: int
    what_to_show: str
    use_rth: bool


def read_real_time_bars(f: Fields) -> RealTimeBarsRequest:
    f.skip(1)  # version
    req_id = f.integer()
    contract = read_contract(f)
    bar_size = f.integer()
    what = f.text()
    use_rth = f.flag()
    return RealTimeBarsRequest(req_id, contract, bar_size, what, use_rth)


@dataclass(frozen=True, slots=True)
class HeadTimestampRequest:
    req_id: int
    contract: ContractFields
    include_expired: bool
    use_rth: bool
    what_to_show: str
    format_date: int


def read_head_timestamp(f: Fields) -> HeadTimestampRequest:
    req_id = f.integer()
    contract = read_contract(f)
    include_expired = f.flag()
    use_rth = f.flag()
    what = f.text()
    format_date = f.integer()
    return HeadTimestampRequest(req_id, contract, include_expired, use_rth, what, format_date)


@dataclass(frozen=True, slots=True)
class HistogramRequest:
    req_id: int
    contract: ContractFields
    include_expired: bool
    use_rth: bool
    period: str


def read_histogram(f: Fields) -> HistogramRequest:
    req_id = f.integer()
    contract = read_contract(f)
    include_expired = f.flag()
    use_rth = f.flag()
    period = f.text()
    return HistogramRequest(req_id, contract, include_expired, use_rth, period)


@dataclass(frozen=True, slots=True)
class PnLRequest:
    req_id: int
    account: str
    model_code: str
    con_id: int | None  # None for the account's PnL (reqPnL)


def read_pnl(f: Fields, *, single: bool) -> PnLRequest:
    req_id = f.integer()
    account = f.text()
    model_code = f.text()
    con_id = f.integer() if single else None
    return PnLRequest(req_id, account, model_code, con_id)


@dataclass(frozen=True, slots=True)
class SecDefOptParamsRequest:
    req_id: int
    underlying_symbol: str
    fut_fop_exchange: str
    underlying_sec_type: str
    underlying_con_id: int


def read_sec_def_opt_params(f: Fields) -> SecDefOptParamsRequest:
    return SecDefOptParamsRequest(f.integer(), f.text(), f.text(), f.text(), f.integer())
