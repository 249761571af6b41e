"""Orders at the broker: brackets out, broker messages in, the journal written first.

Sending: every order is written to the journal (status ``Journaled``) and committed *before*
it goes on the wire, with an orderRef unique to it (``<intent>-P``/``-S``/``-T``). A bracket is
parent (LMT or MKT) + target (LMT) + stop (STP) in one OCA group; only the last carries
``transmit=True``, so nothing reaches the exchange half-built. Order ids come from the gateway's
``nextValidId`` (``client.getReqId``). Changes are modifies (same order id), never
cancel-and-replace. Messages go straight through ``ib.client`` so that ib_async's local
guesses (it marks an order Cancelled on some errors) never stand in for the broker's word.

Receiving: the decoder's ``openOrder``, ``orderStatus``, ``completedOrder``, ``execDetails``
and ``commissionReport`` calls are tapped one by one, live and in reply to requests alike.
Executions are journaled by execId (a redelivered fill is recognised and counted once, a
correction replaces the version it corrects); an order's status is whatever the broker last
said. A fill that cannot be true (`fills.fill_problem`) and any message about an order the
journal does not know (`ownership`) is never counted: it is reported as an anomaly.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import structlog
from ib_async import IB, Contract
from ib_async import Order as IbOrder

from daemon.core.orders import ROLE_SUFFIX, Order, OrderType, Role, Side, Status
from daemon.flow.guards import UNSET_DOUBLE
from daemon.settings import ExecutionSettings
from daemon.trading.fills import FillFacts, exec_version, fill_problem
from daemon.trading.journal import ExecRow, FillOutcome, Journal, JournalError
from daemon.trading.ownership import Ownership, Verdict, intent_of

log = structlog.get_logger("daemon.trading.execution")

FORGET_AFTER_S = 300.0  # wall seconds a finished bracket stays in memory (the journal keeps it)
CANCEL_AGAIN_S = 5.0  # wall seconds before a cancel still unanswered is sent again
_CANCELLED = 202
# Answers to a cancel or modify that came too late: the order was already done (a fill or a
# cancel crossed our request on the wire). The order itself was never refused.
_TOO_LATE_CODES = frozenset({103, 104, 135, 161, 10147, 10148})
# Those of them that name the state the order is in at the broker ("Can't modify a filled
# order", "cannot be cancelled, state: Filled"): the broker has the order, whether or not its
# acknowledgement ever reached us, so they are never a refusal of the order itself.
_DONE_AT_BROKER_CODES = frozenset({104, 161, 10148})
_REJECT_CODES = frozenset(
    {103, 104, 105, 110, 135, 161, 200, 201, 203, 321, 382, 383, 10147, 10148}
)


@dataclass(frozen=True, slots=True)
class FillReport:
    """One new execution of ours (never a redelivered one)."""

    exec_id: str
    ref: str | None
    side: str  # BUY | SELL
    shares: int
    price: float
    time: float
    con_id: int
    corrects: str | None = None  # the execId this fill corrects (it replaced that one)


def _quantity(value: float | Decimal | None) -> int | None:
    """A whole quantity from the wire; None for IB's unset double or nonsense."""
    number = _price(value)
    if number is None or not math.isfinite(number) or number < 0:
        return None
    return int(number)


def _price(value: float | Decimal | None) -> float | None:
    if value is None:
        return None
    number = float(value)
    return None if number >= UNSET_DOUBLE or math.isnan(number) else number


