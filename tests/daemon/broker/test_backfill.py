"""Warm-start backfill against a real ibsim Gateway's tape, and the historical pacer."""

from __future__ import annotations

import asyncio
import math
import random
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from ib_async import IB, Contract, Future

from daemon.broker.backfill import PAGE_TICKS, BackfillResult, HistoricalPacer, backfill
from daemon.broker.ib.client import IbClient
from daemon.flow.events import QuoteEvent, TradeEvent
from ibsim.gateway import Gateway, GatewayConfig
from ibsim.historical import HistoricalService
from ibsim.market import ListSource
from ibsim.model import MarketEvent as SimEvent
from ibsim.model import QuoteTick, Side, TradeTick
from tests.daemon.broker.conftest import SIM_START, WAIT

T0 = SIM_START.timestamp()  # a whole second


def tape(seconds: int, seed: int = 1) -> list[SimEvent]:
    """0-12 trades per second (some seconds empty), the first of a second exactly on it, and a
    quote before every third trade: about 6 trades and 2 quotes a second."""
    rng = random.Random(seed)
    events: list[SimEvent] = [QuoteTick(T0, 5000.0, 5000.25, 10, 10)]
    tick = 20000
    for k in range(seconds):
        n = (k * 7) % 13
        for j in range(n):
            t = T0 + k + j / (n + 1)
            if j % 3 == 0:
                tick += rng.choice((-1, 0, 1))
                events.append(QuoteTick(t, tick * 0.25, tick * 0.25 + 0.25, 10 + j, 20 - j))
            side = rng.choice((Side.BUY, Side.SELL))
            price = tick * 0.25 + (0.25 if side is Side.BUY else 0.0)
            events.append(TradeTick(t, price, rng.choice((1, 1, 1, 2, 5)), side))
    return events


class Tape:
    """A gateway that has served `events` (its history), a client, and a fake pacing clock."""

    def __init__(self, gw: Gateway, ib: IB, contract: Contract) -> None:
        self.gw, self.ib, self.contract = gw, ib, contract
        self.client = IbClient(ib)
        self.now = [0.0]
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now[0]

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now[0] += seconds

    def pacer(self, per_10min: int = 60) -> HistoricalPacer:
        return HistoricalPacer(per_10min, clock=self.clock, sleep=self.sleep)

    async def run(self, start: float, end: float, **kw: Any) -> BackfillResult:
        kw.setdefault("max_ticks", 1_000_000)
        kw.setdefault("requests_per_10min", 60)
        async with asyncio.timeout(WAIT):
            return await backfill(
                self.client, self.contract, start, end, clock=self.clock, sleep=self.sleep, **kw
            )

    def trades(self, start: float, end: float) -> list[tuple[float, float, float]]:
        """The gateway's tape for [start, end) as (whole second, price, size)."""
        return [
            (float(int(t.time)), t.price, float(t.size))
            for t in self.gw.history.trades.between(start, end)
        ]

    def quotes(self, start: float, end: float) -> list[tuple[float, float, float, float, float]]:
        return [
            (float(int(q.time)), q.bid, q.ask, float(q.bid_size), float(q.ask_size))
            for q in self.gw.history.quotes.between(start, end)
        ]


def trades_of(result: BackfillResult) -> list[tuple[float, float, float]]:
    return [(e.exchange_time, e.price, e.size) for e in result.events if isinstance(e, TradeEvent)]


def quotes_of(result: BackfillResult) -> list[tuple[float, float, float, float, float]]:
    return [
        (e.exchange_time, e.bid, e.ask, e.bid_size, e.ask_size)
        for e in result.events
        if isinstance(e, QuoteEvent)
    ]


MakeTape = Callable[[list[SimEvent]], Awaitable[Tape]]


@pytest.fixture
async def make_tape() -> AsyncIterator[MakeTape]:
    asyncio.set_event_loop(asyncio.get_running_loop())
    made: list[Tape] = []

    async def make(events: list[SimEvent]) -> Tape:
        config = GatewayConfig(port=0, client_id_release_delay=0.0)
        gw = Gateway(config, ListSource(events), speed=math.inf)
        await gw.start()
        ib = IB()
        tape_ = Tape(gw, ib, Contract())
        made.append(tape_)
        await asyncio.wait_for(gw.market_done.wait(), WAIT)
        await ib.connectAsync("127.0.0.1", gw.port, clientId=5, timeout=WAIT)
        (tape_.contract,) = await ib.qualifyContractsAsync(Future("ES", "202612", exchange="CME"))
        return tape_

    yield make
    for t in made:
        t.ib.disconnect()
        await t.gw.stop()


