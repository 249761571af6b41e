"""The fault catalogue: every fault ibsim can inject, plus `kill -9` of the daemon.

A fault is a coroutine that injects it, waits until it is over (an outage is restored, a
killed daemon is started again) and returns an `Injected`: when it ended (the recovery clock
starts there) and what the daemon must have shown to have *noticed* it. Recovery itself is the
same for every kind (see `daemon.healthy`). Faults that need an order (a 201 reject, a kill
between `placeOrder` and the fill) return None when no order came in time: not injected.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from chaos.daemon import DaemonProcess, Status
from daemon.runtime.control import CONTROL_SOCKET, ControlError, send_command
from ibsim.feed import BadTick
from ibsim.gateway import Gateway
from ibsim.wirefaults import FillCorruption

PREFIX = "ofd"  # the daemon's execution.order_ref_prefix (chaos.run configures it)
CLIENT_ID = 1  # the daemon's ib.client_id
FORGED_ORDER_ID = 900_000  # order ids forged messages name: far above any the daemon uses
# What a slow or lossy proxy holds back: the answers about orders, fills and positions.
ORDER_ANSWERS = ("order_status", "open_order", "execution", "commission_report", "position")

RESTART_DELAY_S = 1.0  # between a daemon's death and its next life (systemd's RestartSec)


@dataclass(frozen=True, slots=True)
class Injected:
    ended: float  # loop time at which the fault was over
    noticed: Callable[[Status], bool]  # the daemon has seen it (judged on status.json)
    detail: str


@dataclass
class Target:
    """What a fault acts on."""

    gw: Gateway
    daemon: DaemonProcess
    rng: random.Random
    order_wait_s: float  # how long an order-triggered fault waits for an order
    scale: float = 1.0  # multiplies every fault's duration (the short subset halves them)
    silent: Callable[[], bool] = lambda: False  # the replayed market has no trades just now
    freeze_s: tuple[float, float] = (6.0, 20.0)  # a frozen feed: past data.stale_after_s

    def seconds(self, low: float, high: float) -> float:
        """A seeded random duration for one fault, scaled."""
        return round(self.rng.uniform(low, high) * self.scale, 2)

    def now(self) -> float:
        return asyncio.get_running_loop().time()

    async def restart_daemon(self) -> None:
        """Reap the killed daemon and start its next life, as systemd's Restart=always would."""
        await self.daemon.wait()
        await asyncio.sleep(RESTART_DELAY_S)
        await self.daemon.start()


Fault = Callable[[Target, Status], Awaitable[Injected | None]]


def _reconnected(before: Status) -> Callable[[Status], bool]:
    count, started = before.get("reconnect_count", 0), before.get("started")
    return lambda doc: doc.get("started") != started or doc.get("reconnect_count", 0) > count


def _new_life(before: Status) -> Callable[[Status], bool]:
    started = before.get("started")
    return lambda doc: doc.get("started") != started


def _resubscribed(before: Status) -> Callable[[Status], bool]:
    count, started = before.get("resubscribe_count", 0), before.get("started")
    return lambda doc: doc.get("started") != started or doc.get("resubscribe_count", 0) > count


def _rejected_more(before: Status) -> Callable[[Status], bool]:
    seen, started = sum((before.get("rejected_ticks") or {}).values()), before.get("started")
    return lambda doc: (
        doc.get("started") != started or sum((doc.get("rejected_ticks") or {}).values()) > seen
    )


def _always(_: Status) -> bool:
    return True


def _alarmed(before: Status) -> Callable[[Status], bool]:
    """The daemon raised an alarm (a broker anomaly) after `before`."""
    last, started = _last_alarm(before), before.get("started")
    return lambda doc: doc.get("started") != started or _last_alarm(doc) > last


def _last_alarm(doc: Status) -> float:
    alarms = (doc.get("trading") or {}).get("alarms") or []
    return max((float(a.get("at") or 0.0) for a in alarms), default=0.0)


def _socket_drop(reset: bool) -> Fault:
    async def fault(t: Target, before: Status) -> Injected:
        n = t.gw.drop_clients(reset=reset)
        return Injected(t.now(), _reconnected(before), f"{n} client(s) dropped")

    return fault


async def _gateway_restart(t: Target, before: Status) -> Injected:
    down = t.seconds(0.5, 5.0)
    await t.gw.restart(down)
    return Injected(t.now(), _reconnected(before), f"down {down} s, orders kept working")


async def _stall(t: Target, before: Status) -> Injected:
    seconds = t.seconds(0.5, 4.0)
    await t.gw.stall(seconds)
    return Injected(t.now(), _always, f"frozen {seconds} s")


