"""What classification produces and every feature consumes: a `Print` with its aggressor split.

A print is volume at one price. `buy` is volume that lifted the offer, `sell` volume that hit
the bid; whatever is neither is unclassified (the first trade of a trades-only file, say). The
method says how the split was decided and `confidence` (0..1) how far to trust it.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass


class Method(enum.StrEnum):
    """How a print's aggressor was decided."""

    QUOTE = "quote"  # at or through the prevailing ask (buy) or bid (sell)
    OLD_QUOTE = "old_quote"  # at the previous ask/bid just after the quote moved away
    TICK = "tick"  # tick rule: uptick buy, downtick sell, zero tick carries the last side
    BVC = "bvc"  # bulk volume classification of volume no print explains
    NONE = "none"  # nothing to decide from: unclassified


class Health(enum.StrEnum):
    """Data health the strategy must respect: no new entries unless OK."""

    OK = "OK"
    DEGRADED = "DEGRADED"  # usable with care: stale quotes, a volume gap, partial backfill
    INVALID = "INVALID"  # do not trade on it: no valid data, or only rejected ticks lately


@dataclass(slots=True)
class Print:
    """Classified volume at one price; `buy + sell <= size`, the rest is unclassified."""

    time: float  # exchange time, epoch seconds
    tick: int  # price as a tick index of the instrument (`Instrument.tick_index`)
    size: float  # contracts
    buy: float
    sell: float
    method: Method
    confidence: float

    @property
    def delta(self) -> float:
        """Signed traded volume: bought minus sold, in contracts."""
        return self.buy - self.sell

    @property
    def unclassified(self) -> float:
        return self.size - self.buy - self.sell
