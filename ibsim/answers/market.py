"""Market data requests: live ticks, tick-by-tick, real-time bars, and the historical requests.

Every one resolves its contract like TWS: no listed contract (or an ambiguous description) is
error 200; each listed expiry of the product the gateway drives has its own market (the back
months are derived, `curve.py`). The other listed products get what TWS sends for data the
account is not subscribed to: 354 for live data, 162 / 420 "No market data permissions" for
history and real-time bars.
"""

from __future__ import annotations

import math

from ibsim import requests as rq
from ibsim.answers import inbound
from ibsim.answers.base import (
    ERR_NO_HMDS_DATA,
    Asker,
    Handler,
    no_reply,
    resolve_one,
    validation_error,
)
from ibsim.encoders import In, Out
from ibsim.feed import TbtKind
from ibsim.historical import bar_date, parse_period
from ibsim.model import FutureSpec
from ibsim.realtime import BAR_SECONDS, WHAT_TO_SHOW
from ibsim.wire import Fields

REQ_REAL_TIME_BARS, CANCEL_REAL_TIME_BARS = 50, 51
REQ_HEAD_TIMESTAMP, REQ_HISTOGRAM_DATA, CANCEL_HISTOGRAM, CANCEL_HEAD_TIMESTAMP = 87, 88, 89, 90
ERR_NOT_SUBSCRIBED = "Requested market data is not subscribed."
ERR_HMDS = "Historical Market Data Service error message:"


def _no_permissions(spec: FutureSpec) -> str:
    return f"No market data permissions for {spec.exchange} FUT"


def _unsubscribed(s: Asker, req_id: int, spec: FutureSpec, *, history: bool = False) -> bool:
    """True (and the error sent) when `spec` is a product this gateway has no market for."""
    if s.gw.drives(spec):
        return False
    if history:
        s.error(req_id, 162, f"{ERR_HMDS}{_no_permissions(spec)}")
    else:
        s.error(req_id, 354, ERR_NOT_SUBSCRIBED)
    return True


def _current_time(s: Asker, f: Fields) -> None:
    s.send(s.enc.current_time(s.gw.clock.now() + s.gw.config.clock_offset_s))


def _market_data_type(s: Asker, f: Fields) -> None:
    f.skip(1)
    s.market_data_type = f.integer()


def _data_permission(s: Asker, req_id: int) -> bool | None:
    """None: refused (error sent); else whether the data is delayed."""
    permission = s.gw.config.market_data
    if permission == "realtime":
        return False
    if permission == "delayed" and s.market_data_type in (3, 4):
        s.error(
            req_id,
            10167,
            "Requested market data is not subscribed. Displaying delayed market data.",
        )
        return True
    if permission == "delayed":
        s.error(
            req_id,
            10089,
            "Requested market data requires additional subscription "
            "for API. See link in 'Market Data Connections dialog' for more details."
            f"Delayed market data is available.{s.gw.front.symbol} {s.gw.front.exchange}/TOP/ALL",
        )
        return None
    s.error(req_id, 354, ERR_NOT_SUBSCRIBED)
    return None


def _mkt_data(s: Asker, f: Fields) -> None:
    req = rq.read_mkt_data(f)
    spec = resolve_one(s, req.req_id, req.contract)
    if spec is None or _unsubscribed(s, req.req_id, spec):
        return
    delayed = _data_permission(s, req.req_id)
    if delayed is None:
        return
    feed = s.gw.feed_for(spec)
    if feed is None:
        s.error(req.req_id, 200, "No security definition has been found for the request")
        return
    s.send(s.enc.tick_req_params(req.req_id, spec.min_tick, spec.exchange))
    s.send(s.enc.market_data_type(req.req_id, 3 if delayed else 1))
    if req.snapshot:
        feed.snapshot_once(s, req.req_id, delayed=delayed)
        s.send(s.enc.end(Out.TICK_SNAPSHOT_END, req.req_id))
    else:
        feed.subscribe_mkt_data(
            s, req.req_id, rt_volume="233" in req.generic_ticks, delayed=delayed
        )


