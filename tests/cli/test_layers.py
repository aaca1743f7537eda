"""The command line's place in the layers: commands use the SDK (or one service function), never the store."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CLI = sorted((ROOT / "covex" / "cli").glob("*.py"))


def _imports(path: Path) -> set[str]:
    """Every module ``path`` imports, at the top or inside a function (``from covex.cli import x`` counts as both)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return found


def _offenders(paths: list[Path], banned: str, root: Path = ROOT) -> dict[str, list[str]]:
    """The modules under ``banned`` that each of ``paths`` imports, for those that import any."""
    found = {
        str(path.relative_to(root)): sorted(m for m in _imports(path) if m == banned or m.startswith(banned + "."))
        for path in paths
    }
    return {path: modules for path, modules in found.items() if modules}


def test_the_modules_are_found() -> None:
    names = {path.stem for path in CLI}
    assert {"main", "context", "server", "access", "webhooks"} <= names


def test_no_command_imports_the_store() -> None:
    """Database work goes through the SDK or a service function (the server and maintenance commands: the service)."""
    assert {} == _offenders(CLI, "covex.store")


def test_command_modules_import_the_context_never_main() -> None:
    """``main`` assembles the commands, so a command module importing it back would be a cycle."""
    assert {} == _offenders([p for p in CLI if p.stem not in ("main", "__init__")], "covex.cli.main")


def test_the_checks_see_imports_inside_functions(tmp_path: Path) -> None:
    module = tmp_path / "lazy.py"
    module.write_text("def f():\n    from covex.store import database\n    import covex.cli.main\n", encoding="utf-8")
    assert ({"lazy.py": ["covex.store", "covex.store.database"]}, {"lazy.py": ["covex.cli.main"]}) == (
        _offenders([module], "covex.store", tmp_path),
        _offenders([module], "covex.cli.main", tmp_path),
    )
