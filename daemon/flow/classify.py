"""Aggressor classification: who crossed the spread, as well as the data allows, and how surely.

IB does not say which side was the aggressor, so it is inferred. Every `Print` carries the
method that decided it and a confidence: roughly the probability that the side is right (for a
fractional BVC split, how far the split is from a coin toss). The scale:

=========================================  ==========  ==========================================
case                                       confidence  why
=========================================  ==========  ==========================================
quote rule, at the touch (tick-by-tick)    0.95        the usual case; a quote/trade race can
                                                       still put a trade at a stale touch
quote rule, through the touch              0.99        a sweep: nothing else prints beyond ask
old quote ("old ask lifted")               0.80        inferred from the order of reports
tick rule, up- or downtick                 0.70        the classic figure for the tick rule
tick rule, zero tick carrying a side       0.55        barely better than a coin
snapshot print, quote rule, single trade   0.80        the quote is up to one sample (250 ms) old
snapshot print, quote rule, aggregate      0.70        several trades, maybe both sides, one side
snapshot print, tick rule                  0.70/0.55 x (1 single, 0.8 aggregate)
BVC residual                               0.6*|2p-1|  p = Phi(dp/sigma); 0 for an even split
BVC residual, sigma not yet known          0.30        the sign of the price change only
NONE                                       0           nothing to decide from: buy = sell = 0
=========================================  ==========  ==========================================

These are priors checked against `bench/flow_accuracy.py`, which scores the methods against
ibsim's recorded aggressor on replayed real trades (there the quote rule is right on every
trade, because ibsim synthesizes quotes so that each trade prints at the touch; the snapshot
quote rule got 80 % of single-trade and 76 % of aggregate volume right; the tick rule 100 % of
up/downticks and 69 % of zero ticks). Real IB quotes race the trades and will do worse.

Tick-by-tick (`TickClassifier`): the quote rule against the latest accepted BidAsk; a trade
strictly inside the spread, with no quote, or with a quote older than `quote_stale_s` (by
exchange time) falls back to the tick rule against the previous trade, a zero tick carrying the
side of the previous trade, however that was decided. The order of calls is the truth, not the
times (they have one-second resolution on the wire).

The "old ask lifted" correction: IB reports BidAsk and trades on separate streams, so the quote
a trade moved can arrive before the trade. The first trade after the quote moved up, exactly at
the ask that prevailed at the previous trade, below the new ask, within a second of the quote
change and at a price other than the previous trade's, is a buy (mirror: old bid hit, a sell).
The last condition matters: when the previous trade printed at that price, the quote change is
explained by the trades already seen (the level traded out), and a trade there at the new bid
is a new seller; without it the correction is wrong on every such case (see the bench).

Snapshot (`SnapshotClassifier`): RTVolume prints are classified by the quote rule against the
previous sample's quote (the current one already shows what the prints did to the book), with
the tick-rule fallback; volume that the prints do not explain is split by bulk volume
classification at the sample's last price. Nothing here does I/O or keeps more than O(1) state.
"""

from __future__ import annotations

import math
from typing import Final

from daemon.flow.prints import Method, Print

QUOTE_AT: Final = 0.95
QUOTE_THROUGH: Final = 0.99
OLD_QUOTE: Final = 0.8
TICK_MOVE: Final = 0.7
TICK_ZERO: Final = 0.55
SNAPSHOT_SINGLE: Final = 0.8
SNAPSHOT_AGGREGATE: Final = 0.7
SNAPSHOT_TICK_AGGREGATE_FACTOR: Final = 0.8
BVC_SCALE: Final = 0.6
BVC_SIGN_ONLY: Final = 0.3

OLD_QUOTE_WINDOW_S: Final = 1.0  # wire times are whole seconds: same second or the next
BVC_SIGMA_HALF_LIFE: Final = 200  # samples with volume
_BVC_ALPHA: Final = 1.0 - 0.5 ** (1.0 / BVC_SIGMA_HALF_LIFE)
BVC_SIGMA_MIN_SAMPLES: Final = 20  # before this many, only the sign of the price change is used
NO_PRICE: Final = -1  # tick of an unclassified residual when no trade price was ever seen

_VOLUME_EPS: Final = 1e-9
_BUY: Final = 1
_SELL: Final = -1
_UNKNOWN: Final = 0
_NO_TIME: Final = -math.inf

