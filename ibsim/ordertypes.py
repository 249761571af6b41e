"""The order types and times in force ibsim accepts, and the `orderTypes` its contracts advertise.

A real ES contract-details capture (TWS_PROTOCOL.md §8) lists 44 tokens: order types (LMT, STPLMT,
TRAIL, ...), times in force (DAY, GTC, IOC, ...) and order attributes (OCA, WHATIF, ICE, ALGO,
...). ibsim advertises only the ones it implements, so a client that trusts the list never meets
a refusal for something listed. FOK is not in the real capture (IB documents FOK for options);
ibsim implements it for futures anyway, as CME Globex does natively, and lists it.
"""

from __future__ import annotations

from ibsim.model import OrderType

# PLACE_ORDER orderType text -> the order type (IB accepts the compact spellings too).
WIRE_ORDER_TYPES: dict[str, OrderType] = {t.value: t for t in OrderType} | {
    "STPLMT": OrderType.STP_LMT,
    "TRAILLMT": OrderType.TRAIL_LIMIT,
}

# Contract-details tokens, by what they stand for.
ORDER_TYPE_TOKENS: dict[str, OrderType] = {
    "LIT": OrderType.LIT,
    "LMT": OrderType.LMT,
    "MIT": OrderType.MIT,
    "MKT": OrderType.MKT,
    "STP": OrderType.STP,
    "STPLMT": OrderType.STP_LMT,
    "TRAIL": OrderType.TRAIL,
    "TRAILLMT": OrderType.TRAIL_LIMIT,
}
TIF_TOKENS = frozenset({"DAY", "FOK", "GTC", "GTD", "IOC"})
ATTRIBUTE_TOKENS = frozenset({"OCA", "WHATIF"})

ADVERTISED: tuple[str, ...] = tuple(sorted({*ORDER_TYPE_TOKENS, *TIF_TOKENS, *ATTRIBUTE_TOKENS}))
ADVERTISED_TEXT = ",".join(ADVERTISED)
