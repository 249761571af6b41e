"""Tick sanity guards: every reason, spikes and gaps, snapshot parts, health, bad ticks change
nothing (property), and a real ES day passes untouched."""

from __future__ import annotations

import gzip
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import ib_async.util
import ibapi.common
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from daemon.core.instrument import Instrument
from daemon.flow.events import DataMode, QuoteEvent, RtPrint, SnapshotEvent, TradeEvent
from daemon.flow.guards import (
    UNSET_DECIMAL,
    UNSET_DOUBLE,
    UNSET_INTEGER,
    UNSET_LONG,
    Reason,
    SnapshotCheck,
    TickGuard,
)
from daemon.flow.prints import Health
from daemon.settings import FlowSettings

ES = Instrument.of_product("ES")
BAND = 8  # ticks = 2 points
CONFIRM = 2
INVALID_AFTER = 3
STALE_S = 5.0
FLOW = FlowSettings(
    bar=60,
    spike_band_ticks=BAND,
    spike_confirm_trades=CONFIRM,
    invalid_after_rejects=INVALID_AFTER,
)
T0 = 1_700_000_000.0
NAN = float("nan")
INF = float("inf")
UNSETS = [UNSET_DOUBLE, float(UNSET_INTEGER), float(UNSET_LONG), float(UNSET_DECIMAL)]
BAD_PRICES = [NAN, INF, -INF, -1.0, 0.0, -5000.0, 1e300]
BAD_TRADE_SIZES = [NAN, INF, -INF, 0.0, -1.0, -3.0]
DATA = Path(__file__).parents[3].parent / "shared/data/es_trades_2013-09-01_02.csv.gz"


class Recorder:
    """Guard plus the on_reject calls it made."""

    def __init__(self, flow: FlowSettings = FLOW) -> None:
        self.calls: list[tuple[Reason, object]] = []
        self.guard = TickGuard(flow, STALE_S, lambda r, e: self.calls.append((r, e)), instrument=ES)


def tr(seq: int, price: float, size: float = 1.0, t: float | None = None) -> TradeEvent:
    return TradeEvent(seq, price, size, T0 + seq if t is None else t, 0.0)


def qt(
    seq: int, bid: float, ask: float, bid_size: float = 5.0, ask_size: float = 5.0, t: float = T0
) -> QuoteEvent:
    return QuoteEvent(seq, bid, ask, bid_size, ask_size, t, 0.0)


def sample(
    seq: int,
    volume: float,
    prints: tuple[RtPrint, ...] = (),
    bid: float = 4999.75,
    ask: float = 5000.0,
    last: float = 5000.0,
    t: float = T0,
    bid_size: float = 10.0,
    ask_size: float = 12.0,
    mode: DataMode = DataMode.SNAPSHOT,
) -> SnapshotEvent:
    return SnapshotEvent(seq, bid, ask, bid_size, ask_size, last, 1.0, volume, t, 0.0, prints, mode)


def rt(price: float, total: float, size: float = 1.0, t: float = T0) -> RtPrint:
    return RtPrint(price, size, t, total, True)


# -- the markers are IB's --------------------------------------------------------------------


def test_unset_markers_match_the_client_libraries() -> None:
    assert UNSET_DOUBLE == ib_async.util.UNSET_DOUBLE == ibapi.common.UNSET_DOUBLE
    assert UNSET_INTEGER == ib_async.util.UNSET_INTEGER == ibapi.common.UNSET_INTEGER
    assert UNSET_LONG == ibapi.common.UNSET_LONG
    assert UNSET_DECIMAL == 2**127 - 1  # ibapi >= 10.x UNSET_DECIMAL; 9.81 predates it


# -- trades: every bad value -----------------------------------------------------------------


def _assert_rejected_and_forgotten(rec: Recorder, bad: TradeEvent, reason: Reason) -> None:
    """`bad` (after an accepted 5000.00) is rejected, counted once, and moves nothing."""
    g = rec.guard
    assert g.trade(bad) == ()
    assert g.rejected == {reason.value: 1}
    assert rec.calls == [(reason, bad)]
    # The reference is still 5000.00: 5002.00 (8 ticks) is accepted, 5002.25 would be a spike.
    nxt = tr(100, 5002.0)
    assert g.trade(nxt) == (nxt,)
    assert g.held == 0


@pytest.mark.parametrize("price", BAD_PRICES)
def test_bad_trade_price_rejected(price: float) -> None:
    rec = Recorder()
    rec.guard.trade(tr(1, 5000.0))
    _assert_rejected_and_forgotten(rec, tr(2, price), Reason.BAD_PRICE)