def _outage(data_lost: bool) -> Fault:
    async def fault(t: Target, before: Status) -> Injected:
        seconds = t.seconds(0.5, 5.0)
        t.gw.connectivity_lost()
        await asyncio.sleep(seconds)
        t.gw.connectivity_restored(data_lost=data_lost)
        noticed = _resubscribed(before) if data_lost else _always
        return Injected(t.now(), noticed, f"1100 for {seconds} s")

    return fault


def _farm_flap(broken: int, ok: int) -> Fault:
    async def fault(t: Target, before: Status) -> Injected:
        seconds = t.seconds(0.2, 3.0)
        t.gw.farm(broken)
        await asyncio.sleep(seconds)
        t.gw.farm(ok)
        return Injected(t.now(), _always, f"{broken} for {seconds} s, then {ok}")

    return fault


async def _id_clash(t: Target, before: Status) -> Injected:
    seconds = t.seconds(1.0, 4.0)
    t.gw.clash_client_ids(seconds)
    await asyncio.sleep(seconds)
    return Injected(t.now(), _reconnected(before), f"dropped; 326 for {seconds} s")


async def _wait_for_order(t: Target, nth: int) -> bool:
    """True once `nth` more orders (or modifies) reached the gateway within the wait."""
    return await _wait_for_event(t, "order", nth)


async def _reject(t: Target, before: Status) -> Injected | None:
    t.gw.reject_next_orders(1)
    if not await _wait_for_order(t, 1):
        t.gw.faults.reject_next_orders = 0
        return None
    return Injected(t.now(), _always, "next order answered with 201")


async def _read_only(t: Target, before: Status) -> Injected:
    seconds = t.seconds(1.0, 6.0)
    t.gw.config.read_only = True
    await asyncio.sleep(seconds)
    t.gw.config.read_only = False
    return Injected(t.now(), _always, f"321 to every order for {seconds} s")


def _bad_tick(kind: BadTick) -> Fault:
    async def fault(t: Target, before: Status) -> Injected | None:
        if kind is BadTick.SPIKE and t.silent():
            return None  # a spike is judged by the trades after it: a silent tape has none
        count = t.rng.randint(1, 3)
        for _ in range(count):
            t.gw.bad_tick(kind)
        return Injected(t.now(), _rejected_more(before), f"{count} x {kind.value}")

    return fault


async def _volume_reset(t: Target, before: Status) -> Injected:
    t.gw.reset_volume()
    return Injected(t.now(), _always, "cumulative volume back to 0")


async def _correction(t: Target, before: Status) -> Injected | None:
    """IB corrects the daemon's latest fill: the same fill, a new execId, another price."""
    ours = [e for e in t.gw.engine.booked_executions() if e.order_ref.startswith(PREFIX)]
    if not ours and not await _wait_for_event(t, "fill"):
        return None
    ours = [e for e in t.gw.engine.booked_executions() if e.order_ref.startswith(PREFIX)]
    if not ours:
        return None
    latest = ours[-1]
    step = t.rng.choice((-0.25, 0.25))
    new_id = t.gw.correct_execution(latest.exec_id, price=latest.price + step)
    return Injected(t.now(), _always, f"{latest.exec_id} -> {new_id}, price {step:+.2f}")


def _forged(kind: str) -> Fault:
    """A message about an order nobody sent, as a proxy forges it: the daemon must halt."""

    async def fault(t: Target, before: Status) -> Injected | None:
        order_id = FORGED_ORDER_ID + t.rng.randint(0, 99_999)
        last = t.gw.feed.last or 0.0
        if kind == "fill":
            sent = t.gw.inject_execution(
                CLIENT_ID, order_id=order_id, order_ref=f"{PREFIX}-forged-{order_id}-P",
                side=t.rng.choice(("BUY", "SELL")), shares=t.rng.randint(1, 8), price=last,
            ) is not None  # fmt: skip
        else:
            sent = t.gw.inject_order_status(
                CLIENT_ID, order_id=order_id, status="Filled", filled=1, remaining=0,
                avg_fill_price=last, perm_id=order_id,
            )  # fmt: skip
        if not sent:
            return None
        return Injected(t.now(), _alarmed(before), f"forged {kind} for order id {order_id}")

    return fault


async def _absurd_fill(t: Target, before: Status) -> Injected | None:
    """The next fill arrives with an impossible field; the broker's book stays true."""
    kind = t.rng.choice(list(FillCorruption))
    t.gw.corrupt_next_fills(kind.value)
    if not await _wait_for_event(t, "fill"):
        t.gw.disarm_fill_corruptions()
        return None
    return Injected(t.now(), _alarmed(before), f"next fill with {kind.value}")


