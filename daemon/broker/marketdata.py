"""Market-data subscriptions → normalized events, kept alive across reconnects, 1101 and rolls.

Tick-by-tick AllLast + BidAsk when permitted; `reqMktData` with RTVolume (233) when the
gateway refuses tick-by-tick (10189, 10190, 354, 10089) or by config. Events are taken from
the decoder, one per message with the gateway's own timestamp (ib_async's Ticker stamps ticks
with its receive time instead), and passed on unjudged. Tick-by-tick messages of our own
subscriptions are read straight from the message fields and never reach ib_async's wrapper:
its Ticker bookkeeping for them (tick objects, attribute objects, update events) was never
read and cost about as much per tick as the whole order-flow extractor.

`reqMktData` is subscribed in both modes: in snapshot mode it is the data; in tick-by-tick mode
it only brings IB's cumulative volume and RTVolume prints for volume reconciliation. Either way
it yields one `SnapshotEvent` per socket read that carried a message for it, with the RTVolume
reports of that read parsed from the raw strings (ib_async keeps only the cumulative volume and
drops the `single` flag). ib_async shares one Ticker between tick-by-tick and reqMktData, so
"something changed on the ticker" is not the trigger: a message on the reqMktData reqId is.

The market clock is the gateway's (`reqCurrentTime`, re-measured periodically): a real gateway
agrees with the wall clock, a replaying simulator does not, and trading hours and the roll must
follow the market being served. Staleness is judged by `freshness.FreshnessWatch` from the last
data the order flow accepted (`FlowFreshness`, which also hears the verdict).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import structlog
from ib_async import IB, Contract, ContractDetails, Ticker

from daemon.broker import contracts
from daemon.broker.connection import Connection
from daemon.broker.freshness import FlowFreshness, FreshnessWatch, Step
from daemon.broker.rtvolume import RT_VOLUME_TICKS, parse_rt_volume
from daemon.core.instrument import Instrument
from daemon.flow.events import (
    DataMode,
    MarketEvent,
    QuoteEvent,
    RtPrint,
    SnapshotEvent,
    TradeEvent,
)
from daemon.settings import DataSettings, InstrumentSettings

VOLUME_TICKS = frozenset({8, 74})  # VOLUME, DELAYED_VOLUME
TICK_BY_TICK_MSG = 99  # incoming message id of every tick-by-tick message
TICK_BY_TICK_FIELDS = 9  # msgId, reqId, tickType, time + 5 (AllLast and BidAsk alike)
LAST_TICK_TYPES = frozenset({"1", "2"})  # Last, AllLast (as sent on the wire)
BID_ASK_TICK_TYPE = "3"

log = structlog.get_logger("daemon.broker.marketdata")

TBT_REFUSALS = frozenset({10189, 10190, 354, 10089})
CLOCK_RESYNC_S = 10.0
_NO_REQ = -1  # no reqMktData subscription (market-data messages never carry reqId -1)


@dataclass
class FeedStats:
    """Counters for status.json and the status line."""

    mode: DataMode | None = None
    contract: str | None = None
    ticks_total: int = 0
    trades: int = 0
    quotes: int = 0
    snapshots: int = 0
    resubscribes: int = 0
    rolls: int = 0
    last_tick: float | None = None  # monotonic receipt of the last event of any kind
    last_trade: float | None = None
    clock_offset_s: float = 0.0  # gateway time minus local wall time
    stale: bool = False
    refusals: dict[int, int] = field(default_factory=dict)
    rt_malformed: int = 0  # RTVolume strings that did not parse (dropped)
    volume_refused: bool = False  # tick-by-tick mode runs without volume reconciliation


class MarketData:
    """Owns the market-data subscriptions of the front contract and emits `MarketEvent`s."""

    def __init__(
        self,
        conn: Connection,
        instrument: InstrumentSettings,
        data: DataSettings,
        sink: Callable[[MarketEvent], None],
        *,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
        flow: FlowFreshness | None = None,
        on_contract: Callable[[Instrument], None] | None = None,
    ) -> None:
        """Without `flow`, data received counts as accepted (trades in tick-by-tick mode)."""
        self.conn = conn
        self.ib = conn.ib
        self.instrument_settings = instrument
        self._on_contract = on_contract
        # The traded contract: the product's facts until the broker's details refine them.
        self.instrument = Instrument.of_product(instrument.symbol)
        self.data = data
        self.sink = sink
        self.stats = FeedStats()
        self.front: ContractDetails | None = None
        self.contract: Contract | None = None  # front.contract, never None once chosen
        self.calendar: contracts.SessionCalendar | None = None
        self._details: list[ContractDetails] = []
        self._clock = clock
        self._wall = wall
        self._seq = 0
        self._mode = DataMode.SNAPSHOT if data.mode == "snapshot" else DataMode.TICK_BY_TICK
        self._req_ids: dict[int, str] = {}  # reqId → "AllLast" | "BidAsk" | "mktData"
        # The tick-by-tick ones keyed as the wire spells them, for the decoder tap.
        self._tbt_req_ids: dict[str, str] = {}
        self._mkt_ticker: Ticker | None = None  # the reqMktData ticker (shared in tick-by-tick)
        self._mkt_req_id = _NO_REQ
        self._mkt_seen = False  # a reqMktData message arrived in the current socket read
        self._prints: list[RtPrint] = []  # RTVolume reports of the current socket read
        self._volume_refusal_logged = False
        self._flow = flow
        self.freshness = FreshnessWatch(data.stale_after_s, data.reconnect_after_stale_s)
        self._clock_synced_at = -1e18
        self._last_volume = 0.0
        conn.on_session(self._on_session)
        conn.on_data_lost(self.resubscribe)
        conn.on_data_kept(self._verify_fresh)
        conn.on_disconnect(self._forget_subscriptions)
        self.ib.errorEvent += self._on_error
        self.ib.updateEvent += self._on_read  # after every socket read ib_async processed
        self._tap_wrapper()
        self._tap_decoder()

    @property
    def details(self) -> list[ContractDetails]:
        """Contract details of every listed expiry, as last fetched."""
        return list(self._details)

    # --- time ---

    def market_now(self) -> datetime:
        """Now on the gateway's clock (equal to the wall clock against a real gateway)."""
        return datetime.fromtimestamp(self._wall() + self.stats.clock_offset_s, UTC)

    async def _sync_clock(self) -> None:
        before = self._wall()
        gateway = await asyncio.wait_for(self.ib.reqCurrentTimeAsync(), 5.0)
        after = self._wall()
        self.stats.clock_offset_s = gateway.timestamp() - (before + after) / 2
        self._clock_synced_at = self._clock()

    # --- session lifecycle (called by Connection) ---

    async def _on_session(self, ib: IB) -> None:
        previous = self.stats.clock_offset_s
        await self._sync_clock()
        offset = self.stats.clock_offset_s
        if abs(offset) > 5 and abs(offset - previous) > 60:
            log.warning(
                "gateway_clock_differs",
                offset_s=round(offset, 1),
                action="trading hours and the roll follow the gateway's clock",
            )
        self._details = await asyncio.wait_for(
            contracts.fetch_future_details(
                ib,
                self.instrument_settings.symbol,
                self.instrument_settings.exchange,
                self.instrument_settings.currency,
            ),
            30.0,
        )
        self._select_front()
        self.freshness.new_session(self._clock())
        await self.resubscribe()

    def _select_front(self) -> bool:
        """Pick the front contract at the market clock; True when it changed."""
        front = contracts.select_front(
            self._details, self.market_now(), self.instrument_settings.roll_days_before_expiry
        )
        contract = front.contract
        if contract is None:
            raise contracts.NoContractError("contract details without a contract")
        changed = self.contract is None or contract.conId != self.contract.conId
        if changed:
            old = self.contract.localSymbol if self.contract else None
            self.front, self.contract = front, contract
            self.instrument = contracts.instrument_from_details(front)
            differs = self.instrument.differs_from_product()
            if differs:
                log.warning("instrument_differs", contract=contract.localSymbol, detail=differs)
            if self._on_contract is not None:
                self._on_contract(self.instrument)
            self.calendar = contracts.SessionCalendar.from_details(front)
            self.stats.contract = contract.localSymbol
            log.info(
                "front_contract",
                contract=contract.localSymbol,
                con_id=contract.conId,
                previous=old,
                roll_at=contracts.roll_time(
                    front, self.instrument_settings.roll_days_before_expiry
                ).isoformat(),
            )
        return changed

    async def resubscribe(self) -> None:
        """Cancel whatever is subscribed and request it again (1101, new socket, staleness);
        the data's age is not reset by it, only by data (see `freshness`)."""
        self._cancel_all()
        contract = self.contract
        if contract is None or not self.ib.isConnected():
            return
        if self._mode is DataMode.TICK_BY_TICK:
            for kind in ("AllLast", "BidAsk"):
                self.ib.reqTickByTickData(contract, kind)
                req_id = self._ticker_req_id(kind)
                self._req_ids[req_id] = kind
                self._tbt_req_ids[str(req_id)] = kind
            self.stats.volume_refused = False
        # snapshot mode: the data; tick-by-tick mode: cumulative volume for reconciliation
        self._mkt_ticker = self.ib.reqMktData(contract, "233")
        self._mkt_req_id = self._ticker_req_id("mktData")
        self._req_ids[self._mkt_req_id] = "mktData"
        self.stats.mode = self._mode
        self.stats.resubscribes += 1
        log.info("subscribed", contract=contract.localSymbol, mode=self._mode.value)

    def _ticker_req_id(self, kind: str) -> int:
        assert self.contract is not None
        ticker = self.ib.ticker(self.contract)
        return self.ib.wrapper.ticker2ReqId[kind].get(ticker, 0) if ticker else 0

    def _cancel_all(self) -> None:
        """Cancel at the gateway and in ib_async, so its ticker maps never grow."""
        contract = self.contract
        if contract is not None and self.ib.isConnected():
            for kind in set(self._req_ids.values()):
                with contextlib.suppress(Exception):
                    if kind == "mktData":
                        self.ib.cancelMktData(contract)
                    else:
                        self.ib.cancelTickByTickData(contract, kind)
        # ib_async 2.1's endTicker leaves reqId2Ticker behind; without this every
        # resubscription on the same socket (1101, staleness) would grow it for good.
        for req_id in self._req_ids:
            self.ib.wrapper.reqId2Ticker.pop(req_id, None)
        self._forget_subscriptions()

    async def stop(self) -> None:
        self._cancel_all()

    def _forget_subscriptions(self) -> None:
        """The socket is gone and ib_async has reset: nothing is left to cancel."""
        self._req_ids.clear()
        self._tbt_req_ids.clear()
        self._mkt_ticker = None
        self._mkt_req_id = _NO_REQ
        self._mkt_seen = False
        self._prints.clear()

    async def _verify_fresh(self) -> None:
        """1102: the gateway kept our subscriptions; resubscribe only if data is stale."""
        if self.freshness.age(self._clock(), self._last_accepted()) > self.data.quote_stale_s:
            await self.resubscribe()

    # --- periodic checks (driven by the supervisor) ---

    async def check(self) -> None:
        """Clock resync, roll, and the freshness watchdog; call about once a second."""
        if not self.conn.ready or self.contract is None:
            return
        if self._clock() - self._clock_synced_at >= CLOCK_RESYNC_S:
            with contextlib.suppress(TimeoutError, ConnectionError):
                await self._sync_clock()
        if self._select_front():
            self.stats.rolls += 1
            self._report_stranded()
            await self.resubscribe()
            return
        await self._watch_freshness()

    def _report_stranded(self) -> None:
        assert self.contract is not None
        for pos in contracts.stranded_positions(
            self.ib.positions(), self.contract.conId, self.instrument_settings.symbol
        ):
            log.error(
                "position_in_rolled_contract",
                contract=pos.contract.localSymbol,
                position=pos.position,
                front=self.contract.localSymbol,
                action="the position stays at the broker: close or roll it deliberately",
            )

    def _open_for(self) -> float | None:
        """Seconds since the current trading session opened; None while the market is closed."""
        now = self.market_now()
        session = None if self.calendar is None else self.calendar.session_at(now)
        return None if session is None else (now - session[0]).total_seconds()

    def _last_accepted(self) -> float | None:
        if self._flow is not None:
            return self._flow.last_accepted
        stats = self.stats
        return stats.last_trade if self._mode is DataMode.TICK_BY_TICK else stats.last_tick

    async def _watch_freshness(self) -> None:
        watch = self.freshness
        step = watch.judge(
            self._clock(), self._open_for(), self._last_accepted(), self.stats.ticks_total
        )
        if watch.stale != self.stats.stale:
            self.stats.stale = watch.stale
            if self._flow is not None:
                self._flow.set_feed_stale(watch.stale)
        if step is Step.RESUBSCRIBE:
            await self.resubscribe()
        elif step is Step.RECONNECT:
            self.conn.recycle("market_data_stale")

    # --- events ---

    def _on_error(self, req_id: int, code: int, message: str, contract: Any = None) -> None:
        kind = self._req_ids.get(req_id)
        if kind is None or code not in TBT_REFUSALS:
            return
        self.stats.refusals[code] = self.stats.refusals.get(code, 0) + 1
        if kind == "mktData" and self._mode is DataMode.TICK_BY_TICK:
            self.stats.volume_refused = True
            if not self._volume_refusal_logged:
                self._volume_refusal_logged = True
                log.warning(
                    "volume_subscription_refused",
                    code=code,
                    message=message,
                    action="tick-by-tick goes on without volume reconciliation",
                )
        elif kind != "mktData" and self.data.mode == "auto":
            if self._mode is DataMode.TICK_BY_TICK:  # the second refusal finds it switched
                log.warning("tick_by_tick_refused", code=code, message=message, fallback="snapshot")
                self._mode = DataMode.SNAPSHOT
                task = asyncio.ensure_future(self.resubscribe())
                task.add_done_callback(lambda t: t.cancelled() or t.exception())
        else:
            log.error("market_data_refused", code=code, message=message, kind=kind)

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
        stats = self.stats

        def tick_by_tick(fields: list[str]) -> None:
            kind = tbt_req_ids.get(fields[1])
            if kind is None or len(fields) != TICK_BY_TICK_FIELDS:
                original(fields)
                return
            tick_type = fields[2]
            event: MarketEvent
            if kind == "BidAsk" and tick_type == BID_ASK_TICK_TYPE:
                now = self._clock()
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
                now = self._clock()
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
            self.sink(event)

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
                if tickType in VOLUME_TICKS and self._mode is DataMode.TICK_BY_TICK:
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
            exchange_time = self._wall() + stats.clock_offset_s  # market_now(), unboxed
        mode = self._mode
        self.sink(
            SnapshotEvent(
                self._next_seq(),
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

    def _next_seq(self) -> int:
        self._seq += 1
        return self._seq
