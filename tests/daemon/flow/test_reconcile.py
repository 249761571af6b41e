"""Volume reconciliation: classified trades against increments of IB's cumulative volume."""

from __future__ import annotations

from daemon.flow.reconcile import VolumeReconciler


def test_agreeing_streams_raise_no_gap() -> None:
    r = VolumeReconciler(tolerance=2, after_s=5)
    r.cumulative(None, 0.0)  # first sample: the baseline
    for second in range(1, 60):
        r.traded(3)
        r.traded(1)
        r.cumulative(4, float(second))
    assert (r.gap, r.gaps, r.difference, r.missing_volume) == (False, 0, 0, 0)


def test_jitter_within_the_time_allowance_is_no_gap() -> None:
    r = VolumeReconciler(tolerance=2, after_s=5)
    r.cumulative(None, 0.0)
    r.cumulative(10, 1.0)  # IB counted 10 before the trades arrived
    r.cumulative(0, 3.0)
    for _ in range(10):
        r.traded(1)
    r.cumulative(0, 5.5)
    assert not r.gap
    assert r.difference == 0


def test_lasting_disagreement_flags_a_gap_and_counts_what_is_missing() -> None:
    r = VolumeReconciler(tolerance=2, after_s=5)
    r.cumulative(None, 0.0)
    r.traded(5)
    r.cumulative(25, 1.0)  # 20 contracts traded that we never saw
    r.cumulative(0, 4.0)
    assert not r.gap
    r.cumulative(0, 6.0)
    assert r.gap
    assert (r.gaps, r.missing_volume, r.difference) == (1, 20, 0)  # re-baselined
    # Agreement for after_s clears the flag; the missing volume stays on record.
    r.cumulative(0, 7.0)
    r.cumulative(0, 12.0)
    assert not r.gap
    assert r.missing_volume == 20


def test_trades_before_the_first_sample_and_resets_are_not_counted() -> None:
    r = VolumeReconciler(tolerance=0, after_s=1)
    r.traded(7)  # no baseline yet
    r.cumulative(None, 0.0)
    r.traded(2)
    r.cumulative(2, 1.0)
    r.cumulative(None, 2.0)  # volume reset: count again from here
    r.traded(4)
    r.cumulative(4, 3.0)
    r.cumulative(0, 9.0)
    assert (r.gap, r.difference) == (False, 0)
