"""The operator's commands, the loss limit's reaction, and the shutdown policy.

From the control channel: halt (entries not filled yet are cancelled; the brackets keep
protecting the position), resume (after a reconcile mismatch the broker's position is adopted,
after an alarm the broker is asked again first), flatten. The daily loss limit cancels entries
and, when configured, flattens. On SIGTERM the policy keeps the brackets working, cancels
entries, or flattens, within a budget, and says whether it was carried out and confirmed. A
flatten halts trading first, then hands over to the `Closer`; one runs at a time.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import structlog

from daemon.broker.connection import Connection
from daemon.core.orders import Order, Role
from daemon.settings import TradingSettings
from daemon.trading.alarms import Alarms
from daemon.trading.closing import Closer, FlattenResult
from daemon.trading.execution import Executor
from daemon.trading.instance import PrefixClaim
from daemon.trading.model import TradingState
from daemon.trading.risk import RiskManager
from daemon.trading.sync import BrokerSync
from daemon.trading.tasks import Background, Changes

log = structlog.get_logger("daemon.trading.operator")

__all__ = ["Operator"]


class Operator:
    """Halt / resume / flatten, the loss limit, and SIGTERM's policy (see the module docstring)."""

    def __init__(
        self,
        settings: TradingSettings,
        conn: Connection,
        risk: RiskManager,
        executor: Executor,
        closer: Closer,
        alarms: Alarms,
        sync: BrokerSync,
        claim: PrefixClaim,
        background: Background,
        changes: Changes,
        *,
        confirm_s: float,
        cancel: Callable[[Order, str], None],  # one order, counted against the message rate
        status: Callable[[], dict[str, Any]],
        record_event: Callable[..., None],
        wall: Callable[[], float],
    ) -> None:
        self.settings = settings
        self.conn = conn
        self.risk = risk
        self.executor = executor
        self.closer = closer
        self.alarms = alarms
        self.sync = sync
        self.claim = claim
        self.background = background
        self.changes = changes
        self.confirm_s = confirm_s
        self._cancel = cancel
        self._status = status
        self._event = record_event
        self._wall = wall
        self.last_flatten: dict[str, Any] | None = None
        self._flattening: asyncio.Task[FlattenResult] | None = None

    async def command(self, cmd: str, args: dict[str, Any]) -> dict[str, Any]:
        """The operator's halt / resume / flatten / status (from the control channel)."""
        reason = str(args.get("reason") or "operator")
        if cmd == "status":
            return {"ok": True, **self._status()}
        if cmd == "halt":
            self.risk.halt(f"operator: {reason}")
            n = await self.cancel_entries(f"halt: {reason}")
            return {
                "ok": True,
                "state": self.risk.state.value,
                "message": f"HALTED ({reason}); {n} entr{'y' if n == 1 else 'ies'} cancelled",
            }
        if cmd == "resume":
            return await self._resume(reason)
        if cmd == "flatten":
            if not self.conn.ready:
                return {"ok": False, "error": "not connected to the gateway; cannot flatten now"}
            result = await self.flatten(f"operator: {reason}")
            return {"ok": result.ok, "message": result.message, "state": self.risk.state.value}
        return {"ok": False, "error": f"unknown command {cmd!r}"}

    async def _resume(self, reason: str) -> dict[str, Any]:
        """Back to ACTIVE. After a reconcile mismatch the broker's position is accepted; after
        an alarm the broker is asked again first (a refused fill's true version, say, is then
        journaled), and a new mismatch halts again instead of resuming on a guess."""
        recheck = self.alarms.unresolved and self.conn.ready
        error = self.sync.accept_broker()
        if error is not None:
            return {"ok": False, "state": self.risk.state.value, "error": error}
        self.alarms.resumed()
        self.risk.resume(f"operator: {reason}")
        if recheck:
            await self.sync.recheck()
        if self.risk.state is not TradingState.ACTIVE:
            return {
                "ok": False,
                "state": self.risk.state.value,
                "error": f"halted again: {self.risk.reason}",
            }
        return {"ok": True, "state": self.risk.state.value, "message": f"ACTIVE ({reason})"}

    # --- cancels and the loss limit ---

    async def cancel_entries(self, reason: str) -> int:
        """Cancel every entry not filled yet; stops and targets stay."""
        n = 0
        for rec in self.executor.live():
            if rec.role is Role.ENTRY and rec.filled == 0 and self.conn.ready:
                self._cancel(rec, reason)
                n += 1
        return n

    def cancel_entries_soon(self, reason: str) -> None:
        """From synchronous code (an alarm, too many rejects)."""
        self.background.spawn(self.cancel_entries(reason))

    def watch_loss(self, net: float | None) -> None:
        """The day's net PnL (None: not known); at the loss limit, entries are cancelled and,
        when configured, the position flattened."""
        if self.risk.update_pnl(net):
            self.background.spawn(self._loss_limit())

    async def _loss_limit(self) -> None:
        await self.cancel_entries("daily loss limit")
        if self.risk.flatten_on_loss:
            await self.flatten("daily loss limit")

    # --- flatten ---

    async def flatten(self, reason: str, within: float | None = None) -> FlattenResult:
        """Halt (no strategy order may cross it), cancel every order of ours, wait for the
        broker to confirm, then close the position the broker reports (see `closing`); one
        flatten at a time."""
        if self._flattening is not None and not self._flattening.done():
            return await self._flattening
        if self.risk.state is not TradingState.HALTED:
            self.risk.halt(f"flatten: {reason}")
        self._event("flatten", reason=reason)
        log.warning("flatten", reason=reason)
        task = asyncio.ensure_future(self.closer.flatten(reason, within))
        self._flattening = task
        result = await task
        self.last_flatten = result.as_status(self._wall())
        self._event("flatten_result", ok=result.ok, message=result.message)
        return result

    @property
    def flattening(self) -> bool:
        return self._flattening is not None and not self._flattening.done()

    # --- shutdown ---

    async def shutdown(self, within: float = 12.0) -> bool:
        """SIGTERM: keep the brackets working (default), cancel entries, or flatten, within
        ``within`` seconds. False when the policy could not be carried out and confirmed (the
        exit code says so)."""
        try:
            return await self._shutdown(within)
        finally:
            self.claim.release()

    async def _shutdown(self, within: float) -> bool:
        policy = self.settings.on_shutdown
        self._event("shutdown", policy=policy)
        if not self.settings.enabled or policy == "keep":
            return True
        if not self.conn.ready:
            log.error(
                "shutdown_policy_not_run",
                policy=policy,
                reason="not connected to the gateway",
                action="the broker keeps whatever is working: check it in TWS",
            )
            return False
        if policy == "cancel_entries":
            asked = {r.ref for r in self.executor.live() if r.role is Role.ENTRY and not r.filled}
            await self.cancel_entries("shutdown")
            done = await self.changes.until(
                lambda: not any(r.ref in asked for r in self.executor.live()),
                min(within, self.confirm_s),
            )
            if not done:
                log.error("shutdown_cancels_unconfirmed", policy=policy)
            return done
        return (await self.flatten("shutdown", within)).ok
