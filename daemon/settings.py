"""The one typed configuration of orderflowd, and the layered loader that fills it.

Priority, highest first: command line > environment (``ORDERFLOWD_SECTION__KEY``) > ``.env``
file > TOML file (``--config``, default ``config/orderflowd.toml``) > defaults. Unknown keys are
errors in every layer, and live trading needs ``trading.mode = "live"`` *and* ``--live``.

This module imports nothing from the rest of ``daemon``.
"""

from __future__ import annotations

import difflib
import ipaddress
import json
import math
import os
import re
import tomllib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Final, Literal, get_origin
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from dotenv import dotenv_values
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
)
from pydantic_settings import (
    BaseSettings,
    InitSettingsSource,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

EX_CONFIG: Final = 78
"""Exit code for bad configuration (sysexits.h); systemd is told not to restart on it."""

TWS_PAPER_PORT: Final = 7497
TWS_LIVE_PORT: Final = 7496
GATEWAY_PAPER_PORT: Final = 4002
GATEWAY_LIVE_PORT: Final = 4001
PAPER_PORTS: Final = (TWS_PAPER_PORT, GATEWAY_PAPER_PORT)
"""Paper ports, in the order ``ib.port = "auto"`` tries them."""
LIVE_PORTS: Final = (TWS_LIVE_PORT, GATEWAY_LIVE_PORT)
PORT_NAMES: Final = {
    TWS_PAPER_PORT: "TWS paper",
    TWS_LIVE_PORT: "TWS live",
    GATEWAY_PAPER_PORT: "IB Gateway paper",
    GATEWAY_LIVE_PORT: "IB Gateway live",
}
PAPER_ACCOUNT_PREFIX: Final = "DU"

ENV_PREFIX: Final = "ORDERFLOWD_"
ENV_NESTED_DELIMITER: Final = "__"
DEFAULT_CONFIG_FILE: Final = Path("config/orderflowd.toml")


def is_paper_account(account: str) -> bool:
    """Whether an IB account id is a paper account (paper ids start with ``DU``)."""
    return account.startswith(PAPER_ACCOUNT_PREFIX)


def mask_account(account: str) -> str:
    """Mask an account id except its last 4 characters: ``DU1234567`` -> ``*****4567``."""
    if len(account) <= 4:
        return "*" * len(account)
    return "*" * (len(account) - 4) + account[-4:]


# --- field types --------------------------------------------------------------------------------


def _parse_port(value: Any) -> int | str:
    if value == "auto":
        return "auto"
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value)
    if isinstance(value, int) and not isinstance(value, bool) and 1 <= value <= 65535:
        return value
    raise ValueError('must be an integer 1..65535 or "auto"')


def _parse_id_list(value: Any) -> Any:
    # The environment can only carry strings: accept "2,3" as well as JSON "[2, 3]".
    if not isinstance(value, str):
        return value
    text = value.strip()
    if text.startswith("["):
        try:
            return json.loads(text)
        except ValueError:
            raise ValueError("must be a list of integers, e.g. [2, 3] or 2,3") from None
    return [part.strip() for part in text.split(",") if part.strip()]


def _upper(value: Any) -> Any:
    return value.upper() if isinstance(value, str) else value


def _empty_is_none(value: Any) -> Any:
    return None if value == "" else value


def _expand_user(path: Path) -> Path:
    return path.expanduser()


def _check_account(account: str) -> str:
    if not account.isascii() or not (account.isalnum() or account == ""):
        raise ValueError("must contain only letters and digits")
    return account


_DURATION_UNITS: Final = {"s": 1, "sec": 1, "min": 60, "m": 60, "h": 3600, "hour": 3600}


def parse_duration(value: Any) -> int:
    """``"30s"``, ``"1min"``, ``"5min"``, ``"1h"`` or a number of seconds -> whole seconds."""
    if isinstance(value, bool):
        raise ValueError('must be a duration such as "30s", "1min", "1h"')
    if isinstance(value, int | float):
        seconds = float(value)
    else:
        text = str(value).strip().lower()
        number = text.rstrip("abcdefghijklmnopqrstuvwxyz")
        unit = text[len(number) :] or "s"
        if unit not in _DURATION_UNITS or not number:
            raise ValueError('must be a duration such as "30s", "1min", "1h"')
        try:
            seconds = float(number) * _DURATION_UNITS[unit]
        except ValueError:
            raise ValueError('must be a duration such as "30s", "1min", "1h"') from None
    if not math.isfinite(seconds):
        raise ValueError("must be a finite number")
    if seconds != int(seconds) or seconds <= 0:
        raise ValueError("must be a whole number of seconds > 0")
    return int(seconds)


