"""Market-data subscriptions at ib_async's decoder, as the daemon's `MarketEvent`s.

Tick-by-tick messages of our own subscriptions are read straight from the message fields in
the decoder's table (message 99) and never reach ib_async's wrapper: its Ticker bookkeeping
for them (tick objects, attribute objects, update events) was never read and cost about as
much per tick as the whole order-flow extractor. Each becomes one event with the gateway's
own timestamp (ib_async's Ticker stamps ticks with its receive time instead).

`reqMktData` yields one `SnapshotEvent` per socket read that carried a message for it, with
the RTVolume reports of that read parsed from the raw strings (ib_async keeps only the
cumulative volume and drops the `single` flag). ib_async shares one Ticker between
tick-by-tick and reqMktData, so "something changed on the ticker" is not the trigger: a
message on the reqMktData reqId is. What to subscribe, when, and what a refusal means is
`daemon.broker.marketdata`'s business; this module only speaks ib_async.
"""

from __future__ import annotations

import contextlib
import functools
import time
from collections.abc import Callable

import structlog
from ib_async import IB, Contract, Ticker

from daemon.broker import tws_errors
from daemon.broker.feedstats import FeedStats
from daemon.broker.ib.errors import ErrorRouter
from daemon.broker.rtvolume import RT_VOLUME_TICKS, parse_rt_volume
from daemon.flow.events import DataMode, MarketEvent, QuoteEvent, RtPrint, SnapshotEvent, TradeEvent

log = structlog.get_logger("daemon.broker.ib.market")

VOLUME_TICKS = frozenset({8, 74})  # VOLUME, DELAYED_VOLUME
TICK_BY_TICK_MSG = 99  # incoming message id of every tick-by-tick message
TICK_BY_TICK_FIELDS = 9  # msgId, reqId, tickType, time + 5 (AllLast and BidAsk alike)
LAST_TICK_TYPES = frozenset({"1", "2"})  # Last, AllLast (as sent on the wire)
BID_ASK_TICK_TYPE = "3"
MKT_DATA = "mktData"
_NO_REQ = -1  # no reqMktData subscription (market-data messages never carry reqId -1)

Refused = Callable[[str, int, str], None]  # (kind, code, message)


