"""Logging: output formats, journald priorities, masking, rate limiting, stdlib routing, file."""

from __future__ import annotations

import io
import json
import logging
import logging.handlers
import os
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, NamedTuple

import pytest

from daemon.runtime.logs import (
    configure_logging,
    flush_suppressed,
    get_logger,
    mask_account,
    reopen_log_files,
)

JOURNAL = {"JOURNAL_STREAM": "8:12345"}
ANSI = re.compile(r"\x1b\[[0-9;]*m")


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class TTY(io.StringIO):
    def isatty(self) -> bool:
        return True


class Position(NamedTuple):
    account: str
    qty: int


def lines(stream: io.StringIO) -> list[str]:
    return stream.getvalue().splitlines()


def journal_records(stream: io.StringIO) -> list[tuple[int, dict[str, Any]]]:
    """Split `<N>{json}` lines into (priority, record)."""
    out = []
    for line in lines(stream):
        assert line.startswith("<"), line
        prio, _, body = line[1:].partition(">")
        out.append((int(prio), json.loads(body)))
    return out


def json_records(stream: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in lines(stream)]


def test_journald_json_lines_carry_priority_prefix_by_level() -> None:
    out = io.StringIO()
    configure_logging("auto", "debug", stream=out, environ=JOURNAL)
    log = get_logger("daemon.test")
    log.debug("tick_seen", price=5400.25)
    log.info("connected", host="127.0.0.1", port=4002, client_id=7)
    log.warning("farm_down", farm="usfarm")
    log.error("order_rejected", order_id=12)
    log.critical("halted", reason="daily_loss")

    records = journal_records(out)
    assert [p for p, _ in records] == [7, 6, 4, 3, 3]
    assert [r["event"] for _, r in records] == [
        "tick_seen",
        "connected",
        "farm_down",
        "order_rejected",
        "halted",
    ]
    connected = records[1][1]
    assert connected["host"] == "127.0.0.1"
    assert connected["port"] == 4002
    assert connected["client_id"] == 7
    assert connected["level"] == "info"
    assert connected["logger"] == "daemon.test"


def test_timestamps_are_iso_utc() -> None:
    out = io.StringIO()
    configure_logging("json", "info", stream=out, environ={})
    get_logger("t").info("started")
    stamp = json_records(out)[0]["timestamp"]
    assert stamp.endswith("Z")
    parsed = datetime.fromisoformat(stamp)
    assert parsed.tzinfo is not None
    assert parsed.utcoffset() == UTC.utcoffset(None)


def test_explicit_json_without_journald_has_no_prefix() -> None:
    out = io.StringIO()
    configure_logging("json", "info", stream=out, environ={})
    get_logger("t").warning("farm_down", farm="usfarm")
    (line,) = lines(out)
    record = json.loads(line)
    del record["timestamp"]
    assert record == {"farm": "usfarm", "event": "farm_down", "level": "warning", "logger": "t"}


@pytest.mark.parametrize(("fmt", "stream"), [("auto", io.StringIO()), ("console", TTY())])
def test_console_mode_has_no_prefix_and_is_not_json(fmt: str, stream: io.StringIO) -> None:
    configure_logging(fmt, "info", stream=stream, environ={})  # type: ignore[arg-type]
    get_logger("t").info("connected", host="127.0.0.1", port=4002)
    (line,) = (ANSI.sub("", line) for line in lines(stream))
    assert not line.startswith("<")
    assert not line.lstrip().startswith("{")
    assert "connected" in line
    assert "host=127.0.0.1" in line
    assert "port=4002" in line


def test_tty_wins_over_journal_stream() -> None:
    out = TTY()
    configure_logging("auto", "info", stream=out, environ=JOURNAL)
    get_logger("t").info("connected")
    (line,) = lines(out)
    assert not line.startswith("<")
    assert not line.lstrip().startswith("{")


