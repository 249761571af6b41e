"""Market data sources for the simulated gateway: CSV trade replay, recorded days (trades and
quotes) and a synthetic generator."""

from ibsim.market.recorded import RecordedSource, is_recording, load_recording
from ibsim.market.replay import RawTrade, ReplayFileError, ReplaySource, load_trades_csv
from ibsim.market.source import (
    ListSource,
    MarketSource,
    draw_depth,
    price_to_tick,
    tick_to_price,
)
from ibsim.market.synthetic import SyntheticSource

__all__ = [
    "ListSource",
    "MarketSource",
    "RawTrade",
    "RecordedSource",
    "ReplayFileError",
    "ReplaySource",
    "SyntheticSource",
    "draw_depth",
    "is_recording",
    "load_recording",
    "load_trades_csv",
    "price_to_tick",
    "tick_to_price",
]
