"""The invariants of a chaos run, judged from the gateway (the broker's truth) and the journal."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from pathlib import Path

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
    """The gateway's position in the front month after every fill: the largest one seen."""

    def __init__(self, gw: Gateway) -> None:
        self.gw = gw
        self.max_abs = 0
        self.fills = 0
        gw.observers.append(self._on_event)

    def _on_event(self, name: str) -> None:
        if name == "fill":
            self.fills += 1
            self.max_abs = max(self.max_abs, abs(gateway_position(self.gw)))

    def close(self) -> None:
        self.gw.observers.remove(self._on_event)


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
) -> list[Check]:
    """Every invariant, in the order the report prints them."""
    with Journal(journal_path) as journal:
        journaled = {e.exec_id: e for e in journal.executions()}
        journal_position = journal.journal_position(gw.front.con_id)
    ours = [e for e in gw.engine.executions() if e.order_ref.startswith(prefix)]
    broker_ids = {e.exec_id for e in ours}
    lost = sorted(broker_ids - set(journaled))
    invented = sorted(set(journaled) - broker_ids)
    duplicates, doubled = duplicate_orders(gw, prefix)
    broker_position = gateway_position(gw)
    signed = sum(e.shares if e.side is Side.BUY else -e.shares for e in ours)
    peak_rate = max(gw.peak_msg_rate.values(), default=0)
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
    ]
