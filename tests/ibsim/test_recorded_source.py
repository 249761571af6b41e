"""A day recorded by orderflowd, replayed by ibsim to a bare ib_async client: trades AND quotes.

The recording is written by the daemon's own `Recorder`, so the two parsers of the format are
checked against each other.
"""

from __future__ import annotations

import asyncio
import gzip
import math
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from ib_async import IB

from daemon.flow.events import QuoteEvent, TradeEvent
from daemon.flow.sessions import SessionSchedule
from daemon.recording import Recorder
from daemon.settings import RecordingSettings
from ibsim.market import RecordedSource, ReplayFileError, is_recording, load_recording
from ibsim.model import QuoteTick, Side, TradeTick
from tests.ibsim.conftest import START, WAIT, GatewayFactory, front_month, run_ibsim, until

T = START  # Friday 2026-11-20 08:30 CT
Connect = Callable[..., Awaitable[IB]]


def q(t: float, bid: float, ask: float, bs: float, az: float) -> QuoteEvent:
    return QuoteEvent(0, bid, ask, bs, az, t, 0.0)


def tr(t: float, price: float, size: float) -> TradeEvent:
    return TradeEvent(0, price, size, t, 0.0)


DAY = [
    q(T, 5000.0, 5000.5, 10, 12),
    tr(T + 1, 5000.5, 3),  # at the ask: BUY
    tr(T + 1, 5000.0, 2),  # at the bid: SELL
    tr(T + 2, 5000.25, 1),  # inside the spread, up from 5000.0: BUY
    q(T + 3, 5000.25, 5000.5, 7, 9),
    tr(T + 3, 5000.25, 4),  # at the new bid: SELL
    tr(T + 4, -1.0, 1),  # a bad print, replayed as recorded
    tr(T + 5, 5000.5, math.nan),  # a size that cannot go on the wire: skipped
    q(T + 6, 5000.5, 5000.75, 20, 30),
    tr(T + 6, 5000.75, 5),  # BUY
    q(T + 7, 5000.0, 5000.25, 8, 8),
    tr(T + 7, 5000.25, 2),  # at the ask though down from 5000.75: BUY
    q(T + 8, 5000.5, 5000.75, 6, 6),
    tr(T + 8, 5000.5, 1),  # at the bid though up from 5000.25: SELL
]
TRADES = [
    (T + 1, 5000.5, 3),
    (T + 1, 5000.0, 2),
    (T + 2, 5000.25, 1),
    (T + 3, 5000.25, 4),
    (T + 4, -1.0, 1),
    (T + 6, 5000.75, 5),
    (T + 7, 5000.25, 2),
    (T + 8, 5000.5, 1),
]
QUOTES = [
    (T, 5000.0, 5000.5, 10, 12),
    (T + 3, 5000.25, 5000.5, 7, 9),
    (T + 6, 5000.5, 5000.75, 20, 30),
    (T + 7, 5000.0, 5000.25, 8, 8),
    (T + 8, 5000.5, 5000.75, 6, 6),
]
SIDES = [Side.BUY, Side.SELL, Side.BUY, Side.SELL, Side.SELL, Side.BUY, Side.BUY, Side.SELL]


async def record(state: Path) -> Path:
    rec = Recorder(state, "ES", RecordingSettings(), SessionSchedule())
    for ev in DAY:
        rec.add(ev)
    await rec.close()
    return state / "recordings" / "ES-2026-11-20.csv.gz"


async def test_recording_is_parsed_with_recorded_values_and_decided_sides(tmp_path: Path) -> None:
    path = await record(tmp_path)
    assert is_recording(path)
    events, skipped = load_recording(path)
    assert skipped == 1
    assert [e for e in events if isinstance(e, QuoteTick)] == [QuoteTick(*x) for x in QUOTES]
    trades = [e for e in events if isinstance(e, TradeTick)]
    assert [(e.time, e.price, e.size) for e in trades] == TRADES
    assert [e.aggressor for e in trades] == SIDES


