"""Hypothesis properties of `Features`: conservation of volume, CVD = sum of bar deltas, no NaN."""

from __future__ import annotations

import itertools
import math
from dataclasses import fields
from datetime import datetime
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from daemon.core.instrument import Instrument
from daemon.flow.features import Bar, Features, FlowSnapshot
from daemon.flow.prints import Method, Print
from daemon.flow.sessions import SessionSchedule
from daemon.settings import FlowSettings

CT = ZoneInfo("America/Chicago")
ES = Instrument.of_product("ES")
STARTS = [  # just before boundaries: RTH open and close, Globex close, Friday close, Sunday open
    datetime(2026, 11, 19, 8, 25, tzinfo=CT).timestamp(),
    datetime(2026, 11, 19, 15, 10, tzinfo=CT).timestamp(),
    datetime(2026, 11, 19, 15, 55, tzinfo=CT).timestamp(),
    datetime(2026, 11, 20, 15, 58, tzinfo=CT).timestamp(),
    datetime(2026, 11, 22, 16, 58, tzinfo=CT).timestamp(),
]
STEPS = [0.0, 0.0, 0.25, 1.0, 3.0, 20.0, 70.0, 400.0, 1900.0, -0.5]

# (step, kind, tick move, size, buy share, sell share, bid size, ask size)
event = st.tuples(
    st.sampled_from(STEPS),
    st.sampled_from(["print", "print", "print", "quote", "advance"]),
    st.integers(-3, 3),
    st.one_of(st.integers(1, 40).map(float), st.floats(0.01, 40.0)),
    st.floats(0.0, 1.0),
    st.floats(0.0, 1.0),
    st.floats(0.0, 500.0),
    st.floats(0.0, 500.0),
)
flow_settings = st.builds(
    FlowSettings,
    bar=st.sampled_from([15, 60, 300, 5400]),
    volume_bar=st.sampled_from([0, 7, 50]),
    bars_kept=st.just(100_000),
    imbalance_min_volume=st.sampled_from([0.0, 3.0]),
    delta_windows_s=st.just([5, 60]),
    intensity_window_s=st.sampled_from([1.0, 2.5, 10.0]),
)


def split(size: float, buy_share: float, sell_share: float) -> tuple[float, float]:
    if size == int(size):  # whole contracts, as ES trades
        buy = float(math.floor(size * buy_share))
        return buy, float(math.floor((size - buy) * sell_share))
    buy = size * buy_share
    return buy, min((size - buy) * sell_share, size - buy)


def run(
    flow: FlowSettings,
    start: float,
    events: list[tuple[float, str, int, float, float, float, float, float]],
) -> tuple[Features, list[Bar], list[FlowSnapshot]]:
    closed: list[Bar] = []
    features = Features(flow, SessionSchedule(), on_bar=closed.append, instrument=ES)
    snapshots = []
    t, tick = start, 20_000
    for step, kind, move, size, buy_share, sell_share, bid_size, ask_size in events:
        t += step
        tick += move
        if kind == "print":
            buy, sell = split(size, buy_share, sell_share)
            features.on_print(Print(t, tick, size, buy, sell, Method.QUOTE, 1.0))
        elif kind == "quote":
            features.on_quote(tick - 1, tick, bid_size, ask_size, t)
        else:
            features.advance(t)
        snapshots.append(features.snapshot())
    return features, closed, snapshots


def assert_finite(obj: Bar | FlowSnapshot) -> None:
    for f in fields(obj):
        value = getattr(obj, f.name)
        values = value.values() if isinstance(value, dict) else [value]
        for v in values:
            if isinstance(v, float):
                assert math.isfinite(v), (f.name, v)
            if isinstance(v, list) and v and isinstance(v[0], float):
                assert all(math.isfinite(x) for x in v), (f.name, v)


