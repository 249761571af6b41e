"""Constants, account helpers, the field types and parsers every section shares."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path
from typing import Annotated, Any, Final, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
)

EX_CONFIG: Final = 78
"""Exit code for bad configuration (sysexits.h); systemd is told not to restart on it."""

TWS_PAPER_PORT: Final = 7497
TWS_LIVE_PORT: Final = 7496
GATEWAY_PAPER_PORT: Final = 4002
GATEWAY_LIVE_PORT: Final = 4001
PAPER_PORTS: Final = (TWS_PAPER_PORT, GATEWAY_PAPER_PORT)
"""Paper ports, in the order ``ib.port = "auto"`` tries them."""
LIVE_PORTS: Final = (TWS_LIVE_PORT, GATEWAY_LIVE_PORT)
PORT_NAMES: Final = {
    TWS_PAPER_PORT: "TWS paper",
    TWS_LIVE_PORT: "TWS live",
    GATEWAY_PAPER_PORT: "IB Gateway paper",
    GATEWAY_LIVE_PORT: "IB Gateway live",
}
PAPER_ACCOUNT_PREFIX: Final = "DU"

ENV_PREFIX: Final = "ORDERFLOWD_"
ENV_NESTED_DELIMITER: Final = "__"
DEFAULT_CONFIG_FILE: Final = Path("config/orderflowd.toml")


def is_paper_account(account: str) -> bool:
    """Whether an IB account id is a paper account (paper ids start with ``DU``)."""
    return account.startswith(PAPER_ACCOUNT_PREFIX)


def mask_account(account: str) -> str:
    """Mask an account id except its last 4 characters: ``DU1234567`` -> ``*****4567``."""
    if len(account) <= 4:
        return "*" * len(account)
    return "*" * (len(account) - 4) + account[-4:]


# --- field types --------------------------------------------------------------------------------


def _parse_port(value: Any) -> int | str:
    if value == "auto":
        return "auto"
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value)
    if isinstance(value, int) and not isinstance(value, bool) and 1 <= value <= 65535:
        return value
    raise ValueError('must be an integer 1..65535 or "auto"')


def parse_id_list(value: Any) -> Any:
    # The environment can only carry strings: accept "2,3" as well as JSON "[2, 3]".
    if not isinstance(value, str):
        return value
    text = value.strip()
    if text.startswith("["):
        try:
            return json.loads(text)
        except ValueError:
            raise ValueError("must be a list of integers, e.g. [2, 3] or 2,3") from None
    return [part.strip() for part in text.split(",") if part.strip()]


def upper(value: Any) -> Any:
    return value.upper() if isinstance(value, str) else value


def empty_is_none(value: Any) -> Any:
    return None if value == "" else value


def _expand_user(path: Path) -> Path:
    return path.expanduser()


def check_account(account: str) -> str:
    if not account.isascii() or not (account.isalnum() or account == ""):
        raise ValueError("must contain only letters and digits")
    return account


_DURATION_UNITS: Final = {"s": 1, "sec": 1, "min": 60, "m": 60, "h": 3600, "hour": 3600}


def parse_duration(value: Any) -> int:
    """``"30s"``, ``"1min"``, ``"5min"``, ``"1h"`` or a number of seconds -> whole seconds."""
    if isinstance(value, bool):
        raise ValueError('must be a duration such as "30s", "1min", "1h"')
    if isinstance(value, int | float):
        seconds = float(value)
    else:
        text = str(value).strip().lower()
        number = text.rstrip("abcdefghijklmnopqrstuvwxyz")
        unit = text[len(number) :] or "s"
        if unit not in _DURATION_UNITS or not number:
            raise ValueError('must be a duration such as "30s", "1min", "1h"')
        try:
            seconds = float(number) * _DURATION_UNITS[unit]
        except ValueError:
            raise ValueError('must be a duration such as "30s", "1min", "1h"') from None
    if not math.isfinite(seconds):
        raise ValueError("must be a finite number")
    if seconds != int(seconds) or seconds <= 0:
        raise ValueError("must be a whole number of seconds > 0")
    return int(seconds)


_WINDOW = re.compile(r"^(\d{1,2}):(\d{2})-(\d{1,2}):(\d{2})(?:\s+(\S+))?$")
DEFAULT_WINDOW_TZ: Final = "America/Chicago"


def parse_window(text: str) -> tuple[int, int, str]:
    """``"HH:MM-HH:MM Area/City"`` -> (start minute, end minute, time zone); ValueError if bad."""
    m = _WINDOW.match(text.strip())
    if m is None:
        raise ValueError(f'{text!r} is not "HH:MM-HH:MM Area/City"')
    h1, m1, h2, m2 = (int(g) for g in m.groups()[:4])
    if h1 > 23 or h2 > 23 or m1 > 59 or m2 > 59:
        raise ValueError(f"{text!r}: hours are 00-23 and minutes 00-59")
    start, end = h1 * 60 + m1, h2 * 60 + m2
    if start == end:
        raise ValueError(f"{text!r}: the window is empty")
    tz = m.group(5) or DEFAULT_WINDOW_TZ
    try:
        ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"{text!r}: unknown time zone {tz!r}") from None
    return start, end, tz


def _bar_seconds(value: Any) -> int:
    seconds = parse_duration(value)
    if 86400 % seconds:
        raise ValueError("must divide a day evenly (e.g. 15s, 1min, 5min, 15min, 1h)")
    return seconds


Port = Annotated[int | Literal["auto"], BeforeValidator(_parse_port)]
UserPath = Annotated[Path, AfterValidator(_expand_user)]
Seconds = Annotated[float, Field(gt=0)]
BarSeconds = Annotated[int, BeforeValidator(_bar_seconds)]


class Section(BaseModel):
    # validate_default so cross-field checks also see defaults (e.g. stale vs reconnect).
    # allow_inf_nan=False: inf would turn a limit off (risk.daily_loss_limit = inf) and nan
    # compares false with everything, so neither is a value for any setting.
    model_config = ConfigDict(
        extra="forbid", frozen=True, validate_default=True, allow_inf_nan=False
    )
