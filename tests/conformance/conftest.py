"""One ibsim and one driver process per run (client x server version), shared by that run's
flow tests: the first test of a run starts it, the others read its result."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

pytest.register_assert_rewrite("tests.conformance.flows")

from tests.conformance.clients import CLIENTS, Result, Run, execute  # noqa: E402


class Runs:
    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self._done: dict[str, Result] = {}

    def get(self, run: Run) -> Result:
        """The run's result, executed the first time it is asked for; skips (or, under CI,
        fails) when the client is not installed here."""
        reason = CLIENTS[run.client].missing()
        if reason is not None:
            if os.environ.get("CI") and run.client != "stoqey":
                pytest.fail(f"{reason} (CI installs every Python client)")
            pytest.skip(reason)
        if run.id not in self._done:
            self._done[run.id] = execute(run, self.workdir)
        return self._done[run.id]


@pytest.fixture(scope="session")
def runs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Runs]:
    return Runs(tmp_path_factory.mktemp("conformance"))
