"""The ML package's public surface, its place in the layers, and what it says without the ``ml`` extra."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

import covex
import covex.ml
from covex.extras import MissingExtra
from covex.ml import log_model, register_model

ROOT = Path(__file__).resolve().parents[2]


def _imports(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
    return found


@pytest.mark.parametrize("layer", ["client", "domain"])
def test_the_sdk_and_the_domain_never_import_the_ml_package(layer: str) -> None:
    """Data flows downward: covex.ml uses the SDK; the SDK (even lazily, inside a function) never uses covex.ml."""
    offenders = {
        str(path.relative_to(ROOT)): sorted(m for m in _imports(path) if m == "covex.ml" or m.startswith("covex.ml."))
        for path in sorted((ROOT / "covex" / layer).rglob("*.py"))
    }
    assert {} == {path: modules for path, modules in offenders.items() if modules}


def test_the_client_no_longer_registers_ml_models() -> None:
    assert (False, False) == (hasattr(covex.Client, "log_model"), hasattr(covex.Client, "register_model"))


def test_without_the_extra_log_model_and_register_model_name_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "mlflow", None)  # imports of mlflow fail, as where it is not installed
    with covex.Client(tmp_path / "data") as c:
        with pytest.raises(MissingExtra, match=r"log_model needs the 'ml' extra.*pip install 'covex\[ml\]'") as caught:
            log_model(c, lambda frame: frame, "churn")
        assert isinstance(caught.value, ModuleNotFoundError) and isinstance(caught.value, covex.CovexError)
        assert "mlflow" == caught.value.name
        with pytest.raises(MissingExtra, match="register_model needs the 'ml' extra"):
            register_model(c, "runs:/0123abcd/model", "churn", tracking_uri="http://127.0.0.1:9")
    assert not (tmp_path / "data").exists()  # nothing was written
