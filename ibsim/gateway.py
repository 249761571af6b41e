"""The simulated IB Gateway: listener, client ids, the market loop, orders, and faults.

One `Gateway` is one gateway process: all clients share its order engine, positions and
market. Orders keep working while their client is away; a client reconnecting with the same
id gets them back. The market loop and each listed contract's market are the `Markets` mixin
(markets.py). Faults are methods of the gateway (the scenario runner, the chaos runner and
tests call them), grouped in mixins: `ConnectionFaults` (connfaults.py), `WireFaults`
(wirefaults.py) and `OrderFaults` (orderfaults.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from ibsim import contracts, products
from ibsim.clock import SimClock
from ibsim.connfaults import NOTICES, ConnectionFaults
from ibsim.curve import DEFAULT_ACTIVITY, DEFAULT_CARRY, BackMonth
from ibsim.feed import MarketFeed
from ibsim.historical import HistoricalService
from ibsim.history import History
from ibsim.journal import Journal
from ibsim.market import MarketSource
from ibsim.markets import Markets, first_price
from ibsim.matching import MatchingEngine
from ibsim.model import (
    EngineEvent,
    Faults,
    FillEvent,
    FutureSpec,
    OrderError,
    OrderEvent,
    OrderRequest,
    OrderStatus,
)
from ibsim.orderfaults import OrderFaults
from ibsim.pnl import PnLService
from ibsim.realtime import Streams
from ibsim.requests import ContractFields
from ibsim.session import ClientSession
from ibsim.wirefaults import WireFaults

log = logging.getLogger("ibsim.gateway")

EXPIRY_POLL = 0.1  # wall seconds between checks for DAY / GTD orders whose time has come
INITIAL_CASH = 1_000_000.0
ES_INITIAL_MARGIN = products.PRODUCTS["ES"].initial_margin  # per contract, USD


@dataclass(slots=True)
class GatewayConfig:
    """Everything a gateway instance is configured with (the CLI fills it)."""

    host: str = "127.0.0.1"
    port: int = 4002
    symbol: str = "ES"  # the product the market source drives (`products.PRODUCTS`)
    accounts: list[str] = field(default_factory=lambda: ["DU1234567"])
    server_version: int | None = None  # pin one version instead of negotiating
    max_msg_rate: int = 50  # client messages per second before error 100 and disconnect
    max_tick_by_tick: int = 5  # simultaneous tick-by-tick subscriptions (10190 beyond)
    market_data: str = "realtime"  # realtime | delayed | none
    read_only: bool = False  # 321 on every order
    handshake_silent: bool = False  # accept TCP, never answer the API handshake (API disabled)
    handshake_close: bool = False  # close the socket at the handshake (an untrusted IP refused)
    clock_offset_s: float = 0.0  # added to the time reqCurrentTime answers (clock skew)
    client_id_release_delay: float = 0.5  # seconds an id stays taken after its socket closes
    commission_per_contract: float = 2.25
    max_write_buffer: int = 8 * 1024 * 1024  # backpressure: pause the market above this
    calendar_carry: float = DEFAULT_CARRY  # per year: the back months' spread (curve.py)
    back_month_activity: float = DEFAULT_ACTIVITY  # share of the front's prints, per month out


def _margin(spec: FutureSpec) -> float:
    """Initial margin per contract of `spec`'s product."""
    found = products.PRODUCTS.get(spec.symbol)
    return ES_INITIAL_MARGIN if found is None else found.initial_margin


