"""Where there is no registry, ``covex`` says so on reads and creates nothing.

Writes and ``covex init`` create one, and say so.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from covex.cli import app
from tests.support import CliResult


@pytest.fixture(autouse=True)
def _in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # the default data folder is ./covex-data


def covex(*args: str, uri: str | None = None) -> CliResult:
    env = {"COVEX_URI": uri, "COVEX_TOKEN": None, "COVEX_ARTIFACTS": None, "COLUMNS": "200"}
    r = CliRunner().invoke(app, list(args), env=env)
    if r.exception is not None and not isinstance(r.exception, SystemExit):
        raise r.exception
    return CliResult(r.exit_code, r.stdout, r.stderr)


@pytest.mark.parametrize(
    "args",
    [
        ("models", "list"),
        ("models", "show", "churn"),
        ("versions", "show", "models:/churn@champion"),
        ("versions", "search"),
        ("download", "models:/churn/1", "out"),
        ("whoami",),
        ("users", "list"),
        ("audit", "verify"),
        ("gc",),
    ],
)
def test_a_read_in_a_folder_without_a_registry_says_so_and_creates_nothing(
    tmp_path: Path, args: tuple[str, ...]
) -> None:
    r = covex(*args)
    expected = (
        f"error: no Covex registry at {tmp_path / 'covex-data'}: create one with 'covex init' or any write "
        "(such as creating a model), or point --uri / COVEX_URI at an existing registry"
    )
    assert (3, [expected]) == (r.exit_code, r.stderr.splitlines())
    assert [] == list(tmp_path.iterdir())


def test_a_mistyped_uri_is_not_a_new_registry(tmp_path: Path) -> None:
    assert 0 == covex("init", "data").exit_code
    r = covex("models", "list", uri=str(tmp_path / "dta"))
    assert (3, True) == (
        r.exit_code,
        f"no Covex registry at {tmp_path / 'dta'}: create one with 'covex init " in r.stderr,
    )
    assert not (tmp_path / "dta").exists()


def test_the_first_write_creates_the_registry_and_says_so(tmp_path: Path) -> None:
    r = covex("models", "create", "churn")
    assert (0, "created model churn\n") == (r.exit_code, r.stdout)
    assert [f"created a new Covex registry at {tmp_path / 'covex-data'}"] == r.stderr.splitlines()
    r = covex("models", "create", "fraud")
    assert (0, "") == (r.exit_code, r.stderr)  # said once, when it happened
    assert 0 == covex("models", "show", "churn").exit_code


def test_init(tmp_path: Path) -> None:
    r = covex("init")
    assert (0, "", [f"created a new Covex registry at {tmp_path / 'covex-data'}"]) == (
        r.exit_code,
        r.stdout,
        r.stderr.splitlines(),
    )
    assert (tmp_path / "covex-data" / "covex.db").is_file()
    r = covex("init")
    assert (0, f"a Covex registry already exists at {tmp_path / 'covex-data'}; nothing to do\n", "") == (
        r.exit_code,
        r.stdout,
        r.stderr,
    )
    r = covex("init", "elsewhere/data")
    assert (0, [f"created a new Covex registry at {tmp_path / 'elsewhere' / 'data'}"]) == (
        r.exit_code,
        r.stderr.splitlines(),
    )
    assert 0 == covex("models", "list", uri="elsewhere/data").exit_code


def test_init_with_a_sqlite_url(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'reg.db'}"
    r = covex("models", "list", uri=url)
    assert (3, True) == (r.exit_code, f"no Covex registry at {tmp_path / 'reg.db'}" in r.stderr)
    assert not (tmp_path / "reg.db").exists()
    r = covex("init", url)
    assert (0, [f"created a new Covex registry at {tmp_path / 'reg.db'}"]) == (r.exit_code, r.stderr.splitlines())


@pytest.mark.postgres
def test_init_on_postgresql_brings_the_schema_up(postgres_url: str, tmp_path: Path) -> None:
    """A server database exists before Covex: init gives it the tables (or finds them), never says it created it."""
    r = covex("--artifacts", str(tmp_path), "init", postgres_url)
    assert (0, "") == (r.exit_code, r.stderr)
    assert (
        r.stdout.startswith("the Covex registry at postgresql+psycopg://") and "is ready (schema revision" in r.stdout
    )


@pytest.mark.parametrize(
    "args",
    [("db", "upgrade"), ("admin", "bootstrap")],
)
def test_other_commands_that_create_a_registry_say_so(tmp_path: Path, args: tuple[str, ...]) -> None:
    r = covex(*args)
    assert 0 == r.exit_code, r.stderr
    assert f"created a new Covex registry at {tmp_path / 'covex-data'}" == r.stderr.splitlines()[0]
    assert "created a new" not in covex(*args).stderr


@pytest.mark.parametrize(
    ("uri", "message"),
    [
        ("/proc/nope", "cannot create a Covex registry at /proc/nope: No such file or directory"),
        ("afile", "afile is a file, not a folder"),
        ("afile/below", "afile is a file, not a folder"),
    ],
)
def test_a_registry_that_cannot_be_made_is_one_line(tmp_path: Path, uri: str, message: str) -> None:
    (tmp_path / "afile").write_text("not a folder")
    for args in (("models", "create", "churn"), ("init", uri)):
        r = covex(*args, uri=uri)
        assert (2, 1, True) == (r.exit_code, len(r.stderr.splitlines()), message in r.stderr), r.stderr
    r = covex("models", "list", uri=uri)
    assert (3, True) == (r.exit_code, "no Covex registry at" in r.stderr)