async def test_client_receives_the_recorded_trades_and_quotes_tick_by_tick(
    tmp_path: Path, make_gateway: GatewayFactory, connect: Connect
) -> None:
    source = RecordedSource.from_file(await record(tmp_path))
    gw = await make_gateway()  # a known book at START; the recording is served below
    ib = await connect(gw)
    contract = await front_month(ib)
    # What the client's wrapper is handed from the wire, with the gateway's own times (the
    # Ticker's tick objects carry ib_async's receive time instead).
    trades: list[tuple[float, float, float]] = []
    quotes: list[tuple[float, float, float, float, float]] = []
    wrapper = ib.wrapper
    on_last, on_bid_ask = wrapper.tickByTickAllLast, wrapper.tickByTickBidAsk

    def last(req_id: int, tick_type: int, t: int, price: float, size: float, *rest: Any) -> None:
        trades.append((t, price, size))
        on_last(req_id, tick_type, t, price, size, *rest)

    def bid_ask(req_id: int, t: int, bid: float, ask: float, bs: float, az: float, a: Any) -> None:
        quotes.append((t, bid, ask, bs, az))
        on_bid_ask(req_id, t, bid, ask, bs, az, a)

    wrapper.tickByTickAllLast = last  # type: ignore[method-assign]
    wrapper.tickByTickBidAsk = bid_ask  # type: ignore[method-assign]
    ib.reqTickByTickData(contract, "AllLast")
    ib.reqTickByTickData(contract, "BidAsk")
    await ib.reqCurrentTimeAsync()  # both subscriptions have reached the gateway
    quotes_before = len(quotes)
    for ev in source.events():
        gw.clock.advance_to(ev.time)
        gw.apply(ev)
    await until(
        ib, lambda: len(trades) >= len(TRADES) and len(quotes) >= quotes_before + len(QUOTES)
    )
    assert trades == TRADES
    assert quotes[quotes_before:] == QUOTES


async def test_gateway_runs_a_recorded_source_into_its_history(
    tmp_path: Path, make_gateway: GatewayFactory, connect: Connect
) -> None:
    source = RecordedSource.from_file(await record(tmp_path))
    gw = await make_gateway(source=source)
    await asyncio.wait_for(gw.market_done.wait(), WAIT)
    ib = await connect(gw)
    contract = await front_month(ib)
    start = "20261120 08:30:00 US/Central"
    ticks = await ib.reqHistoricalTicksAsync(contract, start, "", 100, "TRADES", useRth=False)
    assert [(t.time.timestamp(), t.price, t.size) for t in ticks] == TRADES
    assert [t.aggressor for t in gw.history.trades.between(0, math.inf)] == SIDES


async def test_cli_detects_a_recording_and_serves_it(tmp_path: Path) -> None:
    path = await record(tmp_path)
    code, out, err = await run_ibsim(
        "--source", "replay", "--ticks", str(path), "--exit-after", "0.3"
    )
    assert code == 0, err.decode()
    assert int(out.decode().strip()) > 0


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (
            "T,1795185001.0,0.0,5000.0,1.0,0,,,,,tick-by-tick\nT,x,0.0,5000.0,1.0,0,,,,,tick-by-tick\n",
            "line 4",
        ),
        ("Q,1795185001.0,0.0,,,,5000.0,5000.25,1.0\n", "line 3"),
        ("Z,1795185001.0,0.0,,,,5000.0,5000.25,1.0,1.0,tick-by-tick\n", "line 3, column kind"),
        ("", "line 3: no trades or quotes"),
    ],
)
async def test_a_bad_recording_is_rejected_naming_the_line(
    tmp_path: Path, body: str, message: str
) -> None:
    head = "# orderflowd recording v1\n"
    head += "kind,exchange_time,received,price,size,mask,bid,ask,bid_size,ask_size,mode\n"
    path = tmp_path / "bad.csv.gz"
    path.write_bytes(gzip.compress((head + body).encode()))
    with pytest.raises(ReplayFileError, match=message) as err:
        RecordedSource.from_file(path)
    assert str(path) in str(err.value)
    if "column kind" in message:  # the command says the same (one run is enough)
        code, _, stderr = await run_ibsim("--source", "replay", "--ticks", str(path))
        assert code == 2
        assert f"ibsim: error: {err.value}" in stderr.decode()


async def test_an_unzipped_recording_replays_the_same(tmp_path: Path) -> None:
    path = await record(tmp_path)
    plain = tmp_path / "day.csv"
    plain.write_bytes(gzip.decompress(path.read_bytes()))
    assert is_recording(plain)
    assert load_recording(plain) == load_recording(path)


def test_a_trades_csv_is_not_taken_for_a_recording(tmp_path: Path) -> None:
    csv = tmp_path / "trades.csv.gz"
    csv.write_bytes(gzip.compress(b"time_ct,price,size\n2013-09-01 17:00:00,1640.25,8\n"))
    assert not is_recording(csv)
    assert not is_recording(tmp_path / "missing.csv.gz")
    plain = tmp_path / "trades.csv"
    plain.write_text("time_ct,price,size\n")
    assert not is_recording(plain)
