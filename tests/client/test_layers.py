"""The SDK's place in the layers: it reaches the service only through the embedded backend, the store never."""

from __future__ import annotations

import ast
from pathlib import Path

CLIENT = Path(__file__).resolve().parents[2] / "covex" / "client"
# The embedded backend is the service in this process: calling it is its whole job.
IN_PROCESS = {"embedded.py"}


def _runtime_imports(tree: ast.AST) -> set[str]:
    """Modules imported when the code runs, lazily inside functions too; ``if TYPE_CHECKING:`` blocks aside."""
    found: set[str] = set()
    for node in ast.iter_child_nodes(tree):
        if isinstance(node, ast.If) and isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING":
            found |= set().union(*(_runtime_imports(n) for n in node.orelse))
            continue
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
        found |= _runtime_imports(node)
    return found


def _below(modules: set[str], *packages: str) -> list[str]:
    return sorted(m for m in modules if any(m == p or m.startswith(p + ".") for p in packages))


def test_the_sdk_imports_neither_the_service_nor_the_store() -> None:
    offenders = {}
    for path in sorted(CLIENT.rglob("*.py")):
        imports = _runtime_imports(ast.parse(path.read_text(encoding="utf-8")))
        banned = ("covex.store",) if path.name in IN_PROCESS else ("covex.service", "covex.store")
        if found := _below(imports, *banned):
            offenders[path.name] = found
    assert {} == offenders


def test_the_check_sees_lazy_imports_and_skips_type_checking_blocks() -> None:
    source = """
from typing import TYPE_CHECKING
if TYPE_CHECKING:
    from covex.service import RegistryService
def verify():
    from covex.service.audit import verify_file
"""
    assert ["covex.service.audit"] == _below(_runtime_imports(ast.parse(source)), "covex.service")