@pytest.mark.parametrize("price", UNSETS)
def test_unset_trade_price_rejected(price: float) -> None:
    rec = Recorder()
    rec.guard.trade(tr(1, 5000.0))
    _assert_rejected_and_forgotten(rec, tr(2, price), Reason.UNSET)


@pytest.mark.parametrize("size", BAD_TRADE_SIZES)
def test_bad_trade_size_rejected(size: float) -> None:
    rec = Recorder()
    rec.guard.trade(tr(1, 5000.0))
    _assert_rejected_and_forgotten(rec, tr(2, 5000.25, size), Reason.BAD_SIZE)


@pytest.mark.parametrize("size", UNSETS)
def test_unset_trade_size_rejected(size: float) -> None:
    rec = Recorder()
    rec.guard.trade(tr(1, 5000.0))
    _assert_rejected_and_forgotten(rec, tr(2, 5000.25, size), Reason.UNSET)


@pytest.mark.parametrize("price", [5000.10, 5000.125, 5000.01, 4999.9])
def test_off_grid_trade_rejected(price: float) -> None:
    rec = Recorder()
    rec.guard.trade(tr(1, 5000.0))
    _assert_rejected_and_forgotten(rec, tr(2, price), Reason.OFF_GRID)


def test_float_noise_on_the_grid_is_accepted() -> None:
    g = TickGuard(FLOW, STALE_S, instrument=ES)
    noisy = tr(1, 5000.25 + 1e-9)  # float noise from arithmetic upstream
    assert g.trade(noisy) == (noisy,)
    assert g.rejected == {}


def test_redelivered_trade_is_a_duplicate() -> None:
    rec = Recorder()
    g = rec.guard
    first, second = tr(1, 5000.0), tr(2, 5000.25)
    g.trade(first)
    g.trade(second)
    assert g.trade(second) == ()
    assert g.trade(first) == ()
    assert g.rejected == {"duplicate": 2}
    assert rec.calls == [(Reason.DUPLICATE, second), (Reason.DUPLICATE, first)]


def test_identical_prints_with_new_seqs_are_a_sweep_not_duplicates() -> None:
    g = TickGuard(FLOW, STALE_S, instrument=ES)
    sweep = [TradeEvent(seq, 5000.0, 2.0, T0, 0.0) for seq in (1, 2, 3)]
    assert [g.trade(ev) for ev in sweep] == [(ev,) for ev in sweep]
    assert g.rejected == {}


def test_unreported_and_past_limit_trades_are_real_volume() -> None:
    g = TickGuard(FLOW, STALE_S, instrument=ES)
    evs = [
        TradeEvent(1, 5000.0, 1.0, T0, 0.0, unreported=True),
        TradeEvent(2, 5000.0, 3.0, T0, 0.0, past_limit=True),
    ]
    assert [g.trade(ev) for ev in evs] == [(ev,) for ev in evs]


def test_only_the_first_problem_is_counted() -> None:
    g = TickGuard(FLOW, STALE_S, instrument=ES)
    g.trade(tr(1, 5000.0))
    g.trade(tr(2, NAN, -1.0))  # bad price and bad size: one rejected tick
    g.trade(tr(1, NAN))  # duplicate seq, bad price too
    assert g.rejected == {"bad_price": 1, "duplicate": 1}


# -- quotes ----------------------------------------------------------------------------------


def test_good_quote_returns_ticks() -> None:
    g = TickGuard(FLOW, STALE_S, instrument=ES)
    assert g.quote(qt(1, 5000.0, 5000.25)) == (20000, 20001)
    assert g.quote(qt(2, 5000.0, 5000.5, 0.0, 0.0)) == (20000, 20002)  # empty level sizes: fine
    assert g.rejected == {}


@pytest.mark.parametrize(
    ("bid", "ask", "reason"),
    [
        (5000.25, 5000.0, Reason.CROSSED),
        (5000.0, 5000.0, Reason.LOCKED),
        (5000.10, 5000.25, Reason.OFF_GRID),
        (5000.0, 5000.125, Reason.OFF_GRID),
        *[(p, 5000.25, Reason.BAD_PRICE) for p in BAD_PRICES],
        *[(5000.0, p, Reason.BAD_PRICE) for p in BAD_PRICES],
        *[(p, 5000.25, Reason.UNSET) for p in UNSETS],
        *[(5000.0, p, Reason.UNSET) for p in UNSETS],
    ],
)
def test_bad_quote_rejected(bid: float, ask: float, reason: Reason) -> None:
    rec = Recorder()
    ev = qt(1, bid, ask)
    assert rec.guard.quote(ev) is None
    assert rec.guard.rejected == {reason.value: 1}
    assert rec.calls == [(reason, ev)]


