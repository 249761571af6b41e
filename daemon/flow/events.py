"""Normalized market events: what `broker.marketdata` emits and the order-flow code consumes.

Prices and sizes are passed through exactly as the gateway sent them, including invalid ones
(-1, 0, NaN): judging them is the guards' job, never the feed's. Times: `exchange_time` is the
gateway's epoch seconds for the event, `received` the local monotonic clock at receipt.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass


class DataMode(enum.StrEnum):
    TICK_BY_TICK = "tick-by-tick"
    SNAPSHOT = "snapshot"


@dataclass(frozen=True, slots=True)
class TradeEvent:
    """One print from tick-by-tick AllLast."""

    seq: int
    price: float
    size: float
    exchange_time: float
    received: float
    past_limit: bool = False
    unreported: bool = False
    mode: DataMode = DataMode.TICK_BY_TICK


@dataclass(frozen=True, slots=True)
class QuoteEvent:
    """Top of book from tick-by-tick BidAsk."""

    seq: int
    bid: float
    ask: float
    bid_size: float
    ask_size: float
    exchange_time: float
    received: float
    mode: DataMode = DataMode.TICK_BY_TICK


@dataclass(frozen=True, slots=True)
class SnapshotEvent:
    """One 250 ms `reqMktData` sample: top of book, last print and cumulative volume."""

    seq: int
    bid: float
    ask: float
    bid_size: float
    ask_size: float
    last: float
    last_size: float
    volume: float
    received: float
    rt_volume: float = float("nan")  # size of the RTVolume print(s) in this sample
    rt_time: float = float("nan")  # its exchange time, epoch seconds
    mode: DataMode = DataMode.SNAPSHOT


MarketEvent = TradeEvent | QuoteEvent | SnapshotEvent