class Executor:
    """Sends orders, follows what the broker says about them, and journals both."""

    def __init__(
        self,
        ib: IB,
        journal: Journal,
        settings: ExecutionSettings,
        *,
        on_fill: Callable[[FillReport], None],
        on_order: Callable[[Order, Status], None],
        on_reject: Callable[[Order | None, int, str], None],
        on_anomaly: Callable[[str, str, str], None],
        on_journal_error: Callable[[JournalError], None],
        ownership: Ownership,
        market_price: Callable[[], float | None],
        day_of: Callable[[float], str],
        wall: Callable[[], float] = time.time,
    ) -> None:
        self.ib = ib
        self.journal = journal
        self.settings = settings
        self.prefix = settings.order_ref_prefix + "-"
        self.contract: Contract | None = None
        self.account = ""
        self.orders: dict[str, Order] = {}
        self._live: dict[str, Order] = {}
        self._by_id: dict[tuple[int, int], str] = {}
        self._by_perm: dict[int, str] = {}
        self.seen_at_broker: set[str] = set()  # refs the broker reported since the last connect
        self._finished_since: dict[str, float] = {}  # bracket (parent ref) -> wall time
        self._cancel_sent: dict[str, float] = {}  # ref -> wall time of its last cancel
        self._cancel_asked: set[str] = set()  # refs we asked to cancel (until forgotten)
        self.messages_sent = 0
        self.new_fills = 0  # executions journaled for the first time
        self._on_fill = on_fill
        self._on_order = on_order
        self._on_reject = on_reject
        self._on_anomaly = on_anomaly
        self._on_journal_error = on_journal_error
        self.ownership = ownership
        self._market_price = market_price
        self._day_of = day_of
        self._wall = wall
        self._load()
        self._tap_wrapper()
        ib.errorEvent += self._on_error

    # --- state ---

    def _load(self) -> None:
        """Live orders from the journal, and the parents of live children (for exits)."""
        for row in self.journal.orders(live_only=True):
            self._index(row)
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
                self._index(rec)
        return rec

    def _index(self, rec: Order) -> None:
        self.orders[rec.ref] = rec
        self._by_id[(rec.client_id, rec.order_id)] = rec.ref
        if rec.perm_id:
            self._by_perm[rec.perm_id] = rec.ref
        if rec.live:
            self._live[rec.ref] = rec
        else:
            self._live.pop(rec.ref, None)

    def live(self) -> list[Order]:
        """Orders not done, oldest first."""
        return list(self._live.values())

    def forget_finished(self, keep_s: float = FORGET_AFTER_S) -> int:
        """Drop brackets finished for `keep_s` from memory; returns how many orders went.

        A bracket (a parent and its children, or a lone order) goes only as a whole, once none
        of it is live: a live child needs its parent (what it protects) and a parent its
        children (what is already closed). A later message about a forgotten order that names
        it (openOrder, execDetails) finds it again in the journal (`recall`).
        """
        now = self._wall()
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
        self._cancel_asked.discard(rec.ref)
        if self._by_id.get((rec.client_id, rec.order_id)) == rec.ref:
            del self._by_id[(rec.client_id, rec.order_id)]
        if rec.perm_id and self._by_perm.get(rec.perm_id) == rec.ref:
            del self._by_perm[rec.perm_id]

    def children(self, parent_ref: str) -> list[Order]:
        return [r for r in self.orders.values() if r.parent_ref == parent_ref]

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

    def _same_order(self, known_perm: int | None, client_id: int, perm_id: int) -> bool:
        """May a message naming one of our refs be about that order? Refs repeat across
        instances with one prefix (a misconfiguration, but it happens): the perm id decides
        when both are known; else the message must come from our client ids (0: a completed
        order, which carries none)."""
        if known_perm and perm_id:
            return known_perm == perm_id
        return client_id == 0 or client_id in self.ownership.client_ids

    def forget_session(self) -> None:
        """A new socket: what the broker reported must be heard again."""
        self.seen_at_broker.clear()

    # --- sending ---

    def _new_order(
        self,
        ref: str,
        role: Role,
        intent_ref: str | None,
        parent: Order | None,
        action: Side,
        quantity: int,
        order_type: OrderType,
        lmt_price: float | None,
        aux_price: float | None,
        tif: str,
        oca_group: str,
        now: float,
    ) -> Order:
        return Order(
            ref=ref,
            role=role,
            intent_ref=intent_ref,
            parent_ref=parent.ref if parent else None,
            client_id=self.ib.client.clientId,
            order_id=self.ib.client.getReqId(),
            action=action,
            quantity=quantity,
            order_type=order_type,
            lmt_price=lmt_price,
            aux_price=aux_price,
            tif=tif,
            oca_group=oca_group,
            created=now,
        )

    def send_bracket(
        self,
        intent_ref: str,
        action: Side,
        quantity: int,
        entry_type: OrderType,
        entry_price: float | None,
        stop_price: float,
        target_price: float,
        now: float,
    ) -> list[Order]:
        """Journal, then send, a bracket; returns [parent, target, stop]."""
        exit_action = action.opposite
        oca = f"{intent_ref}-oca"
        child_tif = self.settings.child_tif
        parent = self._new_order(
            f"{intent_ref}-{ROLE_SUFFIX[Role.ENTRY]}", Role.ENTRY, intent_ref, None, action,
            quantity, entry_type, entry_price, None, "DAY", "", now,
        )  # fmt: skip
        target = self._new_order(
            f"{intent_ref}-{ROLE_SUFFIX[Role.TARGET]}", Role.TARGET, intent_ref, parent,
            exit_action, quantity, OrderType.LMT, target_price, None, child_tif, oca, now,
        )  # fmt: skip
        stop = self._new_order(
            f"{intent_ref}-{ROLE_SUFFIX[Role.STOP]}", Role.STOP, intent_ref, parent,
            exit_action, quantity, OrderType.STP, None, stop_price, child_tif, oca, now,
        )  # fmt: skip
        bracket = [parent, target, stop]
        self._journal_and_send(bracket, now)
        return bracket

    def send_close(
        self,
        ref: str,
        role: Role,
        intent_ref: str | None,
        action: Side,
        quantity: int,
        lmt_price: float | None,
        now: float,
        *,
        journal: bool = True,
    ) -> Order:
        """Journal, then send, one closing order (MKT when ``lmt_price`` is None). Without
        ``journal`` it is sent unjournaled: only a flatten whose journal failed does that."""
        order_type = OrderType.MKT if lmt_price is None else OrderType.LMT
        rec = self._new_order(
            ref, role, intent_ref, None, action, quantity, order_type, lmt_price, None, "DAY", "",
            now,
        )  # fmt: skip
        self._journal_and_send([rec], now, journal=journal)
        return rec

    def _journal_and_send(self, records: list[Order], now: float, *, journal: bool = True) -> None:
        if journal:
            self.journal.record_orders(records)
        for rec in records:
            self._index(rec)
        last = len(records) - 1
        for i, rec in enumerate(records):
            self._place(rec, transmit=i == last)
        log.info(
            "orders_sent",
            refs=[r.ref for r in records],
            action=records[0].action.value,
            quantity=records[0].quantity,
            types=[r.order_type.value for r in records],
            prices=[r.price for r in records],
        )

    def _ib_order(self, rec: Order, *, transmit: bool = True) -> IbOrder:
        parent_id = 0
        if rec.parent_ref is not None and rec.parent_ref in self.orders:
            parent_id = self.orders[rec.parent_ref].order_id
        order = IbOrder(
            orderId=rec.order_id,
            clientId=rec.client_id,
            action=rec.action.value,
            totalQuantity=rec.quantity,
            orderType=rec.order_type.value,
            tif=rec.tif,
            orderRef=rec.ref,
            transmit=transmit,
            parentId=parent_id,
            outsideRth=True,
            account=self.account,
        )
        if rec.lmt_price is not None:
            order.lmtPrice = rec.lmt_price
        if rec.aux_price is not None:
            order.auxPrice = rec.aux_price
        if rec.oca_group:
            order.ocaGroup = rec.oca_group
            order.ocaType = 1
        return order

    def _place(self, rec: Order, *, transmit: bool = True) -> None:
        assert self.contract is not None, "no contract to trade"
        place: Callable[[int, Contract, IbOrder], None] = self.ib.client.placeOrder
        place(rec.order_id, self.contract, self._ib_order(rec, transmit=transmit))
        self.messages_sent += 1

    def modify(
        self, rec: Order, *, lmt_price: float | None = None, quantity: int | None = None
    ) -> None:
        """Change a working order in place (same order id): price or quantity."""
        if not rec.live:
            return  # done at the broker: a modify would only earn an error
        if not self._owned_by_this_connection(rec, "modify"):
            return
        if lmt_price is not None:
            rec.lmt_price = lmt_price
        if quantity is not None:
            rec.quantity = quantity
        self.journal.update_order(
            rec.ref, time=self._wall(), detail=f"modify lmt={rec.lmt_price} qty={rec.quantity}"
        )
        self._place(rec)
        log.info("order_modified", ref=rec.ref, lmt_price=rec.lmt_price, quantity=rec.quantity)

    def cancel(self, rec: Order, reason: str) -> bool:
        """Ask the broker to cancel `rec`; False when its cancel is still on the way.

        Until the broker answers, the order stays live here, and the checks that want it gone
        run every second: without this, a slow answer would bring a cancel a second, each
        after the first refused with 10147 (not found) and counted against the pacing.
        """
        now = self._wall()
        sent = self._cancel_sent.get(rec.ref)
        if sent is not None and now - sent < CANCEL_AGAIN_S:
            return False
        if not self._owned_by_this_connection(rec, "cancel"):
            return False
        self._cancel_sent[rec.ref] = now
        self._cancel_asked.add(rec.ref)
        cancel: Callable[[int, str], None] = self.ib.client.cancelOrder
        cancel(rec.order_id, "")
        self.messages_sent += 1
        log.info("order_cancel_sent", ref=rec.ref, reason=reason, again=sent is not None)
        return True

    def _owned_by_this_connection(self, rec: Order, what: str) -> bool:
        """IB lets a client change only its own orders: under a fallback client id the same
        order id would name another order (a modify would even place a new one)."""
        connected = self.ib.client.clientId
        if rec.client_id == connected:
            return True
        log.error(
            "order_of_another_client_id",
            ref=rec.ref,
            what=what,
            order_client_id=rec.client_id,
            connected_as=connected,
            action="not sent; it goes through once connected as that client id again, or "
            "cancel it in TWS",
            rate_limited=True,
            rate_key=f"other_client_{rec.ref}",
        )
        return False

    # --- receiving ---

    def _tap_wrapper(self) -> None:
        wrapper = self.ib.wrapper
        original_open = wrapper.openOrder
        original_status = wrapper.orderStatus
        original_completed = wrapper.completedOrder
        original_exec = wrapper.execDetails
        original_commission = wrapper.commissionReport

        def open_order(orderId: int, contract: Contract, order: IbOrder, orderState: Any) -> None:
            self._guard(self._open_order, order, orderState.status)
            original_open(orderId, contract, order, orderState)

        def order_status(
            orderId: int, status: str, filled: float, remaining: float, avgFillPrice: float,
            permId: int, parentId: int, lastFillPrice: float, clientId: int, whyHeld: str,
            mktCapPrice: float = 0.0,
        ) -> None:  # fmt: skip
            self._guard(self._order_status, clientId, orderId, permId, status, filled, avgFillPrice)
            original_status(
                orderId, status, filled, remaining, avgFillPrice, permId, parentId,
                lastFillPrice, clientId, whyHeld, mktCapPrice,
            )  # fmt: skip

        def completed_order(contract: Contract, order: IbOrder, orderState: Any) -> None:
            self._guard(self._open_order, order, orderState.status)
            original_completed(contract, order, orderState)

        def exec_details(reqId: int, contract: Contract, execution: Any) -> None:
            self._guard(self._execution, contract, execution)
            original_exec(reqId, contract, execution)

        def commission_report(report: Any) -> None:
            self._guard(self._commission, report)
            original_commission(report)

        # The decoder looks these up on the wrapper instance at every message.
        wrapper.openOrder = open_order  # type: ignore[method-assign]
        wrapper.orderStatus = order_status  # type: ignore[method-assign]
        wrapper.completedOrder = completed_order  # type: ignore[method-assign]
        wrapper.execDetails = exec_details  # type: ignore[method-assign]
        wrapper.commissionReport = commission_report  # type: ignore[method-assign,assignment]

    def _guard(self, handler: Callable[..., None], *args: Any) -> None:
        """A message we could not take in is a doubt about an order or a fill: it halts
        trading (an anomaly) instead of breaking the decoder or passing in silence."""
        try:
            handler(*args)
        except JournalError as exc:  # the message was not journaled: say so, halt
            self._on_journal_error(exc)
        except Exception as exc:
            log.error("broker_message_failed", handler=handler.__name__, error=repr(exc))
            detail = f"a broker message could not be taken in ({handler.__name__}): {exc!r}"
            self._on_anomaly("message_failed", f"{handler.__name__}:{exc!r}"[:200], detail)

    def _record_for(self, client_id: int, order_id: int, perm_id: int, ref: str) -> Order | None:
        key = self._by_id.get((client_id, order_id)) if order_id else None
        if key is None and perm_id:
            key = self._by_perm.get(perm_id)
        known = self.orders.get(ref) if key is None else None
        if known is not None and self._same_order(known.perm_id, client_id, perm_id):
            key = ref
        return None if key is None else self.orders.get(key)

    def _stranger(
        self, what: str, client_id: int, order_id: int, perm_id: int, ref: str
    ) -> Verdict:
        """The verdict on a message about an order neither memory nor the journal knows; an
        anomaly is reported (once per order: the caller's callback dedupes by key)."""
        verdict = self.ownership.verdict(client_id, ref)
        if verdict is Verdict.ANOMALY:
            detail = self.ownership.describe(what, client_id, order_id, perm_id, ref)
            key = f"perm:{perm_id}" if perm_id else f"order:{client_id}:{order_id}:{ref}"
            self._on_anomaly("unknown_order", key, detail)
        return verdict

    def _open_order(self, order: IbOrder, status: str) -> None:
        ref = order.orderRef or ""
        rec = self.find(order.clientId, order.orderId, order.permId, ref)
        if rec is None:
            what = f"an open or completed order ({status or 'no status'})"
            verdict = self._stranger(what, order.clientId, order.orderId, order.permId, ref)
            if verdict is not Verdict.PROVABLY_OURS:
                return
            rec = self._adopt(order, status)
        self.seen_at_broker.add(rec.ref)
        if order.permId and rec.perm_id != order.permId:
            rec.perm_id = order.permId
            self._by_perm[order.permId] = rec.ref
            self.journal.update_order(rec.ref, perm_id=order.permId, time=self._wall())
        ids = (order.clientId, order.orderId)
        ours = order.clientId in self.ownership.client_ids  # never rebound to another client
        if ours and order.orderId and (rec.client_id, rec.order_id) != ids:
            rec.client_id, rec.order_id = order.clientId, order.orderId
            self._by_id[(rec.client_id, rec.order_id)] = rec.ref
            self.journal.update_order(rec.ref, order_id=order.orderId, time=self._wall())
        if order.totalQuantity and order.totalQuantity == int(order.totalQuantity):
            rec.quantity = int(order.totalQuantity)
        said = _status(status, rec.ref)
        if said is not None:
            # A completed order (reqCompletedOrders at reconnect) carries its filled quantity:
            # fills made while we were away must count for the order, not only the position.
            done = _quantity(getattr(order, "filledQuantity", None))
            self._set_status(rec, said, max(rec.filled, done or 0), rec.avg_fill_price)

    def _adopt(self, order: IbOrder, status: str) -> Order:
        """An order of ours from an earlier life that the journal lost (its intent is there)."""
        ref = order.orderRef
        role = Role.ADOPTED
        intent_ref = None
        parsed = intent_of(ref)
        if parsed is not None:
            intent_ref, role = parsed
        parent_ref = None
        if order.parentId:
            parent_ref = self._by_id.get((order.clientId, order.parentId))
        rec = Order(
            ref=ref,
            role=role,
            intent_ref=intent_ref,
            parent_ref=parent_ref,
            client_id=order.clientId,
            order_id=order.orderId,
            action=Side(order.action),
            quantity=int(order.totalQuantity),
            order_type=OrderType(order.orderType),
            lmt_price=_price(order.lmtPrice),
            aux_price=_price(order.auxPrice),
            tif=order.tif or "DAY",
            oca_group=order.ocaGroup or "",
            perm_id=order.permId or None,
        )
        self.journal.record_orders([rec])
        self.journal.record_event(
            "adopt", self._wall(), ref=ref, perm_id=order.permId, status=status
        )
        self._index(rec)
        log.warning("order_adopted", ref=ref, perm_id=order.permId, status=status)
        return rec

    def _order_status(
        self, client_id: int, order_id: int, perm_id: int, status: str, filled: float, avg: float
    ) -> None:
        rec = self.find(client_id, order_id, perm_id, "")
        if rec is None:
            self._stranger(f"a status ({status})", client_id, order_id, perm_id, "")
            return
        self.seen_at_broker.add(rec.ref)
        if perm_id and rec.perm_id != perm_id:
            rec.perm_id = perm_id
            self._by_perm[perm_id] = rec.ref
            self.journal.update_order(rec.ref, perm_id=perm_id, time=self._wall())
        said = _status(status, rec.ref)
        if said is not None:
            self._set_status(rec, said, int(filled), _price(avg) if filled else None)

    def _set_status(self, rec: Order, status: Status, filled: int, avg: float | None) -> None:
        if status is rec.status and filled == rec.filled:
            return
        if not rec.may_become(status):  # a late message about an order already done, say
            log.info("order_status_ignored", ref=rec.ref, status=status, current=rec.status)
            return
        old = rec.move_to(status)
        if not rec.live:
            self._live.pop(rec.ref, None)
            self._cancel_sent.pop(rec.ref, None)
        rec.filled = max(rec.filled, min(filled, rec.quantity))
        if avg is not None:
            rec.avg_fill_price = avg
        self.journal.update_order(
            rec.ref,
            status=status,
            filled=rec.filled,
            remaining=rec.remaining,
            avg_fill_price=rec.avg_fill_price,
            time=self._wall(),
        )
        if old is not status:
            log.info(
                "order_status",
                ref=rec.ref,
                status=status.value,
                previous=old.value,
                filled=rec.filled,
            )
        self._on_order(rec, old)

    def _execution(self, contract: Contract, ex: Any) -> None:
        ref = ex.orderRef or ""
        rec = self.find(ex.clientId, ex.orderId, ex.permId, ref)
        if rec is None:
            what = f"an execution {ex.execId} ({ex.side} {ex.shares} @ {ex.price})"
            self._stranger(what, ex.clientId, ex.orderId, ex.permId, ref)
            return  # an order nobody journaled: its fills are never ours (see ownership)
        if self.journal.execution(ex.execId) is not None:  # redelivered: checked before
            self._count_cum_qty(rec, ex)
            return
        version = exec_version(ex.execId)
        earlier = None if version is None else self.journal.other_version(version)
        problem = fill_problem(
            FillFacts(
                shares=float(ex.shares),
                price=float(ex.price),
                cum_qty=float(ex.cumQty),
                avg_price=float(ex.avgPrice),
                order_quantity=self._order_quantity(rec),
                filled_before=self.journal.order_fills(
                    rec.ref, without=None if earlier is None else earlier.exec_id
                ),
                reference_price=rec.price or self._market_price(),
                band_pct=self.settings.fill_price_band_pct,
            )
        )
        if problem is not None:
            detail = f"execution {ex.execId} of order {rec.ref} ({ex.side}): {problem}"
            self._on_anomaly("bad_fill", f"fill:{ex.execId}", detail)
            return
        side = {"BOT": "BUY", "SLD": "SELL"}.get(ex.side, ex.side)
        shares = int(ex.shares)
        when = ex.time.timestamp() if hasattr(ex.time, "timestamp") else self._wall()
        con_id = contract.conId
        row = ExecRow(
            exec_id=ex.execId,
            order_ref=rec.ref,
            perm_id=ex.permId,
            order_id=ex.orderId,
            client_id=ex.clientId,
            time=when,
            day=self._day_of(when),
            con_id=con_id,
            account=ex.acctNumber,
            side=side,
            shares=shares,
            price=float(ex.price),
            cum_qty=int(ex.cumQty),
            avg_price=float(ex.avgPrice),
        )
        outcome, replaced = self.journal.record_fill(row)
        self._count_cum_qty(rec, ex)
        if outcome not in (FillOutcome.NEW, FillOutcome.CORRECTION):
            log.info("fill_superseded", ref=rec.ref, exec_id=ex.execId, outcome=outcome.value)
            return
        self.new_fills += outcome is FillOutcome.NEW
        corrects = None if replaced is None else replaced.exec_id
        log.info(
            "fill" if corrects is None else "fill_corrected",
            ref=rec.ref,
            exec_id=ex.execId,
            side=side,
            shares=shares,
            price=float(ex.price),
            corrects=corrects,
            was=None if replaced is None else f"{replaced.shares} @ {replaced.price:g}",
        )
        self._on_fill(
            FillReport(ex.execId, rec.ref, side, shares, float(ex.price), when, con_id, corrects)
        )

    def _order_quantity(self, rec: Order) -> int:
        """The most this order may fill: what was sent (a modify lowering it in memory may not
        have reached the broker when a fill crosses it)."""
        row = self.journal.order(rec.ref)
        return max(rec.quantity, row.quantity if row is not None else 0)

    def _count_cum_qty(self, rec: Order, ex: Any) -> None:
        """The order's own filled count, even when its status message came late."""
        cum_qty = _quantity(ex.cumQty)
        if cum_qty is not None and cum_qty > rec.filled:
            self._set_status(rec, rec.status, cum_qty, _price(ex.avgPrice))

    def _commission(self, report: Any) -> None:
        realized = _price(report.realizedPNL)
        commission = _price(report.commission)
        if commission is not None:
            self.journal.set_commission(report.execId, commission, realized)

    def _on_error(self, req_id: int, code: int, message: str, contract: Any = None) -> None:
        if req_id <= 0 or (code not in _REJECT_CODES and code != _CANCELLED):
            return
        ref = self._by_id.get((self.ib.client.clientId, req_id))
        rec = None if ref is None else self.orders.get(ref)
        if rec is None:
            return
        if code == _CANCELLED:
            # Asked for by us (the order or its parent), or not: an OCA sibling filled, or IB's
            # own doing (a DAY order at the close, margin). The order's status says the rest.
            asked = rec.ref in self._cancel_asked or rec.parent_ref in self._cancel_asked
            log.info("order_cancelled", ref=rec.ref, asked=asked, message=message)
            return
        if (rec.perm_id is not None and code in _TOO_LATE_CODES) or code in _DONE_AT_BROKER_CODES:
            # Acknowledged before (or the broker names its state), so this answered a modify or
            # cancel of it, not the order. What it became is for the broker's own word to say:
            # the position check (`upkeep`) asks again when our position and the broker's differ.
            log.info(
                "order_request_too_late",
                ref=rec.ref,
                code=code,
                message=message,
                acknowledged=rec.perm_id is not None,
            )
            self.journal.record_event(
                "too_late", self._wall(), ref=rec.ref, code=code, message=message
            )
            return
        log.warning("order_rejected", ref=rec.ref, code=code, message=message)
        self.journal.record_event("reject", self._wall(), ref=rec.ref, code=code, message=message)
        if rec.perm_id is None and rec.status in (Status.JOURNALED, Status.PENDING_SUBMIT):
            # Refused before the broker ever acknowledged it: the error is its final word. (An
            # acknowledged order that gets an error, e.g. a refused modify, keeps its status.)
            self._set_status(rec, Status.INACTIVE, rec.filled, rec.avg_fill_price)
        self._on_reject(rec, code, message)

    # --- reconcile support ---

    def abandon(self, records: Iterable[Order], why: str) -> None:
        """Journaled but never acknowledged, and unknown at the broker: they were never sent."""
        self._end(records, Status.ABANDONED, why)

    def lose(self, records: Iterable[Order], why: str) -> None:
        """Acknowledged once, unknown to the broker now: not working, whatever we last heard."""
        self._end(records, Status.LOST, why)

    def _end(self, records: Iterable[Order], status: Status, why: str) -> None:
        for rec in records:
            if not rec.may_become(status):
                log.error("order_end_refused", ref=rec.ref, status=rec.status, wanted=status)
                continue
            rec.move_to(status)
            self._live.pop(rec.ref, None)
            self._cancel_sent.pop(rec.ref, None)
            self.journal.update_order(rec.ref, status=status, time=self._wall(), detail=why)
            log.warning("order_ended", ref=rec.ref, status=status.value, reason=why)


def _status(text: str, ref: str) -> Status | None:
    """IB's status word as a `Status`, at the broker edge; an unknown word is logged, ignored."""
    if not text:
        return None
    status = Status.from_broker(text)
    if status is None:
        log.warning("order_status_unknown", ref=ref, status=text, rate_limited=True)
    return status
