"""Replay of real trades from CSV, with a top-of-book quote process synthesized around them.

The CSV holds trades only (`time_ct,price,size`, US/Central local time). `ReplaySource` decides
each trade's aggressor and builds quotes so that every BUY prints at the ask and every SELL at the
bid; the decided side is recorded on the `TradeTick`, so trade classifiers can be scored against it.
`repeat_sessions` turns one recorded session into several consecutive ones (soak runs).
"""

from __future__ import annotations

import gzip
import math
import random
import re
import zlib
from collections.abc import Iterator, Sequence
from datetime import datetime, timedelta
from pathlib import Path
from typing import NamedTuple
from zoneinfo import ZoneInfo

from ibsim import calendar
from ibsim.market.source import draw_depth
from ibsim.model import TICK_SIZE, MarketEvent, QuoteTick, Side, TradeTick
from ibsim.products import PRODUCTS, Product, ticks_per_point

HEADER = "time_ct,price,size"
_COLUMNS = HEADER.split(",")
EXCHANGE_TZ = ZoneInfo("America/Chicago")

# On an unchanged price the aggressor stays the same with this probability (a new sweep of the
# same level), otherwise it flips; so the tick rule is right on most zero-ticks but not all.
KEEP_SIDE_ON_ZERO_TICK = 0.7

_TIME_RE = re.compile(
    r"(\d{4})-(\d{2})-(\d{2}) (\d{2}):(\d{2}):(\d{2}(?:\.\d{1,6})?)", flags=re.ASCII
)
_INF = math.inf


class RawTrade(NamedTuple):
    """One CSV row: UTC epoch seconds, price, size."""

    time_utc: float
    price: float
    size: int


class ReplayFileError(ValueError):
    """A trades CSV that cannot be replayed; the message names file, line, column and problem."""

    def __init__(
        self, path: Path, reason: str, line: int | None = None, column: str | None = None
    ) -> None:
        self.path = path
        self.reason = reason
        self.line = line
        self.column = column
        where = str(path)
        if line is not None:
            where += f", line {line}"
        if column is not None:
            where += f", column {column}"
        super().__init__(f"{where}: {reason}")


def load_trades_csv(path: Path, product: Product = PRODUCTS["ES"]) -> list[RawTrade]:
    """Read and validate a `time_ct,price,size` trades file (`.csv` or `.csv.gz`) of `product`.

    Times are US/Central local and become UTC epoch seconds (an ambiguous fall-back time is read
    as its first occurrence; a time inside the spring-forward gap is an error). Prices must lie
    on the product's tick grid. Blank lines are skipped. Any problem with the content raises
    `ReplayFileError`.
    """
    tick = product.tick_size
    per_point = ticks_per_point(tick)
    lines = _read_text(path).split("\n")
    header = lines[0].rstrip("\r")
    if header == "" and len(lines) == 1:
        raise ReplayFileError(path, "empty file: no header and no trades", line=1)
    if header != HEADER:
        names = header.split(",")
        column = next(
            (c for i, c in enumerate(_COLUMNS) if i >= len(names) or names[i] != c),
            f"{len(names)} (extra)",
        )
        raise ReplayFileError(
            path, f"header is {header!r}, expected {HEADER!r}", line=1, column=column
        )

    hour_starts: dict[str, float] = {}
    trades: list[RawTrade] = []
    append = trades.append
    match = _TIME_RE.fullmatch
    prev_time = -_INF
    for lineno, raw in enumerate(lines[1:], start=2):
        line = raw.rstrip("\r")
        if not line:
            continue
        fields = line.split(",")
        if len(fields) != 3:
            # Name the first missing column, or the first one too many.
            column = _COLUMNS[len(fields)] if len(fields) < 3 else f"{len(fields)} (extra)"
            raise ReplayFileError(
                path, f"{len(fields)} columns, expected 3 ({HEADER})", lineno, column
            )
        time_s, price_s, size_s = fields

        m = match(time_s)
        if m is None:
            raise ReplayFileError(
                path, f"time {time_s!r} is not 'YYYY-MM-DD HH:MM:SS[.fff]'", lineno, "time_ct"
            )
        hour_key = time_s[:13]
        hour_start = hour_starts.get(hour_key)
        if hour_start is None:
            hour_start = _hour_start_utc(m, path, lineno, time_s)
            hour_starts[hour_key] = hour_start
        minute = int(m[5])
        second = float(m[6])
        if minute > 59 or second >= 60.0:
            raise ReplayFileError(path, f"time {time_s!r} is out of range", lineno, "time_ct")
        time_utc = hour_start + (minute * 60 + second)
        if time_utc < prev_time:
            raise ReplayFileError(
                path, f"time {time_s!r} is before the previous row's time", lineno, "time_ct"
            )
        prev_time = time_utc

        try:
            price = float(price_s)
        except ValueError:
            raise ReplayFileError(
                path, f"price {price_s!r} is not a number", lineno, "price"
            ) from None
        if not 0.0 < price < _INF:  # also false for NaN
            raise ReplayFileError(
                path, f"price {price_s!r} is not a finite positive number", lineno, "price"
            )
        if round(price * per_point) / per_point != price:  # exactly a grid price, or not
            raise ReplayFileError(
                path,
                f"price {price_s!r} is not a multiple of {tick} (the {product.symbol} tick)",
                lineno,
                "price",
            )

        try:
            size = int(size_s)
        except ValueError:
            raise ReplayFileError(
                path, f"size {size_s!r} is not an integer", lineno, "size"
            ) from None
        if size <= 0:
            raise ReplayFileError(path, f"size {size_s!r} is not positive", lineno, "size")

        append(RawTrade(time_utc, price, size))

    if not trades:
        raise ReplayFileError(path, "no trades after the header", line=2)
    return trades


