"""Footprint imbalances: diagonal bid/ask comparisons and stacked runs of them.

A footprint maps a tick index to `[bid_volume, ask_volume, unclassified]`: volume that hit the
bid (sold), lifted the offer (bought), and neither, at that price. Imbalances are diagonal, as
in Sierra Chart and ATAS: the buyers at a price against the sellers one tick below it.
"""

from __future__ import annotations

BID: int = 0  # footprint column: sold at the bid
ASK: int = 1  # footprint column: bought at the offer
UNCLASSIFIED: int = 2

_NO_LEVEL = (0.0, 0.0, 0.0)


def diagonal_imbalances(
    footprint: dict[int, list[float]], ratio: float, min_volume: float
) -> tuple[list[int], list[int]]:
    """Ticks with a buy imbalance and ticks with a sell imbalance, both ascending.

    Buy at p: ask[p] >= ratio * bid[p - 1] and ask[p] >= min_volume. Sell at p: bid[p] >=
    ratio * ask[p + 1] and bid[p] >= min_volume. A missing neighbour counts as zero (so the
    minimum volume is what keeps 1 against 0 from counting), and the strong side must be > 0.
    """
    buys: list[int] = []
    sells: list[int] = []
    get = footprint.get
    for tick in sorted(footprint):
        level = footprint[tick]
        ask = level[ASK]
        if ask > 0 and ask >= min_volume and ask >= ratio * get(tick - 1, _NO_LEVEL)[BID]:
            buys.append(tick)
        bid = level[BID]
        if bid > 0 and bid >= min_volume and bid >= ratio * get(tick + 1, _NO_LEVEL)[ASK]:
            sells.append(tick)
    return buys, sells


def stacked_runs(ticks: list[int], levels: int) -> list[tuple[int, int]]:
    """(low, high) of each run of >= `levels` adjacent ticks in ascending `ticks`."""
    runs: list[tuple[int, int]] = []
    if not ticks:
        return runs
    low = high = ticks[0]
    for tick in ticks[1:]:
        if tick == high + 1:
            high = tick
            continue
        if high - low + 1 >= levels:
            runs.append((low, high))
        low = high = tick
    if high - low + 1 >= levels:
        runs.append((low, high))
    return runs
