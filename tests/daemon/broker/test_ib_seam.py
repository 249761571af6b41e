"""The broker edge is one package: no module of `daemon` outside `daemon/broker/ib/` imports
ib_async (parsed with `ast`: strings, comments and logger names do not count)."""

from __future__ import annotations

import ast
from pathlib import Path

import daemon

ROOT = Path(daemon.__file__).resolve().parent
SEAM = ROOT / "broker" / "ib"
LIBRARY = "ib_async"


def _imported(tree: ast.AST) -> list[tuple[int, str]]:
    """Every module an `import` or `from ... import` names (relative ones resolved as '.')."""
    found: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.append((node.lineno, node.module))
    return found


def _imports_library(module: str) -> bool:
    return module == LIBRARY or module.startswith(LIBRARY + ".")


def test_only_the_seam_imports_ib_async() -> None:
    offenders = [
        f"{path.relative_to(ROOT.parent)}:{line} imports {module}"
        for path in sorted(ROOT.rglob("*.py"))
        if not path.is_relative_to(SEAM)
        for line, module in _imported(ast.parse(path.read_text(), str(path)))
        if _imports_library(module)
    ]
    assert offenders == []


def test_the_check_sees_every_kind_of_import() -> None:
    source = (
        "import ib_async\n"
        "import ib_async.util as u\n"
        "from ib_async import IB\n"
        "from ib_async.contract import Future\n"
        "if TYPE_CHECKING:\n"
        "    from ib_async import Ticker\n"
        "def f():\n"
        "    from ib_async import Trade\n"
        "x = 'import ib_async'  # from ib_async import IB\n"
        "from ib_async_other import X\n"
    )
    found = [m for _, m in _imported(ast.parse(source)) if _imports_library(m)]
    assert found == [
        "ib_async",
        "ib_async.util",
        "ib_async",
        "ib_async.contract",
        "ib_async",
        "ib_async",
    ]


def test_the_seam_is_where_ib_async_is_used() -> None:
    users = {
        path.relative_to(SEAM).as_posix()
        for path in SEAM.rglob("*.py")
        if any(_imports_library(m) for _, m in _imported(ast.parse(path.read_text())))
    }
    assert {"client.py", "errors.py", "market.py", "orders.py"} <= users
