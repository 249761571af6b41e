"""What the daemon knows of its orders: one record per orderRef, mirrored in the journal."""

from __future__ import annotations

import enum
from dataclasses import dataclass

from daemon.trading.journal import ABANDONED, JOURNALED, LOST
from daemon.trading.journal import DONE_ORDER_STATUSES as DONE_STATUSES

__all__ = [
    "ABANDONED",
    "DONE_STATUSES",
    "JOURNALED",
    "LOST",
    "ROLE_SUFFIX",
    "OrderRecord",
    "Role",
]


class Role(enum.StrEnum):
    ENTRY = "entry"  # bracket parent
    STOP = "stop"  # bracket child: protective stop
    TARGET = "target"  # bracket child: profit target (an exit moves it through the market)
    EXIT = "exit"  # a closing order for a position without a live target
    FLATTEN = "flatten"  # the closing order of a flatten
    ADOPTED = "adopted"  # ours by its orderRef, but unknown to the journal


ROLE_SUFFIX = {Role.ENTRY: "P", Role.STOP: "S", Role.TARGET: "T", Role.EXIT: "X"}


@dataclass(slots=True)
class OrderRecord:
    """An order of ours as last reported by the broker (or as journaled before sending)."""

    ref: str
    role: Role
    intent_ref: str | None
    parent_ref: str | None
    client_id: int
    order_id: int
    action: str  # BUY | SELL
    quantity: int
    order_type: str  # LMT | MKT | STP
    lmt_price: float | None
    aux_price: float | None
    tif: str
    oca_group: str
    status: str = JOURNALED
    perm_id: int | None = None
    filled: int = 0
    avg_fill_price: float | None = None
    created: float = 0.0  # market time when sent

    @property
    def live(self) -> bool:
        return self.status not in DONE_STATUSES

    @property
    def sign(self) -> int:
        return 1 if self.action == "BUY" else -1

    @property
    def remaining(self) -> int:
        return max(0, self.quantity - self.filled)

    @property
    def price(self) -> float | None:
        return self.lmt_price if self.order_type == "LMT" else self.aux_price

    def as_status(self) -> dict[str, object]:
        """The record as status.json shows a working order."""
        return {
            "ref": self.ref,
            "role": self.role.value,
            "action": self.action,
            "quantity": self.quantity,
            "filled": self.filled,
            "order_type": self.order_type,
            "price": self.price,
            "status": self.status,
        }
