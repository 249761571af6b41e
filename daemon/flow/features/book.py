"""Top of book: imbalance and microprice from the latest validated quote."""

from __future__ import annotations

import math

from daemon.core.instrument import Instrument


class TopOfBook:
    """The latest quote (as `instrument`'s tick indexes); features are None until one arrives or
    when its sizes sum to 0."""

    __slots__ = ("_instrument", "ask_size", "ask_tick", "bid_size", "bid_tick", "time")

    def __init__(self, instrument: Instrument) -> None:
        self._instrument = instrument
        self.bid_tick: int | None = None
        self.ask_tick: int | None = None
        self.bid_size = 0.0
        self.ask_size = 0.0
        self.time: float | None = None

    def update(
        self, bid_tick: int, ask_tick: int, bid_size: float, ask_size: float, time: float
    ) -> None:
        self.bid_tick = bid_tick
        self.ask_tick = ask_tick
        self.bid_size = bid_size
        self.ask_size = ask_size
        self.time = time

    @property
    def bid(self) -> float | None:
        return None if self.bid_tick is None else self._instrument.tick_price(self.bid_tick)

    @property
    def ask(self) -> float | None:
        return None if self.ask_tick is None else self._instrument.tick_price(self.ask_tick)

    def _total_size(self) -> float | None:
        total = self.bid_size + self.ask_size
        if self.bid_tick is None or not math.isfinite(total) or total <= 0:
            return None
        return total

    def imbalance(self) -> float | None:
        """(bid_size - ask_size) / (bid_size + ask_size), in [-1, 1]."""
        total = self._total_size()
        return None if total is None else (self.bid_size - self.ask_size) / total

    def microprice(self) -> float | None:
        """(bid * ask_size + ask * bid_size) / (bid_size + ask_size): leans to the thin side."""
        total = self._total_size()
        if total is None or self.bid_tick is None or self.ask_tick is None:
            return None
        price = self._instrument.tick_price
        bid, ask = price(self.bid_tick), price(self.ask_tick)
        return (bid * self.ask_size + ask * self.bid_size) / total
