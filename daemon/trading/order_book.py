"""The executor's memory of our orders: by ref, by ids, the live ones, and what we asked of them.

Loaded from the journal (live orders and the parents of live children); an order it no longer
holds is found again in the journal when a message names it (`find`, `recall`). A bracket (a
parent and its children, or a lone order) is forgotten only as a whole, a while after none of
it is live (`forget_finished`).
"""

from __future__ import annotations

from daemon.core.orders import Order
from daemon.trading.journal import Journal
from daemon.trading.ownership import Ownership

FORGET_AFTER_S = 300.0  # wall seconds a finished bracket stays in memory (the journal keeps it)


class OrderBook:
    """Our orders in memory (see the module docstring)."""

    def __init__(self, journal: Journal, ownership: Ownership) -> None:
        self.journal = journal
        self.ownership = ownership
        self.orders: dict[str, Order] = {}
        self._live: dict[str, Order] = {}
        self._by_id: dict[tuple[int, int], str] = {}
        self._by_perm: dict[int, str] = {}
        self.seen_at_broker: set[str] = set()  # refs the broker reported since the last connect
        self._finished_since: dict[str, float] = {}  # bracket (parent ref) -> wall time
        self._cancel_sent: dict[str, float] = {}  # ref -> wall time of its last cancel
        self.cancel_asked: set[str] = set()  # refs we asked to cancel (until forgotten)

    def load(self) -> None:
        """Live orders from the journal, and the parents of live children (for exits)."""
        for row in self.journal.orders(live_only=True):
            self.index(row)
        for rec in list(self.orders.values()):
            if rec.parent_ref is not None and rec.parent_ref not in self.orders:
                self.recall(rec.parent_ref)

    def recall(self, ref: str) -> Order | None:
        """An order of ours the journal has but memory does not (done before this process)."""
        rec = self.orders.get(ref)
        if rec is None:
            row = self.journal.order(ref)
            if row is not None:
                rec = row
                self.index(rec)
        return rec

    def index(self, rec: Order) -> None:
        self.orders[rec.ref] = rec
        self._by_id[(rec.client_id, rec.order_id)] = rec.ref
        if rec.perm_id:
            self._by_perm[rec.perm_id] = rec.ref
        if rec.live:
            self._live[rec.ref] = rec
        else:
            self.settle(rec)

    def live(self) -> list[Order]:
        """Orders not done, oldest first."""
        return list(self._live.values())

    def settle(self, rec: Order) -> None:
        """``rec`` is done: no longer live, no cancel of it outstanding."""
        self._live.pop(rec.ref, None)
        self._cancel_sent.pop(rec.ref, None)

    def bind_perm(self, rec: Order, perm_id: int) -> None:
        rec.perm_id = perm_id
        self._by_perm[perm_id] = rec.ref

    def bind_id(self, rec: Order, client_id: int, order_id: int) -> None:
        rec.client_id, rec.order_id = client_id, order_id
        self._by_id[(client_id, order_id)] = rec.ref

    def by_id(self, client_id: int, order_id: int) -> Order | None:
        ref = self._by_id.get((client_id, order_id))
        return None if ref is None else self.orders.get(ref)

    def parent_id(self, rec: Order) -> int:
        """The order id of ``rec``'s parent, when known (0: none)."""
        parent = None if rec.parent_ref is None else self.orders.get(rec.parent_ref)
        return 0 if parent is None else parent.order_id

    def children(self, parent_ref: str) -> list[Order]:
        return [r for r in self.orders.values() if r.parent_ref == parent_ref]

    # --- cancels asked ---

    def cancel_sent_at(self, ref: str) -> float | None:
        return self._cancel_sent.get(ref)

    def note_cancel(self, ref: str, now: float) -> None:
        self._cancel_sent[ref] = now
        self.cancel_asked.add(ref)

    # --- forgetting ---

    def forget_finished(self, now: float, keep_s: float = FORGET_AFTER_S) -> int:
        """Drop brackets finished for `keep_s` from memory; returns how many orders went.

        A bracket goes only as a whole, once none of it is live: a live child needs its parent
        (what it protects) and a parent its children (what is already closed). A later message
        about a forgotten order that names it (openOrder, execDetails) finds it again in the
        journal (`recall`).
        """
        families: dict[str, list[Order]] = {}
        for rec in self.orders.values():
            families.setdefault(rec.parent_ref or rec.ref, []).append(rec)
        working = {rec.parent_ref or rec.ref for rec in self._live.values()}
        self._finished_since = {
            family: self._finished_since.get(family, now)
            for family in families
            if family not in working
        }
        gone = 0
        for family, since in list(self._finished_since.items()):
            if now - since < keep_s:
                continue
            del self._finished_since[family]
            for rec in families[family]:
                self._unindex(rec)
                gone += 1
        return gone

    def _unindex(self, rec: Order) -> None:
        del self.orders[rec.ref]
        self.cancel_asked.discard(rec.ref)
        if self._by_id.get((rec.client_id, rec.order_id)) == rec.ref:
            del self._by_id[(rec.client_id, rec.order_id)]
        if rec.perm_id and self._by_perm.get(rec.perm_id) == rec.ref:
            del self._by_perm[rec.perm_id]

    def forget_session(self) -> None:
        """A new socket: what the broker reported must be heard again."""
        self.seen_at_broker.clear()

    # --- finding ---

    def find(self, client_id: int, order_id: int, perm_id: int, ref: str) -> Order | None:
        """An order of ours by its ids or ref, in memory or else in the journal."""
        rec = self._record_for(client_id, order_id, perm_id, ref)
        if rec is not None:
            return rec
        row = self.journal.order_by_perm(perm_id) if perm_id else None
        if row is None and ref:
            row = self.journal.order(ref)
            if row is not None and not self._same_order(row.perm_id, client_id, perm_id):
                row = None
        if row is None and order_id and client_id in self.ownership.client_ids:
            row = self.journal.order_by_id(client_id, order_id)
        return None if row is None else self.recall(row.ref)

    def _record_for(self, client_id: int, order_id: int, perm_id: int, ref: str) -> Order | None:
        key = self._by_id.get((client_id, order_id)) if order_id else None
        if key is None and perm_id:
            key = self._by_perm.get(perm_id)
        known = self.orders.get(ref) if key is None else None
        if known is not None and self._same_order(known.perm_id, client_id, perm_id):
            key = ref
        return None if key is None else self.orders.get(key)

    def _same_order(self, known_perm: int | None, client_id: int, perm_id: int) -> bool:
        """May a message naming one of our refs be about that order? Refs repeat across
        instances with one prefix (a misconfiguration, but it happens): the perm id decides
        when both are known; else the message must come from our client ids (0: a completed
        order, which carries none)."""
        if known_perm and perm_id:
            return known_perm == perm_id
        return client_id == 0 or client_id in self.ownership.client_ids
