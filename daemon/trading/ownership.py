"""Whose order is it? The verdict on a broker message about an order the journal does not know.

An instance owns exactly the orders it journaled: its ``order_ref_prefix`` and its client ids
(``ib.client_id`` and the fallbacks) say where to look, never what to adopt. A message about an
order the journal does not know is

- another application's or a manual order (neither our prefix nor our client id): not ours,
  left alone (the account position beside ours shows it);
- ours from an earlier life of this instance, provably (our prefix, our client id, and its
  intent journaled): adopted, with an event;
- anything else — our client id without a journaled intent, or our prefix under a client id we
  never use (another instance with the same prefix on the account) — an anomaly: it halts
  trading and says what differs. Never adopted in silence.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from daemon.core.orders import ROLE_SUFFIX, Role

__all__ = ["Ownership", "Verdict", "intent_of"]

_REF_TAIL = re.compile(r"(\d{8}-\d{4,}|flatten-\d+)(-[A-Z])?")
_ROLE_OF_SUFFIX = {suffix: role for role, suffix in ROLE_SUFFIX.items()}


class Verdict(enum.Enum):
    NOT_OURS = "not_ours"
    PROVABLY_OURS = "provably_ours"
    ANOMALY = "anomaly"


def intent_of(ref: str) -> tuple[str, Role] | None:
    """(intent ref, role) of an orderRef we would have sent, e.g. ``ofd-20261122-0001-P``."""
    intent, dash, suffix = ref.rpartition("-")
    role = _ROLE_OF_SUFFIX.get(suffix)
    if not dash or role is None:
        return None
    return intent, role


@dataclass(frozen=True, slots=True)
class Ownership:
    """The instance's prefix and client ids, and the journal's word on intents."""

    prefix: str  # order_ref_prefix, without the dash
    client_ids: Sequence[int]
    intent_known: Callable[[str], bool]

    def ours_by_ref(self, ref: str) -> bool:
        """The shape of a ref this prefix makes (``ofd-20261122-0001-P``, or an unjournaled
        flatten's ``ofd-flatten-1795000000-F``): ``ofd`` does not claim ``ofd-b``'s refs."""
        head = self.prefix + "-"
        if not ref.startswith(head):
            return False
        return _REF_TAIL.fullmatch(ref[len(head) :]) is not None

    def verdict(self, client_id: int, ref: str) -> Verdict:
        """What to do with a message about an order the journal does not know."""
        by_id = client_id in self.client_ids
        by_ref = self.ours_by_ref(ref)
        if not by_id and not by_ref:
            return Verdict.NOT_OURS
        if by_id and by_ref:
            parsed = intent_of(ref)
            if parsed is not None and self.intent_known(parsed[0]):
                return Verdict.PROVABLY_OURS
        return Verdict.ANOMALY

    def describe(self, what: str, client_id: int, order_id: int, perm_id: int, ref: str) -> str:
        """The anomaly in words: which order, and why it is not accounted for."""
        name = f"order {ref!r}" if ref else f"order id {order_id}"
        head = f"{what} for {name} (client id {client_id}, perm id {perm_id or '-'})"
        if self.ours_by_ref(ref) and client_id == 0:  # completed orders carry no client id
            return (
                f"{head} carries this instance's order_ref_prefix {self.prefix!r} but the "
                "journal has no such order: another instance with the same prefix on this "
                "account, or an order whose journal row was lost"
            )
        if self.ours_by_ref(ref) and client_id not in self.client_ids:
            return (
                f"{head} carries this instance's order_ref_prefix {self.prefix!r} under a client "
                "id it never uses: another instance with the same prefix on this account? "
                "Give each instance its own execution.order_ref_prefix"
            )
        return f"{head}: the journal has no such order"
