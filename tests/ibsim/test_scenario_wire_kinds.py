"""Scenario kinds for wire and book faults: strict keys with errors naming fault and key, and
each kind fired through `Scenario.fire` against a real gateway and ib_async client."""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest
from ib_async import IB, LimitOrder, MarketOrder

from ibsim.scenario import Fault, Scenario, ScenarioError, load_scenario
from tests.ibsim.conftest import GatewayFactory, front_month, until

Connect = Callable[..., Awaitable[IB]]

_FOREIGN = 'client_id = 7\norder_ref = "g"\naction = "BUY"\nquantity = 1\n'
_INJECT_EXEC = (
    'client_id = 1\norder_id = 5\norder_ref = "f"\nside = "BUY"\nshares = 1\nprice = 1.0\n'
)
_STATUS = (
    'client_id = 1\norder_id = 5\nstatus = "Filled"\nfilled = 1\nremaining = 0\n'
    "avg_fill_price = 1.0\nperm_id = 9\n"
)
_OPEN = (
    'client_id = 1\norder_id = 5\norder_ref = "p"\naction = "SELL"\nquantity = 1\nlmt_price = 1.0\n'
)
_DELAY = 'messages = ["order_status"]\nseconds = 1\n'

# (kind, the fault's other lines, what the error must say after "fault #1 (kind): ")
BAD = [
    ("correction", "price = -1", "key 'price' must be a number > 0, got -1"),
    ("correction", 'price = "high"', "key 'price' must be a finite number"),
    ("correction", "shares = 0", "key 'shares' must be an integer >= 1"),
    ("correction", "exec_id = 5", "key 'exec_id' must be a string"),
    ("correction", "code = 2104", "key(s) ['code'] do not apply"),
    ("foreign_order", _FOREIGN.replace("client_id = 7\n", ""), "key 'client_id' is required"),
    ("foreign_order", _FOREIGN.replace("= 7", '= "7"'), "key 'client_id' must be an integer"),
    ("foreign_order", _FOREIGN.replace('"g"', "1"), "key 'order_ref' must be a string"),
    ("foreign_order", _FOREIGN.replace('"BUY"', '"HOLD"'), "key 'action' must be one of"),
    ("foreign_order", _FOREIGN.replace("quantity = 1", "quantity = 0"), "key 'quantity'"),
    ("foreign_order", _FOREIGN + 'order_type = "STP"', "key 'order_type' must be one of"),
    ("foreign_order", _FOREIGN + 'order_type = "LMT"', "key 'lmt_price' is required"),
    ("foreign_order", _FOREIGN + "lmt_price = -5.0", "key 'lmt_price' must be a number > 0"),
    ("foreign_order", _FOREIGN + "account = 3", "key 'account' must be a string"),
    ("inject_execution", _INJECT_EXEC.replace('"BUY"', '"UP"'), "key 'side' must be one of"),
    ("inject_execution", _INJECT_EXEC.replace("shares = 1", "shares = 1.5"), "key 'shares'"),
    ("inject_execution", _INJECT_EXEC.replace("price = 1.0", "price = nan"), "key 'price'"),
    ("inject_execution", _INJECT_EXEC.replace("order_id = 5\n", ""), "key 'order_id' is required"),
    ("inject_execution", _INJECT_EXEC + 'perm_id = "a"', "key 'perm_id' must be an integer"),
    ("inject_execution", _INJECT_EXEC + "exec_client_id = true", "key 'exec_client_id'"),
    ("inject_execution", _INJECT_EXEC + "exec_id = 1", "key 'exec_id' must be a string"),
    ("inject_execution", _INJECT_EXEC + "account = []", "key 'account' must be a string"),
    ("inject_order_status", _STATUS.replace('"Filled"', '"Done"'), "key 'status'"),
    ("inject_order_status", _STATUS.replace("filled = 1", "filled = -1"), "key 'filled'"),
    ("inject_order_status", _STATUS.replace("remaining = 0", "remaining = -2"), "key 'remaining'"),
    ("inject_order_status", _STATUS.replace("price = 1.0", 'price = "x"'), "key 'avg_fill_price'"),
    ("inject_order_status", _STATUS.replace("perm_id = 9\n", ""), "key 'perm_id' is required"),
    ("inject_order_status", _STATUS + 'parent_id = "p"', "key 'parent_id'"),
    ("inject_open_order", _OPEN.replace("lmt_price = 1.0\n", ""), "key 'lmt_price' is required"),
    ("inject_open_order", _OPEN + "aux_price = 0", "key 'aux_price' must be a number > 0"),
    ("inject_open_order", _OPEN + 'order_type = "ICEBERG"', "key 'order_type'"),
    ("inject_open_order", _OPEN.replace("quantity = 1", "quantity = -1"), "key 'quantity'"),
    ("inject_open_order", _OPEN + 'status = "Pending"', "key 'status' must be one of"),
    ("inject_open_order", _OPEN.replace('"SELL"', "1"), "key 'action'"),
    ("corrupt_fills", 'corruption = "price_sideways"', "key 'corruption' must be one of"),
    ("corrupt_fills", "count = 2", "key 'corruption' is required"),
    ("corrupt_fills", 'corruption = "price_zero"\ncount = 0', "key 'count' must be an integer"),
    ("delay", 'messages = "order_status"\nseconds = 1', "key 'messages' must be a non-empty list"),
    ("delay", "messages = []\nseconds = 1", "key 'messages' must be a non-empty list"),
    ("delay", 'messages = ["bogus"]\nseconds = 1', "key 'messages' names unknown message type"),
    ("delay", "messages = [1]\nseconds = 1", "key 'messages' must be a list of strings"),
    ("delay", _DELAY.replace("seconds = 1", "seconds = 0"), "key 'seconds' must be a number > 0"),
    ("delay", 'messages = ["order_status"]', "key 'seconds' is required"),
    ("withhold", _DELAY.replace("seconds = 1", "seconds = -1"), "key 'seconds' must be a number"),
    ("withhold", "seconds = 1", "key 'messages' is required"),
    ("freeze_feed", "seconds = 0", "key 'seconds' must be a number > 0"),
    ("freeze_feed", "", "key 'seconds' is required"),
    ("bad_frame", 'frame = "enormous"', "key 'frame' must be one of"),
    ("bad_frame", "seconds = -1", "key 'seconds' must be a number >= 0"),
]  # fmt: skip