def _cancel_mkt_data(s: Asker, f: Fields) -> None:
    f.skip(1)
    _cancel_feed(s, f.integer())


def _cancel_tick_by_tick(s: Asker, f: Fields) -> None:
    _cancel_feed(s, f.integer())


def _cancel_feed(s: Asker, req_id: int) -> None:
    for feed in s.gw.all_feeds():  # whichever market holds the subscription
        feed.cancel(s, req_id)


def _tick_by_tick(s: Asker, f: Fields) -> None:
    req = rq.read_tick_by_tick(f)
    spec = resolve_one(s, req.req_id, req.contract)
    if spec is None or _unsubscribed(s, req.req_id, spec):
        return
    try:
        kind = TbtKind(req.tick_type)
    except ValueError:
        s.error(
            req.req_id,
            10189,
            f"Failed to request tick-by-tick data.BidAsk, Last, "
            f"AllLast or MidPoint expected, got {req.tick_type!r}",
        )
        return
    if s.gw.config.market_data != "realtime":
        s.error(
            req.req_id,
            10089,
            "Requested market data requires additional subscription for API."
            f"{spec.symbol} {spec.exchange}/TOP/ALL",
        )
        return
    if sum(feed.tick_by_tick_count() for feed in s.gw.all_feeds()) >= (
        s.gw.config.max_tick_by_tick
    ):
        s.error(req.req_id, 10190, "Max number of tick-by-tick requests has been reached.")
        return
    feed = s.gw.feed_for(spec)
    if feed is None:
        s.error(req.req_id, 200, "No security definition has been found for the request")
        return
    feed.subscribe_tick_by_tick(s, req.req_id, kind)


def _mkt_depth(s: Asker, f: Fields) -> None:
    f.skip(1)
    s.error(
        f.integer(),
        10092,
        "Deep market data is not supported for this combination of security/exchange",
    )


def _real_time_bars(s: Asker, f: Fields) -> None:
    req = inbound.read_real_time_bars(f)
    spec = resolve_one(s, req.req_id, req.contract)
    if spec is None:
        return
    what = req.what_to_show.upper()
    problem = None
    if req.bar_size != BAR_SECONDS:
        problem = f"Invalid bar size {req.bar_size}: only 5 second bars are supported"
    elif what not in WHAT_TO_SHOW:
        problem = f"Invalid whatToShow {req.what_to_show!r}: TRADES, MIDPOINT, BID or ASK"
    elif s.gw.config.market_data != "realtime" or not s.gw.drives(spec):
        problem = _no_permissions(spec)
    tape = s.gw.tape_for(spec)
    if problem is None and tape is None:
        problem = f"No real-time data for the expired contract {spec.local_symbol}"
    if problem is not None or tape is None:
        s.error(req.req_id, 420, f"Invalid Real-time Query:{problem}")
        return
    s.gw.streams.add_real_time(s, req.req_id, tape, what, s.gw.tape_time())


def _cancel_real_time_bars(s: Asker, f: Fields) -> None:
    f.skip(1)
    s.gw.streams.cancel_real_time(s, f.integer())


def _historical_data(s: Asker, f: Fields) -> None:
    req = rq.read_historical_data(f)
    spec = resolve_one(s, req.req_id, req.contract, req.include_expired)
    if spec is None or _unsubscribed(s, req.req_id, spec, history=True):
        return
    if req.keep_up_to_date and req.end:
        validation_error(s, req.req_id, "End date not supported with live updates")
        return
    tape = s.gw.tape_for(spec)
    if tape is None:
        s.error(req.req_id, 162, f"{ERR_NO_HMDS_DATA}{spec.local_symbol}@{spec.exchange} Trades")
        return
    sent = s.gw.historical.bars(s, req, tape, spec.local_symbol)
    if sent is not None and req.keep_up_to_date:
        bars, bar_seconds = sent
        date = bar_date(req.format_date)
        s.gw.streams.add_keep_up_to_date(
            s, req.req_id, tape, bar_seconds, date, bars, s.gw.tape_time()
        )