_WINDOW = re.compile(r"^(\d{1,2}):(\d{2})-(\d{1,2}):(\d{2})(?:\s+(\S+))?$")
DEFAULT_WINDOW_TZ: Final = "America/Chicago"


def parse_window(text: str) -> tuple[int, int, str]:
    """``"HH:MM-HH:MM Area/City"`` -> (start minute, end minute, time zone); ValueError if bad."""
    m = _WINDOW.match(text.strip())
    if m is None:
        raise ValueError(f'{text!r} is not "HH:MM-HH:MM Area/City"')
    h1, m1, h2, m2 = (int(g) for g in m.groups()[:4])
    if h1 > 23 or h2 > 23 or m1 > 59 or m2 > 59:
        raise ValueError(f"{text!r}: hours are 00-23 and minutes 00-59")
    start, end = h1 * 60 + m1, h2 * 60 + m2
    if start == end:
        raise ValueError(f"{text!r}: the window is empty")
    tz = m.group(5) or DEFAULT_WINDOW_TZ
    try:
        ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"{text!r}: unknown time zone {tz!r}") from None
    return start, end, tz


def _bar_seconds(value: Any) -> int:
    seconds = parse_duration(value)
    if 86400 % seconds:
        raise ValueError("must divide a day evenly (e.g. 15s, 1min, 5min, 15min, 1h)")
    return seconds


Port = Annotated[int | Literal["auto"], BeforeValidator(_parse_port)]
UserPath = Annotated[Path, AfterValidator(_expand_user)]
Seconds = Annotated[float, Field(gt=0)]
BarSeconds = Annotated[int, BeforeValidator(_bar_seconds)]


class _Section(BaseModel):
    # validate_default so cross-field checks also see defaults (e.g. stale vs reconnect).
    # allow_inf_nan=False: inf would turn a limit off (risk.daily_loss_limit = inf) and nan
    # compares false with everything, so neither is a value for any setting.
    model_config = ConfigDict(
        extra="forbid", frozen=True, validate_default=True, allow_inf_nan=False
    )


# --- sections -----------------------------------------------------------------------------------


