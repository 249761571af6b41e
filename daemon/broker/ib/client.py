"""The one ib_async `IB` of the process and everything the daemon asks of it.

`IbClient` owns the `IB` and its taps, created once: the send throttle, the frame guard and
fair reads on its socket (`framing`), the one error router (`errors`), the market-data stream
(`market`), the order gateway (`orders`) and the memory trim (`finished_trades`). Outside this
package the daemon sees plain values: requests are `async` methods returning `Listing`s,
`Position`s, datetimes and counts; the connection state machine hears the link's events through
one `LinkListener`.

One reset on disconnect (`_on_disconnected`): every reqId owner, every subscription and the
trimmer's memory of ib_async's trades are forgotten in one place, as ib_async's own wrapper
resets, before the connection hears the link is down.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Hashable
from datetime import UTC, datetime
from typing import Any, Protocol

from ib_async import IB, Contract, ExecutionFilter, StartupFetch, StartupFetchALL

from daemon.broker import tws_errors
from daemon.broker.backfill import HistoricalQuote, HistoricalRefusedError, HistoricalTrade
from daemon.broker.contracts import Listing
from daemon.broker.ib.contracts import fetch_future_details, position_from
from daemon.broker.ib.errors import ErrorRouter
from daemon.broker.ib.finished_trades import FinishedTrades
from daemon.broker.ib.framing import guard_frames, yield_between_reads
from daemon.broker.ib.market import MarketStream
from daemon.broker.ib.orders import IbOrderGateway
from daemon.core.gateway import Position

# ib_async's send throttle counts every message over a window wider than 1 s: the gateway
# counts arrivals, and a busy gateway reading a burst late can bunch 1.1 s of sends into its
# 1-second window (measured: 51 > 50 with a 1.05 s window).
THROTTLE_WINDOW_S = 1.25
TIME_SHARED_S = 5.0  # seconds a current-time request in flight is shared by new callers
# Executions are asked for by the reconcile, for our client ids only: the startup request has
# an empty filter and brings every client's fills.
STARTUP_FETCH = StartupFetchALL & ~StartupFetch.EXECUTIONS


class LinkListener(Protocol):
    """What the connection state machine hears of the link."""

    def on_link_message(self, req_id: int, code: int, message: str) -> None:
        """A TWS message about the connection itself (reqId -1: 326, farms, 1100-1102, ...)."""

    def on_link_error(self, code: int, message: str) -> None:
        """Any serious or connectivity message, whoever it is about (the last error)."""

    def on_link_lost(self) -> None:
        """The socket closed (after the reset)."""

    def on_link_idle(self, idle: float) -> None:
        """Nothing arrived for ``idle`` seconds (see `set_idle_timeout`)."""

    def on_frame_oversized(self, announced: int, limit: int) -> None:
        """A frame header announced more than ibapi's maximum; the socket is being closed."""


