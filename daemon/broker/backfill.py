"""Warm-start backfill: a session's trades and quotes from paced `reqHistoricalTicks`.

Pages walk backwards from `end`. IB stamps historical ticks in whole seconds and a page of
1000 can cut its earliest second anywhere, so each full page's earliest second is dropped and
the next page ends just after it (`endDateTime` = that second + 1), fetching it again whole;
of every page only the seconds below its `endDateTime` are kept. This holds under both
boundary readings: real IB includes the whole second `endDateTime` (and may send more than
1000 ticks to finish a second), ibsim includes ticks up to that instant. Deduplicating by
(time, price, size, position in the second) was rejected: identical 1-lot prints at one price
are common within an ES second, and a cut page holds the *last* k ticks of its second, so
positions of the two copies do not line up without knowing the second's full count. The cost
is one second fetched twice per page. A second with more ticks than a page cannot be paged
this way: the walk stops there with reason "dense second". A page shorter than requested means
the server has nothing older, so the span is covered down to `session_start`.

Trades are fetched first for the whole span, then quotes (BID_ASK), most recent first, for as
much of the traded span as `max_ticks` still allows.

Merge order within one second: that second's trades first, then its quotes. A quote stamped
second s may have been set after any of the trades of s (a lifted ask moves the quote through
the trade's price and would flip its side), so each trade is compared with the last quote of an
earlier second: older, but certainly before it (the classifier sees its age in
`exchange_time`).

Sequence numbers: -n … -1 by default (below MarketData's live seqs, which start at 1), or from
`first_seq` upwards. Prices and sizes pass through unjudged, as live.
"""

from __future__ import annotations

import asyncio
import bisect
import collections
import math
import time
from collections.abc import Awaitable, Callable, Hashable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple, Protocol

import structlog

from daemon.flow.events import MarketEvent, QuoteEvent, TradeEvent

log = structlog.get_logger("daemon.broker.backfill")

PAGE_TICKS = 1000  # IB's most per reqHistoricalTicks
PACING_WINDOW_S = 600.0
BURST_WINDOW_S = 2.0
BURST_MAX = 5  # IB: six or more requests for one contract within 2 s is a pacing violation
REQUEST_TIMEOUT_S = 30.0
DENSE_SECOND = "dense second"

Sleep = Callable[[float], Awaitable[Any]]


class HistoricalTrade(NamedTuple):
    time: float  # epoch seconds (IB's are whole)
    price: float
    size: float
    past_limit: bool
    unreported: bool


class HistoricalQuote(NamedTuple):
    time: float
    bid: float
    ask: float
    bid_size: float
    ask_size: float


