"""`orderflowd`: run | debug | check-config | doctor | status | replay | halt | resume | flatten."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from daemon import __version__
from daemon.settings import EX_CONFIG, ConfigError, Settings, effective_config, load_settings

EX_DATAERR = 65
EX_NOINPUT = 66
EX_USAGE = 64
EX_UNAVAILABLE = 69
EX_SOFTWARE = 70
EX_IOERR = 74
EX_TEMPFAIL = 75
# A flatten waits for the broker's confirmations (4 x execution.confirm_timeout_s by default),
# a resume after an alarm for a reconcile: the command waits for the daemon's own verdict.
CONTROL_TIMEOUT_S = 90.0
EX_INTERRUPTED = 130  # 128 + SIGINT: Ctrl-C
# `orderflowd status`, after the LSB init-script convention for a status action:
EX_STATUS_DEAD = 1  # the daemon is dead and its status.json remains (it did not stop cleanly)
EX_STATUS_STOPPED = 3  # the daemon is not running: it stopped cleanly (STOPPED)
EX_STATUS_HUNG = 4  # the process is there, but its status is unknown: it stopped writing it


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="orderflowd", description=__doc__)
    parser.add_argument("--version", action="version", version=f"orderflowd {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    def common(p: argparse.ArgumentParser) -> None:
        p.add_argument("--config", type=Path, help="TOML file (default config/orderflowd.toml)")
        p.add_argument(
            "--live",
            action="store_true",
            help='allow live trading (also needs trading.mode = "live")',
        )
        p.add_argument("--host", help="override ib.host")
        p.add_argument("--port", help='override ib.port (a number or "auto")')
        p.add_argument("--client-id", type=int, help="override ib.client_id")
        p.add_argument("--state-dir", help="override paths.state_dir")
        p.add_argument("--log-format", choices=("auto", "console", "json"))
        p.add_argument("--log-level", help="override logging.level")
        p.add_argument(
            "--set",
            action="append",
            default=[],
            metavar="KEY=VALUE",
            help="override any setting, e.g. --set data.mode=snapshot (repeatable)",
        )

    run = sub.add_parser("run", help="run the daemon (as under systemd)")
    common(run)
    run.add_argument(
        "--exit-after", type=_positive_seconds, help="stop by itself after this many seconds"
    )
    debug = sub.add_parser("debug", help="run in the foreground: console logs, a status line")
    common(debug)
    debug.add_argument(
        "--exit-after", type=_positive_seconds, help="stop by itself after this many seconds"
    )
    check = sub.add_parser("check-config", help="validate and print the effective config")
    common(check)
    doctor = sub.add_parser(
        "doctor", help="check the connection to TWS / IB Gateway and its permissions"
    )
    common(doctor)
    doctor.add_argument("--json", action="store_true", help="print the results as JSON")
    doctor.add_argument(
        "--timeout",
        type=_positive_seconds,
        default=5.0,
        help="seconds allowed for each connect or request (default 5)",
    )
    status = sub.add_parser(
        "status",
        help="print the daemon's status; exit 0 running, 1 dead, 3 stopped, 4 hung, 69 no status",
    )
    common(status)
    status.add_argument(
        "--json", action="store_true", help="print status.json, with the verdict as `liveness`"
    )
    replay = sub.add_parser(
        "replay", help="run the order-flow extractor over a trades CSV, one row per bar"
    )
    common(replay)
    replay.add_argument(
        "--ticks", type=Path, required=True, help="trades file time_ct,price,size (.csv or .gz)"
    )
    replay.add_argument("--bar", help='bar length, e.g. "1min" (overrides flow.bar)')
    replay.add_argument("--out", type=Path, help="output CSV (default: standard output)")
    report = sub.add_parser(
        "report", help="render one trading day's session report (PNG and HTML) from state_dir"
    )
    common(report)
    report.add_argument("--date", help="trading day YYYY-MM-DD (default: the latest recorded)")
    report.add_argument("--out", type=Path, help="output directory (default: state_dir/reports)")
    report.add_argument("--bar", help='bar length, e.g. "5min" (overrides flow.bar)')
    for name, text in (
        ("halt", "stop new entries and cancel working entries in the running daemon"),
        ("resume", "allow new entries again after a halt"),
        ("flatten", "halt, cancel all orders and close the position at market"),
    ):
        control = sub.add_parser(name, help=text)
        common(control)
        control.add_argument(
            "--reason", default="operator", help="why, for the log and status (default: operator)"
        )
        if name == "flatten":
            control.add_argument("--yes", action="store_true", help="do not ask for confirmation")
    return parser


def overrides_from(args: argparse.Namespace) -> dict[str, Any]:
    """Command-line overrides as dotted keys (the highest-priority settings layer)."""
    out: dict[str, Any] = {}
    for flag, key in (
        ("host", "ib.host"),
        ("port", "ib.port"),
        ("client_id", "ib.client_id"),
        ("state_dir", "paths.state_dir"),
        ("log_format", "logging.format"),
        ("log_level", "logging.level"),
        ("bar", "flow.bar"),
    ):
        value = getattr(args, flag, None)
        if value is not None:
            out[key] = value
    if args.command == "debug":
        out.setdefault("logging.format", "console")
    for item in args.set:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError([f"--set {item!r}: expected KEY=VALUE, e.g. data.mode=snapshot"])
        out[key.strip()] = value
    return out


def _load(args: argparse.Namespace) -> Settings:
    return load_settings(args.config, overrides_from(args), live_flag=args.live)


def _run(settings: Settings, args: argparse.Namespace) -> int:
    from daemon.runtime.control import ControlError
    from daemon.runtime.logs import configure_logging
    from daemon.runtime.supervisor import Supervisor
    from daemon.trading.journal import JournalError

    os.umask(0o077)  # everything this process creates is private (logs too), as UMask=0077
    configure_logging(settings.logging.format, settings.logging.level, settings.log_file)
    try:
        supervisor = Supervisor(
            settings,
            allow_live=settings.trading.mode == "live" and args.live,
            debug=args.command == "debug",
            exit_after=args.exit_after,
        )
        return _event_loop_run(supervisor.run())
    except ConfigError as exc:  # the strategy, loaded again, refused this time
        _print_config_error(exc)
        return EX_CONFIG
    except JournalError as exc:  # never touched: a newer schema, not a journal, unreadable
        print(f"orderflowd: journal: {exc}", file=sys.stderr)
        return EX_IOERR
    except ControlError as exc:  # e.g. another orderflowd on this state_dir
        print(f"orderflowd: {exc}", file=sys.stderr)
        return EX_TEMPFAIL
    finally:
        if args.command in ("run", "debug"):  # closing the loop restored SIGHUP's default
            signal.signal(signal.SIGHUP, signal.SIG_IGN)


def _print_config_error(exc: ConfigError) -> None:
    for line in str(exc).splitlines():
        print(f"orderflowd: config error: {line}", file=sys.stderr)


def _event_loop_run(main: Any) -> int:
    """One event loop for the process: uvloop where available, plain asyncio otherwise."""
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is a dependency on Linux
        loop_factory = None
    else:
        loop_factory = uvloop.new_event_loop
    with asyncio.Runner(loop_factory=loop_factory) as runner:
        result: int = runner.run(main)
    return result


def _status(settings: Settings, as_json: bool) -> int:
    """The daemon's state from status.json, unless its writer is stopped, dead or hung."""
    from daemon.runtime.status import STATUS_FILE, judge, read_status, status_line
    from daemon.runtime.status_view import format_trading

    state_dir = Path(settings.paths.state_dir)
    try:
        doc = read_status(state_dir)
        mtime = (state_dir / STATUS_FILE).stat().st_mtime
    except FileNotFoundError:
        print(
            f"orderflowd: no status in {settings.paths.state_dir}: is the daemon running "
            "with this state_dir?",
            file=sys.stderr,
        )
        return EX_UNAVAILABLE
    except (OSError, ValueError) as exc:
        print(f"orderflowd: cannot read {state_dir / STATUS_FILE}: {exc}", file=sys.stderr)
        return EX_IOERR
    liveness = judge(doc, mtime=mtime)
    code = {
        "running": 0,
        "stopped": EX_STATUS_STOPPED,
        "dead": EX_STATUS_DEAD,
        "hung": EX_STATUS_HUNG,
    }[liveness.verdict]
    if as_json:
        print(json.dumps({**doc, "liveness": liveness.as_dict()}, indent=2))
        if liveness.verdict in ("dead", "hung"):
            print(f"orderflowd: {liveness.detail}", file=sys.stderr)
        return code
    lines = [status_line(doc), *format_trading(doc)]
    if liveness.verdict == "stopped":
        lines.insert(0, f"orderflowd: {liveness.detail}; last status:")
    elif liveness.verdict != "running":  # its last words are stale: say so, not them
        lines = [f"orderflowd: {liveness.detail}"]
        if (doc.get("trading") or {}).get("enabled"):
            lines.append("orderflowd: its orders stay working at the broker (brackets included)")
    print("\n".join(lines))
    return code


