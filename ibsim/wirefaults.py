"""Wire faults: what a man-in-the-middle between a client and the gateway does to the stream.

Outgoing messages of chosen types held (then delivered late, overtaken by everything else) or
dropped; live executions with absurd but finite fields; a market feed that goes quiet while
the socket stays up; a frame header announcing ~2 GB, or a frame that is not a message. The
gateway's own book is never touched: these change only what goes out on the wire.

`WireFaults` is a mixin of `ibsim.gateway.Gateway` (the attributes annotated on it are the
gateway's). The session's send path costs one attribute check (`Gateway.out_filter`, None
while no message window is open).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import enum
import logging
import struct
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from ibsim.encoders import Out
from ibsim.feed import MarketFeed
from ibsim.model import Execution, Order

if TYPE_CHECKING:
    from ibsim.session import ClientSession

log = logging.getLogger("ibsim.wirefaults")

_ALIASES = {
    "error": Out.ERR_MSG,
    "execution": Out.EXECUTION_DATA,
    "execution_end": Out.EXECUTION_DATA_END,
    "position": Out.POSITION_DATA,
    "account_value": Out.ACCT_VALUE,
    "account_update_time": Out.ACCT_UPDATE_TIME,
    "account_download_end": Out.ACCT_DOWNLOAD_END,
    "managed_accounts": Out.MANAGED_ACCTS,
    "contract_details": Out.CONTRACT_DATA,
}
MESSAGE_KINDS: dict[str, int] = {
    name.lower(): value for name, value in vars(Out).items() if name.isupper()
} | _ALIASES
"""Names of outgoing message types (the `Out` names in any case, plus a few aliases)."""


def message_kinds(names: Iterable[str]) -> frozenset[int]:
    """Message ids for type names; a ValueError names the unknown ones."""
    wanted = [names] if isinstance(names, str) else list(names)
    unknown = sorted(n for n in wanted if n.lower() not in MESSAGE_KINDS)
    if unknown:
        raise ValueError(f"unknown message type(s) {unknown}; known: {sorted(MESSAGE_KINDS)}")
    if not wanted:
        raise ValueError("no message type given")
    return frozenset(MESSAGE_KINDS[n.lower()] for n in wanted)


def message_id(frame: bytes) -> int:
    """The message id of a framed message; -1 when it has none readable."""
    end = frame.find(b"\0", 4)
    try:
        return int(frame[4:end])
    except ValueError:
        return -1


@dataclass(eq=False)
class _Window:
    ids: frozenset[int]
    withhold: bool
    held: list[tuple[ClientSession, bytes]] = field(default_factory=list)
    dropped: int = 0
    timer: asyncio.TimerHandle | None = None


class OutFilter:
    """Open windows during which outgoing messages of some types are held or dropped."""

    def __init__(self) -> None:
        self._windows: list[_Window] = []

    @property
    def active(self) -> bool:
        return bool(self._windows)

    def open(self, ids: frozenset[int], *, withhold: bool) -> _Window:
        window = _Window(ids, withhold)
        self._windows.append(window)
        return window

    def intercept(self, session: ClientSession, frame: bytes) -> bool:
        """True when the message is taken out of the stream (held or dropped)."""
        msg_id = message_id(frame)
        for window in self._windows:
            if msg_id in window.ids:
                if window.withhold:
                    window.dropped += 1
                else:
                    window.held.append((session, frame))
                return True
        return False

    def close(self, window: _Window) -> None:
        """End a window: its held messages go out in their original order."""
        if window not in self._windows:
            return
        self._windows.remove(window)
        if window.timer is not None:
            window.timer.cancel()
        released = sum(1 for session, _ in window.held if not session.closed)
        log.info(
            "message window ended: %d held messages released, %d withheld, %d lost",
            released,
            window.dropped,
            len(window.held) - released,
        )
        for session, frame in window.held:
            session.send(frame)  # a closed session drops it: lost, as behind a proxy

    def close_all(self) -> None:
        for window in list(self._windows):
            self.close(window)

    def discard_all(self) -> None:
        for window in self._windows:
            if window.timer is not None:
                window.timer.cancel()
        self._windows.clear()


class FillCorruption(enum.StrEnum):
    """An absurd but finite field in a live EXECUTION_DATA (the broker's book stays true)."""

    PRICE_ZERO = "price_zero"
    PRICE_NEGATIVE = "price_negative"  # the true price negated
    PRICE_FAR = "price_far"  # 100x the true price
    SHARES_HUGE = "shares_huge"  # 1e9 contracts
    SHARES_OVER_ORDER = "shares_over_order"  # one more than the order's quantity
    CUM_QTY_OVER = "cum_qty_over"  # cumulative quantity one over the order's quantity


def corrupt(ex: Execution, kind: FillCorruption, order_quantity: int) -> Execution:
    """The execution as the corrupted wire message shows it (same execId)."""
    match kind:
        case FillCorruption.PRICE_ZERO:
            return dataclasses.replace(ex, price=0.0)
        case FillCorruption.PRICE_NEGATIVE:
            return dataclasses.replace(ex, price=-abs(ex.price))
        case FillCorruption.PRICE_FAR:
            return dataclasses.replace(ex, price=ex.price * 100)
        case FillCorruption.SHARES_HUGE:
            return dataclasses.replace(ex, shares=1_000_000_000)
        case FillCorruption.SHARES_OVER_ORDER:
            return dataclasses.replace(ex, shares=order_quantity + 1)
        case FillCorruption.CUM_QTY_OVER:
            return dataclasses.replace(ex, cum_qty=order_quantity + 1)


class BadFrame(enum.StrEnum):
    OVERSIZED = "oversized"  # a header announcing ~2 GB, then a trickle that never completes it
    GARBAGE = "garbage"  # a complete frame whose payload is not a message


OVERSIZED_LENGTH = 0x7FFFFFF0
TRICKLE_INTERVAL = 0.2  # seconds between the trickled bytes of an oversized frame
TRICKLE = b"\x00\x01\x02"
_GARBAGE = b"\xfe\x9c?x\x00\x13\x87\xc3(\x00"
GARBAGE_FRAME = struct.pack(">I", len(_GARBAGE)) + _GARBAGE


async def _trickle(sessions: list[ClientSession], seconds: float) -> None:
    """A few bytes every TRICKLE_INTERVAL for `seconds`, while any of `sessions` is open."""
    loop = asyncio.get_running_loop()
    end = loop.time() + seconds
    while (left := end - loop.time()) > 0:
        await asyncio.sleep(min(TRICKLE_INTERVAL, left))
        live = [s for s in sessions if not s.closed and not s.writer.transport.is_closing()]
        if not live:
            return
        for s in live:
            s.writer.write(TRICKLE)


class WireFaults:
    """Message windows, corrupted fills, a frozen feed and bad frames (Gateway methods)."""

    sessions: set[ClientSession]
    feed: MarketFeed
    out_filter: OutFilter | None

    def _init_wire_faults(self) -> None:
        self.out_filter = None  # read by every ClientSession.send: None costs nothing
        self._windows = OutFilter()
        self._corruptions: deque[FillCorruption] = deque()
        self._wire_tasks: set[asyncio.Task[None]] = set()
        self._thaw_timer: asyncio.TimerHandle | None = None

    async def _stop_wire_faults(self) -> None:
        self._windows.discard_all()
        self.out_filter = None
        if self._thaw_timer is not None:
            self._thaw_timer.cancel()
        for task in list(self._wire_tasks):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    # --- message windows ---

    def delay_messages(
        self, kinds: Iterable[str], seconds: float, *, withhold: bool = False
    ) -> None:
        """For `seconds`, hold outgoing messages of these types to every client (delivered in
        their original order when the window ends), or drop them with `withhold`.

        `kinds` are `Out` names in any case (`order_status`, `open_order`, `tick_by_tick`, ...)
        or `execution`, `position`, `error` (see `MESSAGE_KINDS`). Everything else flows, so
        it overtakes what is held. Messages held for a session that closes are lost.
        """
        ids = message_kinds(kinds)
        if not seconds > 0:
            raise ValueError(f"seconds must be > 0, got {seconds}")
        window = self._windows.open(ids, withhold=withhold)
        window.timer = asyncio.get_running_loop().call_later(seconds, self._end_window, window)
        self.out_filter = self._windows
        log.info("%s %s for %.2fs", "withholding" if withhold else "delaying", sorted(ids), seconds)

    def release_messages(self) -> None:
        """End every message window now: held messages go out, withholding stops."""
        self._windows.close_all()
        self.out_filter = None

    def _end_window(self, window: _Window) -> None:
        self._windows.close(window)
        if not self._windows.active:
            self.out_filter = None

    # --- corrupted fills ---

    def corrupt_next_fills(self, kind: str, count: int = 1) -> None:
        """The next `count` live EXECUTION_DATA messages carry an absurd field (`FillCorruption`:
        price_zero, price_negative, price_far, shares_huge, shares_over_order, cum_qty_over).

        Only the wire message changes: the book, the COMMISSION_REPORT and later
        `reqExecutions` answers keep the true values under the same execId.
        """
        corruption = FillCorruption(kind)
        if count < 1:
            raise ValueError(f"count must be at least 1, got {count}")
        self._corruptions.extend([corruption] * count)

    def disarm_fill_corruptions(self) -> int:
        """Forget the corruptions no fill has used yet; how many there were."""
        armed = len(self._corruptions)
        self._corruptions.clear()
        return armed

    def _wire_execution(self, ex: Execution, order: Order) -> Execution:
        """A live execution as it goes on the wire (corrupted while corruptions are armed)."""
        if not self._corruptions:
            return ex
        kind = self._corruptions.popleft()
        log.info("corrupting execution %s: %s", ex.exec_id, kind)
        return corrupt(ex, kind, order.request.total_quantity)

    # --- frozen feed ---

    def freeze_feed(self, seconds: float | None = None) -> None:
        """No market data reaches any client for `seconds` (None: until `thaw_feed`).

        The market goes on (orders match, history records); subscriptions made meanwhile are
        accepted and acknowledged as usual but get no ticks; everything else keeps working.
        """
        if seconds is not None and not seconds > 0:
            raise ValueError(f"seconds must be > 0 or None, got {seconds}")
        if self._thaw_timer is not None:
            self._thaw_timer.cancel()
            self._thaw_timer = None
        self.feed.freeze()
        if seconds is not None:
            self._thaw_timer = asyncio.get_running_loop().call_later(seconds, self.thaw_feed)
        log.info(
            "market data frozen %s", "until thawed" if seconds is None else f"for {seconds:.2f}s"
        )

    def thaw_feed(self) -> None:
        """Market data flows again (the next 250 ms sample carries every field)."""
        if self._thaw_timer is not None:
            self._thaw_timer.cancel()
            self._thaw_timer = None
        if self.feed.frozen:
            self.feed.thaw()
            log.info("market data thawed")

    # --- bad frames ---

    def send_bad_frame(self, kind: str = "oversized", *, trickle_s: float = 0.0) -> int:
        """A bad frame to every connected client; returns how many got it.

        `oversized`: a header announcing 0x7FFFFFF0 bytes, then a few bytes every 0.2 s for
        `trickle_s` seconds; nothing else reaches that client until it disconnects (its queue
        is stuck behind the frame). `garbage`: one short frame whose payload is not a message
        (non-numeric id, non-ASCII bytes); the stream goes on after it.
        """
        frame = BadFrame(kind)
        if trickle_s < 0:
            raise ValueError(f"trickle_s must be >= 0, got {trickle_s}")
        targets = [s for s in self.sessions if s.client_id is not None and not s.wedged]
        targets = [s for s in targets if not s.closed]
        for s in targets:
            s.flush()  # what is queued already goes first
            if frame is BadFrame.GARBAGE:
                s.writer.write(GARBAGE_FRAME)
                continue
            s.writer.write(struct.pack(">I", OVERSIZED_LENGTH) + TRICKLE)
            s.wedged = True
        log.info("bad frame %s sent to %d client(s)", frame, len(targets))
        if frame is BadFrame.OVERSIZED and trickle_s > 0 and targets:
            task = asyncio.create_task(_trickle(targets, trickle_s), name="ibsim-trickle")
            self._wire_tasks.add(task)
            task.add_done_callback(self._wire_tasks.discard)
        return len(targets)