class HistoricalRefusedError(Exception):
    """The gateway refused a historical request (162 pacing or no data, 200, ...)."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


class TickSource(Protocol):
    """Where historical ticks come from (the broker edge: `daemon.broker.ib.IbClient`)."""

    @property
    def connected(self) -> bool: ...

    async def historical_ticks(
        self, contract: Hashable, what: str, end_second: int, count: int
    ) -> list[Any]:
        """`HistoricalTrade`s (TRADES) or `HistoricalQuote`s (BID_ASK) in time order, ending
        at ``end_second``; HistoricalRefusedError or ConnectionError."""
        ...


class HistoricalPacer:
    """Admits historical requests within IB's pacing rules; share one per connection.

    At most `requests_per_10min` in any 10 minutes over all contracts, and at most `burst` in
    any 2 s for one key (contract). Both windows are widened by `margin_s` for the delay between
    our send and IB's receipt. `acquire` waits with the injected `sleep` and records the request.
    """

    def __init__(
        self,
        requests_per_10min: int,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Sleep = asyncio.sleep,
        burst: int = BURST_MAX,
        margin_s: float = 0.5,
    ) -> None:
        if requests_per_10min < 1 or burst < 1:
            raise ValueError("requests_per_10min and burst must be at least 1")
        self.limit = requests_per_10min
        self.burst = burst
        self._clock = clock
        self._sleep = sleep
        self._window = PACING_WINDOW_S + margin_s
        self._burst_window = BURST_WINDOW_S + margin_s
        self._recent: collections.deque[float] = collections.deque()
        self._by_key: dict[Hashable, collections.deque[float]] = {}
        self.waited_s = 0.0  # total time callers were held back
        self.listeners: list[Callable[[], None]] = []  # called after each request is recorded

    def recent(self) -> list[float]:
        """Clock times of the requests still inside the 10-minute window, oldest first."""
        cutoff = self._clock() - self._window
        return [t for t in self._recent if t > cutoff]

    def seed(self, times: Iterable[float]) -> None:
        """Requests made before this pacer existed (by an earlier process), on its clock."""
        self._recent = collections.deque(sorted([*self._recent, *times]))

    def wait_s(self, key: Hashable = None) -> float:
        """Seconds until a request for `key` would be admitted (0: now)."""
        now = self._clock()
        recent = self._recent
        while recent and recent[0] <= now - self._window:
            recent.popleft()
        wait = 0.0
        if len(recent) >= self.limit:
            wait = recent[-self.limit] + self._window - now
        mine = self._by_key.get(key)
        if mine is not None and len(mine) >= self.burst:
            wait = max(wait, mine[-self.burst] + self._burst_window - now)
        return wait

    async def acquire(self, key: Hashable = None) -> float:
        """Wait until a request for `key` is admitted, record it; returns the seconds waited."""
        waited = 0.0
        while (wait := self.wait_s(key)) > 0:
            await self._sleep(wait)
            waited += wait
        now = self._clock()
        self._recent.append(now)
        self._by_key.setdefault(key, collections.deque(maxlen=self.burst)).append(now)
        self.waited_s += waited
        for listener in self.listeners:
            listener()
        return waited


@dataclass
class BackfillResult:
    """What a backfill fetched and which part of the span it covers.

    `events`: TradeEvent/QuoteEvent in time order, seqs ascending (see the module doc).
    `start`: the earliest second from which trades are complete; `end`: exclusive, a whole
    second. `quotes_start`: quotes are complete from here up to `end` (== `end` when none
    were fetched).
    `complete`: trades and quotes both cover [session_start, end); otherwise `reason` says why
    ("budget", "refused 162", "timeout", "disconnected", "dense second").
    """

    events: list[MarketEvent]
    start: float
    end: float
    complete: bool
    reason: str | None
    requests: int
    quotes_start: float | None = None


class _FetchStoppedError(Exception):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass
class _Series:
    """One walk's result: pages newest first, each (received, ticks, whole seconds)."""

    pages: list[tuple[float, Sequence[Any], Sequence[int]]]
    start: int  # seconds from here up to the walk's end are complete
    count: int
    reason: str | None


class _Fetcher:
    def __init__(
        self,
        source: TickSource,
        contract: Hashable,
        pacer: HistoricalPacer,
        clock: Callable[[], float],
        timeout: float,
        max_wait_s: float | None,
    ) -> None:
        self.source = source
        self.contract = contract
        self.pacer = pacer
        self.clock = clock
        self.timeout = timeout
        self.max_wait_s = max_wait_s
        self.requests = 0

    async def page(self, what: str, end_second: int) -> tuple[list[Any], float]:
        """Up to PAGE_TICKS ticks ending at `end_second`, with the clock at receipt."""
        wait = self.pacer.wait_s(self.contract)
        if self.max_wait_s is not None and wait > self.max_wait_s:
            log.warning("historical_pacing_exhausted", wait_s=round(wait, 1), what=what)
            raise _FetchStoppedError(f"pacing: the next request is allowed in {wait:.0f} s")
        await self.pacer.acquire(self.contract)
        if not self.source.connected:
            raise _FetchStoppedError("disconnected")
        self.requests += 1
        try:
            ticks = await asyncio.wait_for(
                self.source.historical_ticks(self.contract, what, end_second, PAGE_TICKS),
                self.timeout,
            )
        except HistoricalRefusedError as exc:
            log.warning("historical_ticks_refused", code=exc.code, message=exc.message, what=what)
            raise _FetchStoppedError(f"refused {exc.code}") from None
        except TimeoutError:
            log.warning("historical_ticks_timeout", seconds=self.timeout, what=what)
            raise _FetchStoppedError("timeout") from None
        except ConnectionError:
            raise _FetchStoppedError("disconnected") from None
        return ticks, self.clock()


