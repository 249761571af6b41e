"""Rendering of `orderflowd doctor` results: a text table for people, JSON for machines."""

from __future__ import annotations

import json
import textwrap
from collections.abc import Sequence

from daemon.broker.doctor_model import CheckResult, Status, exit_code

_HEADERS = ("check", "result", "detail", "fix")
_WRAP = {"detail": 48, "fix": 60}


def render_table(results: Sequence[CheckResult], target: str) -> str:
    """One row per check (detail and fix wrapped), then a one-line verdict."""
    rows = [_cells(r) for r in results]
    widths = [
        max(len(_HEADERS[0]), *(len(r.check) for r in results)),
        max(len(_HEADERS[1]), *(len(r.status.value) for r in results)),
        _WRAP["detail"],
        _WRAP["fix"],
    ]
    rule = "+".join("-" * (w + 2) for w in widths)
    lines = [f"orderflowd doctor: {target}", rule, _line([[h] for h in _HEADERS], widths), rule]
    for row in rows:
        lines.append(_line(row, widths))
        lines.append(rule)
    lines.append(_verdict(results))
    return "\n".join(lines)


def render_json(results: Sequence[CheckResult], target: str) -> str:
    """`{"ok", "target", "checks": [{"check", "status", "detail", "fix"}]}`, indented."""
    doc = {
        "ok": exit_code(results) == 0,
        "target": target,
        "checks": [
            {"check": r.check, "status": r.status.value, "detail": r.detail, "fix": r.fix}
            for r in results
        ],
    }
    return json.dumps(doc, indent=2, ensure_ascii=False)


def _cells(result: CheckResult) -> list[list[str]]:
    return [
        [result.check],
        [result.status.value],
        textwrap.wrap(result.detail, _WRAP["detail"]) or [""],
        textwrap.wrap(result.fix, _WRAP["fix"]) or [""],
    ]


def _line(cells: list[list[str]], widths: list[int]) -> str:
    height = max(len(c) for c in cells)
    out = []
    for i in range(height):
        parts = [(c[i] if i < len(c) else "").ljust(w) for c, w in zip(cells, widths, strict=True)]
        out.append(" " + " | ".join(parts).rstrip())
    return "\n".join(out)


def _verdict(results: Sequence[CheckResult]) -> str:
    counts = {s: sum(r.status is s for r in results) for s in Status}
    summary = ", ".join(f"{n} {s.value}" for s, n in counts.items() if n)
    failed = [r.check for r in results if r.status is Status.FAIL]
    if failed:
        return f"NOT READY to trade ({summary}): fix {', '.join(failed)}"
    return f"ready to trade ({summary})"
