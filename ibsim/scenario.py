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

[[fault]]
at = 8.0
kind = "delay"          # hold these outgoing message types for `seconds`, then deliver them
messages = ["order_status", "open_order"]
seconds = 3.0
```
Faults of the wire and of the broker's book take only their own keys, strictly typed
([required; optional]); their errors name the fault and the key:

- `correction`: IB corrects a fill [; `exec_id` (default the latest), `price`, `shares`]
- `foreign_order`: a real order under another client id [`client_id`, `order_ref`, `action`,
  `quantity`; `order_type` MKT | LMT, `lmt_price`, `account`]
- `inject_execution`: a forged live fill to one client [`client_id`, `order_id`, `order_ref`,
  `side`, `shares`, `price`; `perm_id`, `exec_id`, `exec_client_id`, `account`]
- `inject_order_status`: a forged ORDER_STATUS [`client_id`, `order_id`, `status`, `filled`,
  `remaining`, `avg_fill_price`, `perm_id`; `parent_id`]
- `inject_open_order`: a forged OPEN_ORDER [`client_id`, `order_id`, `order_ref`, `action`,
  `quantity`; `order_type` (default LMT: then `lmt_price` is required), `lmt_price`,
  `aux_price`, `status`, `perm_id`, `parent_id`, `account`]
- `corrupt_fills`: the next `count` live executions carry an absurd field [`corruption`:
  price_zero | price_negative | price_far | shares_huge | shares_over_order | cum_qty_over;
  `count`]
- `delay` / `withhold`: outgoing messages of these types held (then delivered) / dropped
  [`messages` (`Out` names, e.g. "order_status", "execution"), `seconds`]
- `freeze_feed`: no market data, socket and everything else alive [`seconds`]
- `bad_frame`: a frame that never decodes [; `frame` = oversized (a ~2 GB header) | garbage,
  `seconds` (how long an oversized frame keeps trickling bytes, default 1)]

A correction is the event `correction`, not `fill`. A fault that cannot apply when it fires
(nothing to correct yet) is logged and skipped.

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

from ibsim.faultkeys import KIND_KEYS, parse_kind_keys
from ibsim.feed import BadTick

if TYPE_CHECKING:
    from ibsim.gateway import Gateway

log = logging.getLogger("ibsim.scenario")

_CLASSIC_KINDS = {
    "drop", "reset", "stall", "outage", "farm", "restart", "bad_tick", "volume_reset",
    "reject", "read_only", "market_data", "id_clash",
}  # fmt: skip
KINDS = frozenset(_CLASSIC_KINDS | set(KIND_KEYS))
EVENTS = frozenset({"order", "fill", "connect"})
_COMMON = {"at", "on", "nth", "kind"}
_KEYS = _COMMON | {"seconds", "restore", "code", "tick", "count", "value"}
_KEYS |= {key for keys in KIND_KEYS.values() for key in keys}


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
    # wire and book faults (see the module docstring for which kind takes which)
    exec_id: str | None = None
    price: float | None = None
    shares: int | None = None
    client_id: int | None = None
    order_id: int | None = None
    order_ref: str = ""
    action: str = ""
    side: str = ""
    quantity: int = 0
    order_type: str = ""  # default MKT for foreign_order, LMT for inject_open_order
    lmt_price: float | None = None
    aux_price: float | None = None
    account: str | None = None
    perm_id: int | None = None
    exec_client_id: int | None = None
    status: str = "Submitted"
    filled: int = 0
    remaining: int = 0
    avg_fill_price: float = 0.0
    parent_id: int = 0
    corruption: str = ""
    messages: tuple[str, ...] = ()
    frame: str = "oversized"


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
    if kind in KIND_KEYS:
        return _wire_fault(f"{where} ({kind})", kind, raw)
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


def _wire_fault(where: str, kind: str, raw: dict[str, Any]) -> Fault:
    """A wire or book fault: only its own keys, each parsed strictly."""
    try:
        params = parse_kind_keys(kind, {k: v for k, v in raw.items() if k not in _COMMON})
        nth = int(raw.get("nth", 1))
        at = float(raw["at"]) if "at" in raw else None
    except (TypeError, ValueError) as exc:
        raise ScenarioError(f"{where}: {exc}") from None
    return Fault(kind=kind, at=at, on=raw.get("on"), nth=nth, **params)


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
            case _:
                try:
                    _fire_wire_fault(gw, fault)
                except (ValueError, KeyError) as exc:  # e.g. no execution to correct yet
                    log.warning("fault %s not applied: %s", fault.kind, exc)


def _client(fault: Fault) -> int:
    if fault.client_id is None:
        raise ValueError(f"{fault.kind} needs client_id")
    return fault.client_id


def _order_id(fault: Fault) -> int:
    if fault.order_id is None:
        raise ValueError(f"{fault.kind} needs order_id")
    return fault.order_id


def _fire_wire_fault(gw: Gateway, fault: Fault) -> None:
    match fault.kind:
        case "correction":
            gw.correct_execution(fault.exec_id, price=fault.price, shares=fault.shares)
        case "foreign_order":
            gw.place_foreign_order(
                _client(fault), fault.order_ref, fault.action, fault.quantity,
                fault.order_type or "MKT", fault.lmt_price, fault.account,
            )  # fmt: skip
        case "inject_execution":
            gw.inject_execution(
                _client(fault), order_id=_order_id(fault), order_ref=fault.order_ref,
                side=fault.side, shares=fault.shares or 0, price=fault.price or 0.0,
                perm_id=fault.perm_id, exec_id=fault.exec_id,
                exec_client_id=fault.exec_client_id, account=fault.account,
            )  # fmt: skip
        case "inject_order_status":
            gw.inject_order_status(
                _client(fault), order_id=_order_id(fault), status=fault.status,
                filled=fault.filled, remaining=fault.remaining,
                avg_fill_price=fault.avg_fill_price, perm_id=fault.perm_id or 0,
                parent_id=fault.parent_id,
            )  # fmt: skip
        case "inject_open_order":
            gw.inject_open_order(
                _client(fault), order_id=_order_id(fault), order_ref=fault.order_ref,
                action=fault.action, quantity=fault.quantity,
                order_type=fault.order_type or "LMT", lmt_price=fault.lmt_price,
                aux_price=fault.aux_price, status=fault.status, perm_id=fault.perm_id,
                parent_id=fault.parent_id, account=fault.account,
            )  # fmt: skip
        case "corrupt_fills":
            gw.corrupt_next_fills(fault.corruption, fault.count)
        case "delay" | "withhold":
            gw.delay_messages(fault.messages, fault.seconds, withhold=fault.kind == "withhold")
        case "freeze_feed":
            gw.freeze_feed(fault.seconds)
        case "bad_frame":
            gw.send_bad_frame(fault.frame, trickle_s=fault.seconds)