def _read_text(path: Path) -> str:
    data = path.read_bytes()
    if path.suffix == ".gz":
        try:
            data = gzip.decompress(data)
        except (OSError, EOFError, zlib.error) as exc:
            raise ReplayFileError(path, f"unreadable gzip: {exc}") from exc
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise ReplayFileError(path, f"not UTF-8 (byte {data[exc.start]:#04x})", line=line) from exc


def _hour_start_utc(m: re.Match[str], path: Path, lineno: int, time_s: str) -> float:
    """UTC epoch of the start of the local hour of `m`; every time in that hour shares the offset.

    (America/Chicago changes offset only on the hour, so one offset per date-hour is exact.)
    """
    try:
        local = datetime(int(m[1]), int(m[2]), int(m[3]), int(m[4]), tzinfo=EXCHANGE_TZ, fold=0)
    except ValueError as exc:
        raise ReplayFileError(path, f"time {time_s!r}: {exc}", lineno, "time_ct") from exc
    start = local.timestamp()
    # A local time skipped by the spring-forward change does not survive the round trip.
    back = datetime.fromtimestamp(start, EXCHANGE_TZ)
    if back.replace(tzinfo=None) != local.replace(tzinfo=None):
        raise ReplayFileError(
            path, f"time {time_s!r} does not exist in US/Central (DST gap)", lineno, "time_ct"
        )
    return start


class _Run(NamedTuple):
    """Consecutive trades with one timestamp and one price: one aggressor sweeping one level."""

    time: float
    tick: int
    sizes: tuple[int, ...]
    total: int


class ReplaySource:
    """Replays trades with synthesized, consistent top-of-book quotes and decided aggressors.

    Side rule: a price above the previous trade's is a BUY, below is a SELL; an unchanged price
    keeps the previous side with probability `KEEP_SIDE_ON_ZERO_TICK` (seeded), else flips. Rows
    sharing a timestamp and price are one sweep: they share a side and the book shows enough size
    for all of them before the first. Quotes carry the time of the trade they precede or follow.

    With `sessions`, the trades' first trading session is replayed that many times on
    consecutive sessions instead (see `repeat_sessions`); sides and quotes run on across copies.
    Prices are on the `tick_size` grid, and the quotes one tick around them.
    """

    def __init__(
        self,
        trades: Sequence[RawTrade],
        seed: int = 0,
        sessions: int | None = None,
        tick_size: float = TICK_SIZE,
    ) -> None:
        if not trades:
            raise ValueError("no trades to replay")
        if sessions is not None:
            trades = repeat_sessions(trades, sessions)
        self.seed = seed
        self.start_time: float = trades[0].time_utc
        self._per_point = ticks_per_point(tick_size)
        self._runs = _runs(trades, self._per_point)

    def events(self) -> Iterator[MarketEvent]:
        """The replay from its first event; the same seed gives the same stream every time."""
        return _replay(self._runs, random.Random(self.seed), self._per_point)


