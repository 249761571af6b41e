"""Volume reconciliation: do the trades we classified add up to IB's own cumulative volume?

In tick-by-tick mode every print should arrive once. IB's cumulative volume (from a
`reqMktData` alongside) is the check: the increments since a baseline, minus the sizes of the
trades we accepted since the same baseline, should stay near zero. The two streams are not
synchronised, so a difference counts only when it exceeds the tolerance for `after_s` seconds
of exchange time without interruption; then a data gap is flagged, the unexplained volume
is added to `missing_volume`, and counting starts again from a new baseline. The flag clears
once the streams have agreed for another `after_s` seconds.
"""

from __future__ import annotations


class VolumeReconciler:
    """Classified trade volume against increments of IB's cumulative volume."""

    __slots__ = (
        "_after_s",
        "_agree_since",
        "_differs_since",
        "_ib",
        "_ours",
        "_started",
        "_tolerance",
        "gap",
        "gaps",
        "missing_volume",
    )

    def __init__(self, tolerance: float, after_s: float) -> None:
        self._tolerance = tolerance
        self._after_s = after_s
        self._ib = 0.0
        self._ours = 0.0
        self._started = False
        self._differs_since: float | None = None
        self._agree_since: float | None = None
        self.gap = False
        self.gaps = 0
        self.missing_volume = 0.0  # IB volume we never saw as trades (negative: extra trades)

    @property
    def difference(self) -> float:
        """IB's volume minus ours since the baseline (positive: trades missing)."""
        return self._ib - self._ours

    def traded(self, size: float) -> None:
        """An accepted trade of `size` contracts."""
        if self._started:
            self._ours += size

    def cumulative(self, increment: float | None, time: float) -> None:
        """A cumulative-volume sample: its increment since the previous one (None = rebaseline)."""
        if increment is None:
            self._rebaseline()
            return
        self._started = True
        self._ib += increment
        if abs(self._ib - self._ours) <= self._tolerance:
            self._differs_since = None
            if self.gap:
                if self._agree_since is None:
                    self._agree_since = time
                elif time - self._agree_since >= self._after_s:
                    self.gap = False
                    self._agree_since = None
            return
        self._agree_since = None
        if self._differs_since is None:
            self._differs_since = time
        elif time - self._differs_since >= self._after_s:
            self.gap = True
            self.gaps += 1
            self.missing_volume += self._ib - self._ours
            self._ib = self._ours = 0.0
            self._differs_since = None

    def _rebaseline(self) -> None:
        """Count from this sample on (first sample, volume reset, resubscription)."""
        self._started = True
        self._ib = self._ours = 0.0
        self._differs_since = None
