"""The TWS code catalogue, and its mirror of ib_async's warning classification."""

from __future__ import annotations

import logging
import re

import pytest
from ib_async import IB

from daemon.broker import tws_errors
from daemon.broker.tws_errors import Category, Severity, lookup

LISTED = {
    100, 103, 105, 110, 135, 160, 161, 162, 200, 201, 202, 321, 326, 354, 366, 502, 504,
    1100, 1101, 1102, 1300, 2103, 2104, 2105, 2106, 2107, 2108, 2110, 2119, 2157, 2158,
    10089, 10090, 10147, 10148, 10167, 10189, 10190, 10197,
}  # fmt: skip


def test_catalogue_holds_exactly_the_listed_codes() -> None:
    assert set(tws_errors.CODES) == LISTED


@pytest.mark.parametrize("code", sorted(LISTED))
def test_entry_is_complete(code: int) -> None:
    entry = lookup(code)
    assert entry.code == code
    assert entry.known
    assert re.fullmatch(r"[a-z][a-z0-9]*(_[a-z0-9]+)*", entry.name)
    assert entry.meaning.strip()
    assert entry.action.strip()
    assert entry.category is not Category.UNKNOWN


def test_names_are_unique() -> None:
    names = [entry.name for entry in tws_errors.CODES.values()]
    assert len(names) == len(set(names))


def test_catalogue_is_read_only() -> None:
    with pytest.raises(TypeError):
        tws_errors.CODES[1] = lookup(100)  # type: ignore[index]


def test_client_id_in_use_keeps_the_same_id() -> None:
    entry = lookup(326)
    assert entry.category is Category.CLIENT_ID
    assert "same" in entry.action
    assert "never" in entry.action


@pytest.mark.parametrize(
    ("code", "severity"),
    [
        (2100, Severity.WARNING),
        (2199, Severity.WARNING),
        (2200, Severity.ERROR),
        (99, Severity.ERROR),
        (1999, Severity.ERROR),
        (10999, Severity.ERROR),
    ],
)
def test_unknown_code_gets_generic_entry(code: int, severity: Severity) -> None:
    entry = lookup(code)
    assert entry.code == code
    assert not entry.known
    assert entry.category is Category.UNKNOWN
    assert entry.severity is severity
    assert str(code) in entry.meaning
    assert entry.action


def test_farm_and_connectivity_helpers() -> None:
    farms = {code for code in LISTED if tws_errors.is_farm(code)}
    assert farms == {2103, 2104, 2105, 2106, 2107, 2108, 2119, 2157, 2158}
    links = {code for code in LISTED if tws_errors.is_connectivity(code)}
    assert links == {502, 504, 1100, 1101, 1102, 1300, 2110}
    assert not tws_errors.is_farm(2150)
    assert not tws_errors.is_connectivity(1200)


def _classified_by_ib_async(codes: range, caplog: pytest.LogCaptureFixture) -> set[int]:
    """Codes ib_async's own `Wrapper.error` logs as warnings (system messages, reqId -1)."""
    wrapper = IB().wrapper
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="ib_async.wrapper"):
        for code in codes:
            wrapper.error(-1, code, "probe", "")
    found = set()
    for record in caplog.records:
        match = re.match(r"(Warning|Error) (\d+), reqId -1", record.getMessage())
        if record.name == "ib_async.wrapper" and match and match[1] == "Warning":
            found.add(int(match[2]))
    return found


@pytest.mark.parametrize("codes", [range(3000), range(10000, 10300)], ids=["0-2999", "10000s"])
def test_warning_set_matches_ib_async(codes: range, caplog: pytest.LogCaptureFixture) -> None:
    expected = _classified_by_ib_async(codes, caplog)
    assert expected  # the probe really sees ib_async's classification (2104, 10167)
    assert {c for c in codes if tws_errors.ib_async_treats_as_warning(c)} == expected


def test_render_markdown_has_one_row_per_code() -> None:
    text = tws_errors.render_markdown()
    lines = text.splitlines()
    assert lines[0].startswith("| Code | Name | Severity | Category | Meaning | Action |")
    rows = lines[2:]
    assert [int(row.split("|")[1]) for row in rows] == sorted(LISTED)
    for row in rows:
        assert len(re.findall(r"(?<!\\)\|", row)) == 7
    assert "| 326 | `client_id_in_use` | error | client_id |" in text
