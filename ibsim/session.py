"""One client connection: handshake, START_API, pacing, and the request handlers.

The session handles contract details and orders itself; every other request goes to its handler
in `ibsim.answers`. The session owns the socket and the negotiated `Encoder`; everything shared
(orders, market, client ids, faults) lives in the `Gateway`. Outgoing messages are queued and
written once per event-loop turn, so a burst of ticks costs one syscall, not one per message.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import socket
import struct
from collections.abc import Callable
from functools import partial
from typing import TYPE_CHECKING

from ibsim import requests as rq
from ibsim.answers.base import ERR_NO_SECURITY, resolve_one, validation_error
from ibsim.answers.handlers import HANDLERS
from ibsim.calendar import trading_day_start
from ibsim.encoders import Encoder, In, Out, negotiate
from ibsim.historical import parse_ib_time
from ibsim.model import FutureSpec, OrderRequest, OrderStatus, Side
from ibsim.wire import Fields, WireError, frame_length, split_fields

if TYPE_CHECKING:
    from ibsim.gateway import Gateway

log = logging.getLogger("ibsim.session")


class Disconnect(Exception):  # noqa: N818 - control flow, not an error
    """Raised inside the session to end it (after any farewell message is queued)."""


class ClientSession:
    """Serves one TCP client until it disconnects or the gateway drops it."""

    def __init__(
        self, gateway: Gateway, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        self.gw = gateway
        self.reader = reader
        self.writer = writer
        self.enc = Encoder(178)
        self.client_id: int | None = None
        self.peer = str(writer.get_extra_info("peername"))
        self.market_data_type = 1
        self.positions_subscribed = False
        self.account_subscribed = False
        self.display_groups: dict[int, int] = {}  # reqId -> display group subscribed to
        self._out: list[bytes] = []
        self._flush_scheduled = False
        self._journal = gateway.journal
        self._loop = asyncio.get_running_loop()
        self._recv_times: collections.deque[float] = collections.deque()
        self._unknown_logged: set[int] = set()
        self._closed = False
        self.wedged = False  # behind a frame that never completes: nothing more gets out
        # every request id a client can send has a handler (answers/table.py lists them)
        self._handlers: dict[int, Callable[[Fields], None]] = {
            msg_id: partial(handler, self) for msg_id, handler in HANDLERS.items()
        }
        self._handlers |= {
            In.REQ_IDS: self._req_ids,
            In.REQ_CONTRACT_DATA: self._contract_details,
            In.PLACE_ORDER: self._place_order,
            In.CANCEL_ORDER: self._cancel_order,
            In.REQ_GLOBAL_CANCEL: self._global_cancel,
            In.REQ_OPEN_ORDERS: self._open_orders,
            In.REQ_ALL_OPEN_ORDERS: self._all_open_orders,
            In.REQ_AUTO_OPEN_ORDERS: lambda f: None,
            In.REQ_COMPLETED_ORDERS: self._completed_orders,
            In.REQ_EXECUTIONS: self._executions,
            In.START_API: lambda f: None,  # only valid once, at connect
        }

    # --- output ---

    def send(self, data: bytes) -> None:
        """Queue one framed message; written at the end of this loop turn."""
        if self._closed:
            return
        if self.gw.out_filter is not None and self.gw.out_filter.intercept(self, data):
            return  # held or dropped by a message-window fault
        self._out.append(data)
        if self._journal is not None:
            self._journal.record(self, "out", data)
        if not self._flush_scheduled and not self.gw.stalled:
            self._flush_scheduled = True
            self._loop.call_soon(self.flush)

    def flush(self) -> None:
        self._flush_scheduled = False
        if self._out and not self._closed and not self.gw.stalled:
            if not self.wedged:
                self.writer.write(b"".join(self._out))
            self._out.clear()

    def error(self, req_id: int, code: int, text: str) -> None:
        self.send(self.enc.error(req_id, code, text))

    @property
    def write_buffer_size(self) -> int:
        return self.writer.transport.get_write_buffer_size()

    async def drain(self) -> None:
        with contextlib.suppress(ConnectionError):
            await self.writer.drain()

    # --- lifecycle ---

    async def run(self) -> None:
        try:
            await self._handshake()
            await self._serve()
        except (asyncio.IncompleteReadError, ConnectionError, Disconnect):
            pass
        except WireError as exc:
            log.warning("client %s sent a malformed message: %s; disconnecting", self.peer, exc)
        finally:
            self.close()

    def close(self, *, reset: bool = False) -> None:
        """Close the socket (FIN, or RST with `reset`) and release the client id."""
        if self._closed:
            return
        if not reset and not self.writer.transport.is_closing():
            self.flush()
        self._closed = True
        if reset:
            sock = self.writer.get_extra_info("socket")
            if sock is not None:
                with contextlib.suppress(OSError):
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.writer.transport.abort()
        else:
            self.writer.close()
        self.gw.session_closed(self)

    @property
    def closed(self) -> bool:
        return self._closed

    async def _handshake(self) -> None:
        prefix = await self.reader.readexactly(4)
        if prefix != b"API\0":
            raise WireError(f"handshake must start with b'API\\0', got {prefix!r}")
        n = frame_length(await self.reader.readexactly(4))
        text = (await self.reader.readexactly(n)).decode("ascii", "replace").rstrip("\0")
        versions = text.split(" ", 1)[0]
        try:
            lo_text, _, hi_text = versions.removeprefix("v").partition("..")
            lo, hi = int(lo_text), int(hi_text or lo_text)
        except ValueError:
            raise WireError(f"handshake: cannot read versions from {text!r}") from None
        if self.gw.config.handshake_close:
            raise Disconnect
        if self.gw.config.handshake_silent:
            await self.reader.read()  # like TWS with the API disabled: silent until EOF
            raise Disconnect
        sv = negotiate(lo, hi, self.gw.config.server_version)
        if sv is None:
            raise WireError(f"handshake: no common server version for client range {lo}..{hi}")
        self.enc = Encoder(sv)
        # Alone in its own packet: ibapi reads one recv and drops whatever is glued after it.
        reply = self.enc.handshake(self.gw.clock.now())
        if self.gw.journal is not None:
            self.gw.journal.record_fields(self, "in", [text])
            self.gw.journal.record(self, "out", reply)
        self.writer.write(reply)
        await self.writer.drain()
        fields = await self._read_message()
        if int(fields[0]) != In.START_API:
            raise WireError(f"expected START_API (71) after the handshake, got {fields[0]}")
        f = Fields(fields, "startApi")
        f.skip(2)
        client_id = f.integer()
        if not self.gw.claim_client_id(client_id, self):
            self.error(
                -1,
                326,
                "Unable to connect as the client id is already in use. "
                "Retry with a unique client id.",
            )
            raise Disconnect
        self.client_id = client_id
        log.info("client %s connected: clientId=%d serverVersion=%d", self.peer, client_id, sv)
        self.send(self.enc.next_valid_id(self.gw.engine.next_order_id(client_id)))
        self.send(self.enc.managed_accounts(self.gw.config.accounts))
        for code, text in self.gw.farm_status():
            self.error(-1, code, text)

    async def _read_message(self) -> list[str]:
        n = frame_length(await self.reader.readexactly(4))
        payload = await self.reader.readexactly(n)
        fields = split_fields(payload)
        if self.gw.journal is not None:
            self.gw.journal.record_fields(self, "in", fields)
        return fields

    async def _serve(self) -> None:
        while True:
            fields = await self._read_message()
            await self.gw.wait_unstalled()
            if self._closed:
                return
            self._pace()
            try:
                msg_id = int(fields[0])
            except ValueError:
                raise WireError(f"message id {fields[0]!r} is not an integer") from None
            handler = self._handlers.get(msg_id)
            if handler is None:
                if msg_id not in self._unknown_logged:
                    self._unknown_logged.add(msg_id)
                    log.warning("client %s: unknown message id %d ignored", self.peer, msg_id)
                continue
            f = Fields(fields, _name(msg_id))
            f.text()
            try:
                handler(f)
            except rq.UnsupportedOrderError as exc:
                self.error(_order_id(fields), 201, f"Order rejected - reason:{exc}")
                self._spend_id(_order_id(fields))

    def _pace(self) -> None:
        limit = self.gw.config.max_msg_rate
        now = asyncio.get_running_loop().time()
        times = self._recv_times
        times.append(now)
        while times and now - times[0] > 1.0:
            times.popleft()
        self.gw.note_msg_rate(self.client_id, len(times), exceeded=len(times) > limit)
        if len(times) > limit:
            self.error(
                -1,
                100,
                f"Max rate of messages per second has been exceeded:max={limit} "
                f"rec={len(times)} (1)",
            )
            log.warning("client %s exceeded %d msg/s: disconnecting", self.peer, limit)
            raise Disconnect

    # --- contracts ---

    def _resolve_one(self, req_id: int, contract: rq.ContractFields) -> FutureSpec | None:
        return resolve_one(self, req_id, contract)

    def _contract_details(self, f: Fields) -> None:
        f.skip(1)
        req_id = f.integer()
        contract = rq.read_contract(f)
        include_expired = f.flag()
        matches = self.gw.resolve(contract, include_expired=include_expired)
        if not matches:
            self.error(req_id, 200, ERR_NO_SECURITY)
            return
        for spec in matches:
            self.send(self.enc.contract_data(req_id, spec))
        self.send(self.enc.end(Out.CONTRACT_DATA_END, req_id))

    # --- orders ---

    def _place_order(self, f: Fields) -> None:
        placed = rq.read_place_order(f, self.enc.server_version)
        spec = self._order_contract(placed)
        if spec is None:
            self._spend_id(placed.order_id)  # a refused order's id is used up all the same
            return
        quantity = placed.total_quantity
        if quantity != int(quantity):
            raise rq.UnsupportedOrderError(f"fractional quantity {quantity} for a future")
        assert self.client_id is not None
        req = OrderRequest(
            client_id=self.client_id,
            order_id=placed.order_id,
            con_id=spec.con_id,
            action=placed.action,
            total_quantity=int(quantity),
            order_type=placed.order_type,
            lmt_price=placed.lmt_price,
            aux_price=placed.aux_price,
            tif=placed.tif,
            oca_group=placed.oca_group,
            oca_type=placed.oca_type,
            account=placed.account or self.gw.config.accounts[0],
            order_ref=placed.order_ref,
            transmit=placed.transmit,
            parent_id=placed.parent_id,
            outside_rth=placed.outside_rth,
            what_if=placed.what_if,
            good_till_date=placed.good_till_date,
            trailing_percent=placed.trailing_percent,
            trail_stop_price=placed.trail_stop_price,
            lmt_price_offset=placed.lmt_price_offset,
        )
        self.gw.place_order(self, req)

    def _order_contract(self, placed: rq.PlacedOrder) -> FutureSpec | None:
        """TWS's order of checks: the request is validated (321) before the contract is looked
        up (200)."""
        if self.gw.config.read_only:
            validation_error(
                self, placed.order_id, "The API interface is currently in Read-Only mode."
            )
            return None
        if not placed.contract.exchange:
            validation_error(self, placed.order_id, "Missing order exchange.")
            return None
        return self._resolve_one(placed.order_id, placed.contract)

    def _spend_id(self, order_id: int) -> None:
        if self.client_id is not None:
            self.gw.engine.spend_id(self.client_id, order_id)

    def _cancel_order(self, f: Fields) -> None:
        f.skip(1)
        order_id = f.integer()
        assert self.client_id is not None
        self.gw.dispatch(self.gw.engine.cancel(self.client_id, order_id))

    def _global_cancel(self, f: Fields) -> None:
        self.gw.dispatch(self.gw.engine.global_cancel())

    def _send_open_orders(self, client_id: int | None) -> None:
        for order in self.gw.engine.open_orders(client_id):
            spec = self.gw.contract(order.request.con_id)
            self.send(self.enc.open_order(spec, order, None))
            self.send(self.enc.order_status(order))
        self.send(self.enc.open_order_end())

    def _open_orders(self, f: Fields) -> None:
        self._send_open_orders(self.client_id)

    def _all_open_orders(self, f: Fields) -> None:
        self._send_open_orders(None)

    def _completed_orders(self, f: Fields) -> None:
        today = trading_day_start(self.gw.clock.now())  # TWS reports the current day's only
        for order in self.gw.engine.completed_orders():
            if order.status is OrderStatus.PENDING_SUBMIT or (order.completed_time or 0) < today:
                continue
            self.send(self.enc.completed_order(self.gw.contract(order.request.con_id), order))
        self.send(self.enc.completed_orders_end())

    def _executions(self, f: Fields) -> None:
        req_id, flt = rq.read_executions(f)
        since = _parse_filter_time(flt.time)
        side = {"BUY": Side.BUY, "BOT": Side.BUY, "SELL": Side.SELL, "SLD": Side.SELL}.get(
            flt.side.upper()
        )
        today = trading_day_start(self.gw.clock.now())  # TWS reports the current day's only
        for ex in self.gw.engine.executions():
            spec = self.gw.contract(ex.con_id)
            if (
                ex.time < today
                or (flt.client_id and ex.client_id != flt.client_id)
                or (flt.account and ex.account != flt.account)
                or (since is not None and ex.time < since)
                or (flt.symbol and flt.symbol.upper() != spec.symbol)
                or (flt.sec_type and flt.sec_type.upper() != "FUT")
                or (flt.exchange and flt.exchange.upper() != spec.exchange)
                or (side is not None and ex.side is not side)
            ):
                continue
            self.send(self.enc.execution(req_id, spec, ex))
            self.send(self.enc.commission_report(ex))
        self.send(self.enc.end(Out.EXECUTION_DATA_END, req_id))

    def _req_ids(self, f: Fields) -> None:
        assert self.client_id is not None
        self.send(self.enc.next_valid_id(self.gw.engine.next_order_id(self.client_id)))


def _name(msg_id: int) -> str:
    for name, value in vars(In).items():
        if value == msg_id:
            return name
    return f"message {msg_id}"


def _order_id(fields: list[str]) -> int:
    try:
        return int(fields[1])
    except (IndexError, ValueError):
        return -1


def _parse_filter_time(text: str) -> float | None:
    """ExecutionFilter.time: `yyyymmdd hh:mm:ss` (optionally `-` and/or a zone), or ""."""
    return parse_ib_time(text) if text.strip() else None
