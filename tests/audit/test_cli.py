"""``covex audit``: verify (from the database and offline from a file), export, list."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sqlalchemy import text
from typer.testing import CliRunner

from covex.cli.main import app
from covex.store import database

runner = CliRunner()


@pytest.fixture
def data(tmp_path: Path) -> Path:
    """A data folder whose trail holds 3 records."""
    folder = tmp_path / "data"
    for args in (["models", "create", "churn"], ["models", "tag", "churn", "team=risk"], ["models", "create", "x"]):
        assert 0 == runner.invoke(app, ["--uri", str(folder), *args]).exit_code
    return folder


def covex(*args: str) -> tuple[int, str]:
    result = runner.invoke(app, list(args))
    return result.exit_code, result.output


def test_verify_an_intact_trail(data: Path) -> None:
    code, out = covex("--uri", str(data), "audit", "verify")
    assert 0 == code
    assert out.startswith("chain intact: 3 records, head 3:")


def test_verify_names_the_first_bad_record_and_exits_1(data: Path) -> None:
    engine = database.create_db_engine(f"sqlite:///{data / 'covex.db'}")
    with engine.begin() as conn:
        conn.execute(text("UPDATE audit_log SET target = 'model:other' WHERE seq = 2"))
    engine.dispose()

    code, out = covex("--uri", str(data), "audit", "verify")
    assert 4 == code
    assert "error: audit chain broken at record 2: record 2 was altered" in out

    code, out = covex("--uri", str(data), "audit", "verify", "--json")
    assert (4, 2) == (code, json.loads(out)["first_bad_seq"])


def test_export_then_verify_the_file_offline(data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    trail = tmp_path / "trail.jsonl"
    code, out = covex("--uri", str(data), "audit", "export", "-o", str(trail))
    assert (0, f"exported 3 audit records to {trail}\n") == (code, out)

    # Offline: no --uri and an empty working folder; the command must not open a registry.
    work = tmp_path / "elsewhere"
    work.mkdir()
    monkeypatch.chdir(work)
    monkeypatch.delenv("COVEX_URI", raising=False)
    code, out = covex("audit", "verify", "--file", str(trail))
    assert 0 == code
    assert out.startswith("chain intact: 3 records, head 3:")
    assert [] == list(work.iterdir())

    lines = trail.read_text().splitlines(keepends=True)
    trail.write_text("".join([lines[0], *lines[2:]]))
    code, out = covex("audit", "verify", "--file", str(trail))
    assert 4 == code
    assert "audit chain broken at record 2: record 2 is missing" in out

    code, out = covex("audit", "verify", "--file", str(tmp_path / "nope.jsonl"))
    assert 2 == code
    assert "'--file'" in out


def test_export_to_stdout_verifies_from_stdin(data: Path) -> None:
    exported = runner.invoke(app, ["--uri", str(data), "audit", "export"])
    assert 0 == exported.exit_code
    result = runner.invoke(app, ["audit", "verify", "--file", "-"], input=exported.stdout)
    assert 0 == result.exit_code
    assert result.output.startswith("chain intact: 3 records")


def test_list(data: Path) -> None:
    code, out = covex("--uri", str(data), "audit", "list", "--target", "model:churn", "--json")
    assert 0 == code
    page = json.loads(out)
    assert ["model.tag.set", "model.create"] == [r["action"] for r in page["items"]]

    code, out = covex("--uri", str(data), "audit", "list", "-n", "1")
    assert 0 == code
    assert "model.create" in out
    assert "more: --page-token" in out

    code, out = covex("--uri", str(data), "audit", "list", "--since", "yesterday")
    assert 2 == code
    assert "'--since'" in out