def test_journal_stream_must_name_the_stream_when_it_has_an_fd(tmp_path: Path) -> None:
    with (tmp_path / "err.log").open("w+") as out:
        st = os.fstat(out.fileno())
        configure_logging("auto", "info", stream=out, environ={"JOURNAL_STREAM": "1:2"})
        get_logger("t").info("not_the_journal")
        configure_logging(
            "auto", "info", stream=out, environ={"JOURNAL_STREAM": f"{st.st_dev}:{st.st_ino}"}
        )
        get_logger("t").info("the_journal")
        out.seek(0)
        first, second = out.read().splitlines()
    assert not first.startswith("<")
    assert "not_the_journal" in first
    assert second.startswith("<6>{")
    assert json.loads(second[3:])["event"] == "the_journal"


def test_level_filters_and_reconfiguring_does_not_duplicate_output() -> None:
    out = io.StringIO()
    configure_logging("json", "info", stream=out, environ={})
    configure_logging("json", "warning", stream=out, environ={})
    log = get_logger("t")
    log.info("hidden")
    log.warning("shown")
    assert [r["event"] for r in json_records(out)] == ["shown"]


def test_unknown_level_or_format_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="log level"):
        configure_logging("json", "loud", stream=io.StringIO(), environ={})
    with pytest.raises(ValueError, match="log format"):
        configure_logging("xml", "info", stream=io.StringIO(), environ={})  # type: ignore[arg-type]


def test_get_logger_defaults_to_the_calling_module() -> None:
    out = io.StringIO()
    configure_logging("json", "info", stream=out, environ={})
    get_logger(session="abc").info("bound")
    (record,) = json_records(out)
    assert record["logger"] == __name__
    assert record["session"] == "abc"


# --- account masking ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "masked"),
    [("DU1234567", "*****4567"), ("U7654321", "****4321"), ("12345", "*2345"), ("All", "***")],
)
def test_mask_account(raw: str, masked: str) -> None:
    assert mask_account(raw) == masked


def test_account_keys_and_free_text_are_masked() -> None:
    out = io.StringIO()
    configure_logging("json", "info", stream=out, environ={})
    get_logger("t").info(
        "account_checked",
        account="DU1234567",
        acctNumber="U7654321",
        acct="98765432",
        accounts=["DU1111111", "DU2222222"],
        managed_accounts="DU3333333,DU4444444",
        reason="account DU1234567 is not permitted; U7654321 neither",
        position=Position(account="DU5555555", qty=1),
        nested={"fills": [{"account": "DU6666666", "qty": 2}]},
        order_id=42,
        local_symbol="ESZ6",
    )
    (record,) = json_records(out)
    assert record["account"] == "*****4567"
    assert record["acctNumber"] == "****4321"
    assert record["acct"] == "****5432"
    assert record["accounts"] == ["*****1111", "*****2222"]
    assert record["managed_accounts"] == "*****3333,*****4444"
    assert record["reason"] == "account *****4567 is not permitted; ****4321 neither"
    assert record["position"] == "Position(account='*****5555', qty=1)"
    assert record["nested"] == {"fills": [{"account": "*****6666", "qty": 2}]}
    assert record["order_id"] == 42
    assert record["local_symbol"] == "ESZ6"
    text = out.getvalue()
    for digits in ("1234567", "7654321", "98765432", "1111111", "5555555", "6666666"):
        assert digits not in text


def test_account_ids_in_tracebacks_are_masked() -> None:
    out = io.StringIO()
    configure_logging("json", "info", stream=out, environ={})
    try:
        raise RuntimeError("no permission for DU1234567")
    except RuntimeError:
        get_logger("t").exception("order_failed")
    (record,) = json_records(out)
    assert record["level"] == "error"
    assert "RuntimeError: no permission for *****4567" in record["exception"]


# --- rate limiting ------------------------------------------------------------------------


