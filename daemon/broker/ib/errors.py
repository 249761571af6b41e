"""The one `errorEvent` subscriber: each TWS message named once, then routed by reqId to its owner.

TWS sends every error and notice as one kind of message, keyed by the reqId it is about. Each
is logged once as `tws_message`, named and explained from the catalogue (`tws_errors`), unless
its code has an event of its own (`tws_errors.OWN_EVENT`). Then it goes to exactly one owner:

- a request or subscription: its reqId was registered with `own` (until `disown` or the
  socket closes); it acts on its own codes (market data: `TICK_BY_TICK_REFUSALS`; historical
  data: anything but `is_request_notice`);
- the orders: any other reqId > 0 is an order id of this connection (`ORDER_CANCELLED`,
  `ORDER_TOO_LATE`, `ORDER_REJECTS`);
- the connection: reqId -1 (`CLIENT_ID_IN_USE`, `FARMS`, 1100-1102, `SOCKET_PORT_RESET`).

Besides, the connection's status hears every serious or connectivity code (`serious`), whoever
owns it. Order ids and request ids come from one sequence per connection, so they never clash.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import structlog
from ib_async import IB

from daemon.broker import tws_errors

log = structlog.get_logger("daemon.broker.ib.errors")

Handler = Callable[[int, str], None]  # (code, message)
Routed = Callable[[int, int, str], None]  # (reqId or order id, code, message)

_LOG_METHOD = {
    tws_errors.Severity.INFO: "info",
    tws_errors.Severity.WARNING: "warning",
    tws_errors.Severity.ERROR: "error",
    tws_errors.Severity.CRITICAL: "error",
}
_SERIOUS = frozenset({tws_errors.Severity.ERROR, tws_errors.Severity.CRITICAL})


class ErrorRouter:
    """Routes `IB.errorEvent` by reqId (see the module docstring)."""

    def __init__(self, ib: IB) -> None:
        self._owners: dict[int, Handler] = {}
        self.orders: Routed | None = None
        self.link: Routed | None = None
        self.serious: Handler | None = None
        ib.errorEvent += self._route

    def own(self, req_id: int, handler: Handler) -> None:
        """Send the messages about ``req_id`` to ``handler`` until `disown` or `reset`."""
        self._owners[req_id] = handler

    def disown(self, req_id: int) -> None:
        self._owners.pop(req_id, None)

    def reset(self) -> None:
        """The socket closed: every reqId it had is gone."""
        self._owners.clear()

    def _route(self, req_id: int, code: int, message: str, contract: Any = None) -> None:
        info = tws_errors.lookup(code)
        if code not in tws_errors.OWN_EVENT:
            _log_tws_message(info, req_id, message)
        if self.serious is not None and (
            info.severity in _SERIOUS or info.category is tws_errors.Category.CONNECTIVITY
        ):
            self.serious(code, message)
        owner = self._owners.get(req_id)
        if owner is not None:
            owner(code, message)
        elif req_id > 0:
            if self.orders is not None:
                self.orders(req_id, code, message)
        elif self.link is not None:
            self.link(req_id, code, message)


def _log_tws_message(info: tws_errors.TwsCode, req_id: int, message: str) -> None:
    """One TWS message, named and explained from the catalogue, at its severity's level."""
    getattr(log, _LOG_METHOD[info.severity])(
        "tws_message",
        code=info.code,
        name=info.name,
        req_id=req_id,
        message=message,
        action=info.action,
        rate_limited=True,
        rate_key=str(info.code),
    )
