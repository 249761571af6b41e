"""Stops and targets that outlived their position: cancel them before they open a new one.

A bracket's children are protection for the contracts its parent filled. When that position
is gone some other way (an exit order closed it because the target was rejected, a flatten
raced a child, the broker restored orders after a restart), a child left working would, when
hit, open a position nobody asked for. Such a child is *stray*: its parent is done and the
position no longer needs it (it would add to the position, or other children already cover it).
A stray is cancelled only after it stayed stray for a grace period: a target that just filled
leaves its stop working until the broker's OCA cancel arrives, milliseconds later.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping

from daemon.core.orders import Order, Role

STRAY_GRACE_S = 2.0  # wall seconds a child stays stray before it is cancelled


def stray_children(
    live: Iterable[Order], orders: Mapping[str, Order], position: int
) -> list[Order]:
    """Live stops and targets of finished parents that `position` does not need."""
    closing = -1 if position > 0 else 1  # the sign of orders that reduce it
    need = abs(position)
    strays: list[Order] = []
    for role in (Role.STOP, Role.TARGET):
        kids = [
            r for r in live if r.role is role and not _parent_working(r, orders) and r.remaining > 0
        ]
        covered = 0
        for rec in sorted(kids, key=lambda r: (r.created, r.order_id)):  # the oldest are kept
            if need and rec.sign == closing and covered < need:
                covered += rec.remaining
            else:
                strays.append(rec)
    return strays


def _parent_working(rec: Order, orders: Mapping[str, Order]) -> bool:
    parent = orders.get(rec.parent_ref) if rec.parent_ref else None
    return parent is not None and parent.live


class StrayWatch:
    """Says which strays have been stray long enough to cancel, each once."""

    def __init__(self, wall: Callable[[], float], grace_s: float = STRAY_GRACE_S) -> None:
        self._wall = wall
        self.grace_s = grace_s
        self._since: dict[str, float] = {}
        self._cancelled: set[str] = set()

    def due(self, strays: Iterable[Order]) -> list[Order]:
        now = self._wall()
        current = {r.ref: r for r in strays}
        self._since = {ref: self._since.get(ref, now) for ref in current}
        self._cancelled &= set(current)
        due = [
            rec
            for ref, rec in current.items()
            if now - self._since[ref] >= self.grace_s and ref not in self._cancelled
        ]
        self._cancelled.update(r.ref for r in due)
        return due