@pytest.mark.parametrize(
    ("size", "reason"),
    [(NAN, Reason.BAD_SIZE), (-1.0, Reason.BAD_SIZE), (INF, Reason.BAD_SIZE)]
    + [(u, Reason.UNSET) for u in UNSETS],
)
def test_bad_quote_size_rejected(size: float, reason: Reason) -> None:
    g = TickGuard(FLOW, STALE_S, instrument=ES)
    assert g.quote(qt(1, 5000.0, 5000.25, bid_size=size)) is None
    assert g.quote(qt(2, 5000.0, 5000.25, ask_size=size)) is None
    assert g.rejected == {reason.value: 2}


def test_stale_quote_rejected() -> None:
    g = TickGuard(FLOW, STALE_S, instrument=ES)
    g.trade(tr(1, 5000.0, t=T0 + 100))
    assert g.quote(qt(1, 4999.75, 5000.0, t=T0 + 95)) == (19999, 20000)  # exactly 5 s: fine
    assert g.quote(qt(2, 4999.75, 5000.0, t=T0 + 94.9)) is None
    assert g.rejected == {"stale_quote": 1}


def test_rejected_events_do_not_advance_the_clock() -> None:
    g = TickGuard(FLOW, STALE_S, instrument=ES)
    g.trade(tr(1, 5000.0, t=T0))
    g.trade(tr(2, -1.0, t=T0 + 1000))  # rejected: its time must not make quotes stale
    g.quote(qt(3, 5000.0, 4999.75, t=T0 + 1000))  # crossed, likewise
    assert g.quote(qt(4, 4999.75, 5000.0, t=T0)) == (19999, 20000)


def test_rejected_quote_does_not_move_the_spike_range() -> None:
    g = TickGuard(FLOW, STALE_S, instrument=ES)
    g.trade(tr(1, 5000.0))
    g.quote(qt(2, 5010.25, 5010.0))  # crossed at a far level: must not vouch for it
    assert g.trade(tr(3, 5010.0)) == ()
    assert g.held == 1


# -- spikes and gaps -------------------------------------------------------------------------


def test_spike_rejected_when_the_next_trade_returns() -> None:
    rec = Recorder()
    g = rec.guard
    g.trade(tr(1, 5000.0))
    spike = tr(2, 5010.0)
    assert g.trade(spike) == ()
    assert (g.held, g.health, g.rejected) == (1, Health.DEGRADED, {})
    back = tr(3, 5000.25)
    assert g.trade(back) == (back,)
    assert (g.held, g.health, g.rejected) == (0, Health.OK, {"spike": 1})
    assert rec.calls == [(Reason.SPIKE, spike)]


def test_one_tick_past_the_band_is_a_spike_and_the_band_edge_is_not() -> None:
    g = TickGuard(FLOW, STALE_S, instrument=ES)
    g.trade(tr(1, 5000.0))
    edge = tr(2, 5002.0)  # +8 ticks from 5000.00
    assert g.trade(edge) == (edge,)
    assert g.trade(tr(3, 4999.75)) == ()  # -9 ticks from 5002.00


def test_real_gap_released_in_order_after_confirmations() -> None:
    g = TickGuard(FLOW, STALE_S, instrument=ES)
    g.trade(tr(1, 5000.0))
    gap = [tr(2, 5010.0, 4.0), tr(3, 5010.25, 1.0), tr(4, 5010.0, 2.0)]
    assert g.trade(gap[0]) == ()
    assert g.trade(gap[1]) == ()
    assert g.held == 2
    assert g.trade(gap[2]) == tuple(gap)  # nothing lost, in order
    assert (g.held, g.health, g.rejected) == (0, Health.OK, {})
    # The new level is the reference now: near it is normal, the old level is the spike.
    nxt = tr(5, 5010.5)
    assert g.trade(nxt) == (nxt,)
    assert g.trade(tr(6, 5000.0)) == ()


def test_single_confirmation_setting() -> None:
    g = TickGuard(
        FlowSettings(bar=60, spike_band_ticks=BAND, spike_confirm_trades=1), STALE_S, instrument=ES
    )
    g.trade(tr(1, 5000.0))
    a, b = tr(2, 4990.0), tr(3, 4990.0)
    assert g.trade(a) == ()
    assert g.trade(b) == (a, b)


