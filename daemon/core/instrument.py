"""The traded future: its price grid and what a point is worth, from the broker's word.

Every price rounding, tick count, collar, PnL, commission and loss-limit figure goes through an
`Instrument`. The broker's contract details (``minTick``, ``multiplier``) make it
(`Instrument.from_broker`); the family table `PRODUCTS` only says which products are supported
and what to expect before the first connect, and a broker that disagrees with it wins (and is
logged by the caller). Prices are kept as integer tick indexes wherever they are keys, so no
float ever becomes a dict key: a tick of 0.25, 0.1 or 1.0 is a whole fraction of a point.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Final

__all__ = ["PRODUCTS", "Instrument", "InstrumentError", "Product", "product"]

_GRID_TOLERANCE: Final = 1e-6  # of a tick: prices from the wire are decimal strings


class InstrumentError(ValueError):
    """An instrument that cannot be traded as given (the message names what is wrong)."""


@dataclass(frozen=True, slots=True)
class Product:
    """The exchange's facts about one future: where it trades, its tick, a point's value."""

    symbol: str
    exchange: str
    tick_size: float
    multiplier: float  # currency per point of one contract
    currency: str = "USD"
    name: str = ""


PRODUCTS: Final[dict[str, Product]] = {
    p.symbol: p
    for p in (
        Product("ES", "CME", 0.25, 50.0, name="E-mini S&P 500"),
        Product("MES", "CME", 0.25, 5.0, name="Micro E-mini S&P 500"),
        Product("NQ", "CME", 0.25, 20.0, name="E-mini Nasdaq-100"),
        Product("MNQ", "CME", 0.25, 2.0, name="Micro E-mini Nasdaq-100"),
        Product("RTY", "CME", 0.1, 50.0, name="E-mini Russell 2000"),
        Product("M2K", "CME", 0.1, 5.0, name="Micro E-mini Russell 2000"),
        Product("YM", "CBOT", 1.0, 5.0, name="E-mini Dow ($5)"),
        Product("MYM", "CBOT", 1.0, 0.5, name="Micro E-mini Dow"),
    )
}
"""The CME equity-index futures orderflowd trades (tick sizes and multipliers as listed)."""


def product(symbol: str) -> Product:
    """The product of ``symbol``; InstrumentError naming the supported ones otherwise."""
    found = PRODUCTS.get(symbol.upper())
    if found is None:
        raise InstrumentError(
            f"{symbol!r} is not a supported future (supported: {', '.join(PRODUCTS)})"
        )
    return found


@dataclass(frozen=True, slots=True)
class Instrument:
    """One tradable contract month (or the product, before a contract is chosen)."""

    symbol: str
    exchange: str
    currency: str
    tick_size: float
    multiplier: float
    con_id: int = 0  # 0: no contract chosen yet
    local_symbol: str = ""
    price_magnifier: int = 1
    trading_class: str = ""

    def __post_init__(self) -> None:
        if not (math.isfinite(self.tick_size) and self.tick_size > 0):
            raise InstrumentError(f"{self.symbol}: tick size {self.tick_size!r} is not > 0")
        per_point = 1.0 / self.tick_size
        if abs(per_point - round(per_point)) > _GRID_TOLERANCE * per_point:
            raise InstrumentError(
                f"{self.symbol}: tick size {self.tick_size!r} is not a whole fraction of a point"
            )
        if not (math.isfinite(self.multiplier) and self.multiplier > 0):
            raise InstrumentError(f"{self.symbol}: multiplier {self.multiplier!r} is not > 0")
        if self.price_magnifier < 1:
            raise InstrumentError(f"{self.symbol}: price magnifier {self.price_magnifier} < 1")

    # --- building ---

    @classmethod
    def of_product(cls, symbol: str) -> Instrument:
        """What to expect of ``symbol`` before the broker has said (no contract chosen)."""
        p = product(symbol)
        return cls(p.symbol, p.exchange, p.currency, p.tick_size, p.multiplier)

    @classmethod
    def from_broker(
        cls,
        *,
        symbol: str,
        exchange: str,
        currency: str,
        min_tick: float,
        multiplier: str | float,
        price_magnifier: int = 1,
        con_id: int = 0,
        local_symbol: str = "",
        trading_class: str = "",
    ) -> Instrument:
        """From a contract's details as the broker sends them (``multiplier`` is a string)."""
        try:
            value = float(multiplier)
        except (TypeError, ValueError):
            raise InstrumentError(f"{symbol}: multiplier {multiplier!r} is not a number") from None
        return cls(
            symbol=symbol,
            exchange=exchange,
            currency=currency,
            tick_size=float(min_tick),
            multiplier=value,
            con_id=con_id,
            local_symbol=local_symbol,
            price_magnifier=max(1, int(price_magnifier or 1)),
            trading_class=trading_class,
        )

    @property
    def name(self) -> str:
        """The contract month as traders write it (``ESZ6``), else the symbol."""
        return self.local_symbol or self.symbol

    # --- the price grid ---

    @property
    def ticks_per_point(self) -> int:
        return round(1.0 / self.tick_size)

    def tick_index(self, price: float) -> int | None:
        """``price`` as a whole number of ticks; None off the grid (or NaN/inf)."""
        scaled = price * self.ticks_per_point
        if not math.isfinite(scaled):
            return None
        index = round(scaled)
        return index if abs(scaled - index) <= _GRID_TOLERANCE else None

    def tick_price(self, index: int) -> float:
        """The price of tick ``index`` (a division by a whole number: correctly rounded)."""
        return index / self.ticks_per_point

    def round_price(self, price: float) -> float:
        """The nearest price on the grid."""
        return self.tick_price(round(price * self.ticks_per_point))

    def offset(self, price: float, ticks: float) -> float:
        """``price`` moved by ``ticks`` (signed) and put on the grid."""
        return self.round_price(price + ticks * self.tick_size)

    def ticks_between(self, a: float, b: float) -> float:
        """How many ticks from ``b`` to ``a`` (signed)."""
        return (a - b) * self.ticks_per_point

    # --- money ---

    def value(self, points: float, quantity: float = 1.0) -> float:
        """What ``points`` of price move are worth on ``quantity`` contracts (currency)."""
        return points * self.multiplier * quantity

    @property
    def tick_value(self) -> float:
        """What one tick is worth on one contract."""
        return self.tick_size * self.multiplier

    def differs_from_product(self) -> str | None:
        """How the broker's contract differs from the family table, in words; None if not."""
        expected = PRODUCTS.get(self.symbol)
        if expected is None:
            return f"{self.symbol} is not in the family table"
        diffs = [
            f"{name} {ours} (expected {theirs})"
            for name, ours, theirs in (
                ("tick size", self.tick_size, expected.tick_size),
                ("multiplier", self.multiplier, expected.multiplier),
            )
            if abs(ours - theirs) > 1e-12
        ]
        return "; ".join(diffs) or None
