"""The order-message budget of `RiskManager`: rate windows and the day's messages per fill.

Every message sent (any kind) counts against the per-second and per-minute limits, by an
injected monotonic clock, and towards the day's efficiency ratio (messages / fills).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable

from daemon.settings import RiskSettings
from daemon.trading.model import Refusal


class MessageBudget:
    """Messages sent in the last 60 s (monotonic `clock`), and the day's messages and fills."""

    def __init__(self, settings: RiskSettings, clock: Callable[[], float]) -> None:
        self._settings = settings
        self._clock = clock
        self._sent: deque[tuple[float, int]] = deque()  # (clock, messages) of the last 60 s
        self._day = ""
        self._messages_day = 0
        self._fills_day = 0

    def record_sent(self, messages: int) -> None:
        """Messages just sent (any kind): feeds the rate windows and the day's efficiency."""
        if messages < 0:
            raise ValueError(f"record_sent: messages {messages} is negative")
        if messages:
            self._sent.append((self._clock(), messages))
            self._messages_day += messages

    def record_fill(self) -> None:
        """One execution (a fill of any size) for the day's efficiency ratio."""
        self._fills_day += 1

    def new_day(self, day: str) -> None:
        """Start a trading day: clears the day's messages and fills (not the rate windows)."""
        self._day = day
        self._messages_day = self._fills_day = 0

    def check_efficiency(self) -> Refusal | None:
        """Refused once past the grace messages when the day's messages per fill is too high."""
        s = self._settings
        if self._messages_day < s.efficiency_grace_messages:
            return None
        ratio = self._messages_day / max(1, self._fills_day)
        if ratio > s.max_messages_per_fill:
            return Refusal(
                "order_efficiency",
                f"{self._messages_day} messages / {self._fills_day} fills = {ratio:.1f} > "
                f"{s.max_messages_per_fill:g}",
            )
        return None

    def check_rates(self, messages: int) -> Refusal | None:
        """Refused when sending `messages` more would break the per-second or per-minute limit."""
        per_second, per_minute = self._rates()
        s = self._settings
        if per_second + messages > s.max_orders_per_second:
            return Refusal(
                "orders_per_second",
                f"{per_second} sent in the last 1 s + {messages} > {s.max_orders_per_second}",
            )
        if per_minute + messages > s.max_orders_per_minute:
            return Refusal(
                "orders_per_minute",
                f"{per_minute} sent in the last 60 s + {messages} > {s.max_orders_per_minute}",
            )
        return None

    def _rates(self) -> tuple[int, int]:
        """Messages sent in the trailing (now-1, now] and (now-60, now] by the monotonic clock."""
        now = self._clock()
        while self._sent and self._sent[0][0] <= now - 60:
            self._sent.popleft()
        per_second = sum(n for t, n in self._sent if t > now - 1)
        return per_second, sum(n for _, n in self._sent)

    def summary(self) -> dict[str, object]:
        """The `rates` and `efficiency` parts of the risk summary, JSON-ready."""
        s = self._settings
        per_second, per_minute = self._rates()
        return {
            "rates": {
                "messages_1s": per_second,
                "messages_60s": per_minute,
                "max_per_second": s.max_orders_per_second,
                "max_per_minute": s.max_orders_per_minute,
            },
            "efficiency": {
                "day": self._day,
                "messages": self._messages_day,
                "fills": self._fills_day,
                "ratio": self._messages_day / max(1, self._fills_day),
                "max_messages_per_fill": s.max_messages_per_fill,
                "grace_messages": s.efficiency_grace_messages,
            },
        }