_M_QUOTE: Final = Method.QUOTE
_M_OLD: Final = Method.OLD_QUOTE
_M_TICK: Final = Method.TICK
_M_BVC: Final = Method.BVC
_M_NONE: Final = Method.NONE


class TickClassifier:
    """Tick-by-tick (and trades-only) classification.

    Feed it accepted quotes and trades in arrival order. With no quotes at all (offline replay
    of a trades file) it is the tick rule, the very first trade unclassified.
    """

    __slots__ = (
        "_ask",
        "_bid",
        "_flip_time",
        "_last_tick",
        "_moved",
        "_old_quote",
        "_prev_ask",
        "_prev_bid",
        "_quote_time",
        "_side",
        "_stale_s",
    )

    def __init__(self, quote_stale_s: float, *, old_quote: bool = True) -> None:
        """`old_quote=False` turns the old-ask-lifted correction off (for measuring it)."""
        self._stale_s = quote_stale_s
        self._old_quote = old_quote
        self.reset()

    def reset(self) -> None:
        """Forget quotes and the tick-rule state (new session, or a gap in the data)."""
        self._bid = 0
        self._ask = 0
        self._quote_time = _NO_TIME  # no quote: infinitely stale
        self._prev_bid = 0  # the quote that prevailed at the last trade
        self._prev_ask = 0
        self._flip_time = _NO_TIME
        self._moved = False  # the quote moved since the last trade
        self._last_tick = 0  # 0: no trade yet (valid ticks are positive)
        self._side = _UNKNOWN

    def quote(self, bid_tick: int, ask_tick: int, time: float) -> None:
        """An accepted BidAsk (not crossed, not locked)."""
        if bid_tick != self._bid or ask_tick != self._ask:
            if not self._moved:
                # The first change since the last trade: remember what that trade saw.
                self._prev_bid = self._bid
                self._prev_ask = self._ask
                self._moved = True
            self._bid = bid_tick
            self._ask = ask_tick
            self._flip_time = time
        self._quote_time = time

    def trade(self, time: float, tick: int, size: float) -> Print:
        """Classify one accepted trade."""
        last = self._last_tick
        self._last_tick = tick
        moved = self._moved
        self._moved = False
        if time - self._quote_time <= self._stale_s:
            ask = self._ask
            bid = self._bid
            if (
                moved
                and self._old_quote
                and tick != last
                and time - self._flip_time <= OLD_QUOTE_WINDOW_S
            ):
                if tick == self._prev_ask and tick < ask:
                    self._side = _BUY
                    return Print(time, tick, size, size, 0.0, _M_OLD, OLD_QUOTE)
                if tick == self._prev_bid and tick > bid:
                    self._side = _SELL
                    return Print(time, tick, size, 0.0, size, _M_OLD, OLD_QUOTE)
            if tick >= ask:
                self._side = _BUY
                conf = QUOTE_AT if tick == ask else QUOTE_THROUGH
                return Print(time, tick, size, size, 0.0, _M_QUOTE, conf)
            if tick <= bid:
                self._side = _SELL
                conf = QUOTE_AT if tick == bid else QUOTE_THROUGH
                return Print(time, tick, size, 0.0, size, _M_QUOTE, conf)
        # Tick rule.
        if last == 0:
            return Print(time, tick, size, 0.0, 0.0, _M_NONE, 0.0)
        if tick > last:
            self._side = _BUY
            return Print(time, tick, size, size, 0.0, _M_TICK, TICK_MOVE)
        if tick < last:
            self._side = _SELL
            return Print(time, tick, size, 0.0, size, _M_TICK, TICK_MOVE)
        side = self._side
        if side == _BUY:
            return Print(time, tick, size, size, 0.0, _M_TICK, TICK_ZERO)
        if side == _SELL:
            return Print(time, tick, size, 0.0, size, _M_TICK, TICK_ZERO)
        return Print(time, tick, size, 0.0, 0.0, _M_NONE, 0.0)


