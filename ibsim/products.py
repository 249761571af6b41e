"""The futures family ibsim lists: CME's equity-index E-minis and Micros, and CBOT's Dow.

One row per product: where it trades, its tick (IB's `minTick`), what a point is worth (IB's
`multiplier`, sent as text: "50", "0.5"), its name, the market rule its contract details name,
and what the simulator needs of its own (a price level for synthetic data, a margin, the base
of its synthetic conIds). Every product lists the same quarterly expiries (H, M, U, Z; last
trade on the third Friday at 08:30 CT, `contracts.py`) on the CME Globex equity schedule.

Market rule 67 is the id IB reports for ES (one increment, 0.25, from price 0); rule ids name
an increment table, so the other quarter-point products share it. The ids for the 0.1 and 1.0
tables (9010, 9100) are ibsim's own: IB's numbers for them are not known here. Underlying
conIds other than ES's (11004968) and all futures conIds are synthetic but stable.

Prices stay exact on every grid by keeping them as integer tick indexes and dividing by the
whole number of ticks per point (`ticks_per_point`): 23001 / 10 is the double nearest 2300.1,
where 23001 * 0.1 is not. For a power-of-two tick (0.25) both are the same number.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Final

__all__ = [
    "EXCHANGE_ALIASES",
    "MARKET_RULES",
    "PRODUCTS",
    "Product",
    "grid_index",
    "grid_price",
    "product",
    "snap",
    "ticks_per_point",
]

# Rule id -> (low edge, increment) rows, as reqMarketRule answers them.
MARKET_RULES: Final[dict[int, tuple[tuple[float, float], ...]]] = {
    67: ((0.0, 0.25),),
    9010: ((0.0, 0.1),),
    9100: ((0.0, 1.0),),
}
EXCHANGE_ALIASES: Final = {
    "CME": frozenset({"CME", "GLOBEX"}),
    "CBOT": frozenset({"CBOT", "ECBOT"}),
}
"""Exchange names a request may use for each listing exchange (IB's older names still map)."""


def ticks_per_point(tick: float) -> int:
    """How many ticks make a point; ValueError for a tick that is not a whole fraction of one."""
    if not (math.isfinite(tick) and tick > 0):
        raise ValueError(f"tick size {tick!r} is not a positive number")
    per_point = round(1.0 / tick)
    if per_point < 1 or abs(per_point * tick - 1.0) > 1e-9:
        raise ValueError(f"tick size {tick!r} is not a whole fraction of a point")
    return per_point


def grid_index(price: float, tick: float) -> int | None:
    """`price` as a whole number of ticks when it is exactly a grid price; else None (NaN too)."""
    per_point = ticks_per_point(tick)
    scaled = price * per_point
    if not math.isfinite(scaled):
        return None
    index = round(scaled)
    return index if index / per_point == price else None


def grid_price(index: int, tick: float) -> float:
    """The price of tick `index`: the double nearest to the exact grid price."""
    return index / ticks_per_point(tick)


def snap(price: float, tick: float) -> float:
    """`price` rounded to the nearest grid price (half to even, like `round`)."""
    return grid_price(round(price / tick), tick)


@dataclass(frozen=True, slots=True)
class Product:
    """One futures product as ibsim lists and simulates it."""

    symbol: str  # also the trading class and the underlying index's symbol
    exchange: str  # CME or CBOT
    tick_size: float
    multiplier: float  # an int where whole, so that the wire shows "50", not "50.0"
    long_name: str
    market_rule_id: int
    under_con_id: int
    price_level: float  # where the synthetic market starts
    initial_margin: float  # USD per contract (order of magnitude of the exchange's)
    con_id_base: int

    def __post_init__(self) -> None:
        ticks_per_point(self.tick_size)  # refuses a tick that is not a whole fraction of a point
        if self.market_rule_id not in MARKET_RULES:
            raise ValueError(f"{self.symbol}: no market rule {self.market_rule_id}")
        if MARKET_RULES[self.market_rule_id] != ((0.0, self.tick_size),):
            raise ValueError(f"{self.symbol}: rule {self.market_rule_id} is not its tick")

    @property
    def exchanges(self) -> frozenset[str]:
        """Exchange names that describe this product in a request ("" leaves it open)."""
        return EXCHANGE_ALIASES[self.exchange] | {""}


def _row(
    symbol: str,
    exchange: str,
    tick: float,
    multiplier: float,
    name: str,
    rule: int,
    under: int,
    level: float,
    margin: float,
    index: int,
) -> Product:
    base = 600_000_000 + 1_000_000 * index  # ES keeps the conIds it always had
    return Product(symbol, exchange, tick, multiplier, name, rule, under, level, margin, base)


PRODUCTS: Final[dict[str, Product]] = {
    p.symbol: p
    for p in (
        _row("ES", "CME", 0.25, 50, "E-mini S&P 500", 67, 11004968, 5000.0, 12_650.0, 0),
        _row("MES", "CME", 0.25, 5, "Micro E-mini S&P 500", 67, 11104968, 5000.0, 1_265.0, 1),
        _row("NQ", "CME", 0.25, 20, "E-mini Nasdaq-100", 67, 11204968, 18000.0, 18_700.0, 2),
        _row("MNQ", "CME", 0.25, 2, "Micro E-mini Nasdaq-100", 67, 11304968, 18000.0, 1_870.0, 3),
        _row("RTY", "CME", 0.1, 50, "E-mini Russell 2000", 9010, 11404968, 2300.0, 7_000.0, 4),
        _row("M2K", "CME", 0.1, 5, "Micro E-mini Russell 2000", 9010, 11504968, 2300.0, 700.0, 5),
        _row("YM", "CBOT", 1.0, 5, "E-mini Dow ($5)", 9100, 11604968, 40000.0, 9_500.0, 6),
        _row("MYM", "CBOT", 1.0, 0.5, "Micro E-mini Dow", 9100, 11704968, 40000.0, 950.0, 7),
    )
}


def product(symbol: str) -> Product:
    """The product of `symbol` (any case); ValueError naming the listed ones otherwise."""
    found = PRODUCTS.get(symbol.upper())
    if found is None:
        raise ValueError(f"{symbol!r} is not a listed product (listed: {', '.join(PRODUCTS)})")
    return found
