"""Top-of-book imbalance and microprice."""

from __future__ import annotations

import pytest

from daemon.core.instrument import Instrument
from daemon.flow.features.book import TopOfBook

ES = Instrument.of_product("ES")


def test_imbalance_and_microprice_by_hand() -> None:
    book = TopOfBook(ES)
    book.update(400, 401, 30.0, 10.0, 1.0)  # 100.00 x 100.25, 30 bid, 10 offered
    assert book.bid == 100.0
    assert book.ask == 100.25
    assert book.imbalance() == pytest.approx(0.5)  # (30 - 10) / 40
    # (100 * 10 + 100.25 * 30) / 40: leans to the ask, where size is thin
    assert book.microprice() == pytest.approx(100.1875)


def test_undefined_before_a_quote_and_when_sizes_sum_to_zero() -> None:
    book = TopOfBook(ES)
    assert book.imbalance() is None
    assert book.microprice() is None
    assert book.bid is None
    book.update(400, 401, 0.0, 0.0, 1.0)
    assert book.imbalance() is None
    assert book.microprice() is None
    assert book.bid == 100.0


def test_one_sided_size() -> None:
    book = TopOfBook(ES)
    book.update(400, 401, 0.0, 5.0, 1.0)
    assert book.imbalance() == -1.0
    assert book.microprice() == 100.0  # all the size on the offer: the bid