def test_gap_confirmed_by_a_quote() -> None:
    g = TickGuard(FLOW, STALE_S, instrument=ES)
    g.trade(tr(1, 5000.0))
    spike = tr(2, 5010.0)
    assert g.trade(spike) == ()
    assert g.quote(qt(3, 5009.75, 5010.0)) == (20039, 20040)
    nxt = tr(4, 5010.25)
    assert g.trade(nxt) == (spike, nxt)
    assert g.rejected == {}


def test_trade_within_the_quote_is_no_spike() -> None:
    g = TickGuard(FLOW, STALE_S, instrument=ES)
    g.trade(tr(1, 5000.0))
    g.quote(qt(2, 5004.75, 5005.0))  # the market moved; no trade yet
    inside = tr(3, 5007.0)  # 28 ticks from the last trade, 8 above the ask
    assert g.trade(inside) == (inside,)
    assert g.trade(tr(4, 4997.75)) == ()  # 37 ticks below, 20 below bid - band


def test_no_spike_check_on_the_first_trade_and_a_bad_first_trade_loses_nothing() -> None:
    g = TickGuard(FLOW, STALE_S, instrument=ES)
    wild = tr(1, 6000.0)
    assert g.trade(wild) == (wild,)
    real = [tr(2, 5000.0), tr(3, 5000.25), tr(4, 5000.0)]
    assert [g.trade(ev) for ev in real] == [(), (), tuple(real)]


def test_a_third_level_rejects_the_held_spike_and_is_suspected_in_turn() -> None:
    g = TickGuard(FLOW, STALE_S, instrument=ES)
    g.trade(tr(1, 5000.0))
    g.trade(tr(2, 5010.0))
    assert g.trade(tr(3, 4990.0)) == ()
    assert (g.held, g.rejected) == (1, {"spike": 1})
    back = tr(4, 5000.0)
    assert g.trade(back) == (back,)
    assert g.rejected == {"spike": 2}


def test_overlapping_bands_go_to_the_closer_level() -> None:
    # Reference 5000.00 (tick 20000), spike 5002.50 (+10). 5001.75 (+7) is within both bands
    # but closer to the spike: a confirmation. 5001.25 (+5) is equally far: back to normal.
    g = TickGuard(FLOW, STALE_S, instrument=ES)
    g.trade(tr(1, 5000.0))
    g.trade(tr(2, 5002.5))
    assert g.trade(tr(3, 5001.75)) == ()
    assert g.held == 2
    g2 = TickGuard(FLOW, STALE_S, instrument=ES)
    g2.trade(tr(1, 5000.0))
    g2.trade(tr(2, 5002.5))
    back = tr(3, 5001.25)
    assert g2.trade(back) == (back,)
    assert g2.rejected == {"spike": 1}


def test_bad_ticks_while_holding_change_nothing() -> None:
    g = TickGuard(FLOW, STALE_S, instrument=ES)
    g.trade(tr(1, 5000.0))
    s1, s2, s3 = tr(2, 5010.0), tr(4, 5010.0), tr(6, 5010.0)
    g.trade(s1)
    assert g.trade(tr(3, NAN)) == ()
    g.trade(s2)
    assert g.trade(tr(5, 5010.1)) == ()
    assert g.trade(s3) == (s1, s2, s3)
    assert g.rejected == {"bad_price": 1, "off_grid": 1}


def test_flush_rejects_held_spikes() -> None:
    rec = Recorder()
    g = rec.guard
    g.trade(tr(1, 5000.0))
    a, b = tr(2, 5010.0), tr(3, 5010.0)
    g.trade(a)
    g.trade(b)
    g.flush()
    assert (g.held, g.rejected) == (0, {"spike": 2})
    assert rec.calls == [(Reason.SPIKE, a), (Reason.SPIKE, b)]


# -- health ----------------------------------------------------------------------------------


def test_health_transitions() -> None:
    g = TickGuard(FLOW, STALE_S, instrument=ES)
    seen = [g.health]
    g.quote(qt(1, 4999.75, 5000.0))
    seen.append(g.health)  # quotes alone: no trade yet
    g.trade(tr(1, 5000.0))
    seen.append(g.health)
    for seq in range(2, 2 + INVALID_AFTER - 1):
        g.trade(tr(seq, -1.0))
    seen.append(g.health)  # one short of the limit
    g.quote(qt(9, 4999.75, 5000.0))  # a good quote does not vouch for the trades
    g.trade(tr(10, 0.0))
    seen.append(g.health)
    g.trade(tr(11, 5000.0))
    seen.append(g.health)
    g.trade(tr(12, 5010.0))
    seen.append(g.health)  # holding a suspected spike
    g.trade(tr(13, 5000.0))
    seen.append(g.health)
    invalid, ok, degraded = Health.INVALID, Health.OK, Health.DEGRADED
    assert seen == [invalid, invalid, ok, ok, invalid, ok, degraded, ok]