class IbClient:
    """The process's one `IB`, its taps, and the requests the daemon makes."""

    def __init__(
        self,
        ib: IB | None = None,
        *,
        max_messages_per_second: int | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.ib = ib or IB()  # the raw client: this package (and tests) only
        if max_messages_per_second is not None:
            self.ib.client.MaxRequests = max_messages_per_second
            self.ib.client.RequestsInterval = THROTTLE_WINDOW_S  # type: ignore[assignment]  # annotated int
        self.errors = ErrorRouter(self.ib)
        self.market = MarketStream(self.ib, self.errors)
        self.orders = IbOrderGateway(self.ib, self.errors)
        self.finished = FinishedTrades(clock)  # what ib_async would keep all connection
        self._clock = clock
        self._time_asked: tuple[float, asyncio.Future[datetime]] | None = None
        self._link: LinkListener | None = None
        guard_frames(self.ib.client.conn, self._frame_oversized)
        yield_between_reads(self.ib.client.conn)
        self.ib.disconnectedEvent += self._on_disconnected
        self.ib.timeoutEvent += self._on_idle

    def listen(self, link: LinkListener) -> None:
        """The connection state machine (one)."""
        self._link = link
        self.errors.link = link.on_link_message
        self.errors.serious = link.on_link_error

    # --- the link ---

    async def connect(
        self, host: str, port: int, client_id: int, stage_limit_s: float, account: str
    ) -> None:
        """Handshake and the startup fetch (positions, open and completed orders, account),
        each stage within ``stage_limit_s``; TimeoutError, OSError or ib_async's own errors."""
        await self.ib.connectAsync(
            host,
            port,
            clientId=client_id,
            timeout=stage_limit_s,
            account=account,
            fetchFields=STARTUP_FETCH,
        )

    def disconnect(self) -> None:
        self.ib.disconnect()

    @property
    def connected(self) -> bool:
        return bool(self.ib.isConnected())

    @property
    def client_id(self) -> int:
        return int(self.ib.client.clientId)

    def server_version(self) -> int:
        return int(self.ib.client.serverVersion())

    def managed_accounts(self) -> list[str]:
        return list(self.ib.managedAccounts())

    def set_idle_timeout(self, seconds: float) -> None:
        """`on_link_idle` after ``seconds`` without data (once; set again after each)."""
        self.ib.setTimeout(seconds)

    def _on_disconnected(self) -> None:
        """The one reset: everything keyed by this socket's reqIds goes, then the link hears."""
        self.errors.reset()
        self.market.forget()
        self.finished.forget()
        if self._link is not None:
            self._link.on_link_lost()

    def _on_idle(self, idle: float) -> None:
        if self._link is not None:
            self._link.on_link_idle(idle)

    def _frame_oversized(self, announced: int, limit: int) -> None:
        if self._link is not None:
            self._link.on_frame_oversized(announced, limit)

    # --- requests ---

    async def current_time(self) -> datetime:
        """The gateway's clock (1 s resolution); ConnectionError when not connected.

        Callers at the same time share one request: ib_async keys it by name, so a second one
        would leave the first waiting for good. A request unanswered for `TIME_SHARED_S` is
        not shared any more (its answer was lost)."""
        now = self._clock()
        asked = self._time_asked
        if asked is None or asked[1].done() or now - asked[0] > TIME_SHARED_S:
            answer = asyncio.ensure_future(self.ib.reqCurrentTimeAsync())
            answer.add_done_callback(lambda f: f.cancelled() or f.exception())
            asked = self._time_asked = (now, answer)
        return await asyncio.shield(asked[1])

    async def future_details(self, symbol: str, exchange: str, currency: str) -> list[Listing]:
        """Every listed expiry of the future, nearest first (NoContractError when none)."""
        return await fetch_future_details(self.ib, symbol, exchange, currency)

    async def positions(self) -> list[Position]:
        """Every position of the login, asked again (updates during the request included)."""
        return [position_from(p) for p in await self.ib.reqPositionsAsync()]

    def last_positions(self) -> list[Position]:
        """The positions as last pushed by the gateway (no request)."""
        return [position_from(p) for p in self.ib.positions()]

    async def open_orders(self) -> int:
        """Every client's open orders, through the order gateway's events; how many."""
        return len(await self.ib.reqAllOpenOrdersAsync())

    async def completed_orders(self) -> int:
        """The API's completed orders of the day, through the order gateway's events."""
        return len(await self.ib.reqCompletedOrdersAsync(apiOnly=True))

    async def executions(self, client_id: int) -> int:
        """The day's executions of ``client_id``, through the order gateway's events."""
        return len(await self.ib.reqExecutionsAsync(ExecutionFilter(clientId=client_id)))

    async def historical_ticks(
        self, contract: Hashable, what: str, end_second: int, count: int
    ) -> list[Any]:
        """Up to ``count`` ticks (`HistoricalTrade` for TRADES, `HistoricalQuote` for BID_ASK)
        before ``end_second``; HistoricalRefusedError with the code the gateway refused it
        with, or ConnectionError. Unbounded: the caller sets the deadline."""
        assert isinstance(contract, Contract), "not a contract of IB"
        ib = self.ib
        # reqHistoricalTicksAsync resolves a refused request with the ticks so far ([]) and
        # reports the code only by reqId, which it does not return: so the same three calls are
        # made here, with the reqId in hand.
        start_req: Callable[..., asyncio.Future[list[Any]]] = ib.wrapper.startReq
        send: Callable[..., None] = ib.client.reqHistoricalTicks
        req_id = ib.client.getReqId()  # raises ConnectionError when not connected
        refusals: list[tuple[int, str]] = []

        def on_error(code: int, message: str) -> None:
            if not tws_errors.is_request_notice(code):
                refusals.append((code, message))

        end = f"{datetime.fromtimestamp(end_second, UTC):%Y%m%d %H:%M:%S} UTC"
        self.errors.own(req_id, on_error)
        try:
            future = start_req(req_id, contract)
            send(req_id, contract, "", end, count, what, False, False, [])
            ticks = await future
        finally:
            self.errors.disown(req_id)
        if refusals:
            raise HistoricalRefusedError(*refusals[0])
        if what == "TRADES":
            return [
                HistoricalTrade(
                    t.time.timestamp(),
                    t.price,
                    t.size,
                    bool(t.tickAttribLast.pastLimit),
                    bool(t.tickAttribLast.unreported),
                )
                for t in ticks
            ]
        return [
            HistoricalQuote(q.time.timestamp(), q.priceBid, q.priceAsk, q.sizeBid, q.sizeAsk)
            for q in ticks
        ]

    # --- memory ---

    def sweep_finished(self) -> int:
        """Drop trades finished a while ago from ib_async's memory; how many went."""
        return self.finished.sweep(self.ib.wrapper)
