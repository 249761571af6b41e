"""Times in force, as TWS treats them for CME futures: validation and expiry (pure functions).

* DAY: works until the close of the trading session it was placed in, or of the next session
  when placed while the market is closed (ES: 16:00 CT, or the early close of a holiday; the
  daily break runs to the 17:00 CT reopen). Bracket children expire by their own time in force.
* GTC: never expires (IB's quarter-end auto-cancel is not modelled).
* GTD: works until `goodTillDate`, written as TWS accepts it: `yyyymmdd hh:mm:ss [zone]`, the
  date optional (then today), the zone an IANA name or UTC/GMT (default: the gateway's zone,
  US/Central), or `yyyymmdd-hh:mm:ss` in UTC. Anything else is refused with 391 and the text a
  real gateway sends (captured in ib_insync issue #660); a time already past with 334.
* IOC / FOK: act when the order reaches the market (on transmit; a triggered kind when its
  trigger fires; a bracket child when its parent fills): IOC takes what the displayed touch
  offers and the rest is cancelled; FOK fills only if the touch covers the whole remaining
  quantity, else it is cancelled with nothing filled (matching.py applies both).
* OPG: refused with 387. IB offers market/limit-on-open for stocks, options and warrants only,
  and a real ES contract's `orderTypes` carries no OPG.

Every expiry or immediate cancel reaches the owner as ORDER_STATUS Cancelled, then 202.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, datetime, tzinfo
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from ibsim import calendar
from ibsim.model import OrderError, OrderRequest
from ibsim.ordertypes import TIF_TOKENS

__all__ = [
    "IMMEDIATE",
    "SessionClose",
    "check",
    "es_session_close",
    "expiry",
    "parse_good_till_date",
]

IMMEDIATE = frozenset({"IOC", "FOK"})

# (con_id, epoch seconds) -> the close of the session in force then, or of the next one.
SessionClose = Callable[[int, float], float]

BAD_TIME_CODE = 391
BAD_TIME_TEXT = (
    "End Time: The date, time, or time-zone entered is invalid. The correct format is yyyymmdd "
    "hh:mm:ss xx/xxxx where yyyymmdd and xx/xxxx are optional. E.g.: 20031126 15:59:00 US/Eastern"
    "  Note that there is a space between the date and time, and between the time and time-zone."
    "  If no date is specified, current date is assumed. If no time-zone is specified, local "
    "time-zone is assumed(deprecated).  You can also provide yyyymmddd-hh:mm:ss time is in UTC. "
    "Note that there is a dash between the date and time in UTC notation."
)
PAST_GTD_CODE = 334
PAST_GTD_TEXT = "Invalid Good Till Date order"
UNSUPPORTED_TIF_CODE = 387
UNSUPPORTED_TIF_TEXT = "Unsupported order type for this exchange and security type."
# Valid IB times in force that CME futures do not take (answered with 387).
_NOT_FOR_FUTURES = frozenset({"OPG"})

_GTD = re.compile(r"(?:(\d{8})([ -]))?\s*(\d{1,2}:\d{2}:\d{2})(?:\s+(\S+))?")


def es_session_close(con_id: int, t: float) -> float:
    """The close of the ES session trading at `t`, or of the next one when closed."""
    session = calendar.session_bounds(t) or calendar.session_bounds(calendar.next_open(t))
    assert session is not None
    return session.close_utc


def parse_good_till_date(text: str, now: float, zone: tzinfo = calendar.CENTRAL) -> float:
    """`goodTillDate` as epoch seconds; ValueError when TWS would not accept it."""
    m = _GTD.fullmatch(text.strip())
    if m is None:
        raise ValueError(f"goodTillDate {text!r} is not yyyymmdd hh:mm:ss [zone]")
    day, sep, clock, zone_name = m.groups()
    if sep == "-":
        if zone_name:
            raise ValueError(f"goodTillDate {text!r}: the UTC form takes no zone")
        zone = UTC
    elif zone_name:
        zone = _zone(zone_name)
    if day is None:
        day = f"{datetime.fromtimestamp(now, zone):%Y%m%d}"
    naive = datetime.strptime(f"{day} {clock}", "%Y%m%d %H:%M:%S")
    return naive.replace(tzinfo=zone).timestamp()


def _zone(name: str) -> tzinfo:
    if name.upper() in ("UTC", "GMT"):
        return UTC
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown time zone {name!r}") from None


def check(req: OrderRequest, now: float) -> OrderError | None:
    """The refusal of the order's time in force, None when it is accepted."""
    cid, oid = req.client_id, req.order_id
    tif = req.tif.upper()
    if tif in _NOT_FOR_FUTURES:
        return OrderError(cid, oid, UNSUPPORTED_TIF_CODE, UNSUPPORTED_TIF_TEXT)
    if tif not in TIF_TOKENS:
        return OrderError(cid, oid, 201, f"Order rejected - reason:Invalid time in force {tif!r}")
    if tif == "GTD":
        try:
            until = parse_good_till_date(req.good_till_date, now)
        except ValueError:
            return OrderError(cid, oid, BAD_TIME_CODE, BAD_TIME_TEXT)
        if until <= now:
            return OrderError(cid, oid, PAST_GTD_CODE, PAST_GTD_TEXT)
    return None


def expiry(req: OrderRequest, now: float, session_close: SessionClose) -> float | None:
    """When an order accepted at `now` expires if still working; None when it never does."""
    tif = req.tif.upper()
    if tif == "DAY":
        return session_close(req.con_id, now)
    if tif == "GTD":
        return parse_good_till_date(req.good_till_date, now)
    return None
