"""Every runtime test starts and ends with pristine structlog / stdlib logging state."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import structlog

from daemon.runtime.logs import reset_logging


@pytest.fixture(autouse=True)
def _pristine_logging() -> Iterator[None]:
    reset_logging()
    structlog.contextvars.clear_contextvars()
    yield
    reset_logging()
    structlog.contextvars.clear_contextvars()
