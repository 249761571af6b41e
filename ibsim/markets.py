"""The market side of the gateway: the loop serving the source, each listed contract's market,
session rolls and the periodic streams.

A mixin of `ibsim.gateway.Gateway` (the attributes annotated below are the gateway's). The source
is the front month's tape of the product the gateway drives (`GatewayConfig.symbol`); that
product's listed back months follow it (`curve.py`), created the first time a client asks for
one. The other listed products have no market here (`drives`). At each Globex session roll the
CLOSE of every market becomes the ended session's settlement: CME's rule for ES, the
volume-weighted price of the trades from 14:59:30 to 15:00:00 CT, here from the tape (else the
last trade before 15:00, else the session's last), rounded to the product's tick.
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import Callable, Iterable
from datetime import datetime, time
from typing import TYPE_CHECKING

from ibsim import calendar
from ibsim.curve import BackMonth, DerivedHistory, years_between
from ibsim.feed import SNAPSHOT_INTERVAL, MarketFeed
from ibsim.history import History, Tape
from ibsim.market import MarketSource
from ibsim.matching import MatchingEngine
from ibsim.model import TICK_SIZE, EngineEvent, FutureSpec, MarketEvent, QuoteTick, TradeTick
from ibsim.products import snap

if TYPE_CHECKING:
    from ibsim.clock import SimClock
    from ibsim.pnl import PnLService
    from ibsim.realtime import Streams
    from ibsim.session import ClientSession

log = logging.getLogger("ibsim.gateway")

SETTLEMENT_TIME = time(15, 0)  # CT, ES daily settlement
SETTLEMENT_WINDOW = 30.0  # seconds of trades before it


def first_price(source: MarketSource) -> float | None:
    """The source's first price (first quote's bid or first trade): the CLOSE until the data
    has shown a whole session (no earlier settlement is known)."""
    for event in source.events():
        return event.bid if isinstance(event, QuoteTick) else event.price
    return None


def settlement(history: Tape, session: calendar.Session, tick: float = TICK_SIZE) -> float | None:
    """The settlement of `session` from the trades on `history` (None if it had none), on the
    `tick` grid."""
    at = datetime.combine(session.trade_date, SETTLEMENT_TIME, calendar.CENTRAL).timestamp()
    at = min(at, session.close_utc)  # an early close settles at its close
    window = history.trades.between(at - SETTLEMENT_WINDOW, at)
    if window:
        volume = sum(t.size for t in window)
        vwap = sum(t.price * t.size for t in window) / volume
        return snap(vwap, tick)
    last = history.trades.before(at) or history.trades.before(session.close_utc)
    if last is None or last.time < session.open_utc:
        return None
    return last.price


def _session_at_or_after(t: float) -> calendar.Session:
    found = calendar.session_bounds(t)
    if found is None:
        found = calendar.session_bounds(calendar.next_open(t))
    assert found is not None
    return found


class Markets:
    """The market loop, the listed contracts' markets, session rolls and periodic streams."""

    source: MarketSource
    clock: SimClock
    engine: MatchingEngine
    front: FutureSpec
    feed: MarketFeed
    history: History
    back: dict[int, BackMonth]
    streams: Streams
    pnl: PnLService
    sessions: set[ClientSession]
    stalled: bool
    ib_connected: bool
    market_done: asyncio.Event
    events_served: int
    quiet_until: float
    _session: calendar.Session
    _session_close: float
    _carry: float
    _activity: float
    _max_write_buffer: int
    _unstalled: asyncio.Event
    dispatch: Callable[[Iterable[EngineEvent]], None]

    # --- contracts' markets ---

    def drives(self, spec: FutureSpec) -> bool:
        """Whether `spec` is of the product this gateway's market source drives."""
        return spec.symbol == self.front.symbol

    def feed_for(self, spec: FutureSpec) -> MarketFeed | None:
        """The live market of a listed contract (created for a back month); None if expired
        or of a product this gateway does not drive."""
        if spec.con_id == self.front.con_id:
            return self.feed
        month = self.back_month(spec)
        return None if month is None else month.feed

    def back_month(self, spec: FutureSpec) -> BackMonth | None:
        """The derived market of a contract expiring after the front (None otherwise)."""
        month = self.back.get(spec.con_id)
        if month is not None:
            return month
        if not self.drives(spec):
            return None
        years = years_between(self.front, spec)
        if years <= 0:
            return None
        rank = round(years * 4)
        month = BackMonth(spec, rank, years, self._carry, self._activity)
        reference = self.feed.close if self.feed.close is not None else self.feed.last
        if reference is not None:
            month.reprice(reference)
            month.feed.close = None if self.feed.close is None else month.shifted(self.feed.close)
        self.back[spec.con_id] = month
        bid, ask = self.feed.bid, self.feed.ask
        if bid is not None and ask is not None:  # start from the front's current book
            quote = QuoteTick(self.feed.last_time, bid, ask, self.feed.bid_size, self.feed.ask_size)
            self._serve_back(month, quote)
        log.info("back month %s follows the front %+.2f", spec.local_symbol, month.offset)
        return month

    def tape_for(self, spec: FutureSpec) -> Tape | None:
        """What has traded in `spec` so far (derived for a back month); None if expired."""
        if spec.con_id == self.front.con_id:
            return self.history
        month = self.back_month(spec)
        return None if month is None else DerivedHistory(self.history, month)

    def mark(self, spec: FutureSpec) -> float:
        feed = self.feed_for(spec)
        if feed is None:
            return 0.0
        if feed.last is not None:
            return feed.last
        if feed.bid is not None and feed.ask is not None:
            return (feed.bid + feed.ask) / 2
        return 0.0

    def all_feeds(self) -> list[MarketFeed]:
        return [self.feed, *(m.feed for m in self.back.values())]

    def tape_time(self) -> float:
        """Data time up to which every event has been served (bars ending there are final)."""
        return min(self.clock.now(), max(self.history.last_time, self.quiet_until))

    # --- market loop ---

    async def _run_market(self) -> None:
        if math.isinf(self.clock.speed):
            await self._run_unpaced()
        else:
            await self._run_paced()
        self.quiet_until = math.inf
        self.market_done.set()
        log.info("market source exhausted after %d events", self.events_served)

    async def _run_paced(self) -> None:
        batch = 0
        for event in self.source.events():
            delay = self.clock.wall_delay(event.time)
            if delay > 0.001:
                self.quiet_until = event.time  # nothing else happens before it
                await asyncio.sleep(delay)
                batch = 0
            self.apply(event)
            batch += 1
            if batch >= 256:
                batch = 0
                await self._yield_with_backpressure()

    async def _run_unpaced(self) -> None:
        """As fast as the clients take it (benchmarks, soak): the clock jumps with the data."""
        apply, advance = self.apply, self.clock.advance_to
        for n, event in enumerate(self.source.events(), 1):
            advance(event.time)
            apply(event)
            if n & 255 == 0:
                await self._yield_with_backpressure()

    async def _yield_with_backpressure(self) -> None:
        await asyncio.sleep(0)
        limit = self._max_write_buffer
        for s in list(self.sessions):
            if not s.closed and s.write_buffer_size > limit:
                await s.drain()
        while self.stalled:
            await self._unstalled.wait()

    def apply(self, event: MarketEvent) -> None:
        """Serve one market event: book, history, subscribers and order matching."""
        self.events_served += 1
        if event.time >= self._session_close:
            self._roll_session(event.time)
        con_id = self.front.con_id
        if type(event) is QuoteTick:
            self.history.quotes.append(event)
            if self.ib_connected and not self.feed.frozen:
                self.feed.on_quote(event)
            else:
                self.feed.hold_quote(event)
            engine_events = self.engine.on_quote(con_id, event)
        else:
            assert isinstance(event, TradeTick)
            self.history.trades.append(event)
            if self.ib_connected and not self.feed.frozen:
                self.feed.on_trade(event)
            else:
                self.feed.count_unsent(event)
            engine_events = self.engine.on_trade(con_id, event)
        if engine_events:
            self.dispatch(engine_events)
        if self.back:
            for month in self.back.values():
                self._serve_back(month, event)

    def _serve_back(self, month: BackMonth, event: MarketEvent) -> None:
        con_id = month.spec.con_id
        if type(event) is QuoteTick:
            quote = month.quote(event)
            if self.ib_connected:
                month.feed.on_quote(quote)
            else:
                month.feed.hold_quote(quote)
            engine_events = self.engine.on_quote(con_id, quote)
        else:
            assert isinstance(event, TradeTick)
            trade = month.trade(event)
            if trade is None:
                return
            if self.ib_connected:
                month.feed.on_trade(trade)
            else:
                month.feed.count_unsent(trade)
            engine_events = self.engine.on_trade(con_id, trade)
        if engine_events:
            self.dispatch(engine_events)

    def start_session(self, t: float) -> None:
        """Track the Globex session in progress at `t` (or the next one, in a break)."""
        self._session = _session_at_or_after(t)
        self._session_close = self._session.close_utc

    def _roll_session(self, t: float) -> None:
        """A new Globex session: every market's CLOSE becomes the ended session's settlement."""
        ended = self._session
        self.start_session(t)
        settled = settlement(self.history, ended, self.front.min_tick)
        self.feed.roll_session(settled)
        for month in self.back.values():
            if settled is not None:
                month.reprice(settled)
            month.feed.roll_session(None if settled is None else month.shifted(settled))
        log.info("session %s ended: settlement %s", ended.trade_date, settled)

    async def _run_snapshots(self) -> None:
        while True:
            await asyncio.sleep(SNAPSHOT_INTERVAL)
            if self.ib_connected and not self.stalled:
                self.feed.flush()
                for month in self.back.values():
                    month.feed.flush()
                self.streams.tick(self.tape_time())
                self.pnl.tick()
