"""The broker's book under corrections: a corrected fill is booked as if it had been right."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ibsim.ledger import Ledger, next_revision
from ibsim.matching import MatchingEngine
from ibsim.model import Execution, Faults, FillEvent, OrderRequest, OrderType, QuoteTick, Side

CON = 637533641
T0 = 1_760_000_000.0


def _engine() -> MatchingEngine:
    engine = MatchingEngine(lambda: T0, Faults())
    engine.on_quote(CON, QuoteTick(T0, 5000.0, 5000.25, 100, 100))
    return engine


def _market(engine: MatchingEngine, order_id: int, side: Side, qty: int) -> None:
    request = OrderRequest(1, order_id, CON, side, qty, OrderType.MKT, order_ref=f"r{order_id}")
    engine.place(request)


def test_next_revision_increments_the_last_number_keeping_its_width() -> None:
    assert next_revision("0000e0d5.6650a3c1.01.01") == "0000e0d5.6650a3c1.01.02"
    assert next_revision("a.01.09") == "a.01.10"
    assert next_revision("a.99") == "a.100"
    with pytest.raises(ValueError, match="revision"):
        next_revision("no-dot")


def test_correcting_a_closing_fill_changes_what_it_realized() -> None:
    engine = _engine()
    _market(engine, 1, Side.BUY, 2)  # 2 @ 5000.25
    _market(engine, 2, Side.SELL, 2)  # 2 @ 5000.00: a loss
    closing = engine.executions()[-1]
    assert closing.realized_pnl == pytest.approx(-0.25 * 50 * 2 - 9.0)

    (event,) = engine.correct(price=5001.0)

    assert isinstance(event, FillEvent)
    fix = event.execution
    assert event.corrects == closing.exec_id
    assert fix.realized_pnl == pytest.approx(0.75 * 50 * 2 - 9.0)
    (pos,) = engine.positions()
    assert (pos.quantity, pos.avg_cost) == (0, 0.0)
    assert pos.realized_pnl == pytest.approx(fix.realized_pnl)
    order = engine.order(1, 2)
    assert order is not None
    assert (order.avg_fill_price, order.filled) == (5001.0, 2)
    assert [e.exec_id for e in engine.executions()] == [
        engine.executions()[0].exec_id,
        closing.exec_id,
        fix.exec_id,
    ]
    assert engine.snapshot()["corrections"] == {closing.exec_id: fix.exec_id}


def test_correcting_an_earlier_fill_rebooks_the_later_ones() -> None:
    engine = _engine()
    _market(engine, 1, Side.BUY, 1)
    _market(engine, 2, Side.BUY, 1)
    first = engine.executions()[0]
    (event,) = engine.correct(first.exec_id, shares=3)
    assert isinstance(event, FillEvent)
    fix = event.execution
    assert (fix.cum_qty, fix.avg_price, fix.commission) == (3, 5000.25, pytest.approx(6.75))
    (pos,) = engine.positions()
    assert pos.quantity == 4
    assert pos.avg_cost == pytest.approx(5000.25 * 50 + 2.25)
    assert [e.shares for e in engine.booked_executions()] == [3, 1]


fills = st.lists(
    st.tuples(st.sampled_from([Side.BUY, Side.SELL]), st.integers(1, 5), st.integers(0, 40)),
    min_size=1,
    max_size=12,
)


@given(fills, st.data())
def test_a_correction_books_as_if_the_fill_had_been_right_first(
    book: list[tuple[Side, int, int]], data: st.DataObject
) -> None:
    which = data.draw(st.integers(0, len(book) - 1))
    new_qty = data.draw(st.integers(1, 5))
    new_ticks = data.draw(st.integers(0, 40))
    corrected, straight = Ledger(), Ledger()
    for i, (side, qty, ticks) in enumerate(book):
        _book(corrected, i, side, qty, 4900 + ticks * 0.25)
        if i == which:
            qty, ticks = new_qty, new_ticks
        _book(straight, i, side, qty, 4900 + ticks * 0.25)
    corrected.correct(
        f"x.{which}.01", price=4900 + new_ticks * 0.25, shares=new_qty,
        commission=2.25 * new_qty, time=T0,
    )  # fmt: skip
    (a,), (b,) = corrected.positions(), straight.positions()
    assert (a.quantity, a.avg_cost) == (b.quantity, pytest.approx(b.avg_cost))
    assert a.realized_pnl == pytest.approx(b.realized_pnl)


def _book(ledger: Ledger, i: int, side: Side, qty: int, price: float) -> None:
    realized = ledger.book_fill("DU1", CON, side, qty, price, 2.25 * qty)
    ledger.record(
        Execution(f"x.{i}.01", T0, 1, i, 100 + i, CON, "DU1", side, qty, price, qty, price,
                  "", 2.25 * qty, realized, 2)
    )  # fmt: skip
