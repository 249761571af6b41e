"""`FlowSnapshot`: every order-flow number a strategy or status reader needs, at one instant;
`flow_snapshot` assembles one from the features' parts."""

from __future__ import annotations

from dataclasses import dataclass

from daemon.flow.features.book import TopOfBook
from daemon.flow.features.totals import SessionView


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


def flow_snapshot(
    *,
    time: float | None,
    last: float | None,
    book: TopOfBook,
    session_start: float | None,
    in_session: bool,
    session: SessionView,
    rth_start: float | None,
    rth: SessionView | None,
    delta_windows: dict[int, float],
    intensity: tuple[float, float] | None,
    partial: bool,
) -> FlowSnapshot:
    """The snapshot of the features' parts: the Globex session's view, RTH's (`rth_start` None
    outside RTH; `rth` None there or before its totals), the book, the windows' figures and the
    (trades/s, contracts/s) intensity (None until its window is full)."""
    bands = session.bands
    rth_bands = rth.bands if rth is not None else None
    trades_per_s, contracts_per_s = (None, None) if intensity is None else intensity
    return FlowSnapshot(
        time=time,
        last=last,
        bid=book.bid,
        ask=book.ask,
        session_start=session_start,
        in_session=in_session,
        session_volume=session.volume,
        session_buy_volume=session.buy_volume,
        session_sell_volume=session.sell_volume,
        session_unclassified=session.unclassified,
        cvd_session=session.cvd,
        rth=rth_start is not None,
        rth_start=rth_start,
        cvd_rth=None if rth is None else rth.cvd,
        rth_volume=None if rth is None else rth.volume,
        delta_windows=delta_windows,
        vwap=None if bands is None else bands.vwap,
        vwap_sd=None if bands is None else bands.sd,
        vwap_upper1=None if bands is None else bands.upper1,
        vwap_lower1=None if bands is None else bands.lower1,
        vwap_upper2=None if bands is None else bands.upper2,
        vwap_lower2=None if bands is None else bands.lower2,
        rth_vwap=None if rth_bands is None else rth_bands.vwap,
        rth_vwap_sd=None if rth_bands is None else rth_bands.sd,
        poc=session.poc,
        vah=session.vah,
        val=session.val,
        rth_poc=None if rth is None else rth.poc,
        rth_vah=None if rth is None else rth.vah,
        rth_val=None if rth is None else rth.val,
        book_imbalance=book.imbalance(),
        microprice=book.microprice(),
        trades_per_s=trades_per_s,
        contracts_per_s=contracts_per_s,
        session_partial=partial,
    )