class IbSettings(_Section):
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
    fallback_client_ids: Annotated[list[int], BeforeValidator(_parse_id_list)] = Field(
        default_factory=list,
        description=(
            "Client ids to try, in order, when client_id is still held by a dead session "
            '(error 326). In the environment: "2,3" or "[2, 3]".'
        ),
    )
    connect_timeout: Seconds = Field(
        default=10.0, description="Seconds allowed for each stage of the connect handshake."
    )
    account: Annotated[str, AfterValidator(_check_account)] = Field(
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


class InstrumentSettings(_Section):
    """The traded future."""

    symbol: str = Field(default="ES", min_length=1, description="Futures symbol.")
    exchange: str = Field(default="CME", min_length=1, description="Exchange of the future.")
    currency: str = Field(default="USD", min_length=1, description="Currency of the future.")
    roll_days_before_expiry: int = Field(
        default=8,
        ge=0,
        description="Roll to the next expiry this many calendar days before the front expires.",
    )


class DataSettings(_Section):
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


class FlowSettings(_Section):
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


class TradingSettings(_Section):
    """Paper or live, whether orders are sent at all, and what happens to them on shutdown."""

    mode: Literal["paper", "live"] = Field(
        default="paper",
        description='"paper" or "live". "live" also needs --live on the command line.',
    )
    enabled: bool = Field(
        default=False,
        description=(
            "Send orders. When false the daemon connects, streams and computes order flow but "
            "places no orders."
        ),
    )
    on_shutdown: Literal["keep", "cancel_entries", "flatten"] = Field(
        default="keep",
        description='On SIGTERM: "keep" leaves every order working at the broker (the position '
        'stays protected by its bracket), "cancel_entries" cancels unfilled entries and keeps '
        'the protective stops and targets, "flatten" cancels everything and closes the position.',
    )
    journal_sync: Literal["full", "normal"] = Field(
        default="normal",
        description='SQLite synchronous mode of the trading journal: "normal" (WAL) loses nothing '
        'when the process is killed; "full" also survives a power loss, at an fsync per write '
        "(milliseconds on the order path).",
    )
    journal_check_s: Seconds = Field(
        default=30.0,
        description="Seconds between checks that the journal on disk holds what was written (a "
        "damaged or truncated WAL otherwise shows only at the next start); a failed check "
        "halts trading.",
    )


class StrategySettings(_Section):
    """The strategy: which one (by import path) and its parameters."""

    path: str = Field(
        default="daemon.trading.strategy.stacked:StackedImbalance",
        min_length=3,
        description='Import path of the strategy class, "package.module:ClassName".',
    )
    load_timeout_s: Seconds = Field(
        default=20.0,
        description="Seconds allowed to import the strategy module, and again to construct the "
        "strategy; a module that blocks or loops longer is a configuration error (exit 78).",
    )
    params: dict[str, Any] = Field(
        default_factory=dict,
        description="Parameters of the strategy; the strategy validates them (unknown or "
        "invalid ones are configuration errors). Empty: the strategy's defaults.",
    )


class RiskSettings(_Section):
    """Pre-trade limits, the daily loss limit, and when trading halts."""

    max_position: int = Field(default=2, ge=1, description="Largest position, in contracts.")
    max_order_size: int = Field(
        default=2, ge=1, description="Largest quantity of one order, in contracts."
    )
    max_working_orders: int = Field(
        default=6,
        ge=1,
        description="Most orders working at once (an entry bracket counts as three).",
    )
    max_orders_per_second: int = Field(
        default=10, ge=1, description="Order messages (submit, modify, cancel) per second, at most."
    )
    max_orders_per_minute: int = Field(
        default=120,
        ge=1,
        description="Order messages (submit, modify, cancel) per minute, at most.",
    )
    max_messages_per_fill: float = Field(
        default=20.0,
        gt=0,
        description="Order-efficiency budget: submits + modifies + cancels per fill over the day "
        "(IB watches ratios of 20 and more); new entries are refused above it.",
    )
    efficiency_grace_messages: int = Field(
        default=40,
        ge=0,
        description="Order messages of the day before the efficiency budget applies.",
    )
    price_collar_ticks: int = Field(
        default=20,
        ge=1,
        description="A limit or stop entry price further than this many ticks from the mid is "
        "refused.",
    )
    no_entry_before_close_min: float = Field(
        default=15.0,
        ge=0,
        description="No new entries this many minutes before the trading session closes.",
    )
    no_entry_windows: list[str] = Field(
        default_factory=lambda: ["16:00-17:00 America/Chicago", "23:45-00:45 America/New_York"],
        description='Daily windows with no new entries, "HH:MM-HH:MM Area/City" (may cross '
        "midnight): by default CME's daily maintenance break and IB's nightly reset.",
    )
    no_entry_on_roll_day: bool = Field(
        default=True, description="No new entries on the day the front month rolls."
    )
    daily_loss_limit: float = Field(
        default=1000.0,
        gt=0,
        description="USD. Realized + unrealized PnL of the day at or below minus this halts "
        "trading.",
    )
    on_loss_limit: Literal["keep", "flatten"] = Field(
        default="keep",
        description="After the daily loss limit halts trading and cancels working entries: "
        '"keep" leaves the position with its bracket, "flatten" closes it.',
    )
    max_consecutive_rejects: int = Field(
        default=5, ge=1, description="Order rejections in a row that halt trading."
    )

    @field_validator("no_entry_windows")
    @classmethod
    def _windows(cls, windows: list[str]) -> list[str]:
        for window in windows:
            parse_window(window)
        return windows

    @field_validator("max_orders_per_minute")
    @classmethod
    def _per_minute(cls, value: int, info: ValidationInfo) -> int:
        per_second = info.data.get("max_orders_per_second")
        if per_second is not None and value < per_second:
            raise ValueError("must be at least risk.max_orders_per_second")
        return value


class ExecutionSettings(_Section):
    """How intents become orders at the broker."""

    order_ref_prefix: str = Field(
        default="ofd",
        pattern=r"^[A-Za-z0-9_-]{1,16}$",
        description="Prefix of every orderRef this daemon sends. Each instance on an account "
        "needs its own: a second instance with the same prefix refuses to start, and an order "
        "with it that the journal does not know halts trading.",
    )
    max_messages_per_second: int = Field(
        default=45,
        ge=1,
        le=50,
        description="Messages to the gateway in any 1-second window, at most (IB's limit is 50).",
    )
    entry_timeout_s: Seconds = Field(
        default=30.0, description="An entry limit order not filled by then is cancelled."
    )
    exit_through_ticks: int = Field(
        default=2,
        ge=0,
        description="An exit moves the bracket's target this many ticks through the touch so "
        "that it fills at once.",
    )
    child_tif: Literal["GTC", "DAY"] = Field(
        default="GTC",
        description='Time in force of the protective stop and target; "GTC" keeps them across '
        "sessions.",
    )
    reconcile_timeout_s: Seconds = Field(
        default=15.0,
        description="Seconds for fetching positions, orders and executions after a connect.",
    )
    fill_price_band_pct: float = Field(
        default=5.0,
        gt=0,
        le=50,
        description="A fill further than this many percent from its order's price (or, for a "
        "market order, the last trade) is refused as a broker anomaly and halts trading.",
    )
    confirm_timeout_s: Seconds = Field(
        default=5.0,
        description="Seconds a flatten or an exit waits for the broker to confirm cancels, "
        "its position and the closing fill; unconfirmed, it says so instead of guessing.",
    )


class LoggingSettings(_Section):
    """Log output."""

    format: Literal["auto", "console", "json"] = Field(
        default="auto",
        description=(
            '"console", "json", or "auto" = console on a TTY, json under systemd '
            "(JOURNAL_STREAM set), console otherwise."
        ),
    )
    level: Annotated[Literal["DEBUG", "INFO", "WARNING", "ERROR"], BeforeValidator(_upper)] = Field(
        default="INFO", description="Minimum level logged: DEBUG, INFO, WARNING or ERROR."
    )
    file: Annotated[UserPath | None, BeforeValidator(_empty_is_none)] = Field(
        default=None,
        description=(
            'Also log to this file; relative paths are under paths.log_dir. Empty ("") = no file.'
        ),
    )


class PathsSettings(_Section):
    """Where state and logs live; relative paths are under the working directory."""

    state_dir: UserPath = Field(
        default=Path("state"), description="Directory for the journal and status.json."
    )
    log_dir: UserPath = Field(default=Path("logs"), description="Directory for log files.")


class RecordingSettings(_Section):
    """Recording of the received trades and quotes for replay (docs/recording.md)."""

    enabled: bool = Field(
        default=True,
        description="Record every received trade and quote into "
        "state_dir/recordings/SYMBOL-YYYY-MM-DD.csv.gz, one file per trading day.",
    )
    keep_days: int = Field(
        default=30,
        ge=0,
        description="Recorded trading days kept (the newest); older files are deleted at start "
        "and at each new day. 0 = keep forever.",
    )
    flush_s: Seconds = Field(
        default=1.0,
        description="Seconds between writes of the buffered events; a crash loses at most this.",
    )


class StatusSettings(_Section):
    """Health reporting."""

    interval_s: Seconds = Field(default=1.0, description="Seconds between writes of status.json.")


def _is_loopback(host: str) -> bool:
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a host name other than localhost may resolve anywhere


class MetricsSettings(_Section):
    """The Prometheus metrics endpoint (HTTP, text exposition format)."""

    enabled: bool = Field(
        default=True, description="Serve Prometheus metrics over HTTP at /metrics."
    )
    allow_remote: bool = Field(
        default=False,
        description="Allow metrics.host to be an address other than loopback (the endpoint has "
        "no authentication: anyone who can reach it reads positions and PnL).",
    )
    host: str = Field(
        default="127.0.0.1",
        min_length=1,
        description="Address the metrics endpoint listens on; loopback unless "
        "metrics.allow_remote = true.",
    )
    port: int = Field(
        default=9464,
        ge=0,
        le=65535,
        description="TCP port of the metrics endpoint; 0 = any free port (for tests).",
    )

    @field_validator("host")
    @classmethod
    def _loopback_unless_allowed(cls, host: str, info: ValidationInfo) -> str:
        if not _is_loopback(host) and not info.data.get("allow_remote", False):
            raise ValueError(
                "is not a loopback address; set metrics.allow_remote = true to serve metrics "
                "to other hosts, or use 127.0.0.1"
            )
        return host


class Settings(BaseSettings):
    """All configuration of orderflowd.

    Constructing it directly (``Settings(ib={"port": 4002})``) reads no environment and no
    file; :func:`load_settings` is the one place that reads them.
    """

    model_config = SettingsConfigDict(
        extra="forbid",
        frozen=True,
        env_prefix=ENV_PREFIX,
        env_nested_delimiter=ENV_NESTED_DELIMITER,
    )

    ib: IbSettings = Field(default_factory=IbSettings, description=IbSettings.__doc__)
    instrument: InstrumentSettings = Field(
        default_factory=InstrumentSettings, description=InstrumentSettings.__doc__
    )
    data: DataSettings = Field(default_factory=DataSettings, description=DataSettings.__doc__)
    flow: FlowSettings = Field(default_factory=FlowSettings, description=FlowSettings.__doc__)
    trading: TradingSettings = Field(
        default_factory=TradingSettings, description=TradingSettings.__doc__
    )
    strategy: StrategySettings = Field(
        default_factory=StrategySettings, description=StrategySettings.__doc__
    )
    risk: RiskSettings = Field(default_factory=RiskSettings, description=RiskSettings.__doc__)
    execution: ExecutionSettings = Field(
        default_factory=ExecutionSettings, description=ExecutionSettings.__doc__
    )
    logging: LoggingSettings = Field(
        default_factory=LoggingSettings, description=LoggingSettings.__doc__
    )
    paths: PathsSettings = Field(default_factory=PathsSettings, description=PathsSettings.__doc__)
    recording: RecordingSettings = Field(
        default_factory=RecordingSettings, description=RecordingSettings.__doc__
    )
    status: StatusSettings = Field(
        default_factory=StatusSettings, description=StatusSettings.__doc__
    )
    metrics: MetricsSettings = Field(
        default_factory=MetricsSettings, description=MetricsSettings.__doc__
    )

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # Keep direct construction hermetic; load_settings passes its own sources.
        return (init_settings,)

    @property
    def log_file(self) -> Path | None:
        """``logging.file`` under ``paths.log_dir`` (an absolute ``logging.file`` stays as is)."""
        if self.logging.file is None:
            return None
        return self.paths.log_dir / self.logging.file


# --- errors -------------------------------------------------------------------------------------


class ConfigError(Exception):
    """Configuration refused; ``str()`` is one line per problem."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = tuple(" ".join(p.split()) for p in problems)
        super().__init__("\n".join(self.problems))


def _leaf_paths(model: type[BaseModel], prefix: tuple[str, ...] = ()) -> Iterator[tuple[str, ...]]:
    for name, info in model.model_fields.items():
        ann = info.annotation
        if isinstance(ann, type) and get_origin(ann) is None and issubclass(ann, BaseModel):
            yield from _leaf_paths(ann, (*prefix, name))
        else:
            yield (*prefix, name)


_LEAVES: Final = tuple(_leaf_paths(Settings))
_DOTTED: Final = tuple(".".join(p) for p in _LEAVES)


def env_name(path: tuple[str, ...]) -> str:
    """Environment variable for a setting path: ``("ib", "port")`` -> ``ORDERFLOWD_IB__PORT``."""
    return ENV_PREFIX + ENV_NESTED_DELIMITER.join(p.upper() for p in path)


_ENV_PATHS: Final = {env_name(p): p for p in _LEAVES}


def _suggest(dotted: str) -> str | None:
    leaf = dotted.rsplit(".", 1)[-1]
    same_leaf = [d for d in _DOTTED if d.rsplit(".", 1)[-1] == leaf]
    if len(same_leaf) == 1:
        return same_leaf[0]
    close = difflib.get_close_matches(dotted, _DOTTED, n=1, cutoff=0.6)
    return close[0] if close else None


def _show(path: tuple[str | int, ...], value: Any) -> str:
    if path[:2] == ("ib", "account") and isinstance(value, str):
        value = mask_account(value)
    return repr(value)


@dataclass
class _Layer:
    """One configuration layer: its values, and where each came from."""

    kind: Literal["cli", "env", "dotenv", "toml"]
    label: str
    data: dict[str, Any] = field(default_factory=dict)
    env_names: dict[tuple[str, ...], str] = field(default_factory=dict)

    def provides(self, loc: tuple[str | int, ...]) -> bool:
        node: Any = self.data
        for depth, key in enumerate(loc):
            if not isinstance(node, dict):
                return depth > 0
            if key not in node:
                return False
            node = node[key]
        return True

    def origin(self, loc: tuple[str | int, ...]) -> str:
        if self.kind == "cli":
            return "from the command line"
        if self.kind == "toml":
            return f"from {self.label}"
        name = next((n for p, n in self.env_names.items() if tuple(loc[: len(p)]) == p), self.label)
        return f"from {name}" if self.kind == "env" else f"from {name} in {self.label}"


def _origin(layers: list[_Layer], loc: tuple[str | int, ...]) -> str:
    for layer in layers:
        if layer.provides(loc):
            return layer.origin(loc)
    return "default"


def _env_layer(
    kind: Literal["env", "dotenv"], label: str, variables: Mapping[str, str | None]
) -> tuple[_Layer, list[str]]:
    """Turn ``ORDERFLOWD_*`` variables into nested values; unknown names are problems."""
    layer = _Layer(kind, label)
    problems: list[str] = []
    where = "" if kind == "env" else f" in {label}"
    for name, value in variables.items():
        upper = name.upper()
        if not upper.startswith(ENV_PREFIX):
            if kind == "dotenv":
                problems.append(
                    f"{name}: not an orderflowd setting (names start with {ENV_PREFIX}), "
                    f"got {value!r} (from {label})"
                )
            continue
        path = _ENV_PATHS.get(upper)
        if path is None:
            rest = upper[len(ENV_PREFIX) :]
            dotted = ".".join(rest.lower().split(ENV_NESTED_DELIMITER))
            guess = _suggest(dotted)
            hint = f" (did you mean {env_name(tuple(guess.split('.')))}?)" if guess else ""
            if dotted in Settings.model_fields:
                hint = f" (set one key at a time: {env_name((dotted,))}{ENV_NESTED_DELIMITER}KEY)"
            problems.append(f"{dotted}: unknown setting{hint}, got {value!r} (from {name}{where})")
            continue
        section: Any = layer.data
        for key in path[:-1]:
            section = section.setdefault(key, {})
        section[path[-1]] = "" if value is None else value
        layer.env_names[path] = name
    return layer, problems


def _expand_dotted(overrides: Mapping[str, Any]) -> dict[str, Any]:
    """``{"ib.port": 1}`` -> ``{"ib": {"port": 1}}``; nested dicts pass through."""
    out: dict[str, Any] = {}
    for key, value in overrides.items():
        *parents, leaf = key.split(".")
        node = out
        for parent in parents:
            node = node.setdefault(parent, {})
        if isinstance(value, Mapping) and isinstance(node.get(leaf), dict):
            node[leaf].update(_expand_dotted(value))
        else:
            node[leaf] = _expand_dotted(value) if isinstance(value, Mapping) else value
    return out


def _describe(error: Any, layers: list[_Layer]) -> str:
    loc = tuple(error["loc"])
    dotted = ".".join(str(p) for p in loc)
    origin = _origin(layers, loc)
    got = _show(loc, error.get("input"))
    kind = error["type"]
    if kind == "extra_forbidden":
        guess = _suggest(dotted)
        hint = f" (did you mean {guess}?)" if guess else ""
        return f"{dotted}: unknown key{hint}, got {got} ({origin})"
    if kind in ("model_type", "model_attributes_type", "dict_type"):
        return f"{dotted}: must be a table of settings, got {got} ({origin})"
    msg = str(error["msg"]).removeprefix("Value error, ")
    msg = msg.replace("Input should be", "must be", 1)
    return f"{dotted}: {msg}, got {got} ({origin})"


def _live_problems(settings: Settings, live_flag: bool, layers: list[_Layer]) -> list[str]:
    """Non-negotiable 5: live ports and non-paper accounts only on purpose, twice."""
    problems: list[str] = []
    how = 'set trading.mode = "live" in the config and pass --live'
    live_mode = settings.trading.mode == "live"
    mode_origin = _origin(layers, ("trading", "mode"))
    if live_mode and not live_flag:
        problems.append(
            'trading.mode: "live" also needs --live on the command line; pass --live, '
            f"or set trading.mode = \"paper\", got 'live' ({mode_origin})"
        )
    if live_flag and not live_mode:
        problems.append(
            f'trading.mode: --live was given but trading.mode is "paper"; set trading.mode = '
            f"\"live\" to trade live, or drop --live, got 'paper' ({mode_origin})"
        )
    if live_mode:
        return problems
    port = settings.ib.port
    if isinstance(port, int) and port in LIVE_PORTS:
        problems.append(
            f"ib.port: {port} is the {PORT_NAMES[port]} port; to trade live {how}, otherwise "
            f"use a paper port ({TWS_PAPER_PORT} TWS, {GATEWAY_PAPER_PORT} IB Gateway), "
            f"got {port} ({_origin(layers, ('ib', 'port'))})"
        )
    account = settings.ib.account
    if account and not is_paper_account(account):
        problems.append(
            f"ib.account: not a paper account (paper accounts start with "
            f'"{PAPER_ACCOUNT_PREFIX}"); to trade it live {how}, '
            f"got {mask_account(account)!r} ({_origin(layers, ('ib', 'account'))})"
        )
    return problems


# --- loading ------------------------------------------------------------------------------------


def _toml_layer(config_file: Path | None) -> tuple[_Layer | None, list[str]]:
    explicit = config_file is not None
    path = config_file if config_file is not None else DEFAULT_CONFIG_FILE
    if not explicit and not path.exists():
        return None, []
    if not path.is_file():
        return None, [f"--config: not a file: {path}"]
    try:
        with path.open("rb") as f:
            data = tomllib.load(f)
    except tomllib.TOMLDecodeError as exc:
        return None, [f"{path}: invalid TOML: {exc}"]
    except OSError as exc:
        return None, [f"{path}: cannot read: {exc.strerror}"]
    return _Layer("toml", str(path), data), []


def load_settings(
    config_file: Path | None = None,
    overrides: Mapping[str, Any] | None = None,
    *,
    live_flag: bool = False,
    env: Mapping[str, str] | None = None,
    dotenv: Path | None = Path(".env"),
) -> Settings:
    """Load settings from all layers; raise :class:`ConfigError` listing every problem.

    ``config_file`` None means ``config/orderflowd.toml`` if it exists. ``overrides`` are the
    command line's values as a nested dict (dotted keys are accepted too). ``live_flag`` is
    ``--live``. ``env`` defaults to ``os.environ``; ``dotenv`` None skips the ``.env`` file.
    """
    if env is None:
        env = os.environ
    problems: list[str] = []

    toml, toml_problems = _toml_layer(config_file)
    problems += toml_problems
    dotenv_vars: Mapping[str, str | None] = {}
    if dotenv is not None and dotenv.is_file():
        dotenv_vars = dotenv_values(dotenv, interpolate=False)
    dotenv_layer, dotenv_problems = _env_layer("dotenv", str(dotenv or ".env"), dotenv_vars)
    env_layer, env_problems = _env_layer("env", "environment", env)
    problems += dotenv_problems + env_problems
    cli = _Layer("cli", "command line", _expand_dotted(overrides or {}))

    layers = [cli, env_layer, dotenv_layer, *([toml] if toml else [])]
    # Highest priority first; pydantic-settings deep-merges them. Every layer was read once
    # above, so the values validated are exactly the ones errors are attributed to.
    sources = tuple(InitSettingsSource(Settings, layer.data) for layer in layers)
    try:
        # _build_sources is BaseSettings' documented hook for pre-built sources; without the
        # pydantic mypy plugin the synthesized __init__ does not show it.
        settings = Settings(_build_sources=(sources, {}))  # type: ignore[call-arg]
    except ValidationError as exc:
        problems += [_describe(error, layers) for error in exc.errors()]
        raise ConfigError(problems) from None
    problems += _live_problems(settings, live_flag, layers)
    if problems:
        raise ConfigError(problems)
    return settings


def effective_config(settings: Settings) -> dict[str, Any]:
    """Settings as plain JSON-able data, with the account id masked."""
    data = settings.model_dump(mode="json")
    data["ib"]["account"] = mask_account(settings.ib.account)
    return data