def test_consecutive_bad_quotes_make_data_invalid() -> None:
    g = TickGuard(FLOW, STALE_S, instrument=ES)
    g.trade(tr(1, 5000.0))
    for seq in range(INVALID_AFTER):
        g.quote(qt(seq, 5000.0, 5000.0))
    seen = [g.health]
    g.trade(tr(2, 5000.0))
    seen.append(g.health)  # trades are fine; the quote feed still is not
    g.quote(qt(9, 4999.75, 5000.0))
    seen.append(g.health)
    assert seen == [Health.INVALID, Health.INVALID, Health.OK]


def test_spike_rejections_count_as_consecutive_rejects() -> None:
    g = TickGuard(
        FlowSettings(bar=60, spike_band_ticks=BAND, invalid_after_rejects=1), STALE_S, instrument=ES
    )
    g.trade(tr(1, 5000.0))
    g.trade(tr(2, 5010.0))
    g.flush()
    assert g.health is Health.INVALID


# -- snapshot samples ------------------------------------------------------------------------


def test_snapshot_volume_increments_reset_and_missing() -> None:
    rec = Recorder()
    g = rec.guard
    increments = [
        g.snapshot(sample(seq, vol)).volume_increment
        for seq, vol in enumerate([100.0, 100.0, 107.0, 3.0, 5.0, NAN, 9.0])
    ]
    assert increments == [None, 0.0, 7.0, None, 2.0, None, 4.0]
    assert g.rejected == {"volume_reset": 1}
    assert [r for r, _ in rec.calls] == [Reason.VOLUME_RESET]


@pytest.mark.parametrize(
    ("volume", "reason"), [(-1.0, Reason.BAD_SIZE), (INF, Reason.BAD_SIZE), (UNSET_DOUBLE, "unset")]
)
def test_bad_snapshot_volume_counted_and_baseline_kept(volume: float, reason: str) -> None:
    g = TickGuard(FLOW, STALE_S, instrument=ES)
    g.snapshot(sample(1, 100.0))
    assert g.snapshot(sample(2, volume)).volume_increment is None
    assert g.snapshot(sample(3, 104.0)).volume_increment == 4.0
    assert g.rejected == {str(reason): 1}


def test_snapshot_quote_and_last() -> None:
    g = TickGuard(FLOW, STALE_S, instrument=ES)
    check = g.snapshot(sample(1, 10.0, bid=4999.75, ask=5000.0, bid_size=0.0, last=5000.25))
    assert check == SnapshotCheck((19999, 20000, 0.0, 12.0), 20001, None, [])
    assert g.rejected == {}


@pytest.mark.parametrize(
    ("kwargs", "reason"),
    [
        ({"bid": 5000.25, "ask": 5000.0}, "crossed_quote"),
        ({"bid": 5000.0, "ask": 5000.0}, "locked_quote"),
        ({"bid": -1.0}, "bad_price"),
        ({"ask": 0.0}, "bad_price"),
        ({"bid": UNSET_DOUBLE}, "unset"),
        ({"ask": 5000.1}, "off_grid"),
        ({"bid_size": -1.0}, "bad_size"),
        ({"t": T0 - 10}, "stale_quote"),
    ],
)
def test_bad_snapshot_quote_is_one_count_and_the_rest_survives(
    kwargs: dict[str, Any], reason: str
) -> None:
    g = TickGuard(FLOW, STALE_S, instrument=ES)
    g.trade(tr(1, 5000.0, t=T0))
    check = g.snapshot(sample(2, 50.0, (rt(5000.0, 7.0),), **kwargs))
    assert check.quote is None
    assert check.last_tick == 20000
    assert check.prints == [(20000, 1.0, T0, True)]
    assert g.rejected == {reason: 1}


def test_nan_in_a_snapshot_is_absent_not_bad() -> None:
    g = TickGuard(FLOW, STALE_S, instrument=ES)
    nans: list[dict[str, Any]] = [{"bid": NAN}, {"ask": NAN}, {"ask_size": NAN}]
    for kwargs in nans:
        assert g.snapshot(sample(1, 10.0, **kwargs)).quote is None
    assert g.snapshot(sample(2, NAN, last=NAN)).last_tick is None
    assert g.rejected == {}


@pytest.mark.parametrize(
    ("last", "reason"),
    [
        (-1.0, "bad_price"),
        (0.0, "bad_price"),
        (INF, "bad_price"),
        (UNSET_DOUBLE, "unset"),
        (5000.1, "off_grid"),
    ],
)
def test_bad_snapshot_last(last: float, reason: str) -> None:
    g = TickGuard(FLOW, STALE_S, instrument=ES)
    assert g.snapshot(sample(1, 10.0, last=last)).last_tick is None
    assert g.rejected == {reason: 1}


