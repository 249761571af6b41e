"""`make demo`: the simulated gateway replaying real ES trades, and the daemon against it.

Starts `ibsim` on a free loopback port (replaying data/ at 60x, with a gateway restart and an
1100/1101 outage from config/demo-scenario.toml), runs `orderflowd run --config
config/demo.toml` against it for about a minute (the default strategy trading paper, one
contract) while showing its status and events live, halts it and flattens it through the
operator channel near the end, then prints what the daemon reported and what its journal holds.
Needs nothing outside this repository.
"""

from __future__ import annotations

import json
import shutil
import sqlite3
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

from demo_view import watch

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "data" / "es_trades_2013-09-01_02.csv.gz"
SCENARIO = ROOT / "config" / "demo-scenario.toml"
CONFIG = ROOT / "config" / "demo.toml"
STATE = ROOT / "state" / "demo"
DAEMON_SECONDS = 60
SPEED = 60
HALT_AT = 48  # wall seconds after the daemon starts: `orderflowd halt`, then `flatten`


def main() -> int:
    bin_dir = Path(sys.executable).parent
    if STATE.exists():
        shutil.rmtree(STATE)
    STATE.mkdir(parents=True)
    gateway_log = (STATE / "ibsim.log").open("w")
    gateway = subprocess.Popen(
        [
            str(bin_dir / "ibsim"),
            "--port",
            "0",
            "--source",
            "replay",
            "--ticks",
            str(DATA),
            "--speed",
            str(SPEED),
            "--scenario",
            str(SCENARIO),
            "--exit-after",
            str(DAEMON_SECONDS + 15),
            "--state-out",
            str(STATE / "ibsim-state.json"),
        ],
        stdout=subprocess.PIPE,
        stderr=gateway_log,
        text=True,
    )
    try:
        assert gateway.stdout is not None
        port = gateway.stdout.readline().strip()
        if not port.isdigit():
            print("demo: ibsim did not start; see", STATE / "ibsim.log", file=sys.stderr)
            return 1
        print(
            f"demo: ibsim replaying {DATA.name} at {SPEED}x on 127.0.0.1:{port} "
            f"(gateway restart at 25 s, 1100/1101 outage at 40 s)\n",
            flush=True,
        )
        daemon_log = (STATE / "daemon.log").open("w")
        daemon = subprocess.Popen(
            [
                str(bin_dir / "orderflowd"),
                "run",
                "--config",
                str(CONFIG),
                "--port",
                port,
                "--client-id",
                "1",
                "--state-dir",
                str(STATE),
                "--log-format",
                "json",
                "--exit-after",
                str(DAEMON_SECONDS),
            ],
            stdout=daemon_log,
            stderr=subprocess.STDOUT,
        )
        print("demo: the daemon's status and events as they happen (log: daemon.log)\n")
        threading.Thread(target=operator, args=(bin_dir, daemon), daemon=True).start()
        running = lambda: daemon.poll() is None  # noqa: E731
        watch(STATE, STATE / "daemon.log", running, sys.stdout)
        daemon.wait(timeout=30)
        daemon_log.close()
    finally:
        gateway.terminate()
        gateway.wait(timeout=15)
        gateway_log.close()
    status = json.loads((STATE / "status.json").read_text())
    print(
        "\ndemo: the daemon ran "
        f"{status['uptime_s']:.0f} s on {status['contract']} ({status['data_mode']}): "
        f"{status['trades_total']} trades, {status['ticks_total']} ticks, "
        f"{status['reconnect_count']} reconnect(s), "
        f"{status['resubscribe_count']} subscription(s) made; exit code {daemon.returncode}"
    )
    print_trading(status)
    report = session_report(bin_dir)
    print(
        f"demo: status {STATE / 'status.json'}, daemon log {STATE / 'daemon.log'}, "
        f"gateway log {STATE / 'ibsim.log'}"
    )
    if report is None:
        return 1
    print(f"demo: the session report: {report}")
    return daemon.returncode or 0


def session_report(bin_dir: Path) -> str | None:
    """`orderflowd report` from what the daemon recorded and journaled: the HTML page's path."""
    done = subprocess.run(
        [
            str(bin_dir / "orderflowd"),
            "report",
            "--config",
            str(CONFIG),
            "--state-dir",
            str(STATE),
            "--out",
            str(STATE / "report"),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    paths = done.stdout.split()
    if done.returncode != 0 or not paths:
        print(f"demo: orderflowd report failed:\n{done.stderr}", file=sys.stderr)
        return None
    return next((p for p in paths if p.endswith(".html")), paths[-1])


def operator(bin_dir: Path, daemon: subprocess.Popen[bytes]) -> None:
    """What a trader would type near the end: halt the daemon, then flatten it."""
    try:
        daemon.wait(timeout=HALT_AT)
        return  # ended early: nothing to halt
    except subprocess.TimeoutExpired:
        pass
    common = ["--state-dir", str(STATE), "--config", str(CONFIG), "--reason", "demo"]
    for command in (["halt"], ["flatten", "--yes"]):
        print(f"  demo: $ orderflowd {' '.join(command)} --reason demo", flush=True)
        subprocess.run([str(bin_dir / "orderflowd"), *command, *common], check=False)


def print_trading(status: dict[str, object]) -> None:
    """The trading part of the story, from status.json and the journal."""
    trading = status.get("trading")
    if not isinstance(trading, dict) or not trading.get("enabled"):
        return
    with sqlite3.connect(STATE / "journal.sqlite") as db:
        intents = db.execute("SELECT COUNT(*) FROM intents").fetchone()[0]
        fills = db.execute("SELECT COUNT(*), COALESCE(SUM(shares), 0) FROM executions").fetchone()
        roles = dict(
            db.execute(
                "SELECT role, COUNT(*) FROM orders WHERE status = 'Filled' GROUP BY role"
            ).fetchall()
        )
        halts = db.execute("SELECT COUNT(*) FROM events WHERE kind = 'halt'").fetchone()[0]
        position = db.execute(
            "SELECT COALESCE(SUM(CASE side WHEN 'BUY' THEN shares ELSE -shares END), 0) "
            "FROM executions"
        ).fetchone()[0]
    print(
        f"demo: trading {trading.get('state')}: {intents} intent(s), {fills[0]} fill(s) of "
        f"{fills[1]} contract(s); filled entries {roles.get('entry', 0)}, targets "
        f"{roles.get('target', 0)}, stops {roles.get('stop', 0)}, flatten "
        f"{roles.get('flatten', 0)}; {halts} halt(s); position at the end {position:+d}, "
        f"realized {trading.get('realized_pnl')}, commissions {trading.get('commissions')}, "
        f"net {_net(trading, position)} USD"
    )


def _net(trading: dict[str, Any], position: int) -> object:
    """The day's net; the stopped daemon shows none (its position is no longer confirmed), but
    flat at the end it is realized minus commissions."""
    if trading.get("net_pnl") is not None or position:
        return trading.get("net_pnl")
    realized, commissions = trading.get("realized_pnl"), trading.get("commissions")
    if realized is None or commissions is None:
        return None
    return round(realized - commissions, 2)


if __name__ == "__main__":
    sys.exit(main())
