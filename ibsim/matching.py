"""Order matching engine of the simulated gateway: pure state, no I/O, no asyncio.

One engine serves every client of a simulated gateway. Orders are keyed by
``(client_id, order_id)`` and live independently of connections: they keep working and
filling while their client is away. Each public mutator returns the ``EngineEvent`` list
in the order the wire must send it. Events carry *snapshots* of the order (copies taken
when the event was made), so two events about one order in one batch show two states;
``order()`` gives the live object.

Matching model (one top-of-book per ``con_id``, fed by ``on_quote`` / ``on_trade``):

* Taking. A marketable order (MKT, elected STP, BUY LMT with limit >= ask, SELL LMT with
  limit <= bid, elected STP LMT likewise) fills at the touch (ask for a buy, bid for a sell)
  up to the displayed size, ``liquidity=2``. The size it takes is removed from the engine's
  view of the book until the next quote replaces it. A MKT remainder takes again on later
  quotes; a LMT remainder rests at its limit. With no quote yet for the contract, MKT orders
  wait (Submitted) and LMT orders are evaluated as incoming on the first quote.
* Resting. A resting limit fills at its *limit price* (``liquidity=1``) when
  (a) a quote touches or crosses it (BUY: ask <= limit), up to the displayed opposite size;
  (b) a trade prints through it (BUY: price < limit), up to the trade size;
  (c) trades print *at* the limit and the queue ahead is used up: ``queue`` starts as the
  displayed size at the limit when the order joins the touch (0 when it improves on the
  touch, unknown while it sits behind the touch and set once the touch reaches it); it never
  exceeds the displayed size at that level, drops to 0 when the touch moves past the limit,
  and each trade at the limit consumes it; the trade size beyond it fills the order.
  Trade-driven fills of all orders together never exceed the trade's size. The aggressor
  side of trades is not used.
* Triggered kinds (STP, STP LMT, TRAIL, TRAIL LIMIT, MIT, LIT; rules in ``triggers.py``). BUY
  STP / STP LMT elect when a trade prints >= aux (SELL: <= aux); before any trade has printed
  on the contract the quote decides (BUY: ask >= aux, SELL: bid <= aux). A stop placed through
  the market elects at once. ``Order.triggered`` records the election; then STP acts as MKT
  and STP LMT as LMT at ``lmt_price``. Trailing stops follow the same reference; MIT / LIT
  fire the other way round.
* Time in force (``tif.py``). IOC and FOK act when the order is evaluated as incoming (above):
  IOC keeps what it took and is cancelled for the rest, FOK takes only when the touch covers
  all of it. DAY and GTD orders get ``Order.expires_at``; every mutator first expires the
  orders due (market events by their time, the others by the clock; ``expire`` on demand,
  which the gateway calls as its clock runs). An expiry or immediate cancel is OrderEvent
  (Cancelled) then error 202; it leaves the children of a parent with fills working (sized to
  those fills), and cancels them when the parent has none.
* Bad market data. Quotes with a non-positive or NaN price or bid > ask, and trades with a
  non-positive or NaN price or size, are ignored: feed the engine the true market, not the faults
  injected for the daemon's data guards.

Order lifecycle:

* ``transmit=False`` orders are held (PendingSubmit, no events, not in ``open_orders``)
  until an order of the same bracket (the root parent or any descendant) arrives, or is
  modified, with ``transmit=True``; that releases every held order of the group, parent
  first. Release emits one OrderEvent per order first, then matches.
* Bracket children are PreSubmitted (``why_held="child"``) until the parent has fills. Then
  each child works with ``total_quantity = max(own filled, min(requested quantity,
  parent filled) - fills of its siblings)``: children of one parent form an implicit
  reduce-style OCA group (a partial fill of the target shrinks the stop, a full fill cancels
  it). A child that reaches zero remaining while its parent is still working stays
  Submitted (it regrows as the parent fills); once the parent is done it ends Filled (it
  filled its whole share itself) or Cancelled (siblings took the rest). Cancelling a parent
  cancels its children, whatever the parent had filled.
* Explicit ``oca_group`` (per client): a fill cancels the other members (``oca_type`` 1, or
  0 = unset) or reduces them by the filled quantity (2, 3; a member reduced to nothing is
  Cancelled). Bracket siblings follow only the bracket rule above, even when they also
  share an explicit group, so fills are never subtracted twice.
* Per fill the events are: FillEvent, OrderEvent (new filled/avg/status), OCA effects
  (OrderEvent per sibling changed or Cancelled, no 202), child activation or resizing
  (OrderEvent per child, then the children's own fills if marketable).
* ``what_if=True`` is validated like a new order but creates nothing: the reply is one
  OrderEvent for a transient PreSubmitted order with ``perm_id`` 0, kept out of every query.
  Its id still counts as used.
* Ids: any id seen in ``place`` counts as used, even when the order is rejected. Resending a
  live id modifies it (held orders included); the id of a filled order is error 104; a new
  id at or below the highest used, or the id of another done order, is error 103. Cancelling
  a done order is 10148 with its state, an id never placed 10147.

Accounting (commission per contract, ``avg_cost`` and realized PnL as IB reports futures) is
in ``ledger.py``. ``correct`` replaces a fill by a correction (execId revision + 1): the
position is rebooked, the order's average price follows, its filled quantity and status stay.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Iterator
from typing import Any

from ibsim import tif, triggers
from ibsim.ledger import Ledger
from ibsim.model import (
    ES_MULTIPLIER,
    TICK_SIZE,
    UNSET_DOUBLE,
    EngineEvent,
    Execution,
    Faults,
    FillEvent,
    Order,
    OrderError,
    OrderEvent,
    OrderRequest,
    OrderStatus,
    OrderType,
    Position,
    QuoteTick,
    Side,
    TradeTick,
    as_plain,
)

__all__ = ["DEFAULT_ACCOUNT", "DEFAULT_PERM_ID_START", "MatchingEngine"]

DEFAULT_PERM_ID_START = 1_843_207_961
DEFAULT_ACCOUNT = "DU1234567"
_EXEC_ID_PREFIX = "0000e0d5"
_EXEC_SEQ_START = 0x6650A3C0
_CANCELLED_TEXT = "Order Canceled - reason:"

Key = tuple[int, int]


class _Book:
    """Top of book of one contract as the engine sees it, plus the orders working on it."""

    __slots__ = ("ask", "ask_size", "bid", "bid_size", "has_quote", "last", "working")

    def __init__(self) -> None:
        self.bid = 0.0
        self.ask = 0.0
        self.bid_size = 0  # displayed size still available to our orders
        self.ask_size = 0
        self.has_quote = False
        self.last: float | None = None
        self.working: dict[Key, _Work] = {}


class _Work:
    """Engine-side state of one live (not done) order."""

    __slots__ = ("entered", "held", "key", "order", "orig_qty", "parent", "queue", "transmitted")

    def __init__(self, order: Order, parent: Key | None) -> None:
        self.order = order
        self.key = order.key
        self.parent = parent
        self.held = True  # not transmitted yet
        self.transmitted = False
        self.entered = False  # evaluated against a quote as an incoming order
        self.queue: int | None = None  # contracts ahead at the limit; None = unknown
        self.orig_qty = order.request.total_quantity  # children: the requested quantity


def _snap(order: Order) -> Order:
    return dataclasses.replace(order, request=dataclasses.replace(order.request))


def _unset_to_none(price: float | None) -> float | None:
    return None if price is None or price >= UNSET_DOUBLE else price


class MatchingEngine:
    """Orders, fills, positions and the matching rules of one simulated gateway."""

    def __init__(
        self,
        clock: Callable[[], float],
        faults: Faults,
        commission_per_contract: float = 2.25,
        multiplier: float = ES_MULTIPLIER,
        tick_size: float = TICK_SIZE,
        perm_id_start: int = DEFAULT_PERM_ID_START,
        default_account: str = DEFAULT_ACCOUNT,
        session_close: tif.SessionClose = tif.es_session_close,
        terms: Callable[[int], tuple[float, float]] | None = None,
    ) -> None:
        """`terms` gives a conId's (tick size, multiplier) when contracts differ; without it
        every contract has `tick_size` and `multiplier`."""
        self._clock = clock
        self._faults = faults
        self._commission = commission_per_contract
        self._terms = terms or (lambda _con_id: (tick_size, multiplier))
        self._eps = tick_size * 1e-6
        self._next_perm = perm_id_start
        self._default_account = default_account
        self._exec_seq = _EXEC_SEQ_START
        self._books: dict[int, _Book] = {}
        self._orders: dict[Key, Order] = {}  # every created order, live or done
        self._work: dict[Key, _Work] = {}  # live orders only, held ones included
        self._children: dict[Key, list[Key]] = {}
        self._max_id: dict[int, int] = {}
        self._completed: list[Order] = []
        self._ledger = Ledger(multiplier, lambda con_id: self._terms(con_id)[1])
        self._session_close = session_close
        self._next_expiry = math.inf  # no live order expires before this

    # ------------------------------------------------------------------ market data

    def on_quote(self, con_id: int, quote: QuoteTick) -> list[EngineEvent]:
        """Replace the top of book of ``con_id`` and match the orders working on it."""
        book = self._books.get(con_id)
        if book is None:
            book = self._books[con_id] = _Book()
        # An event at or after an expiry sees the order gone (the gateway also polls the clock).
        events = self.expire() if quote.time >= self._next_expiry else []
        if not 0.0 < quote.bid <= quote.ask:  # also rejects NaN
            return events
        book.bid = quote.bid
        book.ask = quote.ask
        book.bid_size = quote.bid_size
        book.ask_size = quote.ask_size
        book.has_quote = True
        if book.working:
            events += self._match_quote(book)
        return events

    def on_trade(self, con_id: int, trade: TradeTick) -> list[EngineEvent]:
        """Record a print on ``con_id`` and match the orders working on it."""
        book = self._books.get(con_id)
        if book is None:
            book = self._books[con_id] = _Book()
        events = self.expire() if trade.time >= self._next_expiry else []
        if not (trade.price > 0.0 and trade.size > 0):  # also rejects NaN
            return events
        book.last = trade.price
        if book.working:
            events += self._match_trade(book, trade.price, trade.size)
        return events

    # ------------------------------------------------------------------ order entry

    def place(self, req: OrderRequest) -> list[EngineEvent]:
        """Place, modify, or what-if an order (see the module docstring for the rules)."""
        if req.what_if:  # its reply goes to the asker alone: expiries wait for the next call
            return self._place(req)
        return self.expire() + self._place(req)

    def _place(self, req: OrderRequest) -> list[EngineEvent]:
        client_id, order_id = req.client_id, req.order_id
        key = (client_id, order_id)
        work = self._work.get(key)
        if work is not None and not req.what_if:
            return self._modify(work, req)
        done = self._orders.get(key)
        if work is None and done is not None and done.status is OrderStatus.FILLED:
            return [OrderError(client_id, order_id, 104, "Can't modify a filled order.")]
        if work is None and order_id <= self._max_id.get(client_id, 0):
            return [OrderError(client_id, order_id, 103, "Duplicate order id")]
        self._max_id[client_id] = max(order_id, self._max_id.get(client_id, 0))
        request = self._normalised(req)
        error = self._validate(request)
        if error is not None:
            return [error]
        parent: Key | None = None
        if request.parent_id:
            parent = (client_id, request.parent_id)
            if parent not in self._orders:
                msg = f"Can't find order with id = {request.parent_id}"
                return [OrderError(client_id, order_id, 135, msg)]
            if parent not in self._work:
                msg = "Order rejected - reason:The parent order is no longer active"
                return [OrderError(client_id, order_id, 201, msg)]
        if request.what_if:
            return [OrderEvent(Order(request=request, perm_id=0, status=OrderStatus.PRE_SUBMITTED))]

        order = Order(request=request, perm_id=self._next_perm, status=OrderStatus.PENDING_SUBMIT)
        self._next_perm += 1
        self._orders[key] = order
        self._set_expiry(order)
        if self._faults.reject_next_orders > 0:
            self._faults.reject_next_orders -= 1
            order.status = OrderStatus.INACTIVE
            order.completed_time = self._clock()
            self._completed.append(order)
            msg = "Order rejected - reason:Simulated rejection (fault injection)"
            return [OrderError(client_id, order_id, 201, msg), OrderEvent(_snap(order))]
        work = _Work(order, parent)
        self._work[key] = work
        if parent is not None:
            self._children.setdefault(parent, []).append(key)
        if not request.transmit:
            return []
        return self._release(work)

    def cancel(self, client_id: int, order_id: int) -> list[EngineEvent]:
        """Cancel a live order (and its children): OrderEvent(Cancelled) then error 202 each."""
        events = self.expire()
        key = (client_id, order_id)
        work = self._work.get(key)
        if work is not None:
            self._cancel_tree(work, events, notify=True)
            return events
        done = self._orders.get(key)
        if done is None:
            msg = f"OrderId {order_id} that needs to be cancelled is not found."
            return [*events, OrderError(client_id, order_id, 10147, msg)]
        msg = (
            f"OrderId {order_id} that needs to be cancelled cannot be cancelled, "
            f"state: {done.status.value}."
        )
        return [*events, OrderError(client_id, order_id, 10148, msg)]

    def expire(self) -> list[EngineEvent]:
        """Cancel the DAY and GTD orders whose time has come (by the clock), oldest expiry first."""
        now = self._clock()
        if now < self._next_expiry:
            return []
        events: list[EngineEvent] = []
        due = sorted(
            (w for w in self._work.values() if (w.order.expires_at or math.inf) <= now),
            key=lambda w: (w.order.expires_at or 0.0, w.order.perm_id),
        )
        for work in due:
            if work.key in self._work:
                self._kill(work, events, at=work.order.expires_at)
        self._next_expiry = min(
            (w.order.expires_at for w in self._work.values() if w.order.expires_at is not None),
            default=math.inf,
        )
        return events

    def global_cancel(self) -> list[EngineEvent]:
        """Cancel every live order of every client, in perm_id order."""
        events = self.expire()
        for work in sorted(self._work.values(), key=lambda w: w.order.perm_id):
            if work.key in self._work:
                self._cancel_tree(work, events, notify=True)
        return events

    def correct(
        self, exec_id: str | None = None, *, price: float | None = None, shares: int | None = None
    ) -> list[EngineEvent]:
        """Correct a fill (None: the most recent report): one FillEvent carrying the correction.

        Unchanged values are kept; the commission follows the shares. [] when there is no
        execution at all; an unknown ``exec_id`` is a KeyError.
        """
        if exec_id is None:
            latest = self._ledger.latest()
            if latest is None:
                return []
            exec_id = latest.exec_id
        old = self._ledger.current(exec_id)
        new_shares = old.shares if shares is None else shares
        new = self._ledger.correct(
            old.exec_id,
            price=old.price if price is None else price,
            shares=new_shares,
            commission=self._commission * new_shares,
            time=self._clock(),
        )
        order = self._orders[(new.client_id, new.order_id)]
        fills = [e for e in self._ledger.booked() if e.perm_id == order.perm_id]
        order.avg_fill_price = sum(e.price * e.shares for e in fills) / sum(e.shares for e in fills)
        return [FillEvent(_snap(order), new, corrects=old.exec_id)]

    # ------------------------------------------------------------------ queries

    def open_orders(self, client_id: int | None = None) -> list[Order]:
        """Live transmitted orders, of one client or all, by perm_id."""
        return sorted(
            (
                w.order
                for w in self._work.values()
                if not w.held and (client_id is None or w.key[0] == client_id)
            ),
            key=lambda o: o.perm_id,
        )

    def completed_orders(self) -> list[Order]:
        """Done orders (Filled, Cancelled, Inactive) by completion time."""
        return sorted(self._completed, key=lambda o: o.completed_time or 0.0)

    def executions(self) -> list[Execution]:
        """Every execution report of the day, oldest first: fills and their corrections."""
        return self._ledger.reports()

    def booked_executions(self) -> list[Execution]:
        """The fills as booked (each corrected one replaced by its correction), in fill order."""
        return self._ledger.booked()

    def positions(self) -> list[Position]:
        """Every position ever opened, flat ones included."""
        return self._ledger.positions()

    def order(self, client_id: int, order_id: int) -> Order | None:
        """The live object of an order (held, working or done); None if never created."""
        return self._orders.get((client_id, order_id))

    def next_order_id(self, client_id: int) -> int:
        """One more than the highest order id the client has used (at least 1)."""
        return self._max_id.get(client_id, 0) + 1

    def spend_id(self, client_id: int, order_id: int) -> None:
        """Count an id as used by an order refused before it reached the engine (321, 200)."""
        if order_id > 0:
            self._max_id[client_id] = max(order_id, self._max_id.get(client_id, 0))

    def snapshot(self) -> dict[str, Any]:
        """Orders, executions and positions as plain JSON-serialisable data."""
        orders = []
        for order in sorted(self._orders.values(), key=lambda o: o.perm_id):
            data = as_plain(order)
            work = self._work.get(order.key)
            data["held"] = work is not None and work.held
            orders.append(data)
        return {
            "orders": orders,
            "executions": [as_plain(e) for e in self._ledger.reports()],
            "corrections": self._ledger.corrections(),
            "positions": [as_plain(p) for p in self._ledger.positions()],
        }

    # ------------------------------------------------------------------ validation

    def _normalised(self, req: OrderRequest) -> OrderRequest:
        request = dataclasses.replace(req)
        request.lmt_price = _unset_to_none(request.lmt_price)
        request.aux_price = _unset_to_none(request.aux_price)
        request.trailing_percent = _unset_to_none(request.trailing_percent)
        request.trail_stop_price = _unset_to_none(request.trail_stop_price)
        request.lmt_price_offset = _unset_to_none(request.lmt_price_offset)
        if not request.account:
            request.account = self._default_account
        return request

    def _validate(self, req: OrderRequest) -> OrderError | None:
        if req.total_quantity <= 0:
            return OrderError(req.client_id, req.order_id, 160, "The size value cannot be zero.")
        tick = self._terms(req.con_id)[0]
        return triggers.check(req, tick) or tif.check(req, self._clock())

    def _set_expiry(self, order: Order) -> None:
        order.expires_at = tif.expiry(order.request, self._clock(), self._session_close)
        if order.expires_at is not None:
            self._next_expiry = min(self._next_expiry, order.expires_at)

    # ------------------------------------------------------------------ modify / release

    def _modify(self, work: _Work, req: OrderRequest) -> list[EngineEvent]:
        order = work.order
        old = order.request
        cid, oid = req.client_id, req.order_id
        if (req.con_id, req.action, req.parent_id) != (old.con_id, old.action, old.parent_id):
            msg = "Order being modified does not match original order."
            return [OrderError(cid, oid, 105, msg)]
        request = self._normalised(req)
        request.account = old.account
        error = self._validate(request)
        if error is not None:
            return [error]
        if request.total_quantity < order.filled:
            msg = (
                "Error validating request:-'modify' : cause - the total quantity "
                f"{request.total_quantity} is below the filled quantity {order.filled}"
            )
            return [OrderError(cid, oid, 321, msg)]
        work.orig_qty = request.total_quantity
        order.request = request
        if (old.tif, old.good_till_date) != (request.tif, request.good_till_date):
            self._set_expiry(order)
        trail = (request.aux_price, request.trailing_percent, request.trail_stop_price)
        restart = trail != (old.aux_price, old.trailing_percent, old.trail_stop_price)
        if restart and not order.triggered:
            order.trail_stop = None  # it starts again from the new parameters
        if work.parent is not None:
            request.total_quantity = self._child_quantity(work, self._orders[work.parent])
        if work.held:
            return self._release(work) if request.transmit else []

        events: list[EngineEvent] = []
        if order.remaining == 0 and order.filled > 0 and self._may_complete(work):
            self._finish(work, OrderStatus.FILLED)
            events.append(OrderEvent(_snap(order)))
            if work.key in self._children:
                self._sync_children(work.key, events)
            return events
        book = self._books.get(request.con_id)
        working = book is not None and book.working.get(work.key) is work
        if working:
            self._show_trail(order)
        events.append(OrderEvent(_snap(order)))
        if working:
            assert book is not None
            work.entered = False
            work.queue = None
            self._enter(work, book, events)
        return events

    def _release(self, work: _Work) -> list[EngineEvent]:
        root = work
        while root.parent is not None and root.parent in self._work:
            root = self._work[root.parent]
        group = [w for w in self._descendants(root) if w.held]
        events: list[EngineEvent] = []
        for w in group:
            w.held = False
            w.transmitted = True
            if w.parent is None:
                w.order.status = OrderStatus.SUBMITTED
                self._show_trail(w.order)
            else:
                w.order.status = OrderStatus.PRE_SUBMITTED
                w.order.why_held = "child"
            events.append(OrderEvent(_snap(w.order)))
        for w in group:
            if w.key not in self._work:
                continue  # finished by an earlier order of the group
            if w.parent is None:
                book = self._book(w.order.request.con_id)
                book.working[w.key] = w
                self._enter(w, book, events)
            elif self._orders[w.parent].filled > 0:
                self._sync_children(w.parent, events)
        return events

    def _descendants(self, root: _Work) -> Iterator[_Work]:
        queue = [root]
        while queue:
            work = queue.pop(0)
            yield work
            for key in self._children.get(work.key, ()):
                child = self._work.get(key)
                if child is not None:
                    queue.append(child)

    def _book(self, con_id: int) -> _Book:
        book = self._books.get(con_id)
        if book is None:
            book = self._books[con_id] = _Book()
        return book

    # ------------------------------------------------------------------ matching

    def _limit(self, order: Order) -> float | None:
        """The price an order must respect now; None when it trades at the market."""
        if order.request.order_type is OrderType.LMT:
            return order.request.lmt_price
        if not order.triggered:
            return None
        return triggers.limit_once_fired(order, self._terms(order.request.con_id)[0])

    def _elects(self, order: Order, book: _Book) -> bool:
        buy = order.request.action is Side.BUY
        if book.last is not None:
            ref = book.last
        elif book.has_quote:
            ref = book.ask if buy else book.bid
        else:
            return False
        return triggers.fires(order, ref, self._terms(order.request.con_id)[0])

    def _show_trail(self, order: Order) -> None:
        """Start a trailing stop before its Submitted status goes out, so that OPEN_ORDER shows
        the stop; `fires` gives the same answer again when the order is entered."""
        if order.request.order_type in triggers.TRAILING and not order.triggered:
            self._elects(order, self._book(order.request.con_id))

    def _enter(self, work: _Work, book: _Book, events: list[EngineEvent]) -> None:
        """Evaluate an order as incoming: fire a trigger, take liquidity, or start resting; an
        IOC or FOK order is then done."""
        order = work.order
        if order.request.order_type in triggers.TRIGGERED and not order.triggered:
            if not self._elects(order, book):
                return
            order.triggered = True
        immediate = order.request.tif.upper()
        if immediate not in tif.IMMEDIATE:
            immediate = ""
        if not book.has_quote:
            if immediate:
                self._kill(work, events)
            return
        limit = self._limit(order)
        buy = order.request.action is Side.BUY
        eps = self._eps
        marketable = limit is None or (book.ask <= limit + eps if buy else book.bid >= limit - eps)
        shown = book.ask_size if buy else book.bid_size
        if immediate == "FOK" and not (marketable and shown >= order.remaining):
            self._kill(work, events)
            return
        if marketable:
            self._take(work, book, events)
        if immediate:
            if work.key in self._work and order.remaining > 0:
                self._kill(work, events)
            return
        if limit is None or book.working.get(work.key) is not work:
            return
        work.entered = True
        touch = book.bid if buy else book.ask
        improves = limit > touch + eps if buy else limit < touch - eps
        if improves:
            work.queue = 0
        elif abs(limit - touch) <= eps:
            work.queue = book.bid_size if buy else book.ask_size
        else:
            work.queue = None

    def _take(self, work: _Work, book: _Book, events: list[EngineEvent]) -> None:
        order = work.order
        if order.request.action is Side.BUY:
            qty = min(order.remaining, book.ask_size)
            if qty > 0:
                book.ask_size -= qty
                self._fill(work, qty, book.ask, 2, events)
        else:
            qty = min(order.remaining, book.bid_size)
            if qty > 0:
                book.bid_size -= qty
                self._fill(work, qty, book.bid, 2, events)

    def _match_quote(self, book: _Book) -> list[EngineEvent]:
        events: list[EngineEvent] = []
        eps = self._eps
        for work in tuple(book.working.values()):
            if book.working.get(work.key) is not work:
                continue  # finished or re-entered while handling an earlier order
            order = work.order
            if order.request.order_type in triggers.TRIGGERED and not order.triggered:
                if book.last is None:
                    self._enter(work, book, events)
                continue
            limit = self._limit(order)
            if limit is None:
                self._take(work, book, events)
                continue
            if not work.entered:
                self._enter(work, book, events)
                continue
            if order.request.action is Side.BUY:
                if book.bid < limit - eps:
                    work.queue = 0
                elif book.bid <= limit + eps:
                    work.queue = (
                        book.bid_size if work.queue is None else min(work.queue, book.bid_size)
                    )
                if book.ask <= limit + eps:
                    qty = min(order.remaining, book.ask_size)
                    if qty > 0:
                        book.ask_size -= qty
                        self._fill(work, qty, limit, 1, events)
            else:
                if book.ask > limit + eps:
                    work.queue = 0
                elif book.ask >= limit - eps:
                    work.queue = (
                        book.ask_size if work.queue is None else min(work.queue, book.ask_size)
                    )
                if book.bid >= limit - eps:
                    qty = min(order.remaining, book.bid_size)
                    if qty > 0:
                        book.bid_size -= qty
                        self._fill(work, qty, limit, 1, events)
        return events

    def _match_trade(self, book: _Book, price: float, size: int) -> list[EngineEvent]:
        events: list[EngineEvent] = []
        eps = self._eps
        available = size  # one print fills our orders for at most its size in total
        for work in tuple(book.working.values()):
            if book.working.get(work.key) is not work:
                continue
            order = work.order
            req = order.request
            buy = req.action is Side.BUY
            if req.order_type in triggers.TRIGGERED and not order.triggered:
                self._enter(work, book, events)  # book.last is this print
                continue
            limit = self._limit(order)
            if limit is None or available <= 0:
                continue
            through = price < limit - eps if buy else price > limit + eps
            qty = 0
            if through:
                qty = min(order.remaining, available)
            elif abs(price - limit) <= eps and work.queue is not None:
                excess = size - work.queue
                work.queue = max(0, work.queue - size)
                qty = min(order.remaining, excess, available)
            if qty > 0:
                available -= qty
                self._fill(work, qty, limit, 1, events)
        return events

    # ------------------------------------------------------------------ fills

    def _fill(
        self, work: _Work, qty: int, price: float, liquidity: int, events: list[EngineEvent]
    ) -> None:
        order = work.order
        req = order.request
        previous = order.filled
        order.filled = previous + qty
        order.avg_fill_price = (order.avg_fill_price * previous + price * qty) / order.filled
        order.last_fill_price = price
        commission = self._commission * qty
        realized = self._ledger.book_fill(
            req.account, req.con_id, req.action, qty, price, commission
        )
        self._exec_seq += 1
        execution = Execution(
            exec_id=f"{_EXEC_ID_PREFIX}.{self._exec_seq:08x}.01.01",
            time=self._clock(),
            client_id=req.client_id,
            order_id=req.order_id,
            perm_id=order.perm_id,
            con_id=req.con_id,
            account=req.account,
            side=req.action,
            shares=qty,
            price=price,
            cum_qty=order.filled,
            avg_price=order.avg_fill_price,
            order_ref=req.order_ref,
            commission=commission,
            realized_pnl=realized,
            liquidity=liquidity,
        )
        self._ledger.record(execution)
        if order.remaining == 0 and self._may_complete(work):
            self._finish(work, OrderStatus.FILLED)
        snap = _snap(order)
        events.append(FillEvent(snap, execution))
        events.append(OrderEvent(snap))
        if work.parent is not None:
            self._sync_children(work.parent, events)
        if req.oca_group:
            self._apply_oca(work, qty, events)
        if work.key in self._children:
            self._sync_children(work.key, events)

    def _may_complete(self, work: _Work) -> bool:
        # A bracket child may regrow while its parent still fills, so it cannot end before it.
        return work.parent is None or self._orders[work.parent].status.done

    def _child_quantity(self, work: _Work, parent: Order) -> int:
        if parent.filled == 0:
            return max(work.orig_qty, work.order.filled)
        siblings = sum(
            self._orders[k].filled for k in self._children.get(parent.key, ()) if k != work.key
        )
        return max(work.order.filled, min(work.orig_qty, parent.filled) - siblings)

    def _sync_children(self, parent_key: Key, events: list[EngineEvent]) -> None:
        """Size (and activate) the children of a parent that has fills."""
        parent = self._orders[parent_key]
        if parent.filled == 0:
            return
        activated: list[_Work] = []
        for key in self._children.get(parent_key, ()):
            work = self._work.get(key)
            if work is None or work.held:
                continue
            child = work.order
            target = self._child_quantity(work, parent)
            if target == child.filled and parent.status.done:
                # Nothing left to work: it filled its share itself, or its siblings took it.
                if child.filled > 0 and child.filled >= min(work.orig_qty, parent.filled):
                    child.request.total_quantity = target
                    self._finish(work, OrderStatus.FILLED)
                else:
                    self._finish(work, OrderStatus.CANCELLED)
                events.append(OrderEvent(_snap(child)))
                continue
            changed = child.request.total_quantity != target
            child.request.total_quantity = target
            if child.status is OrderStatus.PRE_SUBMITTED:
                child.status = OrderStatus.SUBMITTED
                self._show_trail(child)
                child.why_held = ""
                self._book(child.request.con_id).working[key] = work
                activated.append(work)
                changed = True
            if changed:
                events.append(OrderEvent(_snap(child)))
        for work in activated:
            book = self._books[work.order.request.con_id]
            if book.working.get(work.key) is work:
                self._enter(work, book, events)

    def _apply_oca(self, work: _Work, qty: int, events: list[EngineEvent]) -> None:
        req = work.order.request
        members = sorted(
            (
                w
                for w in self._work.values()
                if w is not work
                and not w.held
                and w.key[0] == req.client_id
                and w.order.request.oca_group == req.oca_group
                and not self._same_bracket(work, w)
            ),
            key=lambda w: w.order.perm_id,
        )
        for member in members:
            if member.key not in self._work:
                continue
            if req.oca_type not in (2, 3):
                self._cancel_tree(member, events, notify=False)
                continue
            order = member.order
            member.orig_qty = max(0, member.orig_qty - qty)
            reduced = max(order.filled, order.request.total_quantity - qty)
            if reduced == order.filled:
                self._cancel_tree(member, events, notify=False)
                continue
            order.request.total_quantity = reduced
            events.append(OrderEvent(_snap(order)))

    @staticmethod
    def _same_bracket(a: _Work, b: _Work) -> bool:
        """Parent and child, or two children of one parent: the bracket rule governs them."""
        return (
            a.parent == b.key
            or b.parent == a.key
            or (a.parent is not None and a.parent == b.parent)
        )

    def _cancel_tree(self, work: _Work, events: list[EngineEvent], *, notify: bool) -> None:
        was_held = work.held
        self._finish(work, OrderStatus.CANCELLED)
        events.append(OrderEvent(_snap(work.order)))
        if notify and not was_held:
            cid, oid = work.key
            events.append(OrderError(cid, oid, 202, _CANCELLED_TEXT))
        for key in self._children.get(work.key, ()):
            child = self._work.get(key)
            if child is not None:
                self._cancel_tree(child, events, notify=notify)

    def _kill(self, work: _Work, events: list[EngineEvent], at: float | None = None) -> None:
        """End an order for its time in force (IOC / FOK rest, DAY / GTD expiry at `at`):
        Cancelled, then 202 if it was transmitted. Children of a parent with fills keep
        working, sized to those fills; those of a parent without fills are cancelled."""
        was_held = work.held
        self._finish(work, OrderStatus.CANCELLED, at)
        order = work.order
        events.append(OrderEvent(_snap(order)))
        if not was_held:
            events.append(OrderError(*work.key, 202, _CANCELLED_TEXT))
        if order.filled > 0:
            self._sync_children(work.key, events)
            return
        for key in self._children.get(work.key, ()):
            child = self._work.get(key)
            if child is not None:
                self._cancel_tree(child, events, notify=True)

    def _finish(self, work: _Work, status: OrderStatus, at: float | None = None) -> None:
        order = work.order
        order.status = status
        order.why_held = ""
        order.completed_time = self._clock() if at is None else at
        del self._work[work.key]
        book = self._books.get(order.request.con_id)
        if book is not None:
            book.working.pop(work.key, None)
        if work.transmitted:
            self._completed.append(order)