def test_every_bad_part_of_a_sample_counts_once() -> None:
    g = TickGuard(FLOW, STALE_S, instrument=ES)
    g.snapshot(sample(1, 100.0, (rt(5000.0, 100.0),)))
    bad = sample(
        2,
        UNSET_DOUBLE,
        (rt(-1.0, 101.0), rt(5000.0, 100.0), rt(5000.0, 102.0, size=0.0)),
        bid=5000.0,
        ask=5000.0,
        last=-1.0,
    )
    assert g.snapshot(bad) == SnapshotCheck(None, None, None, [])
    assert g.rejected == {
        "locked_quote": 1,
        "bad_price": 2,  # the last and the first print
        "unset": 1,  # the volume
        "duplicate": 1,
        "bad_size": 1,
    }


def test_rt_prints_duplicates_and_sweeps() -> None:
    g = TickGuard(FLOW, STALE_S, instrument=ES)
    first = g.snapshot(sample(1, 3.0, (rt(5000.0, 1.0), rt(5000.0, 2.0), rt(5000.0, 3.0))))
    assert [p[0] for p in first.prints] == [20000] * 3  # identical prints, new totals: a sweep
    again = g.snapshot(sample(2, 4.0, (rt(5000.0, 3.0), rt(5000.25, 4.0))))
    assert again.prints == [(20001, 1.0, T0, True)]
    assert g.rejected == {"duplicate": 1}


def test_rt_prints_after_a_volume_reset_are_counted_from_the_new_baseline() -> None:
    g = TickGuard(FLOW, STALE_S, instrument=ES)
    g.snapshot(sample(1, 900.0, (rt(5000.0, 900.0),)))
    # The session rolled over: an old-count print first, then the count starts again.
    check = g.snapshot(sample(2, 2.0, (rt(5000.0, 901.0), rt(5000.0, 1.0), rt(5000.0, 2.0))))
    assert check.volume_increment is None
    assert len(check.prints) == 3
    dup = g.snapshot(sample(3, 3.0, (rt(5000.0, 2.0), rt(5000.0, 3.0))))
    assert len(dup.prints) == 1
    assert g.rejected == {"volume_reset": 1, "duplicate": 1}


def test_rt_print_spike_held_across_samples_then_released() -> None:
    g = TickGuard(FLOW, STALE_S, instrument=ES)
    g.snapshot(sample(1, 1.0, (rt(5000.0, 1.0),)))
    held = g.snapshot(sample(2, 3.0, (rt(5010.0, 2.0, 2.0), rt(5010.25, 3.0))))
    assert (held.prints, g.held, g.health) == ([], 2, Health.DEGRADED)
    done = g.snapshot(sample(3, 4.0, (rt(5010.0, 4.0),), bid=5009.75, ask=5010.0, last=5010.0))
    assert [(p[0], p[1]) for p in done.prints] == [(20040, 2.0), (20041, 1.0), (20040, 1.0)]
    assert g.rejected == {}


def test_rt_print_spike_rejected() -> None:
    g = TickGuard(FLOW, STALE_S, instrument=ES)
    g.snapshot(sample(1, 1.0, (rt(5000.0, 1.0),)))
    check = g.snapshot(sample(2, 3.0, (rt(4000.0, 2.0), rt(5000.0, 3.0))))
    assert [p[0] for p in check.prints] == [20000]
    assert g.rejected == {"spike": 1}


def test_tick_by_tick_samples_only_judge_volume() -> None:
    g = TickGuard(FLOW, STALE_S, instrument=ES)
    tbt = DataMode.TICK_BY_TICK
    g.snapshot(sample(1, 10.0, mode=tbt))
    check = g.snapshot(
        sample(2, 12.0, (rt(-1.0, 1.0),), bid=5000.0, ask=5000.0, last=-1.0, mode=tbt)
    )
    assert check == SnapshotCheck(None, None, 2.0, [])
    assert g.rejected == {}


# -- property: bad ticks change nothing ------------------------------------------------------


@dataclass
class Stream:
    """A clean event sequence and the same with bad ticks interleaved."""

    clean: list[TradeEvent | QuoteEvent] = field(default_factory=list)
    dirty: list[tuple[TradeEvent | QuoteEvent, bool]] = field(default_factory=list)  # (ev, bad)
    injected: int = 0


