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


# Trades and quotes are slotted but not frozen: a frozen dataclass's __init__ costs about twice
# as much, and these are built once per tick. Nothing mutates an event after it is emitted.
@dataclass(slots=True)
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


@dataclass(slots=True)
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
class RtPrint:
    """One RTVolume (generic tick 233) report: `price;size;time;total volume;vwap;single`."""

    price: float
    size: float
    time: float  # exchange time, epoch seconds
    total_volume: float  # the session's cumulative volume after this print
    single: bool  # True: one trade; False: several trades reported together at `price`


@dataclass(frozen=True, slots=True)
class SnapshotEvent:
    """One 250 ms `reqMktData` sample: top of book, last print, cumulative volume, RTVolume.

    `prints` are the RTVolume reports that arrived with this sample, in order. In tick-by-tick
    mode a volume-only subscription sends these too (`mode` TICK_BY_TICK): they serve volume
    reconciliation only. `exchange_time` is the newest RTVolume time, or the gateway clock's
    estimate of now when the sample carried none.
    """

    seq: int
    bid: float
    ask: float
    bid_size: float
    ask_size: float
    last: float
    last_size: float
    volume: float
    exchange_time: float
    received: float
    prints: tuple[RtPrint, ...] = ()
    mode: DataMode = DataMode.SNAPSHOT


MarketEvent = TradeEvent | QuoteEvent | SnapshotEvent