def _cancel_historical_data(s: Asker, f: Fields) -> None:
    f.skip(1)
    s.gw.streams.cancel_keep_up_to_date(s, f.integer())


def _historical_ticks(s: Asker, f: Fields) -> None:
    req = rq.read_historical_ticks(f)
    spec = resolve_one(s, req.req_id, req.contract, req.include_expired)
    if spec is None or _unsubscribed(s, req.req_id, spec, history=True):
        return
    tape = s.gw.tape_for(spec)
    if tape is None:
        s.error(req.req_id, 162, f"{ERR_NO_HMDS_DATA}{spec.local_symbol}@{spec.exchange} Trades")
        return
    if tape is s.gw.history:
        s.gw.historical.ticks(s, req)  # the front's tape is the service's own
    else:
        s.gw.historical.ticks(s, req, tape)


def _head_timestamp(s: Asker, f: Fields) -> None:
    req = inbound.read_head_timestamp(f)
    spec = resolve_one(s, req.req_id, req.contract, req.include_expired)
    if spec is None or _unsubscribed(s, req.req_id, spec, history=True):
        return
    tape = s.gw.tape_for(spec)
    what = req.what_to_show.upper()
    first = None
    if tape is not None:
        first = tape.trades.first() if what == "TRADES" else tape.quotes.first()
    if first is None:
        where = f"{spec.local_symbol}@{spec.exchange}"
        s.error(req.req_id, 162, f"{ERR_NO_HMDS_DATA}{where} {what.title()}")
        return
    s.send(s.enc.head_timestamp(req.req_id, str(bar_date(req.format_date)(first.time))))


def _histogram(s: Asker, f: Fields) -> None:
    req = inbound.read_histogram(f)
    spec = resolve_one(s, req.req_id, req.contract, req.include_expired)
    if spec is None or _unsubscribed(s, req.req_id, spec, history=True):
        return
    try:
        span = parse_period(req.period)
    except ValueError as exc:
        validation_error(s, req.req_id, str(exc))
        return
    tape = s.gw.tape_for(spec)
    end = s.gw.tape_time()
    volume: dict[float, int] = {}
    trades = [] if tape is None else tape.trades.between(end - span, math.nextafter(end, math.inf))
    for trade in trades:
        volume[trade.price] = volume.get(trade.price, 0) + trade.size
    s.send(s.enc.histogram_data(req.req_id, sorted(volume.items())))


HANDLERS: dict[int, Handler] = {
    In.REQ_CURRENT_TIME: _current_time,
    In.REQ_MARKET_DATA_TYPE: _market_data_type,
    In.REQ_MKT_DATA: _mkt_data,
    In.CANCEL_MKT_DATA: _cancel_mkt_data,
    In.REQ_TICK_BY_TICK: _tick_by_tick,
    In.CANCEL_TICK_BY_TICK: _cancel_tick_by_tick,
    In.REQ_MKT_DEPTH: _mkt_depth,
    In.CANCEL_MKT_DEPTH: no_reply,
    REQ_REAL_TIME_BARS: _real_time_bars,
    CANCEL_REAL_TIME_BARS: _cancel_real_time_bars,
    In.REQ_HISTORICAL_DATA: _historical_data,
    In.CANCEL_HISTORICAL_DATA: _cancel_historical_data,
    In.REQ_HISTORICAL_TICKS: _historical_ticks,
    REQ_HEAD_TIMESTAMP: _head_timestamp,
    CANCEL_HEAD_TIMESTAMP: no_reply,
    REQ_HISTOGRAM_DATA: _histogram,
    CANCEL_HISTOGRAM: no_reply,
}
