"""Closing a position: sized from the broker's confirmed position, never from a local sum.

Every closing order (a strategy's exit order, an operator's or the loss limit's flatten, the
flatten on SIGTERM) is sized from the position the broker reports when asked again just before
the send, and only sent once the cancels it depends on are confirmed. A flatten that cannot be
confirmed — cancels unanswered, the position not re-read, the closing fill not seen — says so,
and sends nothing it cannot size.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import structlog

from daemon.broker.ib.client import IbClient
from daemon.core.gateway import Position
from daemon.core.orders import Order, Role, Side, Status
from daemon.trading.execution import Executor
from daemon.trading.journal import JournalError
from daemon.trading.risk import OrderCheck, OrderKind, RiskContext, RiskManager

log = structlog.get_logger("daemon.trading.closing")

__all__ = ["BrokerPositions", "Closer", "FlattenResult"]


class BrokerPositions:
    """The broker's positions, asked again: one request at a time, and never while an earlier
    one is unanswered (the client library keys the request by name: a late answer would
    otherwise complete the next request with old positions)."""

    def __init__(self, client: IbClient, account: Callable[[], str]) -> None:
        self.client = client
        self._account = account
        self._lock = asyncio.Lock()
        self._unanswered: asyncio.Future[list[Position]] | None = None

    async def request(self, seconds: float) -> list[Position] | None:
        """Every position of the login, fresh from the broker, the last word per account and
        contract (updates pushed during the request are in the answer too); None when the
        broker did not answer within ``seconds``."""
        if not self.client.connected:
            return None
        async with self._lock:
            if self.unanswered:
                log.warning("positions_unanswered", reason="an earlier request is unanswered")
                return None
            answer = asyncio.ensure_future(self.client.positions())
            try:
                positions = await asyncio.wait_for(asyncio.shield(answer), seconds)
            except (TimeoutError, ConnectionError) as exc:
                self._unanswered = answer
                answer.add_done_callback(lambda f: f.cancelled() or f.exception())
                log.warning("positions_unanswered", seconds=seconds, error=type(exc).__name__)
                return None
        latest: dict[tuple[str, int], Position] = {}
        for p in positions:
            latest[(p.account, p.con_id)] = p
        return list(latest.values())

    @property
    def unanswered(self) -> bool:
        """An earlier request still waits for its answer: no new one goes out until it comes."""
        return self._unanswered is not None and not self._unanswered.done()

    def forget(self) -> None:
        """A new socket: an unanswered request of the old one will never be answered."""
        self._unanswered = None

    async def read(self, con_id: int, seconds: float) -> int | None:
        """Our account's position in ``con_id``, fresh from the broker; None: no answer."""
        positions = await self.request(seconds)
        return None if positions is None else self._sum(positions, con_id)

    def last(self, con_id: int | None) -> int | None:
        """The account's position in ``con_id`` as last pushed by the broker (no request)."""
        if con_id is None or not self.client.connected:
            return None
        return self._sum(self.client.last_positions(), con_id)

    def _sum(self, positions: list[Position], con_id: int) -> int:
        account = self._account()
        return sum(
            int(p.quantity)
            for p in positions
            if p.con_id == con_id and (not account or p.account == account)
        )


@dataclass(frozen=True, slots=True)
class FlattenResult:
    """How a flatten ended; ``ok`` only when the broker confirmed flat with nothing working."""

    ok: bool
    message: str
    position: int | None  # the broker's position at the end; None = unknown

    def as_status(self, at: float) -> dict[str, Any]:
        return {"at": at, **dataclasses.asdict(self)}


