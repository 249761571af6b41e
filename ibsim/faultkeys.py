"""The keys of the scenario kinds for wire and book faults: each one's parser, and which
are required. Values are parsed strictly (a string is not a number); errors name the key."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from typing import Any

from ibsim.model import OrderStatus
from ibsim.wirefaults import BadFrame, FillCorruption, message_kinds


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _check(ok: bool, what: str) -> None:
    if not ok:
        raise ValueError(f"must be {what}")


def _text(value: Any) -> str:
    _check(isinstance(value, str), "a string")
    return str(value)


def _integer(value: Any) -> int:
    _check(isinstance(value, int) and not isinstance(value, bool), "an integer")
    return int(value)


def _positive_int(value: Any) -> int:
    _check(_integer(value) >= 1, "an integer >= 1")
    return int(value)


def _non_negative_int(value: Any) -> int:
    _check(_integer(value) >= 0, "an integer >= 0")
    return int(value)


def _number(value: Any) -> float:
    _check(_is_number(value) and math.isfinite(value), "a finite number")
    return float(value)


def _positive(value: Any) -> float:
    _check(_number(value) > 0, "a number > 0")
    return float(value)


def _non_negative(value: Any) -> float:
    _check(_number(value) >= 0, "a number >= 0")
    return float(value)


def _one_of(*choices: str) -> Callable[[Any], str]:
    def parse(value: Any) -> str:
        _check(isinstance(value, str) and value.upper() in choices, f"one of {list(choices)}")
        return str(value).upper()

    return parse


def _enum_value(values: Iterable[str]) -> Callable[[Any], str]:
    allowed = list(values)

    def parse(value: Any) -> str:
        _check(isinstance(value, str) and value in allowed, f"one of {allowed}")
        return str(value)

    return parse


def _messages(value: Any) -> tuple[str, ...]:
    _check(isinstance(value, list) and value != [], "a non-empty list of message type names")
    _check(all(isinstance(v, str) for v in value), "a list of strings")
    try:
        message_kinds(value)
    except ValueError as exc:
        raise ValueError(f"names {exc}") from None
    return tuple(value)


_BUY_SELL = _one_of("BUY", "SELL")
_STATUS = _enum_value(s.value for s in OrderStatus)
# The keys of each wire / book fault: parser, and whether the key is required.
KIND_KEYS: dict[str, dict[str, tuple[Callable[[Any], Any], bool]]] = {
    "correction": {
        "exec_id": (_text, False),
        "price": (_positive, False),
        "shares": (_positive_int, False),
    },
    "foreign_order": {
        "client_id": (_integer, True),
        "order_ref": (_text, True),
        "action": (_BUY_SELL, True),
        "quantity": (_positive_int, True),
        "order_type": (_one_of("MKT", "LMT"), False),
        "lmt_price": (_positive, False),
        "account": (_text, False),
    },
    "inject_execution": {
        "client_id": (_integer, True),
        "order_id": (_integer, True),
        "order_ref": (_text, True),
        "side": (_one_of("BUY", "SELL", "BOT", "SLD"), True),
        "shares": (_integer, True),
        "price": (_number, True),
        "perm_id": (_integer, False),
        "exec_id": (_text, False),
        "exec_client_id": (_integer, False),
        "account": (_text, False),
    },
    "inject_order_status": {
        "client_id": (_integer, True),
        "order_id": (_integer, True),
        "status": (_STATUS, True),
        "filled": (_non_negative_int, True),
        "remaining": (_non_negative_int, True),
        "avg_fill_price": (_number, True),
        "perm_id": (_integer, True),
        "parent_id": (_integer, False),
    },
    "inject_open_order": {
        "client_id": (_integer, True),
        "order_id": (_integer, True),
        "order_ref": (_text, True),
        "action": (_BUY_SELL, True),
        "quantity": (_positive_int, True),
        "order_type": (_one_of("MKT", "LMT", "STP", "STP LMT"), False),
        "lmt_price": (_positive, False),
        "aux_price": (_positive, False),
        "status": (_STATUS, False),
        "perm_id": (_integer, False),
        "parent_id": (_integer, False),
        "account": (_text, False),
    },
    "corrupt_fills": {
        "corruption": (_enum_value(FillCorruption), True),
        "count": (_positive_int, False),
    },
    "delay": {"messages": (_messages, True), "seconds": (_positive, True)},
    "withhold": {"messages": (_messages, True), "seconds": (_positive, True)},
    "freeze_feed": {"seconds": (_positive, True)},
    "bad_frame": {"frame": (_enum_value(BadFrame), False), "seconds": (_non_negative, False)},
}


def parse_kind_keys(kind: str, raw: dict[str, Any]) -> dict[str, Any]:
    """The parsed keys of one `kind` fault (`raw` without at/on/nth/kind); ValueError names
    the offending key."""
    spec = KIND_KEYS[kind]
    alien = sorted(set(raw) - set(spec))
    if alien:
        raise ValueError(f"key(s) {alien} do not apply; it takes {sorted(spec)}")
    params: dict[str, Any] = {}
    for key, (parse, required) in spec.items():
        if key in raw:
            try:
                params[key] = parse(raw[key])
            except ValueError as exc:
                raise ValueError(f"key {key!r} {exc}, got {raw[key]!r}") from None
        elif required:
            raise ValueError(f"key {key!r} is required")
    if "order_type" in spec:
        default = "LMT" if kind == "inject_open_order" else "MKT"
        if params.get("order_type", default) in ("LMT", "STP LMT") and "lmt_price" not in params:
            raise ValueError("key 'lmt_price' is required for a LMT order")
    return params