class SnapshotClassifier:
    """reqMktData samples: prints seen + residual volume."""

    __slots__ = ("_last_tick", "_quote", "_ref_tick", "_side", "_var", "_var_samples")

    def __init__(self) -> None:
        self._var = 0.0  # EWMA of squared per-sample price changes (ticks²), kept across resets
        self._var_samples = 0
        self.reset()

    def reset(self) -> None:
        """Forget the quote, the prices and the tick-rule state; the volatility scale stays."""
        self._quote: tuple[int, int] | None = None  # the previous sample's (bid, ask)
        self._last_tick = 0  # last trade price seen (0: none)
        self._ref_tick = 0  # last known price at the end of the previous sample (0: none)
        self._side = _UNKNOWN

    def sample(
        self,
        time: float,
        quote: tuple[int, int, float, float] | None,
        last_tick: int | None,
        volume_increment: float | None,
        prints: list[tuple[int, float, float, bool]],
    ) -> list[Print]:
        """Classify one sample's prints, then split the volume they do not explain by BVC.

        `quote` is this sample's valid top of book (`bid_tick, ask_tick, bid_size, ask_size`)
        or None; it becomes the reference for the next sample's prints. `volume_increment` None
        (unknown) classifies the prints only. Returned sizes sum to
        `max(volume_increment, sum of print sizes)`, or the print sizes when it is unknown.
        """
        out: list[Print] = []
        prev = self._quote
        printed = 0.0
        for tick, size, print_time, single in prints:
            out.append(self._classify_print(prev, tick, size, print_time, single))
            printed += size
        if last_tick is not None:
            self._last_tick = last_tick
        end_tick = self._last_tick

        traded = printed > 0.0
        if volume_increment is not None:
            residual = volume_increment - printed
            if residual > _VOLUME_EPS:
                traded = True
                out.append(self._residual(time, end_tick, residual))
        if traded and end_tick and self._ref_tick:
            dp = end_tick - self._ref_tick
            n = self._var_samples + 1
            self._var_samples = n
            # Running mean at first, then an EWMA with the configured half-life.
            alpha = max(1.0 / n, _BVC_ALPHA)
            self._var += alpha * (dp * dp - self._var)
        if end_tick:
            self._ref_tick = end_tick
        self._quote = None if quote is None else (quote[0], quote[1])
        return out

    def _classify_print(
        self, prev: tuple[int, int] | None, tick: int, size: float, time: float, single: bool
    ) -> Print:
        last = self._last_tick
        self._last_tick = tick
        if prev is not None:
            bid, ask = prev
            conf = SNAPSHOT_SINGLE if single else SNAPSHOT_AGGREGATE
            if tick >= ask:
                self._side = _BUY
                return Print(time, tick, size, size, 0.0, _M_QUOTE, conf)
            if tick <= bid:
                self._side = _SELL
                return Print(time, tick, size, 0.0, size, _M_QUOTE, conf)
        factor = 1.0 if single else SNAPSHOT_TICK_AGGREGATE_FACTOR
        if last == 0:
            return Print(time, tick, size, 0.0, 0.0, _M_NONE, 0.0)
        if tick > last:
            self._side = _BUY
            return Print(time, tick, size, size, 0.0, _M_TICK, TICK_MOVE * factor)
        if tick < last:
            self._side = _SELL
            return Print(time, tick, size, 0.0, size, _M_TICK, TICK_MOVE * factor)
        if self._side == _BUY:
            return Print(time, tick, size, size, 0.0, _M_TICK, TICK_ZERO * factor)
        if self._side == _SELL:
            return Print(time, tick, size, 0.0, size, _M_TICK, TICK_ZERO * factor)
        return Print(time, tick, size, 0.0, 0.0, _M_NONE, 0.0)

    def _residual(self, time: float, end_tick: int, residual: float) -> Print:
        """BVC split of `residual` at `end_tick`, or unclassified without a price change."""
        if not end_tick:
            return Print(time, NO_PRICE, residual, 0.0, 0.0, _M_NONE, 0.0)
        if not self._ref_tick:
            # A price but nothing to compare it with: no direction at all.
            return Print(time, end_tick, residual, 0.0, 0.0, _M_NONE, 0.0)
        dp = end_tick - self._ref_tick
        if self._var_samples >= BVC_SIGMA_MIN_SAMPLES and self._var > 0.0:
            p = buy_fraction(dp, math.sqrt(self._var))
            conf = BVC_SCALE * abs(2.0 * p - 1.0)
        elif dp > 0:
            p, conf = 1.0, BVC_SIGN_ONLY
        elif dp < 0:
            p, conf = 0.0, BVC_SIGN_ONLY
        else:
            p, conf = 0.5, 0.0
        buy = residual * p
        return Print(time, end_tick, residual, buy, residual - buy, _M_BVC, conf)


def buy_fraction(dp: float, sigma: float) -> float:
    """BVC's buy share of volume: Phi(dp / sigma), the standard normal CDF; `sigma` > 0."""
    return 0.5 * (1.0 + math.erf(dp / (sigma * math.sqrt(2.0))))
