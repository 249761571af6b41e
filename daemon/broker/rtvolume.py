"""IB's RTVolume report (generic tick 233): one trade, or a sample's trades, as a string."""

from __future__ import annotations

from daemon.flow.events import RtPrint

RT_VOLUME_TICKS = frozenset({48, 77})  # RTVolume (generic tick 233), RT Trade Volume (375)


def parse_rt_volume(text: str) -> RtPrint | None:
    """One RTVolume report `price;size;ms;total;vwap;single` as an `RtPrint`.

    None for a volume-only report (empty price, as IB sends after some corrections); ValueError
    for anything else that does not read as the six fields. Values are not judged (NaN passes).
    """
    parts = text.split(";")
    if len(parts) != 6:
        raise ValueError(f"RTVolume needs 6 fields, got {len(parts)}")
    price, size, ms, total, _vwap, single = parts
    if not price:
        return None
    if single not in ("true", "false"):
        raise ValueError(f"RTVolume single flag {single!r} is neither true nor false")
    return RtPrint(float(price), float(size), int(ms) / 1000.0, float(total), single == "true")
