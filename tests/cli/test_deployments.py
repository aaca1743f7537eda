"""`covex deployments list/show`, and where a version runs in `covex versions show` and `covex card`."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from covex.cli import app
from tests.conftest import Registry


@pytest.fixture
def reg(registries) -> Registry:
    r: Registry = registries("embedded", "sqlite")
    r.reset()
    return r


def run(reg: Registry, *args: str) -> tuple[int, str, str]:
    env = {"COVEX_URI": reg.url, "COVEX_ARTIFACTS": reg.settings.artifacts_url, "COLUMNS": "250"}
    r = CliRunner().invoke(app, list(args), env=env)
    return r.exit_code, r.stdout, r.stderr


@pytest.fixture
def deployed(reg: Registry) -> tuple[int, int]:
    with reg.client() as c:
        c.create_model("churn")
        c.create_version("churn", source="s3://b/1")
        serving = c.start_deployment("churn", "serving", "http://10.0.0.5:8081", 1)
        c.update_deployment(serving.id, status="SERVING")
        batch = c.start_deployment("churn", "batch", "s3://out/scored.parquet", 1)
        c.update_deployment(batch.id, status="SUCCEEDED", rows=1200, duration_s=3.5)
        return serving.id, batch.id


def test_list_shows_every_deployment_and_active_only_the_running(reg: Registry, deployed) -> None:
    serving, batch = deployed
    code, out, _ = run(reg, "deployments", "list", "churn")
    assert 0 == code
    assert "http://10.0.0.5:8081" in out and "SERVING" in out and "SUCCEEDED" in out and "1200" in out
    code, out, _ = run(reg, "deployments", "list", "--active", "--json")
    assert (0, [serving]) == (code, [d["id"] for d in json.loads(out)])
    code, out, _ = run(reg, "deployments", "list", "churn", "--version", "1", "--json")
    assert [batch, serving] == [d["id"] for d in json.loads(out)]


def test_show_one_deployment(reg: Registry, deployed) -> None:
    code, out, _ = run(reg, "deployments", "show", str(deployed[1]))
    assert 0 == code
    assert "s3://out/scored.parquet" in out and "3.5 s" in out and "models:/churn/1" in out
    code, _, err = run(reg, "deployments", "show", "999")
    assert 1 <= code and "deployment 999 does not exist" in err


def test_versions_show_and_the_card_say_where_it_runs(reg: Registry, deployed) -> None:
    code, out, _ = run(reg, "versions", "show", "models:/churn/1")
    assert 0 == code
    assert "serving at http://10.0.0.5:8081 (SERVING)" in out
    assert "scored.parquet" not in out  # an ended run is history: covex deployments list has it
    code, out, _ = run(reg, "versions", "show", "models:/churn/1", "--json")
    assert {"serving", "batch"} == {d["kind"] for d in json.loads(out)["deployments"]}
    code, out, _ = run(reg, "card", "models:/churn/1")
    assert "## Deployments" in out and "| serving | http://10.0.0.5:8081 | SERVING |" in out