def repeat_sessions(trades: Sequence[RawTrade], sessions: int) -> list[RawTrade]:
    """The first trading session of `trades`, copied onto `sessions` consecutive CME sessions.

    The first copy is the session the first trade falls in (later trades are dropped); copy k is
    the same trades moved by whole days onto the k-th next session of `ibsim.calendar` (Sunday
    to Thursday evening opens; weekends and full holidays skipped), so each copy opens at the
    same local time of day as the original. A copy is cut at its own session's close (an early
    close can shorten it). ValueError for `sessions` < 1 or a first trade outside any session.
    """
    if isinstance(sessions, bool) or not isinstance(sessions, int) or sessions < 1:
        raise ValueError(f"sessions must be an integer >= 1, got {sessions!r}")
    if not trades:
        raise ValueError("no trades to replay")
    first = calendar.session_bounds(trades[0].time_utc)
    if first is None:
        when = datetime.fromtimestamp(trades[0].time_utc, EXCHANGE_TZ)
        raise ValueError(
            f"the first trade ({when:%Y-%m-%d %H:%M:%S %Z}) is outside CME trading hours: "
            "no session to repeat"
        )
    template = [t for t in trades if t.time_utc < first.close_utc]
    repeated: list[RawTrade] = []
    trade_date = first.trade_date
    copies = 0
    while copies < sessions:
        target = calendar.trading_session(trade_date)
        trade_date += timedelta(days=1)
        if target is None:
            continue
        # Both opens are 17:00 Central and no DST change falls inside a session, so one
        # offset moves every trade of the copy to the same local time of day.
        shift = target.open_utc - first.open_utc
        close = target.close_utc
        repeated.extend(
            RawTrade(t.time_utc + shift, t.price, t.size)
            for t in template
            if t.time_utc + shift < close
        )
        copies += 1
    return repeated


def _runs(trades: Sequence[RawTrade], per_point: int) -> list[_Run]:
    runs: list[_Run] = []
    prev_time = -_INF
    sizes: list[int] = []
    run_time = 0.0
    run_tick = 0
    for i, (time_utc, price, size) in enumerate(trades):
        if not math.isfinite(time_utc) or time_utc < prev_time:
            raise ValueError(f"trade {i}: time {time_utc!r} is not finite or goes backwards")
        scaled = price * per_point
        tick = round(scaled) if math.isfinite(scaled) else -1
        if not (tick / per_point == price and tick >= 2):
            raise ValueError(f"trade {i}: price {price!r} is off the grid or below {2 / per_point}")
        if not isinstance(size, int) or size <= 0:
            raise ValueError(f"trade {i}: size {size!r} is not a positive int")
        prev_time = time_utc
        if sizes and (time_utc != run_time or tick != run_tick):
            runs.append(_Run(run_time, run_tick, tuple(sizes), sum(sizes)))
            sizes = []
        run_time, run_tick = time_utc, tick
        sizes.append(size)
    runs.append(_Run(run_time, run_tick, tuple(sizes), sum(sizes)))
    return runs


def _replay(runs: list[_Run], rng: random.Random, per_point: int) -> Iterator[MarketEvent]:
    def px(index: int) -> float:
        return index / per_point

    bid = ask = -1  # no book yet: the first run builds it
    bid_size = ask_size = 0
    buy = rng.random() < 0.5  # the first trade has no previous price to go by
    prev_tick = runs[0].tick
    first = True
    for time, tick, sizes, total in runs:
        if tick > prev_tick:
            buy = True
        elif tick < prev_tick:
            buy = False
        elif not first and rng.random() >= KEEP_SIDE_ON_ZERO_TICK:
            buy = not buy
        prev_tick = tick
        first = False

        if buy:
            if ask != tick:
                # The book moves so that this price is the ask, one tick above the bid.
                if bid != tick - 1:
                    bid, bid_size = tick - 1, draw_depth(rng)
                ask, ask_size = tick, max(draw_depth(rng), total)
                yield QuoteTick(time, px(bid), px(ask), bid_size, ask_size)
            elif ask_size < total:
                ask_size = total  # more size was resting than displayed (an iceberg refills)
                yield QuoteTick(time, px(bid), px(ask), bid_size, ask_size)
            price = px(tick)
            for size in sizes:
                yield TradeTick(time, price, size, Side.BUY)
                ask_size -= size
                if ask_size == 0:
                    # The sweep took the level out: the book steps up one tick.
                    bid, bid_size = tick, draw_depth(rng)
                    ask, ask_size = tick + 1, draw_depth(rng)
                yield QuoteTick(time, px(bid), px(ask), bid_size, ask_size)
        else:
            if bid != tick:
                if ask != tick + 1:
                    ask, ask_size = tick + 1, draw_depth(rng)
                bid, bid_size = tick, max(draw_depth(rng), total)
                yield QuoteTick(time, px(bid), px(ask), bid_size, ask_size)
            elif bid_size < total:
                bid_size = total
                yield QuoteTick(time, px(bid), px(ask), bid_size, ask_size)
            price = px(tick)
            for size in sizes:
                yield TradeTick(time, price, size, Side.SELL)
                bid_size -= size
                if bid_size == 0:
                    # Prices are at least two ticks, so the stepped-down bid stays positive.
                    bid, bid_size = tick - 1, draw_depth(rng)
                    ask, ask_size = tick, draw_depth(rng)
                yield QuoteTick(time, px(bid), px(ask), bid_size, ask_size)
