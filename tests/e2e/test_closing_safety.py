"""Closing and the journal under faults (issue 13): a flatten the broker cannot confirm, a full
disk, a damaged WAL, a strategy failing on a bar the monitor closes.

The whole daemon against an in-process ibsim; the gateway's book is the judge.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from daemon.runtime.supervisor import EX_UNAVAILABLE
from daemon.trading.model import TradingState
from ibsim.gateway import Gateway
from ibsim.model import OrderType, Side
from tests.e2e.harness import Daemon, Market, gateway_orders, live, position

ANSWERS = ["order_status", "open_order", "execution", "commission_report", "position", "error"]


async def _long_one(d: Daemon, market: Market, gateway: Gateway, stop_ticks: int = 8) -> None:
    await d.ready(market)
    await d.send(market, d.strategy.intent(1, entry="MKT", stop_ticks=stop_ticks))
    await d.until(lambda: d.trader.position == 1 and len(live(gateway)) == 2)


def _closing_orders(gateway: Gateway) -> list[object]:
    return [
        o
        for o in gateway_orders(gateway)
        if o.request.order_type is OrderType.MKT and o.request.action is Side.SELL
    ]


async def test_a_flatten_on_sigterm_that_the_broker_cannot_confirm_sends_nothing_and_says_so(
    gateway: Gateway, daemon: Callable[..., Daemon]
) -> None:
    market = Market(gateway)
    d = daemon(
        gateway,
        trading={"on_shutdown": "flatten"},
        execution={"confirm_timeout_s": 0.5},
    )
    await _long_one(d, market, gateway, stop_ticks=4)
    gateway.delay_messages(ANSWERS, 15.0)  # the gateway answers, but 15 s late
    market.quote(4998.0, 4998.25)
    market.trade(4998.0, side=Side.SELL)  # through the stop: it fills at the broker
    assert position(gateway) == 0
    d.sup.request_stop("SIGTERM")  # what the signal handler does
    assert await d.wait_exit() == EX_UNAVAILABLE
    gateway.release_messages()
    assert _closing_orders(gateway) == []  # no SELL 1 MKT on top of the stop's fill
    assert position(gateway) == 0
    last = d.trader.status()["last_flatten"]
    assert last["ok"] is False
    assert "cancels not confirmed" in last["message"]


async def test_a_flatten_closes_this_instances_position_never_more_than_the_broker_holds(
    gateway: Gateway, daemon: Callable[..., Daemon]
) -> None:
    from ib_async import IB, MarketOrder

    market = Market(gateway)
    d = daemon(gateway, trading={"on_shutdown": "flatten"})
    await _long_one(d, market, gateway)
    other = IB()  # a second contract bought by hand on the same account: not ours to close
    await other.connectAsync("127.0.0.1", gateway.port, clientId=99, timeout=10)
    try:
        assert d.sup.market.contract is not None
        other.placeOrder(d.sup.market.contract, MarketOrder("BUY", 1))
        await other.reqCurrentTimeAsync()
    finally:
        other.disconnect()
    assert position(gateway) == 2
    d.sup.request_stop("SIGTERM")
    assert await d.wait_exit() == 0
    [closing] = _closing_orders(gateway)
    assert closing.request.total_quantity == 1  # ours, confirmed by the broker's +2 first
    assert position(gateway) == 1  # the manual contract is still there
    last = d.trader.status()["last_flatten"]
    assert last["ok"] is True
    assert "the account's other +1 is not this instance's" in last["message"]


async def test_a_flatten_sends_nothing_when_the_broker_holds_less_than_it_thinks(
    gateway: Gateway, daemon: Callable[..., Daemon]
) -> None:
    market = Market(gateway)
    d = daemon(gateway, execution={"confirm_timeout_s": 0.5})
    await _long_one(d, market, gateway, stop_ticks=4)
    gateway.delay_messages(["execution", "order_status", "open_order"], 15.0)
    market.quote(4998.0, 4998.25)
    market.trade(4998.0, side=Side.SELL)  # the stop fills at the broker; we hear nothing yet
    assert position(gateway) == 0
    reply = await d.trader.command("flatten", {"reason": "test"})
    gateway.release_messages()
    assert reply["ok"] is False
    assert _closing_orders(gateway) == []  # never a SELL on top of the stop's fill
    assert position(gateway) == 0


@contextlib.contextmanager
def small_filesystem(where: Path, megabytes: int) -> Iterator[Path]:
    """A real filesystem of ``megabytes`` (tmpfs; root only), unmounted afterwards."""
    where.mkdir(parents=True)
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={megabytes}m", "tmpfs", str(where)],
        capture_output=True,
        check=False,
    )
    if mounted.returncode != 0:
        pytest.fail(f"cannot mount a tmpfs (the suite runs as root): {mounted.stderr!r}")
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], check=False)


def fill_up(fs: Path) -> Path:
    """Write until the filesystem says it is full; the file that holds the space."""
    filler = fs / "filler"
    with filler.open("wb") as f, contextlib.suppress(OSError):
        while True:
            f.write(b"\0" * 65536)
            f.flush()
    return filler


async def test_a_full_disk_halts_trading_sends_nothing_and_the_daemon_lives(
    gateway: Gateway, daemon: Callable[..., Daemon], tmp_path: Path
) -> None:
    with small_filesystem(tmp_path / "fs", 8) as fs:
        market = Market(gateway)
        d = daemon(
            gateway,
            paths={"state_dir": str(fs / "state")},
            recording={"enabled": False},
        )
        await d.ready(market)
        filler = fill_up(fs)
        await d.send(market, d.strategy.intent(1, entry="MKT"))
        await d.prodding(lambda: d.trader.risk.state is TradingState.HALTED)
        assert "journal cannot be written" in d.trader.risk.reason
        assert "full" in (d.trader.status()["journal_error"] or "")
        assert gateway_orders(gateway) == []  # never sent without its journal row
        assert not d.task.done()
        filler.unlink()  # space again: status.json says why it halted
        await d.prodding(lambda: '"journal_error": "' in (fs / "state" / "status.json").read_text())
        d.sup.request_stop("test_end")
        assert await d.wait_exit() == 0


async def test_the_shutdown_flatten_runs_when_the_journal_cannot_be_written(
    gateway: Gateway, daemon: Callable[..., Daemon], tmp_path: Path
) -> None:
    with small_filesystem(tmp_path / "fs", 8) as fs:
        market = Market(gateway)
        d = daemon(
            gateway,
            paths={"state_dir": str(fs / "state")},
            recording={"enabled": False},
            trading={"on_shutdown": "flatten"},
        )
        await _long_one(d, market, gateway)
        filler = fill_up(fs)
        d.sup.request_stop("SIGTERM")
        assert await d.wait_exit() == 0  # flat, confirmed by the broker
        assert position(gateway) == 0
        assert not live(gateway)
        [closing] = _closing_orders(gateway)
        assert closing.request.order_ref.endswith("-F")
        filler.unlink()


async def test_a_truncated_wal_is_noticed_while_running(
    gateway: Gateway, daemon: Callable[..., Daemon]
) -> None:
    market = Market(gateway)
    d = daemon(gateway, trading={"journal_check_s": 0.1})
    await _long_one(d, market, gateway)
    wal = d.trader.journal.path.with_name("journal.sqlite-wal")
    assert wal.stat().st_size > 0
    os.truncate(wal, 0)  # what a full disk or a careless copy leaves behind
    await d.prodding(lambda: d.trader.risk.state is TradingState.HALTED)
    assert "journal" in d.trader.risk.reason
    assert d.trader.status()["journal_error"]
    assert len(live(gateway)) == 2  # the bracket keeps protecting the position
    assert not d.task.done()


async def test_a_strategy_failing_on_a_bar_the_monitor_closes_halts_and_the_daemon_lives(
    gateway: Gateway, daemon: Callable[..., Daemon]
) -> None:
    market = Market(gateway)
    d = daemon(gateway, flow={"bar": "1s"})
    await _long_one(d, market, gateway)
    d.strategy.error = RuntimeError("bad bar")
    # No more trades: the next bar is closed by the monitor on the market clock.
    await d.prodding(lambda: d.trader.risk.state is TradingState.HALTED)
    assert d.trader.status()["strategy_error"] == "on_bar: RuntimeError: bad bar"
    assert d.strategy.calls == 1
    assert not d.task.done()
    assert position(gateway) == 1
    assert len(live(gateway)) == 2


async def test_two_exit_intents_in_one_read_send_one_exit_order(
    gateway: Gateway, daemon: Callable[..., Daemon]
) -> None:
    market = Market(gateway)
    d = daemon(gateway)
    await _long_one(d, market, gateway)
    [target] = [o for o in live(gateway) if o.request.order_type is OrderType.LMT]
    gateway.dispatch(gateway.engine.cancel(target.request.client_id, target.request.order_id))
    await d.until(lambda: len(live(gateway)) == 1)  # the stop alone protects the position
    d.strategy.queue.extend([d.strategy.intent(0), d.strategy.intent(0)])
    market.trade()
    market.trade()  # two trades in one read: two intents before any task has run
    await d.until(lambda: d.trader.position == 0)
    exits = [o for o in gateway_orders(gateway) if o.request.order_ref.endswith("-X")]
    assert [o.request.total_quantity for o in exits] == [1]
    assert position(gateway) == 0


async def test_a_late_positions_answer_never_sizes_a_later_close(
    gateway: Gateway, daemon: Callable[..., Daemon]
) -> None:
    market = Market(gateway)
    d = daemon(gateway, execution={"confirm_timeout_s": 0.3})
    await _long_one(d, market, gateway)
    gateway.delay_messages(["position", "position_end"], 2.0)
    first = await d.trader.command("flatten", {"reason": "first"})
    assert first["ok"] is False
    assert "could not be re-read" in first["message"]
    again = await d.trader.command("flatten", {"reason": "while the first is unanswered"})
    assert again["ok"] is False  # not sized from the first request's late answer
    assert _closing_orders(gateway) == []
    gateway.release_messages()  # the late answer completes the first request only
    await d.prodding(lambda: not d.trader.positions.unanswered)
    last = await d.trader.command("flatten", {"reason": "answered now"})
    assert last["ok"] is True, last
    [closing] = _closing_orders(gateway)
    assert closing.request.total_quantity == 1
    assert position(gateway) == 0
