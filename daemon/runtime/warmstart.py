"""Warm start: backfill the session's history before live ticks are processed.

Every new session (start, reconnect) and every 1101 (connectivity back, data lost) holds the
live events in the extractor, fetches the history the extractor is missing — the whole Globex
session at start-up, the gap since the last processed trade afterwards — with paced
`reqHistoricalTicks`, and then lets the extractor run the history first and the held live
events after it.

Boundary rule: history is fetched up to the first held live trade's second and trades of that
second from history are dropped (live has them); history trades at or before the last processed
trade's second are dropped too (already counted). A second cut in two by the start of a
subscription can therefore lose its early trades: IB's whole-second timestamps leave no exact
join, and losing is preferred to counting twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Iterable
from typing import Any

import structlog

from daemon.broker.backfill import HistoricalPacer, backfill
from daemon.broker.connection import Connection
from daemon.broker.ib.client import IbClient
from daemon.broker.marketdata import MarketData
from daemon.flow.events import MarketEvent, TradeEvent
from daemon.flow.extractor import OrderFlow
from daemon.settings import DataSettings

log = structlog.get_logger("daemon.runtime.warmstart")

FIRST_LIVE_WAIT_S = 5.0


class WarmStart:
    """Holds live events at each session start and fills the history in behind them."""

    def __init__(
        self,
        conn: Connection,
        flow: OrderFlow,
        data: DataSettings,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Any] = asyncio.sleep,
    ) -> None:
        self.conn = conn
        self.flow = flow
        self.data = data
        self.market: MarketData | None = None
        self.pacer = HistoricalPacer(data.historical_requests_per_10min, clock=clock, sleep=sleep)
        self._clock = clock
        self._sleep = sleep
        self._task: asyncio.Task[None] | None = None
        self.runs = 0
        self.listeners: list[Callable[[], None]] = []  # called after each fill ends
        conn.on_session(self._hold)  # before MarketData subscribes: nothing slips past
        conn.on_data_lost(self._hold_gap)  # 1101: the streams were dead, trades were missed
        conn.on_disconnect(self._abandon)

    def attach(self, market: MarketData) -> None:
        """Register the fetch after MarketData's session hook (it picks the contract)."""
        self.market = market
        self.conn.on_session(self._start)
        self.conn.on_data_lost(self._start_gap)

    async def _hold(self, client: IbClient) -> None:
        if self.data.backfill:
            self.flow.begin_warmup()

    async def _hold_gap(self) -> None:
        if self._task is None or self._task.done():
            await self._hold(self.conn.client)

    async def _start_gap(self) -> None:
        if self._task is None or self._task.done():
            await self._start(self.conn.client)

    async def _start(self, client: IbClient) -> None:
        if not self.flow.warming_up:
            return
        self._task = asyncio.create_task(self._fill(client), name="warm_start")
        self._task.add_done_callback(lambda _: [listener() for listener in self.listeners])

    def _abandon(self) -> None:
        """The socket went down mid-backfill: process what is held; the next session refills."""
        task, self._task = self._task, None
        if task is not None and not task.done():
            task.cancel()
        if self.flow.warming_up:
            self.flow.finish_warmup((), complete=False)

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _fill(self, client: IbClient) -> None:
        market = self.market
        assert market is not None
        started = self._clock()
        now = market.market_now().timestamp()
        session = self.flow.schedule.globex_at(now)
        last = self.flow.last_trade_time
        if session is None or market.contract is None:
            self.flow.finish_warmup((), complete=True)  # market closed: nothing to fill
            return
        since = session.start if last is None or last < session.start else last
        first_live = await self._first_live_second(now)
        try:
            result = await backfill(
                client,
                market.contract,
                since,
                first_live,
                max_ticks=self.data.backfill_max_ticks,
                requests_per_10min=self.data.historical_requests_per_10min,
                max_wait_s=self.data.backfill_max_wait_s,
                clock=self._clock,
                sleep=self._sleep,
                limiter=self.pacer,
            )
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # any failure: go on live, say what is missing
            log.warning("backfill_failed", error=repr(exc), action="session features partial")
            self.flow.finish_warmup((), complete=False)
            return
        history = list(_between(result.events, last, first_live))
        held = self.flow.finish_warmup(history, complete=result.complete)
        self.runs += 1
        log.info(
            "backfill_done",
            since=since,
            until=first_live,
            events=len(history),
            held_live=held,
            complete=result.complete,
            reason=result.reason,
            requests=result.requests,
            seconds=round(self._clock() - started, 3),
        )

    async def _first_live_second(self, fallback: float) -> float:
        """The whole second of the first held live trade (waited for briefly), else `fallback`."""
        deadline = self._clock() + FIRST_LIVE_WAIT_S
        while self._clock() < deadline:
            first = self.flow.first_held_trade_time
            if first is not None:
                return float(int(first))
            await self._sleep(0.05)
        return float(int(fallback))


def _between(
    events: Iterable[MarketEvent], last: float | None, end: float
) -> Iterable[MarketEvent]:
    """History strictly after the last processed second and before the first live second."""
    floor = -1.0 if last is None else float(int(last))
    for ev in events:
        t = ev.exchange_time
        if t >= end or (isinstance(ev, TradeEvent) and t <= floor):
            continue
        yield ev
