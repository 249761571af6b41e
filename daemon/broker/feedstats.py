"""The market-data feed's counters: written by the broker edge per event, read by the status."""

from __future__ import annotations

from dataclasses import dataclass, field

from daemon.flow.events import DataMode


@dataclass
class FeedStats:
    """Counters for status.json and the status line."""

    mode: DataMode | None = None
    contract: str | None = None
    ticks_total: int = 0
    trades: int = 0
    quotes: int = 0
    snapshots: int = 0
    resubscribes: int = 0
    rolls: int = 0
    last_tick: float | None = None  # monotonic receipt of the last event of any kind
    last_trade: float | None = None
    clock_offset_s: float = 0.0  # gateway time minus local wall time
    stale: bool = False
    refusals: dict[int, int] = field(default_factory=dict)
    rt_malformed: int = 0  # RTVolume strings that did not parse (dropped)
    volume_refused: bool = False  # tick-by-tick mode runs without volume reconciliation
