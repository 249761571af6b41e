"""What a day's report shows, collected and computed: bars, CVD, VWAP bands, fills, PnL, marks.

Market events go through the live extractor (`daemon.flow.extractor.OrderFlow`): bars, delta
and the session VWAP and its SD are the daemon's own, never recomputed here. Fills, PnL and
marks come from the journal; realized PnL is rebuilt with the trader's `DayLedger`, so the
curve ends where the journal's daily PnL does. Times are epoch seconds; the trading day of an
instant is the date its Globex session ends on (as the trader journals it).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime
from itertools import accumulate
from typing import Final

from daemon.core.instrument import Instrument
from daemon.flow.events import MarketEvent
from daemon.flow.extractor import OrderFlow
from daemon.flow.features import Bar
from daemon.flow.features.vwap import VwapBands
from daemon.flow.sessions import CENTRAL, SessionSchedule, Span
from daemon.settings import Settings
from daemon.trading.journal import DailyPnl, EventRow, Journal
from daemon.trading.ledger import DayLedger

ENTRY_ROLES: Final = frozenset({"entry"})
EXIT_ROLES: Final = frozenset({"stop", "target", "exit", "flatten"})
LINE_KINDS: Final = frozenset(
    {
        "connect",
        "disconnect",
        "halt",
        "reduce",
        "resume",
        "flatten",
        "reject",
        "mismatch",
        "shutdown",
    }
)
"""Journal event kinds drawn as a vertical line."""


@dataclass(frozen=True, slots=True)
class Fill:
    """One execution of the day, as plotted and listed."""

    time: float
    exec_id: str
    side: str  # BUY | SELL
    shares: int
    price: float
    kind: str  # "entry" | "exit": from the order's role, else from the position it changed
    role: str | None  # the journaled order's role; None for an order the journal does not know
    order_ref: str | None
    realized: float  # USD before commission (the trader's ledger)
    commission: float | None


@dataclass(frozen=True, slots=True)
class PnlStep:
    """Realized PnL of the day (USD, before commissions) from `time` on."""

    time: float
    realized: float


@dataclass(frozen=True, slots=True)
class Mark:
    """A journal event drawn as a line; `label` says reconnect for a connect after a drop."""

    time: float
    kind: str
    label: str


@dataclass(frozen=True, slots=True)
class Shade:
    """A stretch the trader was halted (or reducing) or the broker connection was down."""

    start: float
    end: float
    kind: str  # "halted" | "disconnected"


@dataclass(frozen=True, slots=True)
class ReportData:
    """Everything one day's report shows. `bars`, `cvd` and `bands` are aligned."""

    day: str
    bar_seconds: int
    bars: list[Bar]
    cvd: list[float]  # the day's cumulative delta at each bar's close
    bands: list[VwapBands | None]  # session VWAP and SD at each bar's close
    trades: int
    rejected: dict[str, int]  # ticks the guards refused, by reason
    fills: list[Fill]
    pnl: list[PnlStep]  # starts at 0.0 at the first bar, one step per fill that realized PnL
    realized: float
    commissions: float
    journal_pnl: DailyPnl | None  # what the trader stored for the day, if anything
    marks: list[Mark]
    shades: list[Shade]

    @property
    def start(self) -> float:
        return self.bars[0].start

    @property
    def end(self) -> float:
        return self.bars[-1].end

    @property
    def volume(self) -> float:
        return sum(b.volume for b in self.bars)

    @property
    def high(self) -> float:
        return max(b.high for b in self.bars)

    @property
    def low(self) -> float:
        return min(b.low for b in self.bars)


class DayClock:
    """The trading day of an instant: the date its Globex session ends on (else its own date).

    Caches the session span, so asking for every tick of a day costs one lookup per session.
    """

    def __init__(self, schedule: SessionSchedule | None = None) -> None:
        self._schedule = schedule or SessionSchedule()
        self._span: Span | None = None
        self._span_day = ""

    def day_of(self, t: float) -> str:
        span = self._span
        if span is not None and t in span:
            return self._span_day
        span = self._schedule.globex_at(t)
        day = datetime.fromtimestamp(span.end if span else t, CENTRAL).date().isoformat()
        if span is not None:
            self._span, self._span_day = span, day
        return day


def _event_time(ev: MarketEvent) -> float:
    return ev.exchange_time


def day_events(events: Iterable[MarketEvent], day: str, clock: DayClock) -> Iterator[MarketEvent]:
    """The events of trading day `day` (a recording may hold a neighbour's edge)."""
    for ev in events:
        if clock.day_of(_event_time(ev)) == day:
            yield ev


def market_bars(
    events: Iterable[MarketEvent], settings: Settings
) -> tuple[list[Bar], list[VwapBands | None], int, dict[str, int]]:
    """Time bars of `events` through the live extractor (on the configured product's grid), the
    session VWAP bands at each close, the trades taken and the ticks rejected."""
    bars: list[Bar] = []
    bands: list[VwapBands | None] = []
    extractor: OrderFlow

    def on_bar(bar: Bar) -> None:
        if bar.kind != "time":
            return
        snap = extractor.features.snapshot()
        bars.append(bar)
        if snap.vwap is None or snap.vwap_sd is None:
            bands.append(None)
        else:
            bands.append(VwapBands(snap.vwap, snap.vwap_sd))

    # quotes=False: whether quotes are expected only changes health, which is not shown.
    instrument = Instrument.of_product(settings.instrument.symbol)
    extractor = OrderFlow(
        settings.flow, settings.data, instrument=instrument, on_bar=on_bar, quotes=False
    )
    for ev in events:
        extractor.on_event(ev)
    extractor.flush()
    state = extractor.state()
    return bars, bands, state.trades, state.rejected


