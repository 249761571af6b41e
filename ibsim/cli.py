"""The `ibsim` command: run a simulated IB Gateway on loopback."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import json
import logging
import math
import signal
import sys
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from ibsim import __version__, calendar, products
from ibsim.curve import DEFAULT_ACTIVITY, DEFAULT_CARRY
from ibsim.gateway import Gateway, GatewayConfig
from ibsim.historical import parse_ib_time
from ibsim.journal import Journal
from ibsim.market import (
    MarketSource,
    RecordedSource,
    ReplayFileError,
    ReplaySource,
    SyntheticSource,
    is_recording,
    load_trades_csv,
)
from ibsim.scenario import Scenario, ScenarioError, load_scenario

CENTRAL = ZoneInfo("America/Chicago")
EX_USAGE = 2

log = logging.getLogger("ibsim")


def default_start(now: datetime | None = None) -> float:
    """The most recent weekday 08:30 Central at which the market is open."""
    now = now or datetime.now(CENTRAL)
    day = now.astimezone(CENTRAL).date()
    for back in range(14):
        candidate = datetime.combine(day - timedelta(days=back), datetime.min.time(), CENTRAL)
        candidate = candidate.replace(hour=8, minute=30)
        if candidate <= now and calendar.is_open(candidate.timestamp()):
            return candidate.timestamp()
    raise RuntimeError("no open market found in the last two weeks")  # pragma: no cover


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="ibsim", description=__doc__)
    p.add_argument("--version", action="version", version=f"ibsim {__version__}")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=4002, help="port; 0 picks one and prints it")
    p.add_argument(
        "--symbol",
        type=str.upper,
        choices=tuple(products.PRODUCTS),
        default="ES",
        help="the product the market source drives (its front and back months; default ES)",
    )
    p.add_argument("--source", choices=("synthetic", "replay"), default="synthetic")
    p.add_argument(
        "--ticks",
        type=Path,
        help="replay CSV (time_ct,price,size), .csv or .csv.gz, or an orderflowd recording",
    )
    p.add_argument(
        "--sessions",
        type=int,
        help="replay the file's first session this many times, on consecutive CME sessions",
    )
    p.add_argument(
        "--speed", type=float, default=1.0, help="data seconds per wall second (0: unpaced)"
    )
    p.add_argument("--seed", type=int, default=1, help="seed for synthetic data and replay sides")
    p.add_argument("--start", help="synthetic start, 'YYYYMMDD HH:MM:SS [zone]' (Central)")
    p.add_argument("--scenario", type=Path, help="fault scenario file (TOML)")
    p.add_argument("--journal", type=Path, help="append every message as JSON lines here")
    p.add_argument("--state-out", type=Path, help="write orders/executions/positions on exit")
    p.add_argument("--exit-after", type=float, help="stop after this many wall seconds")
    p.add_argument("--server-version", type=int, help="pin the server version (157..178)")
    p.add_argument("--account", action="append", help="managed account (repeatable)")
    p.add_argument("--client-id-release-delay", type=float, default=0.5)
    p.add_argument("--market-data", choices=("realtime", "delayed", "none"), default="realtime")
    p.add_argument("--read-only", action="store_true", help="answer every order with 321")
    p.add_argument("--max-tick-by-tick", type=int, default=5)
    p.add_argument("--max-msg-rate", type=int, default=50)
    p.add_argument(
        "--calendar-carry",
        type=float,
        default=DEFAULT_CARRY,
        help="annual cost of carry setting the back months' spread to the front (curve.py)",
    )
    p.add_argument(
        "--back-month-activity",
        type=float,
        default=DEFAULT_ACTIVITY,
        help="share of the front's prints the next expiry trades (squared for the one after)",
    )
    p.add_argument("-v", "--verbose", action="store_true")
    return p


def make_source(args: argparse.Namespace) -> MarketSource:
    """The market of `args.symbol`: a replay file taken as its prices, or synthetic at its
    price level and tick."""
    product = products.product(args.symbol)
    if args.source == "replay":
        if args.ticks is None:
            raise ValueError("--source replay needs --ticks FILE")
        if args.sessions is not None and args.sessions < 1:
            raise ValueError(f"--sessions must be at least 1, got {args.sessions}")
        if is_recording(args.ticks):  # an orderflowd recording: its own trades and quotes
            if args.sessions is not None:
                raise ValueError("--sessions works with trades CSV only, not with a recording")
            return RecordedSource.from_file(args.ticks, product)
        trades = load_trades_csv(args.ticks, product)
        return ReplaySource(
            trades, seed=args.seed, sessions=args.sessions, tick_size=product.tick_size
        )
    if args.sessions is not None:
        raise ValueError("--sessions needs --source replay")
    start = parse_ib_time(args.start) if args.start else default_start()
    return SyntheticSource(
        seed=args.seed,
        start_time=start,
        start_price=product.price_level,
        tick_size=product.tick_size,
    )


async def serve(args: argparse.Namespace, source: MarketSource, scenario: Scenario | None) -> int:
    # The tape keeps every served event alive, so default GC thresholds trigger a collection
    # every few hundred events; in the gateway process that cost ~0.4 µs per event.
    gc.set_threshold(100_000, 20, 100)
    config = GatewayConfig(
        host=args.host,
        port=args.port,
        symbol=args.symbol,
        accounts=args.account or ["DU1234567"],
        server_version=args.server_version,
        max_msg_rate=args.max_msg_rate,
        max_tick_by_tick=args.max_tick_by_tick,
        market_data=args.market_data,
        read_only=args.read_only,
        client_id_release_delay=args.client_id_release_delay,
        calendar_carry=args.calendar_carry,
        back_month_activity=args.back_month_activity,
    )
    journal = Journal(args.journal) if args.journal else None
    speed = math.inf if args.speed <= 0 else args.speed
    gateway = Gateway(config, source, speed=speed, journal=journal)
    port = await gateway.start()
    print(port, flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    runner = None
    if scenario is not None:
        runner = asyncio.create_task(scenario.run(gateway))
    try:
        if args.exit_after is not None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), args.exit_after)
        else:
            await stop.wait()
    finally:
        if runner is not None:
            runner.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await runner
        await gateway.stop()
        if args.state_out:
            args.state_out.write_text(json.dumps(gateway.state(), indent=2, sort_keys=True))
    return 0


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s %(message)s",
        stream=sys.stderr,
    )
    try:
        source = make_source(args)
        scenario = load_scenario(args.scenario) if args.scenario else None
    except (ReplayFileError, ScenarioError, ValueError, OSError) as exc:
        print(f"ibsim: error: {exc}", file=sys.stderr)
        return EX_USAGE
    try:
        import uvloop

        return uvloop.run(serve(args, source, scenario))
    except ImportError:  # pragma: no cover - uvloop is a dependency on Linux
        return asyncio.run(serve(args, source, scenario))
