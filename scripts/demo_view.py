"""The live console view of `make demo`: the daemon's status and its events as they happen.

Reads what any operator can read: `<state_dir>/status.json` (rewritten every second) and the
daemon's JSON log. One status line every few seconds (price, session CVD, position, PnL,
connection state) and one line per event worth seeing (a fill, a connection going down and
coming back, an outage, a halt), each stamped with the seconds since the daemon started.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TextIO

from daemon.runtime import status

STATUS_EVERY_S = 5.0

_EVENT_TEXT: dict[str, Callable[[dict[str, Any]], str]] = {
    "disconnected": lambda e: "gateway connection lost: reconnecting",
    "connection_state": lambda e: f"connection {e.get('previous')} -> {e.get('state')}",
    "ib_connectivity_lost": lambda e: "1100: TWS lost IB's servers; no new orders until restored",
    "ib_connectivity_restored": lambda e: f"{e.get('code', '110x')}: connectivity restored",
    "intent": lambda e: f"strategy: target {e.get('target'):+} ({e.get('reason')})",
    "fill": lambda e: f"fill {e.get('side')} {e.get('shares')} @ {e.get('price')} ({e.get('ref')})",
    "order_rejected": lambda e: f"order rejected {e.get('code')}: {e.get('message')}",
    "reconcile_mismatch": lambda e: f"reconcile mismatch: {e.get('detail', e)}",
    "trading_state": lambda e: f"trading {e.get('old')} -> {e.get('new')} ({e.get('reason')})",
    "flatten": lambda e: "flatten: cancelling every order, closing the position",
    "flatten_confirmed": lambda e: "flatten confirmed by the broker: flat, nothing working",
    "flatten_unconfirmed": lambda e: f"flatten NOT confirmed: {e.get('detail')}",
    "fill_corrected": lambda e: f"fill corrected: {e.get('corrects')} -> {e.get('exec_id')}",
    "broker_anomaly": lambda e: f"BROKER ANOMALY (halted): {e.get('detail')}",
    "journal_failed": lambda e: f"JOURNAL FAILED (halted): {e.get('error')}",
    "strategy_failed": lambda e: f"STRATEGY FAILED (halted): {e.get('error')}",
}
_SHOWN_STATES = {"READY", "DISCONNECTED", "DEGRADED"}


class LogTail:
    """New complete lines of a growing file, parsed as JSON (other lines are skipped)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._offset = 0
        self._partial = ""

    def events(self) -> Iterator[dict[str, Any]]:
        try:
            with self.path.open(encoding="utf-8", errors="replace") as f:
                f.seek(self._offset)
                text = f.read()
                self._offset = f.tell()
        except FileNotFoundError:
            return
        lines = (self._partial + text).split("\n")
        self._partial = lines.pop()
        for line in lines:
            try:
                event = json.loads(line)
            except ValueError:
                continue
            if isinstance(event, dict):
                yield event


class Events:
    """What the viewer sees of the log events, one line each (most events are not shown)."""

    def __init__(self) -> None:
        self.stopping = False
        self._lost_at: float | None = None

    def line(self, event: dict[str, Any], now: float) -> str | None:
        name = event.get("event")
        if name == "stopping":
            self.stopping = True
        describe = _EVENT_TEXT.get(name) if isinstance(name, str) else None
        if describe is None or self.stopping:
            return None
        if name == "connection_state":
            return self._connection(event, now)
        return describe(event)

    def _connection(self, event: dict[str, Any], now: float) -> str | None:
        state, previous = event.get("state"), event.get("previous")
        if state == "DISCONNECTED" and previous == "CONNECTING":
            return "reconnect attempt: the gateway is not back yet"
        if state == "DISCONNECTED":
            self._lost_at = now
        elif state == "READY" and self._lost_at is not None:
            away = now - self._lost_at
            self._lost_at = None
            return (
                f"connection READY again {away:.0f} s after the drop: resubscribed, "
                "orders and fills reconciled"
            )
        if state not in _SHOWN_STATES:
            return None
        return f"connection {previous} -> {state}"


def _held(position: int | None, avg: float | None) -> str:
    if position is None:  # not reconciled, or not connected: the daemon cannot vouch for it
        return "unknown"
    return "flat" if position == 0 else f"{position:+d} @ {avg}"


def status_text(doc: dict[str, Any]) -> str:
    """One line: state, contract, last price, session CVD, position, PnL, reconnects."""
    trading = doc.get("trading") or {}
    held = _held(trading.get("position"), trading.get("avg_price"))
    net = trading.get("net_pnl")
    pnl = "-" if net is None else f"{net:+.2f}"
    last = doc.get("last")
    cvd = doc.get("cvd_session")
    return (
        f"{doc.get('state', '?'):<12} {doc.get('contract') or '-':<5} "
        f"last {last if last is not None else '-':>8}  "
        f"CVD {'-' if cvd is None else f'{cvd:+,.0f}':>8}  "
        f"pos {held:<12} PnL {pnl:>8} USD  "
        f"trading {trading.get('state', 'off')}  reconnects {doc.get('reconnect_count', 0)}"
    )


def read_status(state_dir: Path) -> dict[str, Any] | None:
    """The daemon's last status.json, or None before its first write."""
    try:
        return status.read_status(state_dir)
    except (FileNotFoundError, ValueError):
        return None


def watch(
    state_dir: Path,
    log_path: Path,
    running: Callable[[], bool],
    out: TextIO,
    *,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> None:
    """Print the view until `running()` says the daemon has ended."""
    tail = LogTail(log_path)
    events = Events()
    start = clock()
    next_status = start
    while True:
        alive = running()
        now = clock()
        stamp = f"{int(now - start) // 60}:{int(now - start) % 60:02d}"
        for event in tail.events():
            line = events.line(event, now)
            if line is not None:
                print(f"  {stamp}  > {line}", file=out, flush=True)
        if now >= next_status:
            doc = read_status(state_dir)
            if doc is not None:
                print(f"  {stamp}  {status_text(doc)}", file=out, flush=True)
            next_status = now + STATUS_EVERY_S
        if not alive:
            return
        sleep(0.5)
