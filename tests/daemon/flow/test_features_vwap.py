"""VWAP and standard deviation bands from folded footprints, by hand."""

from __future__ import annotations

import math

import pytest

from daemon.core.instrument import Instrument
from daemon.flow.features.vwap import Moments

ES = Instrument.of_product("ES")


def test_vwap_and_sd_by_hand() -> None:
    moments = Moments(ES)
    # 2 @ 100.00, 1 @ 101.00, 1 @ 99.00 (ticks 400, 404, 396)
    moments.add_footprint({400: [1.0, 1.0, 0.0], 404: [0.0, 1.0, 0.0]})
    moments.add_footprint({396: [0.0, 0.0, 1.0]})
    bands = moments.bands()
    assert bands is not None
    # VWAP (200 + 101 + 99) / 4 = 100; variance (2*0 + 1*1 + 1*1) / 4 = 0.5
    assert bands.vwap == pytest.approx(100.0)
    assert bands.sd == pytest.approx(math.sqrt(0.5))
    assert bands.upper1 == pytest.approx(100.0 + math.sqrt(0.5))
    assert bands.lower2 == pytest.approx(100.0 - 2 * math.sqrt(0.5))
    assert moments.vwap() == pytest.approx(100.0)


def test_one_price_has_zero_sd() -> None:
    moments = Moments(ES)
    moments.add_footprint({21000: [3.0, 4.0, 0.0]})
    bands = moments.bands()
    assert bands is not None
    assert bands.vwap == 5250.0
    assert bands.sd == 0.0


def test_no_volume_is_undefined() -> None:
    moments = Moments(ES)
    assert moments.bands() is None
    assert moments.vwap() is None
    moments.add_footprint({400: [0.0, 0.0, 0.0]})
    assert moments.bands() is None


def test_copy_is_independent() -> None:
    moments = Moments(ES)
    moments.add_footprint({400: [1.0, 0.0, 0.0]})
    other = moments.copy()
    other.add_footprint({404: [0.0, 1.0, 0.0]})
    assert moments.vwap() == 100.0
    assert other.vwap() == pytest.approx(100.5)