@dataclass
class Closer:
    """Flattens and sends exit orders for the trader (see the module docstring)."""

    executor: Executor
    risk: RiskManager
    positions: BrokerPositions
    confirm_s: float
    con_id: Callable[[], int | None]
    own_position: Callable[[], int | None]  # this instance's position when trusted
    in_flight: Callable[[], int]  # contracts working closes will close (+ closes a long)
    context: Callable[[], RiskContext]
    journal_intent: Callable[[str], str]  # reason -> a journaled closing intent's ref
    wait: Callable[[Callable[[], bool], float], Awaitable[bool]]
    # this instance's positions in contracts other than the one traded now (by conId)
    held_elsewhere: Callable[[], dict[int, int]] = dict
    pending_exits: int = 0  # contracts exit orders being sized will close (+ closes a long)

    # --- flatten ---

    async def flatten(self, reason: str, within: float | None = None) -> FlattenResult:
        """Cancel every order of ours, wait for the broker to confirm, then in the contract
        traded now and in any other this instance holds (a month rolled out of with
        ``keep``): re-read the broker's position, close ours at market, and confirm; all
        within ``within`` seconds (default: four confirmations' worth)."""
        left = self._budget(within)
        for rec in self.executor.live():
            self._cancel(rec, f"flatten: {reason}")
        if not await self.wait(lambda: not self.executor.live(), left()):
            still = ", ".join(r.ref for r in self.executor.live())
            return self._failed(
                reason, f"cancels not confirmed ({still} still working); no closing order sent"
            )
        front = self.con_id()
        if front is None:
            return self._failed(reason, "no contract known; no closing order sent")
        result = await self._close(front, self.own_position(), reason, left)
        for con_id, own in self.held_elsewhere().items():
            other = await self._close(con_id, own, reason, left, front=False)
            message = f"{result.message}; conId {con_id}: {other.message}"
            result = FlattenResult(result.ok and other.ok, message, result.position)
        return result

    async def close_contract(
        self, con_id: int, own: int, reason: str, within: float | None = None
    ) -> FlattenResult:
        """Cancel our orders in ``con_id`` (a month rolled out of), then close this
        instance's ``own`` position there, sized and confirmed as a flatten is."""
        left = self._budget(within)
        mine = [r for r in self.executor.live() if r.con_id == con_id]
        for rec in mine:
            self._cancel(rec, f"close: {reason}")
        if not await self.wait(lambda: not any(r.live for r in mine), left()):
            still = ", ".join(r.ref for r in mine if r.live)
            return self._failed(
                reason, f"cancels not confirmed ({still} still working); no closing order sent"
            )
        return await self._close(con_id, own, reason, left, front=False)

    def _budget(self, within: float | None) -> Callable[[], float]:
        """Seconds left for the next wait: at most a confirmation's worth, and never past the
        deadline ``within`` from now (default: four confirmations)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + (4 * self.confirm_s if within is None else within)
        return lambda: max(0.0, min(self.confirm_s, deadline - loop.time()))

    def _cancel(self, rec: Order, why: str) -> None:
        sent = rec.perm_id is not None or rec.status is not Status.JOURNALED
        if sent and self.executor.cancel(rec, why):
            self.risk.record_sent(1)

    async def _close(
        self,
        con_id: int,
        own: int | None,
        reason: str,
        left: Callable[[], float],
        *,
        front: bool = True,
    ) -> FlattenResult:
        """Close ``own`` (None: not trusted, the broker's word stands) in ``con_id``, no more
        than the broker holds there, and confirm."""
        broker = await self.positions.read(con_id, left())
        if broker is None:
            return self._failed(
                reason, "the broker's position could not be re-read; no closing order sent"
            )
        close, why = _flatten_size(broker, own)
        if why:
            return self._failed(reason, why, broker)
        if close:
            refusal = self._send_flatten(reason, close, 0 if front else con_id)
            if refusal is not None:
                return self._failed(reason, refusal, broker)
            await self.wait(lambda: not self._working_in(con_id, front), left())
        after = await self.positions.read(con_id, left()) if close else broker
        working = len(self._working_in(con_id, front))
        if after is not None and after == broker - close and not working:
            others = f"; the account's other {after:+d} is not this instance's" if after else ""
            log.warning(
                "flatten_confirmed",
                reason=reason,
                closed=close,
                account_position=after,
                con_id=con_id,
            )
            return FlattenResult(True, f"flatten ({reason}): flat, nothing working{others}", after)
        shown = "unknown" if after is None else f"{after:+d}"
        return self._failed(
            reason, f"not confirmed flat: broker position {shown}, {working} working", after
        )

    def _working_in(self, con_id: int, front: bool) -> list[Order]:
        """Our live orders in ``con_id`` (``front``: the contract traded now, where an order
        whose contract is not known counts too)."""
        if front:
            return self.executor.live_here()
        return [r for r in self.executor.live() if r.con_id == con_id]

    def _send_flatten(self, reason: str, close: int, con_id: int = 0) -> str | None:
        """Send the market order closing ``close`` (+ sells) in ``con_id`` (0: the contract
        traded now); the refusal, if any."""
        action = Side.closing(close)
        ctx = dataclasses.replace(self.context(), position=close, reconciled=True)
        refusal = self.risk.check(OrderCheck(OrderKind.FLATTEN, action, abs(close), None), ctx)
        if refusal is not None:
            return f"closing order refused by {refusal.rule}: {refusal.detail}"
        try:
            ref = self.journal_intent(f"flatten: {reason}")
            self.executor.send_close(
                f"{ref}-F", Role.FLATTEN, ref, action, abs(close), None, ctx.now, con_id=con_id
            )
        except JournalError as exc:
            # Closing comes first: send it unjournaled, and say so (the next start reports
            # the order as unknown, for a person to compare with the broker).
            ref = f"{self.executor.prefix}flatten-{int(ctx.now)}"
            log.error(
                "flatten_not_journaled",
                ref=ref,
                error=str(exc),
                action="the closing order goes out without a journal row",
            )
            self.executor.send_close(
                f"{ref}-F", Role.FLATTEN, None, action, abs(close), None, ctx.now,
                journal=False, con_id=con_id,
            )  # fmt: skip
        self.risk.record_sent(1)
        return None

    def _failed(self, reason: str, why: str, position: int | None = None) -> FlattenResult:
        log.error("flatten_unconfirmed", reason=reason, detail=why, position=position)
        return FlattenResult(False, f"flatten ({reason}): {why}", position)

    # --- exit orders ---

    def reserve_exit(self, action: Side, quantity: int) -> Callable[[object], None]:
        """Count an exit as on its way from now (before its task first runs: a second intent
        in the same decoder pass must see it); the callback releases it."""
        signed = -action.sign * quantity  # as Dispatcher.exiting() counts: + closes a long
        self.pending_exits += signed

        def release(_: object) -> None:
            self.pending_exits -= signed

        return release

    async def send_exit(self, ref: str, action: Side, quantity: int, price: float | None) -> None:
        """An exit order for at most ``quantity`` contracts: never more than the broker holds
        in the direction it closes (re-read first), less what working closes already close."""
        con_id = self.con_id()
        broker = None if con_id is None else await self.positions.read(con_id, self.confirm_s)
        if broker is None:
            log.warning("exit_not_sent", ref=ref, reason="broker position not re-read")
            return
        holds = -action.sign * broker  # what this order can close
        others = -action.sign * self.in_flight()
        size = min(quantity, max(0, holds - others))
        if size <= 0:
            log.warning(
                "exit_not_sent", ref=ref, reason="nothing left to close", broker=broker,
                closing=others,
            )  # fmt: skip
            return
        ctx = self.context()
        check = OrderCheck(OrderKind.EXIT, action, size, price, new_orders=1)
        refusal = self.risk.check(check, ctx)
        if refusal is not None:
            log.warning("exit_refused", ref=ref, rule=refusal.rule, detail=refusal.detail)
            return
        self.executor.send_close(f"{ref}-X", Role.EXIT, ref, action, size, price, ctx.now)
        self.risk.record_sent(1)


def _flatten_size(broker: int, own: int | None) -> tuple[int, str]:
    """Signed contracts to close (+ sells a long) of this instance's ``own`` position (None:
    not trusted, the broker's word stands) and, when nothing may be sent, why."""
    ours = broker if own is None else own
    if ours == 0:
        return 0, ""
    if broker == 0 or (broker > 0) != (ours > 0):
        return 0, (
            f"the broker holds {broker:+d} and this instance {ours:+d}: nothing of ours "
            "to close there; no closing order sent"
        )
    size = min(abs(ours), abs(broker))
    return (size if broker > 0 else -size), ""