def _fill_kind(role: str | None, before: int, after: int) -> str:
    if role in ENTRY_ROLES:
        return "entry"
    if role in EXIT_ROLES:
        return "exit"
    reduced = abs(after) < abs(before) or (before > 0 > after) or (before < 0 < after)
    return "exit" if reduced else "entry"


def journal_fills(journal: Journal, day: str, multiplier: float) -> tuple[list[Fill], float, float]:
    """The day's fills with their realized PnL, and the day's realized PnL and commissions.

    Every journaled execution is replayed through `DayLedger` (a position carried in from an
    earlier day is closed against its entry), exactly as the trader rebuilds its PnL.
    """
    roles = {o.ref: o.role for o in journal.orders()}
    executions = journal.executions()
    if not any(e.day == day for e in executions):
        return [], 0.0, 0.0
    accounts = {e.account for e in executions if e.day == day}
    ledger = DayLedger(day, multiplier)
    fills: list[Fill] = []
    for e in sorted(executions, key=lambda e: (e.time, e.exec_id)):
        if e.account not in accounts:
            continue  # another account's fills: not this day's trading
        before = ledger.ledger(e.con_id).position
        realized = ledger.apply(e)
        if e.day != day:
            continue
        role = roles.get(e.order_ref) if e.order_ref else None
        after = ledger.ledger(e.con_id).position
        fills.append(
            Fill(
                time=e.time,
                exec_id=e.exec_id,
                side=e.side,
                shares=e.shares,
                price=e.price,
                kind=_fill_kind(role, before, after),
                role=role,
                order_ref=e.order_ref,
                realized=realized,
                commission=e.commission,
            )
        )
    return fills, ledger.realized, ledger.commissions


def pnl_curve(fills: list[Fill], start: float) -> list[PnlStep]:
    """0.0 at `start`, then one step at each fill that realized PnL."""
    steps = [PnlStep(start, 0.0)]
    total = 0.0
    for f in fills:
        if f.realized:
            total += f.realized
            steps.append(PnlStep(f.time, total))
    return steps


def event_time(ev: EventRow) -> float:
    """When a journal event happened on the market's clock: its `market_time` (the last trade
    the daemon had seen) where recorded, else its wall time (the same against a live gateway)."""
    market_time = ev.data.get("market_time")
    if isinstance(market_time, int | float) and not isinstance(market_time, bool):
        return float(market_time)
    return ev.time


def journal_marks(
    events: list[EventRow], day: str, clock: DayClock, start: float, end: float
) -> tuple[list[Mark], list[Shade]]:
    """Lines for the day's events, and the halted and disconnected stretches within
    [start, end] (one begun on an earlier day is shaded from `start`)."""
    marks: list[Mark] = []
    shades: list[Shade] = []
    halted_since: float | None = None
    down_since: float | None = None

    def shade(since: float, until: float, kind: str) -> None:
        lo, hi = max(since, start), min(until, end)
        if lo < hi:
            shades.append(Shade(lo, hi, kind))

    for ev, t in sorted(((e, event_time(e)) for e in events), key=lambda p: (p[1], p[0].id)):
        if ev.kind in LINE_KINDS and clock.day_of(t) == day:
            label = ev.kind
            if ev.kind == "connect" and down_since is not None:
                label = "reconnect"
            marks.append(Mark(t, ev.kind, label))
        if ev.kind in ("halt", "reduce") and halted_since is None:
            halted_since = t
        elif ev.kind == "resume" and halted_since is not None:
            shade(halted_since, t, "halted")
            halted_since = None
        elif ev.kind == "disconnect" and down_since is None:
            down_since = t
        elif ev.kind == "connect" and down_since is not None:
            shade(down_since, t, "disconnected")
            down_since = None
    if halted_since is not None:
        shade(halted_since, end, "halted")
    if down_since is not None:
        shade(down_since, end, "disconnected")
    return marks, shades


class NoMarketDataError(ValueError):
    """The events held nothing of the day that makes a bar."""


def build_report_data(
    journal: Journal, events: Iterable[MarketEvent], day: str, settings: Settings
) -> ReportData:
    """Collect and compute one trading day's report (raises `NoMarketDataError` for no bars)."""
    clock = DayClock()
    bars, bands, trades, rejected = market_bars(day_events(events, day, clock), settings)
    if not bars:
        raise NoMarketDataError(f"no trades of trading day {day} in the market data")
    start, end = bars[0].start, bars[-1].end
    # The product's multiplier: the journal does not keep the broker's (the same for the family).
    multiplier = Instrument.of_product(settings.instrument.symbol).multiplier
    fills, realized, commissions = journal_fills(journal, day, multiplier)
    marks, shades = journal_marks(journal.events(), day, clock, start, end)
    return ReportData(
        day=day,
        bar_seconds=settings.flow.bar,
        bars=bars,
        cvd=list(accumulate(b.delta for b in bars)),
        bands=bands,
        trades=trades,
        rejected=rejected,
        fills=fills,
        pnl=pnl_curve(fills, min([start, *(f.time for f in fills)])),
        realized=realized,
        commissions=commissions,
        journal_pnl=journal.daily_pnl(day),
        marks=marks,
        shades=shades,
    )
