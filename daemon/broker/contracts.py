"""Futures contracts: trading hours, front-month selection with a roll rule, stranded positions.

Everything here works on `Listing`s, the broker's contract details as plain values (made at the
broker edge, `daemon.broker.ib.contracts`). All instants are timezone-aware `datetime`s (naive
ones are refused); results come back in the contract's own time zone.
"""

from __future__ import annotations

import bisect
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from daemon.core.gateway import Position
from daemon.core.instrument import Instrument

# Abbreviations older TWS versions put in timeZoneId. zoneinfo's own "EST" is fixed UTC-5,
# which is not what IB means.
_ZONE_ALIASES = {"EST": "US/Eastern", "CST": "US/Central"}

_STAMP = re.compile(r"(\d{8}):(\d{4})")
_CLOSED = re.compile(r"(\d{8}):CLOSED", re.IGNORECASE)
_TIME = re.compile(r"(\d{2}):?(\d{2})(?::?(\d{2}))?")


class NoContractError(LookupError):
    """No usable contract: the gateway returned none, or every one has expired."""


@dataclass(frozen=True, slots=True)
class Listing:
    """One listed expiry, as the broker's contract details describe it."""

    con_id: int
    symbol: str
    local_symbol: str
    exchange: str
    currency: str
    multiplier: str  # as the broker sends it
    trading_class: str
    last_trade: str  # lastTradeDateOrContractMonth: YYYYMMDD, YYYYMM or "YYYYMMDD HH:MM Zone"
    last_trade_time: str
    real_expiration_date: str
    time_zone: str
    trading_hours: str
    liquid_hours: str
    min_tick: float
    price_magnifier: int
    # The broker's own contract object, to subscribe and order with: opaque here, only the
    # broker edge reads it. None for details that came without a contract.
    contract: object = field(default=None, compare=False, repr=False)

    @property
    def name(self) -> str:
        """How logs and errors name it."""
        if self.contract is None:
            return "<details without contract>"
        return self.local_symbol or f"{self.symbol} {self.last_trade} (conId {self.con_id})"


def _zone(name: str) -> ZoneInfo:
    key = name.split()[0] if name.strip() else ""
    try:
        return ZoneInfo(_ZONE_ALIASES.get(key, key))
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError(f"unknown time zone {name!r}") from exc


def _require_aware(t: datetime) -> None:
    if t.tzinfo is None or t.utcoffset() is None:
        raise ValueError(f"naive datetime {t.isoformat()}: pass a timezone-aware one")


def _day(text: str) -> date:
    return date(int(text[:4]), int(text[4:6]), int(text[6:]))


class _Spans:
    """Sorted, disjoint [start, end) intervals as epoch seconds."""

    def __init__(self, spans: list[tuple[float, float]]) -> None:
        merged: list[list[float]] = []
        for start, end in sorted(spans):
            if merged and start <= merged[-1][1]:
                merged[-1][1] = max(merged[-1][1], end)
            else:
                merged.append([start, end])
        self.starts = [s for s, _ in merged]
        self.ends = [e for _, e in merged]

    def index_at(self, t: float) -> int | None:
        i = bisect.bisect_right(self.starts, t) - 1
        return i if i >= 0 and t < self.ends[i] else None


def _parse_hours(text: str, zone: ZoneInfo, field: str) -> tuple[_Spans, float | None]:
    """Sessions of an IB hours string, and the latest instant the string speaks for."""
    spans: list[tuple[float, float]] = []
    horizon: float | None = None
    for raw in text.split(";"):
        segment = raw.strip()
        if not segment:
            continue
        try:
            closed = _CLOSED.fullmatch(segment)
            if closed:
                end = datetime.combine(_day(closed[1]) + timedelta(days=1), time(), zone)
            else:
                start_text, sep, end_text = segment.partition("-")
                start_match, end_match = _STAMP.fullmatch(start_text), _STAMP.fullmatch(end_text)
                if not sep or start_match is None or end_match is None:
                    raise ValueError("expected YYYYMMDD:HHMM-YYYYMMDD:HHMM or YYYYMMDD:CLOSED")
                start = _stamp(start_match, zone)
                end = _stamp(end_match, zone)
                if end <= start:
                    raise ValueError("session ends before it starts")
                spans.append((start.timestamp(), end.timestamp()))
        except ValueError as exc:
            raise ValueError(f"bad {field} segment {segment!r}: {exc}") from None
        horizon = end.timestamp() if horizon is None else max(horizon, end.timestamp())
    return _Spans(spans), horizon


def _stamp(match: re.Match[str], zone: ZoneInfo) -> datetime:
    day, hhmm = match[1], match[2]
    return datetime.combine(_day(day), time(int(hhmm[:2]), int(hhmm[2:])), zone)


