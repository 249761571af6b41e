"""The order-flow extractor: guards → classification → features, one code path live and offline.

`OrderFlow.on_event` takes every `MarketEvent` the broker emits (or a replay reads) in arrival
order. A rejected tick changes no feature. Health is the worst of: the guards' verdict, a
volume gap (tick-by-tick trades not adding up to IB's cumulative volume), a stale quote in
tick-by-tick mode, warming up (live events held while the session is backfilled), and a stale
feed (the market data's freshness watch saw no accepted data for too long, see
`broker.freshness`; the next accepted trade or sample ends it).

Warm start: `begin_warmup()` holds live events; `finish_warmup(events, complete)` runs the
backfilled events through the same path first, then the held live ones, so CVD, VWAP and the
profile are right from the first live tick. Incomplete history marks the session features
partial (`FlowSnapshot.session_partial`).

The instrument: every price is judged and reported on its grid (tick size), from construction.
`set_instrument` takes the broker's contract for the configured product; a different grid is
refused once data has been taken in (tick indexes already kept would change their meaning).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

from daemon.core.instrument import Instrument, InstrumentError
from daemon.flow.classify import NO_PRICE, SnapshotClassifier, TickClassifier
from daemon.flow.events import DataMode, MarketEvent, QuoteEvent, SnapshotEvent, TradeEvent
from daemon.flow.features import Bar, Features, FlowSnapshot
from daemon.flow.guards import Reason, TickGuard
from daemon.flow.prints import Health, Method, Print
from daemon.flow.reconcile import VolumeReconciler
from daemon.flow.sessions import SessionSchedule
from daemon.settings import DataSettings, FlowSettings

_WARMUP_HOLD_LIMIT = 2_000_000  # live events held during a backfill, at most (memory bound)
_NOT_STALE = object()


@dataclass(frozen=True, slots=True)
class FlowState:
    """What the strategy and status readers get: features, health and how they were made."""

    health: Health
    features: FlowSnapshot
    rejected: dict[str, int]
    volume_by_method: dict[str, float]
    volume_gap: bool
    volume_gaps: int
    missing_volume: float
    quote_stale: bool
    warming_up: bool
    trades: int
    feed_stale: bool = False


class OrderFlow:
    """Guards, classifies and accumulates; no I/O, so it runs the same live and offline."""

    def __init__(
        self,
        flow: FlowSettings,
        data: DataSettings,
        schedule: SessionSchedule | None = None,
        *,
        instrument: Instrument,
        on_bar: Callable[[Bar], None] | None = None,
        on_reject: Callable[[Reason, object], None] | None = None,
        quotes: bool = True,
    ) -> None:
        self.flow = flow
        self._quote_stale_s = data.quote_stale_s
        self._expects_quotes = quotes  # False for trades-only input (offline replay of a CSV)
        self._on_bar_cb = on_bar
        self._on_reject_cb = on_reject
        self.ticks = TickClassifier(data.quote_stale_s)
        self.samples = SnapshotClassifier()
        self.schedule = schedule or SessionSchedule()
        self._instrument = instrument
        self._build_priced(instrument)
        self.reconciler = VolumeReconciler(flow.volume_gap_contracts, flow.volume_gap_after_s)
        self.volume_by_method: dict[str, float] = {m.value: 0.0 for m in Method}
        self.trades = 0
        self.unpriced_volume = 0.0  # snapshot volume seen before any price: counted, not placed
        self._last_trade_time: float | None = None
        self._last_quote_time: float | None = None
        # Local receipt (monotonic) of the last accepted live data: a trade, or in snapshot
        # mode a sample whose quote or prints passed the guards. Backfilled history never sets
        # it. `_stale_mark` is its value when the feed was declared stale.
        self._fresh_at: float | None = None
        self._stale_mark: object = _NOT_STALE
        self._held: list[MarketEvent] | None = None
        self._replaying = False  # finish_warmup is running history and held events
        self._held_dropped = 0
        self._classify = self.ticks.trade
        self._traded = self.reconciler.traded

    def _build_priced(self, instrument: Instrument) -> None:
        """The parts that turn prices into tick indexes and back, on `instrument`'s grid."""
        self._per_point = float(instrument.ticks_per_point)
        self.guard = TickGuard(
            self.flow, self._quote_stale_s, self._on_reject_cb, instrument=instrument
        )
        self.features = Features(self.flow, self.schedule, self._on_bar_cb, instrument=instrument)
        self._guard_trade = self.guard.trade
        self._on_print = self.features.on_print

    def listen_bars(self, on_bar: Callable[[Bar], None] | None) -> None:
        """Closed bars go straight to ``on_bar`` from now on (the trader's strategy feed)."""
        self._on_bar_cb = on_bar
        self.features.listen_bars(on_bar)

    # --- the instrument ---

    @property
    def instrument(self) -> Instrument:
        """The traded instrument whose grid prices are judged and reported on."""
        return self._instrument

    def set_instrument(self, instrument: Instrument) -> None:
        """Take the broker's word for the instrument (its contract details refine the product's).

        The same grid: only the instrument changes. Another grid is taken only before any data
        (trade, quote, sample or clock move) was taken in; after that, InstrumentError.
        """
        if instrument.ticks_per_point == self._instrument.ticks_per_point:
            self._instrument = instrument
            return
        if not (self.guard.untouched and self.features.clock is None):
            raise InstrumentError(
                f"{instrument.name}: tick size {instrument.tick_size:g} differs from "
                f"{self._instrument.tick_size:g}, and data was already taken in on that grid"
            )
        self._instrument = instrument
        self._build_priced(instrument)

    # --- input ---

    def on_event(self, ev: MarketEvent) -> None:
        """One market event, in arrival order."""
        held = self._held
        if held is not None:
            if len(held) < _WARMUP_HOLD_LIMIT:
                held.append(ev)
            else:
                self._held_dropped += 1
            return
        if type(ev) is TradeEvent:  # the hot path, inlined: one call per stage
            for t in self._guard_trade(ev):
                size = t.size
                # The guard passed the price: on the grid, so scaling and rounding is exact.
                p = self._classify(t.exchange_time, round(t.price * self._per_point), size)
                self._on_print(p)
                self.volume_by_method[p.method] += size
                self._traded(size)
                self.trades += 1
                self._last_trade_time = t.exchange_time
                self._fresh_at = t.received
        else:
            self._process(ev)

    def _process(self, ev: MarketEvent) -> None:
        if isinstance(ev, TradeEvent):
            self.on_event(ev)
        elif isinstance(ev, QuoteEvent):
            self._quote(ev)
        else:
            self._snapshot(ev)

    def _quote(self, ev: QuoteEvent) -> None:
        ticks = self.guard.quote(ev)
        if ticks is None:
            return
        bid, ask = ticks
        self.ticks.quote(bid, ask, ev.exchange_time)
        self.features.on_quote(bid, ask, ev.bid_size, ev.ask_size, ev.exchange_time)
        self._last_quote_time = ev.exchange_time

    def _snapshot(self, ev: SnapshotEvent) -> None:
        check = self.guard.snapshot(ev)
        if ev.mode is DataMode.TICK_BY_TICK:
            # Alongside tick-by-tick, samples only check the volume; quotes come from BidAsk.
            self.reconciler.cumulative(check.volume_increment, ev.exchange_time)
            return
        if check.quote is not None or check.prints:
            self._fresh_at = ev.received
        if check.quote is not None:
            bid, ask, bid_size, ask_size = check.quote
            self.features.on_quote(bid, ask, bid_size, ask_size, ev.exchange_time)
            self._last_quote_time = ev.exchange_time
        prints = self.samples.sample(
            ev.exchange_time, check.quote, check.last_tick, check.volume_increment, check.prints
        )
        self._add_prints(prints)

    def _add_prints(self, prints: Iterable[Print]) -> None:
        for p in prints:
            if p.tick == NO_PRICE:  # volume before any price was seen: no bar can hold it
                self.unpriced_volume += p.size
                continue
            self.features.on_print(p)
            self.volume_by_method[p.method] += p.size
            self.trades += 1
            self._last_trade_time = p.time

    def advance(self, t: float) -> None:
        """The market clock moved to `t` (closes bars with no trades, crosses sessions)."""
        if self._held is None:
            self.features.advance(t)

    def flush(self) -> None:
        """End of input: unconfirmed spikes are rejected, open bars close."""
        self.guard.flush()
        self.features.flush()

    # --- warm start ---

    def begin_warmup(self) -> None:
        """Hold live events until `finish_warmup` (the session is being backfilled)."""
        if self._held is None:
            self._held = []

    def finish_warmup(self, history: Iterable[MarketEvent], complete: bool) -> int:
        """Process backfilled `history`, then the held live events; returns how many were held.

        `complete` False marks the session features partial: the history did not reach back to
        the session start (or could not be fetched at all).
        """
        held = self._held or []
        self._held = None
        # Bars that close while history and the held events are run are not live: health
        # stays DEGRADED until the end, so no strategy acts on a bar from minutes ago.
        self._replaying = True
        fresh_at = self._fresh_at
        try:
            self.guard.restart_sequence()  # history has its own seqs (below the held live ones)
            for ev in history:
                self._process(ev)
            # History is stamped with the time it was fetched: it says nothing about the feed.
            self._fresh_at = fresh_at
            self.guard.restart_sequence()
            for ev in held:
                self._process(ev)
        finally:
            self._replaying = False
        self.features.mark_partial(not complete or self._held_dropped > 0)
        return len(held)

    @property
    def warming_up(self) -> bool:
        return self._held is not None or self._replaying

    @property
    def first_held_trade_time(self) -> float | None:
        """Exchange time of the first live trade held while warming up, if any yet."""
        for ev in self._held or ():
            if isinstance(ev, TradeEvent):
                return ev.exchange_time
        return None

    @property
    def last_trade_time(self) -> float | None:
        """Exchange time of the last trade processed (held ones not included)."""
        return self._last_trade_time

    # --- feed freshness ---

    @property
    def last_accepted(self) -> float | None:
        """Local receipt time (monotonic) of the last accepted live trade or snapshot sample."""
        return self._fresh_at

    def set_feed_stale(self, stale: bool) -> None:
        """The freshness watch's verdict; a stale feed stays stale until accepted data comes."""
        self._stale_mark = self._fresh_at if stale else _NOT_STALE

    @property
    def feed_stale(self) -> bool:
        return self._stale_mark is not _NOT_STALE and self._fresh_at == self._stale_mark

    # --- output ---

    @property
    def quote_stale(self) -> bool:
        """The last quote is older than the last trade by more than allowed."""
        trade, quote = self._last_trade_time, self._last_quote_time
        if trade is None or not self._expects_quotes:
            return False
        return quote is None or trade - quote > self._quote_stale_s

    @property
    def health(self) -> Health:
        guard = self.guard.health
        if guard is Health.INVALID:
            return Health.INVALID
        if (
            guard is Health.DEGRADED
            or self.reconciler.gap
            or self.warming_up
            or self.quote_stale
            or self.feed_stale
        ):
            return Health.DEGRADED
        return Health.OK

    def state(self) -> FlowState:
        """A consistent picture of everything, for the strategy and status.json."""
        return FlowState(
            health=self.health,
            features=self.features.snapshot(),
            rejected=dict(self.guard.rejected),
            volume_by_method={k: v for k, v in self.volume_by_method.items() if v},
            volume_gap=self.reconciler.gap,
            volume_gaps=self.reconciler.gaps,
            missing_volume=self.reconciler.missing_volume,
            quote_stale=self.quote_stale,
            warming_up=self.warming_up,
            trades=self.trades,
            feed_stale=self.feed_stale,
        )
