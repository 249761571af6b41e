"""A roll survives `kill -9` midway (issue 15, part 4): real `orderflowd run` processes.

The first life holds ESZ6 long 1 with its bracket when the front month rolls to ESH7 with
`instrument.on_roll = "roll"`; it is killed with SIGKILL the moment the gateway receives its
closing order for ESZ6. The second life finds the operation open in the journal and finishes
it: nothing closed twice, ESH7 opened once, with its bracket.
"""

from __future__ import annotations

import signal
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from daemon.runtime.supervisor import JOURNAL_FILE
from daemon.trading.journal import Journal
from ibsim.gateway import Gateway
from ibsim.model import Side
from tests.e2e.harness import CLIENT, Market
from tests.e2e.test_local_user import Child, running, write_config
from tests.e2e.test_roll_e2e import BEFORE_ROLL, ROLL, con_ids, held, roll_gateway, working

pytestmark = pytest.mark.timeout(150)  # two daemon processes, each importing the stack

ON_ROLL = '[instrument]\non_roll = "roll"\n'


@pytest.fixture
async def gateway() -> AsyncIterator[Gateway]:
    gw = roll_gateway()
    await gw.start()
    yield gw
    await gw.stop()


def closing_orders(gw: Gateway, con_id: int) -> list[Any]:
    """Our SELL MKT orders in ``con_id`` the gateway received (a roll's close)."""
    orders = (gw.engine.order(CLIENT, oid) for oid in range(1, gw.engine.next_order_id(CLIENT)))
    return [
        o
        for o in orders
        if o is not None
        and o.request.con_id == con_id
        and o.request.action is Side.SELL
        and o.request.order_type.value == "MKT"
    ]


async def trade_until(child: Child, market: Market, what: str, done: Any) -> None:
    """Trades a tenth of a second apart (market time) until ``done()``, polled between."""

    def step() -> bool:
        market.quote(market.bid)
        market.trade(market.bid, side=Side.SELL)
        return bool(done())

    await child.until(step, what)


async def test_a_roll_killed_after_its_close_was_sent_is_finished_once_by_the_next_life(
    gateway: Gateway, tmp_path: Path
) -> None:
    market = Market(gateway, start=BEFORE_ROLL)
    old, new = con_ids(gateway)
    config = write_config(
        tmp_path, gateway.port, trading=True, extra='[instrument]\non_roll = "roll"\n'
    )
    log = tmp_path / "daemon.log"
    async with running(config, log) as first:
        await trade_until(first, market, "long 1 in ESZ6", lambda: held(gateway, old) == 1)
        await first.until(lambda: len(working(gateway, old)) == 2, "ESZ6's bracket")

        def kill_at_the_close(event: str) -> None:
            if event == "order" and closing_orders(gateway, old):
                first.proc.send_signal(signal.SIGKILL)  # at once: before it hears the fill

        gateway.observers.append(kill_at_the_close)
        market.t = ROLL + 1  # the next session: the front month is ESH7 now
        await trade_until(first, market, "the close sent", lambda: closing_orders(gateway, old))
        assert await first.proc.wait() == -signal.SIGKILL
        gateway.observers.remove(kill_at_the_close)
    with Journal(tmp_path / "state" / JOURNAL_FILE) as journal:
        left = [e.kind for e in journal.events() if e.kind.startswith("roll_")]
    assert left[0] == "roll_started"
    assert "roll_done" not in left  # killed midway

    async with running(config, log) as second:
        await trade_until(second, market, "ESH7 long 1", lambda: held(gateway, new) == 1)
        await second.until(lambda: len(working(gateway, new)) == 2, "ESH7's bracket")
        await second.until(lambda: second.events("roll_done"), "the roll done")
        assert await second.terminate() == 0
    assert held(gateway, old) == 0
    assert len(closing_orders(gateway, old)) == 1  # closed once, by the first life
    assert working(gateway, old) == []
    entries = [o for o in gateway.engine.open_orders(CLIENT) if o.request.con_id == new]
    assert len(entries) == 2  # ESH7's stop and target, working
    with Journal(tmp_path / "state" / JOURNAL_FILE) as journal:
        roll = [(e.kind, e.data["op"]) for e in journal.events() if e.kind.startswith("roll_")]
    [(_, op)] = [r for r in roll if r[0] == "roll_started"]
    assert [kind for kind, of in roll if of == op][-1] == "roll_done"
    assert [kind for kind, _ in roll].count("roll_opening") == 1
