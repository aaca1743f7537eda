"""`covex card`, `covex versions history` and lineage in `covex versions show`."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

import covex
from covex.cli import app
from tests.conftest import Registry


@pytest.fixture
def reg(registries) -> Registry:
    r: Registry = registries("embedded", "sqlite")
    r.reset()
    return r


def run(reg: Registry, *args: str) -> tuple[int, str, str]:
    env = {"COVEX_URI": reg.url, "COVEX_ARTIFACTS": reg.settings.artifacts_url, "COLUMNS": "200"}
    r = CliRunner().invoke(app, list(args), env=env)
    return r.exit_code, r.stdout, r.stderr


@pytest.fixture
def version(reg: Registry, tree) -> covex.ModelVersion:
    with reg.client() as c:
        c.create_model("churn")
        lineage = {"git": {"commit": "a" * 40, "branch": "main", "dirty": False}, "datasets": [], "parent": None}
        v = c.create_version(
            "churn", tree(), metrics={"auc": 0.9}, documents={"lineage": lineage, "card": {"overview": "Churn model"}}
        )
        c.set_alias("churn", "champion", v.version)
        c.transition_stage("churn", v.version, "Production")
        return v


def test_card_renders_markdown(reg: Registry, version) -> None:
    code, out, _ = run(reg, "card", "models:/churn@champion")
    assert 0 == code
    for text in (
        "# churn — version 1",
        "## Overview",
        "Churn model",
        "| auc | 0.9 |",
        "aaaaaaaaaaaa",
        "alias @champion",
    ):
        assert text in out


def test_card_edit_by_field_and_file(reg: Registry, version, tmp_path: Path) -> None:
    assert 0 == run(reg, "card", "churn", "1", "--field", "limitations=Not for B2B")[0]
    code, out, _ = run(reg, "card", "models:/churn/1", "--json")
    assert {"overview": "Churn model", "limitations": "Not for B2B"} == json.loads(out)
    card = tmp_path / "card.yaml"
    card.write_text("intended_use: Retention offers\nowners: [crm]\n")
    assert 0 == run(reg, "card", "models:/churn/1", "--set", str(card))[0]
    assert {"intended_use": "Retention offers", "owners": ["crm"]} == json.loads(
        run(reg, "card", "churn", "1", "--json")[1]
    )
    card.write_text("colour: red\n")
    code, _, err = run(reg, "card", "models:/churn/1", "--set", str(card))
    assert (2, True) == (code, "unknown fields: colour" in err)


def test_history_and_lineage_in_show(reg: Registry, version) -> None:
    code, out, _ = run(reg, "versions", "history", "churn", "--json")
    events = json.loads(out)
    assert [("alias", None, "1"), ("stage", "None", "Production")] == [
        (e["kind"], e["before"], e["after"]) for e in events
    ]
    code, out, _ = run(reg, "versions", "show", "models:/churn/1")
    assert 0 == code and "aaaaaaaaaaaa on main" in out
    shown = json.loads(run(reg, "versions", "show", "churn", "1", "--json")[1])
    assert "main" == shown["lineage"]["git"]["branch"]
