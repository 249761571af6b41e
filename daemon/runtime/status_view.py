"""Readable rendering of the trading part of status.json for `orderflowd status`."""

from __future__ import annotations

from datetime import datetime, tzinfo
from typing import Any

__all__ = ["format_trading"]

_INDENT = "  "


def _money(value: Any, *, signed: bool = True) -> str:
    if value is None:
        return "n/a"
    return f"{value:+,.2f}" if signed else f"{value:,.2f}"


def _price(value: Any) -> str:
    return "-" if value is None else f"{value:.2f}"


def _position(trading: dict[str, Any], state: Any) -> str:
    """Flat only when the daemon knows it: an untrusted position (None) is unknown."""
    position = trading.get("position")
    if position is None:
        if trading.get("reconciled") is False:
            return "unknown (not reconciled with the broker)"
        if state not in (None, "READY"):
            return f"unknown (connection {state})"
        return "unknown (not confirmed by the broker)"
    if position == 0:
        return "flat"
    return f"{position:+d} @ {_price(trading.get('avg_price'))}"


def _order(order: dict[str, Any]) -> str:
    fields = ("ref", "role", "action", "quantity", "order_type")
    parts = [str(order.get(name, "?")) for name in fields]
    if order.get("price") is not None:
        parts.append(_price(order["price"]))
    parts.append(str(order.get("status", "?")))
    return " ".join(parts)


def _when(epoch: Any, tz: tzinfo | None) -> str:
    try:
        return datetime.fromtimestamp(float(epoch), tz).strftime("%Y-%m-%d %H:%M:%S")
    except (TypeError, ValueError, OverflowError, OSError):
        return "?"


def _needs_a_person(trading: dict[str, Any], tz: tzinfo | None) -> list[str]:
    """Alarms, a failing journal or strategy, a flatten that was not confirmed."""
    lines = []
    for key, what in (("journal_error", "journal"), ("strategy_error", "strategy")):
        if trading.get(key):
            lines.append(f"{_INDENT}{what} FAILED: {trading[key]}")
    alarms = trading.get("alarms") or []
    if alarms:
        lines.append(f"{_INDENT}alarms (trading halted until orderflowd resume):")
        lines += [
            f"{_INDENT * 2}{_when(a.get('at'), tz)} {a.get('kind', '?')}: {a.get('detail', '')}"
            for a in alarms
        ]
    flatten = trading.get("last_flatten") or {}
    if flatten and not flatten.get("ok"):
        lines.append(f"{_INDENT}last flatten NOT confirmed: {flatten.get('message', '?')}")
    return lines


def format_trading(doc: dict[str, Any], tz: tzinfo | None = None) -> list[str]:
    """Lines describing `doc["trading"]`; [] when the document has none.

    Times of refusals are shown in *tz* (default: the local time zone). Parts whose fields are
    absent are left out; missing values inside a part render as `?` or `n/a`.
    """
    trading = doc.get("trading")
    if not trading:
        return []
    state = str(trading.get("state", "?"))
    reason = trading.get("reason")
    lines = [f"trading: {state} ({reason})" if reason else f"trading: {state}"]
    # Parts render only when present: a disabled trading layer writes just enabled and state.
    if trading.get("reconciled") is False:
        lines.append(f"{_INDENT}not reconciled with the broker: no new orders")
    if "position" in trading:
        lines.append(f"{_INDENT}position: {_position(trading, doc.get('state'))}")
    if trading.get("account_position") is not None:
        lines.append(f"{_INDENT}account position at the broker: {trading['account_position']:+d}")
    lines += _needs_a_person(trading, tz)
    if "realized_pnl" in trading:
        lines.append(
            f"{_INDENT}pnl: realized {_money(trading.get('realized_pnl'))}"
            f"  unrealized {_money(trading.get('unrealized_pnl'))}"
            f"  commissions {_money(trading.get('commissions'), signed=False)}"
            f"  net {_money(trading.get('net_pnl'))}"
        )
    if "working_orders" in trading:
        orders = trading["working_orders"] or []
        lines.append(f"{_INDENT}working orders: {len(orders) if orders else 'none'}")
        lines += [f"{_INDENT * 2}{_order(order)}" for order in orders]
    by_rule = trading.get("refusals") or {}
    if by_rule:
        counts = ", ".join(f"{rule} {n}" for rule, n in sorted(by_rule.items()))
        lines.append(f"{_INDENT}refusals: {counts}")
    last = trading.get("last_refusals") or []
    if last:
        lines.append(f"{_INDENT}last refusals:")
        lines += [
            f"{_INDENT * 2}{_when(r.get('time'), tz)} {r.get('rule', '?')}: {r.get('detail', '')}"
            for r in last
        ]
    return lines
