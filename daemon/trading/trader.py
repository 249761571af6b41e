"""The trading loop: strategy intents through risk into brackets, fills into position and PnL.

`Trader` sits between the order flow and the broker. Market events pass through it into the
extractor; closed bars (and, for strategies that want them, accepted trades) go to the strategy;
an intent becomes, after the risk checks, cancels of entries it no longer wants, an exit (the
bracket's target moved through the market: a modify, and the stop stays until the OCA group
cancels it), or a new bracket. After every (re)connect the broker's state is reconciled before
any order is allowed; a mismatch halts trading and says what differs.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import Callable, Coroutine
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import structlog
from ib_async import IB

from daemon.broker import contracts
from daemon.broker.connection import Connection
from daemon.broker.marketdata import MarketData
from daemon.core.instrument import Instrument
from daemon.core.orders import Order, OrderType, Role, Side, Status
from daemon.core.planner import (
    Book,
    CancelOrder,
    Flip,
    MoveTarget,
    PlaceBracket,
    PlaceExit,
    Plan,
    Quote,
    Want,
    heading,
    plan_flip,
    plan_intent,
)
from daemon.flow.events import MarketEvent
from daemon.flow.extractor import FlowState, OrderFlow
from daemon.flow.features import Bar
from daemon.flow.sessions import SessionSchedule
from daemon.settings import Settings
from daemon.trading.alarms import Alarms
from daemon.trading.closing import BrokerPositions, Closer, FlattenResult
from daemon.trading.execution import Executor, FillReport
from daemon.trading.instance import PrefixClaim
from daemon.trading.journal import Journal, JournalError
from daemon.trading.ledger import DayLedger, Ledger
from daemon.trading.model import (
    EntryType,
    Intent,
    Refusal,
    StrategyView,
    TradeUpdate,
    TradingState,
    intent_problem,
)
from daemon.trading.ownership import Ownership
from daemon.trading.reconcile import reconcile
from daemon.trading.risk import OrderCheck, OrderKind, RiskContext, RiskManager
from daemon.trading.strategy import Strategy
from daemon.trading.strays import StrayWatch, stray_children

log = structlog.get_logger("daemon.trading.trader")

CME_ZONE = ZoneInfo("America/Chicago")
_ACCEPTED = frozenset({Status.PRE_SUBMITTED, Status.SUBMITTED, Status.FILLED})


def trading_day(schedule: SessionSchedule, t: float) -> str:
    """The CME trading day of market time ``t``: the date its Globex session ends on."""
    span = schedule.globex_at(t)
    end = span.end if span is not None else t
    return datetime.fromtimestamp(end, CME_ZONE).date().isoformat()


def _sign(x: int) -> int:
    return (x > 0) - (x < 0)


class Trader:
    """Strategy → risk → execution, the position and PnL, and the operator's commands."""

    def __init__(
        self,
        settings: Settings,
        conn: Connection,
        flow: OrderFlow,
        market: MarketData,
        schedule: SessionSchedule,
        journal: Journal,
        strategy: Strategy,
        *,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
    ) -> None:
        self.settings = settings
        self.enabled = settings.trading.enabled
        self.conn = conn
        self.ib = conn.ib
        self.flow = flow
        self.market = market
        self.schedule = schedule
        self.journal = journal
        self.strategy = strategy
        self.risk = RiskManager(settings.risk, clock=clock, on_state=self._on_state)
        self._wall = wall
        self.alarms = Alarms(self.risk, self._event, self._cancel_entries_soon, wall)
        self.executor = Executor(
            conn.ib,
            journal,
            settings.execution,
            on_fill=self._on_fill,
            on_order=self._on_order,
            on_reject=self._on_reject,
            on_anomaly=self.alarms.anomaly,
            on_journal_error=self.alarms.journal_failed,
            ownership=Ownership(
                settings.execution.order_ref_prefix,
                (settings.ib.client_id, *settings.ib.fallback_client_ids),
                lambda ref: journal.intent(ref) is not None,
            ),
            market_price=lambda: flow.features.last_price,
            day_of=lambda t: trading_day(schedule, t),
            wall=wall,
        )
        self.positions = BrokerPositions(conn.ib, lambda: self.conn.account or "")
        self.closer = Closer(
            self.executor,
            self.risk,
            self.positions,
            settings.execution.confirm_timeout_s,
            self._con_id,
            lambda: self.position,
            lambda: self.exiting() - self.closer.pending_exits,
            lambda: self._context(self.flow.features.clock or 0.0, None),
            self._journal_closing,
            self._wait,
        )
        self.last_flatten: dict[str, Any] | None = None
        self.claim = PrefixClaim(settings.execution.order_ref_prefix, settings.ib.host)
        self._disk_checked = wall()
        self.reconciled = False
        self.last_reconcile: dict[str, Any] | None = None
        self.mismatches: list[str] = []
        self.offsets: dict[int, int] = {}
        self.ledger = Ledger(self.instrument.multiplier)
        self.day_realized = 0.0
        self.day_commissions = 0.0
        self.day = ""
        # An intent waiting for exits or cancels: (intent, ref, since, whether an exit was sent)
        self._flip: tuple[Flip, str] | None = None  # a flip waiting, and its intent's ref
        self._trades_seen = 0
        self._roll_key: tuple[int, ...] | None = None
        self._roll_starts: list[float] = []
        self._journaled: dict[int, int] = {}  # con_id -> Σ journaled fills
        self._exits_sent: set[str] = set()  # targets moved through the market
        self._strays = StrayWatch(wall)
        self._fills_at_disconnect = 0
        self._volume_seen = 0.0
        self._changed = asyncio.Event()
        self._flattening: asyncio.Task[FlattenResult] | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._load_offsets()
        self.rebuild_pnl()
        conn.on_session(self._on_session)
        conn.on_disconnect(self._on_disconnect)

    # --- market input (called from the decoder: synchronous, fast) ---

    def on_event(self, ev: MarketEvent) -> None:
        """Every market event: into the extractor; accepted trades to a strategy that wants them."""
        flow = self.flow
        flow.on_event(ev)
        if flow.trades == self._trades_seen or self.alarms.strategy_error is not None:
            return
        try:
            wants = self.strategy.wants_trades
        except Exception as exc:
            self.alarms.strategy_failed(exc, "wants_trades")
            return
        if not wants:
            return
        count = flow.trades - self._trades_seen
        self._trades_seen = flow.trades
        volume = sum(flow.volume_by_method.values())
        size, self._volume_seen = volume - self._volume_seen, volume
        last = flow.features.last_price
        t = flow.last_trade_time
        if last is None or t is None:
            return
        update = TradeUpdate(time=t, price=last, size=size, trades=count)
        try:
            intent = self.strategy.on_trade(update, self.view(t, None))
        except Exception as exc:
            self.alarms.strategy_failed(exc, "on_trade")
            return
        if intent is not None:
            self._act(intent, t, None)

    def on_bar(self, bar: Bar) -> None:
        """A closed bar: the strategy decides with the full flow state."""
        if self.alarms.strategy_error is not None:
            return
        state = self.flow.state()
        try:
            intent = self.strategy.on_bar(bar, self.view(bar.end, state))
        except Exception as exc:
            self.alarms.strategy_failed(exc, "on_bar")
            return
        if intent is not None:
            self._act(intent, bar.end, state)

    def _act(self, intent: Intent, now: float, state: FlowState | None) -> None:
        """A strategy's intent, checked first; a journal that fails on the way halts trading."""
        problem = intent_problem(intent)
        if problem is not None:
            self.risk.refusals["invalid_intent"] += 1
            self.risk.last_refusals.append((now, "invalid_intent", problem))
            log.error(
                "intent_invalid",
                problem=problem,
                intent=repr(intent),
                rate_limited=True,
                rate_key="intent_invalid",
            )
            return
        try:
            self.handle_intent(intent, now, state)
        except JournalError as exc:
            self.alarms.journal_failed(exc)

    # --- what the strategy sees ---

    @property
    def position(self) -> int | None:
        """Our position in the front contract; None when it cannot be trusted."""
        if not self.reconciled or not self.conn.ready:
            return None
        return self._raw_position()

    def _raw_position(self) -> int:
        con_id = self._con_id()
        return self.ledger.position if con_id is None else self._position_of(con_id)

    def _position_of(self, con_id: int) -> int:
        journaled = self._journaled.get(con_id)
        if journaled is None:  # cached between fills: this is on every trade's path
            journaled = self._journaled[con_id] = self.journal.journal_position(con_id)
        return journaled + self.offsets.get(con_id, 0)

    @property
    def instrument(self) -> Instrument:
        """The traded contract (the broker's details once connected, the product's before)."""
        return self.market.instrument

    def _con_id(self) -> int | None:
        contract = self.market.contract
        return None if contract is None else contract.conId

    def book(self, position: int) -> Book:
        """What the planner sees: ``position`` and every order the executor knows."""
        return Book(
            position,
            list(self.executor.orders.values()),
            frozenset(self._exits_sent),
            self.closer.pending_exits,
        )

    def working_entries(self) -> int:
        return self.book(0).working_entries()

    def exiting(self) -> int:
        """Signed contracts that exits already sent will close (moved targets, exit orders, and
        exit orders still being sized from the broker's position)."""
        return self.book(0).exiting()

    def unprotected(self) -> int:
        """Contracts of the position no live stop at the broker would close (0 = all covered)."""
        position = self.position
        if not position:
            return 0
        closing = Side.closing(position)
        stops = sum(
            r.remaining for r in self.executor.live() if r.role is Role.STOP and r.action == closing
        )
        return max(0, abs(position) - stops)

    def view(self, t: float, state: FlowState | None) -> StrategyView:
        health = state.health if state is not None else self.flow.health
        return StrategyView(
            time=t,
            health=health,
            connected=self.conn.ready,
            trading_state=self.risk.state,
            position=self.position,
            working_entries=self.working_entries(),
            flow=state,
        )

    # --- intents ---

    def handle_intent(self, intent: Intent, now: float, state: FlowState | None) -> None:
        """Turn an intent into cancels, an exit or a bracket (`planner`); each order passes the
        risk checks on its way out."""
        if not self.enabled:
            return
        position = self.position
        if position is None:
            log.info("intent_ignored", reason="position not trusted", target=intent.target)
            return
        book = self.book(position)
        if intent.target == heading(book) and self._flip is None:
            return
        ref = self._journal_intent(intent, now)
        log.info("intent", ref=ref, target=intent.target, position=position, reason=intent.reason)
        self._flip = None
        plan = plan_intent(
            _want(intent),
            book,
            self._quote(),
            self.instrument,
            exit_through_ticks=self.settings.execution.exit_through_ticks,
            now=now,
        )
        self._carry_out(plan, ref, now, state)

    def _quote(self) -> Quote:
        bid, ask = self.flow.features.quote
        return Quote(bid, ask)

    def _carry_out(self, plan: Plan, ref: str, now: float, state: FlowState | None) -> None:
        """The plan's actions, each through the risk checks, then the intent's status."""
        ctx = self._context(now, state)
        for action in plan.actions:
            if isinstance(action, CancelOrder):
                rec = self.executor.orders.get(action.ref)
                if rec is not None:
                    self._cancel(rec, ctx, f"intent {ref} {action.reason}")
            elif isinstance(action, MoveTarget):
                self._move_target(action, ctx)
            elif isinstance(action, PlaceExit):
                release = self.closer.reserve_exit(action.action, action.quantity)
                exit_task = self.closer.send_exit(ref, action.action, action.quantity, action.price)
                self._spawn(exit_task).add_done_callback(release)
            elif not self._send_bracket(action, ref, ctx):
                return
        if plan.outcome == "waiting":
            assert plan.flip is not None
            self._flip = (plan.flip, ref)
        elif plan.outcome == "refused":
            rule, _, detail = plan.detail.partition(": ")
            self._refused(ref, Refusal(rule, detail))
        else:
            self.journal.set_intent_status(ref, plan.outcome, plan.detail)

    def _move_target(self, move: MoveTarget, ctx: RiskContext) -> None:
        target = self.executor.orders.get(move.ref)
        if target is None:
            return
        check = OrderCheck(OrderKind.MODIFY, move.action, move.quantity, move.price)
        if self.risk.check(check, ctx) is not None:
            return
        self.executor.modify(target, lmt_price=move.price)
        self._exits_sent.add(target.ref)
        self.risk.record_sent(1)

    def _send_bracket(self, bracket: PlaceBracket, ref: str, ctx: RiskContext) -> bool:
        """The entry bracket, if risk allows; False (the intent refused) when it does not."""
        check = OrderCheck(
            OrderKind.ENTRY,
            bracket.action,
            bracket.quantity,
            bracket.entry_price,
            messages=3,
            new_orders=3,
        )
        refusal = self.risk.check(check, ctx)
        if refusal is not None:
            self._refused(ref, refusal, counted=True)
            return False
        self.executor.send_bracket(
            ref,
            bracket.action,
            bracket.quantity,
            bracket.entry_type,
            bracket.entry_price,
            bracket.stop_price,
            bracket.target_price,
            ctx.now,
        )
        self.risk.record_sent(3)
        return True

    def _refused(self, ref: str, refusal: Refusal, *, counted: bool = False) -> None:
        if not counted:  # refused by the planner, not by risk.check: count it here
            self.risk.refusals[refusal.rule] += 1
        self.journal.set_intent_status(ref, "refused", f"{refusal.rule}: {refusal.detail}")
        self._event("refusal", ref=ref, rule=refusal.rule, detail=refusal.detail)

    def _journal_intent(self, intent: Intent, now: float, status: str = "new") -> str:
        """Give the intent the day's next ref and commit it; returns the ref."""
        self._roll_day(now)
        ref = self.journal.next_intent_ref(self.settings.execution.order_ref_prefix, self.day)
        self.journal.record_intent(
            ref,
            time=self._wall(),
            day=self.day,
            target=intent.target,
            entry=intent.entry.value,
            offset_ticks=intent.offset_ticks,
            stop_ticks=intent.stop_ticks,
            target_ticks=intent.target_ticks,
            reason=intent.reason,
            status=status,
        )
        return ref

    def _cancel(self, rec: Order, ctx: RiskContext | None, reason: str) -> None:
        if rec.status is Status.JOURNALED and rec.perm_id is None and not self.conn.ready:
            return
        if self.executor.cancel(rec, reason):
            self.risk.record_sent(1)

    def _context(self, now: float, state: FlowState | None) -> RiskContext:
        bid, ask = self.flow.features.quote
        span = self.schedule.globex_at(now)
        return RiskContext(
            now=now,
            position=self.position,
            working_entries=self.working_entries(),
            working_orders=sum(
                1 for r in self.executor.live() if r.status is not Status.JOURNALED or r.perm_id
            ),
            bid=bid,
            ask=ask,
            health=state.health if state is not None else self.flow.health,
            connection_ready=self.conn.ready,
            reconciled=self.reconciled,
            session_end=None if span is None else span.end,
            roll_day=self._roll_day_at(now),
            tick_size=self.instrument.tick_size,
        )

    def _roll_day_at(self, now: float) -> bool:
        if not self.settings.risk.no_entry_on_roll_day:
            return False
        details = self.market.details
        key = tuple(d.contract.conId if d.contract else 0 for d in details)
        if key != self._roll_key:  # roll times change only with the listed contracts
            self._roll_key = key
            roll_days = self.settings.instrument.roll_days_before_expiry
            self._roll_starts = []
            for cd in details:
                try:
                    self._roll_starts.append(contracts.roll_time(cd, roll_days).timestamp())
                except (ValueError, AttributeError):
                    continue
        day = timedelta(days=1).total_seconds()
        return any(start <= now < start + day for start in self._roll_starts)

    # --- broker events ---

    def _on_fill(self, fill: FillReport) -> None:
        self._journaled.clear()
        self.risk.record_fill()
        self.rebuild_pnl()
        self._changed.set()

    def _on_order(self, rec: Order, old: Status) -> None:
        if rec.status in _ACCEPTED and old in (Status.JOURNALED, Status.PENDING_SUBMIT):
            self.risk.record_accepted()
        if rec.role is Role.ENTRY and not rec.live and rec.intent_ref:
            self.journal.set_intent_status(rec.intent_ref, "done", f"entry {rec.status}")
        self._changed.set()

    def _on_reject(self, rec: Order | None, code: int, message: str) -> None:
        if rec is not None and rec.role in (Role.STOP, Role.TARGET):
            return  # a child follows its parent's fate; count the bracket once
        if rec is not None and rec.intent_ref:
            self.journal.set_intent_status(rec.intent_ref, "rejected", f"{code}: {message}")
        if self.risk.record_reject(code, message):
            self._spawn(self.cancel_entries("rejects"))

    def _on_state(self, old: TradingState, new: TradingState, reason: str) -> None:
        kind = {"HALTED": "halt", "REDUCING": "reduce", "ACTIVE": "resume"}[new.value]
        self._event(kind, previous=old.value, reason=reason)

    # --- (re)connect ---

    async def _on_session(self, ib: IB) -> None:
        self.reconciled = False
        self.executor.account = self.conn.account or ""
        self.executor.contract = self.market.contract
        self.claim.claim(self.conn.account or "", self.conn.status.port)  # or exit 78
        self._event("connect", client_id=ib.client.clientId, port=self.conn.status.port)
        await self._reconcile(ib)

    async def _reconcile(self, ib: IB) -> None:
        """The broker's state against the journal (see `reconcile`); a journal that cannot be
        written leaves the position untrusted: no orders until it is."""
        try:
            await self._reconcile_now(ib)
        except JournalError as exc:
            self.alarms.journal_failed(exc)

    async def _reconcile_now(self, ib: IB) -> None:
        result = await reconcile(
            ib,
            self.executor,
            self.journal,
            symbol=self.settings.instrument.symbol,
            account=self.conn.account or "",
            offsets=self.offsets,
            wait_s=self.settings.execution.reconcile_timeout_s,
            positions_of=self.positions,
            client_ids=self.executor.ownership.client_ids,
        )
        result.recovered_fills = self.executor.new_fills - self._fills_at_disconnect
        self._fills_at_disconnect = self.executor.new_fills
        self.rebuild_pnl()
        self.mismatches = result.mismatches
        self.last_reconcile = {
            "at": self._wall(),
            "ok": result.ok,
            "recovered_fills": result.recovered_fills,
            "abandoned": result.abandoned,
            "live_orders": result.live_orders,
            "mismatches": result.mismatches,
        }
        self._event("reconcile", **self.last_reconcile)
        con_id = self._con_id()
        if con_id is not None:
            self.journal.record_position(
                time=self._wall(),
                con_id=con_id,
                account=self.conn.account or "",
                broker_qty=result.broker_positions.get(con_id, 0),
                journal_qty=self._position_of(con_id),
                avg_cost=self.ledger.avg_price or 0.0,
                source="reconcile",
            )
        log.info(
            "reconciled",
            ok=result.ok,
            recovered_fills=result.recovered_fills,
            abandoned=len(result.abandoned),
            live_orders=result.live_orders,
            position=self._raw_position(),
        )
        if not result.ok:
            for line in result.mismatches:
                log.error("reconcile_mismatch", detail=line)
            self._event("mismatch", mismatches=result.mismatches)
            self.risk.halt("reconcile mismatch: " + "; ".join(result.mismatches))
            return
        self.reconciled = True
        self._changed.set()

    def _on_disconnect(self) -> None:
        self.reconciled = False
        self._fills_at_disconnect = self.executor.new_fills
        self.executor.forget_session()
        self.positions.forget()
        self._event("disconnect")

    # --- PnL ---

    def rebuild_pnl(self) -> None:
        """Position, average price and the day's PnL from the journal's executions."""
        self._journaled.clear()
        con_id = self._con_id()
        multiplier = self.instrument.multiplier
        executions = self.journal.executions(con_id=con_id)
        day = DayLedger.from_executions(executions, self.day, multiplier)
        self.ledger = day.ledger(con_id) if con_id is not None else Ledger(multiplier)
        self.day_realized = day.realized
        self.day_commissions = day.commissions

    def unrealized(self) -> float | None:
        return self.ledger.unrealized(self.flow.features.last_price)

    def day_net(self) -> float | None:
        unrealized = self.unrealized()
        if unrealized is None:
            return None
        return self.day_realized - self.day_commissions + unrealized

    def _roll_day(self, now: float) -> None:
        day = trading_day(self.schedule, now)
        if day != self.day:
            self.day = day
            self.risk.new_day(day)
            self.rebuild_pnl()

    def _load_offsets(self) -> None:
        for ev in self.journal.events("adopt_position"):
            detail = ev.data
            self.offsets[int(detail["con_id"])] = int(detail["offset"])

    def _event(self, kind: str, **detail: Any) -> None:
        """A journal event at wall time, and at the time of the last trade seen (`market_time`:
        where a report places it, also in a replay that runs faster than the wall clock). An
        event the journal cannot take never stops what it records: it raises the alarm."""
        market_time = self.flow.last_trade_time
        try:
            self.journal.record_event(kind, self._wall(), market_time=market_time, **detail)
        except JournalError as exc:
            self.alarms.journal_failed(exc)

    # --- periodic work (the supervisor's monitor calls it once a second) ---

    def tick(self, now: float) -> None:
        """Entry timeouts, strays, a pending flip, the daily loss limit, the day's PnL in the
        journal, the journal's disk check: each step on its own, the orders' safety first, so
        that a journal that fails (and halts trading) never stops the others."""
        self._roll_day(now)
        self.executor.forget_finished()
        if not self.enabled:
            return
        steps: list[Callable[[], None]] = [
            lambda: self._orders_tick(now),
            self._loss_tick,
            self._check_disk,
        ]
        for step in steps:
            try:
                step()
            except JournalError as exc:
                self.alarms.journal_failed(exc)

    def _orders_tick(self, now: float) -> None:
        if not self.conn.ready:
            return
        naked = self.unprotected()
        if naked and not self.exiting() and not self._flattening_now():
            log.error(
                "position_unprotected",
                contracts=naked,
                position=self.position,
                action="no live stop covers them at the broker: orderflowd flatten, or place one",
                rate_limited=True,
                rate_key="position_unprotected",
            )
        self._cancel_strays()
        timeout = self.settings.execution.entry_timeout_s
        for rec in self.executor.live():
            if rec.role is not Role.ENTRY or now - rec.created < timeout or rec.perm_id is None:
                continue
            if rec.filled == 0:
                self._cancel(rec, None, "entry timeout")
            elif rec.quantity > rec.filled:
                self.executor.modify(rec, quantity=rec.filled)  # keep what filled, protected
                self.risk.record_sent(1)
        self._resume_flip(now)

    def _loss_tick(self) -> None:
        net = self.day_net() if self.position is not None else None
        if self.risk.update_pnl(net):
            self._spawn(self._loss_limit())
        if net is not None:
            self.journal.upsert_daily_pnl(
                self.day,
                realized=self.day_realized,
                unrealized=self.unrealized() or 0.0,
                commissions=self.day_commissions,
                net=net,
                time=self._wall(),
            )

    def _check_disk(self) -> None:
        """Every `trading.journal_check_s`: is the journal on disk what this process wrote? (A
        damaged WAL shows only to a new connection, i.e. at the next start, otherwise.)"""
        wall = self._wall()
        if wall - self._disk_checked < self.settings.trading.journal_check_s:
            return
        self._disk_checked = wall
        try:
            problem = self.journal.check_on_disk()
        except sqlite3.Error as exc:
            problem = f"journal {self.journal.path} cannot be read back: {exc}"
        if problem is not None:
            self.alarms.journal_failed(JournalError(problem))

    def _cancel_strays(self) -> None:
        """Cancel stops and targets whose position is gone (see `strays`) — only while the
        broker's own word agrees that it is gone: a fill we refused or have not heard of yet
        must not cost the position its protection."""
        position = self.position
        if position is None or self.positions.last(self._con_id()) != position:
            return
        live = self.executor.live()
        for rec in self._strays.due(stray_children(live, self.executor.orders, position)):
            log.warning(
                "stray_order_cancelled",
                ref=rec.ref,
                role=rec.role.value,
                action=rec.action,
                remaining=rec.remaining,
                position=position,
            )
            self._event("stray_cancel", ref=rec.ref, role=rec.role.value, position=position)
            self._cancel(rec, None, "its position is gone")

    def _resume_flip(self, now: float) -> None:
        if self._flip is None:
            return
        flip, ref = self._flip
        timeout = self.settings.execution.entry_timeout_s
        position = self.position
        if position is None:
            if now - flip.since > timeout:
                self._flip = None
                self.journal.set_intent_status(ref, "done", "flip expired before flat")
            return
        plan = plan_flip(
            flip,
            self.book(position),
            self._quote(),
            self.instrument,
            exit_through_ticks=self.settings.execution.exit_through_ticks,
            now=now,
            timeout_s=timeout,
        )
        if plan.flip is flip:
            return  # exits and cancels still on their way
        self._flip = None
        if plan.detail == "exit ended before flat":
            log.warning("flip_abandoned", ref=ref, position=position, target=flip.want.target)
        self._carry_out(plan, ref, now, None)

    # --- operator and risk actions ---

    async def cancel_entries(self, reason: str) -> int:
        """Cancel every entry not filled yet; stops and targets stay."""
        n = 0
        for rec in self.executor.live():
            if rec.role is Role.ENTRY and rec.filled == 0 and self.conn.ready:
                self._cancel(rec, None, reason)
                n += 1
        return n

    async def _loss_limit(self) -> None:
        await self.cancel_entries("daily loss limit")
        if self.risk.flatten_on_loss:
            await self.flatten("daily loss limit")

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

    def _journal_closing(self, reason: str) -> str:
        """Journal a closing intent (target flat, at market); its ref."""
        closing = Intent(0, 0, 0, EntryType.MKT, reason=reason)
        return self._journal_intent(closing, self.flow.features.clock or self._wall(), "sent")

    async def _wait(self, done: Callable[[], bool], seconds: float) -> bool:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + seconds
        while not done():
            remaining = deadline - loop.time()
            if remaining <= 0:
                return False
            self._changed.clear()
            try:
                await asyncio.wait_for(self._changed.wait(), remaining)
            except TimeoutError:
                return done()
        return True

    async def command(self, cmd: str, args: dict[str, Any]) -> dict[str, Any]:
        """The operator's halt / resume / flatten / status (from the control channel)."""
        reason = str(args.get("reason") or "operator")
        if cmd == "status":
            return {"ok": True, **self.status()}
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
        if self.mismatches:
            con_id = self._con_id()
            if con_id is None or self.positions.last(con_id) is None:
                return {
                    "ok": False,
                    "state": self.risk.state.value,
                    "error": "the broker's position is not known (not connected): resume once "
                    "the daemon is connected again",
                }
            self._adopt_broker_position(con_id)
            # Orders the broker no longer knows are not working, whatever the journal says.
            gone = [r for r in self.executor.live() if r.ref not in self.executor.seen_at_broker]
            self.executor.lose(gone, "the broker has no such order (accepted by the operator)")
            self.mismatches = []
            self.reconciled = self.conn.ready
        self.alarms.resumed()
        self.risk.resume(f"operator: {reason}")
        if recheck:
            self.reconciled = False
            await self._reconcile(self.ib)
        if self.risk.state is not TradingState.ACTIVE:
            return {
                "ok": False,
                "state": self.risk.state.value,
                "error": f"halted again: {self.risk.reason}",
            }
        return {"ok": True, "state": self.risk.state.value, "message": f"ACTIVE ({reason})"}

    def _adopt_broker_position(self, con_id: int) -> None:
        """The operator accepted the broker's position after a mismatch: remember the offset."""
        broker = self.positions.last(con_id) or 0  # known: checked by the caller
        journal = self.journal.journal_position(con_id)
        offset = broker - journal
        self.offsets[con_id] = offset
        self._event(
            "adopt_position",
            con_id=con_id,
            broker=broker,
            journal=journal,
            offset=offset,
        )
        log.warning("position_adopted", con_id=con_id, broker=broker, journal=journal)

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
        policy = self.settings.trading.on_shutdown
        self._event("shutdown", policy=policy)
        if not self.enabled or policy == "keep":
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
            done = await self._wait(
                lambda: not any(r.ref in asked for r in self.executor.live()),
                min(within, self.settings.execution.confirm_timeout_s),
            )
            if not done:
                log.error("shutdown_cancels_unconfirmed", policy=policy)
            return done
        return (await self.flatten("shutdown", within)).ok

    def _flattening_now(self) -> bool:
        return self._flattening is not None and not self._flattening.done()

    def _cancel_entries_soon(self) -> None:
        self._spawn(self.cancel_entries("alarm"))

    def _spawn(self, coro: Coroutine[Any, Any, Any]) -> asyncio.Task[Any]:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    # --- status ---

    def status(self) -> dict[str, Any]:
        risk = self.risk.summary()
        trusted = self.position is not None  # else PnL on an untrusted position: not shown
        unrealized = self.unrealized() if trusted else None
        net = self.day_net() if trusted else None
        return {
            "enabled": self.enabled,
            "state": self.risk.state.value if self.enabled else "DISABLED",
            "reason": self.risk.reason,
            "position": self.position,
            "avg_price": self.ledger.avg_price,
            "realized_pnl": round(self.day_realized, 2),
            "unrealized_pnl": None if unrealized is None else round(unrealized, 2),
            "commissions": round(self.day_commissions, 2),
            "net_pnl": None if net is None else round(net, 2),
            "working_orders": [r.as_status() for r in self.executor.live()],
            "refusals": risk.get("refusals", {}),
            "last_refusals": risk.get("last_refusals", []),
            "reconciled": self.reconciled,
            "last_reconcile": self.last_reconcile,
            "unprotected": self.unprotected(),
            "mismatches": self.mismatches,
            "account_position": self.positions.last(self._con_id()),
            "last_flatten": self.last_flatten,
            **self.alarms.as_status(),
            "day": self.day,
        }


def _want(intent: Intent) -> Want:
    return Want(
        intent.target,
        OrderType(intent.entry.value),
        intent.offset_ticks,
        intent.stop_ticks,
        intent.target_ticks,
    )
