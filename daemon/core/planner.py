"""The planner: an intent, the position and the working orders in; the order actions out.

Pure: no I/O, no clock of its own, nothing sent. The trader journals the intent, runs each
action through the risk checks and the executor, and keeps the `Flip` the planner hands back.

How an intent becomes orders:

- entries working the other way are cancelled;
- a position that must shrink or turn is exited first: each filled bracket's target is moved
  through the market (a modify: the stop stays in the OCA group until one of them fills),
  newest bracket first, and what no target covers goes out as an exit order (the closer sizes
  it from the broker's position);
- a reversal waits, as an explicit `Flip`, until the exits and cancels it sent have ended: only
  then is the new entry sized, from the position the broker's fills made (entering before the
  cancels are confirmed would overshoot whichever way they end);
- else the entry: one bracket, parent (LMT ``offset_ticks`` through the near touch, or MKT),
  target and stop ``target_ticks`` / ``stop_ticks`` from the entry price.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from daemon.core.instrument import Instrument
from daemon.core.orders import Order, OrderType, Role, Side

__all__ = [
    "Book",
    "CancelOrder",
    "Flip",
    "MoveTarget",
    "PlaceBracket",
    "PlaceExit",
    "Plan",
    "Quote",
    "Want",
    "entry_prices",
    "exit_actions",
    "heading",
    "plan_flip",
    "plan_intent",
]


def _sign(x: int) -> int:
    return (x > 0) - (x < 0)


# --- what the planner sees -------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Quote:
    bid: float | None
    ask: float | None

    @property
    def two_sided(self) -> bool:
        return self.bid is not None and self.ask is not None


@dataclass(frozen=True, slots=True)
class Book:
    """The position and every order the executor knows (live ones and their bracket family)."""

    position: int
    orders: Sequence[Order]
    exits_sent: frozenset[str] = frozenset()  # targets already moved through the market
    pending_exits: int = 0  # contracts exit orders being sized will close (+ closes a long)

    @property
    def live(self) -> list[Order]:
        return [o for o in self.orders if o.live]

    def working_entries(self) -> int:
        """Signed contracts in entries sent and not filled yet."""
        return sum(o.sign * o.remaining for o in self.live if o.role is Role.ENTRY)

    def exiting(self) -> int:
        """Signed contracts that exits already on their way will close (+ closes a long)."""
        total = self.pending_exits
        for o in self.live:
            if o.role is Role.EXIT or (o.role is Role.TARGET and o.ref in self.exits_sent):
                total -= o.sign * o.remaining  # a SELL exit closes a long: +remaining
        return total

    def children(self, parent_ref: str) -> list[Order]:
        return [o for o in self.orders if o.parent_ref == parent_ref]


def heading(book: Book) -> int:
    """Where the orders already sent will take the position."""
    return book.position + book.working_entries() - book.exiting()


# --- what it decides -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CancelOrder:
    ref: str
    reason: str


@dataclass(frozen=True, slots=True)
class MoveTarget:
    """Move a bracket's target through the market: it closes ``quantity`` contracts."""

    ref: str
    action: Side
    quantity: int
    price: float


@dataclass(frozen=True, slots=True)
class PlaceExit:
    """An exit order for at most ``quantity`` (the closer re-reads the broker's position)."""

    action: Side
    quantity: int
    price: float | None  # None: at market


@dataclass(frozen=True, slots=True)
class PlaceBracket:
    action: Side
    quantity: int
    entry_type: OrderType
    entry_price: float | None  # None: at market
    stop_price: float
    target_price: float


Action = CancelOrder | MoveTarget | PlaceExit | PlaceBracket


@dataclass(frozen=True, slots=True)
class Want:
    """What an intent asks for, as the planner needs it."""

    target: int  # the signed position after it
    entry_type: OrderType
    offset_ticks: int
    stop_ticks: int
    target_ticks: int


@dataclass(frozen=True, slots=True)
class Flip:
    """A reversal (or an entry) waiting for the exits and cancels it sent to end."""

    want: Want
    since: float  # market time it started waiting
    exited: bool  # an exit was sent: if it ends without flat, the flip is abandoned


@dataclass(frozen=True, slots=True)
class Plan:
    """The actions, in order, and what becomes of the intent.

    ``outcome``: "sent" (every order it needs is on its way), "waiting" (``flip`` holds it),
    "done" (nothing to do: ``detail`` says why), "refused" (``detail`` names the problem).
    """

    actions: tuple[Action, ...] = ()
    outcome: str = "sent"
    detail: str = ""
    flip: Flip | None = None
    entry: PlaceBracket | None = field(default=None)  # the bracket among the actions, if any


# --- planning --------------------------------------------------------------------------------