def test_rate_limited_events_pass_five_then_one_summary_after_the_window() -> None:
    out = io.StringIO()
    clock = FakeClock()
    configure_logging("auto", "info", stream=out, environ=JOURNAL, clock=clock)
    log = get_logger("daemon.flow.guards")
    for i in range(12):
        log.warning("bad_tick", rate_limited=True, price=-1.0, seq=i)
        clock.now += 1.0
    records = journal_records(out)
    assert [r["seq"] for _, r in records] == [0, 1, 2, 3, 4]
    assert all("rate_limited" not in r for _, r in records)

    clock.now = 1000.0 + 60.0  # the first window [1000, 1060) has ended
    log.warning("bad_tick", rate_limited=True, price=-1.0, seq=12)
    prio, summary = journal_records(out)[5]
    assert prio == 4
    assert summary["event"] == "log_suppressed"
    assert summary["suppressed_event"] == "bad_tick"
    assert summary["count"] == 7
    assert summary["window_s"] == 60
    assert summary["logger"] == "daemon.flow.guards"
    assert journal_records(out)[6][1]["seq"] == 12  # a fresh window lets it through
    assert len(journal_records(out)) == 7


def test_rate_limit_is_per_event_and_rate_key_and_ignores_unmarked_events() -> None:
    out = io.StringIO()
    clock = FakeClock()
    configure_logging("json", "info", stream=out, environ={}, clock=clock)
    log = get_logger("t")
    for _ in range(8):
        log.warning("farm_flap", rate_limited=True, rate_key="usfarm")
        log.warning("farm_flap", rate_limited=True, rate_key="cashfarm")
        log.warning("connected")
    records = json_records(out)
    assert sum(r["event"] == "connected" for r in records) == 8
    assert sum(r.get("rate_key") == "usfarm" for r in records) == 5
    assert sum(r.get("rate_key") == "cashfarm" for r in records) == 5

    clock.now += 60.0
    flush_suppressed()
    summaries = [r for r in json_records(out) if r["event"] == "log_suppressed"]
    assert sorted((s["rate_key"], s["count"]) for s in summaries) == [
        ("cashfarm", 3),
        ("usfarm", 3),
    ]
    flush_suppressed()
    assert len(json_records(out)) == len(records) + 2  # reported once only


def test_no_summary_before_the_window_ends_unless_forced() -> None:
    out = io.StringIO()
    clock = FakeClock()
    configure_logging("json", "info", stream=out, environ={}, clock=clock)
    log = get_logger("t")
    for _ in range(6):
        log.info("bad_tick", rate_limited=True)
    clock.now += 59.0
    flush_suppressed()
    log.info("heartbeat")
    assert [r["event"] for r in json_records(out)] == ["bad_tick"] * 5 + ["heartbeat"]
    flush_suppressed(force=True)  # at shutdown
    last = json_records(out)[-1]
    assert (last["event"], last["level"], last["count"]) == ("log_suppressed", "info", 1)


# --- stdlib routing and file --------------------------------------------------------------


def test_stdlib_records_use_the_same_format_and_ib_async_info_is_quiet() -> None:
    out = io.StringIO()
    configure_logging("auto", "info", stream=out, environ=JOURNAL)
    logging.getLogger("ib_async.client").info("Connected")
    logging.getLogger("ib_async.wrapper").error(
        "position: %s", Position(account="DU1234567", qty=1)
    )
    logging.getLogger("some.library").warning("retry %d of %d", 2, 3, extra={"host": "gw"})
    records = journal_records(out)
    assert [p for p, _ in records] == [3, 4]
    wrapper, library = (r for _, r in records)
    assert wrapper["event"] == "position: Position(account='*****4567', qty=1)"
    assert wrapper["logger"] == "ib_async.wrapper"
    assert wrapper["level"] == "error"
    assert wrapper["timestamp"].endswith("Z")
    assert library["event"] == "retry 2 of 3"
    assert library["host"] == "gw"


def test_library_level_is_configurable() -> None:
    out = io.StringIO()
    configure_logging("json", "debug", stream=out, environ={}, library_level="debug")
    logging.getLogger("ib_async.client").info("Connected")
    assert [r["event"] for r in json_records(out)] == ["Connected"]


