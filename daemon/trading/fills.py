"""What a fill must be before it counts: IB's execution corrections, and the sanity checks.

IB corrects a fill by sending it again under an execId that differs only in the digits after
the final period (``….01.01`` → ``….01.02``): the higher suffix replaces the lower one, it is
never a second fill. A fill whose numbers cannot be true (a non-positive price, a price far from
the market, a size beyond its order) is not journaled as a fill at all: it is a broker anomaly
for a person to look at. Pure functions, no I/O.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

__all__ = ["ExecVersion", "FillFacts", "exec_version", "fill_problem"]


@dataclass(frozen=True, slots=True)
class ExecVersion:
    """An execId split at its final period: the fill (``stem``) and its version (``suffix``)."""

    stem: str
    suffix: int

    def supersedes(self, other: ExecVersion) -> bool:
        """True when this is a later version (a correction) of the same fill as ``other``."""
        return self.stem == other.stem and self.suffix > other.suffix


def exec_version(exec_id: str) -> ExecVersion | None:
    """``ExecVersion('0000e0d5.6575e1a1.01', 2)`` for ``'0000e0d5.6575e1a1.01.02'``; None for
    an id without a numeric suffix after a final period (it can have no corrections)."""
    stem, dot, suffix = exec_id.rpartition(".")
    if not dot or not stem or not suffix.isdigit():
        return None
    return ExecVersion(stem, int(suffix))


@dataclass(frozen=True, slots=True)
class FillFacts:
    """One execution as received, and what it must agree with."""

    shares: float  # as on the wire (IB sends a decimal)
    price: float
    cum_qty: float
    avg_price: float
    order_quantity: int  # the order's quantity
    filled_before: int  # shares of this order journaled before (without the fill it corrects)
    reference_price: float | None  # the order's own price, else the last trade; None: unknown
    band_pct: float  # how far from the reference a fill may be, in percent


def fill_problem(f: FillFacts) -> str | None:
    """What makes the fill impossible, in words with the numbers; None when it may count."""
    if not math.isfinite(f.shares) or f.shares != int(f.shares) or f.shares <= 0:
        return f"size {f.shares:g} is not a whole number of contracts > 0"
    if not math.isfinite(f.price) or f.price <= 0:
        return f"price {f.price:g} is not a positive price"
    shares = int(f.shares)
    if f.filled_before + shares > f.order_quantity:
        return (
            f"size {shares} takes the order past its quantity {f.order_quantity} "
            f"({f.filled_before} filled before)"
        )
    if not math.isfinite(f.cum_qty) or f.cum_qty != int(f.cum_qty) or f.cum_qty < shares:
        return f"cumulative quantity {f.cum_qty:g} does not add up with size {shares}"
    if f.cum_qty > f.order_quantity:
        return f"cumulative quantity {f.cum_qty:g} is over the order's {f.order_quantity}"
    if not math.isfinite(f.avg_price) or f.avg_price <= 0:
        return f"average price {f.avg_price:g} is not a positive price"
    ref = f.reference_price
    if ref is not None and ref > 0 and abs(f.price - ref) > ref * f.band_pct / 100:
        return f"price {f.price:g} is more than {f.band_pct:g} % from the market ({ref:g})"
    return None
