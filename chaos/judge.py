"""The invariants of a chaos run, judged from the gateway (the broker's truth) and the journal."""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from daemon.trading.journal import Journal
from ibsim.gateway import Gateway
from ibsim.model import Side

MAX_MESSAGES_PER_SECOND = 45  # the bound (ibsim disconnects above 50)


@dataclass(frozen=True, slots=True)
class Check:
    name: str
    value: int | float
    ok: bool
    detail: str = ""


class PositionWatch:
    """The gateway's position in the front month after every fill: the largest one seen, and
    when the last order message and the last fill (or correction) reached the gateway."""

    def __init__(self, gw: Gateway) -> None:
        self.gw = gw
        self.max_abs = 0
        self.fills = 0
        self.last_fill_at = -1e18  # time.monotonic()
        self.last_order_at = -1e18
        gw.observers.append(self._on_event)

    def quiet_s(self) -> float:
        """Seconds since the last order message or fill at the gateway."""
        return time.monotonic() - max(self.last_fill_at, self.last_order_at)

    def _on_event(self, name: str) -> None:
        if name == "order":
            self.last_order_at = time.monotonic()
        if name in ("fill", "correction"):
            self.fills += name == "fill"
            self.last_fill_at = time.monotonic()
            self.max_abs = max(self.max_abs, abs(gateway_position(self.gw)))

    def close(self) -> None:
        self.gw.observers.remove(self._on_event)


class CloseWatch:
    """Every closing order of ours (an exit ``-X`` or a flatten ``-F``) as it reaches the
    gateway, against the broker's position just before it: never larger, never the wrong way."""

    def __init__(self, gw: Gateway, client_id: int) -> None:
        self.gw = gw
        self.client_id = client_id
        self.closes = 0
        self.oversized: list[str] = []
        self._next_id = 1
        gw.observers.append(self._on_event)

    def _on_event(self, name: str) -> None:
        if name != "order":
            return
        engine = self.gw.engine
        end = engine.next_order_id(self.client_id)
        for order_id in range(self._next_id, end):
            order = engine.order(self.client_id, order_id)
            if order is None or not order.request.order_ref.endswith(("-X", "-F")):
                continue
            self.closes += 1
            sign = 1 if order.request.action is Side.BUY else -1
            before = gateway_position(self.gw) - sign * order.filled  # it may fill at once
            quantity = order.request.total_quantity
            if before * sign >= 0 or quantity > abs(before):
                self.oversized.append(
                    f"{order.request.order_ref} {order.request.action.value} {quantity} "
                    f"with the broker at {before:+d}"
                )
        self._next_id = max(self._next_id, end)

    def close(self) -> None:
        self.gw.observers.remove(self._on_event)


@dataclass
class LifeEnds:
    """The daemon's last word on its position at the end of each life, beside the broker's."""

    judged: int = 0
    unjudged: int = 0  # its status was stale or untrusted, or a fill had just happened
    differed: list[str] = field(default_factory=list)

    def record(self, doc: dict[str, Any], status_age_s: float, broker: int, quiet_s: float) -> None:
        """One life's end: ``doc`` its last status.json, ``status_age_s`` how old that is,
        ``broker`` the gateway's position, ``quiet_s`` the time since the last order or fill."""
        trading = doc.get("trading") or {}
        position = trading.get("position")
        if position is None or status_age_s > 0.5 or quiet_s < 1.0:
            self.unjudged += 1
            return
        self.judged += 1
        if position != broker:
            self.differed.append(f"daemon {position:+d}, broker {broker:+d}")


def gateway_position(gw: Gateway) -> int:
    con_id = gw.front.con_id
    return sum(p.quantity for p in gw.engine.positions() if p.con_id == con_id)


def duplicate_orders(gw: Gateway, prefix: str) -> tuple[int, list[str]]:
    """Orders transmitted to the market more than once under one orderRef (modifies are not new
    orders: they keep their id). Held, never-transmitted orders do not count."""
    refs: Counter[str] = Counter()
    for order in gw.engine.snapshot()["orders"]:
        ref = order["request"]["order_ref"]
        if ref.startswith(prefix) and not order["held"]:
            refs[ref] += 1
    doubled = sorted(ref for ref, n in refs.items() if n > 1)
    return sum(refs[ref] - 1 for ref in doubled), doubled


def judge(
    gw: Gateway,
    journal_path: Path,
    *,
    prefix: str,
    max_position: int,
    watch: PositionWatch,
    closes: CloseWatch | None = None,
    lives: LifeEnds | None = None,
) -> list[Check]:
    """Every invariant, in the order the report prints them."""
    with Journal(journal_path) as journal:
        journaled = {e.exec_id: e for e in journal.executions()}
        journal_position = journal.journal_position(gw.front.con_id)
    ours = [e for e in gw.engine.booked_executions() if e.order_ref.startswith(prefix)]
    broker_ids = {e.exec_id for e in ours}
    lost = sorted(broker_ids - set(journaled))
    invented = sorted(set(journaled) - broker_ids)
    duplicates, doubled = duplicate_orders(gw, prefix)
    broker_position = gateway_position(gw)
    signed = sum(e.shares if e.side is Side.BUY else -e.shares for e in ours)
    peak_rate = max(gw.peak_msg_rate.values(), default=0)
    checks = _position_checks(closes, lives)
    return [
        Check("duplicate orders", duplicates, duplicates == 0, ", ".join(doubled[:5])),
        Check("lost fills", len(lost), not lost, ", ".join(lost[:5])),
        Check(
            "journal executions = ibsim executions",
            len(journaled),
            not lost and not invented,
            f"ibsim {len(broker_ids)}, journal {len(journaled)}, only in journal {len(invented)}",
        ),
        Check(
            "final position journal = ibsim",
            journal_position,
            journal_position == broker_position == signed,
            f"journal {journal_position}, ibsim {broker_position}",
        ),
        Check(
            "max position",
            watch.max_abs,
            watch.max_abs <= max_position,
            f"limit {max_position}, over {watch.fills} fills",
        ),
        Check(
            "peak messages in 1 s",
            peak_rate,
            peak_rate <= MAX_MESSAGES_PER_SECOND and gw.rate_disconnects == 0,
            f"limit {MAX_MESSAGES_PER_SECOND}, error-100 disconnects {gw.rate_disconnects}",
        ),
        *checks,
    ]


def _position_checks(closes: CloseWatch | None, lives: LifeEnds | None) -> list[Check]:
    checks = []
    if lives is not None:
        checks.append(
            Check(
                "broker position = daemon position at the end of every life",
                len(lives.differed),
                not lives.differed,
                f"{lives.judged} lives judged, {lives.unjudged} ended mid-fill or untrusted"
                + (f"; {', '.join(lives.differed[:3])}" if lives.differed else ""),
            )
        )
    if closes is not None:
        checks.append(
            Check(
                "no close order larger than the broker's position",
                len(closes.oversized),
                not closes.oversized,
                f"{closes.closes} closing orders" + "".join(f"; {o}" for o in closes.oversized[:3]),
            )
        )
    return checks
