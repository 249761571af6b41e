"""Every benchmark in one run, then one table of the headline figures: `python -m bench`.

    python -m bench [--quick] [--only NAME[,NAME...]] [--out PATH]

Each benchmark runs in its own process with `--json` (its own progress lines go to stderr as
they come), one after the other so that they never compete for the machine. The figures they
print are collected into a Markdown table (figure | value | baseline / ratio | command), with
the machine it ran on, and written to `bench/results/latest.md` (`--quick`:
`bench/results/quick.md`) next to every figure as JSON (`latest.json` / `quick.json`). A
benchmark that fails gets a row saying so; the others still run. Figures are printed, never
asserted; compare a figure with the baseline of the same run, not with another run.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.metadata
import json
import os
import platform
import shlex
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
DATA_FILE = "es_trades_2013-09-01_02.csv.gz"
DATA_DIRS = (ROOT / "data", ROOT.parent / "shared" / "data")
BENCH_TIMEOUT_S = 600.0


@dataclass(frozen=True, slots=True)
class Bench:
    """One benchmark module and its arguments for a full and a quick run."""

    name: str
    full: tuple[str, ...] = ()
    quick: tuple[str, ...] = ()
    needs_data: bool = False


BENCHES = (
    Bench("ibsim_throughput", quick=("--seconds", "2", "--warmup", "0.5")),
    Bench("e2e_throughput", quick=("--pairs", "1", "--seconds", "5", "--warmup", "2")),
    Bench("daemon_reconnect", quick=("--cycles", "20")),
    Bench("flow_accuracy", needs_data=True),
    Bench("flow_extractor", quick=("--passes", "2"), needs_data=True),
    Bench("tick_to_order", quick=("--cycles", "50")),
)


@dataclass(slots=True)
class Outcome:
    """What one benchmark printed (its JSON figures) or why it has none."""

    bench: str
    command: str  # as a person would type it (without --json)
    seconds: float
    figures: dict[str, Any] = field(default_factory=dict)
    error: str | None = None


def data_file() -> Path | None:
    for directory in DATA_DIRS:
        if (directory / DATA_FILE).exists():
            return directory / DATA_FILE
    return None


def arguments(bench: Bench, quick: bool, data: Path | None) -> list[str]:
    args = list(bench.quick if quick else bench.full)
    if bench.needs_data and data is not None:
        args += ["--data", str(data.relative_to(ROOT) if data.is_relative_to(ROOT) else data)]
    return args


def run_bench(bench: Bench, args: Sequence[str]) -> Outcome:
    """`python -m bench.<name> <args> --json`; its stderr goes straight to ours."""
    command = shlex.join(["python", "-m", f"bench.{bench.name}", *args])
    print(f"\n== {command}", file=sys.stderr, flush=True)
    started = time.perf_counter()
    try:
        done = subprocess.run(
            [sys.executable, "-m", f"bench.{bench.name}", *args, "--json"],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            text=True,
            timeout=BENCH_TIMEOUT_S,
            check=False,
        )
    except subprocess.TimeoutExpired:
        elapsed = time.perf_counter() - started
        return Outcome(bench.name, command, elapsed, error=f"timed out after {elapsed:.0f} s")
    elapsed = time.perf_counter() - started
    if done.returncode != 0:
        return Outcome(bench.name, command, elapsed, error=f"exit status {done.returncode}")
    try:
        figures = parse_figures(done.stdout)
    except ValueError as exc:
        return Outcome(bench.name, command, elapsed, error=str(exc))
    return Outcome(bench.name, command, elapsed, figures)


def parse_figures(text: str) -> dict[str, Any]:
    """A benchmark's `--json` output; ValueError saying what is wrong with it."""
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(f"printed no JSON ({exc.msg} at line {exc.lineno})") from None
    if not isinstance(doc, dict):
        raise ValueError(f"printed JSON {type(doc).__name__}, not an object")
    if "absent" in doc:
        raise ValueError(f"no data file ({doc['absent']})")
    return doc


# --- the machine ---


def cpu_model(cpuinfo: str) -> str | None:
    """The first `model name` of /proc/cpuinfo text."""
    for line in cpuinfo.splitlines():
        key, sep, value = line.partition(":")
        if sep and key.strip() == "model name":
            return value.strip()
    return None


def machine_times() -> tuple[float, float] | None:
    """(busy, steal) core-seconds since boot from /proc/stat; None without it."""
    try:
        fields = Path("/proc/stat").read_text().splitlines()[0].split()[1:9]
        user, nice, system, _idle, _iowait, irq, softirq, steal = map(int, fields)
    except (OSError, ValueError, IndexError):
        return None
    tick = os.sysconf("SC_CLK_TCK")
    return (user + nice + system + irq + softirq) / tick, steal / tick


