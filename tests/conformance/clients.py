"""The clients, the runs (client x server version), and running one: an ibsim process on
127.0.0.1 port 0, then the client's driver in its own interpreter, fed the flows' spec."""

from __future__ import annotations

import contextlib
import json
import os
import select
import shutil
import signal
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.conformance.flows import SEED, SPEED, START_TEXT, spec

ROOT = Path(__file__).parents[2]
HERE = Path(__file__).parent
DRIVERS = HERE / "drivers"
NODE_DIR = HERE / "node"
INSYNC_PYTHON = ROOT / ".venv-insync" / "bin" / "python"
STARTUP_TIMEOUT = 20.0  # ibsim printing its port
DRIVER_TIMEOUT = 150.0  # one driver running every flow
SETUP = "`make conformance-clients` installs it"


@dataclass(frozen=True)
class Client:
    name: str
    command: tuple[str, ...]

    def missing(self) -> str | None:
        """Why this client cannot run here (None: it can)."""
        if self.name == "ib_insync" and not INSYNC_PYTHON.exists():
            return f"ib_insync needs its own venv, .venv-insync, which is missing ({SETUP})"
        if self.name == "stoqey":
            if shutil.which("node") is None:
                return "node is not installed: the @stoqey/ib runs need Node.js 18 or later"
            if not (NODE_DIR / "node_modules" / "@stoqey" / "ib").is_dir():
                return f"@stoqey/ib is not installed in {NODE_DIR.relative_to(ROOT)} ({SETUP})"
        return None


CLIENTS = {
    c.name: c
    for c in (
        Client(
            "ib_async", (sys.executable, str(DRIVERS / "insync_family.py"), "--lib", "ib_async")
        ),
        Client("ibapi", (sys.executable, str(DRIVERS / "ibapi_driver.py"))),
        Client(
            "ib_insync",
            (str(INSYNC_PYTHON), str(DRIVERS / "insync_family.py"), "--lib", "ib_insync"),
        ),
        Client("stoqey", ("node", str(NODE_DIR / "stoqey_driver.js"))),
    )
}


@dataclass(frozen=True)
class Run:
    """One client against one ibsim at one server version (pinned, or negotiated to it)."""

    client: str
    server_version: int
    pinned: bool

    @property
    def id(self) -> str:
        return f"{self.client}-v{self.server_version}"


RUNS = [
    Run("ib_async", 178, pinned=False),  # ib_async 2.1 asks for 157..178
    Run("ib_async", 176, pinned=True),
    Run("ib_async", 157, pinned=True),
    Run("ibapi", 157, pinned=False),  # ibapi 9.81 asks for 100..157
    Run("ib_insync", 157, pinned=True),
    Run("ib_insync", 166, pinned=True),
    Run("ib_insync", 176, pinned=False),  # ib_insync 0.9.86 asks for 157..176
    Run("stoqey", 178, pinned=False),  # @stoqey/ib 1.6.10 asks for 100..193
]


@dataclass
class Result:
    """What one run's driver printed, by flow, and what to show when a flow fails."""

    lines: dict[str, dict[str, Any]] = field(default_factory=dict)
    problem: str | None = None  # the driver died, timed out or printed garbage
    stderr: str = ""
    ibsim_log: str = ""

    def diagnostics(self) -> str:
        parts = [f"driver: {self.problem}"] if self.problem else []
        parts.append(f"driver stderr (tail):\n{self.stderr[-3000:]}")
        parts.append(f"ibsim log (tail):\n{self.ibsim_log[-3000:]}")
        return "\n".join(parts)


def _read_port(proc: subprocess.Popen[bytes]) -> int:
    assert proc.stdout is not None
    ready, _, _ = select.select([proc.stdout], [], [], STARTUP_TIMEOUT)
    line = proc.stdout.readline() if ready else b""
    if not line.strip().isdigit():
        raise RuntimeError(f"ibsim printed no port within {STARTUP_TIMEOUT}s: {line!r}")
    return int(line)


def ibsim_command(run: Run) -> list[str]:
    cmd = [sys.executable, "-m", "ibsim", "--host", "127.0.0.1", "--port", "0"]
    cmd += ["--source", "synthetic", "--seed", str(SEED), "--start", START_TEXT]
    cmd += ["--speed", str(SPEED), "--client-id-release-delay", "0"]
    if run.pinned:
        cmd += ["--server-version", str(run.server_version)]
    return cmd


def execute(run: Run, workdir: Path) -> Result:
    """Start ibsim, run the client's driver against it to the end, stop ibsim."""
    client = CLIENTS[run.client]
    result = Result()
    log_path = workdir / f"ibsim-{run.id}.log"
    with log_path.open("wb") as log:
        ibsim = subprocess.Popen(ibsim_command(run), cwd=ROOT, stdout=subprocess.PIPE, stderr=log)
        try:
            port = _read_port(ibsim)
            try:
                done = subprocess.run(
                    client.command,
                    cwd=ROOT,
                    input=json.dumps(spec("127.0.0.1", port)).encode(),
                    capture_output=True,
                    timeout=DRIVER_TIMEOUT,
                    env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1"},
                    check=False,
                )
                out, err, code = done.stdout, done.stderr, done.returncode
            except subprocess.TimeoutExpired as exc:
                out, err, code = exc.stdout or b"", exc.stderr or b"", None
                result.problem = f"timed out after {DRIVER_TIMEOUT}s"
            result.stderr = err.decode(errors="replace")
            for raw in out.decode(errors="replace").splitlines():
                try:
                    line = json.loads(raw)
                    result.lines[line["flow"]] = line
                except (ValueError, KeyError, TypeError):
                    result.problem = f"a line that is not a flow's JSON: {raw[:300]!r}"
            if code not in (0, None) and result.problem is None:
                result.problem = f"exited with {code}"
        finally:
            ibsim.send_signal(signal.SIGTERM)
            try:
                ibsim.wait(timeout=10)
            except subprocess.TimeoutExpired:
                ibsim.kill()
                ibsim.wait(timeout=10)
            with contextlib.suppress(OSError):
                if ibsim.stdout is not None:
                    ibsim.stdout.close()
    result.ibsim_log = log_path.read_text(errors="replace")
    return result