def test_rotating_file_gets_json_without_prefix(tmp_path: Path) -> None:
    out = io.StringIO()
    path = tmp_path / "logs" / "orderflowd.jsonl"
    configure_logging("auto", "info", path, stream=out, environ=JOURNAL)
    get_logger("t").warning("farm_down", farm="usfarm", account="DU1234567")
    logging.getLogger("ib_async.ib").warning("stdlib says hi")

    handlers = [
        h
        for h in logging.getLogger().handlers
        if isinstance(h, logging.handlers.RotatingFileHandler)
    ]
    assert [(h.maxBytes, h.backupCount) for h in handlers] == [(10 * 1024 * 1024, 5)]
    for h in handlers:
        h.flush()
    file_lines = path.read_text(encoding="utf-8").splitlines()
    assert all(line.startswith("{") for line in file_lines)
    records = [json.loads(line) for line in file_lines]
    assert [r["event"] for r in records] == ["farm_down", "stdlib says hi"]
    assert records[0]["account"] == "*****4567"
    assert [p for p, _ in journal_records(out)] == [4, 4]


def test_ib_async_lines_for_tws_messages_are_left_to_the_daemon_s_own_event() -> None:
    # The connection logs each TWS message once (`tws_message`, with the catalogue's name and
    # action); ib_async's own copy, and the Trade it dumps with it, would only repeat it.
    out = io.StringIO()
    configure_logging("json", "info", stream=out, environ={})
    wrapper = logging.getLogger("ib_async.wrapper")
    wrapper.error("Error 202, reqId 12: Order Canceled - reason:")
    wrapper.info("Warning 2104, reqId -1: Market data farm connection is OK:usfarm")
    wrapper.warning("Canceled order: Trade(contract=Future(conId=1), order=...)")
    wrapper.error("orderStatus: No order found for orderId 5 and clientId 7")
    logging.getLogger("ib_async.client").error("Error 504 somewhere else")
    assert [r["event"] for r in json_records(out)] == [
        "orderStatus: No order found for orderId 5 and clientId 7",
        "Error 504 somewhere else",
    ]


def _file_events(path: Path) -> list[str]:
    for handler in logging.getLogger().handlers:
        handler.flush()
    return [json.loads(line)["event"] for line in path.read_text(encoding="utf-8").splitlines()]


def test_reopen_after_logrotate_writes_a_new_file_at_the_path(tmp_path: Path) -> None:
    out = io.StringIO()
    path = tmp_path / "orderflowd.jsonl"
    configure_logging("json", "info", path, stream=out, environ={})
    get_logger("t").info("before_rotation")
    rotated = path.rename(tmp_path / "orderflowd.jsonl.1")  # what logrotate does
    get_logger("t").info("after_rename")  # still the open file, now under its new name

    reopen_log_files()
    get_logger("t").info("after_reopen")

    assert _file_events(rotated) == ["before_rotation", "after_rename"]
    assert _file_events(path) == ["sighup", "after_reopen"]
    sighup = json_records(out)[2]
    assert sighup["event"] == "sighup"
    assert sighup["log_files"] == [str(path)]


def test_a_file_that_cannot_be_reopened_keeps_the_old_one(tmp_path: Path) -> None:
    out = io.StringIO()
    logs = tmp_path / "logs"
    path = logs / "orderflowd.jsonl"
    configure_logging("json", "info", path, stream=out, environ={})
    moved = logs.rename(tmp_path / "gone")  # the directory is no longer there

    reopen_log_files()
    get_logger("t").info("still_logged")

    assert not path.exists()
    assert _file_events(moved / "orderflowd.jsonl") == [
        "log_file_reopen_failed",
        "sighup",
        "still_logged",
    ]
    assert [r["event"] for r in json_records(out)] == [
        "log_file_reopen_failed",
        "sighup",
        "still_logged",
    ]


def test_sighup_without_a_log_file_is_logged_and_harmless() -> None:
    out = io.StringIO()
    configure_logging("json", "info", stream=out, environ={})
    reopen_log_files()
    assert json_records(out)[0]["event"] == "sighup"
    assert json_records(out)[0]["log_files"] == []