def _version(dist: str) -> str:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def _git(*args: str) -> str:
    try:
        done = subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return ""
    return done.stdout.strip()


def _loadavg() -> tuple[float, float, float] | None:
    with contextlib.suppress(OSError):
        return os.getloadavg()
    return None


@dataclass(slots=True)
class Machine:
    """Where and on what the run happened, and how busy the machine was meanwhile."""

    cpu: str | None
    cores: int | None
    kernel: str
    python: str
    ib_async: str
    loop: str
    commit: str
    started: str
    load_before: tuple[float, float, float] | None
    load_after: tuple[float, float, float] | None = None
    seconds: float = 0.0
    steal: float | None = None  # cores taken by the hypervisor, averaged over the run
    others: float | None = None  # cores used by processes outside this run, averaged

    @classmethod
    def now(cls) -> Machine:
        try:
            cpu = cpu_model(Path("/proc/cpuinfo").read_text())
        except OSError:
            cpu = platform.processor() or None
        dirty = " + local changes" if _git("status", "--porcelain") else ""
        return cls(
            cpu=cpu,
            cores=os.cpu_count(),
            kernel=platform.platform(),
            python=f"{platform.python_implementation()} {platform.python_version()}",
            ib_async=_version("ib_async"),
            loop=f"uvloop {_version('uvloop')}",
            commit=(_git("rev-parse", "--short", "HEAD") or "unknown") + dirty,
            started=datetime.now(UTC).isoformat(timespec="seconds"),
            load_before=_loadavg(),
        )

    def finish(self, seconds: float, busy: float | None, steal: float | None) -> None:
        """`busy`, `steal`: machine core-seconds over the run; ours come from os.times()."""
        self.load_after = _loadavg()
        self.seconds = seconds
        if busy is not None and seconds > 0:
            t = os.times()  # every benchmark process and its children were waited for
            ours = t.user + t.system + t.children_user + t.children_system
            self.others = max(0.0, busy - ours) / seconds
            self.steal = None if steal is None else steal / seconds

    def lines(self) -> list[str]:
        def load(x: tuple[float, float, float] | None) -> str:
            return "n/a" if x is None else " / ".join(f"{v:.2f}" for v in x)

        others = "n/a" if self.others is None else f"{self.others:.2f} cores"
        steal = "n/a" if self.steal is None else f"{self.steal * 100:.1f}% of a core"
        return [
            f"- CPU: {self.cpu or 'unknown'}, {self.cores} cores; {self.kernel}",
            f"- {self.python}, ib_async {self.ib_async}, {self.loop}",
            f"- commit {self.commit}; started {self.started}, took {self.seconds / 60:.1f} min",
            f"- load average (1 / 5 / 15 min): {load(self.load_before)} before, "
            f"{load(self.load_after)} after",
            f"- other processes used {others} on average during the run; steal {steal}",
        ]


# --- the table ---


Row = tuple[str, str, str, str]  # figure, value, baseline / ratio, command


def _n(x: float | None, unit: str = "", digits: int = 0) -> str:
    return "n/a" if x is None else f"{x:,.{digits}f}{unit}"


def _pct(x: float | None, digits: int = 2) -> str:
    return "n/a" if x is None else f"{100 * x:.{digits}f}%"


def rows_e2e(f: dict[str, Any], cmd: str) -> list[Row]:
    g = f["figures"]
    verdict = "met" if g["ratio"] >= g["target_ratio"] else "NOT met"
    per_cpu = g["ratio_per_cpu_s"]
    pairs = ", ".join(f"{x:.2f}" for x in g["pair_ratios"])
    return [
        (
            "end-to-end ticks/s through the daemon (unpaced ibsim, tick-by-tick AllLast + BidAsk)",
            _n(g["daemon_ticks_per_s"], " ticks/s"),
            f"bare ib_async {_n(g['bare_ticks_per_s'])} ticks/s: ratio **{g['ratio']:.2f}** "
            f"(pairs {pairs}; per consumer CPU-second "
            f"{'n/a' if per_cpu is None else f'{per_cpu:.2f}'}); target >= "
            f"{g['target_ratio']}: {verdict}",
            cmd,
        )
    ]


