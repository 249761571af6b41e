"""ib_async's contract objects as the daemon's plain ones: listings and positions.

`ContractDetails` become `Listing`s (the instrument's facts and the session calendar's hours
strings as plain values, the ib_async `Contract` kept only as an opaque handle for requests
and orders); `Position`s become `daemon.core.gateway.Position`s.
"""

from __future__ import annotations

from ib_async import IB, ContractDetails, Future, RequestError
from ib_async import Position as IbPosition

from daemon.broker.contracts import Listing, NoContractError, by_expiry
from daemon.core.gateway import Position


def listing_from_details(cd: ContractDetails) -> Listing:
    """One expiry's details as plain values (a detail without a contract gives con_id 0)."""
    c = cd.contract
    return Listing(
        con_id=c.conId if c else 0,
        symbol=c.symbol if c else "",
        local_symbol=c.localSymbol if c else "",
        exchange=(c.exchange or c.primaryExchange) if c else "",
        currency=c.currency if c else "",
        multiplier=c.multiplier if c else "",
        trading_class=c.tradingClass if c else "",
        last_trade=c.lastTradeDateOrContractMonth if c else "",
        last_trade_time=cd.lastTradeTime,
        real_expiration_date=cd.realExpirationDate,
        time_zone=cd.timeZoneId,
        trading_hours=cd.tradingHours,
        liquid_hours=cd.liquidHours,
        min_tick=cd.minTick,
        price_magnifier=cd.priceMagnifier,
        contract=c,
    )


def position_from(p: IbPosition) -> Position:
    c = p.contract
    return Position(p.account, c.conId, c.symbol, c.secType, c.localSymbol, float(p.position))


async def fetch_future_details(ib: IB, symbol: str, exchange: str, currency: str) -> list[Listing]:
    """Every listed expiry of the future, nearest first.

    Raises NoContractError when the gateway finds none (error 200, or an empty answer). The
    request has no deadline of its own (a broken sec-def farm, 2157, can stall it): callers
    bound it with `asyncio.timeout`.
    """
    what = f"FUT {symbol} on {exchange} in {currency}"
    try:
        details = await ib.reqContractDetailsAsync(
            Future(symbol, exchange=exchange, currency=currency)
        )
    except RequestError as exc:
        raise NoContractError(f"no contract details for {what}: {exc}") from exc
    found = [listing_from_details(cd) for cd in details if cd.contract is not None]
    if not found:
        raise NoContractError(f"no contract details for {what}: check symbol, exchange, currency")
    return by_expiry(found)