@pytest.mark.parametrize(("kind", "lines", "message"), BAD)
def test_bad_values_name_the_fault_and_the_key(
    tmp_path: Path, kind: str, lines: str, message: str
) -> None:
    path = tmp_path / "s.toml"
    path.write_text(
        f'[[fault]]\nat = 1\nkind = "drop"\n\n[[fault]]\nat = 2\nkind = "{kind}"\n{lines}\n'
    )
    with pytest.raises(ScenarioError, match=re.escape(f"fault #2 ({kind}): {message}")):
        load_scenario(path)


def test_a_file_with_every_new_kind_loads(tmp_path: Path) -> None:
    path = tmp_path / "s.toml"
    path.write_text(
        '[[fault]]\non = "fill"\nkind = "correction"\nprice = 5001.25\n'
        f'[[fault]]\nat = 1\nkind = "foreign_order"\n{_FOREIGN}order_type = "lmt"\n'
        "lmt_price = 4990\n"
        f'[[fault]]\nat = 2\nkind = "inject_execution"\n{_INJECT_EXEC}'
        f'[[fault]]\nat = 3\nkind = "inject_order_status"\n{_STATUS}'
        f'[[fault]]\nat = 4\nkind = "inject_open_order"\n{_OPEN}'
        '[[fault]]\nat = 5\nkind = "corrupt_fills"\ncorruption = "shares_huge"\ncount = 2\n'
        f'[[fault]]\nat = 6\nkind = "delay"\n{_DELAY}'
        '[[fault]]\nat = 7\nkind = "withhold"\nmessages = ["Execution", "position"]\nseconds = 2\n'
        '[[fault]]\nat = 8\nkind = "freeze_feed"\nseconds = 2.5\n'
        '[[fault]]\nat = 9\nkind = "bad_frame"\nframe = "garbage"\n'
    )  # fmt: skip
    correction, foreign, execution, status, open_order, corrupt, delay, withhold, freeze, frame = (
        load_scenario(path).faults
    )
    assert (correction.on, correction.price, correction.exec_id) == ("fill", 5001.25, None)
    assert (foreign.client_id, foreign.order_type, foreign.lmt_price) == (7, "LMT", 4990.0)
    assert (execution.side, execution.shares, execution.perm_id) == ("BUY", 1, None)
    assert (status.status, status.filled, status.perm_id) == ("Filled", 1, 9)
    assert (open_order.action, open_order.order_type) == ("SELL", "")
    assert (corrupt.corruption, corrupt.count) == ("shares_huge", 2)
    assert (delay.messages, delay.seconds) == (("order_status",), 1.0)
    assert withhold.messages == ("Execution", "position")
    assert (freeze.seconds, frame.frame, frame.seconds) == (2.5, "garbage", 1.0)


