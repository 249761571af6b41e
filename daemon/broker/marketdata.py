"""Market-data subscriptions → normalized events, kept alive across reconnects, 1101 and rolls.

Tick-by-tick AllLast + BidAsk when permitted; `reqMktData` with RTVolume (233) when the
gateway refuses tick-by-tick (`tws_errors.TICK_BY_TICK_REFUSALS`) or by config. The broker
edge's `MarketStream` (`daemon.broker.ib.market`) turns the subscribed messages into events, one
per message with the gateway's own timestamp, passed on unjudged; this module decides what to
subscribe, and when.

`reqMktData` is subscribed in both modes: in snapshot mode it is the data; in tick-by-tick mode
it only brings IB's cumulative volume and RTVolume prints for volume reconciliation (a refusal
of it keeps tick-by-tick running without them).

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
from datetime import UTC, datetime

import structlog

from daemon.broker import contracts
from daemon.broker.connection import Connection
from daemon.broker.contracts import Listing
from daemon.broker.feedstats import FeedStats
from daemon.broker.freshness import FlowFreshness, FreshnessWatch, Step
from daemon.broker.ib.client import IbClient
from daemon.broker.ib.market import MKT_DATA
from daemon.core.instrument import Instrument
from daemon.flow.events import DataMode, MarketEvent
from daemon.settings import DataSettings, InstrumentSettings

__all__ = ["CLOCK_RESYNC_S", "FeedStats", "MarketData"]

log = structlog.get_logger("daemon.broker.marketdata")

CLOCK_RESYNC_S = 10.0


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
        self.client = conn.client
        self.stream = conn.client.market
        self.instrument_settings = instrument
        self._on_contract = on_contract
        # The traded contract: the product's facts until the broker's details refine them.
        self.instrument = Instrument.of_product(instrument.symbol)
        self.data = data
        self.sink = sink
        self.stats = FeedStats()
        self.front: Listing | None = None
        self.calendar: contracts.SessionCalendar | None = None
        self._details: list[Listing] = []
        self._clock = clock
        self._wall = wall
        self._mode = DataMode.SNAPSHOT if data.mode == "snapshot" else DataMode.TICK_BY_TICK
        self._volume_refusal_logged = False
        self._flow = flow
        self.freshness = FreshnessWatch(data.stale_after_s, data.reconnect_after_stale_s)
        self._clock_synced_at = -1e18
        conn.on_session(self._on_session)
        conn.on_data_lost(self.resubscribe)
        conn.on_data_kept(self._verify_fresh)
        self.stream.attach(sink, self.stats, clock=clock, wall=wall, on_refused=self._on_refused)

    @property
    def details(self) -> list[Listing]:
        """Contract details of every listed expiry, as last fetched."""
        return list(self._details)

    @property
    def contract(self) -> object | None:
        """The front contract as the broker's handle (opaque: for requests through the broker
        edge); None until chosen."""
        return None if self.front is None else self.front.contract

    @property
    def con_id(self) -> int | None:
        """The front contract's id, once chosen."""
        return None if self.front is None else self.front.con_id

    # --- time ---

    def market_now(self) -> datetime:
        """Now on the gateway's clock (equal to the wall clock against a real gateway)."""
        return datetime.fromtimestamp(self._wall() + self.stats.clock_offset_s, UTC)

    async def _sync_clock(self) -> None:
        before = self._wall()
        gateway = await asyncio.wait_for(self.client.current_time(), 5.0)
        after = self._wall()
        self.stats.clock_offset_s = gateway.timestamp() - (before + after) / 2
        self._clock_synced_at = self._clock()

    # --- session lifecycle (called by Connection) ---

    async def _on_session(self, client: IbClient) -> None:
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
            client.future_details(
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
        if front.contract is None:
            raise contracts.NoContractError("contract details without a contract")
        changed = self.front is None or front.con_id != self.front.con_id
        if changed:
            old = self.front.local_symbol if self.front else None
            self.front = front
            self.instrument = contracts.instrument_from_details(front)
            differs = self.instrument.differs_from_product()
            if differs:
                log.warning("instrument_differs", contract=front.local_symbol, detail=differs)
            if self._on_contract is not None:
                self._on_contract(self.instrument)
            self.calendar = contracts.SessionCalendar.from_details(front)
            self.stats.contract = front.local_symbol
            log.info(
                "front_contract",
                contract=front.local_symbol,
                con_id=front.con_id,
                previous=old,
                roll_at=contracts.roll_time(
                    front, self.instrument_settings.roll_days_before_expiry
                ).isoformat(),
            )
        return changed

    async def resubscribe(self) -> None:
        """Cancel whatever is subscribed and request it again (1101, new socket, staleness);
        the data's age is not reset by it, only by data (see `freshness`)."""
        self.stream.cancel_all()
        front = self.front
        if front is None or not self.client.connected:
            return
        if self._mode is DataMode.TICK_BY_TICK:
            self.stats.volume_refused = False
        self.stream.subscribe(front.contract, self._mode)
        self.stats.mode = self._mode
        self.stats.resubscribes += 1
        log.info("subscribed", contract=front.local_symbol, mode=self._mode.value)

    async def stop(self) -> None:
        self.stream.cancel_all()

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
        assert self.front is not None
        for pos in contracts.stranded_positions(
            self.client.last_positions(), self.front.con_id, self.instrument_settings.symbol
        ):
            log.error(
                "position_in_rolled_contract",
                contract=pos.local_symbol,
                position=pos.quantity,
                front=self.front.local_symbol,
                action="instrument.on_roll decides: keep (default) leaves it at the broker with "
                "its own orders working; close or roll closes it (trading enabled)",
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

    def _on_refused(self, kind: str, code: int, message: str) -> None:
        """The gateway refused one of our subscriptions (routed by its reqId)."""
        self.stats.refusals[code] = self.stats.refusals.get(code, 0) + 1
        if kind == MKT_DATA and self._mode is DataMode.TICK_BY_TICK:
            self.stats.volume_refused = True
            if not self._volume_refusal_logged:
                self._volume_refusal_logged = True
                log.warning(
                    "volume_subscription_refused",
                    code=code,
                    message=message,
                    action="tick-by-tick goes on without volume reconciliation",
                )
        elif kind != MKT_DATA and self.data.mode == "auto":
            if self._mode is DataMode.TICK_BY_TICK:  # the second refusal finds it switched
                log.warning("tick_by_tick_refused", code=code, message=message, fallback="snapshot")
                self._mode = DataMode.SNAPSHOT
                task = asyncio.ensure_future(self.resubscribe())
                task.add_done_callback(lambda t: t.cancelled() or t.exception())
        else:
            log.error("market_data_refused", code=code, message=message, kind=kind)
