"""The conformance table: every flow of flows.py, run by every client (clients.RUNS), each held to
what a real TWS does.

One test per (run, flow), ids `<client>-v<server version>-<flow>`. A run's first test starts an
ibsim process and the client's driver (which does every flow in turn); the run's other tests
read what it printed. A flow the client has no API for must be listed, with its reason, in
flows.UNSUPPORTED (and nothing listed there may run); a client that is not installed here skips
its runs with the reason (node missing; in CI a missing client fails).
"""

from __future__ import annotations

import pytest

from tests.conformance.clients import RUNS, Run
from tests.conformance.conftest import Runs
from tests.conformance.flows import FLOWS, UNSUPPORTED, Ctx, Flow, Tape

TAPE = Tape.first()
CASES = [pytest.param(run, flow, id=f"{run.id}-{flow.name}") for run in RUNS for flow in FLOWS]


@pytest.mark.timeout(240)  # a run's first test waits for the whole run
@pytest.mark.parametrize(("run", "flow"), CASES)
def test_flow(runs: Runs, run: Run, flow: Flow) -> None:
    result = runs.get(run)
    line = result.lines.get(flow.name)
    if line is None:
        pytest.fail(f"the driver printed nothing for {flow.name}\n{result.diagnostics()}")
    if "error" in line:
        pytest.fail(f"the driver failed in {flow.name}:\n{line['error']}\n{result.diagnostics()}")
    exempt = UNSUPPORTED.get((run.client, flow.name))
    if "unsupported" in line:
        # What is checked: the client really has no API for it, and the table says so (with
        # its reason), so a client that gains one is noticed at once.
        assert exempt is not None, f"the driver has no API for it: {line['unsupported']}"
        return
    assert exempt is None, f"flows.UNSUPPORTED lists ({run.client}, {flow.name}) but it ran"
    observed = {name: got["obs"] for name, got in result.lines.items() if "obs" in got}
    ctx = Ctx(run.client, run.server_version, TAPE, observed)
    flow.check(line["obs"], ctx)
