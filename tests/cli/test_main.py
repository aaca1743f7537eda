"""The ``covex`` command, invoked as a user would (embedded and against a server)."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path

import pytest
from typer.testing import CliRunner

from covex.cli import app
from tests.conftest import Registry
from tests.support import CliResult

Run = Callable[..., CliResult]


@pytest.fixture(params=["embedded", "http"])
def covex(request: pytest.FixtureRequest, registries) -> Run:
    reg: Registry = registries(request.param, "sqlite")
    reg.reset()
    return reg.cli


def test_help_guides_a_newcomer(covex: Run) -> None:
    r = covex("--help")
    assert 0 == r.exit_code
    for word in ("server", "models", "versions", "stages", "aliases", "download", "gc"):
        assert word in r.stdout


def test_full_lifecycle(covex: Run, tree, tmp_path: Path) -> None:
    src = tree({"model.pkl": b"w" * 10_000, "MLmodel": "flavors: {}"})
    assert 0 == covex("models", "create", "churn", "-d", "Churn classifier", "-t", "team=crm").exit_code
    r = covex("versions", "create", "churn", str(src), "-m", "auc=0.91", "-p", "C=1.0", "--json")
    assert 0 == r.exit_code, r.stderr
    v = r.json()
    assert (1, "READY", {"auc": 0.91}) == (v["version"], v["status"], v["metrics"])
    assert 0 == covex("aliases", "set", "churn", "champion", "1").exit_code
    assert 0 == covex("stages", "set", "churn", "1", "Production", "--archive-existing").exit_code
    shown = covex("versions", "show", "models:/churn@champion", "--json").json()
    assert ("Production", ["champion"]) == (shown["stage"], shown["aliases"])
    r = covex("download", "models:/churn/Production", str(tmp_path / "out"), "-q")
    assert 0 == r.exit_code, r.stderr
    assert (tmp_path / "out" / "model.pkl").read_bytes() == b"w" * 10_000
    hits = covex("versions", "search", "name = 'churn' AND metrics.auc > 0.9", "--json").json()
    assert [1] == [h["version"] for h in hits["items"]]
    table = covex("versions", "list", "churn").stdout
    assert "READY" in table and "Production" in table
    files = covex("versions", "files", "churn", "1", "--json").json()
    assert ["MLmodel", "model.pkl"] == [f["path"] for f in files]


def test_models_commands(covex: Run) -> None:
    covex("models", "create", "a")
    assert 0 == covex("models", "tag", "a", "k=v", "x=y").exit_code
    assert 0 == covex("models", "untag", "a", "x").exit_code
    assert 0 == covex("models", "update", "a", "-d", "desc").exit_code
    assert 0 == covex("models", "rename", "a", "b").exit_code
    m = covex("models", "show", "b", "--json").json()
    assert ("b", "desc", {"k": "v"}) == (m["name"], m["description"], m["tags"])
    listed = covex("models", "list", "-f", "tags.k = 'v'", "--json").json()
    assert ["b"] == [x["name"] for x in listed["items"]]


def test_delete_asks_unless_yes(covex: Run) -> None:
    covex("models", "create", "a")
    r = covex("models", "delete", "a", input="n\n")
    assert 0 != r.exit_code
    assert 0 == covex("models", "show", "a").exit_code
    assert 0 == covex("models", "delete", "a", "--yes").exit_code
    assert 3 == covex("models", "show", "a").exit_code


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (("models", "show", "ghost"), 3, "model 'ghost' does not exist"),
        (("models", "create", "bad..name"), 2, "'name' must not contain '..'"),
        (("versions", "search", "name = "), 2, "invalid filter"),
        (("versions", "create", "m", "--metric", "auc=high"), 2, "'--metric auc' must be a number"),
        (("models", "tag", "m", "novalue"), 2, "KEY=VALUE"),
    ],
)
def test_errors_are_one_line_with_exit_code(covex: Run, args: tuple[str, ...], code: int, message: str) -> None:
    covex("models", "create", "m")
    r = covex(*args)
    assert code == r.exit_code
    assert message in r.stderr
    assert "Traceback" not in r.stderr + r.stdout
    assert 1 == len(r.stderr.strip().splitlines())


def test_duplicate_model_exit_code(covex: Run) -> None:
    covex("models", "create", "m")
    r = covex("models", "create", "m")
    assert (4, True) == (r.exit_code, "already exists" in r.stderr)


def test_version_commands(covex: Run, tree) -> None:
    covex("models", "create", "m")
    covex("versions", "create", "m", "--source", "s3://b/m/1")
    covex("versions", "create", "m", str(tree()))
    assert 0 == covex("versions", "tag", "m", "1", "k=v").exit_code
    assert 0 == covex("versions", "log-metric", "m", "1", "rmse=1.5").exit_code
    assert 0 == covex("versions", "log-param", "m", "1", "depth=3").exit_code
    assert 0 == covex("versions", "update", "m", "1", "-d", "first").exit_code
    v = covex("versions", "show", "m", "1", "--json").json()
    assert ({"k": "v"}, {"rmse": 1.5}, {"depth": "3"}, "first") == (
        v["tags"],
        v["metrics"],
        v["params"],
        v["description"],
    )
    assert 0 == covex("versions", "untag", "m", "1", "k").exit_code
    assert 0 == covex("versions", "delete", "m", "1", "--yes").exit_code
    assert [2] == [x["version"] for x in covex("versions", "list", "m", "--json").json()["items"]]
    latest = covex("stages", "latest", "m", "None", "--json").json()
    assert 2 == latest["version"]
    assert "None → Dev → Test → Production → Archived" in covex("stages", "list").stdout


def test_gc_is_a_dry_run_by_default(covex: Run, tree) -> None:
    covex("models", "create", "m")
    covex("versions", "create", "m", str(tree({"a.bin": b"gc-me"})))
    covex("versions", "create", "m", str(tree({"b.bin": b"keep-me"})))
    covex("versions", "delete", "m", "1", "--yes")
    gone, kept = hashlib.sha256(b"gc-me").hexdigest(), hashlib.sha256(b"keep-me").hexdigest()
    dry = covex("gc", "--grace", "0", "--json").json()
    assert (False, True, False) == (dry["applied"], gone in dry["unreferenced"], kept in dry["unreferenced"])
    applied = covex("gc", "--grace", "0", "--apply", "--json").json()
    assert (True, True) == (applied["applied"], gone in applied["unreferenced"])
    assert gone not in covex("gc", "--grace", "0", "--json").json()["unreferenced"]
    assert 0 == covex("download", "models:/m/2", str(tree(name="dl")), "-q").exit_code


def test_db_upgrade(tmp_path: Path) -> None:
    r = CliRunner().invoke(app, ["--uri", str(tmp_path / "data"), "db", "upgrade"])
    assert (0, True) == (r.exit_code, "database at revision 0010" in r.stdout)
    assert (tmp_path / "data" / "covex.db").exists()
