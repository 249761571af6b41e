"""The order vocabulary, defined once: sides, types, roles, statuses, the moves a status may
make, and the one `Order` every part of the daemon (journal, executor, planner) shares.

IB's status strings are this module's `Status` values; the broker edge turns a string into a
`Status` (`Status.from_broker`) and nothing past it handles strings. `Order.move_to` refuses a
move the table does not allow (a late Submitted after Filled, say) instead of taking it.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Final

__all__ = [
    "ROLE_SUFFIX",
    "TRANSITIONS",
    "IllegalTransitionError",
    "Order",
    "OrderType",
    "Role",
    "Side",
    "Status",
]


class Side(enum.StrEnum):
    BUY = "BUY"
    SELL = "SELL"

    @property
    def sign(self) -> int:
        """+1 for a buy, -1 for a sell."""
        return 1 if self is Side.BUY else -1

    @property
    def opposite(self) -> Side:
        return Side.SELL if self is Side.BUY else Side.BUY

    @classmethod
    def closing(cls, position: int) -> Side:
        """The side that reduces ``position`` (a sell closes a long)."""
        return cls.SELL if position > 0 else cls.BUY


class OrderType(enum.StrEnum):
    MKT = "MKT"
    LMT = "LMT"
    STP = "STP"


class Role(enum.StrEnum):
    ENTRY = "entry"  # bracket parent
    STOP = "stop"  # bracket child: protective stop
    TARGET = "target"  # bracket child: profit target (an exit moves it through the market)
    EXIT = "exit"  # a closing order for a position without a live target
    FLATTEN = "flatten"  # the closing order of a flatten
    ADOPTED = "adopted"  # ours by its orderRef, but unknown to the journal


ROLE_SUFFIX: Final = {
    Role.ENTRY: "P",
    Role.STOP: "S",
    Role.TARGET: "T",
    Role.EXIT: "X",
    Role.FLATTEN: "F",
}


class Status(enum.StrEnum):
    """An order's state: IB's words, plus three of ours (journaled, abandoned, lost)."""

    JOURNALED = "Journaled"  # ours: written to the journal, not acknowledged yet
    PENDING_SUBMIT = "PendingSubmit"
    API_PENDING = "ApiPending"
    PRE_SUBMITTED = "PreSubmitted"
    SUBMITTED = "Submitted"
    PENDING_CANCEL = "PendingCancel"
    API_CANCELLED = "ApiCancelled"
    CANCELLED = "Cancelled"
    FILLED = "Filled"
    INACTIVE = "Inactive"
    ABANDONED = "Abandoned"  # ours: journaled, never reached the broker
    LOST = "Lost"  # ours: acknowledged once, unknown to the broker since (operator accepted)

    @property
    def done(self) -> bool:
        """Nothing more will happen to the order at the broker."""
        return self in _DONE

    @classmethod
    def from_broker(cls, text: str) -> Status | None:
        """IB's status string as a `Status`; None for a word IB is not known to send."""
        try:
            status = cls(text)
        except ValueError:
            return None
        return None if status in _OURS else status


_DONE: Final = frozenset(
    {Status.FILLED, Status.CANCELLED, Status.API_CANCELLED, Status.INACTIVE}
    | {Status.ABANDONED, Status.LOST}
)
_OURS: Final = frozenset({Status.JOURNALED, Status.ABANDONED, Status.LOST})
_WORKING: Final = frozenset(
    {Status.PENDING_SUBMIT, Status.API_PENDING, Status.PRE_SUBMITTED, Status.SUBMITTED}
)
_ENDINGS: Final = frozenset(
    {Status.FILLED, Status.CANCELLED, Status.API_CANCELLED, Status.INACTIVE}
)
_BROKER_WORDS: Final = _WORKING | _ENDINGS | {Status.PENDING_CANCEL}

TRANSITIONS: Final[dict[Status, frozenset[Status]]] = {
    # Journaled: anything the broker may say first, or never sent at all.
    Status.JOURNALED: _BROKER_WORDS | {Status.ABANDONED},
    # Working: between working states (a stop waits PreSubmitted, is Submitted when triggered,
    # and a modify may send it back), to a pending cancel, to an ending, or lost.
    # PendingSubmit without a perm id and unknown at the broker: it never reached it.
    **{s: _BROKER_WORDS - {s} | {Status.LOST, Status.ABANDONED} for s in _WORKING},
    # A pending cancel ends, or is refused (the order works on), or the order fills meanwhile.
    Status.PENDING_CANCEL: _WORKING | _ENDINGS | {Status.LOST},
    # A cancel that crossed a fill on the wire: the fill is the broker's last word.
    Status.CANCELLED: frozenset({Status.FILLED}),
    Status.API_CANCELLED: frozenset({Status.FILLED}),
    Status.FILLED: frozenset(),
    Status.INACTIVE: frozenset(),
    # Ours, concluded without the broker: its word, should it come after all, wins.
    Status.ABANDONED: _BROKER_WORDS,
    Status.LOST: _BROKER_WORDS,
}
"""Every status an order may move to from each status; a move not listed is refused."""


class IllegalTransitionError(ValueError):
    """A status move the table does not allow (the message names both)."""


@dataclass(slots=True, kw_only=True)
class Order:
    """One order of ours: as journaled before it is sent, then as the broker last reported."""

    ref: str  # the orderRef sent to IB
    role: Role
    client_id: int
    action: Side
    quantity: int
    order_type: OrderType
    intent_ref: str | None = None
    parent_ref: str | None = None
    order_id: int = 0  # 0: not given an id yet
    lmt_price: float | None = None
    aux_price: float | None = None
    tif: str = "DAY"
    oca_group: str = ""
    status: Status = Status.JOURNALED
    perm_id: int | None = None
    filled: int = 0
    avg_fill_price: float | None = None
    created: float = 0.0  # market time when sent
    con_id: int = 0  # the contract it trades (0: not known, journaled before contracts were)

    @property
    def live(self) -> bool:
        """Not in a final state: journaled, pending or working at the broker."""
        return not self.status.done

    @property
    def sign(self) -> int:
        return self.action.sign

    @property
    def remaining(self) -> int:
        return max(0, self.quantity - self.filled)

    @property
    def price(self) -> float | None:
        return self.lmt_price if self.order_type is OrderType.LMT else self.aux_price

    def may_become(self, status: Status) -> bool:
        """The table allows the move (staying put is always allowed)."""
        return status is self.status or status in TRANSITIONS[self.status]

    def move_to(self, status: Status) -> Status:
        """Take ``status``; returns the old one. IllegalTransitionError when not allowed."""
        if not self.may_become(status):
            raise IllegalTransitionError(
                f"order {self.ref}: {self.status.value} cannot become {status.value}"
            )
        old, self.status = self.status, status
        return old

    def as_status(self) -> dict[str, object]:
        """The order as status.json shows a working order."""
        return {
            "ref": self.ref,
            "role": self.role.value,
            "action": self.action.value,
            "quantity": self.quantity,
            "filled": self.filled,
            "order_type": self.order_type.value,
            "price": self.price,
            "status": self.status.value,
            "con_id": self.con_id,
        }