BAD_TRADE_FIELDS = [("price", p) for p in BAD_PRICES + UNSETS + [5000.1, 5000.125]] + [
    ("size", s) for s in BAD_TRADE_SIZES + UNSETS
]
BAD_QUOTES = ["crossed", "locked", "bid", "ask", "size", "off_grid", "stale"]


@st.composite
def streams(draw: st.DrawFn) -> Stream:
    """Clean ES-like trades and quotes moving a tick or two at a time (never a spike), with bad
    ticks of every kind slipped in between: at most one spike per gap, and only after a clean
    trade that came after the previous spike. (Two far prints at one level with no good trade
    between them confirm each other, exactly as a real gap does: that is not a bad tick.)"""
    n = draw(st.integers(1, 60))
    tick = draw(st.integers(19_000, 21_000))
    time = T0
    seq = 0
    out = Stream()
    last_trade: TradeEvent | None = None
    newest = -INF
    may_spike = False  # a clean trade since the last spike
    for _ in range(n):
        for _ in range(draw(st.integers(0, 3))):
            seq += 1
            kind = draw(st.sampled_from(["trade", "quote", "dup", "spike"]))
            bad_time = time + draw(st.sampled_from([0.0, 1000.0, -1000.0]))
            bad: TradeEvent | QuoteEvent
            if kind == "trade":
                name, value = draw(st.sampled_from(BAD_TRADE_FIELDS))
                price, size = (value, 1.0) if name == "price" else (tick / 4, value)
                bad = TradeEvent(seq, price, size, bad_time, 0.0)
            elif kind == "dup" and last_trade is not None:
                bad = last_trade
            elif kind == "spike" and may_spike:
                may_spike = False
                # Far beyond any drift of the clean path (<= 2 ticks a step, <= 60 steps).
                away = draw(st.sampled_from([-1, 1])) * draw(st.integers(400, 4000))
                bad = TradeEvent(seq, (tick + away) / 4, 1.0, time, 0.0)
            else:
                what = draw(st.sampled_from(BAD_QUOTES))
                if what == "stale" and newest == -INF:
                    what = "crossed"
                bid, ask, bid_size = (tick - 1) / 4, tick / 4, 3.0
                qtime = newest - STALE_S - 0.5 if what == "stale" else bad_time
                if what == "crossed":
                    bid, ask = ask, bid
                elif what == "locked":
                    bid = ask
                elif what in ("bid", "ask"):
                    value = draw(st.sampled_from(BAD_PRICES + UNSETS))
                    bid, ask = (value, ask) if what == "bid" else (bid, value)
                elif what == "size":
                    bid_size = draw(st.sampled_from([NAN, -1.0, INF, *UNSETS]))
                elif what == "off_grid":
                    bid = bid + 0.1
                bad = QuoteEvent(seq, bid, ask, bid_size, 4.0, qtime, 0.0)
            out.dirty.append((bad, True))
            out.injected += 1
        seq += 1
        time += draw(st.sampled_from([0.0, 0.25, 1.0]))
        tick += draw(st.integers(-2, 2))
        good: TradeEvent | QuoteEvent
        if draw(st.booleans()):
            good = TradeEvent(seq, tick / 4, float(draw(st.integers(1, 50))), time, 0.0)
            last_trade = good
            may_spike = True
        else:
            spread = draw(st.integers(1, 2))
            low = tick - draw(st.integers(0, spread))
            good = QuoteEvent(seq, low / 4, (low + spread) / 4, 1.0, 0.0, time, 0.0)
        newest = max(newest, time)
        out.clean.append(good)
        out.dirty.append((good, False))
    return out


def _feed(g: TickGuard, ev: TradeEvent | QuoteEvent) -> object:
    return g.trade(ev) if isinstance(ev, TradeEvent) else g.quote(ev)


@settings(max_examples=300, deadline=None)
@given(streams())
def test_bad_ticks_change_nothing(stream: Stream) -> None:
    clean = TickGuard(FLOW, STALE_S, instrument=ES)
    expected = [_feed(clean, ev) for ev in stream.clean]
    clean.flush()
    assert clean.rejected == {}

    dirty = TickGuard(FLOW, STALE_S, instrument=ES)
    got = []
    for ev, bad in stream.dirty:
        out = _feed(dirty, ev)
        if bad:
            assert out in ((), None)
        else:
            got.append(out)
    dirty.flush()
    assert got == expected
    assert sum(dirty.rejected.values()) == stream.injected
    assert dirty.held == 0


