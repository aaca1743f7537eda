"""Fixtures of the ML tests: the example pipelines trained once, and the ``covex`` command on a registry."""

from __future__ import annotations

import importlib.util
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from typer.testing import CliRunner

import covex
from covex.cli import app
from tests.conftest import Registry

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def _example(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"covex_example_{name}", EXAMPLES / name / "train.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="session")
def trained(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Both examples trained once into temporary folders, each with its registry.yaml beside data/ and out/."""
    roots = {}
    for name in ("store_sales", "grid_coverage"):
        root = tmp_path_factory.mktemp(name)
        _example(name).train(root)
        shutil.copy(EXAMPLES / name / "registry.yaml", root / "registry.yaml")
        roots[name] = root
    return roots


@pytest.fixture
def copy_of(trained: dict[str, Path], tmp_path: Path) -> Callable[[str], Path]:
    """A private copy of a trained example (for tests that change its files); returns the config path."""

    def make(name: str) -> Path:
        root = tmp_path / name
        shutil.copytree(trained[name], root)
        return root / "registry.yaml"

    return make


@pytest.fixture
def write(trained: dict[str, Path], tmp_path: Path) -> Callable[[str], Path]:
    """Write a config into a copy-free folder beside the trained store-sales files (paths reach them)."""
    root = trained["store_sales"]
    counter = iter(range(1000))

    def make(body: str) -> Path:
        path = root / f"case-{tmp_path.name}-{next(counter)}.yaml"
        path.write_text(body, encoding="utf-8")
        return path

    return make


@pytest.fixture
def embedded(registries: Callable[[str, str], Registry]) -> Iterator[covex.Client]:
    """A client of an empty embedded registry (SQLite and a local folder)."""
    reg = registries("embedded", "sqlite")
    reg.reset()
    with reg.client() as c:
        yield c


@pytest.fixture(params=["embedded", "http"])
def cli_registry(request: pytest.FixtureRequest, registries: Callable[[str, str], Registry]) -> Registry:
    """An empty registry on SQLite, embedded and behind a server, for tests of the command line."""
    reg = registries(request.param, "sqlite")
    reg.reset()
    return reg


@pytest.fixture
def cli(cli_registry: Registry) -> Callable[..., Any]:
    """``covex`` on ``cli_registry`` as its admin: ``cli("register", "-c", path, env={...})``."""
    runner = CliRunner()

    def run(*args: str, env: dict[str, str] | None = None) -> Any:
        full = {
            "COVEX_URI": cli_registry.url,
            "COVEX_ARTIFACTS": cli_registry.settings.artifacts_url,
            "COVEX_TOKEN": cli_registry.settings.token or "",
            "COLUMNS": "300",
            **(env or {}),
        }
        result = runner.invoke(app, list(args), env=full)
        if result.exception and not isinstance(result.exception, SystemExit):
            raise result.exception
        return result

    return run