class MarketStream:
    """One contract's subscriptions: tick-by-tick AllLast + BidAsk and/or reqMktData (233)."""

    def __init__(self, ib: IB, errors: ErrorRouter) -> None:
        self.ib = ib
        self._errors = errors
        self.mode = DataMode.TICK_BY_TICK
        self.stats = FeedStats()
        self._sink: Callable[[MarketEvent], None] = lambda _: None
        self._clock: Callable[[], float] = time.monotonic
        self._wall: Callable[[], float] = time.time
        self._on_refused: Refused | None = None
        self._attached = False
        self._contract: Contract | None = None
        self._req_ids: dict[int, str] = {}  # reqId → "AllLast" | "BidAsk" | "mktData"
        # The tick-by-tick ones keyed as the wire spells them, for the decoder tap.
        self._tbt_req_ids: dict[str, str] = {}
        self._mkt_ticker: Ticker | None = None  # the reqMktData ticker (shared in tick-by-tick)
        self._mkt_req_id = _NO_REQ
        self._mkt_seen = False  # a reqMktData message arrived in the current socket read
        self._prints: list[RtPrint] = []  # RTVolume reports of the current socket read
        self._seq = 0
        self._last_volume = 0.0

    def attach(
        self,
        sink: Callable[[MarketEvent], None],
        stats: FeedStats,
        *,
        clock: Callable[[], float],
        wall: Callable[[], float],
        on_refused: Refused,
    ) -> None:
        """Emit events to ``sink`` and count them in ``stats``; refusals of our subscriptions
        (`tws_errors.TICK_BY_TICK_REFUSALS`) go to ``on_refused``. Once per stream: it taps
        ib_async's decoder and wrapper."""
        assert not self._attached, "a market stream has one consumer"
        self._attached = True
        self._sink, self.stats, self._clock, self._wall = sink, stats, clock, wall
        self._on_refused = on_refused
        self.ib.updateEvent += self._on_read  # after every socket read ib_async processed
        self._tap_wrapper()
        self._tap_decoder()

    # --- subscriptions ---

    def subscribe(self, contract: object, mode: DataMode) -> None:
        """Cancel what is subscribed, then subscribe ``contract`` in ``mode`` (reqMktData in
        both: in snapshot mode it is the data, in tick-by-tick mode IB's volume)."""
        assert isinstance(contract, Contract), "not a contract of this broker"
        self.cancel_all()
        self._contract, self.mode = contract, mode
        if mode is DataMode.TICK_BY_TICK:
            for kind in ("AllLast", "BidAsk"):
                self.ib.reqTickByTickData(contract, kind)
                self._own(self._ticker_req_id(contract, kind), kind)
        self._mkt_ticker = self.ib.reqMktData(contract, "233")
        self._mkt_req_id = self._ticker_req_id(contract, MKT_DATA)
        self._own(self._mkt_req_id, MKT_DATA)

    def _own(self, req_id: int, kind: str) -> None:
        self._req_ids[req_id] = kind
        if kind != MKT_DATA:
            self._tbt_req_ids[str(req_id)] = kind
        self._errors.own(req_id, functools.partial(self._refused, kind))

    def _ticker_req_id(self, contract: Contract, kind: str) -> int:
        ticker = self.ib.ticker(contract)
        return self.ib.wrapper.ticker2ReqId[kind].get(ticker, 0) if ticker else 0

    def _refused(self, kind: str, code: int, message: str) -> None:
        if code in tws_errors.TICK_BY_TICK_REFUSALS and self._on_refused is not None:
            self._on_refused(kind, code, message)

    def cancel_all(self) -> None:
        """Cancel at the gateway and in ib_async, so its ticker maps never grow."""
        contract = self._contract
        if contract is not None and self.ib.isConnected():
            for kind in set(self._req_ids.values()):
                with contextlib.suppress(Exception):
                    if kind == MKT_DATA:
                        self.ib.cancelMktData(contract)
                    else:
                        self.ib.cancelTickByTickData(contract, kind)
        # ib_async 2.1's endTicker leaves reqId2Ticker behind; without this every
        # resubscription on the same socket (1101, staleness) would grow it for good.
        for req_id in self._req_ids:
            self.ib.wrapper.reqId2Ticker.pop(req_id, None)
        self.forget()

    def forget(self) -> None:
        """Nothing is subscribed any more (cancelled, or the socket closed)."""
        for req_id in self._req_ids:
            self._errors.disown(req_id)
        self._req_ids.clear()
        self._tbt_req_ids.clear()
        self._mkt_ticker = None
        self._mkt_req_id = _NO_REQ
        self._mkt_seen = False
        self._prints.clear()

    # --- the taps ---

    def _tap_decoder(self) -> None:
        """Tick-by-tick messages of our subscriptions become events one by one, with their own
        time, straight from the message fields; any other reqId goes to ib_async as before.

        The reqId is matched as the wire spells it (the gateway echoes the decimal ib_async
        sent), so the common case costs one dict lookup. A message of the wrong length or an
        unexpected tick type goes to ib_async's own handler, which logs it as malformed.
        """
        handlers = self.ib.client.decoder.handlers
        original = handlers[TICK_BY_TICK_MSG]
        tbt_req_ids = self._tbt_req_ids
        stats, clock, sink = self.stats, self._clock, self._sink

        def tick_by_tick(fields: list[str]) -> None:
            kind = tbt_req_ids.get(fields[1])
            if kind is None or len(fields) != TICK_BY_TICK_FIELDS:
                original(fields)
                return
            tick_type = fields[2]
            event: MarketEvent
            if kind == "BidAsk" and tick_type == BID_ASK_TICK_TYPE:
                now = clock()
                event = QuoteEvent(
                    self._seq + 1,
                    float(fields[4]),
                    float(fields[5]),
                    float(fields[6]),
                    float(fields[7]),
                    float(int(fields[3])),
                    now,
                )
                stats.quotes += 1
            elif kind == "AllLast" and tick_type in LAST_TICK_TYPES:
                now = clock()
                mask = int(fields[6])
                event = TradeEvent(
                    self._seq + 1,
                    float(fields[4]),
                    float(fields[5]),
                    float(int(fields[3])),
                    now,
                    bool(mask & 1),  # past limit
                    bool(mask & 2),  # unreported
                )
                stats.trades += 1
                stats.last_trade = now
            else:
                original(fields)
                return
            self._seq += 1
            stats.ticks_total += 1
            stats.last_tick = now
            sink(event)

        handlers[TICK_BY_TICK_MSG] = tick_by_tick

    def _tap_wrapper(self) -> None:
        """Wrap the decoder's reqMktData wrapper calls: they mark the read and collect RTVolume
        prints."""
        wrapper = self.ib.wrapper
        original_price = wrapper.priceSizeTick
        original_size = wrapper.tickSize
        original_string = wrapper.tickString

        def price_size_tick(reqId: int, tickType: int, price: float, size: float) -> None:
            if reqId == self._mkt_req_id:
                self._mkt_seen = True
            original_price(reqId, tickType, price, size)

        def tick_size(reqId: int, tickType: int, size: float) -> None:
            original_size(reqId, tickType, size)
            if reqId == self._mkt_req_id:
                self._mkt_seen = True
                if tickType in VOLUME_TICKS and self.mode is DataMode.TICK_BY_TICK:
                    # IB's cumulative volume, placed in the stream exactly where it arrived: at
                    # the end of the read, trades later in that read would already be counted.
                    self._on_read()

        def tick_string(reqId: int, tickType: int, value: str) -> None:
            if reqId == self._mkt_req_id:
                self._mkt_seen = True
                if tickType in RT_VOLUME_TICKS:
                    self._add_print(value)
            original_string(reqId, tickType, value)

        # The decoder looks these up on the wrapper instance at every message, so instance
        # attributes intercept them; mypy forbids assigning to a method, hence the ignores.
        wrapper.priceSizeTick = price_size_tick  # type: ignore[method-assign]
        wrapper.tickSize = tick_size  # type: ignore[method-assign]
        wrapper.tickString = tick_string  # type: ignore[method-assign]

    def _add_print(self, value: str) -> None:
        try:
            rt = parse_rt_volume(value)
        except ValueError as exc:
            self.stats.rt_malformed += 1
            log.warning("rt_volume_malformed", value=value[:80], error=str(exc), rate_limited=True)
            return
        if rt is not None:
            self._prints.append(rt)

    def _on_read(self) -> None:
        """End of one socket read: one SnapshotEvent if reqMktData sent anything in it."""
        if not self._mkt_seen:
            return
        self._mkt_seen = False
        t = self._mkt_ticker
        if t is None:
            self._prints.clear()
            return
        now = self._clock()
        stats = self.stats
        stats.ticks_total += 1
        stats.last_tick = now
        stats.snapshots += 1
        prints: tuple[RtPrint, ...] = ()
        if self._prints:
            prints = tuple(self._prints)
            self._prints.clear()
            exchange_time = max(p.time for p in prints)
        else:
            exchange_time = self._wall() + stats.clock_offset_s  # the market clock, unboxed
        mode = self.mode
        self._seq += 1
        self._sink(
            SnapshotEvent(
                self._seq,
                t.bid,
                t.ask,
                t.bidSize,
                t.askSize,
                t.last,
                t.lastSize,
                t.volume,
                exchange_time,
                now,
                prints,
                mode,
            )
        )
        if mode is DataMode.SNAPSHOT:  # in tick-by-tick mode trades alone decide freshness
            stats.quotes += 1
            volume = t.volume
            moved = volume == volume and volume != self._last_volume  # NaN-safe
            if moved:
                self._last_volume = volume
            if moved or prints:
                stats.last_trade = now
