"""The generated reference pages are current, and a setting without a description is caught."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, Field

from daemon import reference
from daemon.broker import tws_errors


class _Documented(BaseModel):
    """A section."""

    size: int = Field(default=1, description="How many.")


class _Forgotten(BaseModel):
    """Another section."""

    size: int = Field(default=1, description="How many.")
    colour: str = "red"


class _Config(BaseModel):
    good: _Documented = Field(default_factory=_Documented, description="Fine.")
    bad: _Forgotten = Field(default_factory=_Forgotten, description="Has a gap.")
    loose: int = 3


def test_the_committed_pages_are_what_the_code_generates() -> None:
    assert reference.stale_pages() == [], "run: python -m daemon.reference"


def test_every_setting_has_a_description() -> None:
    assert reference.undocumented() == []


def test_a_setting_without_a_description_is_named() -> None:
    assert reference.undocumented(_Config) == ["bad.colour", "loose"]


def test_every_setting_and_code_appears_on_its_page() -> None:
    config = reference.config_reference()
    for name, info in reference.Settings.model_fields.items():
        section = info.annotation
        assert isinstance(section, type)
        assert issubclass(section, BaseModel)
        assert f"## `[{name}]`" in config
        for key in section.model_fields:
            assert f"ORDERFLOWD_{name.upper()}__{key.upper()}" in config
    errors = reference.error_catalogue()
    assert all(f"| {code} | `{c.name}` |" in errors for code, c in tws_errors.CODES.items())
    fixes = errors.split("## Codes that need a person")[1]
    assert all(f"| {code} | " in fixes for code in tws_errors.FIXES)


def test_check_mode_reports_a_stale_page_and_writing_fixes_it(tmp_path: Path) -> None:
    assert reference.main(["--docs", str(tmp_path), "--check"]) == 1
    assert reference.main(["--docs", str(tmp_path)]) == 0
    assert reference.main(["--docs", str(tmp_path), "--check"]) == 0
    (tmp_path / reference.CONFIG_PAGE).write_text("edited by hand\n", encoding="utf-8")
    assert reference.stale_pages(tmp_path) == [reference.CONFIG_PAGE]
