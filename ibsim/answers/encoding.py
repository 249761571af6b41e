"""Server→client messages of the reference, account and streaming answers (a mixin of `Encoder`).

Layouts are those ib_async 2.x (`decoder.py`) and ibapi 9.81 decode; each is decoded back by both
in tests/ibsim/test_encoders_answers.py. Counts and sizes are sent as integers (ibapi needs them).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

from ibsim.wire import message, message_from


class OutMore:
    """Outgoing message ids of these answers."""

    SCANNER_PARAMETERS = 19
    SCANNER_DATA = 20
    REAL_TIME_BARS = 50
    VERIFY_COMPLETED = 66
    DISPLAY_GROUP_LIST = 67
    DISPLAY_GROUP_UPDATED = 68
    VERIFY_AND_AUTH_COMPLETED = 70
    SECURITY_DEFINITION_OPTION_PARAMETER_END = 76
    SOFT_DOLLAR_TIERS = 77
    FAMILY_CODES = 78
    SYMBOL_SAMPLES = 79
    MKT_DEPTH_EXCHANGES = 80
    SMART_COMPONENTS = 82
    NEWS_PROVIDERS = 85
    HEAD_TIMESTAMP = 88
    HISTOGRAM_DATA = 89
    HISTORICAL_DATA_UPDATE = 90
    MARKET_RULE = 93
    PNL = 94
    PNL_SINGLE = 95
    USER_INFO = 107


class SymbolSample(NamedTuple):
    """One SYMBOL_SAMPLES entry (a contract description)."""

    con_id: int
    symbol: str
    sec_type: str
    primary_exchange: str
    currency: str
    derivative_sec_types: tuple[str, ...]
    description: str


class AnswerEncoding:
    """Encoders for the answers in `ibsim.answers` (mixed into `ibsim.encoders.Encoder`)."""

    server_version: int

    def head_timestamp(self, req_id: int, text: str) -> bytes:
        return message(OutMore.HEAD_TIMESTAMP, req_id, text)

    def market_rule(self, rule_id: int, increments: Sequence[tuple[float, float]]) -> bytes:
        fields: list[object] = [OutMore.MARKET_RULE, rule_id, len(increments)]
        for low_edge, increment in increments:
            fields += (low_edge, increment)
        return message_from(fields)

    def real_time_bar(
        self,
        req_id: int,
        t: int,
        open_: float,
        high: float,
        low: float,
        close: float,
        volume: int,
        wap: float,
        count: int,
    ) -> bytes:
        return message(
            OutMore.REAL_TIME_BARS, 3, req_id, t, open_, high, low, close, volume, wap, count
        )

    def historical_data_update(
        self,
        req_id: int,
        bar_count: int,
        date: object,
        open_: float,
        close: float,
        high: float,
        low: float,
        wap: float,
        volume: int,
    ) -> bytes:
        return message(
            OutMore.HISTORICAL_DATA_UPDATE,
            req_id,
            bar_count,
            date,
            open_,
            close,
            high,
            low,
            wap,
            volume,
        )

    def histogram_data(self, req_id: int, rows: Sequence[tuple[float, int]]) -> bytes:
        fields: list[object] = [OutMore.HISTOGRAM_DATA, req_id, len(rows)]
        for price, count in rows:
            fields += (price, count)
        return message_from(fields)

    def pnl(self, req_id: int, daily: float, unrealized: float, realized: float) -> bytes:
        return message(OutMore.PNL, req_id, daily, unrealized, realized)

    def pnl_single(
        self,
        req_id: int,
        position: int,
        daily: float,
        unrealized: float,
        realized: float,
        value: float,
    ) -> bytes:
        return message(OutMore.PNL_SINGLE, req_id, position, daily, unrealized, realized, value)

    def symbol_samples(self, req_id: int, samples: Sequence[SymbolSample]) -> bytes:
        fields: list[object] = [OutMore.SYMBOL_SAMPLES, req_id, len(samples)]
        for con_id, symbol, sec_type, primary, currency, derivatives, description in samples:
            fields += (con_id, symbol, sec_type, primary, currency, len(derivatives), *derivatives)
            if self.server_version >= 176:
                fields += (description, "")  # description, issuerId
        return message_from(fields)

    def sec_def_opt_params_end(self, req_id: int) -> bytes:
        return message(OutMore.SECURITY_DEFINITION_OPTION_PARAMETER_END, req_id)

    def soft_dollar_tiers(self, req_id: int) -> bytes:
        """No tiers: soft dollars are for institutional accounts."""
        return message(OutMore.SOFT_DOLLAR_TIERS, req_id, 0)

    def family_codes(self, codes: Sequence[tuple[str, str]]) -> bytes:
        fields: list[object] = [OutMore.FAMILY_CODES, len(codes)]
        for account, code in codes:
            fields += (account, code)
        return message_from(fields)

    def mkt_depth_exchanges(self) -> bytes:
        """No exchange: this gateway offers no market depth."""
        return message(OutMore.MKT_DEPTH_EXCHANGES, 0)

    def smart_components(self, req_id: int) -> bytes:
        return message(OutMore.SMART_COMPONENTS, req_id, 0)

    def news_providers(self) -> bytes:
        """No provider: the account subscribes to no news."""
        return message(OutMore.NEWS_PROVIDERS, 0)

    def user_info(self, req_id: int, white_branding_id: str) -> bytes:
        return message(OutMore.USER_INFO, req_id, white_branding_id)

    def scanner_parameters(self, xml: str) -> bytes:
        return message(OutMore.SCANNER_PARAMETERS, 1, xml)

    def scanner_data_empty(self, req_id: int) -> bytes:
        return message(OutMore.SCANNER_DATA, 3, req_id, 0)

    def display_group_list(self, req_id: int, groups: str) -> bytes:
        return message(OutMore.DISPLAY_GROUP_LIST, 1, req_id, groups)

    def display_group_updated(self, req_id: int, contract_info: str) -> bytes:
        return message(OutMore.DISPLAY_GROUP_UPDATED, 1, req_id, contract_info)

    def verify_completed(self, ok: bool, text: str, *, auth: bool = False) -> bytes:
        msg_id = OutMore.VERIFY_AND_AUTH_COMPLETED if auth else OutMore.VERIFY_COMPLETED
        return message(msg_id, 1, ok, text)
