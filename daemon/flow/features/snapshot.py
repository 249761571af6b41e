"""`FlowSnapshot`: every order-flow number a strategy or status reader needs, at one instant."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class FlowSnapshot:
    """Order-flow features at `time`; None means undefined (never NaN, never a made-up value).

    Session fields belong to the Globex session starting at `session_start` (None before the
    first one); in the daily break they keep the finished session's values (`in_session` False).
    RTH fields are None outside regular trading hours.
    """

    time: float | None  # the newest event time seen (prints, quotes, advance)
    last: float | None  # price of the last print
    bid: float | None
    ask: float | None
    session_start: float | None  # Globex session the session fields belong to
    in_session: bool  # the clock is inside that Globex session
    session_volume: float
    session_buy_volume: float
    session_sell_volume: float
    session_unclassified: float
    cvd_session: float
    rth: bool
    rth_start: float | None
    cvd_rth: float | None
    rth_volume: float | None
    delta_windows: dict[int, float]  # window seconds -> delta over the last N seconds
    vwap: float | None
    vwap_sd: float | None
    vwap_upper1: float | None
    vwap_lower1: float | None
    vwap_upper2: float | None
    vwap_lower2: float | None
    rth_vwap: float | None
    rth_vwap_sd: float | None
    poc: float | None
    vah: float | None
    val: float | None
    rth_poc: float | None
    rth_vah: float | None
    rth_val: float | None
    book_imbalance: float | None
    microprice: float | None
    trades_per_s: float | None
    contracts_per_s: float | None
    session_partial: bool
