"""`make demo`: the simulated gateway replaying real ES trades, and the daemon against it.

Starts `ibsim` on a free loopback port (replaying data/ at 60x, with a gateway restart and an
1100/1101 outage from config/demo-scenario.toml), runs `orderflowd debug` against it for about a
minute, then prints what the daemon reported. Needs nothing outside this repository.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "data" / "es_trades_2013-09-01_02.csv.gz"
SCENARIO = ROOT / "config" / "demo-scenario.toml"
STATE = ROOT / "state" / "demo"
DAEMON_SECONDS = 60
SPEED = 60


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
        daemon = subprocess.run(
            [
                str(bin_dir / "orderflowd"),
                "debug",
                "--port",
                port,
                "--client-id",
                "1",
                "--state-dir",
                str(STATE),
                "--exit-after",
                str(DAEMON_SECONDS),
            ],
            check=False,
        )
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
    print(f"demo: status {STATE / 'status.json'}, gateway log {STATE / 'ibsim.log'}")
    return daemon.returncode


if __name__ == "__main__":
    sys.exit(main())
