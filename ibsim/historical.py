"""`reqHistoricalData` (TRADES bars) and `reqHistoricalTicks`, served from a contract's tape.

IB paces historical requests; this gateway enforces the documented limit of 60 requests in
any 10 minutes with error 162, so a client's backfill has to pace itself as it would live.
A bar request whose window holds no trade is error 162 "HMDS query returned no data", as TWS
answers it; a tick request with none is an empty, complete answer.
"""

from __future__ import annotations

import collections
import math
import re
import time
from collections.abc import Callable
from datetime import UTC, datetime, tzinfo
from typing import TYPE_CHECKING, Protocol
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from ibsim.encoders import Encoder
from ibsim.history import MAX_TICKS_PER_REQUEST, Bar, Tape, bars_of
from ibsim.requests import HistoricalDataRequest, HistoricalTicksRequest

if TYPE_CHECKING:
    from ibsim.clock import SimClock

CENTRAL = ZoneInfo("America/Chicago")
PACING_WINDOW = 600.0
PACING_MAX_REQUESTS = 60

_UNITS = {"S": 1, "D": 86400, "W": 7 * 86400, "M": 30 * 86400, "Y": 365 * 86400}
_BAR_UNITS = {"sec": 1, "secs": 1, "min": 60, "mins": 60, "hour": 3600, "hours": 3600}
_BAR_UNITS |= {"day": 86400, "days": 86400}
_PERIOD_UNITS = {"day": 86400, "week": 7 * 86400, "month": 30 * 86400, "year": 365 * 86400}


class Requester(Protocol):
    enc: Encoder

    def send(self, data: bytes) -> None: ...

    def error(self, req_id: int, code: int, text: str) -> None: ...


def parse_ib_time(text: str, default_zone: ZoneInfo = CENTRAL) -> float:
    """`YYYYMMDD HH:MM:SS [zone]`, `YYYYMMDD-HH:MM:SS` (UTC) or `YYYYMMDD` → epoch seconds."""
    text = text.strip()
    m = re.fullmatch(r"(\d{8})(?:([ -])\s*(\d{1,2}:\d{2}:\d{2})(?:\s+(\S+))?)?", text)
    if not m:
        raise ValueError(f"cannot read time {text!r}: expected 'YYYYMMDD HH:MM:SS [zone]'")
    day, sep, clock, zone_name = m.groups()
    zone: tzinfo = default_zone
    if sep == "-":
        zone = UTC
    if zone_name:
        try:
            zone = UTC if zone_name.upper() in ("UTC", "GMT") else ZoneInfo(zone_name)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {zone_name!r} in {text!r}") from None
    naive = datetime.strptime(f"{day} {clock or '00:00:00'}", "%Y%m%d %H:%M:%S")
    return naive.replace(tzinfo=zone).timestamp()


def parse_duration(text: str) -> int:
    """`"3600 S"`, `"1 D"`, `"2 W"` → seconds."""
    m = re.fullmatch(r"\s*(\d+)\s*([SDWMY])\s*", text)
    if not m:
        raise ValueError(f"invalid duration {text!r}: expected '<n> S|D|W|M|Y'")
    return int(m.group(1)) * _UNITS[m.group(2)]


def parse_period(text: str) -> int:
    """A histogram period, `"3 days"`, `"1 week"`, `"2 months"` → seconds."""
    m = re.fullmatch(r"\s*(\d+)\s*(day|week|month|year)s?\s*", text)
    if not m or int(m.group(1)) == 0:
        raise ValueError(f"invalid period {text!r}: expected e.g. '3 days' or '1 week'")
    return int(m.group(1)) * _PERIOD_UNITS[m.group(2)]


def bar_date(format_date: int) -> Callable[[float], object]:
    """How bar times are written: epoch seconds (formatDate 2) or local time with the zone."""
    if format_date == 2:
        return int

    def local(t: float) -> str:
        return f"{datetime.fromtimestamp(t, CENTRAL):%Y%m%d %H:%M:%S} US/Central"

    return local


def parse_bar_size(text: str) -> int:
    """`"1 min"`, `"5 mins"`, `"30 secs"`, `"1 hour"` → seconds."""
    m = re.fullmatch(r"\s*(\d+)\s*([a-z]+)\s*", text)
    if not m or m.group(2) not in _BAR_UNITS:
        raise ValueError(f"invalid bar size {text!r}: expected e.g. '1 min' or '5 secs'")
    return int(m.group(1)) * _BAR_UNITS[m.group(2)]


