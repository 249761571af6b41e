"""Order-flow features: bars, footprints, CVD, VWAP, volume profiles, windows, book.

`Features` takes classified `Print`s and validated quotes and keeps every feature incrementally:
a print updates only the open time bar (footprint level, high/low, running delta, trade count)
and the current one-second bucket, O(1); a closing bar is folded into the session totals,
O(price levels); a snapshot combines closed totals with the open bar, O(price levels).
Undefined features are None, never NaN and never invented. Memory is bounded by
`flow.bars_kept` closed bars per kind, the longest window in seconds, and the price levels a
session trades.

Sessions come from `SessionSchedule`: the Globex day (17:00-16:00 CT) and RTH (08:30-15:15 CT);
their boundaries are taken to fall on whole minutes.

Reset rules
===========

==========================  =================================================================
Feature                     Resets / scope
==========================  =================================================================
time bars                   never reset; aligned to multiples of `flow.bar` from CT midnight;
                            a bar never spans a Globex or RTH boundary: it starts no earlier
                            and ends no later than one (so a bar can be shorter than
                            `flow.bar`); no empty bars; `Bar.session` / `Bar.rth` tag it
volume bars                 restart at every Globex boundary (session start and end): the
                            open one closes there with fewer than `flow.volume_bar` contracts
session CVD, volumes,       reset at the Globex session start (17:00 CT); in the daily break
VWAP + SD bands,            they keep the finished session's values (`in_session` False);
profile, POC, VAH/VAL       prints outside any Globex session (break, weekend, holiday) go
                            into bars and windows, never into these
RTH CVD, volume, VWAP,      reset at the RTH open (08:30 CT); None outside RTH
profile, POC, VAH/VAL
delta windows,              never reset (time based); intensity is None until the first event
trade intensity             is one intensity window old
book imbalance,             follow the latest quote; None before one or when its sizes sum to
microprice                  0 (staleness is the caller's: `data.quote_stale_s`)
session_partial             set by `mark_partial`; cleared when a Globex session starts while
                            running (not the one the first event falls in)
==========================  =================================================================

Time: the clock is the newest event time (prints, quotes, `advance`); an older print counts at
the clock, so it joins the open bar and the current second, never a closed bar. `advance` and
quotes close bars that ended and cross boundaries; without them the next print does. `flush`
ends the input: it closes the open bars, and later prints open new ones.
"""

from daemon.flow.features.bars import Bar
from daemon.flow.features.engine import Features
from daemon.flow.features.snapshot import FlowSnapshot

__all__ = ["Bar", "Features", "FlowSnapshot"]