class Gateway(Markets, ConnectionFaults, WireFaults, OrderFaults):
    """A running simulated gateway; `await start()`, then `await stop()`."""

    def __init__(
        self,
        config: GatewayConfig,
        source: MarketSource,
        speed: float = 1.0,
        journal: Journal | None = None,
        wall: Callable[[], float] = time.monotonic,
    ) -> None:
        self.config = config
        self.product = products.product(config.symbol)  # ValueError for an unlisted one
        self._terms_of: dict[int, tuple[float, float]] = {}
        self.source = source
        self.clock = SimClock(source.start_time, speed)
        self.journal = journal
        self._wall = wall
        self.faults = Faults()
        self.engine = MatchingEngine(
            clock=self.clock.now,
            faults=self.faults,
            commission_per_contract=config.commission_per_contract,
            multiplier=self.product.multiplier,
            tick_size=self.product.tick_size,
            default_account=config.accounts[0],
            terms=self._terms,
        )
        now = self.clock.now()
        self.front = self._with_hours(contracts.listed_futures(now, symbol=self.product.symbol)[0])
        self.history = History()
        self.feed = MarketFeed(self.front, close_price=first_price(source))
        self.back: dict[int, BackMonth] = {}
        self._carry = config.calendar_carry
        self._activity = config.back_month_activity
        self._max_write_buffer = config.max_write_buffer
        self.start_session(self.clock.now())
        self.quiet_until = -math.inf  # no event is due before this data time (markets.py)
        self.historical = HistoricalService(
            self.history, self.clock, exchange=self.product.exchange
        )
        self.streams = Streams()
        self.pnl = PnLService(self, wall)
        self.display_groups: dict[int, str] = {}  # display group -> its contract info
        self.sessions: set[ClientSession] = set()
        self.stalled = False
        self.ib_connected = True
        self.market_done = asyncio.Event()
        self.events_served = 0
        self._unstalled = asyncio.Event()
        self._unstalled.set()
        self._owners: dict[int, ClientSession] = {}
        self._released_at: dict[int, float] = {}
        self._ids_held_until: dict[int, float] = {}  # id_clash fault: ids a ghost session keeps
        self.peak_msg_rate: dict[int, int] = {}  # client id -> most messages seen in 1 s
        self.rate_disconnects = 0  # clients cut off with error 100
        self._held: list[EngineEvent] = []  # order events during an 1100 outage
        self._farms = {"md": 2104, "hmds": 2106, "secdef": 2158}
        self._server: asyncio.Server | None = None
        self.session_ended = asyncio.Event()  # replaced after each close; await to observe one
        self.observers: list[Callable[[str], None]] = []  # "connect", "order", "fill", "correction"
        self._tasks: list[asyncio.Task[None]] = []
        self.port = config.port
        self._init_wire_faults()
        self._init_order_faults()

    # --- lifecycle ---

    async def start(self) -> int:
        """Start listening and the market; returns the bound port."""
        await self._listen()
        log.info("market: %s, front month %s", self.product.symbol, self.front.local_symbol)
        self._tasks.append(asyncio.create_task(self._run_market(), name="ibsim-market"))
        self._tasks.append(asyncio.create_task(self._run_snapshots(), name="ibsim-snapshots"))
        self._tasks.append(asyncio.create_task(self._run_expiry(), name="ibsim-expiry"))
        return self.port

    async def _listen(self) -> None:
        self._server = await asyncio.start_server(
            self._accept, self.config.host, self.port, reuse_address=True
        )
        self.port = self._server.sockets[0].getsockname()[1]
        log.info("listening on %s:%d", self.config.host, self.port)

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks.clear()
        await self._stop_wire_faults()
        await self._close_listener()
        for session in list(self.sessions):
            session.close()
        if self.journal is not None:
            self.journal.close()

    async def _close_listener(self) -> None:
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 1.0)
            self._server = None

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        session = ClientSession(self, reader, writer)
        self.sessions.add(session)
        await session.run()

    # --- client ids ---

    def claim_client_id(self, client_id: int, session: ClientSession) -> bool:
        owner = self._owners.get(client_id)
        if owner is not None and not owner.closed:
            return False
        now = self._wall()
        if now < self._released_at.get(client_id, 0.0):
            return False
        if now < self._ids_held_until.get(client_id, 0.0):
            return False
        self._owners[client_id] = session
        self._notify("connect")
        return True

    def _notify(self, event: str) -> None:
        for observer in list(self.observers):
            observer(event)

    def session_closed(self, session: ClientSession) -> None:
        self.sessions.discard(session)
        self.session_ended.set()
        self.session_ended = asyncio.Event()
        for feed in self.all_feeds():
            feed.drop_session(session)
        self.streams.drop_session(session)
        self.pnl.drop_session(session)
        cid = session.client_id
        if cid is not None and self._owners.get(cid) is session:
            del self._owners[cid]
            self._released_at[cid] = self._wall() + self.config.client_id_release_delay
            log.info("client %d disconnected", cid)

    def session_of(self, client_id: int) -> ClientSession | None:
        return self._owners.get(client_id)

    # --- contracts and marks ---

    def _terms(self, con_id: int) -> tuple[float, float]:
        """(tick size, multiplier) of a conId's product, for the matching engine."""
        terms = self._terms_of.get(con_id)
        if terms is None:
            product = contracts.product_of_con_id(con_id) or self.product
            terms = self._terms_of[con_id] = (product.tick_size, product.multiplier)
        return terms

    def _with_hours(self, spec: FutureSpec) -> FutureSpec:
        now = self.clock.now()
        found = contracts.by_con_id(spec.con_id, now)
        return found if found is not None else spec

    def resolve(self, c: ContractFields, *, include_expired: bool = False) -> list[FutureSpec]:
        query = contracts.ContractQuery(
            con_id=c.con_id,
            symbol=c.symbol,
            sec_type=c.sec_type,
            expiry=c.expiry,
            local_symbol=c.local_symbol,
            exchange=c.exchange,
            currency=c.currency,
            trading_class=c.trading_class,
            include_expired=include_expired,
        )
        return contracts.resolve(query, self.clock.now())

    def contract(self, con_id: int) -> FutureSpec:
        if con_id == self.front.con_id:
            return self.front
        spec = contracts.by_con_id(con_id, self.clock.now())
        if spec is None:
            raise KeyError(f"unknown conId {con_id}")
        return spec

    def account_values(self, account: str) -> list[tuple[str, str, str]]:
        realized = unrealized = margin = 0.0
        booked = self.engine.booked_executions()
        commissions = sum(e.commission for e in booked if e.account == account)
        for pos in self.engine.positions():
            if pos.account != account:
                continue
            spec = self.contract(pos.con_id)
            realized += pos.realized_pnl
            if pos.quantity:
                unrealized += pos.quantity * self.mark(spec) * spec.multiplier
                unrealized -= pos.quantity * pos.avg_cost
                margin += abs(pos.quantity) * _margin(spec)
        cash = INITIAL_CASH + realized - commissions
        net = cash + unrealized
        values = {
            "AccountCode": (account, ""),
            "AccountType": ("INDIVIDUAL", ""),
            "Currency": ("USD", "USD"),
            "NetLiquidation": (f"{net:.2f}", "USD"),
            "TotalCashValue": (f"{cash:.2f}", "USD"),
            "RealizedPnL": (f"{realized:.2f}", "USD"),
            "UnrealizedPnL": (f"{unrealized:.2f}", "USD"),
            "InitMarginReq": (f"{margin:.2f}", "USD"),
            "MaintMarginReq": (f"{margin * 0.91:.2f}", "USD"),
            "AvailableFunds": (f"{net - margin:.2f}", "USD"),
            "ExcessLiquidity": (f"{net - margin * 0.91:.2f}", "USD"),
            "BuyingPower": (f"{(net - margin) * 4:.2f}", "USD"),
        }
        return [(k, v, ccy) for k, (v, ccy) in values.items()]

    def farm_status(self) -> list[tuple[int, str]]:
        if not self.ib_connected:
            return [(1100, NOTICES[1100])]
        return [(code, NOTICES[code]) for code in self._farms.values()]

    # --- orders ---

    def place_order(self, session: ClientSession, req: OrderRequest) -> None:
        self.feed_for(self.contract(req.con_id))  # a back month's market starts with its orders
        events = self.engine.place(req)
        self._notify("order")
        if req.what_if:
            for ev in events:
                if isinstance(ev, OrderEvent):
                    spec = self.contract(ev.order.request.con_id)
                    margin = _margin(spec) * ev.order.request.total_quantity
                    session.send(session.enc.open_order(spec, ev.order, margin))
                elif isinstance(ev, OrderError):
                    session.error(ev.order_id, ev.code, ev.message)
            return
        self.dispatch(events)

    def dispatch(self, events: Iterable[EngineEvent]) -> None:
        """Send engine events to their owners (held while IB connectivity is down)."""
        for ev in events:
            if not self.ib_connected:
                self._held.append(ev)
                continue
            self._deliver(ev)

    def _deliver(self, ev: EngineEvent) -> None:
        if isinstance(ev, OrderError):
            owner = self.session_of(ev.client_id)
            if owner is not None:
                owner.error(ev.order_id, ev.code, ev.message)
            return
        order = ev.order
        owner = self.session_of(order.request.client_id)
        spec = self.contract(order.request.con_id)
        if isinstance(ev, FillEvent):
            if owner is not None:
                owner.send(owner.enc.execution(-1, spec, self._wire_execution(ev.execution, order)))
                owner.send(owner.enc.commission_report(ev.execution))
            self._push_position(spec, ev.execution.account)
            self._notify("fill" if ev.corrects is None else "correction")
            return
        if owner is not None:
            if order.status not in (OrderStatus.CANCELLED, OrderStatus.API_CANCELLED):
                owner.send(owner.enc.open_order(spec, order, None))
            owner.send(owner.enc.order_status(order))

    def _push_position(self, spec: FutureSpec, account: str) -> None:
        for pos in self.engine.positions():
            if pos.con_id != spec.con_id or pos.account != account:
                continue
            for s in self.sessions:
                if s.positions_subscribed:
                    s.send(s.enc.position(spec, pos))
                if s.account_subscribed:
                    s.send(s.enc.portfolio_value(spec, pos, self.mark(spec)))

    async def _run_expiry(self) -> None:
        """Expire orders on the clock too: after the close no market event may come to do it."""
        while True:
            await asyncio.sleep(EXPIRY_POLL)
            events = self.engine.expire()
            if events:
                self.dispatch(events)

    # --- statistics and state ---

    def note_msg_rate(self, client_id: int | None, count: int, *, exceeded: bool) -> None:
        """Pacing statistics: a session's message count over its last second."""
        if client_id is not None and count > self.peak_msg_rate.get(client_id, 0):
            self.peak_msg_rate[client_id] = count
        if exceeded:
            self.rate_disconnects += 1

    def state(self) -> dict[str, object]:
        """Orders, executions and positions as plain data (for `--state-out`)."""
        snap = self.engine.snapshot()
        snap["front"] = self.front.local_symbol
        snap["sim_time"] = self.clock.now()
        snap["events_served"] = self.events_served
        return snap
