"""The sections about the process: logs, paths, recording, status and metrics."""

from __future__ import annotations

import ipaddress
from pathlib import Path
from typing import Annotated, Literal

from pydantic import (
    BeforeValidator,
    Field,
    ValidationInfo,
    field_validator,
)

from daemon.settings.base import (
    Seconds,
    Section,
    UserPath,
    empty_is_none,
    upper,
)


class LoggingSettings(Section):
    """Log output."""

    format: Literal["auto", "console", "json"] = Field(
        default="auto",
        description=(
            '"console", "json", or "auto" = console on a TTY, json under systemd '
            "(JOURNAL_STREAM set), console otherwise."
        ),
    )
    level: Annotated[Literal["DEBUG", "INFO", "WARNING", "ERROR"], BeforeValidator(upper)] = Field(
        default="INFO", description="Minimum level logged: DEBUG, INFO, WARNING or ERROR."
    )
    file: Annotated[UserPath | None, BeforeValidator(empty_is_none)] = Field(
        default=None,
        description=(
            'Also log to this file; relative paths are under paths.log_dir. Empty ("") = no file.'
        ),
    )


class PathsSettings(Section):
    """Where state and logs live; relative paths are under the working directory."""

    state_dir: UserPath = Field(
        default=Path("state"), description="Directory for the journal and status.json."
    )
    log_dir: UserPath = Field(default=Path("logs"), description="Directory for log files.")


class RecordingSettings(Section):
    """Recording of the received trades and quotes for replay (docs/recording.md)."""

    enabled: bool = Field(
        default=True,
        description="Record every received trade and quote into "
        "state_dir/recordings/SYMBOL-YYYY-MM-DD.csv.gz, one file per trading day.",
    )
    keep_days: int = Field(
        default=30,
        ge=0,
        description="Recorded trading days kept (the newest); older files are deleted at start "
        "and at each new day. 0 = keep forever.",
    )
    flush_s: Seconds = Field(
        default=1.0,
        description="Seconds between writes of the buffered events; a crash loses at most this.",
    )


class StatusSettings(Section):
    """Health reporting."""

    interval_s: Seconds = Field(default=1.0, description="Seconds between writes of status.json.")


def _is_loopback(host: str) -> bool:
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a host name other than localhost may resolve anywhere


class MetricsSettings(Section):
    """The Prometheus metrics endpoint (HTTP, text exposition format)."""

    enabled: bool = Field(
        default=True, description="Serve Prometheus metrics over HTTP at /metrics."
    )
    allow_remote: bool = Field(
        default=False,
        description="Allow metrics.host to be an address other than loopback (the endpoint has "
        "no authentication: anyone who can reach it reads positions and PnL).",
    )
    host: str = Field(
        default="127.0.0.1",
        min_length=1,
        description="Address the metrics endpoint listens on; loopback unless "
        "metrics.allow_remote = true.",
    )
    port: int = Field(
        default=9464,
        ge=0,
        le=65535,
        description="TCP port of the metrics endpoint; 0 = any free port (for tests).",
    )

    @field_validator("host")
    @classmethod
    def _loopback_unless_allowed(cls, host: str, info: ValidationInfo) -> str:
        if not _is_loopback(host) and not info.data.get("allow_remote", False):
            raise ValueError(
                "is not a loopback address; set metrics.allow_remote = true to serve metrics "
                "to other hosts, or use 127.0.0.1"
            )
        return host
