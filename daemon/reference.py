"""Reference pages generated from the code: the configuration and the TWS code catalogue.

`python -m daemon.reference` writes `docs/configuration.md` and `docs/tws-errors.md`;
`--check` only compares and exits 1 when a page is out of date (the test suite does the same),
so a setting or a code cannot be added without its documentation.
"""

from __future__ import annotations

import argparse
import sys
import types
import typing
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pydantic import BaseModel
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined

from daemon.broker import tws_errors
from daemon.settings import ENV_NESTED_DELIMITER, ENV_PREFIX, Settings

DOCS_DIR = Path(__file__).resolve().parent.parent / "docs"
CONFIG_PAGE = "configuration.md"
ERRORS_PAGE = "tws-errors.md"

_CONFIG_HEAD = """# Configuration reference

Generated from `daemon/settings/` by `python -m daemon.reference`; do not edit by hand.

Every setting has a default; a TOML file (`--config`, default `config/orderflowd.toml`) sets
what differs, one `[section]` per table below. Priority, highest first: command line
(`--set section.key=value`, `--port`, ...) > environment (`ORDERFLOWD_SECTION__KEY`) > `.env`
file > TOML file > defaults. Unknown keys are errors in every layer, with the closest known key
suggested. `orderflowd check-config` prints the effective configuration.
"""

_ERRORS_HEAD = """# TWS message codes

Generated from `daemon/broker/tws_catalogue.py` by `python -m daemon.reference`; do not edit by
hand. The meaning follows IB's public message-code list; the action is what orderflowd does, or
what it asks of you. A code not listed is logged with its text as a warning (2100-2199) or an
error (any other), and an order it names is reconciled.
"""


def undocumented(model: type[BaseModel] = Settings) -> list[str]:
    """Dotted names of the settings (and sections) that have no description."""
    missing = []
    for name, info in model.model_fields.items():
        if not (info.description or "").strip():
            missing.append(name)
        section = _section_model(info)
        if section is not None:
            missing += [f"{name}.{key}" for key in undocumented(section)]
    return missing


def config_reference(model: type[BaseModel] = Settings) -> str:
    """The configuration page: one table per section (key, type, default, meaning)."""
    parts = [_CONFIG_HEAD]
    for name, info in model.model_fields.items():
        section = _section_model(info)
        if section is None:
            continue
        parts.append(f"\n## `[{name}]`\n\n{_sentence(info.description)}\n")
        parts.append("| Key | Type | Default | Meaning |\n|---|---|---|---|")
        for key, field in section.model_fields.items():
            env = f"{ENV_PREFIX}{name.upper()}{ENV_NESTED_DELIMITER}{key.upper()}"
            meaning = f"{_cell(_sentence(field.description))} <br>Environment: `{env}`"
            parts.append(
                f"| `{key}` | {_cell(_type_name(field.annotation))} "
                f"| {_cell(_default(field))} | {meaning} |"
            )
    return "\n".join(parts) + "\n"


def error_catalogue() -> str:
    """The TWS code page: the catalogue as a table, then what a person does about some codes."""
    fixes = ["| Code | Name | What you do |", "|---:|---|---|"]
    for code, fix in sorted(tws_errors.FIXES.items()):
        fixes.append(f"| {code} | `{tws_errors.lookup(code).name}` | {_cell(fix)} |")
    return (
        f"{_ERRORS_HEAD}\n{tws_errors.render_markdown()}\n## Codes that need a person\n\n"
        "What `orderflowd doctor` tells you to do when it meets them.\n\n" + "\n".join(fixes) + "\n"
    )


def pages() -> dict[str, str]:
    return {CONFIG_PAGE: config_reference(), ERRORS_PAGE: error_catalogue()}


def stale_pages(docs_dir: Path = DOCS_DIR) -> list[str]:
    """Pages missing from `docs_dir` or different from what the code generates."""
    stale = []
    for name, text in pages().items():
        path = docs_dir / name
        if not path.is_file() or path.read_text(encoding="utf-8") != text:
            stale.append(name)
    return stale


def _section_model(info: FieldInfo) -> type[BaseModel] | None:
    annotation = info.annotation
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    return None


def _sentence(text: str | None) -> str:
    return " ".join((text or "").split())


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def _type_name(annotation: Any) -> str:
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin is typing.Annotated:
        return _type_name(args[0])
    if origin is typing.Literal:
        return " | ".join(f'`"{a}"`' if isinstance(a, str) else f"`{a}`" for a in args)
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_type_name(a) for a in args)
    if origin is not None:
        inner = ", ".join(_type_name(a) for a in args)
        return f"{getattr(origin, '__name__', str(origin))}[{inner}]"
    if annotation is type(None):
        return "none"
    return getattr(annotation, "__name__", str(annotation))


def _default(info: FieldInfo) -> str:
    if info.default_factory is not None:
        value = info.default_factory()  # type: ignore[call-arg]
    elif info.default is PydanticUndefined:
        return "(required)"
    else:
        value = info.default
    if value is None:
        return "none"
    if isinstance(value, bool):
        return f"`{str(value).lower()}`"
    if isinstance(value, str):
        return f'`"{value}"`'
    if isinstance(value, Path):
        return f'`"{value}"`'
    return f"`{value}`"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m daemon.reference", description=__doc__)
    parser.add_argument("--docs", type=Path, default=DOCS_DIR, help="docs directory")
    parser.add_argument("--check", action="store_true", help="compare only; 1 if out of date")
    args = parser.parse_args(argv)
    missing = undocumented()
    if missing:
        print(f"settings without a description: {', '.join(missing)}", file=sys.stderr)
        return 1
    stale = stale_pages(args.docs)
    if args.check:
        for name in stale:
            print(f"{args.docs / name} is out of date: run python -m daemon.reference")
        return 1 if stale else 0
    args.docs.mkdir(parents=True, exist_ok=True)
    for name, text in pages().items():
        (args.docs / name).write_text(text, encoding="utf-8")
        print(f"wrote {args.docs / name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
