"""The flow on every grid of the family: ES and MES (0.25), RTY and M2K (0.1), YM and MYM (1.0).

Prices are judged on the instrument's grid and the spike band counts its ticks; every price that
comes out (bars, footprint, profile, book) is exactly the decimal the exchange prints, VWAP and
its bands are in the instrument's points, and a tape replayed on any grid gives the same delta
and CVD as the ES tape it is scaled from.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

import pytest

from daemon.core.instrument import Instrument, InstrumentError
from daemon.flow.events import MarketEvent, QuoteEvent, RtPrint, SnapshotEvent, TradeEvent
from daemon.flow.extractor import OrderFlow
from daemon.flow.features import Bar, FlowSnapshot
from daemon.flow.guards import Reason, TickGuard
from daemon.flow.sessions import CENTRAL
from daemon.settings import DataSettings, FlowSettings

ES, MES, RTY, M2K, YM, MYM = (
    Instrument.of_product(s) for s in ("ES", "MES", "RTY", "M2K", "YM", "MYM")
)
FAMILY = [ES, MES, RTY, M2K, YM, MYM]
THREE = [ES, RTY, YM]  # one of each grid
T0 = datetime(2026, 11, 19, 9, 0, tzinfo=CENTRAL).timestamp()  # a Thursday, inside RTH
BAND = 8
FLOW = FlowSettings(bar=60, spike_band_ticks=BAND, spike_confirm_trades=2, volume_bar=7)
DATA = DataSettings()
STALE_S = 5.0


def ids(instrument: Instrument) -> str:
    return instrument.symbol


def wire(instrument: Instrument, tick: int) -> float:
    """Tick `tick` as the gateway sends it: the exchange's decimal, read as a float."""
    return float(Decimal(tick) / Decimal(instrument.ticks_per_point))


def exact(instrument: Instrument, price: float | None) -> bool:
    """`price` is the float of a grid decimal, with no rounding noise (no 2340.2000000000003)."""
    if price is None:
        return False
    tick = instrument.tick_index(price)
    return tick is not None and price == wire(instrument, tick)


def trade(seq: int, price: float, size: float = 1.0, t: float | None = None) -> TradeEvent:
    time = T0 + seq if t is None else t
    return TradeEvent(seq, price, size, time, time)


# --- the guard: the grid and the spike band ------------------------------------------------------


@dataclass(frozen=True)
class Grid:
    instrument: Instrument
    on: str  # a price on the grid, as the wire spells it
    off: tuple[str, ...]  # prices off it


GRIDS = [
    Grid(ES, "5000.25", ("5000.1", "5000.3", "5000.125")),
    Grid(MES, "5000.75", ("5000.2", "5000.05")),
    Grid(RTY, "2345.3", ("2345.35", "2345.25", "2345.31")),
    Grid(M2K, "2345.3", ("2345.35", "2345.05")),
    Grid(YM, "34001", ("34000.5", "34000.25", "34000.1")),
    Grid(MYM, "34001", ("34000.5", "34001.9")),
]


@pytest.mark.parametrize("grid", GRIDS, ids=lambda g: g.instrument.symbol)
def test_on_grid_prices_pass_and_off_grid_ones_are_rejected(grid: Grid) -> None:
    inst = grid.instrument
    g = TickGuard(FLOW, STALE_S, instrument=inst)
    on = float(grid.on)
    tick = inst.tick_index(on)
    assert tick is not None
    accepted = g.trade(trade(1, on))
    assert len(accepted) == 1
    for seq, text in enumerate(grid.off, 2):
        assert g.trade(trade(seq, float(text))) == ()
    assert g.rejected == {Reason.OFF_GRID.value: len(grid.off)}
    # Quotes and RTVolume prints: the same grid.
    ask = wire(inst, tick + 1)
    assert g.quote(QuoteEvent(10, on, ask, 5, 5, T0 + 10, 0.0)) == (tick, tick + 1)
    assert g.quote(QuoteEvent(11, on, float(grid.off[0]), 5, 5, T0 + 11, 0.0)) is None
    prints = (
        RtPrint(on, 2, T0 + 12, 100, True),
        RtPrint(float(grid.off[0]), 1, T0 + 12, 101, True),
    )
    check = g.snapshot(SnapshotEvent(12, on, ask, 5, 5, on, 1, 101, T0 + 12, 0.0, prints))
    assert check.quote == (tick, tick + 1, 5, 5)
    assert [p[0] for p in check.prints] == [tick]
    assert g.rejected == {Reason.OFF_GRID.value: len(grid.off) + 2}


