"""The position at the roll: kept, closed, or carried into the front month (`instrument.on_roll`).

When the front month changes (`MarketData` moves to the next expiry at its roll time), new
orders go to the new month and those already sent keep their own. What this instance holds in
the month rolled out of is then, by policy: ``keep`` — left at the broker with its bracket
working (the start of the day warns about it); ``close`` — its orders there cancelled and the
position closed at market, sized from the broker's position and confirmed
(`Closer.close_contract`); ``roll`` — closed so, then the same signed position opened in the
front month at market with a bracket at the stop and target distances of the intent that
opened it.

The trigger is the state, not the moment: whenever the position is trusted and this instance
holds a position or working orders in a month other than the front one, an operation starts.
So a daemon started after the roll time, or killed before it journaled anything, still does
it. One operation is journaled as ``roll_started`` (the month, the position to carry, the
bracket), ``roll_closed``, ``roll_opening`` (the intent's ref, before anything is sent), then
``roll_done`` or ``roll_failed``. After a ``kill -9`` the operation still open is carried on
from the start: the close is sized from the broker again (nothing is closed twice) and the
opening is an absolute target (a position already opened is not opened again). While it
runs, the strategy's intents wait; a step that fails raises an alarm (trading halts) and says
what is left where.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any, Literal

import structlog

from daemon.trading.alarms import Alarms
from daemon.trading.closing import Closer
from daemon.trading.execution import Executor
from daemon.trading.intents import Intents
from daemon.trading.journal import Journal
from daemon.trading.sync import BrokerSync

log = structlog.get_logger("daemon.trading.roll")

__all__ = ["RollOp", "RollPolicy", "Roller"]

RollPolicy = Literal["keep", "close", "roll"]
_ENDED = ("roll_done", "roll_failed")
OPEN_WAIT_S = 300.0  # wall seconds the opening waits for usable data after the close


@dataclass(slots=True)
class RollOp:
    """One roll out of a month, as journaled."""

    op: str  # the operation's id: "roll-<conId>-<event id>"
    policy: RollPolicy
    con_id: int  # the month rolled out of
    carry: int  # the signed position to open in the front month (0: close only)
    stop_ticks: int
    target_ticks: int
    closed: bool = False
    opening: str | None = None  # the opening intent's ref, once journaled

    @classmethod
    def open_in(cls, journal: Journal) -> RollOp | None:
        """The operation the journal has started and not ended (None when there is none)."""
        ops: dict[str, RollOp] = {}
        for ev in journal.events():
            if not ev.kind.startswith("roll_"):
                continue
            data = ev.data
            op = data.get("op", "")
            if ev.kind == "roll_started":
                ops[op] = cls(
                    op=op,
                    policy=data["policy"],
                    con_id=int(data["con_id"]),
                    carry=int(data["carry"]),
                    stop_ticks=int(data["stop_ticks"]),
                    target_ticks=int(data["target_ticks"]),
                )
            elif op in ops and ev.kind == "roll_closed":
                ops[op].closed = True
            elif op in ops and ev.kind == "roll_opening":
                ops[op].opening = str(data["intent"])
            elif ev.kind in _ENDED:
                ops.pop(op, None)
        return next(reversed(ops.values()), None)


class Roller:
    """Carries out `instrument.on_roll` (see the module docstring); `tick` once a second."""

    def __init__(
        self,
        policy: RollPolicy,
        journal: Journal,
        sync: BrokerSync,
        executor: Executor,
        closer: Closer,
        intents: Intents,
        alarms: Alarms,
        *,
        spawn: Callable[[Coroutine[Any, Any, Any]], Any],
        record_event: Callable[..., None],
        data_ok: Callable[[], bool],
        within_s: float,
        wall: Callable[[], float],
        open_wait_s: float = OPEN_WAIT_S,
    ) -> None:
        self.policy = policy
        self.journal = journal
        self.sync = sync
        self.executor = executor
        self.closer = closer
        self.intents = intents
        self.alarms = alarms
        self._spawn = spawn
        self._event = record_event
        self.within_s = within_s
        self._data_ok = data_ok
        self._wall = wall
        self.open_wait_s = open_wait_s
        self._closed_at: float | None = None  # wall time the close was confirmed here
        self.op = RollOp.open_in(journal)
        self._running = False
        self._failed = False  # the last operation failed: none until the operator resumes
        self.done = 0  # operations ended here, done or failed

    @property
    def busy(self) -> bool:
        """An operation is open: the strategy's intents wait."""
        return self.op is not None

    def as_status(self) -> dict[str, Any]:
        """The policy and the operation under way (None when there is none)."""
        op = self.op
        return {
            "policy": self.policy,
            "open": None
            if op is None
            else {"op": op.op, "con_id": op.con_id, "carry": op.carry, "closed": op.closed},
        }

    def tick(self, now: float) -> None:
        """Start an operation when one is due, and carry the open one on (never two at once)."""
        if self._running or self.sync.position is None:
            return
        if self._failed and self.alarms.unresolved:
            return
        self._failed = False
        if self.op is None:
            self.op = self._start()
        if self.op is not None:
            self._running = True
            self._spawn(self._carry_on(self.op, now))

    def _start(self) -> RollOp | None:
        if self.policy == "keep":
            return None
        held = self.sync.held_elsewhere()
        front = self.sync.con_id()
        working = {r.con_id for r in self.executor.live() if r.con_id and r.con_id != front}
        months = sorted({*held, *working})
        if not months:
            return None
        con_id = months[0]
        carry = held.get(con_id, 0) if self.policy == "roll" else 0
        stop_ticks, target_ticks = self._bracket_of(carry)
        op = RollOp(f"roll-{con_id}-{len(self.journal.events('roll_started'))}", self.policy,
                    con_id, carry, stop_ticks, target_ticks)  # fmt: skip
        facts: dict[str, Any] = {
            "op": op.op,
            "policy": op.policy,
            "con_id": con_id,
            "front": front,
            "position": held.get(con_id, 0),
            "carry": carry,
        }
        log.warning("roll_started", **facts)
        self._event("roll_started", **facts, stop_ticks=stop_ticks, target_ticks=target_ticks)
        return op

    def _bracket_of(self, carry: int) -> tuple[int, int]:
        """The stop and target distances of the latest entry intent toward ``carry``'s side
        (0, 0 when there is none: the operation then closes and does not open)."""
        if not carry:
            return 0, 0
        for intent in reversed(self.journal.intents()):
            if intent.target and (intent.target > 0) == (carry > 0) and intent.stop_ticks > 0:
                return intent.stop_ticks, intent.target_ticks
        return 0, 0

    async def _carry_on(self, op: RollOp, now: float) -> None:
        try:
            await self._steps(op, now)
        except Exception as exc:  # never a silent retry every second: a person looks
            log.exception("roll_step_failed", op=op.op, error=repr(exc))
            self._fail(op, f"a step failed: {exc!r}")
        finally:
            self._running = False

    async def _steps(self, op: RollOp, now: float) -> None:
        if not op.closed:
            own = self.sync.position_of(op.con_id)
            result = await self.closer.close_contract(
                op.con_id, own, f"roll out of conId {op.con_id}", self.within_s
            )
            if not result.ok:
                self._fail(op, f"the month rolled out of is not closed: {result.message}")
                return
            op.closed = True
            self._event("roll_closed", op=op.op, con_id=op.con_id, closed=own)
        if op.carry:
            if self._closed_at is None:
                self._closed_at = self._wall()
            if not self._data_ok():
                if self._wall() - self._closed_at < self.open_wait_s:
                    return  # the front month's data first (after a start, a reconnect)
                self._fail(op, f"closed, not carried: no usable data for {self.open_wait_s:g} s")
                return
            problem = self._open(op, now)
            if problem is not None:
                self._fail(op, f"closed, not carried into the front month: {problem}")
                return
        self._end(op, "roll_done", "")

    def _open(self, op: RollOp, now: float) -> str | None:
        """Open ``op.carry`` in the front month; what went wrong, or None."""
        if op.stop_ticks <= 0:
            return "no bracket known for the position carried (no entry intent on its side)"

        def journaled(ref: str) -> None:
            op.opening = ref
            self._event("roll_opening", op=op.op, intent=ref)

        ref = self.intents.roll_into_front(
            op.carry, op.stop_ticks, op.target_ticks, f"roll out of conId {op.con_id}", now,
            journaled,
        )  # fmt: skip
        if ref is None:
            return None  # the front month holds it already (an opening before a restart)
        intent = self.journal.intent(ref)
        if intent is not None and intent.status in ("refused", "rejected"):
            return f"the opening {ref} was {intent.status}: {intent.detail}"
        return None

    def _fail(self, op: RollOp, why: str) -> None:
        self._end(op, "roll_failed", why)
        self._failed = True
        self.alarms.anomaly("roll", op.op, f"roll {op.op}: {why}")

    def _end(self, op: RollOp, kind: str, why: str) -> None:
        self._event(kind, op=op.op, con_id=op.con_id, detail=why, opening=op.opening)
        log.warning(kind, op=op.op, con_id=op.con_id, detail=why, opening=op.opening)
        self.op = None
        self._closed_at = None
        self.done += 1
