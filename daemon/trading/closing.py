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
from ib_async import IB

from daemon.trading.execution import Executor
from daemon.trading.journal import JournalError
from daemon.trading.orders import JOURNALED, Role
from daemon.trading.risk import OrderCheck, OrderKind, RiskContext, RiskManager

log = structlog.get_logger("daemon.trading.closing")

__all__ = ["BrokerPositions", "Closer", "FlattenResult"]


class BrokerPositions:
    """The broker's positions, asked again (one request at a time: ib_async keys the request
    by name, so two at once would leave one unanswered)."""

    def __init__(self, ib: IB, account: Callable[[], str]) -> None:
        self.ib = ib
        self._account = account
        self._lock = asyncio.Lock()

    async def request(self, seconds: float) -> list[Any] | None:
        """Every position of the login, fresh from the broker; None when it did not answer."""
        async with self._lock:
            try:
                positions: list[Any] = await asyncio.wait_for(self.ib.reqPositionsAsync(), seconds)
            except (TimeoutError, ConnectionError) as exc:
                log.warning("positions_unanswered", seconds=seconds, error=type(exc).__name__)
                return None
        return positions

    async def read(self, con_id: int, seconds: float) -> int | None:
        """Our account's position in ``con_id``, fresh from the broker; None: no answer."""
        positions = await self.request(seconds)
        return None if positions is None else self._sum(positions, con_id)

    def last(self, con_id: int | None) -> int | None:
        """The account's position in ``con_id`` as last pushed by the broker (no request)."""
        if con_id is None or not self.ib.isConnected():
            return None
        return self._sum(self.ib.positions(), con_id)

    def _sum(self, positions: list[Any], con_id: int) -> int:
        account = self._account()
        return sum(
            int(p.position)
            for p in positions
            if p.contract.conId == con_id and (not account or p.account == account)
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
    context: Callable[[], RiskContext]
    journal_intent: Callable[[str], str]  # reason -> a journaled closing intent's ref
    wait: Callable[[Callable[[], bool], float], Awaitable[bool]]
    pending_exits: int = 0  # contracts exit orders being sized will close (+ closes a long)

    # --- flatten ---

    async def flatten(self, reason: str) -> FlattenResult:
        """Cancel every order of ours, wait for the broker to confirm, re-read its position,
        close it at market, and confirm flat."""
        for rec in self.executor.live():
            sent = rec.perm_id is not None or rec.status != JOURNALED
            if sent and self.executor.cancel(rec, f"flatten: {reason}"):
                self.risk.record_sent(1)
        if not await self.wait(lambda: not self.executor.live(), self.confirm_s):
            still = ", ".join(r.ref for r in self.executor.live())
            return self._failed(
                reason,
                f"cancels not confirmed after {self.confirm_s:g} s ({still} still working); "
                "no closing order sent",
                None,
            )
        con_id = self.con_id()
        if con_id is None:
            return self._failed(reason, "no contract known; no closing order sent", None)
        broker = await self.positions.read(con_id, self.confirm_s)
        if broker is None:
            return self._failed(
                reason, "the broker's position could not be re-read; no closing order sent", None
            )
        if broker:
            refusal = self._send_flatten(reason, broker)
            if refusal is not None:
                return self._failed(reason, refusal, broker)
            await self.wait(lambda: not self.executor.live(), self.confirm_s)
            broker = await self.positions.read(con_id, self.confirm_s)
        working = len(self.executor.live())
        if broker == 0 and not working:
            log.warning("flatten_confirmed", reason=reason)
            return FlattenResult(True, f"flatten ({reason}): flat, nothing working", 0)
        shown = "unknown" if broker is None else f"{broker:+d}"
        return self._failed(
            reason, f"not confirmed flat: broker position {shown}, {working} working", broker
        )

    def _send_flatten(self, reason: str, broker: int) -> str | None:
        """Send the closing market order for ``broker`` contracts; the refusal, if any."""
        action = "SELL" if broker > 0 else "BUY"
        ctx = dataclasses.replace(self.context(), position=broker, reconciled=True)
        refusal = self.risk.check(OrderCheck(OrderKind.FLATTEN, action, abs(broker), None), ctx)
        if refusal is not None:
            return f"closing order refused by {refusal.rule}: {refusal.detail}"
        try:
            ref = self.journal_intent(f"flatten: {reason}")
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
                f"{ref}-F", Role.FLATTEN, None, action, abs(broker), None, ctx.now, journal=False
            )
        else:
            self.executor.send_close(
                f"{ref}-F", Role.FLATTEN, ref, action, abs(broker), None, ctx.now
            )
        self.risk.record_sent(1)
        return None

    def _failed(self, reason: str, why: str, position: int | None) -> FlattenResult:
        log.error("flatten_unconfirmed", reason=reason, detail=why, position=position)
        return FlattenResult(False, f"flatten ({reason}): {why}", position)

    # --- exit orders ---

    async def send_exit(self, ref: str, action: str, quantity: int, price: float | None) -> None:
        """An exit order for at most ``quantity`` contracts, never more than the broker holds
        in the direction it closes (re-read first)."""
        signed = quantity if action == "SELL" else -quantity  # as Trader.exiting() counts
        self.pending_exits += signed
        try:
            con_id = self.con_id()
            broker = None if con_id is None else await self.positions.read(con_id, self.confirm_s)
            if broker is None:
                log.warning("exit_not_sent", ref=ref, reason="broker position not re-read")
                return
            holds = broker if action == "SELL" else -broker  # what this order can close
            size = min(quantity, max(0, holds))
            if size <= 0:
                log.warning("exit_not_sent", ref=ref, reason="nothing to close", broker=broker)
                return
            ctx = self.context()
            check = OrderCheck(OrderKind.EXIT, action, size, price, new_orders=1)
            refusal = self.risk.check(check, ctx)
            if refusal is not None:
                log.warning("exit_refused", ref=ref, rule=refusal.rule, detail=refusal.detail)
                return
            self.executor.send_close(f"{ref}-X", Role.EXIT, ref, action, size, price, ctx.now)
            self.risk.record_sent(1)
        finally:
            self.pending_exits -= signed