def _confirmed(command: str, yes: bool) -> bool | None:
    """True to go ahead, False when the operator said no, None when nobody can be asked."""
    if command != "flatten" or yes:
        return True
    if not sys.stdin.isatty():
        return None
    try:
        answer = input(
            "orderflowd: flatten cancels every order and closes the position. Go? [y/N] "
        )
    except EOFError:
        return False
    return answer.strip().lower() in ("y", "yes")


def _control(settings: Settings, args: argparse.Namespace) -> int:
    from daemon.runtime.control import (
        ControlError,
        ControlUnavailable,
        control_path,
        send_command,
    )

    confirmed = _confirmed(args.command, getattr(args, "yes", False))
    if confirmed is None:
        print("orderflowd flatten: not a terminal; pass --yes to confirm", file=sys.stderr)
        return EX_USAGE
    if not confirmed:
        print("orderflowd flatten: not confirmed; nothing sent", file=sys.stderr)
        return 1
    try:
        reply = send_command(
            control_path(Path(settings.paths.state_dir)),
            args.command,
            args.reason,
            timeout=CONTROL_TIMEOUT_S,
        )
    except ControlUnavailable as exc:
        print(f"orderflowd: {exc}", file=sys.stderr)
        return EX_UNAVAILABLE
    except ControlError as exc:
        print(f"orderflowd {args.command}: {exc}", file=sys.stderr)
        return EX_SOFTWARE
    if reply.get("ok") is not True:
        why = reply.get("error") or reply.get("message") or "refused (no reason given)"
        print(f"orderflowd {args.command}: {why}", file=sys.stderr)
        return 1
    print(f"orderflowd: {_reply_text(reply)}")
    return 0


