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
from ibsim.feed import BadTick
from ibsim.gateway import Gateway

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
    seen = asyncio.Event()
    count = 0

    def on_event(name: str) -> None:
        nonlocal count
        if name == "order":
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
    async def fault(t: Target, before: Status) -> Injected:
        count = t.rng.randint(1, 3)
        for _ in range(count):
            t.gw.bad_tick(kind)
        return Injected(t.now(), _rejected_more(before), f"{count} x {kind.value}")

    return fault


async def _volume_reset(t: Target, before: Status) -> Injected:
    t.gw.reset_volume()
    return Injected(t.now(), _always, "cumulative volume back to 0")


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
}
