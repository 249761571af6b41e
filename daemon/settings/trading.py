"""The sections about trading: mode, strategy, risk and execution."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import (
    Field,
    ValidationInfo,
    field_validator,
)

from daemon.settings.base import (
    Seconds,
    Section,
    parse_window,
)


class TradingSettings(Section):
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


class StrategySettings(Section):
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


class RiskSettings(Section):
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


class ExecutionSettings(Section):
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