async def test_backfill_equals_the_tape_one_for_one(make_tape: MakeTape) -> None:
    t = await make_tape(tape(500))
    end = T0 + 400
    # the first page (the last 1000 trades up to `end`) cuts a second in two: the case to get
    # right, and the page ends on trades stamped exactly `end`, which are not in the span
    page = t.gw.history.trades.window(None, end, PAGE_TICKS)
    cut = int(page[0].time)
    assert len(t.trades(cut, cut + 1)) > sum(int(x.time) == cut for x in page)
    assert any(x.time == end for x in page)

    result = await t.run(T0, end)

    assert (result.complete, result.reason) == (True, None)
    assert (result.start, result.end, result.quotes_start) == (T0, end, T0)
    want = t.trades(T0, end)
    assert len(want) > 2 * PAGE_TICKS
    assert trades_of(result) == want  # no tick lost or doubled at any page boundary
    assert quotes_of(result) == t.quotes(T0, end)
    assert [e.seq for e in result.events] == list(range(-len(result.events), 0))
    assert result.requests >= math.ceil(len(want) / PAGE_TICKS) + 1


async def test_each_seconds_trades_come_before_its_quotes(make_tape: MakeTape) -> None:
    t = await make_tape(tape(120))
    result = await t.run(T0, T0 + 100)
    times = [e.exchange_time for e in result.events]
    assert times == sorted(times)
    for a, b in zip(result.events, result.events[1:], strict=False):
        if a.exchange_time == b.exchange_time:
            assert not (isinstance(a, QuoteEvent) and isinstance(b, TradeEvent))
    assert any(
        isinstance(a, TradeEvent)
        and isinstance(b, QuoteEvent)
        and a.exchange_time == b.exchange_time
        for a, b in zip(result.events, result.events[1:], strict=False)
    )
    trade = next(e for e in result.events if isinstance(e, TradeEvent))
    assert trade.received == 0.0  # the injected clock when its page arrived


async def test_budget_caps_trades_to_the_newest_whole_seconds(make_tape: MakeTape) -> None:
    t = await make_tape(tape(500))
    end = T0 + 400
    result = await t.run(T0, end, max_ticks=1500)
    assert (result.complete, result.reason) == (False, "budget")
    assert T0 < result.start < end
    got = trades_of(result)
    assert 1500 - 12 <= len(got) <= 1500  # at most one second (<= 12 trades) short
    assert got == t.trades(result.start, end)
    assert quotes_of(result) == []  # trades come first
    assert result.quotes_start == end


async def test_budget_left_after_trades_goes_to_the_latest_quotes(make_tape: MakeTape) -> None:
    t = await make_tape(tape(300))
    end = T0 + 300
    n_trades = len(t.trades(T0, end))
    result = await t.run(T0, end, max_ticks=n_trades + 300)
    assert (result.complete, result.reason) == (False, "budget")
    assert result.start == T0
    assert trades_of(result) == t.trades(T0, end)
    assert result.quotes_start is not None
    assert T0 < result.quotes_start < end
    assert quotes_of(result) == t.quotes(result.quotes_start, end)
    assert 300 - 12 <= len(quotes_of(result)) <= 300


async def test_pacing_refusal_162_returns_what_was_fetched(make_tape: MakeTape) -> None:
    t = await make_tape(tape(500))
    t.gw.historical = HistoricalService(t.gw.history, t.gw.clock, max_requests=2)
    end = T0 + 400
    result = await t.run(T0, end)
    assert (result.complete, result.reason, result.requests) == (False, "refused 162", 3)
    assert T0 < result.start < end
    assert trades_of(result) == t.trades(result.start, end)  # two pages, whole seconds
    assert len(trades_of(result)) > PAGE_TICKS


async def test_no_answer_is_a_timeout_not_an_exception(
    make_tape: MakeTape, monkeypatch: pytest.MonkeyPatch
) -> None:
    t = await make_tape(tape(50))
    monkeypatch.setattr(t.gw.historical, "ticks", lambda who, req: None)  # never answers
    result = await t.run(T0, T0 + 40, request_timeout=0.05)
    assert (result.complete, result.reason, result.requests) == (False, "timeout", 1)
    assert result.events == []
    assert result.start == T0 + 40


async def test_a_lost_socket_ends_the_backfill_without_an_exception(make_tape: MakeTape) -> None:
    t = await make_tape(tape(50))
    t.ib.disconnect()
    result = await t.run(T0, T0 + 40)
    assert (result.complete, result.reason, result.requests, result.events) == (
        False,
        "disconnected",
        0,
        [],
    )