# --- each kind fired by the scenario runner ---


async def test_scenario_fires_book_faults(make_gateway: GatewayFactory, connect: Connect) -> None:
    gw = await make_gateway()
    ib = await connect(gw, client_id=1)
    ghost = await connect(gw, client_id=7)
    contract = await front_month(ib)
    scenario = Scenario([])
    await scenario.fire(gw, Fault(kind="correction", at=0.0))  # nothing to correct: logged
    await scenario.fire(gw, Fault(kind="corrupt_fills", at=0.0, corruption="price_zero"))
    trade = ib.placeOrder(contract, MarketOrder("BUY", 1))
    await until(ib, lambda: trade.orderStatus.status == "Filled" and bool(trade.fills))
    assert trade.fills[0].execution.price == 0.0

    await scenario.fire(gw, Fault(kind="correction", at=0.0, price=5002.0))
    await until(ib, lambda: len(ib.fills()) == 2)
    assert sorted(f.execution.price for f in ib.fills()) == [0.0, 5002.0]
    foreign = Fault(
        kind="foreign_order", at=0.0, client_id=7, order_ref="ghost", action="SELL", quantity=1
    )
    await scenario.fire(gw, foreign)
    await until(ghost, lambda: [f.execution.orderRef for f in ghost.fills()] == ["ghost"])
    assert [p.quantity for p in gw.engine.positions()] == [0]
    assert scenario.fired == ["correction", "corrupt_fills", "correction", "foreign_order"]


async def test_scenario_fires_forged_messages(
    make_gateway: GatewayFactory, connect: Connect
) -> None:
    gw = await make_gateway()
    ib = await connect(gw, client_id=1)
    contract = await front_month(ib)
    resting = ib.placeOrder(contract, LimitOrder("BUY", 1, 4990.0))
    await until(ib, lambda: resting.orderStatus.status == "Submitted")
    scenario = Scenario([])
    faults = [
        Fault(kind="inject_execution", at=0.0, client_id=1, order_id=77, order_ref="forged",
              side="BUY", shares=2, price=4999.0),
        Fault(kind="inject_order_status", at=0.0, client_id=1, order_id=resting.order.orderId,
              status="Cancelled", filled=0, remaining=1, perm_id=resting.order.permId),
        Fault(kind="inject_open_order", at=0.0, client_id=1, order_id=900, order_ref="phantom",
              action="SELL", quantity=1, lmt_price=5020.0),
    ]  # fmt: skip
    for fault in faults:
        await scenario.fire(gw, fault)
    await until(ib, lambda: "phantom" in [t.order.orderRef for t in ib.openTrades()])
    assert [f.execution.orderRef for f in ib.fills()] == ["forged"]
    assert resting.orderStatus.status == "Cancelled"
    assert gw.engine.executions() == []
    assert [o.request.order_id for o in gw.engine.open_orders()] == [resting.order.orderId]


async def test_scenario_fires_wire_faults(make_gateway: GatewayFactory, connect: Connect) -> None:
    gw = await make_gateway()
    ib = await connect(gw)
    scenario = Scenario([])
    await scenario.fire(gw, Fault(kind="freeze_feed", at=0.0, seconds=60.0))
    assert gw.feed.frozen
    await scenario.fire(gw, Fault(kind="withhold", at=0.0, messages=("execution_end",), seconds=60))
    assert gw.out_filter is not None
    before = ib.client.connectionStats().numMsgRecv
    await scenario.fire(gw, Fault(kind="bad_frame", at=0.0, frame="garbage"))
    await ib.reqCurrentTimeAsync()
    assert ib.client.connectionStats().numMsgRecv == before + 2
    await scenario.fire(gw, Fault(kind="delay", at=0.0, messages=("current_time",), seconds=60))
    assert gw.out_filter is not None
    gw.release_messages()
    gw.thaw_feed()
    assert gw.out_filter is None
    assert not gw.feed.frozen
