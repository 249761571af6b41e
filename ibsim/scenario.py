"""Fault scenarios: a TOML file (or Python list) of faults fired by time or by event.

```toml
[[fault]]
at = 5.0                # wall seconds after the gateway starts ...
kind = "outage"         # 1100, then after `seconds` 1101 (restore = "data_lost") or 1102
seconds = 2.0
restore = "data_lost"

[[fault]]
on = "fill"             # ... or the nth occurrence of an event: order, fill, connect
nth = 1
kind = "drop"           # drop (FIN) | reset (RST) | stall | outage | farm | restart | bad_tick
                        # | volume_reset | reject | read_only | market_data
                        # | id_clash (drop, and 326 for that client id for `seconds`)
```
Every kind is a `Gateway` method underneath, so tests can fire the same faults directly.
"""

from __future__ import annotations

import asyncio
import logging
import tomllib
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ibsim.feed import BadTick

if TYPE_CHECKING:
    from ibsim.gateway import Gateway

log = logging.getLogger("ibsim.scenario")

KINDS = frozenset(
    {
        "drop",
        "reset",
        "stall",
        "outage",
        "farm",
        "restart",
        "bad_tick",
        "volume_reset",
        "reject",
        "read_only",
        "market_data",
        "id_clash",
    }
)
EVENTS = frozenset({"order", "fill", "connect"})
_KEYS = {"at", "on", "nth", "kind", "seconds", "restore", "code", "tick", "count", "value"}


class ScenarioError(ValueError):
    """A scenario file that cannot be used; the message names the fault and the key."""


@dataclass(frozen=True, slots=True)
class Fault:
    kind: str
    at: float | None = None
    on: str | None = None
    nth: int = 1
    seconds: float = 1.0
    restore: str = "data_lost"
    code: int = 0
    tick: BadTick = BadTick.NEGATIVE_PRICE
    count: int = 1
    value: str = ""


def _fault(index: int, raw: dict[str, Any]) -> Fault:
    where = f"fault #{index + 1}"
    unknown = set(raw) - _KEYS
    if unknown:
        raise ScenarioError(f"{where}: unknown key(s) {sorted(unknown)}")
    kind = raw.get("kind")
    if kind not in KINDS:
        raise ScenarioError(f"{where}: kind {kind!r} is not one of {sorted(KINDS)}")
    if ("at" in raw) == ("on" in raw):
        raise ScenarioError(f"{where}: give exactly one of 'at' (seconds) or 'on' (event)")
    if "on" in raw and raw["on"] not in EVENTS:
        raise ScenarioError(f"{where}: on {raw['on']!r} is not one of {sorted(EVENTS)}")
    try:
        fault = Fault(
            kind=kind,
            at=float(raw["at"]) if "at" in raw else None,
            on=raw.get("on"),
            nth=int(raw.get("nth", 1)),
            seconds=float(raw.get("seconds", 1.0)),
            restore=str(raw.get("restore", "data_lost")),
            code=int(raw.get("code", 0)),
            tick=BadTick(raw.get("tick", "negative_price")),
            count=int(raw.get("count", 1)),
            value=str(raw.get("value", "")),
        )
    except (TypeError, ValueError) as exc:
        raise ScenarioError(f"{where}: {exc}") from None
    if fault.restore not in ("data_lost", "data_kept"):
        raise ScenarioError(f"{where}: restore must be 'data_lost' or 'data_kept'")
    if kind == "market_data" and fault.value not in ("realtime", "delayed", "none"):
        raise ScenarioError(f"{where}: market_data value must be realtime, delayed or none")
    return fault


def load_scenario(path: Path) -> Scenario:
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise ScenarioError(f"{path}: not valid TOML: {exc}") from None
    faults = data.pop("fault", [])
    if data:
        raise ScenarioError(f"{path}: unknown top-level key(s) {sorted(data)}")
    if not isinstance(faults, list):
        raise ScenarioError(f"{path}: 'fault' must be an array of tables ([[fault]])")
    try:
        return Scenario([_fault(i, f) for i, f in enumerate(faults)])
    except ScenarioError as exc:
        raise ScenarioError(f"{path}: {exc}") from None


@dataclass
class Scenario:
    """Runs its faults against a gateway; `fired` records what happened, in order."""

    faults: list[Fault]
    fired: list[str] = field(default_factory=list)

    async def run(self, gw: Gateway) -> None:
        counts: Counter[str] = Counter()
        tasks: set[asyncio.Task[None]] = set()

        def on_event(name: str) -> None:
            counts[name] += 1
            for fault in self.faults:
                if fault.on == name and counts[name] == fault.nth:
                    task = asyncio.create_task(self.fire(gw, fault))
                    tasks.add(task)
                    task.add_done_callback(tasks.discard)

        gw.observers.append(on_event)
        try:
            timed = sorted((f for f in self.faults if f.at is not None), key=lambda f: f.at or 0)
            start = asyncio.get_running_loop().time()
            for fault in timed:
                assert fault.at is not None
                delay = start + fault.at - asyncio.get_running_loop().time()
                if delay > 0:
                    await asyncio.sleep(delay)
                await self.fire(gw, fault)
            await asyncio.Event().wait()  # keep event-triggered faults armed
        finally:
            gw.observers.remove(on_event)
            for task in tasks:
                task.cancel()

    async def fire(self, gw: Gateway, fault: Fault) -> None:
        """Apply one fault now."""
        log.info("fault %s", fault)
        self.fired.append(fault.kind)
        match fault.kind:
            case "drop" | "reset":
                gw.drop_clients(reset=fault.kind == "reset")
            case "stall":
                await gw.stall(fault.seconds)
            case "outage":
                gw.connectivity_lost()
                await asyncio.sleep(fault.seconds)
                gw.connectivity_restored(data_lost=fault.restore == "data_lost")
            case "farm":
                gw.farm(fault.code)
            case "restart":
                await gw.restart(fault.seconds)
            case "id_clash":
                gw.clash_client_ids(fault.seconds)
            case "bad_tick":
                for _ in range(fault.count):
                    gw.bad_tick(fault.tick)
            case "volume_reset":
                gw.reset_volume()
            case "reject":
                gw.reject_next_orders(fault.count)
            case "read_only":
                gw.config.read_only = fault.value != "false"
            case "market_data":
                gw.config.market_data = fault.value
