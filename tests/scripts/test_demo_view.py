"""The demo's live view: status lines from status.json, event lines from the JSON log."""

from __future__ import annotations

import importlib.util
import io
import json
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parents[2]


def _load() -> ModuleType:
    spec = importlib.util.spec_from_file_location("demo_view", ROOT / "scripts" / "demo_view.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


view = _load()


def _log(path: Path, *events: dict[str, object], partial: str = "") -> None:
    with path.open("a", encoding="utf-8") as f:
        f.write("".join(json.dumps(e) + "\n" for e in events) + partial)


def test_a_drop_and_the_way_back_are_shown_with_the_time_away(tmp_path: Path) -> None:
    log = tmp_path / "daemon.log"
    _log(
        log,
        {"event": "connection_state", "previous": "READY", "state": "DISCONNECTED"},
        {"event": "connection_state", "previous": "DISCONNECTED", "state": "CONNECTING"},
        {"event": "connection_state", "previous": "CONNECTING", "state": "DISCONNECTED"},
        {"event": "tick_rejected", "reason": "stale_quote"},  # not shown
    )
    log.open("a").write("not json at all\n")
    _log(log, partial='{"event": "fill", "side": "BUY", "sha')  # still being written
    ticks = iter(range(100))
    clock = lambda: float(next(ticks)) * 2  # noqa: E731
    rounds = iter([True, True, False])
    out = io.StringIO()

    def sleep(_: float) -> None:
        if log.read_text().endswith('"sha'):
            _log(log, partial='res": 1, "price": 5000.25, "ref": "ofd-1-P"}\n')
            _log(log, {"event": "connection_state", "previous": "SYNCING", "state": "READY"})

    view.watch(tmp_path, log, lambda: next(rounds), out, clock=clock, sleep=sleep)
    lines = out.getvalue().splitlines()
    assert lines == [
        "  0:02  > connection READY -> DISCONNECTED",
        "  0:02  > reconnect attempt: the gateway is not back yet",
        "  0:04  > fill BUY 1 @ 5000.25 (ofd-1-P)",
        "  0:04  > connection READY again 2 s after the drop: resubscribed, orders and fills "
        "reconciled",
    ]  # no status line: status.json was never written


def test_the_status_line_shows_price_cvd_position_and_pnl(tmp_path: Path) -> None:
    doc = {
        "state": "READY",
        "contract": "ESZ6",
        "last": 5001.25,
        "cvd_session": -1234.0,
        "reconnect_count": 2,
        "trading": {"state": "ACTIVE", "position": -1, "avg_price": 5002.0, "net_pnl": 30.5},
    }
    text = view.status_text(doc)
    for part in ("READY", "ESZ6", "5001.25", "-1,234", "-1 @ 5002.0", "+30.50 USD", "reconnects 2"):
        assert part in text
    assert "pos unknown" in view.status_text({"state": "CONNECTING"})
    flat = {**doc, "trading": {**doc["trading"], "position": 0}}
    assert "pos flat" in view.status_text(flat)
    assert view.read_status(tmp_path) is None  # not written yet
    (tmp_path / "status.json").write_text('{"state": "REA')  # a torn read is skipped
    assert view.read_status(tmp_path) is None


def test_an_untrusted_position_is_unknown_never_flat() -> None:
    # Disconnected with one contract open: status.json says position null (not trusted).
    doc = {
        "state": "DISCONNECTED",
        "trading": {"state": "ACTIVE", "position": None, "avg_price": 5002.0, "net_pnl": None},
    }
    text = view.status_text(doc)
    assert "pos unknown" in text
    assert "flat" not in text