def _answers(withhold: bool) -> Fault:
    async def fault(t: Target, before: Status) -> Injected:
        seconds = t.seconds(0.5, 4.0) if withhold else t.seconds(1.0, 8.0)
        t.gw.delay_messages(ORDER_ANSWERS, seconds, withhold=withhold)
        await asyncio.sleep(seconds)
        verb = "withheld" if withhold else "delayed"
        return Injected(t.now(), _always, f"answers about orders {verb} for {seconds} s")

    return fault


async def _feed_frozen(t: Target, before: Status) -> Injected | None:
    if t.silent():
        return None  # a closed or silent market gives a frozen feed nothing to miss
    seconds = t.seconds(*t.freeze_s)
    t.gw.freeze_feed(seconds)
    await asyncio.sleep(seconds)
    return Injected(t.now(), _resubscribed(before), f"no market data for {seconds} s")


def _bad_frame(kind: str) -> Fault:
    async def fault(t: Target, before: Status) -> Injected:
        trickle = t.seconds(1.0, 4.0)
        n = t.gw.send_bad_frame(kind, trickle_s=trickle)
        noticed = _reconnected(before) if kind == "oversized" else _always
        return Injected(t.now(), noticed, f"{kind} frame header to {n} client(s)")

    return fault


async def _wait_for_event(t: Target, event: str, nth: int = 1) -> bool:
    """True once the gateway reports `event` `nth` more times within the order wait."""
    seen = asyncio.Event()
    count = 0

    def on_event(name: str) -> None:
        nonlocal count
        if name == event:
            count += 1
            if count >= nth:
                seen.set()

    t.gw.observers.append(on_event)
    try:
        await asyncio.wait_for(seen.wait(), t.order_wait_s)
        return True
    except TimeoutError:
        return False
    finally:
        t.gw.observers.remove(on_event)


async def _operator_flatten(t: Target, before: Status) -> Injected | None:
    """`orderflowd flatten` right after a fill, as a trader would: its closing order must be
    sized from the broker's position (the close-order invariant judges it)."""
    if not await _wait_for_event(t, "fill"):
        return None
    reply = await asyncio.to_thread(_control, t.daemon, "flatten")
    detail = str(reply.get("message") or reply.get("error") or reply)
    return Injected(t.now(), _always, f"orderflowd flatten: {detail}")


def _control(daemon: DaemonProcess, command: str) -> dict[str, object]:
    try:
        return send_command(daemon.state_dir / CONTROL_SOCKET, command, "chaos", timeout=90.0)
    except (ControlError, OSError) as exc:
        return {"ok": False, "error": str(exc)}


async def _kill(t: Target, before: Status) -> Injected:
    t.daemon.kill()
    await t.restart_daemon()
    return Injected(t.now(), _new_life(before), "kill -9 at a random moment")


async def _kill_at_order(t: Target, before: Status) -> Injected | None:
    """kill -9 from inside the gateway's placeOrder handling: the fill never reaches it."""
    nth = t.rng.randint(1, 3)  # parent, target or stop of a bracket (or a modify)
    count = 0

    def on_event(name: str) -> None:
        nonlocal count
        if name == "order":
            count += 1
            if count == nth:
                t.daemon.kill()

    t.gw.observers.append(on_event)
    try:
        killed = await _wait_for_order(t, nth)
    finally:
        t.gw.observers.remove(on_event)
    if not killed:
        return None
    await t.restart_daemon()
    return Injected(t.now(), _new_life(before), f"kill -9 at order message {nth}")


CATALOGUE: dict[str, Fault] = {
    "drop_fin": _socket_drop(reset=False),
    "drop_rst": _socket_drop(reset=True),
    "gateway_restart": _gateway_restart,
    "stall": _stall,
    "outage_1101": _outage(data_lost=True),
    "outage_1102": _outage(data_lost=False),
    "farm_md": _farm_flap(2103, 2104),
    "farm_hmds": _farm_flap(2105, 2106),
    "id_clash_326": _id_clash,
    "reject_201": _reject,
    "read_only_321": _read_only,
    **{f"bad_tick_{k.value}": _bad_tick(k) for k in BadTick},
    "volume_reset": _volume_reset,
    "kill_9": _kill,
    "kill_9_at_order": _kill_at_order,
    "exec_correction": _correction,
    "forged_fill": _forged("fill"),
    "forged_status": _forged("status"),
    "absurd_fill": _absurd_fill,
    "answers_delayed": _answers(withhold=False),
    "answers_withheld": _answers(withhold=True),
    "feed_frozen": _feed_frozen,
    "oversized_frame": _bad_frame("oversized"),
    "garbage_frame": _bad_frame("garbage"),
    "operator_flatten": _operator_flatten,
}
