"""Tick sanity guards: every market event is judged here before any order-flow code sees it.

A rejected tick is counted by `Reason` and changes nothing downstream: no reference price, quote,
volume baseline or time moves because of it. Nothing is ever repaired or replaced.

Spikes are the one judgement that needs the future: a trade far from the last good trade (and
from the quote) is *held*, and released in order once enough following trades (or a quote)
confirm the new level, or rejected when the market comes back. So a real gap is delayed by at
most `spike_confirm_trades` trades, never rejected for good.

Snapshot samples (`reqMktData`) are taken apart by `SampleGuard` (`daemon.flow.sample_guard`)
and judged by the same rules. They follow ib_async's convention that NaN means "not sent / empty
level": a NaN bid, ask, size, last or volume there is absent, not counted. Every other bad value
(-1, 0, inf, IB's unset markers, off-grid, crossed, locked, stale) is counted once per sample.
The value checks themselves (`Reason`, IB's unset markers) are in `daemon.flow.tick_checks`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Final, Generic, TypeVar

from daemon.core.instrument import Instrument
from daemon.flow.events import QuoteEvent, RtPrint, SnapshotEvent, TradeEvent
from daemon.flow.prints import Health
from daemon.flow.sample_guard import SampleGuard, SnapshotCheck
from daemon.flow.tick_checks import (
    HUGE,
    UNSET_DECIMAL,
    UNSET_DOUBLE,
    UNSET_INTEGER,
    UNSET_LONG,
    Reason,
    judge_quote,
    price_reason,
    size_reason,
)
from daemon.settings import FlowSettings

__all__ = [
    "UNSET_DECIMAL",
    "UNSET_DOUBLE",
    "UNSET_INTEGER",
    "UNSET_LONG",
    "Reason",
    "SnapshotCheck",
    "TickGuard",
]

_NO_SEQ: Final = -(2**63)

_T = TypeVar("_T")


@dataclass(slots=True)
class _Hold(Generic[_T]):
    """Trades held as a suspected spike: (item, tick, exchange time), oldest first."""

    items: list[tuple[_T, int, float]] = field(default_factory=list)
    level: int = 0  # tick of the first held trade
    confirmations: int = 0

    def start(self, item: _T, tick: int, time: float) -> None:
        """Hold `item` as the first trade of a new suspected level."""
        self.items.append((item, tick, time))
        self.level = tick
        self.confirmations = 0

    def take(self) -> list[tuple[_T, int, float]]:
        """Everything held, oldest first; the hold is empty after."""
        taken = list(self.items)
        self.items.clear()
        return taken


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
        "_qhi",
        "_qlo",
        "_quote_rejects",
        "_samples",
        "_stale",
        "_tick_index",
        "_trade_hold",
        "_trade_rejects",
        "_trade_seq",
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
        self._samples = SampleGuard(
            count=self._count,
            reject_trade=self._reject_trade,
            take_quote=self._take_quote,
            tick_of=self._tick_of,
            judge_print=lambda p, tick, time: self._judge(self._print_hold, p, tick, time),
        )
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
            and self._samples.volume is None
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
        if not 0.0 < price < HUGE:
            return self._reject_trade(price_reason(price), ev)
        size = ev.size
        if not 0.0 < size < HUGE:
            return self._reject_trade(size_reason(size), ev)
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
            0.0 < bid < HUGE
            and 0.0 < ask < HUGE
            and 0.0 <= ev.bid_size < HUGE
            and 0.0 <= ev.ask_size < HUGE
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
        return self._take_quote(bid, ask, ev.bid_size, ev.ask_size, ev.exchange_time, ev)

    def _take_quote(
        self, bid: float, ask: float, bid_size: float, ask_size: float, time: float, ev: object
    ) -> tuple[int, int] | None:
        """The slow path of a quote (or a sample's): its ticks when accepted, else None."""
        judged = judge_quote(
            bid, ask, bid_size, ask_size, time < self._newest - self._stale, self._tick_of
        )
        if isinstance(judged, Reason):
            self._count(judged, ev)
            self._quote_rejects += 1
            return None
        self._set_quote(judged[0], judged[1], time)
        return judged

    def _set_quote(self, bid_tick: int, ask_tick: int, time: float) -> None:
        band = self._band
        self._qlo = bid_tick - band
        self._qhi = ask_tick + band
        if time > self._newest:
            self._newest = time
        self._quote_rejects = 0

    # -- snapshot samples ------------------------------------------------------------------------

    def snapshot(self, ev: SnapshotEvent) -> SnapshotCheck:
        """Judge each part of a sample on its own (`SampleGuard.check`)."""
        return self._samples.check(ev)

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
                hold.start(item, tick, time)
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
        hold.start(item, tick, time)  # yet another level: suspect it in turn
        return out

    def _accept(self, tick: int, time: float) -> None:
        self._lo = tick - self._band
        self._hi = tick + self._band
        if time > self._newest:
            self._newest = time
        self._trade_rejects = 0

    def _release(self, hold: _Hold[_T]) -> list[tuple[_T, int, float]]:
        released = hold.take()
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
