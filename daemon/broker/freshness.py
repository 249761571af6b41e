"""The market-data freshness watch: when data is stale, and what to try about it.

Data is stale when the market is open and no accepted data (a trade that passed the guards; in
snapshot mode a sample) has come for `stale_after_s`. The clock starts at the last accepted
data, or later at the start of the current socket's subscriptions (nothing can have arrived on
a new connection yet) or at the market's open. A resubscription on the same socket starts
nothing: it used to, and a frozen feed resubscribed every `stale_after_s` for good.

Stale data is reported at once (`stale`, which the market data passes on to the order flow's
health), then resubscribed. Every `reconnect_after_s` after that while it stays stale, the next
step depends on whether anything at all arrived on our subscriptions since the last step (the
answer a gateway sends to a new subscription, a rejected tick): nothing means a dead feed, and
the connection is recycled, again and again while nothing comes; something means a live feed
over a market that is itself quiet (a trading halt, a gap in a replayed tape), which a
reconnect would not cure, so it is only resubscribed. Accepted data, or the market closing,
ends it.
"""

from __future__ import annotations

import enum
import math
from typing import Protocol

import structlog

log = structlog.get_logger("daemon.broker.freshness")


class FlowFreshness(Protocol):
    """What the watch's owner needs of the order flow (`OrderFlow` is one)."""

    @property
    def last_accepted(self) -> float | None: ...

    def set_feed_stale(self, stale: bool) -> None: ...


class Step(enum.Enum):
    NONE = "none"
    RESUBSCRIBE = "resubscribe"
    RECONNECT = "reconnect"


def _age(now: float, since: float | None) -> float | None:
    return None if since is None else round(now - since, 3)


class FreshnessWatch:
    """Decides, once per check, whether data is stale and which recovery step is due."""

    def __init__(self, stale_after_s: float, reconnect_after_s: float) -> None:
        self.stale_after_s = stale_after_s
        self.reconnect_after_s = reconnect_after_s
        self.stale_since: float | None = None  # when the data went stale (None: fresh)
        self.resubscribes = 0  # tried in the current stale spell
        self.reconnects = 0
        self._session_start = -math.inf
        self._mark: float | None = None  # last accepted data when the spell began
        self._next_step = math.inf
        self._ticks_at_step = 0

    @property
    def stale(self) -> bool:
        return self.stale_since is not None

    def new_session(self, now: float) -> None:
        """A new socket's subscriptions were just made: they get `stale_after_s` to deliver."""
        self._session_start = now

    def age(self, now: float, last: float | None) -> float:
        """Seconds since the last accepted data, or since the current socket's subscriptions."""
        return now - self._since(last)

    def _since(self, last: float | None) -> float:
        return max(-math.inf if last is None else last, self._session_start)

    def judge(self, now: float, open_for: float | None, last: float | None, ticks: int) -> Step:
        """`open_for`: seconds since the market opened (None: closed); `last`: receipt of the
        last accepted data; `ticks`: events of any kind received."""
        if open_for is None:
            self._end(now, last, "market_closed")
            return Step.NONE
        if self.stale_since is not None:
            if last is not None and last != self._mark:
                self._end(now, last, "fresh_data")
                return Step.NONE
            # A reconnect's subscriptions are judged after their allowance, not before.
            due = max(self._next_step, self._session_start + self.stale_after_s)
            return self._escalate(now, last, ticks) if now >= due else Step.NONE
        since = max(self._since(last), now - open_for)
        if now - since <= self.stale_after_s:
            return Step.NONE
        self.stale_since = since + self.stale_after_s
        self._mark = last
        self.resubscribes, self.reconnects = 1, 0
        self._ticks_at_step = ticks
        # The first judgement of the resubscription waits its allowance too.
        self._next_step = max(self.stale_since + self.reconnect_after_s, now + self.stale_after_s)
        log.warning(
            "market_data_stale",
            data_age_s=_age(now, last),
            stale_after_s=self.stale_after_s,
            action="resubscribe",
            next_step_in_s=round(self._next_step - now, 3),
        )
        return Step.RESUBSCRIBE

    def _escalate(self, now: float, last: float | None, ticks: int) -> Step:
        answered = ticks > self._ticks_at_step
        self._ticks_at_step = ticks
        self._next_step = now + self.reconnect_after_s
        step = Step.RESUBSCRIBE if answered else Step.RECONNECT
        assert self.stale_since is not None
        log.warning(
            "market_data_still_stale",
            stale_for_s=round(now - self.stale_since, 3),
            data_age_s=_age(now, last),
            resubscribes=self.resubscribes,
            reconnects=self.reconnects,
            feed_answered=answered,
            action=step.value,
            reason=(
                "the feed answers but the market is quiet"
                if answered
                else "nothing arrived on the subscriptions since the last step"
            ),
        )
        if answered:
            self.resubscribes += 1
        else:
            self.reconnects += 1
        return step

    def _end(self, now: float, last: float | None, reason: str) -> None:
        if self.stale_since is None:
            return
        log.info(
            "market_data_stale_ended",
            reason=reason,
            stale_for_s=round(now - self.stale_since, 3),
            data_age_s=_age(now, last),
            resubscribes=self.resubscribes,
            reconnects=self.reconnects,
        )
        self.stale_since = None
        self._mark = None
        self._next_step = math.inf
