"""Market data distribution for the front contract: tick-by-tick streams and sampled snapshots.

Tick-by-tick (`reqTickByTickData` AllLast / Last / BidAsk / MidPoint) is pushed per event,
unsampled. `reqMktData` subscribers get what changed every 250 ms of wall time, like IB's
futures feed: bid/ask with sizes, last with size and its time (tick 45), the session's cumulative
volume, open, high and low, the previous session's settlement as CLOSE, and RTVolume (generic
tick 233) summarising the trades of the interval. `roll_session` starts a new trade date.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Set as AbstractSet
from dataclasses import dataclass
from typing import Protocol

from ibsim.encoders import Encoder
from ibsim.model import FutureSpec, QuoteTick, TradeTick
from ibsim.products import snap

SNAPSHOT_INTERVAL = 0.25  # wall seconds between reqMktData samples

# TICK_PRICE / TICK_SIZE types, live and delayed
BID_SIZE, BID, ASK, ASK_SIZE, LAST, LAST_SIZE, HIGH, LOW, VOLUME, CLOSE = range(10)
OPEN = 14
LAST_TIMESTAMP = 45
RT_VOLUME = 48
DELAYED_OFFSET = {BID: 66, ASK: 67, LAST: 68, BID_SIZE: 69, ASK_SIZE: 70, LAST_SIZE: 71}
DELAYED_OFFSET |= {HIGH: 72, LOW: 73, VOLUME: 74, CLOSE: 75, OPEN: 76, LAST_TIMESTAMP: 88}


class Subscriber(Protocol):
    """What the feed needs of a client session."""

    enc: Encoder

    def send(self, data: bytes) -> None: ...


class TbtKind(enum.StrEnum):
    LAST = "Last"
    ALL_LAST = "AllLast"
    BID_ASK = "BidAsk"
    MID_POINT = "MidPoint"


class BadTick(enum.StrEnum):
    """Corrupt ticks the fault injector can put on the wire (the book itself stays sane)."""

    NEGATIVE_PRICE = "negative_price"  # -1, IB's "no price"
    ZERO_PRICE = "zero_price"
    ZERO_SIZE = "zero_size"
    CROSSED = "crossed"
    OFF_GRID = "off_grid"
    SPIKE = "spike"


@dataclass(frozen=True, slots=True)
class _MktSub:
    session: Subscriber
    req_id: int
    rt_volume: bool
    delayed: bool


ALL_FIELDS = frozenset({BID, ASK, LAST, HIGH, LOW, VOLUME, CLOSE, OPEN})


class MarketFeed:
    """Top of book, session statistics and subscribers for one contract."""

    def __init__(self, spec: FutureSpec, close_price: float | None = None) -> None:
        self.spec = spec
        self.bid: float | None = None
        self.ask: float | None = None
        self.bid_size = 0
        self.ask_size = 0
        self.last: float | None = None
        self.last_size = 0
        self.last_time = 0.0
        self.trade_time = 0.0  # of the last trade (tick 45)
        self.volume = 0
        self.open: float | None = None
        self.high: float | None = None
        self.low: float | None = None
        self.close = close_price
        self._pv = 0.0  # sum(price*size) for VWAP
        self._vol_total = 0  # true cumulative volume (volume may be reset by a fault)
        self._interval_trades = 0
        self._interval_size = 0
        self._tbt: dict[tuple[Subscriber, int], TbtKind] = {}
        self._mkt: dict[tuple[Subscriber, int], _MktSub] = {}
        self._changed: set[int] = set()  # fields changed since the last 250 ms sample
        self.frozen = False  # a feed fault: subscriptions stay, no tick reaches anyone
        # per-event fan-out lists, rebuilt whenever tick-by-tick subscriptions change
        self._last_subs: list[tuple[Subscriber, int, int]] = []
        self._quote_subs: list[tuple[Subscriber, int]] = []
        self._mid_subs: list[tuple[Subscriber, int]] = []

    def _rebuild(self) -> None:
        kinds = self._tbt.items()
        self._last_subs = [
            (s, r, 2 if k is TbtKind.ALL_LAST else 1)
            for (s, r), k in kinds
            if k in (TbtKind.ALL_LAST, TbtKind.LAST)
        ]
        self._quote_subs = [(s, r) for (s, r), k in kinds if k is TbtKind.BID_ASK]
        self._mid_subs = [(s, r) for (s, r), k in kinds if k is TbtKind.MID_POINT]

    # --- subscriptions ---

    def subscribe_tick_by_tick(self, session: Subscriber, req_id: int, kind: TbtKind) -> None:
        self._tbt[(session, req_id)] = kind
        self._rebuild()
        if kind is TbtKind.BID_ASK and self.bid is not None and self.ask is not None:
            if self.frozen:
                return
            session.send(
                session.enc.tick_by_tick_bid_ask(
                    req_id, int(self.last_time), self.bid, self.ask, self.bid_size, self.ask_size
                )
            )

    def tick_by_tick_count(self) -> int:
        return len(self._tbt)

    def subscribe_mkt_data(
        self, session: Subscriber, req_id: int, *, rt_volume: bool, delayed: bool
    ) -> None:
        sub = _MktSub(session, req_id, rt_volume, delayed)
        self._mkt[(session, req_id)] = sub
        if not self.frozen:
            self._send_snapshot(sub, ALL_FIELDS)

    def snapshot_once(self, session: Subscriber, req_id: int, *, delayed: bool) -> None:
        if not self.frozen:
            self._send_snapshot(_MktSub(session, req_id, False, delayed), ALL_FIELDS)

    def cancel(self, session: Subscriber, req_id: int) -> bool:
        """Drop a subscription of either kind; False when there was none."""
        found = self._tbt.pop((session, req_id), None) is not None
        self._rebuild()
        return self._mkt.pop((session, req_id), None) is not None or found

    def drop_session(self, session: Subscriber) -> None:
        self._tbt = {k: v for k, v in self._tbt.items() if k[0] is not session}
        self._mkt = {k: v for k, v in self._mkt.items() if k[0] is not session}
        self._rebuild()

    def drop_all(self) -> None:
        """1101: the gateway lost the streams; clients must resubscribe."""
        self._tbt.clear()
        self._mkt.clear()
        self._rebuild()

    # --- events ---

    def on_quote(self, q: QuoteTick) -> None:
        self.bid, self.ask, self.bid_size, self.ask_size = q.bid, q.ask, q.bid_size, q.ask_size
        self.last_time = q.time
        t = int(q.time)
        for session, req_id in self._quote_subs:
            session.send(
                session.enc.tick_by_tick_bid_ask(req_id, t, q.bid, q.ask, q.bid_size, q.ask_size)
            )
        for session, req_id in self._mid_subs:
            session.send(session.enc.tick_by_tick_midpoint(req_id, t, (q.bid + q.ask) / 2))
        if self._mkt:
            self._changed.add(BID)
            self._changed.add(ASK)

    def on_trade(self, tr: TradeTick) -> None:
        self.last, self.last_size, self.last_time = tr.price, tr.size, tr.time
        self.trade_time = tr.time
        self.volume += tr.size
        self._vol_total += tr.size
        self._pv += tr.price * tr.size
        self._interval_trades += 1
        self._interval_size += tr.size
        changed = self._changed
        changed.add(LAST)
        changed.add(VOLUME)
        if self.open is None:
            self.open = tr.price
            changed.add(OPEN)
        if self.high is None or tr.price > self.high:
            self.high = tr.price
            changed.add(HIGH)
        if self.low is None or tr.price < self.low:
            self.low = tr.price
            changed.add(LOW)
        t = int(tr.time)
        for session, req_id, tick_type in self._last_subs:
            session.send(session.enc.tick_by_tick_last(req_id, tick_type, t, tr.price, tr.size))

    def hold_quote(self, q: QuoteTick) -> None:
        """A quote while clients are cut off: the book moves, nobody is told."""
        self.bid, self.ask, self.bid_size, self.ask_size = q.bid, q.ask, q.bid_size, q.ask_size

    def count_unsent(self, tr: TradeTick) -> None:
        """A trade while clients are cut off (1100): the day's volume still counts it."""
        self.last, self.last_size, self.last_time = tr.price, tr.size, tr.time
        self.trade_time = tr.time
        if self.open is None:
            self.open = tr.price
        self.volume += tr.size
        self._vol_total += tr.size
        self._pv += tr.price * tr.size

    def flush(self) -> None:
        """Send every reqMktData subscriber what changed since the last sample."""
        if self._changed and not self.frozen:
            for sub in self._mkt.values():
                self._send_snapshot(sub, self._changed)
        self._changed.clear()
        self._interval_trades = 0
        self._interval_size = 0

    def _send_snapshot(self, sub: _MktSub, fields: AbstractSet[int]) -> None:
        enc, send, req_id = sub.session.enc, sub.session.send, sub.req_id
        delayed = sub.delayed

        def tt(tick_type: int) -> int:
            return DELAYED_OFFSET[tick_type] if delayed else tick_type

        if BID in fields and self.bid is not None:
            send(enc.tick_price(req_id, tt(BID), self.bid, self.bid_size, 0))
            send(enc.tick_size(req_id, tt(BID_SIZE), self.bid_size))
        if ASK in fields and self.ask is not None:
            send(enc.tick_price(req_id, tt(ASK), self.ask, self.ask_size, 0))
            send(enc.tick_size(req_id, tt(ASK_SIZE), self.ask_size))
        if LAST in fields and self.last is not None:
            send(enc.tick_price(req_id, tt(LAST), self.last, self.last_size, 0))
            send(enc.tick_size(req_id, tt(LAST_SIZE), self.last_size))
            if self.trade_time:
                send(enc.tick_string(req_id, tt(LAST_TIMESTAMP), str(int(self.trade_time))))
        if HIGH in fields and self.high is not None:
            send(enc.tick_price(req_id, tt(HIGH), self.high, 0, 0))
        if LOW in fields and self.low is not None:
            send(enc.tick_price(req_id, tt(LOW), self.low, 0, 0))
        if VOLUME in fields:
            send(enc.tick_size(req_id, tt(VOLUME), self.volume))
        if CLOSE in fields and self.close is not None:
            send(enc.tick_price(req_id, tt(CLOSE), self.close, 0, 0))
        if OPEN in fields and self.open is not None:
            send(enc.tick_price(req_id, tt(OPEN), self.open, 0, 0))
        if sub.rt_volume and LAST in fields and self.last is not None and self._interval_size:
            vwap = self._pv / self._vol_total if self._vol_total else self.last
            single = "true" if self._interval_trades == 1 else "false"
            value = (
                f"{self.last};{self._interval_size};{int(self.last_time * 1000)};"
                f"{self.volume};{vwap:.8f};{single}"
            )
            send(enc.tick_string(req_id, RT_VOLUME, value))

    def roll_session(self, settlement: float | None) -> None:
        """A new trade date: CLOSE becomes the ended session's settlement, and the session's
        open, high, low and volume start again (as TWS resets them at the Globex open)."""
        if settlement is not None:
            self.close = settlement
        self.open = self.high = self.low = None
        self.volume = self._vol_total = 0
        self._pv = 0.0
        self._changed |= {CLOSE, VOLUME}

    # --- faults ---

    def reset_volume(self) -> None:
        """Cumulative volume starts again from 0 (as after a feed reset)."""
        self.volume = 0
        self._changed.add(VOLUME)

    def freeze(self) -> None:
        """Stop sending: the gateway keeps the book (see `count_unsent`), clients get nothing."""
        self.frozen = True

    def thaw(self) -> None:
        """Send again; the next sample carries every field, as a fresh picture."""
        self.frozen = False
        self._changed |= ALL_FIELDS

    def inject_bad_tick(self, kind: BadTick, time: float) -> int:
        """Put one corrupt tick on every stream; returns how many messages were sent."""
        if self.frozen:
            return 0
        ref = self.last if self.last is not None else (self.bid or 0.0)
        tick = self.spec.min_tick
        price = {
            BadTick.NEGATIVE_PRICE: -1.0,
            BadTick.ZERO_PRICE: 0.0,
            BadTick.OFF_GRID: ref + tick / 2,
            BadTick.SPIKE: ref * 1.10,
        }.get(kind, ref)
        crossed_bid = (self.ask or ref) + tick  # a tick above the ask
        crossed_ask = crossed_bid - tick
        if math.isfinite(crossed_bid):  # on the grid (a replayed recording may hold NaN)
            crossed_bid, crossed_ask = snap(crossed_bid, tick), snap(crossed_ask, tick)
        size = 0 if kind is BadTick.ZERO_SIZE else 1
        t = int(time)
        sent = 0
        for (session, req_id), tbt_kind in list(self._tbt.items()):
            if kind is BadTick.CROSSED and tbt_kind is TbtKind.BID_ASK:
                msg = session.enc.tick_by_tick_bid_ask(
                    req_id, t, crossed_bid, crossed_ask, self.bid_size, self.ask_size
                )
            elif kind is not BadTick.CROSSED and tbt_kind in (TbtKind.ALL_LAST, TbtKind.LAST):
                msg = session.enc.tick_by_tick_last(req_id, 2, t, price, size)
            else:
                continue
            session.send(msg)
            sent += 1
        for sub in self._mkt.values():
            enc = sub.session.enc
            if kind is BadTick.CROSSED:
                sub.session.send(
                    enc.tick_price(sub.req_id, BID, crossed_bid, self.bid_size or 1, 0)
                )
            else:
                sub.session.send(enc.tick_price(sub.req_id, LAST, price, size, 0))
            sent += 1
        return sent
