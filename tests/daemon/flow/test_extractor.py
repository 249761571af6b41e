"""The whole extractor: guards → classification → features, as live and offline run it."""

from __future__ import annotations

import math
from dataclasses import astuple, fields
from datetime import datetime
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from daemon.core.instrument import Instrument
from daemon.flow.events import DataMode, MarketEvent, QuoteEvent, RtPrint, SnapshotEvent, TradeEvent
from daemon.flow.extractor import OrderFlow
from daemon.flow.prints import Health
from daemon.flow.sessions import CENTRAL
from daemon.settings import DataSettings, FlowSettings

T0 = datetime(2026, 11, 20, 9, 0, tzinfo=CENTRAL).timestamp()  # inside RTH
FLOW = FlowSettings()
DATA = DataSettings()
ES = Instrument.of_product("ES")


def make(**kw: Any) -> OrderFlow:
    return OrderFlow(FLOW, DATA, instrument=ES, **kw)


class Tape:
    """Builds events with increasing seqs."""

    def __init__(self) -> None:
        self.seq = 0

    def _next(self) -> int:
        self.seq += 1
        return self.seq

    def trade(self, price: float, size: float, t: float = T0) -> TradeEvent:
        return TradeEvent(self._next(), price, size, t, t)

    def quote(self, bid: float, ask: float, t: float = T0, sizes: float = 10) -> QuoteEvent:
        return QuoteEvent(self._next(), bid, ask, sizes, sizes, t, t)


def feed(flow: OrderFlow, events: list[MarketEvent]) -> OrderFlow:
    for ev in events:
        flow.on_event(ev)
    return flow


def test_hand_computed_session() -> None:
    tape = Tape()
    flow = feed(
        make(),
        [
            tape.quote(5000.00, 5000.25),
            tape.trade(5000.25, 2),  # at the ask: buy 2
            tape.trade(5000.00, 3),  # at the bid: sell 3
            tape.quote(5000.25, 5000.50, t=T0 + 1),
            tape.trade(5000.50, 4, t=T0 + 1),  # at the new ask: buy 4
        ],
    )
    state = flow.state()
    f = state.features
    assert state.health is Health.OK
    assert (f.session_volume, f.cvd_session, f.cvd_rth, f.last) == (9, 3, 3, 5000.50)
    assert f.vwap is not None
    assert math.isclose(f.vwap, (5000.25 * 2 + 5000.00 * 3 + 5000.50 * 4) / 9)
    assert f.poc == 5000.50
    assert state.volume_by_method == {"quote": 9}
    bar = flow.features.open_bar
    assert bar is not None
    assert (bar.open, bar.high, bar.low, bar.close, bar.volume, bar.delta) == (
        5000.25,
        5000.50,
        5000.00,
        5000.50,
        9,
        3,
    )
    assert (bar.delta_min, bar.delta_max) == (-1, 3)


def test_bad_ticks_are_counted_and_change_nothing() -> None:
    def events(with_bad: bool) -> list[MarketEvent]:
        tape = Tape()
        out: list[MarketEvent] = [tape.quote(5000.00, 5000.25), tape.trade(5000.25, 2)]
        if with_bad:
            out += [
                tape.trade(float("nan"), 1),
                tape.trade(-1.0, 1),
                tape.trade(0.0, 1),
                tape.trade(5000.10, 1),  # off the grid
                tape.trade(5000.25, 0),
                tape.quote(5000.50, 5000.25),  # crossed
                tape.quote(5000.25, 5000.25),  # locked
                tape.trade(1.7976931348623157e308, 1),  # IB's unset double
            ]
        out.append(tape.trade(5000.00, 1))
        out.append(out[-1])  # the same event delivered twice
        return out

    flow = feed(make(), events(with_bad=True))
    reference = feed(make(), events(with_bad=False))
    assert flow.state().features == reference.state().features
    assert flow.state().features.session_volume == 3
    assert sum(flow.state().rejected.values()) == 9
    assert flow.state().rejected["duplicate"] == 1
    assert flow.health is Health.OK


def test_snapshot_mode_classifies_volume_increments() -> None:
    def sample(seq: int, volume: float, last: float, prints: tuple[RtPrint, ...]) -> SnapshotEvent:
        t = T0 + seq
        return SnapshotEvent(seq, 5000.0, 5000.25, 5, 5, last, 1, volume, t, t, prints)

    flow = feed(
        make(),
        [
            sample(1, 100, 5000.0, ()),  # baseline: volume before we listened is not ours
            sample(2, 104, 5000.25, (RtPrint(5000.25, 4, T0 + 2, 104, True),)),
            sample(3, 110, 5000.0, (RtPrint(5000.0, 2, T0 + 3, 106, True),)),  # 4 unexplained
        ],
    )
    f = flow.state().features
    assert f.session_volume == 10
    assert f.session_buy_volume + f.session_sell_volume + f.session_unclassified == 10
    assert flow.state().volume_by_method["quote"] == 6
    assert flow.state().volume_by_method["bvc"] == 4


