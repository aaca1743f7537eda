"""Without the ``[ml]`` extra, the commands and SDK calls that need it say which extra to install."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from covex.cli import app
from covex.extras import MissingExtra, needs_extra
from tests import support

INSTALL = "pip install 'covex[ml]'"


@pytest.fixture
def config(tmp_path: Path) -> Path:
    support.make_tree(tmp_path / "m", {"MLmodel": "flavors: {}\n"})
    path = tmp_path / "registry.yaml"
    path.write_text("model: regtest\nmodel_source:\n  mlflow_model: ./m\n")
    return path


@pytest.fixture
def without_mlflow(monkeypatch: pytest.MonkeyPatch) -> None:
    """Imports of mlflow fail here as where it is not installed (None in sys.modules halts them)."""
    monkeypatch.setitem(sys.modules, "mlflow", None)


def test_covex_register_names_the_extra(config: Path, tmp_path: Path) -> None:
    """The real entry point in a process where mlflow cannot be imported: one line, no traceback."""
    block_mlflow = "import sys; sys.modules['mlflow'] = None\nfrom covex.cli.main import main\nmain()"
    command = ["--uri", str(tmp_path / "data"), "register", "--config", str(config)]
    for extra in ([], ["--dry-run"]):
        r = subprocess.run(
            [sys.executable, "-c", block_mlflow, *command, *extra], capture_output=True, text=True, timeout=120
        )
        assert 1 == r.returncode, r.stderr
        assert [f"error: 'covex register' needs the 'ml' extra, and mlflow is not installed: {INSTALL}"] == (
            r.stderr.splitlines()
        )
        assert "Traceback" not in r.stdout + r.stderr
    assert not (tmp_path / "data").exists()


@pytest.mark.usefixtures("without_mlflow")
def test_covex_import_mlflow_names_the_extra(tmp_path: Path) -> None:
    r = CliRunner().invoke(
        app,
        ["--uri", str(tmp_path / "data"), "import", "mlflow", "--from", "http://127.0.0.1:9"],
        env={"COLUMNS": "200"},
    )
    assert r.exception is None or isinstance(r.exception, SystemExit)
    assert (1, [f"error: 'covex import mlflow' needs the 'ml' extra, and mlflow is not installed: {INSTALL}"]) == (
        r.exit_code,
        r.stderr.splitlines(),
    )


def test_only_missing_optional_packages_are_reworded() -> None:
    with pytest.raises(ModuleNotFoundError) as caught, needs_extra("this"):
        import covex_no_such_module  # type: ignore[import-not-found]  # noqa: F401
    assert not isinstance(caught.value, MissingExtra)