def _reply_text(reply: dict[str, Any]) -> str:
    """The daemon's `message`, else its state and reason, e.g. `HALTED (operator: lunch)`."""
    if reply.get("message"):
        return str(reply["message"])
    state = str(reply.get("state", "ok"))
    return f"{state} ({reply['reason']})" if reply.get("reason") else state


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command in ("run", "debug"):
        # Until the event loop handles it (log reopen), SIGHUP must not kill the daemon.
        signal.signal(signal.SIGHUP, signal.SIG_IGN)
    try:
        settings = _load(args)
        if args.command in ("run", "debug", "check-config"):
            _check_strategy(settings)
    except ConfigError as exc:
        _print_config_error(exc)
        return EX_CONFIG
    except KeyboardInterrupt:
        print("orderflowd: interrupted", file=sys.stderr)
        return EX_INTERRUPTED
    if args.command == "check-config":
        print(json.dumps(effective_config(settings), indent=2, default=str))
        return 0
    if args.command == "status":
        return _status(settings, args.json)
    if args.command == "doctor":
        return _doctor(settings, args)
    if args.command == "replay":
        return _replay(settings, args.ticks, args.out)
    if args.command == "report":
        return _report(settings, args.date, args.out)
    if args.command in ("halt", "resume", "flatten"):
        return _control(settings, args)
    return _run(settings, args)


