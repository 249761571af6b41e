"""Shared checks for market source tests."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable

import pytest

from ibsim.model import TICK_SIZE, MarketEvent, QuoteTick, Side, TradeTick

StreamChecker = Callable[[Iterable[MarketEvent]], list[TradeTick]]


def _on_grid(price: float) -> bool:
    return math.isfinite(price) and price > 0 and price % TICK_SIZE == 0.0


def _positive_int(size: object) -> bool:
    return type(size) is int and size > 0


def check_stream(events: Iterable[MarketEvent]) -> list[TradeTick]:
    """Assert the MarketSource guarantees over a finite stream; return its trades.

    First event a quote; times non-decreasing; quotes uncrossed, on grid, positive int sizes; each
    trade at the ask if BUY / the bid if SELL of the latest quote, which shows at least its size;
    the quote right after a trade shows that size consumed (or the level gone).
    """
    trades: list[TradeTick] = []
    quote: QuoteTick | None = None
    pending: tuple[TradeTick, QuoteTick] | None = None  # trade waiting for its consuming quote
    last_time = -math.inf
    for i, event in enumerate(events):
        assert event.time >= last_time, f"event {i} goes back in time: {event}"
        last_time = event.time
        if isinstance(event, QuoteTick):
            assert event.bid < event.ask, f"event {i} crossed or locked: {event}"
            assert _on_grid(event.bid), f"event {i}: {event}"
            assert _on_grid(event.ask), f"event {i}: {event}"
            assert _positive_int(event.bid_size), f"event {i}: {event}"
            assert _positive_int(event.ask_size), f"event {i}: {event}"
            if pending is not None:
                trade, before = pending
                if trade.aggressor is Side.BUY:
                    if before.ask_size > trade.size:
                        assert event.ask == before.ask, f"event {i}: {event}"
                        assert event.ask_size == before.ask_size - trade.size, f"event {i}"
                    else:
                        assert event.ask > before.ask, f"event {i}: level not taken out"
                elif before.bid_size > trade.size:
                    assert event.bid == before.bid, f"event {i}: {event}"
                    assert event.bid_size == before.bid_size - trade.size, f"event {i}"
                else:
                    assert event.bid < before.bid, f"event {i}: level not taken out"
                pending = None
            quote = event
        else:
            assert isinstance(event, TradeTick)
            assert quote is not None, "the first event must be a quote"
            assert pending is None, f"event {i}: trade not followed by a quote"
            assert _on_grid(event.price), f"event {i}: {event}"
            assert _positive_int(event.size), f"event {i}: {event}"
            if event.aggressor is Side.BUY:
                assert event.price == quote.ask, f"event {i}: BUY off the ask {quote}"
                assert quote.ask_size >= event.size, f"event {i}: ask too small {quote}"
            else:
                assert event.aggressor is Side.SELL
                assert event.price == quote.bid, f"event {i}: SELL off the bid {quote}"
                assert quote.bid_size >= event.size, f"event {i}: bid too small {quote}"
            pending = (event, quote)
            trades.append(event)
    return trades


@pytest.fixture(scope="session")
def stream_checker() -> StreamChecker:
    """`check_stream`, as a fixture so test modules need not import conftest."""
    return check_stream


def tick_rule(trades: Iterable[TradeTick]) -> list[Side | None]:
    """Classic tick rule: up-tick BUY, down-tick SELL, zero-tick as the last non-zero tick."""
    sides: list[Side | None] = []
    prev_price: float | None = None
    side: Side | None = None
    for trade in trades:
        if prev_price is not None and trade.price > prev_price:
            side = Side.BUY
        elif prev_price is not None and trade.price < prev_price:
            side = Side.SELL
        sides.append(side)
        prev_price = trade.price
    return sides


@pytest.fixture(scope="session")
def tick_rule_agreement() -> Callable[[list[TradeTick]], float]:
    """Share of classified trades where the tick rule names the true aggressor."""

    def agreement(trades: list[TradeTick]) -> float:
        pairs = [(s, t.aggressor) for s, t in zip(tick_rule(trades), trades, strict=True)]
        classified = [(s, a) for s, a in pairs if s is not None]
        return sum(s is a for s, a in classified) / len(classified)

    return agreement