def test_snapshot_volume_before_any_price_is_counted_not_placed() -> None:
    nan = float("nan")
    flow = feed(
        make(),
        [
            SnapshotEvent(1, nan, nan, nan, nan, nan, nan, 100, T0, T0),
            SnapshotEvent(2, nan, nan, nan, nan, nan, nan, 107, T0 + 1, T0 + 1),
        ],
    )
    assert flow.unpriced_volume == 7
    assert flow.state().features.session_volume == 0
    assert flow.features.open_bar is None


def test_volume_gap_in_tick_by_tick_mode_degrades_health() -> None:
    tape = Tape()
    flow = make()

    def volume(v: float, t: float) -> SnapshotEvent:
        return SnapshotEvent(
            tape._next(), 5000, 5000.25, 1, 1, 5000, 1, v, t, t, mode=DataMode.TICK_BY_TICK
        )

    feed(flow, [tape.quote(5000.00, 5000.25), volume(1000, T0), tape.trade(5000.25, 5)])
    feed(flow, [volume(1005, T0 + 1)])
    assert flow.health is Health.OK
    # IB counts 50 more contracts than we were sent, for longer than volume_gap_after_s.
    for i in range(2, 10):
        feed(flow, [tape.quote(5000.00, 5000.25, t=T0 + i), volume(1055, T0 + i)])
    state = flow.state()
    assert state.volume_gap
    assert state.missing_volume == 50
    assert state.health is Health.DEGRADED


def test_warm_start_equals_processing_everything_in_order() -> None:
    tape = Tape()
    history = [tape.quote(5000.00, 5000.25, t=T0 - 60), tape.trade(5000.25, 3, t=T0 - 60)]
    live = [tape.quote(5000.25, 5000.50), tape.trade(5000.25, 2), tape.trade(5000.50, 1)]
    warm = make()
    warm.begin_warmup()
    feed(warm, live)
    assert warm.warming_up
    assert warm.health is not Health.OK
    assert warm.state().features.session_volume == 0  # nothing processed while held
    assert warm.finish_warmup(history, complete=True) == len(live)
    straight = feed(make(), history + live)
    assert warm.state().features == straight.state().features
    assert not warm.state().features.session_partial


def test_bars_closed_by_backfilled_history_are_not_presented_as_live() -> None:
    tape = Tape()
    seen: list[tuple[float, Health]] = []
    flow: OrderFlow | None = None

    def on_bar(bar: Any) -> None:
        assert flow is not None
        seen.append((bar.end, flow.health))

    flow = make(on_bar=on_bar)
    flow.begin_warmup()
    flow.on_event(tape.quote(5000.00, 5000.25, t=T0 + 600))
    flow.on_event(tape.trade(5000.25, 1, t=T0 + 600))
    history = []
    for minute in range(5):  # five minutes of history: four bars close while it is run
        t = T0 + 60 * minute
        history += [tape.quote(5000.00, 5000.25, t=t), tape.trade(5000.25, 2, t=t)]
    flow.finish_warmup(history, complete=True)
    assert len(seen) >= 4
    assert {health for _, health in seen} == {Health.DEGRADED}  # a strategy would not trust them
    assert not flow.warming_up
    assert flow.health is Health.OK


def test_gap_history_after_live_trades_is_not_taken_for_duplicates() -> None:
    tape = Tape()
    flow = feed(make(), [tape.quote(5000.00, 5000.25), tape.trade(5000.25, 1)])
    flow.begin_warmup()  # a reconnect: history of the gap carries its own, lower seqs
    flow.on_event(tape.trade(5000.25, 2, t=T0 + 30))
    gap = [
        TradeEvent(-2, 5000.25, 4, T0 + 10, T0 + 10),
        TradeEvent(-1, 5000.0, 1, T0 + 11, T0 + 11),
    ]
    flow.finish_warmup(gap, complete=True)
    state = flow.state()
    assert state.features.session_volume == 8
    assert state.rejected == {}


def test_incomplete_history_marks_the_session_partial() -> None:
    tape = Tape()
    flow = make()
    flow.begin_warmup()
    flow.on_event(tape.trade(5000.25, 1))
    flow.finish_warmup([], complete=False)
    assert flow.state().features.session_partial


# --- properties ---------------------------------------------------------------------------------

