"""The suite keeps up with ibsim: a request ibsim answers with data has a conformance flow (or an
exemption saying why not), and every driver implements every flow."""

from __future__ import annotations

import re

from ibsim.answers.table import REQUESTS, Answer
from tests.conformance.clients import DRIVERS, NODE_DIR
from tests.conformance.flows import EXEMPT, FLOWS, UNSUPPORTED


def test_every_request_answered_with_data_has_a_flow_or_an_exemption() -> None:
    with_data = {r.msg_id for r in REQUESTS.values() if r.answer is Answer.DATA}
    covered = set().union(*(f.requests for f in FLOWS))
    missing = sorted(with_data - covered - set(EXEMPT))
    assert not missing, (
        f"requests ibsim answers with data but no conformance flow sends: "
        f"{[(i, REQUESTS[i].name) for i in missing]}; add a flow to tests/conformance/flows.py "
        f"(and to each driver), or an exemption with its reason to flows.EXEMPT"
    )
    assert not set(EXEMPT) & covered, "an exempt request has a flow now: drop its exemption"
    assert set(EXEMPT) <= with_data, "exempt only requests that are answered with data"
    assert covered <= set(REQUESTS), "a flow names a request id ibsim does not know"


def test_every_driver_has_every_flow() -> None:
    names = [f.name for f in FLOWS]
    assert len(set(names)) == len(names)
    sources = {
        "insync_family": (DRIVERS / "insync_family.py").read_text(),
        "ibapi": (DRIVERS / "ibapi_driver.py").read_text(),
        "stoqey": (NODE_DIR / "stoqey_driver.js").read_text(),
    }
    for driver, text in sources.items():
        implemented = set(re.findall(r"\bflow_(\w+)\s*\(", text))
        assert implemented == set(names), (driver, set(names) ^ implemented)
    assert {flow for _, flow in UNSUPPORTED} <= set(names)