async def _walk(fetch: _Fetcher, what: str, lo: int, hi: int, budget: int) -> _Series:
    """Seconds [lo, hi) of one tick type, newest first, at most `budget` ticks."""
    series = _Series([], hi, 0, None)
    while hi > lo:
        room = budget - series.count
        if room <= 0:
            series.reason = "budget"
            break
        try:
            ticks, received = await fetch.page(what, hi)
        except _FetchStoppedError as stop:
            series.reason = stop.reason
            break
        secs = [int(t.time) for t in ticks]  # IB sends them in time order
        top = bisect.bisect_left(secs, hi)
        if len(ticks) >= PAGE_TICKS and secs[0] >= lo:
            new_hi = secs[0] + 1  # the earliest second may be cut: fetch it again whole
            if new_hi >= hi:
                series.reason = DENSE_SECOND
                break
            bottom = bisect.bisect_right(secs, secs[0])
        else:  # reached below `lo`, or the server has nothing older
            new_hi = lo
            bottom = bisect.bisect_left(secs, lo)
        if top - bottom > room:  # keep the newest whole seconds that fit
            dropped = secs[top - room - 1]
            bottom = bisect.bisect_right(secs, dropped, bottom, top)
            new_hi = dropped + 1
            series.reason = "budget"
        if top > bottom:
            series.pages.append((received, ticks[bottom:top], secs[bottom:top]))
            series.count += top - bottom
        hi = new_hi
        series.start = hi
        if series.reason is not None:
            break
    return series


def _merge(trades: _Series, quotes: _Series, first_seq: int | None) -> list[MarketEvent]:
    """One list in time order; within a second its trades before its quotes."""
    total = trades.count + quotes.count
    seq = -total if first_seq is None else first_seq
    out: list[MarketEvent] = []
    append = out.append

    def flat(series: _Series) -> list[tuple[int, float, Any]]:
        return [
            (sec, received, tick)
            for received, ticks, secs in reversed(series.pages)
            for sec, tick in zip(secs, ticks, strict=True)
        ]

    tr, qu = flat(trades), flat(quotes)
    i = j = 0
    n_tr, n_qu = len(tr), len(qu)
    while i < n_tr or j < n_qu:
        if j >= n_qu or (i < n_tr and tr[i][0] <= qu[j][0]):
            sec, received, t = tr[i]
            i += 1
            append(
                TradeEvent(seq, t.price, t.size, float(sec), received, t.past_limit, t.unreported)
            )
        else:
            sec, received, q = qu[j]
            j += 1
            append(QuoteEvent(seq, q.bid, q.ask, q.bid_size, q.ask_size, float(sec), received))
        seq += 1
    return out


async def backfill(
    source: TickSource,
    contract: Hashable,
    session_start: float,
    end: float,
    *,
    max_ticks: int,
    requests_per_10min: int,
    clock: Callable[[], float] = time.monotonic,
    sleep: Sleep = asyncio.sleep,
    wall: Callable[[], float] = time.time,
    limiter: HistoricalPacer | None = None,
    request_timeout: float = REQUEST_TIMEOUT_S,
    first_seq: int | None = None,
    max_wait_s: float | None = None,
) -> BackfillResult:
    """Trades, then quotes, of [session_start, end) (epoch s, whole seconds, gateway clock).

    `contract` is the broker's contract handle (also the pacer's key). Never raises for
    refusals (162), timeouts or a lost socket: returns what it has with `complete=False` and
    the reason. `limiter` (shared across calls) wins over
    `requests_per_10min`; `max_wait_s` (None: no limit) stops it rather than wait longer for the
    pacing; `received` on events is `clock()` when their page arrived. `wall` is
    accepted for symmetry with MarketData and unused: every time here is the gateway's.
    """
    del wall
    pacer = limiter or HistoricalPacer(requests_per_10min, clock=clock, sleep=sleep)
    lo, hi = math.floor(session_start), math.floor(end)
    fetch = _Fetcher(source, contract, pacer, clock, request_timeout, max_wait_s)
    trades = await _walk(fetch, "TRADES", lo, hi, max_ticks)
    quotes = _Series([], hi, 0, None)
    if trades.reason in (None, DENSE_SECOND):
        quotes = await _walk(fetch, "BID_ASK", trades.start, hi, max_ticks - trades.count)
    reason = trades.reason or quotes.reason
    return BackfillResult(
        events=_merge(trades, quotes, first_seq),
        start=float(trades.start),
        end=float(hi),
        complete=reason is None,
        reason=reason,
        requests=fetch.requests,
        quotes_start=float(quotes.start),
    )
