"""`reqPnL` and `reqPnLSingle`: profit and loss of an account or one position, as they move.

Built from the engine's positions and today's executions, marked at each market's last price:

- unrealized: position x mark x multiplier - position x average cost (as PORTFOLIO_VALUE);
- realized: the realized PnL of today's fills (commissions included, as the engine books it);
- daily: the change in value since the previous session's settlement (the market's CLOSE):
  `multiplier x (position x mark - position at the day's start x CLOSE)` minus the cash paid
  for today's fills and their commissions;
- value (PnLSingle): position x mark x multiplier.

"Today" is the trade date in progress (from 17:00 CT). The first answer is sent at once; then
one a second while a value changes, as TWS does.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ibsim.calendar import trading_day_start
from ibsim.model import Side

if TYPE_CHECKING:
    from ibsim.feed import Subscriber
    from ibsim.gateway import Gateway

log = logging.getLogger("ibsim.pnl")

UPDATE_INTERVAL = 1.0  # wall seconds between updates of one subscription


@dataclass(frozen=True, slots=True)
class PnL:
    position: int
    daily: float
    unrealized: float
    realized: float
    value: float


def compute(gw: Gateway, account: str, con_id: int | None = None) -> PnL:
    """PnL of `account`, of all its contracts or of `con_id` alone."""
    day_start = trading_day_start(gw.clock.now())
    today = [
        e
        for e in gw.engine.booked_executions()
        if e.account == account and e.time >= day_start and con_id in (None, e.con_id)
    ]
    held = {
        p.con_id: p
        for p in gw.engine.positions()
        if p.account == account and con_id in (None, p.con_id)
    }
    traded = {e.con_id for e in today}
    position = daily = unrealized = value = 0.0
    for cid in sorted(set(held) | traded):
        spec = gw.contract(cid)
        mult = spec.multiplier
        pos = held.get(cid)
        qty, avg_cost = (pos.quantity, pos.avg_cost) if pos is not None else (0, 0.0)
        mark = gw.mark(spec)
        feed = gw.feed_for(spec)
        close = feed.close if feed is not None and feed.close is not None else mark
        mine = [e for e in today if e.con_id == cid]
        bought = sum(e.shares if e.side is Side.BUY else -e.shares for e in mine)
        paid = sum((e.shares if e.side is Side.BUY else -e.shares) * e.price for e in mine)
        fees = sum(e.commission for e in mine)
        daily += mult * (qty * mark - (qty - bought) * close) - mult * paid - fees
        unrealized += qty * mark * mult - qty * avg_cost
        value += qty * mark * mult
        position += qty
    realized = sum(e.realized_pnl or 0.0 for e in today)
    return PnL(
        int(position), round(daily, 2), round(unrealized, 2), round(realized, 2), round(value, 2)
    )


@dataclass(slots=True)
class _Sub:
    session: Subscriber
    req_id: int
    account: str
    con_id: int | None
    sent: PnL | None = None
    sent_at: float = 0.0


class PnLService:
    """The PnL subscriptions of every client, refreshed from the gateway's state."""

    def __init__(self, gw: Gateway, wall: Callable[[], float]) -> None:
        self._gw = gw
        self._wall = wall
        self._subs: dict[tuple[Subscriber, int], _Sub] = {}

    def subscribe(self, session: Subscriber, req_id: int, account: str, con_id: int | None) -> None:
        sub = _Sub(session, req_id, account, con_id)
        self._subs[(session, req_id)] = sub
        log.debug("pnl for reqId %d: account %s, conId %s", req_id, account, con_id)
        self._send(sub)

    def cancel(self, session: Subscriber, req_id: int) -> bool:
        return self._subs.pop((session, req_id), None) is not None

    def drop_session(self, session: Subscriber) -> None:
        self._subs = {k: v for k, v in self._subs.items() if k[0] is not session}

    def tick(self) -> None:
        now = self._wall()
        for sub in list(self._subs.values()):
            if now - sub.sent_at >= UPDATE_INTERVAL:
                self._send(sub)

    def _send(self, sub: _Sub) -> None:
        pnl = compute(self._gw, sub.account, sub.con_id)
        if pnl == sub.sent:
            return
        sub.sent, sub.sent_at = pnl, self._wall()
        enc = sub.session.enc
        if sub.con_id is None:
            sub.session.send(enc.pnl(sub.req_id, pnl.daily, pnl.unrealized, pnl.realized))
        else:
            sub.session.send(
                enc.pnl_single(
                    sub.req_id, pnl.position, pnl.daily, pnl.unrealized, pnl.realized, pnl.value
                )
            )