class SessionCalendar:
    """Trading and liquid (RTH) sessions from a contract's IB hours strings.

    IB lists only about a week ahead: outside that window the calendar knows nothing, so
    `is_open` is False and `next_open`/`next_close` are None. Refresh the contract details
    daily; `valid_until` says how far the strings reach. Overlapping or touching sessions are
    merged. Every method takes an aware datetime and answers in the contract's zone.
    """

    def __init__(self, trading_hours: str, liquid_hours: str, time_zone: str) -> None:
        self.tz = _zone(time_zone)
        self._trading, trading_end = _parse_hours(trading_hours, self.tz, "tradingHours")
        self._liquid, liquid_end = _parse_hours(liquid_hours, self.tz, "liquidHours")
        ends = [e for e in (trading_end, liquid_end) if e is not None]
        self._horizon = max(ends) if ends else None

    @classmethod
    def from_details(cls, details: Listing) -> SessionCalendar:
        """The calendar of a listing (its trading hours, liquid hours and time zone)."""
        return cls(details.trading_hours, details.liquid_hours, details.time_zone)

    @property
    def valid_until(self) -> datetime | None:
        """The end of the last day or session the hours strings describe (None if empty)."""
        return None if self._horizon is None else self._at(self._horizon)

    def sessions(self) -> list[tuple[datetime, datetime]]:
        """Every trading session as (start, end)."""
        spans = self._trading
        return [(self._at(s), self._at(e)) for s, e in zip(spans.starts, spans.ends, strict=True)]

    def trading_spans(self) -> list[tuple[float, float]]:
        """Trading sessions as (start, end) epoch seconds."""
        return list(zip(self._trading.starts, self._trading.ends, strict=True))

    def liquid_spans(self) -> list[tuple[float, float]]:
        """Liquid hours (RTH) as (start, end) epoch seconds."""
        return list(zip(self._liquid.starts, self._liquid.ends, strict=True))

    def is_open(self, t: datetime) -> bool:
        """Whether the contract trades at `t` (session start inclusive, end exclusive)."""
        return self._trading.index_at(self._epoch(t)) is not None

    def is_liquid(self, t: datetime) -> bool:
        """Whether `t` falls in liquid hours (RTH)."""
        return self._liquid.index_at(self._epoch(t)) is not None

    def session_at(self, t: datetime) -> tuple[datetime, datetime] | None:
        """The trading session containing `t` as (start, end), or None when closed."""
        i = self._trading.index_at(self._epoch(t))
        if i is None:
            return None
        return self._at(self._trading.starts[i]), self._at(self._trading.ends[i])

    def next_open(self, t: datetime) -> datetime | None:
        """The first session start at or after `t` (while open: the following session's)."""
        i = bisect.bisect_left(self._trading.starts, self._epoch(t))
        return self._at(self._trading.starts[i]) if i < len(self._trading.starts) else None

    def next_close(self, t: datetime) -> datetime | None:
        """The end of the session containing `t`, or of the next one when closed."""
        i = bisect.bisect_right(self._trading.ends, self._epoch(t))
        return self._at(self._trading.ends[i]) if i < len(self._trading.ends) else None

    def _epoch(self, t: datetime) -> float:
        _require_aware(t)
        return t.timestamp()

    def _at(self, epoch: float) -> datetime:
        return datetime.fromtimestamp(epoch, self.tz)


def expiry_time(cd: Listing) -> datetime:
    """When `cd` stops trading: its last trade date at its last trade time in its zone.

    Accepts the last trade date as the client library leaves it (`YYYYMMDD`, time and zone
    moved to `last_trade_time`/`time_zone`) or unsplit (`YYYYMMDD HH:MM Zone`); a bare contract
    month `YYYYMM` falls back to `real_expiration_date`. Without a time, 00:00 is used (the
    earliest it could be). Raises ValueError naming the contract when unparseable.
    """
    day, at, zone = _expiry_parts(cd)
    return datetime.combine(day, at, zone)