prices = st.integers(min_value=19_990, max_value=20_010).map(lambda i: i / 4)
clean_steps = st.lists(
    st.one_of(
        st.tuples(st.just("trade"), prices, st.integers(1, 50)),
        st.tuples(st.just("quote"), prices, st.integers(1, 4)),
    ),
    min_size=1,
    max_size=60,
)
bad_trades = st.one_of(
    st.tuples(
        st.sampled_from([float("nan"), float("inf"), -1.0, 0.0, -5000.0, 5000.1]), st.just(1.0)
    ),
    st.tuples(st.just(5000.0), st.sampled_from([0.0, -1.0, float("nan")])),
)
bad_quotes = st.sampled_from(
    [(5000.5, 5000.25), (5000.25, 5000.25), (float("nan"), 5000.0), (-1.0, 5000.0)]
)


def _build(
    steps: list[tuple[str, float, int]], bad: dict[int, list[tuple[str, Any]]]
) -> tuple[list[MarketEvent], int]:
    tape = Tape()
    events: list[MarketEvent] = []
    injected = 0
    t = T0
    for i, (kind, price, n) in enumerate(steps):
        t += 0.5
        for bad_kind, value in bad.get(i, []):
            injected += 1
            if bad_kind == "trade":
                events.append(tape.trade(value[0], value[1], t))
            else:
                events.append(tape.quote(value[0], value[1], t))
        if kind == "trade":
            events.append(tape.trade(price, float(n), t))
        else:
            events.append(tape.quote(price, price + n * 0.25, t))
    return events, injected


@settings(max_examples=150, deadline=None)
@given(
    clean_steps,
    st.dictionaries(
        st.integers(0, 59),
        st.lists(
            st.one_of(
                st.tuples(st.just("trade"), bad_trades), st.tuples(st.just("quote"), bad_quotes)
            ),
            max_size=3,
        ),
        max_size=10,
    ),
)
def test_any_bad_ticks_leave_every_feature_unchanged(
    steps: list[tuple[str, float, int]], bad: dict[int, list[tuple[str, Any]]]
) -> None:
    clean_events, _ = _build(steps, {})
    dirty_events, injected = _build(steps, bad)
    clean, dirty = feed(make(), clean_events), feed(make(), dirty_events)
    assert dirty.state().features == clean.state().features
    assert list(dirty.features.time_bars) == list(clean.features.time_bars)
    assert sum(dirty.state().rejected.values()) - sum(clean.state().rejected.values()) == injected


def _finite_or_none(value: Any) -> bool:
    if value is None or isinstance(value, bool | str):
        return True
    if isinstance(value, int | float):
        return math.isfinite(value)
    if isinstance(value, dict):
        return all(_finite_or_none(v) for v in value.values())
    if isinstance(value, list | tuple):
        return all(_finite_or_none(v) for v in value)
    return True


garbage = st.floats(allow_nan=True, allow_infinity=True)


@settings(max_examples=150, deadline=None)
@given(
    st.lists(
        st.one_of(
            st.tuples(st.just("trade"), garbage, garbage, st.floats(0, 600)),
            st.tuples(st.just("quote"), garbage, garbage, st.floats(0, 600)),
            st.tuples(st.just("trade"), prices, st.integers(1, 9).map(float), st.floats(0, 600)),
        ),
        max_size=80,
    )
)
def test_no_nan_ever_for_any_input(steps: list[tuple[str, float, float, float]]) -> None:
    tape = Tape()
    flow = make()
    for kind, a, b, dt in sorted(steps, key=lambda s: s[3]):
        if kind == "trade":
            flow.on_event(tape.trade(a, b, T0 + dt))
        else:
            flow.on_event(tape.quote(a, b, T0 + dt))
    flow.advance(T0 + 700)
    state = flow.state()
    for name in (f.name for f in fields(state.features)):
        assert _finite_or_none(getattr(state.features, name)), name
    for bar in flow.features.time_bars:
        assert _finite_or_none(astuple(bar)), bar
    bars = list(flow.features.time_bars)
    open_bar = flow.features.open_bar
    total_delta = sum(b.delta for b in bars) + (open_bar.delta if open_bar else 0.0)
    assert math.isclose(state.features.cvd_session, total_delta, abs_tol=1e-6)
    assert flow.features.cvd_session == state.features.cvd_session


def test_bars_go_to_a_listener_set_after_construction_and_survive_a_new_grid() -> None:
    tape = Tape()
    first: list[Any] = []
    later: list[Any] = []
    flow = make(on_bar=first.append)
    flow.listen_bars(later.append)  # the trader's feed, wired once it exists
    flow.set_instrument(flow.instrument)  # the same grid again (a roll): parts are rebuilt
    for minute in range(3):
        t = T0 + 60 * minute
        flow.on_event(tape.quote(5000.00, 5000.25, t=t))
        flow.on_event(tape.trade(5000.25, 1, t=t))
    assert first == []
    assert [bar.end for bar in later] == [T0 + 60, T0 + 120]
