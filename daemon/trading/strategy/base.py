"""The strategy protocol: bars and trades in, intents out."""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from daemon.flow.features import Bar
from daemon.trading.model import Intent, StrategyView, TradeUpdate


@runtime_checkable
class Strategy(Protocol):
    """A strategy returns intents (target position + bracket distances), never orders.

    It is constructed with its validated parameters (``Params``, a pydantic model on the class)
    and is called from the event loop: it must not block or do I/O. ``wants_trades`` False
    spares it the per-trade calls.
    """

    wants_trades: bool

    def on_bar(self, bar: Bar, view: StrategyView) -> Intent | None:
        """A closed time or volume bar."""
        ...

    def on_trade(self, trade: TradeUpdate, view: StrategyView) -> Intent | None:
        """Accepted trades (only when ``wants_trades``)."""
        ...