def _positive_seconds(text: str) -> float:
    try:
        seconds = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected seconds, e.g. 5, got {text!r}") from None
    if not seconds > 0 or seconds == float("inf"):
        raise argparse.ArgumentTypeError(f"must be a number of seconds > 0, got {text!r}")
    return seconds


def _doctor(settings: Settings, args: argparse.Namespace) -> int:
    from daemon.broker.doctor_report import render_json, render_table
    from daemon.broker.ib.doctor import DoctorTimeouts, exit_code, run_doctor
    from daemon.runtime.logs import configure_logging

    configure_logging(settings.logging.format, settings.logging.level, library_level="CRITICAL")
    target = f"{settings.ib.host}:{settings.ib.port}"

    async def doctor() -> int:
        results = await run_doctor(settings, timeouts=DoctorTimeouts.for_step(args.timeout))
        print(render_json(results, target) if args.json else render_table(results, target))
        return exit_code(results)

    return _event_loop_run(doctor())


def _check_strategy(settings: Settings) -> None:
    """Import and validate the configured strategy: a bad path or parameter is a config error.

    Strategy code runs here (validators, properties): whatever it raises, `SystemExit`
    included, is a config error; only a real Ctrl-C stops the command otherwise.
    """
    from daemon.trading.strategy import StrategyError, load_strategy

    try:
        load_strategy(settings.strategy, settings.flow)
    except (ConfigError, KeyboardInterrupt):
        raise
    except BaseException as exc:
        problem = f"loading {settings.strategy.path!r} failed: {type(exc).__name__}: {exc}"
        raise StrategyError([f"strategy.path: {problem}"]) from None


def _replay(settings: Settings, ticks: Path, out: Path | None) -> int:
    import zlib

    from daemon.core.instrument import Instrument
    from daemon.flow.replay import TradesFileError
    from daemon.runtime.offline import print_summary, replay_rows, write_csv

    instrument = Instrument.of_product(settings.instrument.symbol)  # the configured product
    try:
        rows, summary = replay_rows(ticks, settings.flow, settings.data, instrument)
    except TradesFileError as exc:
        print(f"orderflowd replay: {exc}; no output written", file=sys.stderr)
        return EX_DATAERR
    except (OSError, EOFError, UnicodeDecodeError, zlib.error) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        print(
            f"orderflowd replay: {ticks}: cannot read: {reason}; no output written", file=sys.stderr
        )
        return EX_NOINPUT if isinstance(exc, FileNotFoundError) else EX_DATAERR
    write_csv(rows, out)
    print_summary(summary)
    return 0


def _report(settings: Settings, day: str | None, out: Path | None) -> int:
    import zlib

    from daemon.recording import RecordingFileError, list_days, read_day
    from daemon.report import Missing, ReportError, make_report
    from daemon.runtime.logs import configure_logging
    from daemon.runtime.supervisor import JOURNAL_FILE
    from daemon.trading.journal import JournalError

    configure_logging(settings.logging.format, settings.logging.level)  # stderr: paths on stdout
    journal = Path(settings.paths.state_dir) / JOURNAL_FILE
    try:
        files = make_report(settings, journal, list_days, read_day, day=day, out_dir=out)
    except ReportError as exc:
        print(f"orderflowd report: {exc}", file=sys.stderr)
        return EX_USAGE if exc.missing is Missing.BAD_DATE else EX_NOINPUT
    except (RecordingFileError, EOFError, zlib.error) as exc:
        print(f"orderflowd report: cannot read the market data: {exc}", file=sys.stderr)
        return EX_DATAERR
    except JournalError as exc:
        print(f"orderflowd report: journal: {exc}", file=sys.stderr)
        return EX_IOERR
    except OSError as exc:
        print(f"orderflowd report: {exc}", file=sys.stderr)
        return EX_IOERR
    print(files.png)
    print(files.html)
    return 0