@st.composite
def sample_streams(draw: st.DrawFn) -> tuple[list[SnapshotEvent], list[SnapshotEvent], int]:
    """Clean 250 ms samples; the dirty copy has bad RtPrints slipped into them and whole bad
    samples (marked by an unset volume) in between. Returns (clean, dirty, injected)."""
    tick = 20_000
    total = 0.0
    time = T0
    clean: list[SnapshotEvent] = []
    dirty: list[SnapshotEvent] = []
    injected = 0
    sent: list[RtPrint] = []
    for seq in range(draw(st.integers(1, 30))):
        time += 0.25
        good: list[RtPrint] = []
        bad_prints: list[tuple[int, RtPrint]] = []
        for _ in range(draw(st.integers(0, 4))):
            tick += draw(st.integers(-1, 1))
            size = float(draw(st.integers(1, 9)))
            total += size
            good.append(RtPrint(tick / 4, size, time, total, draw(st.booleans())))
        for _ in range(draw(st.integers(0, 3))):
            where = draw(st.integers(0, len(good)))
            kind = draw(st.sampled_from(["price", "size", "grid", "dup", "unset_total"]))
            if kind == "dup" and sent:
                bad_print = draw(st.sampled_from(sent))
            elif kind == "price":
                bad_print = RtPrint(
                    draw(st.sampled_from(BAD_PRICES + UNSETS)), 1.0, time, 1e9, True
                )
            elif kind == "size":
                size = draw(st.sampled_from(BAD_TRADE_SIZES + UNSETS))
                bad_print = RtPrint(tick / 4, size, time, 1e9, True)
            elif kind == "unset_total":
                bad_print = RtPrint(tick / 4, 1.0, time, float(UNSET_LONG), True)
            else:
                bad_print = RtPrint(tick / 4 + 0.1, 1.0, time, 1e9, True)
            bad_prints.append((where, bad_print))
            injected += 1
        mixed = list(good)
        for where, bad_print in sorted(bad_prints, key=lambda x: -x[0]):
            mixed.insert(where, bad_print)
        sent.extend(good)
        quote: dict[str, Any] = {
            "bid": (tick - 1) / 4,
            "ask": tick / 4,
            "last": tick / 4,
            "t": time,
        }
        clean.append(sample(seq, total, tuple(good), **quote))
        dirty.append(sample(seq, total, tuple(mixed), **quote))
        if draw(st.booleans()):  # a whole bad sample: crossed, bad last, unset volume
            dirty.append(
                sample(
                    seq,
                    float(UNSET_INTEGER),
                    (RtPrint(-1.0, 1.0, time, 1e9, True),),
                    bid=tick / 4,
                    ask=(tick - 1) / 4,
                    last=0.0,
                    t=time,
                )
            )
            injected += 4
    return clean, dirty, injected


@settings(max_examples=200, deadline=None)
@given(sample_streams())
def test_bad_snapshot_parts_change_nothing(
    data: tuple[list[SnapshotEvent], list[SnapshotEvent], int],
) -> None:
    clean_samples, dirty_samples, injected = data
    clean = TickGuard(FLOW, STALE_S, instrument=ES)
    expected = [clean.snapshot(ev) for ev in clean_samples]
    assert clean.rejected == {}
    dirty = TickGuard(FLOW, STALE_S, instrument=ES)
    got = []
    for ev in dirty_samples:
        check = dirty.snapshot(ev)
        if ev.volume == float(UNSET_INTEGER):
            assert check == SnapshotCheck(None, None, None, [])
        else:
            got.append(check)
    assert got == expected
    assert sum(dirty.rejected.values()) == injected


# -- real data -------------------------------------------------------------------------------


@pytest.mark.skipif(not DATA.exists(), reason=f"real ES trades not present at {DATA}")
def test_a_real_es_day_passes_untouched() -> None:
    central = ZoneInfo("America/Chicago")
    g = TickGuard(FlowSettings(bar=60), STALE_S, instrument=ES)
    accepted = 0
    rows = 0
    with gzip.open(DATA, "rt") as f:
        next(f)
        for seq, line in enumerate(f):
            stamp, price, size = line.rstrip().split(",")
            t = datetime.fromisoformat(stamp).replace(tzinfo=central).timestamp()
            accepted += len(g.trade(TradeEvent(seq, float(price), float(size), t, 0.0)))
            rows += 1
    g.flush()
    assert rows == 66_321
    assert accepted == rows
    assert g.rejected == {}
    assert g.health is Health.OK


def test_tick_index_agrees_with_the_fast_grid_check() -> None:
    g = TickGuard(FLOW, STALE_S, instrument=ES)
    for seq, cents in enumerate(range(499_000, 501_000)):
        price = cents / 100
        accepted = bool(g.trade(tr(seq, price)))
        assert accepted == (ES.tick_index(price) is not None), price