def assert_bar_consistent(bar: Bar) -> None:
    assert_finite(bar)
    assert bar.trades >= 1
    assert bar.buy_volume + bar.sell_volume + bar.unclassified == pytest.approx(bar.volume)
    assert sum(sum(level) for level in bar.footprint.values()) == pytest.approx(bar.volume)
    assert bar.delta == pytest.approx(bar.buy_volume - bar.sell_volume, abs=1e-9)
    assert bar.delta_min <= bar.delta <= bar.delta_max
    assert bar.low <= min(bar.open, bar.close) <= max(bar.open, bar.close) <= bar.high
    assert bar.start <= bar.end
    for levels in bar.footprint.values():
        assert all(math.isfinite(x) for x in levels)
        assert len(levels) == 3


common = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@common
@given(flow_settings, st.sampled_from(STARTS), st.lists(event, min_size=1, max_size=80))
def test_bars_conserve_volume_and_never_emit_nan(
    flow: FlowSettings,
    start: float,
    events: list[tuple[float, str, int, float, float, float, float, float]],
) -> None:
    features, closed, snapshots = run(flow, start, events)
    for snap in snapshots:
        assert_finite(snap)
        assert snap.session_buy_volume + snap.session_sell_volume + snap.session_unclassified == (
            pytest.approx(snap.session_volume)
        )
    open_bar = features.open_bar
    if open_bar is not None:
        assert_bar_consistent(open_bar)
    features.flush()
    bars = closed
    for bar in bars:
        assert_bar_consistent(bar)
    time_bars = [b for b in bars if b.kind == "time"]
    for before, after in itertools.pairwise(time_bars):
        assert before.end <= after.start
    schedule = SessionSchedule()
    for bar in time_bars:  # never spans a Globex or RTH boundary
        globex = schedule.globex_at(bar.start)
        assert bar.session == (None if globex is None else globex.start)
        assert bar.rth == (schedule.rth_at(bar.start) is not None)
        inside = bar.end - 1e-6
        assert schedule.globex_at(inside) == globex
        assert (schedule.rth_at(inside) is not None) == bar.rth
    total = sum(p[3] for p in events if p[1] == "print")
    assert sum(b.volume for b in time_bars) == pytest.approx(total)
    if flow.volume_bar:
        volume_bars = [b for b in closed if b.kind == "volume"]
        assert sum(b.volume for b in volume_bars) == pytest.approx(total)
        for bar, after in itertools.pairwise(volume_bars):
            if bar.session == after.session:  # only the last bar of a session may be short
                assert bar.volume == pytest.approx(flow.volume_bar)
        for bar in volume_bars:
            assert bar.volume <= flow.volume_bar * (1 + 1e-9)


@common
@given(flow_settings, st.sampled_from(STARTS), st.lists(event, min_size=1, max_size=80))
def test_session_cvd_is_the_sum_of_its_bars_deltas(
    flow: FlowSettings,
    start: float,
    events: list[tuple[float, str, int, float, float, float, float, float]],
) -> None:
    features, closed, _ = run(flow, start, events)
    snap = features.snapshot()
    open_bar = features.open_bar
    bars = [b for b in closed if b.kind == "time"] + ([open_bar] if open_bar else [])
    session = [b for b in bars if b.session is not None and b.session == snap.session_start]
    assert snap.cvd_session == pytest.approx(sum(b.delta for b in session), abs=1e-9)
    assert snap.session_volume == pytest.approx(sum(b.volume for b in session))
    if snap.rth:
        rth = [b for b in session if b.rth and b.start >= (snap.rth_start or 0.0)]
        assert snap.cvd_rth == pytest.approx(sum(b.delta for b in rth), abs=1e-9)
        assert snap.rth_volume == pytest.approx(sum(b.volume for b in rth))
    else:
        assert snap.cvd_rth is None
    if snap.session_volume > 0:
        assert snap.vwap is not None
        assert snap.poc is not None
        assert snap.val is not None
        assert snap.vah is not None
        assert snap.val <= snap.poc <= snap.vah
        assert snap.vwap_sd is not None
        assert snap.vwap_sd >= 0
