"""`Features` end to end on small hand-computed cases: bars, footprint, sessions, resets."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from daemon.core.instrument import Instrument
from daemon.flow.features import Bar, Features, FlowSnapshot
from daemon.flow.prints import Method, Print
from daemon.flow.sessions import SessionSchedule
from daemon.settings import FlowSettings

CT = ZoneInfo("America/Chicago")
ES = Instrument.of_product("ES")


def ct(day: int, hour: int, minute: int = 0, second: float = 0.0) -> float:
    """Epoch seconds of 2026-11-`day` at the given US/Central time (the 19th is a Thursday)."""
    whole = int(second)
    micro = round((second - whole) * 1e6)
    return datetime(2026, 11, day, hour, minute, whole, micro, tzinfo=CT).timestamp()


def trade(t: float, price: float, size: float, side: str) -> Print:
    tick = ES.tick_index(price)
    assert tick is not None
    buy = size if side == "buy" else 0.0
    sell = size if side == "sell" else 0.0
    method = Method.NONE if side == "none" else Method.QUOTE
    return Print(t, tick, size, buy, sell, method, 1.0)


def make(**settings: Any) -> tuple[Features, list[Bar]]:
    closed: list[Bar] = []
    features = Features(
        FlowSettings(**settings), SessionSchedule(), on_bar=closed.append, instrument=ES
    )
    return features, closed


def feed(features: Features, *prints: Print) -> None:
    for p in prints:
        features.on_print(p)


# --- time bars ----------------------------------------------------------------------------------


def test_bar_ohlc_volumes_delta_extremes_footprint() -> None:
    features, closed = make(bar=60)
    feed(
        features,
        trade(ct(19, 9, 30, 1), 100.00, 2, "buy"),  # running delta 2
        trade(ct(19, 9, 30, 2), 99.75, 5, "sell"),  # -3
        trade(ct(19, 9, 30, 3), 100.25, 1, "buy"),  # -2
        trade(ct(19, 9, 30, 4), 100.00, 3, "none"),  # -2
    )
    bar = features.open_bar
    assert bar is not None
    assert (bar.open, bar.high, bar.low, bar.close) == (100.0, 100.25, 99.75, 100.0)
    assert (bar.volume, bar.buy_volume, bar.sell_volume, bar.unclassified) == (11, 3, 5, 3)
    assert (bar.delta, bar.delta_min, bar.delta_max, bar.trades) == (-2, -3, 2, 4)
    assert bar.footprint == {400: [0, 2, 3], 399: [5, 0, 0], 401: [0, 1, 0]}
    assert bar.vwap == pytest.approx(1099 / 11)  # (100*5 + 99.75*5 + 100.25*1) / 11
    assert bar.poc == 100.0  # 100.00 and 99.75 both hold 5: the one nearer the middle
    assert (bar.kind, bar.start, bar.end) == ("time", ct(19, 9, 30), ct(19, 9, 31))
    assert (bar.session, bar.rth) == (ct(18, 17), True)
    assert closed == []

    features.advance(ct(19, 9, 31))
    assert closed == [bar]
    assert list(features.time_bars) == [bar]
    assert features.open_bar is None
    assert bar.end == ct(19, 9, 31)


def test_delta_extremes_start_at_the_first_print() -> None:
    features, _ = make()
    feed(features, trade(ct(19, 9, 30, 1), 100, 4, "buy"), trade(ct(19, 9, 30, 2), 100, 1, "sell"))
    bar = features.open_bar
    assert bar is not None
    assert (bar.delta, bar.delta_min, bar.delta_max) == (3, 3, 4)  # never the 0 before it


def test_bars_align_to_multiples_from_central_midnight() -> None:
    features, closed = make(bar=300)
    feed(features, trade(ct(19, 9, 3, 20), 100, 1, "buy"))
    bar = features.open_bar
    assert bar is not None
    assert (bar.start, bar.end) == (ct(19, 9, 0), ct(19, 9, 5))
    feed(features, trade(ct(19, 9, 12, 0), 100, 1, "buy"))  # no empty bar in between
    assert [(b.start, b.end) for b in closed] == [(ct(19, 9, 0), ct(19, 9, 5))]
    bar = features.open_bar
    assert bar is not None
    assert (bar.start, bar.end) == (ct(19, 9, 10), ct(19, 9, 15))


def test_bar_closes_early_at_the_session_end_and_never_spans_sessions() -> None:
    # 90-minute bars from midnight: ... 15:00-16:30, 16:30-18:00. RTH ends 15:15, the Globex
    # session 16:00, the next one starts 17:00.
    features, closed = make(bar=5400)
    feed(features, trade(ct(19, 15, 10), 100, 1, "buy"))
    feed(features, trade(ct(19, 15, 30), 100, 1, "buy"))
    assert [(b.start, b.end, b.rth) for b in closed] == [(ct(19, 15), ct(19, 15, 15), True)]
    bar = features.open_bar
    assert bar is not None
    assert (bar.start, bar.end, bar.rth) == (ct(19, 15, 15), ct(19, 16), False)
    features.advance(ct(19, 16))
    assert [(b.start, b.end) for b in closed][1:] == [(ct(19, 15, 15), ct(19, 16))]

    feed(features, trade(ct(19, 16, 40), 100, 1, "buy"))  # the daily break: no session
    bar = features.open_bar
    assert bar is not None
    assert (bar.start, bar.end, bar.session) == (ct(19, 16, 30), ct(19, 17), None)

    feed(features, trade(ct(19, 17, 5), 100, 1, "buy"))  # the next session began at 17:00
    assert [(b.start, b.end) for b in closed][2:] == [(ct(19, 16, 30), ct(19, 17))]
    bar = features.open_bar
    assert bar is not None
    assert (bar.start, bar.end, bar.session) == (ct(19, 17), ct(19, 18), ct(19, 17))


def test_bar_bounds_follow_the_schedule_without_events_at_the_boundaries() -> None:
    features, closed = make(bar=5400)
    feed(features, trade(ct(19, 15, 30), 100, 1, "buy"))  # the first event: RTH ended 15:15
    bar = features.open_bar
    assert bar is not None
    assert (bar.start, bar.end, bar.rth) == (ct(19, 15, 15), ct(19, 16), False)
    feed(features, trade(ct(20, 8, 0), 100, 1, "buy"))  # 07:30-09:00, RTH opens at 08:30
    bar = features.open_bar
    assert bar is not None
    assert (bar.start, bar.end) == (ct(20, 7, 30), ct(20, 8, 30))
    feed(features, trade(ct(20, 15, 20), 100, 1, "buy"))  # nothing in between
    assert [(b.start, b.end) for b in closed] == [
        (ct(19, 15, 15), ct(19, 16)),
        (ct(20, 7, 30), ct(20, 8, 30)),
    ]


def test_bar_closes_early_at_the_rth_open() -> None:
    features, closed = make(bar=5400)  # 07:30-09:00 spans the 08:30 open
    feed(features, trade(ct(19, 8, 0), 100, 1, "buy"), trade(ct(19, 8, 45), 101, 2, "sell"))
    assert [(b.start, b.end, b.rth) for b in closed] == [(ct(19, 7, 30), ct(19, 8, 30), False)]
    bar = features.open_bar
    assert bar is not None
    assert (bar.start, bar.end, bar.rth) == (ct(19, 8, 30), ct(19, 9), True)


def test_an_older_print_joins_the_open_bar_never_a_closed_one() -> None:
    features, closed = make(bar=60)
    feed(features, trade(ct(19, 9, 30, 59), 100, 1, "buy"), trade(ct(19, 9, 31, 1), 100, 2, "buy"))
    feed(features, trade(ct(19, 9, 30, 58), 100.25, 4, "sell"))  # late
    assert len(closed) == 1
    assert closed[0].volume == 1
    bar = features.open_bar
    assert bar is not None
    assert (bar.start, bar.volume, bar.delta, bar.close) == (ct(19, 9, 31), 6, -2, 100.25)
    assert features.snapshot().time == ct(19, 9, 31, 1)


def test_flush_closes_the_open_bar() -> None:
    features, closed = make(bar=60)
    feed(features, trade(ct(19, 9, 30, 5), 100, 1, "buy"))
    features.flush()
    assert len(closed) == 1
    assert closed[0].end == ct(19, 9, 31)
    assert features.open_bar is None
    features.flush()
    assert len(closed) == 1


def test_imbalances_filled_at_close() -> None:
    features, closed = make(bar=60, imbalance_ratio=3.0, imbalance_min_volume=3, stacked_levels=3)
    t = ct(19, 9, 30, 1)
    prints = []
    for price in (100.00, 100.25, 100.50, 100.75):
        prints += [trade(t, price, 9, "buy"), trade(t, price, 3, "sell")]
    prints.append(trade(t, 101.50, 1, "buy"))  # 1 against 0: below the minimum volume
    feed(features, *prints)
    features.flush()
    (bar,) = closed
    assert bar.buy_imbalances == [400, 401, 402, 403]
    assert bar.sell_imbalances == [403]  # 3 sold against nothing bought one tick above
    assert bar.stacked_buy == [(400, 403)]
    assert bar.stacked_sell == []


def test_memory_stays_bounded_by_bars_kept() -> None:
    features, closed = make(bar=15, bars_kept=50, volume_bar=20)
    t = ct(18, 17)
    for i in range(100_000):
        t += 1.7  # ~47 hours: two sessions, RTH, the break
        features.on_print(trade(t, 100 + (i % 8) * 0.25, 1 + i % 3, "buy" if i % 2 else "sell"))
    assert len(closed) > 10_000
    assert len(features.time_bars) == 50
    assert len(features.volume_bars) == 50
    assert features.time_bars[-1] is [b for b in closed if b.kind == "time"][-1]


# --- volume bars --------------------------------------------------------------------------------


def test_volume_bars_split_an_overflowing_print_proportionally() -> None:
    features, _ = make(volume_bar=5)
    t = ct(19, 10)
    feed(features, trade(t, 100, 3, "buy"))
    four = Print(t + 1, 400, 4.0, 1.0, 3.0, Method.QUOTE, 1.0)  # 1 bought, 3 sold
    feed(features, four)
    first = features.volume_bars[0]
    # 2 of the 4 contracts fill the bar: half of each part (0.5 bought, 1.5 sold)
    assert (first.volume, first.buy_volume, first.sell_volume) == (5, 3.5, 1.5)
    assert (first.start, first.end, first.trades) == (t, t + 1, 2)
    assert first.kind == "volume"
    feed(features, trade(t + 2, 100.25, 8, "none"))  # 2 + 3 fills the second, 5 the third
    assert len(features.volume_bars) == 3
    second, third = features.volume_bars[1], features.volume_bars[2]
    assert (second.volume, second.buy_volume, second.sell_volume) == (5, 0.5, 1.5)
    assert second.unclassified == 3
    assert (second.open, second.close, second.high) == (100.0, 100.25, 100.25)
    assert (third.volume, third.unclassified, third.trades) == (5, 5, 1)
    assert (third.start, third.end) == (t + 2, t + 2)


def test_volume_bars_restart_at_the_session_start() -> None:
    features, closed = make(volume_bar=10)
    feed(features, trade(ct(19, 15, 59), 100, 4, "buy"), trade(ct(19, 17, 1), 100, 3, "sell"))
    volume = [b for b in closed if b.kind == "volume"]
    assert [(b.volume, b.session) for b in volume] == [(4, ct(18, 17))]
    features.flush()
    volume = [b for b in closed if b.kind == "volume"]
    assert [(b.volume, b.session) for b in volume] == [(4, ct(18, 17)), (3, ct(19, 17))]


def test_no_volume_bars_when_off() -> None:
    features, _ = make(volume_bar=0)
    feed(features, trade(ct(19, 10), 100, 50, "buy"))
    features.flush()
    assert len(features.volume_bars) == 0


# --- sessions, CVD, VWAP, profile -----------------------------------------------------------------


def test_session_cvd_resets_at_17_00_and_holds_in_the_break() -> None:
    features, _ = make()
    feed(features, trade(ct(19, 15, 50), 100, 5, "buy"), trade(ct(19, 15, 55), 100, 2, "sell"))
    snap = features.snapshot()
    assert (snap.session_start, snap.in_session) == (ct(18, 17), True)
    assert (snap.cvd_session, snap.session_volume) == (3, 7)

    features.advance(ct(19, 16, 30))
    snap = features.snapshot()
    assert (snap.session_start, snap.in_session) == (ct(18, 17), False)
    assert (snap.cvd_session, snap.session_volume) == (3, 7)

    feed(features, trade(ct(19, 17, 0, 1), 100, 4, "sell"))
    snap = features.snapshot()
    assert (snap.session_start, snap.in_session) == (ct(19, 17), True)
    assert (snap.cvd_session, snap.session_volume) == (-4, 4)
    assert snap.session_sell_volume == 4


def test_prints_outside_any_session_stay_out_of_session_features() -> None:
    features, _ = make()
    feed(features, trade(ct(20, 15), 100, 5, "buy"))  # Friday afternoon, Thursday's session
    feed(features, trade(ct(20, 17, 30), 100, 7, "sell"))  # Friday evening: no session
    snap = features.snapshot()
    assert snap.in_session is False
    assert (snap.cvd_session, snap.session_volume) == (5, 5)
    bar = features.open_bar
    assert bar is not None
    assert (bar.session, bar.volume, bar.delta) == (None, 7, -7)
    assert snap.delta_windows[60] == -7  # windows are time based


def test_rth_features_start_at_08_30_and_are_none_outside() -> None:
    features, _ = make()
    feed(features, trade(ct(19, 8, 29, 30), 100, 5, "buy"))
    snap = features.snapshot()
    assert snap.rth is False
    assert (snap.cvd_rth, snap.rth_volume, snap.rth_vwap, snap.rth_poc) == (None, None, None, None)
    assert snap.rth_start is None

    feed(features, trade(ct(19, 8, 30, 10), 101, 2, "sell"))
    snap = features.snapshot()
    assert (snap.rth, snap.rth_start) == (True, ct(19, 8, 30))
    assert (snap.cvd_rth, snap.rth_volume, snap.rth_vwap) == (-2, 2, 101.0)
    assert (snap.rth_poc, snap.rth_vah, snap.rth_val) == (101.0, 101.0, 101.0)
    assert (snap.cvd_session, snap.session_volume) == (3, 7)

    features.advance(ct(19, 15, 15))
    snap = features.snapshot()
    assert snap.rth is False
    assert (snap.cvd_rth, snap.rth_volume, snap.rth_vwap) == (None, None, None)
    assert (snap.cvd_session, snap.session_volume) == (3, 7)

    feed(features, trade(ct(20, 8, 30), 100, 1, "buy"))  # the next day's RTH starts afresh
    snap = features.snapshot()
    assert (snap.cvd_rth, snap.rth_volume, snap.rth_start) == (1, 1, ct(20, 8, 30))


def test_session_vwap_bands_and_profile_by_hand() -> None:
    features, _ = make(bar=60, value_area=0.70)
    t = ct(19, 10)
    # Over two bars: 2 @ 100.00, 1 @ 101.00, 1 @ 99.00 -> VWAP 100, SD sqrt(0.5)
    feed(
        features,
        trade(t, 100, 2, "buy"),
        trade(t + 1, 101, 1, "buy"),
        trade(t + 61, 99, 1, "sell"),
    )
    snap = features.snapshot()
    sd = 0.5**0.5
    assert snap.vwap == pytest.approx(100.0)
    assert snap.vwap_sd == pytest.approx(sd)
    assert snap.vwap_upper1 == pytest.approx(100 + sd)
    assert snap.vwap_lower1 == pytest.approx(100 - sd)
    assert snap.vwap_upper2 == pytest.approx(100 + 2 * sd)
    assert snap.vwap_lower2 == pytest.approx(100 - 2 * sd)
    assert snap.rth_vwap == pytest.approx(100.0)
    assert snap.rth_vwap_sd == pytest.approx(sd)
    # Profile: 2 @ 100, 1 @ 101, 1 @ 99. Target 2.8: POC 100 (2), then the next traded ticks
    # either side, 101 and 99, tie and come in together.
    assert (snap.poc, snap.vah, snap.val) == (100.0, 101.0, 99.0)
    assert (snap.rth_poc, snap.rth_vah, snap.rth_val) == (100.0, 101.0, 99.0)
    assert snap.cvd_session == 2
    assert snap.last == 99.0


def test_session_profile_value_area_from_closed_and_open_bars() -> None:
    features, _ = make(bar=60)
    t = ct(19, 10)
    volumes = {98: 10, 99: 20, 100: 10, 101: 30, 102: 25, 103: 5}
    for i, (price, size) in enumerate(volumes.items()):
        feed(features, trade(t + 30 * i, price, size, "buy"))  # spread over three bars
    snap = features.snapshot()
    # Same as the hand-computed profile test: POC 101, value area 99..102
    assert (snap.poc, snap.vah, snap.val) == (101.0, 102.0, 99.0)
    assert snap.session_volume == 100


def test_snapshot_before_any_event_is_all_undefined_or_zero() -> None:
    features, _ = make()
    snap = features.snapshot()
    assert isinstance(snap, FlowSnapshot)
    assert snap.time is None
    assert snap.last is None
    assert snap.session_start is None
    assert (snap.vwap, snap.poc, snap.microprice, snap.trades_per_s) == (None, None, None, None)
    assert snap.delta_windows == {60: 0.0, 300: 0.0, 900: 0.0}
    assert snap.session_volume == 0.0


# --- windows, intensity, book, partial ----------------------------------------------------------


def test_delta_windows_expire_with_the_clock() -> None:
    features, _ = make(delta_windows_s=[60, 300])
    t = ct(19, 10)
    feed(features, trade(t, 100, 5, "buy"), trade(t + 30, 100, 2, "sell"))
    features.advance(t + 59.5)
    assert features.snapshot().delta_windows == {60: 3, 300: 3}
    features.advance(t + 60)
    assert features.snapshot().delta_windows == {60: -2, 300: 3}
    features.advance(t + 400)
    assert features.snapshot().delta_windows == {60: 0, 300: 0}


def test_intensity_is_undefined_until_a_full_window_has_passed() -> None:
    features, _ = make(intensity_window_s=10)
    t = ct(19, 10)
    feed(features, trade(t, 100, 5, "buy"), trade(t + 3, 100, 1, "sell"))
    snap = features.snapshot()
    assert (snap.trades_per_s, snap.contracts_per_s) == (None, None)
    features.advance(t + 10)  # seconds t+1 .. t+10: the print at t has left
    snap = features.snapshot()
    assert (snap.trades_per_s, snap.contracts_per_s) == (0.1, 0.1)


def test_quotes_feed_book_features_and_move_the_clock() -> None:
    features, closed = make(bar=60)
    feed(features, trade(ct(19, 10, 0, 5), 100, 1, "buy"))
    features.on_quote(400, 401, 30.0, 10.0, ct(19, 10, 1))
    snap = features.snapshot()
    assert (snap.bid, snap.ask) == (100.0, 100.25)
    assert snap.book_imbalance == pytest.approx(0.5)
    assert snap.microprice == pytest.approx(100.1875)
    assert snap.time == ct(19, 10, 1)
    assert len(closed) == 1  # the quote's time closed the 10:00 bar
    features.on_quote(400, 401, 0.0, 0.0, ct(19, 10, 2))
    snap = features.snapshot()
    assert (snap.book_imbalance, snap.microprice) == (None, None)


def test_partial_flag_is_kept_until_a_session_starts_while_running() -> None:
    features, _ = make()
    features.mark_partial(True)
    feed(features, trade(ct(19, 10), 100, 1, "buy"))
    assert features.snapshot().session_partial is True
    features.advance(ct(19, 16, 30))
    assert features.snapshot().session_partial is True
    features.advance(ct(19, 17))
    assert features.snapshot().session_partial is False
    features.mark_partial(True)
    assert features.snapshot().session_partial is True


def test_schedule_spans_from_the_contract_override_the_cme_rule() -> None:
    # An early close at 12:00 listed by the contract: the bar and the session end there.
    schedule = SessionSchedule(
        trading=[(ct(18, 17), ct(19, 12)), (ct(19, 17), ct(20, 16))],
        rth=[(ct(19, 8, 30), ct(19, 12)), (ct(20, 8, 30), ct(20, 15, 15))],
    )
    features = Features(FlowSettings(bar=5400), schedule, instrument=ES)
    features.on_print(trade(ct(19, 11, 50), 100, 1, "buy"))
    bar = features.open_bar
    assert bar is not None
    assert (bar.start, bar.end, bar.session, bar.rth) == (
        ct(19, 10, 30),
        ct(19, 12),
        ct(18, 17),
        True,
    )
    features.advance(ct(19, 12))
    assert features.time_bars[-1].end == ct(19, 12)
    snap = features.snapshot()
    assert (snap.in_session, snap.rth) == (False, False)


def test_bars_follow_local_hours_across_the_dst_change() -> None:
    # 2026-11-01: 01:00-02:00 CT happens twice (CDT, then CST); one-hour bars are local hours.
    features, closed = make(bar=3600)
    first = datetime(2026, 11, 1, 1, 30, tzinfo=CT).timestamp()  # CDT (fold=0)
    second = datetime(2026, 11, 1, 1, 30, fold=1, tzinfo=CT).timestamp()  # CST
    assert second - first == 3600
    feed(features, trade(first, 100, 1, "buy"), trade(second, 100, 1, "buy"))
    features.flush()
    assert [(b.start, b.end) for b in closed] == [
        (first - 1800, first + 1800),
        (second - 1800, second + 1800),
    ]
    assert [b.session for b in closed] == [None, None]  # a Sunday morning: no session