async def test_bad_prices_pass_through_unjudged(make_tape: MakeTape) -> None:
    events: list[SimEvent] = [
        QuoteTick(T0, 5000.0, 5000.25, 10, 10),
        TradeTick(T0 + 1, 5000.25, 2, Side.BUY),
        TradeTick(T0 + 2, -1.0, 1, Side.BUY),
        TradeTick(T0 + 2.5, 0.0, 3, Side.SELL),
        QuoteTick(T0 + 3, 0.0, -1.0, 0, 0),
        TradeTick(T0 + 4, 5000.0, 1, Side.SELL),
    ]
    t = await make_tape(events)
    result = await t.run(T0, T0 + 10)
    assert result.complete
    assert trades_of(result) == [
        (T0 + 1, 5000.25, 2.0),
        (T0 + 2, -1.0, 1.0),
        (T0 + 2, 0.0, 3.0),
        (T0 + 4, 5000.0, 1.0),
    ]
    assert (T0 + 3, 0.0, -1.0, 0.0, 0.0) in quotes_of(result)


async def test_a_second_denser_than_a_page_stops_the_walk_there(make_tape: MakeTape) -> None:
    events: list[SimEvent] = [QuoteTick(T0, 5000.0, 5000.25, 10, 10)]
    events += [TradeTick(T0 + 5 + i / 2000, 5000.25, 1, Side.BUY) for i in range(1200)]
    events += [TradeTick(T0 + 6 + i / 10, 5000.0, 1, Side.SELL) for i in range(30)]
    t = await make_tape(events)
    result = await t.run(T0, T0 + 10)
    assert (result.complete, result.reason, result.start) == (False, "dense second", T0 + 6)
    assert trades_of(result) == t.trades(T0 + 6, T0 + 10)


async def test_one_pacer_serves_successive_backfills(make_tape: MakeTape) -> None:
    t = await make_tape(tape(300))
    pacer = t.pacer(per_10min=4)
    first = await t.run(T0, T0 + 300, limiter=pacer)
    second = await t.run(T0 + 100, T0 + 300, limiter=pacer)  # a gap backfill, later
    assert first.complete
    assert second.complete
    assert trades_of(second) == t.trades(T0 + 100, T0 + 300)
    assert first.requests + second.requests > 4
    assert max(t.sleeps) > 590  # the fifth request waited for the 10-minute window


async def test_a_backfill_stops_instead_of_waiting_out_a_used_up_pacing(
    make_tape: MakeTape,
) -> None:
    t = await make_tape(tape(300))
    pacer = t.pacer(per_10min=4)
    pacer.seed([-60.0, -50.0, -40.0])  # a previous process's requests: one left in the window
    result = await t.run(T0, T0 + 300, limiter=pacer, max_wait_s=15.0)
    assert (result.complete, result.requests) == (False, 1)
    assert result.reason == "pacing: the next request is allowed in 540 s"  # -60 + 600.5
    assert t.sleeps == []  # it did not wait
    assert trades_of(result) == t.trades(result.start, T0 + 300)  # what it got is kept
    waited = await t.run(T0, T0 + 300, limiter=t.pacer(per_10min=4))  # no limit: it waits
    assert waited.complete


# --- the pacer alone, on a fake clock ---


class FakeTime:
    def __init__(self) -> None:
        self.now = 0.0

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        assert seconds > 0
        self.now += seconds


async def test_pacer_admits_bursts_of_five_then_waits_for_the_window() -> None:
    ft = FakeTime()
    pacer = HistoricalPacer(12, clock=ft.clock, sleep=ft.sleep, margin_s=0.5)
    admitted = []
    for _ in range(18):
        await pacer.acquire("ESZ6")
        admitted.append(ft.now)
    assert admitted == [0.0] * 5 + [2.5] * 5 + [5.0] * 2 + [600.5] * 5 + [603.0]
    other = await pacer.acquire("ESH7")  # another contract: only the 10-minute rule applies
    assert other == 0.0
    assert ft.now == 603.0


@settings(max_examples=60, deadline=None)
@given(
    limit=st.integers(1, 60),
    arrivals=st.lists(
        st.tuples(st.floats(0, 120, allow_nan=False), st.sampled_from(["A", "B"])),
        min_size=1,
        max_size=150,
    ),
)
def test_pacer_never_exceeds_either_window(limit: int, arrivals: list[tuple[float, str]]) -> None:
    ft = FakeTime()
    pacer = HistoricalPacer(limit, clock=ft.clock, sleep=ft.sleep)
    admitted: list[tuple[float, str]] = []

    async def drive() -> None:
        for gap, key in arrivals:
            ft.now += gap  # the caller comes back after `gap` seconds
            await pacer.acquire(key)
            admitted.append((ft.now, key))

    asyncio.run(drive())
    times = [a for a, _ in admitted]
    assert all(b - a >= 600 for a, b in zip(times, times[limit:], strict=False))
    for key in ("A", "B"):
        mine = [a for a, k in admitted if k == key]
        assert all(b - a >= 2 for a, b in zip(mine, mine[5:], strict=False))
