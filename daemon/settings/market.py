"""The sections about the gateway, the instrument, market data and order flow."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import (
    AfterValidator,
    BeforeValidator,
    Field,
    ValidationInfo,
    field_validator,
)

from daemon.core.instrument import InstrumentError, product
from daemon.settings.base import (
    PAPER_PORTS,
    BarSeconds,
    Port,
    Seconds,
    Section,
    check_account,
    parse_id_list,
    upper,
)


def supported_future(symbol: str) -> str:
    """A symbol of the family orderflowd trades (the error lists them)."""
    try:
        return product(symbol).symbol
    except InstrumentError as exc:
        raise ValueError(str(exc)) from None


# --- sections -----------------------------------------------------------------------------------


class IbSettings(Section):
    """Connection to TWS / IB Gateway."""

    host: str = Field(
        default="127.0.0.1", min_length=1, description="Host of TWS / IB Gateway (API socket)."
    )
    port: Port = Field(
        default="auto",
        description=(
            'API port, or "auto" to try the paper ports 7497 (TWS) then 4002 (IB Gateway). '
            'Live ports 7496 (TWS) and 4001 (IB Gateway) need trading.mode = "live" and --live; '
            '"auto" never picks a live port.'
        ),
    )
    client_id: int = Field(
        default=1,
        ge=0,
        le=2**31 - 1,
        description="API client id; fixed, never random. Must not be used by another client.",
    )
    fallback_client_ids: Annotated[list[int], BeforeValidator(parse_id_list)] = Field(
        default_factory=list,
        description=(
            "Client ids to try, in order, when client_id is still held by a dead session "
            '(error 326). In the environment: "2,3" or "[2, 3]".'
        ),
    )
    connect_timeout: Seconds = Field(
        default=10.0, description="Seconds allowed for each stage of the connect handshake."
    )
    account: Annotated[str, AfterValidator(check_account)] = Field(
        default="",
        description=(
            "Account id to trade. Empty = the single managed account of the login. Paper "
            'accounts start with "DU"; any other account needs trading.mode = "live" and --live.'
        ),
    )

    @field_validator("fallback_client_ids")
    @classmethod
    def _distinct_ids(cls, ids: list[int], info: ValidationInfo) -> list[int]:
        if any(i < 0 for i in ids):
            raise ValueError("must be integers >= 0")
        if len(set(ids)) != len(ids):
            raise ValueError("must not repeat an id")
        if info.data.get("client_id") in ids:
            raise ValueError("must not contain ib.client_id")
        return ids

    @property
    def candidate_ports(self) -> tuple[int, ...]:
        """Ports to try, in order: the configured one, or the paper ports for "auto"."""
        return PAPER_PORTS if self.port == "auto" else (int(self.port),)


class InstrumentSettings(Section):
    """The traded future."""

    symbol: Annotated[str, BeforeValidator(upper), AfterValidator(supported_future)] = Field(
        default="ES",
        description="Futures symbol: ES, MES, NQ, MNQ, RTY, M2K (CME), YM or MYM (CBOT). Tick "
        "size and multiplier come from the broker's contract details.",
    )
    exchange: str = Field(
        default="",
        description='Exchange of the future; empty ("") = the product\'s own (CME, or CBOT for '
        "YM and MYM).",
    )
    currency: str = Field(default="USD", min_length=1, description="Currency of the future.")

    @field_validator("exchange")
    @classmethod
    def _product_exchange(cls, value: str, info: ValidationInfo) -> str:
        symbol = info.data.get("symbol")
        if value or symbol is None:
            return value.upper()
        return product(symbol).exchange

    roll_days_before_expiry: int = Field(
        default=8,
        ge=0,
        description="Roll to the next expiry this many calendar days before the front expires.",
    )
    on_roll: Literal["keep", "close", "roll"] = Field(
        default="keep",
        description='This instance\'s position in the month rolled out of: "keep" it at the '
        'broker with its bracket working (reported at each start), "close" it at market, or '
        '"roll" it: close it, then open the same position in the new front month at market '
        "with a bracket at the distances of the intent that opened it. A close or roll is one "
        "journaled operation that a restart carries on.",
    )


class DataSettings(Section):
    """Market data subscription and freshness."""

    mode: Literal["auto", "tick_by_tick", "snapshot"] = Field(
        default="auto",
        description=(
            'Market data source: "tick_by_tick" (AllLast + BidAsk), "snapshot" (reqMktData with '
            'RTVolume), or "auto" = tick-by-tick, falling back to snapshot when refused.'
        ),
    )
    stale_after_s: Seconds = Field(
        default=30.0,
        description=(
            "No accepted trade (snapshot mode: sample) for this many seconds while the market "
            "is open: data stale, health DEGRADED (no new entries), resubscribe. Counted from "
            "the last accepted data, or from a new connection or the market's open if later; "
            "a resubscription restarts nothing."
        ),
    )
    reconnect_after_stale_s: Seconds = Field(
        default=90.0,
        description=(
            "Still stale this many seconds after going stale, and again every this many "
            "seconds: reconnect if nothing at all arrived on the subscriptions meanwhile (a "
            "dead feed), else resubscribe (the feed answers; the market itself is quiet)."
        ),
    )
    quote_stale_s: Seconds = Field(
        default=5.0, description="A bid/ask older than this many seconds is stale; not traded on."
    )
    backfill: bool = Field(
        default=True,
        description=(
            "Started mid-session: backfill the session's trades and quotes with "
            "reqHistoricalTicks so session CVD, VWAP and profile are complete."
        ),
    )
    backfill_max_ticks: int = Field(
        default=50_000,
        ge=0,
        description=(
            "Most historical ticks (trades + quotes) a backfill fetches; beyond it the session "
            "features stay marked partial."
        ),
    )
    historical_requests_per_10min: int = Field(
        default=50,
        ge=1,
        le=60,
        description="Historical-data requests allowed per 10 minutes (IB's limit is 60).",
    )
    backfill_max_wait_s: float = Field(
        default=15.0,
        ge=0,
        description=(
            "Longest wait for the historical pacing (e.g. after restarts in a row used up the "
            "10-minute allowance) before a backfill stops and the session goes on live, marked "
            "partial, instead of holding live ticks."
        ),
    )

    @field_validator("reconnect_after_stale_s")
    @classmethod
    def _after_stale(cls, value: float, info: ValidationInfo) -> float:
        stale = info.data.get("stale_after_s")
        if stale is not None and value <= stale:
            raise ValueError(f"must be greater than data.stale_after_s ({stale})")
        return value


class FlowSettings(Section):
    """The order-flow extractor: tick guards, bars, imbalances, windows."""

    bar: BarSeconds = Field(
        default=60,
        description='Time bar length: "15s", "1min", "5min", "1h" or seconds; divides a day.',
    )
    volume_bar: int = Field(
        default=0, ge=0, description="Contracts per volume bar; 0 = no volume bars."
    )
    bars_kept: int = Field(
        default=1000, ge=1, description="Closed bars kept in memory (per bar kind), newest last."
    )
    imbalance_ratio: float = Field(
        default=3.0,
        gt=1.0,
        description="Diagonal imbalance: ask volume at a price vs bid volume one tick below it "
        "(and the mirror for sells) at least this ratio.",
    )
    imbalance_min_volume: float = Field(
        default=3.0,
        ge=0,
        description="Contracts the strong side of an imbalance needs at least (so 1 vs 0 is not "
        "one).",
    )
    stacked_levels: int = Field(
        default=3, ge=2, description="Adjacent imbalanced price levels that make a stacked one."
    )
    value_area: float = Field(
        default=0.70, gt=0, lt=1, description="Share of session volume in the value area."
    )
    delta_windows_s: list[int] = Field(
        default_factory=lambda: [60, 300, 900],
        description="Rolling windows, in seconds, for delta over the last N seconds.",
    )
    intensity_window_s: Seconds = Field(
        default=10.0, description="Window, in seconds, for trade intensity (trades/s, contracts/s)."
    )
    spike_band_ticks: int = Field(
        default=40,
        ge=1,
        description="A trade further than this many ticks from the last good trade (and the "
        "quote) is a spike unless the next trades confirm the new level.",
    )
    spike_confirm_trades: int = Field(
        default=2, ge=1, description="Trades near a suspected spike's price that confirm it."
    )
    invalid_after_rejects: int = Field(
        default=20,
        ge=1,
        description="Consecutive rejected ticks after which data health becomes INVALID.",
    )
    volume_gap_contracts: float = Field(
        default=10.0,
        ge=0,
        description="Classified volume may differ from IB's cumulative volume by this many "
        "contracts before a data gap is flagged.",
    )
    volume_gap_after_s: Seconds = Field(
        default=5.0,
        description="A volume disagreement must last this many seconds to flag a data gap.",
    )

    @field_validator("delta_windows_s")
    @classmethod
    def _windows(cls, windows: list[int]) -> list[int]:
        if any(w <= 0 for w in windows) or len(set(windows)) != len(windows):
            raise ValueError("must be distinct positive numbers of seconds")
        return sorted(windows)
