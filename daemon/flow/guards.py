"""Tick sanity guards: every market event is judged here before any order-flow code sees it.

A rejected tick is counted by `Reason` and changes nothing downstream: no reference price, quote,
volume baseline or time moves because of it. Nothing is ever repaired or replaced.

Spikes are the one judgement that needs the future: a trade far from the last good trade (and
from the quote) is *held*, and released in order once enough following trades (or a quote)
confirm the new level, or rejected when the market comes back. So a real gap is delayed by at
most `spike_confirm_trades` trades, never rejected for good.

Snapshot samples (`reqMktData`) follow ib_async's convention that NaN means "not sent / empty
level": a NaN bid, ask, size, last or volume there is absent, not counted. Every other bad value
(-1, 0, inf, IB's unset markers, off-grid, crossed, locked, stale) is counted once per sample.
"""

from __future__ import annotations

import enum
import math
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Final, Generic, TypeVar

from daemon.core.instrument import Instrument
from daemon.flow.events import DataMode, QuoteEvent, RtPrint, SnapshotEvent, TradeEvent
from daemon.flow.prints import Health
from daemon.settings import FlowSettings

# IB's "no value" markers (ibapi `common.py`, ib_async `util.py`); any of them in a price or a
# size is UNSET. Kept here as floats because daemon.flow imports neither client library.
UNSET_DOUBLE: Final = sys.float_info.max
UNSET_INTEGER: Final = 2**31 - 1
UNSET_LONG: Final = 2**63 - 1
UNSET_DECIMAL: Final = 2**127 - 1
_UNSET: Final = frozenset(
    float(v) for v in (UNSET_DOUBLE, UNSET_INTEGER, UNSET_LONG, UNSET_DECIMAL)
)

# Fast-path bound: every usable price or size is below the smallest unset marker. Values at or
# above it are either a marker (UNSET) or absurd (BAD_PRICE / BAD_SIZE).
_HUGE: Final = float(UNSET_INTEGER)
_NO_SEQ: Final = -(2**63)


class Reason(enum.StrEnum):
    """Why a tick was rejected; the values are the keys of status.json `rejected_ticks`."""

    BAD_PRICE = "bad_price"  # NaN, inf, <= 0 (incl. -1)
    UNSET = "unset"  # IB's unset markers in price or size
    BAD_SIZE = "bad_size"  # trade size NaN/inf/<= 0 (quote sizes: NaN/inf/negative only)
    OFF_GRID = "off_grid"
    CROSSED = "crossed_quote"  # bid > ask
    LOCKED = "locked_quote"  # bid == ask
    STALE_QUOTE = "stale_quote"  # quote's exchange_time older than newest seen - quote_stale_s
    SPIKE = "spike"  # unconfirmed spike
    DUPLICATE = "duplicate"
    VOLUME_RESET = "volume_reset"  # cumulative volume went backwards (counted, re-baselined)


@dataclass(slots=True)
class SnapshotCheck:
    """What a SnapshotEvent leaves after the guard."""

    quote: tuple[int, int, float, float] | None  # (bid_tick, ask_tick, bid_size, ask_size)
    last_tick: int | None  # valid last price as a tick index (not spike-checked)
    volume_increment: float | None  # None for the first sample and after a reset
    prints: list[tuple[int, float, float, bool]]  # accepted RtPrints: (tick, size, time, single)


_T = TypeVar("_T")


@dataclass(slots=True)
class _Hold(Generic[_T]):
    """Trades held as a suspected spike: (item, tick, exchange time), oldest first."""

    items: list[tuple[_T, int, float]] = field(default_factory=list)
    level: int = 0  # tick of the first held trade
    confirmations: int = 0


def _price_reason(price: float) -> Reason:
    """Why `price` failed the fast check `0 < price < _HUGE`."""
    return Reason.UNSET if price in _UNSET else Reason.BAD_PRICE


def _size_reason(size: float) -> Reason:
    """Why a size failed its fast check."""
    return Reason.UNSET if size in _UNSET else Reason.BAD_SIZE


