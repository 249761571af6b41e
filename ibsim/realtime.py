"""Streams built from the tape as it goes on: 5-second real-time bars (`reqRealTimeBars`) and the
forming bar of `keepUpToDate` historical requests (HISTORICAL_DATA_UPDATE, 90).

Both are driven by `tick(tape_time)` every 250 ms of wall time; `tape_time` is the data time up to
which every event has been served, so a bar is sent only once all of its events are on the tape.

- Real-time bars start at the next 5-second boundary after the request. TRADES bars are the
  trades of the 5 seconds (a quiet interval while the market is open repeats the last price with
  volume 0); MIDPOINT, BID and ASK bars follow the quote in force, with volume, WAP and count -1.
  A jump of more than `MAX_CATCH_UP` bars of data time (an unpaced source) is not replayed.
- keepUpToDate sends the bar in progress whenever it changed (and the previous one once more if
  it changed after its last update), until cancelHistoricalData.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from ibsim import calendar
from ibsim.history import Bar, Tape, bars_of

if TYPE_CHECKING:
    from collections.abc import Callable

    from ibsim.feed import Subscriber

log = logging.getLogger("ibsim.realtime")

BAR_SECONDS = 5
MAX_CATCH_UP = 720
WHAT_TO_SHOW = frozenset({"TRADES", "MIDPOINT", "BID", "ASK"})


@dataclass(slots=True)
class _RealTime:
    session: Subscriber
    req_id: int
    tape: Tape
    what: str
    next_start: float


@dataclass(slots=True)
class _Keep:
    session: Subscriber
    req_id: int
    tape: Tape
    bar_seconds: int
    date: Callable[[float], object]
    since: float  # first bucket that may still change
    sent: dict[float, Bar] = field(default_factory=dict)


def real_time_bar(tape: Tape, what: str, start: float) -> tuple[float, ...] | None:
    """(open, high, low, close, volume, wap, count) of [start, start + 5 s), or None if the
    contract had no price yet or the market was closed and quiet."""
    end = start + BAR_SECONDS
    if what == "TRADES":
        trades = tape.trades.between(start, end)
        if trades:
            prices = [t.price for t in trades]
            volume = sum(t.size for t in trades)
            wap = sum(t.price * t.size for t in trades) / volume
            return (prices[0], max(prices), min(prices), prices[-1], volume, wap, len(trades))
        before = tape.trades.before(start)
        if before is None or not calendar.is_open(start):
            return None
        p = before.price
        return (p, p, p, p, 0, p, 0)
    quotes = tape.quotes.between(start, end)
    in_force = tape.quotes.before(start)
    if in_force is not None:
        quotes = [in_force, *quotes]
    if not quotes or (len(quotes) == 1 and not calendar.is_open(start)):
        return None
    if what == "BID":
        values = [q.bid for q in quotes]
    elif what == "ASK":
        values = [q.ask for q in quotes]
    else:
        values = [(q.bid + q.ask) / 2 for q in quotes]
    return (values[0], max(values), min(values), values[-1], -1, -1.0, -1)


class Streams:
    """Real-time bar and keepUpToDate subscriptions of every client."""

    def __init__(self) -> None:
        self._rt: dict[tuple[Subscriber, int], _RealTime] = {}
        self._keep: dict[tuple[Subscriber, int], _Keep] = {}

    def add_real_time(
        self, session: Subscriber, req_id: int, tape: Tape, what: str, now: float
    ) -> None:
        first = math.floor(now / BAR_SECONDS) * BAR_SECONDS + BAR_SECONDS
        self._rt[(session, req_id)] = _RealTime(session, req_id, tape, what, first)
        log.debug("real-time %s bars for reqId %d from %.0f", what, req_id, first)

    def add_keep_up_to_date(
        self,
        session: Subscriber,
        req_id: int,
        tape: Tape,
        bar_seconds: int,
        date: Callable[[float], object],
        bars: list[Bar],
        now: float,
    ) -> None:
        """Follow the bar in progress after the initial `bars` were sent."""
        since = bars[-1].start if bars else math.floor(now / bar_seconds) * bar_seconds
        sent = {bars[-1].start: bars[-1]} if bars else {}
        self._keep[(session, req_id)] = _Keep(session, req_id, tape, bar_seconds, date, since, sent)
        log.debug("keepUpToDate %d s bars for reqId %d from %.0f", bar_seconds, req_id, since)

    def cancel_real_time(self, session: Subscriber, req_id: int) -> bool:
        return self._rt.pop((session, req_id), None) is not None

    def cancel_keep_up_to_date(self, session: Subscriber, req_id: int) -> bool:
        return self._keep.pop((session, req_id), None) is not None

    def drop_session(self, session: Subscriber) -> None:
        self._rt = {k: v for k, v in self._rt.items() if k[0] is not session}
        self._keep = {k: v for k, v in self._keep.items() if k[0] is not session}

    def drop_all(self) -> None:
        """1101: market data subscriptions are lost."""
        self._rt.clear()
        self._keep.clear()

    def tick(self, tape_time: float) -> None:
        for rt in list(self._rt.values()):
            self._real_time(rt, tape_time)
        for keep in list(self._keep.values()):
            self._keep_up(keep, tape_time)

    def _real_time(self, sub: _RealTime, tape_time: float) -> None:
        behind = (tape_time - sub.next_start) // BAR_SECONDS
        if behind > MAX_CATCH_UP:
            sub.next_start += (behind - MAX_CATCH_UP) * BAR_SECONDS
        enc = sub.session.enc
        while sub.next_start + BAR_SECONDS <= tape_time:
            bar = real_time_bar(sub.tape, sub.what, sub.next_start)
            if bar is not None:
                o, h, low, c, volume, wap, count = bar
                sub.session.send(
                    enc.real_time_bar(
                        sub.req_id, int(sub.next_start), o, h, low, c, int(volume), wap, int(count)
                    )
                )
            sub.next_start += BAR_SECONDS

    def _keep_up(self, sub: _Keep, tape_time: float) -> None:
        end = math.nextafter(tape_time, math.inf)
        bars = bars_of(sub.tape, sub.since, end, sub.bar_seconds)
        enc = sub.session.enc
        for bar in bars:
            if sub.sent.get(bar.start) == bar:
                continue
            sub.sent[bar.start] = bar
            sub.session.send(
                enc.historical_data_update(
                    sub.req_id,
                    bar.count,
                    sub.date(bar.start),
                    bar.open,
                    bar.close,
                    bar.high,
                    bar.low,
                    round(bar.wap, 6),
                    bar.volume,
                )
            )
        if bars:
            sub.since = bars[-1].start
            sub.sent = {k: v for k, v in sub.sent.items() if k >= sub.since}
