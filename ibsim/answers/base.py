"""What a request handler needs of its client session, and the helpers handlers share."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Protocol

from ibsim import requests as rq
from ibsim.model import FutureSpec
from ibsim.wire import Fields

if TYPE_CHECKING:
    from ibsim.encoders import Encoder
    from ibsim.gateway import Gateway

ERR_NO_SECURITY = "No security definition has been found for the request"
ERR_NO_HMDS_DATA = "Historical Market Data Service error message:HMDS query returned no data: "


class Asker(Protocol):
    """A client session as handlers see it (`ibsim.session.ClientSession`)."""

    enc: Encoder
    gw: Gateway
    client_id: int | None
    market_data_type: int
    positions_subscribed: bool
    account_subscribed: bool
    display_groups: dict[int, int]  # reqId -> display group subscribed to

    def send(self, data: bytes) -> None: ...

    def error(self, req_id: int, code: int, text: str) -> None: ...

    @property
    def closed(self) -> bool: ...


Handler = Callable[[Asker, Fields], None]


def resolve_one(
    s: Asker, req_id: int, contract: rq.ContractFields, include_expired: bool = False
) -> FutureSpec | None:
    """The one contract `contract` describes; else error 200 (none, or ambiguous)."""
    matches = s.gw.resolve(contract, include_expired=include_expired)
    if len(matches) == 1:
        return matches[0]
    if matches:
        s.error(
            req_id, 200, f"The contract description specified for {contract.symbol} is ambiguous."
        )
    else:
        s.error(req_id, 200, ERR_NO_SECURITY)
    return None


def validation_error(s: Asker, req_id: int, cause: str) -> None:
    """Error 321, in TWS's wording."""
    s.error(req_id, 321, f"Error validating request.-'bN' : cause - {cause}")


def no_reply(s: Asker, f: Fields) -> None:
    """Cancels and settings TWS does not acknowledge."""


def req_id_after_version(f: Fields) -> int:
    f.skip(1)
    return f.integer()