class TickGuard:
    """Judges trades, quotes and snapshot samples; counts what it rejects and why.

    Prices are judged on `instrument`'s grid and come out as its tick indexes; the spike band
    counts its ticks. `on_reject(reason, event)` is called once per rejected tick: `event` is the
    TradeEvent or QuoteEvent, the RtPrint for a rejected print, the SnapshotEvent for its quote,
    last or volume.
    """

    __slots__ = (
        "_band",
        "_confirm",
        "_held_trades",
        "_hi",
        "_invalid_after",
        "_lo",
        "_newest",
        "_on_reject",
        "_per_point",
        "_print_hold",
        "_print_reset",
        "_print_total",
        "_qhi",
        "_qlo",
        "_quote_rejects",
        "_stale",
        "_tick_index",
        "_trade_hold",
        "_trade_rejects",
        "_trade_seq",
        "_volume",
        "rejected",
    )

    def __init__(
        self,
        flow: FlowSettings,
        quote_stale_s: float,
        on_reject: Callable[[Reason, object], None] | None = None,
        *,
        instrument: Instrument,
    ) -> None:
        # The fast paths scale by a float and test is_integer(); off that, the instrument's
        # tolerant tick_index decides (prices from the wire are decimal strings).
        self._per_point = float(instrument.ticks_per_point)
        self._tick_index = instrument.tick_index
        self._band = flow.spike_band_ticks
        self._confirm = flow.spike_confirm_trades
        self._invalid_after = flow.invalid_after_rejects
        self._stale = quote_stale_s
        self._on_reject = on_reject
        self.rejected: dict[str, int] = {}
        """Rejections by `Reason` value; only reasons that occurred."""
        # Accepted-trade range [last - band, last + band]; empty (lo > hi) until the first
        # accepted trade, which is how "no trade yet" is told without a flag on the hot path.
        self._lo = 1
        self._hi = 0
        # Latest accepted quote's range [bid - band, ask + band]; empty before the first quote.
        self._qlo = 1
        self._qhi = 0
        self._newest = float("-inf")  # newest exchange time of an accepted event
        self._trade_seq = _NO_SEQ
        self._trade_hold: _Hold[TradeEvent] = _Hold()
        self._held_trades = self._trade_hold.items  # same list, for the hot path's emptiness test
        self._print_hold: _Hold[RtPrint] = _Hold()
        self._print_total = float("-inf")  # newest RtPrint total volume seen on a valid print
        self._print_reset = False  # a volume reset was seen: the next lower print total is new
        self._volume: float | None = None  # cumulative volume baseline
        # Consecutive rejections per stream, reset by that stream's next accepted tick.
        self._trade_rejects = 0
        self._quote_rejects = 0

    def _tick_of(self, price: float) -> int | None:
        """Tick index of a price known to be positive and finite; None when off the grid."""
        scaled = price * self._per_point
        return int(scaled) if scaled.is_integer() else self._tick_index(price)

    @property
    def untouched(self) -> bool:
        """Nothing was judged yet: no trade, quote or sample, accepted or rejected."""
        return (
            self._trade_seq == _NO_SEQ
            and self._newest == float("-inf")
            and self._volume is None
            and not self.rejected
        )

    def restart_sequence(self) -> None:
        """A new numbering starts (backfilled history): earlier seqs are not duplicates of it."""
        self._trade_seq = _NO_SEQ

    # -- trades ----------------------------------------------------------------------------------

    def trade(self, ev: TradeEvent) -> tuple[TradeEvent, ...]:
        """The trades to process now, in order: () when `ev` is rejected or held as a suspected
        spike, (ev,) normally, (held..., ev) when `ev` confirms a held level."""
        seq = ev.seq
        if seq <= self._trade_seq:
            return self._reject_trade(Reason.DUPLICATE, ev)
        self._trade_seq = seq
        price = ev.price
        if not 0.0 < price < _HUGE:
            return self._reject_trade(_price_reason(price), ev)
        size = ev.size
        if not 0.0 < size < _HUGE:
            return self._reject_trade(_size_reason(size), ev)
        scaled = price * self._per_point
        if scaled.is_integer():  # exact grid prices; float noise takes tick_index's tolerance
            tick = int(scaled)
        else:
            near = self._tick_index(price)
            if near is None:
                return self._reject_trade(Reason.OFF_GRID, ev)
            tick = near
        if self._held_trades or not (
            self._lo <= tick <= self._hi or self._qlo <= tick <= self._qhi
        ):
            return tuple(
                item for item, _, _ in self._judge(self._trade_hold, ev, tick, ev.exchange_time)
            )
        band = self._band
        self._lo = tick - band
        self._hi = tick + band
        time = ev.exchange_time
        if time > self._newest:
            self._newest = time
        self._trade_rejects = 0
        return (ev,)

    def _reject_trade(self, reason: Reason, ev: object) -> tuple[()]:
        self._count(reason, ev)
        self._trade_rejects += 1
        return ()

    # -- quotes ----------------------------------------------------------------------------------

    def quote(self, ev: QuoteEvent) -> tuple[int, int] | None:
        """(bid_tick, ask_tick) when the quote is accepted, else None (counted)."""
        bid = ev.bid
        ask = ev.ask
        if (
            0.0 < bid < _HUGE
            and 0.0 < ask < _HUGE
            and 0.0 <= ev.bid_size < _HUGE
            and 0.0 <= ev.ask_size < _HUGE
        ):
            per_point = self._per_point
            bid_scaled = bid * per_point
            ask_scaled = ask * per_point
            time = ev.exchange_time
            if (
                bid_scaled < ask_scaled
                and bid_scaled.is_integer()
                and ask_scaled.is_integer()
                and time >= self._newest - self._stale
            ):
                bid_tick = int(bid_scaled)
                ask_tick = int(ask_scaled)
                band = self._band
                self._qlo = bid_tick - band
                self._qhi = ask_tick + band
                if time > self._newest:
                    self._newest = time
                self._quote_rejects = 0
                return bid_tick, ask_tick
        judged = self._judge_quote(bid, ask, ev.bid_size, ev.ask_size, ev.exchange_time)
        if isinstance(judged, Reason):
            self._count(judged, ev)
            self._quote_rejects += 1
            return None
        self._set_quote(judged[0], judged[1], ev.exchange_time)
        return judged

    def _judge_quote(
        self, bid: float, ask: float, bid_size: float, ask_size: float, time: float
    ) -> Reason | tuple[int, int]:
        """The quote's ticks, or the first thing wrong with it."""
        for price in (bid, ask):
            if not 0.0 < price < _HUGE:
                return _price_reason(price)
        for size in (bid_size, ask_size):
            if not 0.0 <= size < _HUGE:
                return _size_reason(size)
        bid_tick = self._tick_of(bid)
        ask_tick = self._tick_of(ask)
        if bid_tick is None or ask_tick is None:
            return Reason.OFF_GRID
        if bid_tick > ask_tick:
            return Reason.CROSSED
        if bid_tick == ask_tick:
            return Reason.LOCKED
        if time < self._newest - self._stale:
            return Reason.STALE_QUOTE
        return bid_tick, ask_tick

    def _set_quote(self, bid_tick: int, ask_tick: int, time: float) -> None:
        band = self._band
        self._qlo = bid_tick - band
        self._qhi = ask_tick + band
        if time > self._newest:
            self._newest = time
        self._quote_rejects = 0

    # -- snapshot samples ------------------------------------------------------------------------

    def snapshot(self, ev: SnapshotEvent) -> SnapshotCheck:
        """Judge each part of a sample on its own; one count per problem per sample.

        A sample in tick-by-tick mode serves volume reconciliation only: its quote, last and
        prints duplicate the BidAsk/AllLast feeds, so they are neither judged nor counted twice.
        """
        increment = self._check_volume(ev)
        if ev.mode is DataMode.TICK_BY_TICK:
            return SnapshotCheck(quote=None, last_tick=None, volume_increment=increment, prints=[])
        return SnapshotCheck(
            quote=self._check_snapshot_quote(ev),
            last_tick=self._check_last(ev),
            volume_increment=increment,
            prints=self._check_prints(ev),
        )

    def _check_snapshot_quote(self, ev: SnapshotEvent) -> tuple[int, int, float, float] | None:
        bid, ask, bid_size, ask_size = ev.bid, ev.ask, ev.bid_size, ev.ask_size
        if bid != bid or ask != ask or bid_size != bid_size or ask_size != ask_size:
            return None  # NaN: no quote in this sample (ib_async's empty level)
        judged = self._judge_quote(bid, ask, bid_size, ask_size, ev.exchange_time)
        if isinstance(judged, Reason):
            self._count(judged, ev)
            self._quote_rejects += 1
            return None
        self._set_quote(judged[0], judged[1], ev.exchange_time)
        return judged[0], judged[1], bid_size, ask_size

    def _check_last(self, ev: SnapshotEvent) -> int | None:
        last = ev.last
        if last != last:
            return None
        if not 0.0 < last < _HUGE:
            self._reject_trade(_price_reason(last), ev)
            return None
        tick = self._tick_of(last)
        if tick is None:
            self._reject_trade(Reason.OFF_GRID, ev)
        return tick

    def _check_volume(self, ev: SnapshotEvent) -> float | None:
        """The volume increment; None for the first sample, a missing volume or a reset."""
        volume = ev.volume
        if volume != volume:
            return None
        if not 0.0 <= volume < _HUGE:
            self._count(_size_reason(volume), ev)
            return None
        previous = self._volume
        self._volume = volume
        if previous is None:
            return None
        if volume < previous:
            self._count(Reason.VOLUME_RESET, ev)
            self._print_reset = True
            return None
        return volume - previous

    def _check_prints(self, ev: SnapshotEvent) -> list[tuple[int, float, float, bool]]:
        accepted: list[tuple[int, float, float, bool]] = []
        hold = self._print_hold
        for p in ev.prints:
            total = p.total_volume
            if total <= self._print_total:
                if not self._print_reset:
                    self._reject_trade(Reason.DUPLICATE, p)
                    continue
                # After a volume reset, the first print counted from zero again re-baselines
                # (prints of the old count may still come first in the same sample).
                self._print_reset = False
            price = p.price
            if not 0.0 < price < _HUGE:
                self._reject_trade(_price_reason(price), p)
                continue
            size = p.size
            if not 0.0 < size < _HUGE:
                self._reject_trade(_size_reason(size), p)
                continue
            if total in _UNSET:
                self._reject_trade(Reason.UNSET, p)
                continue
            tick = self._tick_of(price)
            if tick is None:
                self._reject_trade(Reason.OFF_GRID, p)
                continue
            if math.isfinite(total):
                self._print_total = total
            for item, item_tick, time in self._judge(hold, p, tick, p.time):
                accepted.append((item_tick, item.size, time, item.single))
        return accepted

    # -- spikes ----------------------------------------------------------------------------------

    def _in_range(self, tick: int) -> bool:
        return self._lo <= tick <= self._hi or self._qlo <= tick <= self._qhi

    def _judge(
        self, hold: _Hold[_T], item: _T, tick: int, time: float
    ) -> list[tuple[_T, int, float]]:
        """Spike logic for a valid trade outside the accepted range, or any trade while holding.

        Returns what to process now, in order.
        """
        out: list[tuple[_T, int, float]] = []
        if hold.items and self._in_range(hold.level):
            out = self._release(hold)  # a quote (or the other trade stream) confirmed the level
        if not hold.items:
            if self._lo > self._hi or self._in_range(tick):  # no reference yet, or no spike
                self._accept(tick, time)
                out.append((item, tick, time))
            else:
                self._start_hold(hold, item, tick, time)
            return out
        band = self._band
        from_held = abs(tick - hold.level)
        near_held = from_held <= band
        near_reference = self._in_range(tick)
        if near_held and near_reference:  # both bands overlap here: the closer level wins
            near_held = from_held < abs(tick - (self._lo + band))
        if near_held:
            hold.items.append((item, tick, time))
            hold.confirmations += 1
            return self._release(hold) if hold.confirmations >= self._confirm else out
        self._reject_held(hold)
        if near_reference:
            self._accept(tick, time)
            return [(item, tick, time)]
        self._start_hold(hold, item, tick, time)  # yet another level: suspect it in turn
        return out

    def _start_hold(self, hold: _Hold[_T], item: _T, tick: int, time: float) -> None:
        hold.items.append((item, tick, time))
        hold.level = tick
        hold.confirmations = 0

    def _accept(self, tick: int, time: float) -> None:
        self._lo = tick - self._band
        self._hi = tick + self._band
        if time > self._newest:
            self._newest = time
        self._trade_rejects = 0

    def _release(self, hold: _Hold[_T]) -> list[tuple[_T, int, float]]:
        released = list(hold.items)
        hold.items.clear()
        for _, tick, time in released:
            self._accept(tick, time)
        return released

    def _reject_held(self, hold: _Hold[_T]) -> None:
        for item, _, _ in hold.items:
            self._reject_trade(Reason.SPIKE, item)
        hold.items.clear()

    def flush(self) -> None:
        """End of input: trades still held as a suspected spike are rejected (SPIKE)."""
        self._reject_held(self._trade_hold)
        self._reject_held(self._print_hold)

    # -- state -----------------------------------------------------------------------------------

    def _count(self, reason: Reason, ev: object) -> None:
        key = reason.value
        rejected = self.rejected
        rejected[key] = rejected.get(key, 0) + 1
        if self._on_reject is not None:
            self._on_reject(reason, ev)

    @property
    def health(self) -> Health:
        """INVALID before any accepted trade or after `invalid_after_rejects` consecutive rejected
        trades (or quotes) until the next accepted one; DEGRADED while a spike is held; else OK."""
        if (
            self._lo > self._hi
            or self._trade_rejects >= self._invalid_after
            or self._quote_rejects >= self._invalid_after
        ):
            return Health.INVALID
        if self._held_trades or self._print_hold.items:
            return Health.DEGRADED
        return Health.OK

    @property
    def held(self) -> int:
        """Trades (and RtPrints) currently held as a suspected spike."""
        return len(self._held_trades) + len(self._print_hold.items)