class HistoricalService:
    """Answers historical requests from the tape of the contract asked for."""

    def __init__(
        self,
        history: Tape,
        clock: SimClock,
        wall: Callable[[], float] = time.monotonic,
        max_requests: int = PACING_MAX_REQUESTS,
        exchange: str = "CME",
    ) -> None:
        self.history = history  # the front month's tape, for requests that name no other
        self.clock = clock
        self.exchange = exchange  # where the driven product trades
        self._wall = wall
        self._max = max_requests
        self._recent: collections.deque[float] = collections.deque()

    def _paced(self, who: Requester, req_id: int) -> bool:
        now = self._wall()
        while self._recent and now - self._recent[0] > PACING_WINDOW:
            self._recent.popleft()
        if len(self._recent) >= self._max:
            who.error(
                req_id,
                162,
                "Historical Market Data Service error message:"
                "Historical data request pacing violation",
            )
            return False
        self._recent.append(now)
        return True

    def bars(
        self,
        who: Requester,
        req: HistoricalDataRequest,
        tape: Tape | None = None,
        local_symbol: str = "",
    ) -> tuple[list[Bar], int] | None:
        """Send the bars of `req` from `tape`: (bars, bar seconds), or None if refused."""
        tape = self.history if tape is None else tape
        if not self._paced(who, req.req_id):
            return None
        if req.what_to_show.upper() != "TRADES":
            who.error(
                req.req_id,
                162,
                "Historical Market Data Service error message:"
                f"this gateway serves TRADES bars only, not {req.what_to_show}",
            )
            return None
        try:
            end = parse_ib_time(req.end) if req.end else self.clock.now()
            span = parse_duration(req.duration)
            bar_seconds = parse_bar_size(req.bar_size)
        except ValueError as exc:
            who.error(req.req_id, 321, f"Error validating request:-'bX' : cause - {exc}")
            return None
        end = min(end, self.clock.now())
        start = end - span
        bars = bars_of(tape, start, math.nextafter(end, math.inf), bar_seconds)  # now included
        if not bars and not req.keep_up_to_date:
            who.error(
                req.req_id,
                162,
                "Historical Market Data Service error message:"
                f"HMDS query returned no data: {local_symbol}@{self.exchange} Trades",
            )
            return None
        date = bar_date(req.format_date)
        rows = [
            (date(b.start), b.open, b.high, b.low, b.close, b.volume, round(b.wap, 6), b.count)
            for b in bars
        ]
        fmt = "%Y%m%d %H:%M:%S"
        who.send(
            who.enc.historical_data(
                req.req_id,
                f"{datetime.fromtimestamp(start, CENTRAL):{fmt}}",
                f"{datetime.fromtimestamp(end, CENTRAL):{fmt}}",
                rows,
            )
        )
        return bars, bar_seconds

    def ticks(self, who: Requester, req: HistoricalTicksRequest, tape: Tape | None = None) -> None:
        tape = self.history if tape is None else tape
        if not self._paced(who, req.req_id):
            return
        try:
            start = parse_ib_time(req.start) if req.start else None
            end = parse_ib_time(req.end) if req.end else None
        except ValueError as exc:
            who.error(req.req_id, 321, f"Error validating request:-'bX' : cause - {exc}")
            return
        if (start is None) == (end is None):
            who.error(
                req.req_id,
                321,
                "Error validating request:-'bX' : cause - exactly one "
                "of startDateTime and endDateTime must be given",
            )
            return
        if end is not None:
            end = min(end, self.clock.now())
        count = min(req.count, MAX_TICKS_PER_REQUEST)
        what = req.what_to_show.upper()
        if what == "TRADES":
            trades = tape.trades.window(start, end, count)
            rows = [(int(t.time), t.price, t.size) for t in trades]
            who.send(who.enc.historical_ticks_last(req.req_id, rows, True, self.exchange))
        elif what == "BID_ASK":
            quotes = tape.quotes.window(start, end, count)
            qrows = [(int(q.time), q.bid, q.ask, q.bid_size, q.ask_size) for q in quotes]
            who.send(who.enc.historical_ticks_bid_ask(req.req_id, qrows, True))
        elif what == "MIDPOINT":
            quotes = tape.quotes.window(start, end, count)
            mrows = [(int(q.time), (q.bid + q.ask) / 2) for q in quotes]
            who.send(who.enc.historical_ticks_midpoint(req.req_id, mrows, True))
        else:
            who.error(
                req.req_id,
                162,
                "Historical Market Data Service error message:"
                f"whatToShow {req.what_to_show!r} is not TRADES, BID_ASK or MIDPOINT",
            )
