"""Market-data subscriptions → normalized events, kept alive across reconnects, 1101 and rolls.

Tick-by-tick AllLast + BidAsk when permitted; `reqMktData` with RTVolume (233) when the
gateway refuses tick-by-tick (10189, 10190, 354, 10089) or by config. Events are taken from
the decoder's wrapper calls, one per message with the gateway's own timestamp (ib_async's
Ticker stamps ticks with its receive time instead), and passed on unjudged.

The market clock is the gateway's (`reqCurrentTime`, re-measured periodically): a real gateway
agrees with the wall clock, a replaying simulator does not, and trading hours and the roll must
follow the market being served.
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
from daemon.flow.events import DataMode, MarketEvent, QuoteEvent, SnapshotEvent, TradeEvent
from daemon.settings import DataSettings, InstrumentSettings

log = structlog.get_logger("daemon.broker.marketdata")

TBT_REFUSALS = frozenset({10189, 10190, 354, 10089})
CLOCK_RESYNC_S = 10.0


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
    ) -> None:
        self.conn = conn
        self.ib = conn.ib
        self.instrument = instrument
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
        self._snapshot_ticker: Ticker | None = None
        self._stale_since: float | None = None
        self._clock_synced_at = -1e18
        self._last_volume = 0.0
        conn.on_session(self._on_session)
        conn.on_data_lost(self.resubscribe)
        conn.on_data_kept(self._verify_fresh)
        conn.on_disconnect(self._forget_subscriptions)
        self.ib.errorEvent += self._on_error
        self._tap_wrapper()

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
            contracts.fetch_es_details(
                ib, self.instrument.symbol, self.instrument.exchange, self.instrument.currency
            ),
            30.0,
        )
        self._select_front()
        await self.resubscribe()

    def _select_front(self) -> bool:
        """Pick the front contract at the market clock; True when it changed."""
        front = contracts.select_front(
            self._details, self.market_now(), self.instrument.roll_days_before_expiry
        )
        contract = front.contract
        if contract is None:
            raise contracts.NoContractError("contract details without a contract")
        changed = self.contract is None or contract.conId != self.contract.conId
        if changed:
            old = self.contract.localSymbol if self.contract else None
            self.front, self.contract = front, contract
            self.calendar = contracts.SessionCalendar.from_details(front)
            self.stats.contract = contract.localSymbol
            log.info(
                "front_contract",
                contract=contract.localSymbol,
                con_id=contract.conId,
                previous=old,
                roll_at=contracts.roll_time(
                    front, self.instrument.roll_days_before_expiry
                ).isoformat(),
            )
        return changed

    async def resubscribe(self) -> None:
        """Cancel whatever is subscribed and request it again (1101, new socket, staleness)."""
        self._cancel_all()
        contract = self.contract
        if contract is None or not self.ib.isConnected():
            return
        if self._mode is DataMode.TICK_BY_TICK:
            for kind in ("AllLast", "BidAsk"):
                self.ib.reqTickByTickData(contract, kind)
                self._req_ids[self._ticker_req_id(kind)] = kind
        else:
            ticker = self.ib.reqMktData(contract, "233")
            ticker.updateEvent += self._on_snapshot
            self._snapshot_ticker = ticker
            self._req_ids[self._ticker_req_id("mktData")] = "mktData"
        self.stats.mode = self._mode
        self.stats.resubscribes += 1
        self._stale_since = None
        self.stats.stale = False
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
        if self._snapshot_ticker is not None:
            self._snapshot_ticker.updateEvent -= self._on_snapshot
            self._snapshot_ticker = None
        self._req_ids.clear()

    async def stop(self) -> None:
        self._cancel_all()

    def _forget_subscriptions(self) -> None:
        """The socket is gone and ib_async has reset: nothing is left to cancel."""
        if self._snapshot_ticker is not None:
            self._snapshot_ticker.updateEvent -= self._on_snapshot
            self._snapshot_ticker = None
        self._req_ids.clear()

    async def _verify_fresh(self) -> None:
        """1102: the gateway kept our subscriptions; resubscribe only if data is stale."""
        if self._is_stale(self.data.quote_stale_s):
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
            self.ib.positions(), self.contract.conId, self.instrument.symbol
        ):
            log.error(
                "position_in_rolled_contract",
                contract=pos.contract.localSymbol,
                position=pos.position,
                front=self.contract.localSymbol,
                action="the position stays at the broker: close or roll it deliberately",
            )

    def _market_open(self) -> bool:
        return self.calendar is not None and self.calendar.is_open(self.market_now())

    def _is_stale(self, limit: float) -> bool:
        last = (
            self.stats.last_trade if self._mode is DataMode.TICK_BY_TICK else self.stats.last_tick
        )
        return last is None or self._clock() - last > limit

    async def _watch_freshness(self) -> None:
        if not self._market_open() or not self._is_stale(self.data.stale_after_s):
            self._stale_since = None
            self.stats.stale = False
            return
        now = self._clock()
        if self._stale_since is None:
            self._stale_since = now
            self.stats.stale = True
            log.warning("market_data_stale", seconds=self.data.stale_after_s, action="resubscribe")
            await self.resubscribe()
            self._stale_since = now
            self.stats.stale = True
        elif now - self._stale_since >= self.data.reconnect_after_stale_s - self.data.stale_after_s:
            self._stale_since = None
            self.conn.recycle("market_data_stale")

    # --- events ---

    def _on_error(self, req_id: int, code: int, message: str, contract: Any = None) -> None:
        kind = self._req_ids.get(req_id)
        if kind is None or code not in TBT_REFUSALS:
            return
        self.stats.refusals[code] = self.stats.refusals.get(code, 0) + 1
        if kind != "mktData" and self.data.mode == "auto":
            log.warning("tick_by_tick_refused", code=code, message=message, fallback="snapshot")
            self._mode = DataMode.SNAPSHOT
            task = asyncio.ensure_future(self.resubscribe())
            task.add_done_callback(lambda t: t.cancelled() or t.exception())
        else:
            log.error("market_data_refused", code=code, message=message, kind=kind)

    def _tap_wrapper(self) -> None:
        """Wrap the two tick-by-tick wrapper calls to see each message with its own time."""
        wrapper = self.ib.wrapper
        original_last = wrapper.tickByTickAllLast
        original_quote = wrapper.tickByTickBidAsk

        def all_last(
            reqId: int,
            tickType: int,
            time: int,
            price: float,
            size: float,
            attrib: Any,
            exchange: str,
            specialConditions: str,
        ) -> None:
            if self._req_ids.get(reqId) == "AllLast":
                now = self._clock()
                self._count(now, trade=True)
                self.sink(
                    TradeEvent(
                        self._next_seq(),
                        price,
                        size,
                        float(time),
                        now,
                        bool(attrib.pastLimit),
                        bool(attrib.unreported),
                    )
                )
            original_last(reqId, tickType, time, price, size, attrib, exchange, specialConditions)

        def bid_ask(
            reqId: int,
            time: int,
            bidPrice: float,
            askPrice: float,
            bidSize: float,
            askSize: float,
            attrib: Any,
        ) -> None:
            if self._req_ids.get(reqId) == "BidAsk":
                now = self._clock()
                self._count(now, trade=False)
                self.sink(
                    QuoteEvent(
                        self._next_seq(), bidPrice, askPrice, bidSize, askSize, float(time), now
                    )
                )
            original_quote(reqId, time, bidPrice, askPrice, bidSize, askSize, attrib)

        wrapper.tickByTickAllLast = all_last  # type: ignore[method-assign,assignment]
        wrapper.tickByTickBidAsk = bid_ask  # type: ignore[method-assign,assignment]

    def _on_snapshot(self, t: Ticker) -> None:
        now = self._clock()
        self._count(now, trade=False)
        self.stats.snapshots += 1
        rt = t.rtVolume if t.rtVolume == t.rtVolume else float("nan")
        rt_time = t.rtTime.timestamp() if t.rtTime is not None else float("nan")
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
                now,
                rt,
                rt_time,
            )
        )
        if t.volume == t.volume and t.volume != self._last_volume:  # NaN-safe: volume moved
            self._last_volume = t.volume
            self.stats.last_trade = now

    def _count(self, now: float, *, trade: bool) -> None:
        self.stats.ticks_total += 1
        self.stats.last_tick = now
        if trade:
            self.stats.trades += 1
            self.stats.last_trade = now
        else:
            self.stats.quotes += 1

    def _next_seq(self) -> int:
        self._seq += 1
        return self._seq
