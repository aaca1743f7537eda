"""``covex --version``: the installed package's version, and nothing else runs."""

from __future__ import annotations

import subprocess
import sys
from importlib import metadata
from pathlib import Path

from typer.testing import CliRunner

import covex
from covex.cli import app


def test_version_is_the_installed_package_version() -> None:
    assert metadata.version("covex") == covex.__version__


def test_version_option_prints_it_and_exits_0(tmp_path: Path) -> None:
    # Eager: no registry is opened or created, even where COVEX_URI points.
    r = CliRunner().invoke(app, ["--version"], env={"COVEX_URI": str(tmp_path / "none")})
    assert (0, f"covex {covex.__version__}\n") == (r.exit_code, r.stdout)
    assert not (tmp_path / "none").exists()


def test_version_from_a_shell() -> None:
    r = subprocess.run([sys.executable, "-m", "covex", "--version"], capture_output=True, text=True, timeout=60)
    assert (0, f"covex {covex.__version__}\n", "") == (r.returncode, r.stdout, r.stderr)