def entry_prices(
    action: Side,
    entry_type: OrderType,
    offset_ticks: int,
    stop_ticks: int,
    target_ticks: int,
    quote: Quote,
    instrument: Instrument,
) -> tuple[float | None, float, float] | None:
    """(entry price or None for MKT, stop, target); None when the quote cannot price it."""
    near = quote.bid if action is Side.BUY else quote.ask
    far = quote.ask if action is Side.BUY else quote.bid
    step = action.sign  # ticks toward the market
    if entry_type is OrderType.MKT:
        entry_price = None
        reference = far
    else:
        entry_price = None if near is None else instrument.offset(near, step * offset_ticks)
        reference = entry_price
    if reference is None:
        return None
    stop = instrument.offset(reference, -step * stop_ticks)
    target = instrument.offset(reference, step * target_ticks)
    return entry_price, stop, target


def plan_intent(
    want: Want,
    book: Book,
    quote: Quote,
    instrument: Instrument,
    *,
    exit_through_ticks: int,
    now: float,
) -> Plan:
    """The actions that take ``book`` to ``want.target`` (see the module docstring)."""
    target, position = want.target, book.position
    actions: list[Action] = [
        CancelOrder(o.ref, f"wants {target}")
        for o in book.live
        if o.role is Role.ENTRY and o.remaining > 0 and o.sign != _sign(target - position)
    ]
    turning = position != 0 and _sign(target) != _sign(position)
    if position != 0 and (turning or abs(target) < abs(position)):
        close = abs(position) if turning else abs(position) - abs(target)
        actions += exit_actions(book, close, quote, instrument, exit_through_ticks)
        if target != 0 and turning:
            return Plan(tuple(actions), "waiting", flip=Flip(want, now, exited=True))
        return Plan(tuple(actions), "sent")
    if actions:
        # Until the broker confirms the cancels the entries may still fill: sizing the new
        # entry now would overshoot the target whichever way they end.
        return Plan(tuple(actions), "waiting", flip=Flip(want, now, exited=False))
    return _enter(want, book, quote, instrument)


def _enter(want: Want, book: Book, quote: Quote, instrument: Instrument) -> Plan:
    target = want.target
    current = book.position + book.working_entries()
    quantity = abs(target - current)
    if quantity == 0 or _sign(target - current) != _sign(target):
        return Plan(outcome="done", detail="nothing to enter")
    action = Side.BUY if target > current else Side.SELL
    prices = entry_prices(
        action,
        want.entry_type,
        want.offset_ticks,
        want.stop_ticks,
        want.target_ticks,
        quote,
        instrument,
    )
    if prices is None:
        return Plan(outcome="refused", detail="price_collar: no quote to price the entry from")
    entry_price, stop, target_price = prices
    bracket = PlaceBracket(action, quantity, want.entry_type, entry_price, stop, target_price)
    return Plan((bracket,), "sent", entry=bracket)


def exit_actions(
    book: Book, close: int, quote: Quote, instrument: Instrument, through_ticks: int
) -> list[Action]:
    """Close ``close`` contracts: filled brackets' targets through the market, newest first;
    what they do not cover (and no exit on its way covers) as an exit order."""
    position = book.position
    action = Side.closing(position)
    price = None
    if quote.bid is not None and quote.ask is not None:
        price = (
            instrument.offset(quote.bid, -through_ticks)
            if position > 0
            else instrument.offset(quote.ask, through_ticks)
        )
    actions: list[Action] = []
    entries = [o for o in book.orders if o.role is Role.ENTRY and o.filled > 0]
    for parent in sorted(entries, key=lambda o: o.created, reverse=True):
        if close <= 0:
            break
        kids = book.children(parent.ref)
        held = parent.filled - sum(k.filled for k in kids)
        target = next((k for k in kids if k.role is Role.TARGET and k.live), None)
        if held <= 0 or target is None:
            continue
        if target.ref in book.exits_sent:
            close -= held  # already on its way out
            continue
        if price is None:
            continue
        actions.append(MoveTarget(target.ref, action, held, price))
        close -= held
    close -= sum(o.remaining for o in book.live if o.role is Role.EXIT)
    close -= abs(book.pending_exits)
    if close > 0:
        actions.append(PlaceExit(action, close, price))
    return actions


def plan_flip(
    flip: Flip,
    book: Book,
    quote: Quote,
    instrument: Instrument,
    *,
    exit_through_ticks: int,
    now: float,
    timeout_s: float,
) -> Plan:
    """What a waiting flip does now: keep waiting, give up, or go on with its intent."""
    if now - flip.since > timeout_s:
        return Plan(outcome="done", detail="flip expired before flat")
    target, position = flip.want.target, book.position
    against = _sign(target - position)
    busy = book.exiting() != 0 or any(
        o.role is Role.EXIT or (o.role is Role.ENTRY and o.remaining > 0 and o.sign != against)
        for o in book.live
    )
    if busy:
        return Plan(outcome="waiting", flip=flip)  # exits and cancels still on their way
    if (
        flip.exited
        and position != 0
        and (_sign(target) != _sign(position) or abs(target) < abs(position))
    ):
        # The exit ended without closing (rejected, cancelled): no retry loop here; the
        # strategy's next intent decides again. (Without an exit sent, e.g. an entry that
        # filled before its cancel arrived, the position is pursued like any other.)
        return Plan(outcome="done", detail="exit ended before flat")
    return plan_intent(
        flip.want, book, quote, instrument, exit_through_ticks=exit_through_ticks, now=now
    )