def _expiry_parts(cd: Listing) -> tuple[date, time, ZoneInfo]:
    name = cd.name
    if cd.contract is None:
        raise ValueError(f"{name}: no contract")
    parts = cd.last_trade.split()
    day_text = parts[0] if parts else ""
    time_text = parts[1] if len(parts) > 1 else cd.last_trade_time.strip()
    zone_text = parts[2] if len(parts) > 2 else cd.time_zone
    if re.fullmatch(r"\d{6}", day_text) and re.fullmatch(r"\d{8}", cd.real_expiration_date):
        day_text = cd.real_expiration_date
    time_match = _TIME.fullmatch(time_text) if time_text else None
    if not re.fullmatch(r"\d{8}", day_text) or (time_text and time_match is None):
        raise ValueError(
            f"{name}: unparseable expiry {cd.last_trade!r} (lastTradeTime {cd.last_trade_time!r})"
        )
    try:
        at = time()
        if time_match is not None:
            at = time(int(time_match[1]), int(time_match[2]), int(time_match[3] or 0))
        return _day(day_text), at, _zone(zone_text)
    except ValueError as exc:
        raise ValueError(f"{name}: bad expiry: {exc}") from None


def _daily_open(cd: Listing, zone: ZoneInfo) -> tuple[time, int] | None:
    """The usual session open: time of day and days before its trade date (ES: 17:00, 1)."""
    try:
        spans, _ = _parse_hours(cd.trading_hours, zone, "tradingHours")
    except ValueError as exc:
        raise ValueError(f"{cd.name}: {exc}") from None
    opens: Counter[tuple[time, int]] = Counter()
    for start_epoch, end_epoch in zip(spans.starts, spans.ends, strict=True):
        start = datetime.fromtimestamp(start_epoch, zone)
        end = datetime.fromtimestamp(end_epoch, zone)
        opens[start.time(), (end.date() - start.date()).days] += 1
    return opens.most_common(1)[0][0] if opens else None


def roll_time(cd: Listing, roll_days: int = 8) -> datetime:
    """When to stop trading `cd` and move to the next expiry.

    The roll trade date is the last trade date minus `roll_days` calendar days; the roll
    happens at the open of that trade date's session, taken as the usual open in the
    contract's trading hours (ES: 17:00 CT the evening before). ESZ6 (last trade 2026-12-18)
    with 8 days rolls on 2026-12-09 at 17:00 CT. Without trading hours: 00:00 of the roll date.
    """
    if roll_days < 0:
        raise ValueError(f"roll_days must be >= 0, got {roll_days}")
    last_day, _, zone = _expiry_parts(cd)
    roll_date = last_day - timedelta(days=roll_days)
    usual = _daily_open(cd, zone)
    if usual is None:
        return datetime.combine(roll_date, time(), zone)
    open_time, days_before = usual
    return datetime.combine(roll_date - timedelta(days=days_before), open_time, zone)


def by_expiry(details: Sequence[Listing]) -> list[Listing]:
    """`details` nearest expiry first (ValueError naming a contract whose expiry is unreadable)."""
    return [cd for _, cd in _by_expiry(details)]


def _by_expiry(details: Sequence[Listing]) -> list[tuple[datetime, Listing]]:
    keyed = [(expiry_time(cd), cd) for cd in details]
    keyed.sort(key=lambda pair: (pair[0], pair[1].con_id))
    return keyed


def select_front(
    details: Sequence[Listing], now: datetime, roll_days_before_expiry: int = 8
) -> Listing:
    """The contract to trade at `now`: the nearest unexpired one whose `roll_time` is after
    `now`. If every unexpired contract is past its roll, the furthest one (the listing is too
    short to roll into anything better). Raises NoContractError when all have expired."""
    _require_aware(now)
    live = [cd for expiry, cd in _by_expiry(details) if expiry > now]
    if not live:
        raise NoContractError(f"no unexpired contract among {len(details)} at {now.isoformat()}")
    for cd in live:
        if roll_time(cd, roll_days_before_expiry) > now:
            return cd
    return live[-1]


def next_after(details: Sequence[Listing], current: Listing) -> Listing | None:
    """The nearest contract expiring after `current`: the one to roll into."""
    current_expiry = expiry_time(current)
    for expiry, cd in _by_expiry(details):
        if expiry > current_expiry:
            return cd
    return None


def instrument_from_details(cd: Listing) -> Instrument:
    """The traded contract as the broker describes it: tick size, multiplier, month."""
    if cd.contract is None:
        raise NoContractError("contract details without a contract")
    return Instrument.from_broker(
        symbol=cd.symbol,
        exchange=cd.exchange,
        currency=cd.currency,
        min_tick=cd.min_tick,
        multiplier=cd.multiplier,
        price_magnifier=cd.price_magnifier,
        con_id=cd.con_id,
        local_symbol=cd.local_symbol,
        trading_class=cd.trading_class,
    )


def stranded_positions(
    positions: Sequence[Position], front_con_id: int, symbol: str
) -> list[Position]:
    """Non-zero futures positions in `symbol` held in a contract other than the front one."""
    return [
        p
        for p in positions
        if p.symbol == symbol and p.sec_type == "FUT" and p.con_id != front_con_id and p.quantity
    ]