def rows_ibsim(f: dict[str, Any], cmd: str) -> list[Row]:
    o, d, c, r = f["offered"], f["delivered"], f["ceiling"], f["ratios"]
    target = f["target_tick_messages_per_s"]
    return [
        (
            "ibsim offered to one client (raw reader)",
            _n(o["tick_messages_per_s"], " tick msgs/s"),
            f"ib_async decode ceiling {_n(c['ticks_per_s'])} ticks/s: offered/ceiling "
            f"**{r['offered_over_ceiling']:.2f}** (per CPU-s "
            f"{_n(r['offered_over_ceiling_per_cpu_s'], digits=2)}); target {target:,}: "
            f"{r['offered_over_target']:.2f} of it",
            cmd,
        ),
        (
            "delivered to one ib_async client over the socket",
            _n(d["ticks_per_s"], " ticks/s"),
            f"{r['delivered_over_ceiling']:.2f} of the decode ceiling; {f['live_limit']}",
            cmd,
        ),
    ]


def rows_extractor(f: dict[str, Any], cmd: str) -> list[Row]:
    parse = f["parse_trades_per_cpu_s"]
    data = next((a for a in shlex.split(cmd) if a.endswith(".csv.gz")), "FILE")
    replay_cmd = f"python -m daemon replay --ticks {data} --out /dev/null"
    return [
        (
            f"offline replay, parse + extract ({f['trades']:,} real ES trades)",
            _n(f["replay_trades_per_cpu_s"], " trades/CPU-s"),
            f"parse only {_n(parse)}: {f['replay_trades_per_cpu_s'] / parse:.2f}x; target "
            f"{f['target_trades_per_s']:,}: "
            f"{f['replay_trades_per_cpu_s'] / f['target_trades_per_s']:.2f} of it",
            cmd,
        ),
        (
            "offline replay, the extractor alone (pre-parsed trades)",
            _n(f["extract_trades_per_cpu_s"], " trades/CPU-s"),
            f"{f['extract_trades_per_cpu_s'] / parse:.2f}x parse only",
            cmd,
        ),
        (
            "`orderflowd replay` over the file, wall clock",
            _n(f["cli_trades_per_s"], " trades/s"),
            f"{f['cli_seconds']:.2f} s, of which start-up {f['cli_startup_seconds']:.2f} s "
            "(one-trade file)",
            replay_cmd,
        ),
        (
            "`OrderFlow.on_event` per live event (median / p99)",
            f"{f['on_event_median_us']:.2f} / {f['on_event_p99_us']:.2f} µs",
            f"counting callback {f['baseline_median_us']:.2f} / {f['baseline_p99_us']:.2f} µs",
            cmd,
        ),
    ]


def rows_accuracy(f: dict[str, Any], cmd: str) -> list[Row]:
    variants = f["variants"]
    tick_rule = variants.get("trades only (tick rule)")
    snap = f["snapshot"].get("snapshot, RTVolume", {})
    met = "met" if f["tick_by_tick_accuracy"] >= f["target"] else "NOT met"
    return [
        (
            f"aggressor accuracy, tick-by-tick, per trade ({f['trades']:,} trades)",
            _pct(f["tick_by_tick_accuracy"], 3),
            f"tick rule alone {_pct(tick_rule)}; target {_pct(f['target'], 0)}: {met}",
            cmd,
        ),
        (
            "aggressor accuracy, 250 ms snapshots + RTVolume, by volume",
            _pct(snap.get("volume_accuracy"), 1),
            f"1-min bar delta error {_pct(snap.get('bar_delta_mae_over_volume'), 1)} of bar "
            f"volume, correlation {_n(snap.get('bar_delta_corr'), digits=3)}",
            cmd,
        ),
    ]


def rows_tick_to_order(f: dict[str, Any], cmd: str) -> list[Row]:
    runs = f["runs"]
    base = runs[0]
    rows = []
    for r in runs[1:]:
        p99 = r["p99_ms"]
        verdict = "n/a" if p99 is None else ("met" if p99 <= f["target_p99_ms"] else "NOT met")
        missing = f"; {r['no_order']} trigger(s) without an order" if r["no_order"] else ""
        rows.append(
            (
                f"tick-to-order p50 / p99, {r['name']}",
                f"{_n(r['p50_ms'], digits=2)} / {_n(p99, ' ms', 2)}",
                f"bare ib_async {_n(base['p50_ms'], digits=2)} / "
                f"{_n(base['p99_ms'], ' ms', 2)}; target p99 <= {f['target_p99_ms']:g} ms: "
                f"{verdict}{missing}",
                cmd,
            )
        )
    return rows


