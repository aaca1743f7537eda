"""scripts/setup: extras accumulate in one .venv, so scripts/serve and scripts/test never undo each other.

Runs the real script on a throwaway copy of the repository whose ``.venv/bin/python`` records each
``pip`` call instead of making it (everything else goes to this interpreter): no network, no minutes.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

FAKE_PYTHON = """#!/usr/bin/env bash
if [ "$1 $2" = "-m pip" ]; then
    echo "${@:3}" >>"$(dirname "$0")/pip.log"
    exit "${FAKE_PIP_STATUS:-0}"
fi
exec %s "$@"
"""


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    (tmp_path / "scripts").mkdir()
    shutil.copy2(ROOT / "scripts" / "setup", tmp_path / "scripts" / "setup")
    shutil.copy2(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    python = tmp_path / ".venv" / "bin" / "python"
    python.parent.mkdir(parents=True)
    python.write_text(FAKE_PYTHON % sys.executable)
    python.chmod(0o755)
    return tmp_path


@dataclass
class Ran:
    status: int
    installs: list[str]  # what each `pip install -e` of Covex was given
    stderr: str


Setup = Callable[..., Ran]


@pytest.fixture
def setup(repo: Path) -> Setup:
    """Run scripts/setup with COVEX_EXTRAS (None: unset) and a pip that exits with ``pip_status``."""

    def run(extras: str | None, *, pip_status: int = 0, check: bool = True) -> Ran:
        log = repo / ".venv" / "bin" / "pip.log"
        log.unlink(missing_ok=True)
        env = {"PATH": "/usr/bin:/bin", "FAKE_PIP_STATUS": str(pip_status)}
        if extras is not None:
            env["COVEX_EXTRAS"] = extras
        r = subprocess.run(
            ["bash", str(repo / "scripts" / "setup")], env=env, capture_output=True, text=True, timeout=60
        )
        calls = log.read_text().splitlines() if log.exists() else []
        installs = [c.removeprefix("install --quiet -e ") for c in calls if " -e " in c]
        if check and r.returncode != 0:
            pytest.fail(f"scripts/setup exited with {r.returncode}:\n{r.stderr}")
        return Ran(r.returncode, installs, r.stderr)

    return run


def test_serve_then_test_then_serve_installs_twice(setup: Setup) -> None:
    assert [".[ml,s3]"] == setup("s3,ml").installs
    assert [".[dev,explain,ml,s3,serving,spark]"] == setup("dev").installs  # dev adds serving, spark and explain
    assert [] == setup("s3,ml").installs  # dev brought them: nothing to do
    assert [] == setup(None).installs  # the default is dev
    assert [] == setup("ml").installs


def test_test_then_serve_installs_once(setup: Setup) -> None:
    assert [".[dev,explain,ml,s3,serving,spark]"] == setup(None).installs
    assert [] == setup("s3,ml").installs
    assert [] == setup("dev").installs


def test_a_changed_pyproject_reinstalls_every_extra_asked_for_so_far(setup: Setup, repo: Path) -> None:
    setup("s3")
    setup("ml")
    pyproject = repo / "pyproject.toml"
    pyproject.write_text(pyproject.read_text().replace('description = "', 'description = "Changed. ', 1))
    assert [".[ml,s3]"] == setup("s3").installs
    assert [] == setup("ml,s3").installs


def test_a_failed_install_is_tried_again(setup: Setup) -> None:
    assert 0 != setup("s3,ml", pip_status=1, check=False).status
    assert [".[ml,s3]"] == setup("s3,ml").installs


def test_an_unknown_extra_is_refused_by_name(setup: Setup) -> None:
    ran = setup("s3,gpu", check=False)
    assert (1, []) == (ran.status, ran.installs)
    assert "COVEX_EXTRAS names no extra of pyproject.toml: gpu" in ran.stderr


def test_the_stamp_of_earlier_versions_is_replaced(setup: Setup, repo: Path) -> None:
    old = repo / ".venv" / ".covex-installed"
    old.write_text("0123 dev\n")
    assert [".[dev,explain,ml,s3,serving,spark]"] == setup("dev").installs
    assert not old.exists()