@pytest.mark.parametrize("inst", FAMILY, ids=ids)
def test_the_guard_takes_exactly_the_instruments_grid(inst: Instrument) -> None:
    # Every cent over 20 points, as decimals from the wire: accepted iff on the grid.
    g = TickGuard(FLOW, STALE_S, instrument=inst)
    start = 2000 * 100 * inst.ticks_per_point  # a price in cents, on every grid
    ticks = []
    for seq, cents in enumerate(range(start, start + 2000), 1):
        price = cents / 100
        passed = g.trade(trade(seq, price))
        assert bool(passed) == (inst.tick_index(price) is not None), price
        ticks += [inst.tick_index(p.price) for p in passed]
    per_cent = {4: 25, 10: 10, 1: 100}[inst.ticks_per_point]  # cents per tick
    first = start // per_cent
    assert ticks == list(range(first, first + 2000 // per_cent))
    assert g.rejected == {Reason.OFF_GRID.value: 2000 - len(ticks)}


@pytest.mark.parametrize("inst", FAMILY, ids=ids)
def test_the_spike_band_counts_the_instruments_ticks(inst: Instrument) -> None:
    base = 20_000
    inside = TickGuard(FLOW, STALE_S, instrument=inst)
    inside.trade(trade(1, wire(inst, base)))
    assert len(inside.trade(trade(2, wire(inst, base + BAND)))) == 1  # 2 ES pts, 0.8 RTY, 8 YM
    assert len(inside.trade(trade(3, wire(inst, base)))) == 1
    outside = TickGuard(FLOW, STALE_S, instrument=inst)
    outside.trade(trade(1, wire(inst, base)))
    assert outside.trade(trade(2, wire(inst, base + BAND + 1))) == ()  # held as a spike
    assert outside.held == 1
    back = trade(3, wire(inst, base))
    assert outside.trade(back) == (back,)  # the market came back: the held trade is rejected
    assert outside.rejected == {Reason.SPIKE.value: 1}
    assert outside.held == 0


# --- prices out: exact on every grid -------------------------------------------------------------


def sweep_flow(inst: Instrument) -> tuple[OrderFlow, list[Bar], list[int]]:
    """Trades walking up then down 60 ticks, 2 s apart, with a quote before each."""
    bars: list[Bar] = []
    flow = OrderFlow(FLOW, DATA, instrument=inst, on_bar=bars.append)
    walk = [*range(23_400, 23_460), *range(23_460, 23_400, -1)]
    seq = 0
    for n, tick in enumerate(walk):
        t = T0 + 2 * n
        flow.on_event(
            QuoteEvent(seq := seq + 1, wire(inst, tick - 1), wire(inst, tick), 5, 9, t, t)
        )
        flow.on_event(TradeEvent(seq := seq + 1, wire(inst, tick), 1 + n % 3, t, t))
    return flow, bars, walk


@pytest.mark.parametrize("inst", FAMILY, ids=ids)
def test_bar_footprint_profile_and_book_prices_are_exact(inst: Instrument) -> None:
    flow, bars, walk = sweep_flow(inst)
    snap = flow.state().features
    flow.flush()
    time_bars = [b for b in bars if b.kind == "time"]
    volume_bars = [b for b in bars if b.kind == "volume"]
    assert len(time_bars) == 4
    assert len(volume_bars) > 20
    for bar in bars:
        ticks = sorted(bar.footprint)
        assert all(isinstance(t, int) for t in ticks)
        for price in (bar.open, bar.high, bar.low, bar.close, bar.poc):
            assert exact(inst, price), (bar.kind, price)
        assert (bar.high, bar.low) == (wire(inst, ticks[-1]), wire(inst, ticks[0]))
    assert sum(b.trades for b in time_bars) == len(walk)
    assert {t for b in time_bars for t in b.footprint} == set(walk)
    for price in (snap.last, snap.bid, snap.ask, snap.poc, snap.vah, snap.val, snap.rth_poc):
        assert exact(inst, price), price
    assert snap.last == wire(inst, walk[-1])
    assert (snap.bid, snap.ask) == (wire(inst, walk[-1] - 1), wire(inst, walk[-1]))
    assert snap.val is not None
    assert snap.vah is not None
    assert wire(inst, min(walk)) <= snap.val <= snap.vah <= wire(inst, max(walk))


def test_rty_prices_come_out_as_printed() -> None:
    # 23402 * 0.1 is 2340.2000000000003: prices are divisions by 10, never products with 0.1.
    flow = OrderFlow(FLOW, DATA, instrument=RTY, quotes=False)
    for seq, price in enumerate((2340.2, 2340.7, 2340.1, 2340.2), 1):
        flow.on_event(trade(seq, price, 2))
    bar = flow.features.open_bar
    assert bar is not None
    assert (bar.open, bar.high, bar.low, bar.close, bar.poc) == (
        2340.2,
        2340.7,
        2340.1,
        2340.2,
        2340.2,
    )
    assert sorted(bar.footprint) == [23401, 23402, 23407]
    f = flow.state().features
    assert (f.last, f.poc) == (2340.2, 2340.2)
    assert repr(f.last) == "2340.2"


@pytest.mark.parametrize("inst", FAMILY, ids=ids)
def test_vwap_and_bands_are_in_the_instruments_points(inst: Instrument) -> None:
    # 2 at P, 1 at P + 1 point, 1 at P - 1 point: VWAP P, SD sqrt(1/2) point (whatever the tick).
    per = inst.ticks_per_point
    base = 2000 * per
    wide = FlowSettings(spike_band_ticks=2 * per)  # 1 point is 10 RTY ticks: more than BAND
    flow = OrderFlow(wide, DATA, instrument=inst, quotes=False)
    for seq, tick in enumerate((base, base, base + per, base - per), 1):
        flow.on_event(trade(seq, wire(inst, tick), 1, T0))
    f = flow.state().features
    assert f.vwap == 2000.0 == f.rth_vwap
    assert f.vwap_sd == pytest.approx(math.sqrt(0.5))
    assert f.vwap_upper1 == pytest.approx(2000 + math.sqrt(0.5))
    assert f.vwap_lower2 == pytest.approx(2000 - 2 * math.sqrt(0.5))
    assert f.poc == 2000.0
    bar = flow.features.open_bar
    assert bar is not None
    assert bar.vwap == 2000.0


@pytest.mark.parametrize("inst", THREE, ids=ids)
def test_microprice_between_the_instruments_bid_and_ask(inst: Instrument) -> None:
    flow = OrderFlow(FLOW, DATA, instrument=inst)
    bid, ask = wire(inst, 23_402), wire(inst, 23_403)
    flow.on_event(QuoteEvent(1, bid, ask, 30, 10, T0, T0))
    f = flow.state().features
    assert (f.bid, f.ask, f.book_imbalance) == (bid, ask, 0.5)
    assert f.microprice == pytest.approx(bid * 0.25 + ask * 0.75)


# --- one tape, every grid ------------------------------------------------------------------------


def synthetic_tape(seed: int, n: int = 3000) -> list[tuple[str, int, float, float]]:
    """(kind, tick, size, time): quotes and trades in ticks; kinds "quote", "trade", "off"
    (a trade half a tick off the grid) and "spike" (a trade far away, rejected)."""
    rng = random.Random(seed)
    out: list[tuple[str, int, float, float]] = []
    bid, t = 20_000, T0
    for _ in range(n):
        t += rng.choice((0.0, 0.0, 0.5, 1.0, 3.0))
        roll = rng.random()
        if roll < 0.3:
            bid += rng.choice((-1, 0, 1))
            out.append(("quote", bid, float(rng.randint(1, 60)), t))
        elif roll < 0.31:
            out.append(("off", bid, 1.0, t))
        elif roll < 0.32:
            out.append(("spike", bid + 5 * BAND, 1.0, t))
        else:
            tick = bid + rng.choice((0, 1, 1, 0, 2, -1))  # at the touch, through it, inside
            out.append(("trade", tick, float(rng.randint(1, 12)), t))
    return out


def replay_tape(
    inst: Instrument, tape: list[tuple[str, int, float, float]]
) -> tuple[OrderFlow, list[Bar]]:
    bars: list[Bar] = []
    flow = OrderFlow(FLOW, DATA, instrument=inst, on_bar=bars.append)
    half = 0.5 / inst.ticks_per_point
    for seq, (kind, tick, size, t) in enumerate(tape, 1):
        ev: MarketEvent
        if kind == "quote":
            ev = QuoteEvent(seq, wire(inst, tick), wire(inst, tick + 1), size, 60 - size, t, t)
        elif kind == "off":
            ev = TradeEvent(seq, wire(inst, tick) + half, size, t, t)
        else:
            ev = TradeEvent(seq, wire(inst, tick), size, t, t)
        flow.on_event(ev)
    return flow, bars


def bar_in_ticks(inst: Instrument, bar: Bar) -> tuple[Any, ...]:
    prices = (bar.open, bar.high, bar.low, bar.close, bar.poc)
    return (
        bar.kind,
        bar.start,
        bar.end,
        tuple(inst.tick_index(p) for p in prices if p is not None),
        (bar.volume, bar.buy_volume, bar.sell_volume, bar.unclassified),
        (bar.delta, bar.delta_min, bar.delta_max, bar.trades),
        sorted((k, tuple(v)) for k, v in bar.footprint.items()),
        (bar.buy_imbalances, bar.sell_imbalances, bar.stacked_buy, bar.stacked_sell),
    )


def snapshot_in_ticks(inst: Instrument, f: FlowSnapshot) -> tuple[Any, ...]:
    prices = (f.last, f.bid, f.ask, f.poc, f.vah, f.val, f.rth_poc, f.rth_vah, f.rth_val)
    return (
        tuple(None if p is None else inst.tick_index(p) for p in prices),
        (f.session_volume, f.session_buy_volume, f.session_sell_volume, f.session_unclassified),
        (f.cvd_session, f.cvd_rth, f.rth_volume, f.delta_windows),
        (f.book_imbalance, f.trades_per_s, f.contracts_per_s),
    )


@pytest.mark.parametrize("inst", [MES, RTY, M2K, YM, MYM], ids=ids)
def test_a_tape_on_any_grid_gives_the_es_delta_and_cvd(inst: Instrument) -> None:
    tape = synthetic_tape(seed=15)
    es, es_bars = replay_tape(ES, tape)
    other, bars = replay_tape(inst, tape)
    es_state, state = es.state(), other.state()
    assert state.rejected == es_state.rejected
    assert set(state.rejected) == {Reason.OFF_GRID.value, Reason.SPIKE.value}
    assert (state.trades, state.volume_by_method, state.health) == (
        es_state.trades,
        es_state.volume_by_method,
        es_state.health,
    )
    assert len(es_bars) > 100
    assert [bar_in_ticks(inst, b) for b in bars] == [bar_in_ticks(ES, b) for b in es_bars]
    f, es_f = state.features, es_state.features
    assert snapshot_in_ticks(inst, f) == snapshot_in_ticks(ES, es_f)
    assert f.cvd_session == es_f.cvd_session != 0
    # VWAP and SD scale with the tick: the same number of ticks.
    for ours, theirs in (
        (f.vwap, es_f.vwap),
        (f.vwap_sd, es_f.vwap_sd),
        (f.rth_vwap, es_f.rth_vwap),
    ):
        assert ours is not None
        assert theirs is not None
        assert ours * inst.ticks_per_point == pytest.approx(theirs * ES.ticks_per_point, rel=1e-12)


# --- the instrument itself ----------------------------------------------------------------------


def test_the_broker_contract_refines_the_instrument_on_the_same_grid() -> None:
    flow = OrderFlow(FLOW, DATA, instrument=Instrument.of_product("RTY"), quotes=False)
    flow.on_event(trade(1, 2340.2))
    contract = Instrument.from_broker(
        symbol="RTY", exchange="CME", currency="USD", min_tick=0.1, multiplier="50",
        con_id=620731036, local_symbol="RTYZ6",
    )  # fmt: skip
    flow.set_instrument(contract)
    assert flow.instrument is contract
    flow.on_event(trade(2, 2340.3))
    assert flow.state().features.last == 2340.3
    assert flow.state().rejected == {}


def test_another_grid_is_taken_before_data_and_refused_after() -> None:
    flow = OrderFlow(FLOW, DATA, instrument=ES, quotes=False)
    flow.set_instrument(YM)  # nothing taken in yet: rebuilt on YM's grid
    flow.on_event(trade(1, 34001.0))
    flow.on_event(trade(2, 34000.5))
    assert flow.state().rejected == {Reason.OFF_GRID.value: 1}
    assert flow.state().features.last == 34001.0
    with pytest.raises(InstrumentError, match=r"tick size 0\.1 differs from 1,"):
        flow.set_instrument(RTY)
    assert flow.instrument is YM
    flow.on_event(trade(3, 34002.0))
    assert flow.state().features.last == 34002.0


def test_a_rejected_tick_is_data_taken_in() -> None:
    flow = OrderFlow(FLOW, DATA, instrument=ES, quotes=False)
    flow.on_event(trade(1, 2340.3))  # off ES's grid: counted on it
    with pytest.raises(InstrumentError):
        flow.set_instrument(RTY)
    held = OrderFlow(FLOW, DATA, instrument=ES, quotes=False)
    held.begin_warmup()
    held.on_event(trade(1, 2340.3))  # held, not judged yet
    held.set_instrument(RTY)
    held.finish_warmup([], complete=True)
    assert held.state().rejected == {}
    assert held.state().features.last == 2340.3
