"""`python -m chaos [--seed N] [--minutes M] [--speed X] [--kinds a,b] [--rounds N]`."""

from __future__ import annotations

import argparse
import asyncio
import shutil
import sys
import tempfile
from pathlib import Path

from chaos.faults import CATALOGUE
from chaos.run import ChaosConfig, format_report, run

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "data" / "es_trades_2013-09-01_02.csv.gz"


def _kinds(text: str) -> tuple[str, ...]:
    kinds = tuple(k.strip() for k in text.split(",") if k.strip())
    unknown = [k for k in kinds if k not in CATALOGUE]
    if unknown or not kinds:
        raise argparse.ArgumentTypeError(
            f"unknown fault kind(s) {unknown or [text]}; known: {', '.join(CATALOGUE)}"
        )
    return kinds


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m chaos", description=__doc__)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--minutes", type=float, default=25.0, help="inject faults for this long")
    p.add_argument("--rounds", type=int, help="instead: this many rounds of every kind")
    p.add_argument("--speed", type=float, default=60.0, help="market seconds per wall second")
    p.add_argument("--kinds", type=_kinds, default=tuple(CATALOGUE), help="comma-separated")
    p.add_argument("--data", type=Path, default=DATA, help="replayed trades (time_ct,price,size)")
    p.add_argument("--workdir", type=Path, help="keep state, logs and config here")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.minutes <= 0 or args.speed <= 0 or (args.rounds is not None and args.rounds < 1):
        print("chaos: --minutes, --speed and --rounds must be positive", file=sys.stderr)
        return 2
    if not args.data.is_file():
        print(f"chaos: no data file at {args.data}", file=sys.stderr)
        return 2
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="orderflowd-chaos-"))
    config = ChaosConfig(
        data=args.data,
        workdir=workdir,
        seed=args.seed,
        duration_s=args.minutes * 60.0,
        speed=args.speed,
        kinds=args.kinds,
        rounds=args.rounds,
    )
    print(f"chaos: workdir {workdir} (daemon logs: logs/daemon.jsonl, daemon.out)", flush=True)
    report = asyncio.run(run(config, progress=lambda line: print(line, flush=True)))
    print(format_report(report, config), flush=True)
    if not report.failures and args.workdir is None:
        shutil.rmtree(workdir, ignore_errors=True)
    return 1 if report.failures else 0


if __name__ == "__main__":
    sys.exit(main())