def rows_reconnect(f: dict[str, Any], cmd: str) -> list[Row]:
    cycles = f["cycles"]
    return [
        (
            "gateway restart: reopen -> first quote, p50 / max",
            f"{f['quote_p50_ms']:.1f} / {f['quote_max_ms']:.1f} ms",
            f"{cycles} of {f.get('restarts', cycles)} restarts measured, backoff pinned at "
            f"50 ms; first trade p50 "
            f"{f['trade_p50_ms']:.1f} / max {f['trade_max_ms']:.1f} ms",
            cmd,
        ),
        (
            "RSS growth per reconnect",
            f"{f['rss_growth_per_reconnect_mb'] * 1024:+.1f} KiB",
            f"RSS {f['rss_after_1_mb']:.1f} MB after cycle 1, {f['rss_after_last_mb']:.1f} MB "
            f"after {cycles} (second half {f['rss_after_last_mb'] - f['rss_mid_mb']:+.2f} MB)",
            cmd,
        ),
        (
            "idle CPU of a connected `orderflowd run` (no ticks)",
            f"{f['idle_cpu_pct']:.2f}% of a core",
            f"over {f['idle_seconds']:.1f} s; RSS {f['daemon_rss_mb']:.1f} MB",
            cmd,
        ),
    ]


ROWS: dict[str, Callable[[dict[str, Any], str], list[Row]]] = {
    "e2e_throughput": rows_e2e,
    "ibsim_throughput": rows_ibsim,
    "flow_extractor": rows_extractor,
    "flow_accuracy": rows_accuracy,
    "tick_to_order": rows_tick_to_order,
    "daemon_reconnect": rows_reconnect,
}


def rows_of(outcome: Outcome) -> list[Row]:
    """The table rows of one benchmark; a failed (or unreadable) one gets one row saying so."""
    cmd = f"`{outcome.command}`"
    if outcome.error is None:
        try:
            return [
                (a, b, c, d if d.startswith("`") else f"`{d}`")
                for a, b, c, d in ROWS[outcome.bench](outcome.figures, outcome.command)
            ]
        except (KeyError, TypeError, ValueError, IndexError, ZeroDivisionError) as exc:
            outcome.error = f"figures not understood ({type(exc).__name__}: {exc})"
    return [(outcome.bench, "**failed**", str(outcome.error), cmd)]


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def render(outcomes: Sequence[Outcome], machine: Machine, quick: bool) -> str:
    kind = "quick run (`python -m bench --quick`)" if quick else "full run (`make bench`)"
    lines = [
        f"# orderflowd benchmarks: {kind}",
        "",
        "| figure | value | baseline / ratio | command |",
        "| --- | --- | --- | --- |",
    ]
    for outcome in outcomes:
        for row in rows_of(outcome):
            lines.append("| " + " | ".join(_cell(c) for c in row) + " |")
    lines += [
        "",
        "Machine:",
        "",
        *machine.lines(),
        "",
        "Seconds per benchmark: "
        + ", ".join(f"{o.bench} {o.seconds:.0f}" for o in outcomes)
        + ". Commands run from the repository root with `.venv/bin/python`; each ran alone, "
        "one after the other. Ratios compare with a baseline measured in the same run.",
    ]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m bench",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--quick", action="store_true", help="fewer cycles and seconds (a smoke run)")
    p.add_argument("--only", help="comma-separated benchmark names (default: all)")
    p.add_argument("--out", type=Path, help="Markdown output (default bench/results/latest.md)")
    args = p.parse_args(argv)
    names = [b.name for b in BENCHES]
    chosen: tuple[Bench, ...] = BENCHES
    if args.only:
        wanted = [n.strip() for n in args.only.split(",") if n.strip()]
        unknown = sorted(set(wanted) - set(names))
        if unknown or not wanted:
            p.error(f"--only: unknown benchmark(s) {unknown or wanted}; known: {', '.join(names)}")
        chosen = tuple(b for b in BENCHES if b.name in wanted)
    out = args.out or RESULTS / ("quick.md" if args.quick else "latest.md")
    data = data_file()
    machine = Machine.now()
    times0, started = machine_times(), time.perf_counter()
    outcomes = [run_bench(b, arguments(b, args.quick, data)) for b in chosen]
    times1 = machine_times()
    busy = steal = None
    if times0 is not None and times1 is not None:
        busy, steal = times1[0] - times0[0], times1[1] - times0[1]
    machine.finish(time.perf_counter() - started, busy, steal)
    text = render(outcomes, machine, args.quick)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text)
    raw = {
        o.bench: {"command": o.command, "seconds": o.seconds, "error": o.error}
        | {"figures": o.figures}
        for o in outcomes
    }
    out.with_suffix(".json").write_text(json.dumps(raw, indent=2) + "\n")
    print("\n" + text)
    print(f"written to {out.relative_to(ROOT) if out.is_relative_to(ROOT) else out}")
    return 1 if any(o.error for o in outcomes) else 0


if __name__ == "__main__":
    sys.exit(main())
