"""``covex policies|requests|comments|rollback|history``, invoked as a user would."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import Registry
from tests.support import CliResult

POLICY = """\
policies:
  - stage: Production
    approvals: 1
    approvers: [group:ml-leads]
    gates: ["metrics.auc >= 0.80"]
    archive_existing: true
"""


Run = Callable[..., CliResult]


@pytest.fixture(params=["embedded", "http"])
def reg(request: pytest.FixtureRequest, registries) -> Registry:
    registry: Registry = registries(request.param, "sqlite")
    registry.reset()
    return registry


@pytest.fixture
def covex(reg: Registry) -> Run:
    return reg.cli


@pytest.fixture
def lead(reg: Registry) -> str:
    access = reg.service.access
    access.create_user("lead")
    access.create_group("ml-leads")
    access.add_member("ml-leads", "lead")
    access.grant("group:ml-leads", "reader")  # reviewing needs the reader role on the model
    access.grant("group:ml-leads", "approver", scope="stage:Production")
    return str(access.create_token("lead", name="cli").secret)


def test_policy_request_approve_history(covex: Run, lead: str, tmp_path: Path) -> None:
    assert 0 == covex("models", "create", "churn").exit_code
    for auc in ("0.85", "0.9", "0.7"):
        assert 0 == covex("versions", "create", "churn", "--source", "s3://m", "-m", f"auc={auc}").exit_code
    assert 0 == covex("stages", "set", "churn", "1", "Production").exit_code
    policy = tmp_path / "policy.yaml"
    policy.write_text(POLICY)
    r = covex("policies", "apply", str(policy))
    assert (0, "applied 1 policy") == (r.exit_code, r.stdout.split(" from")[0]), r.stderr
    assert "metrics.auc >= 0.80" in covex("policies", "list").stdout

    refused = covex("stages", "set", "churn", "2", "Production")
    assert 5 == refused.exit_code and "protected by a policy" in refused.stderr
    failing = covex("requests", "create", "churn", "3", "--stage", "Production")
    assert 4 == failing.exit_code and "value 0.7, threshold 0.8" in failing.stderr

    created = covex("requests", "create", "churn", "2", "--stage", "Production", "-m", "better", "--json")
    assert 0 == created.exit_code, created.stderr
    request = created.json()
    assert isinstance(request, dict) and "OPEN" == request["status"]
    inbox = covex("requests", "inbox", "--json", token=lead).json()
    assert [request["id"]] == [r["id"] for r in inbox]  # type: ignore[union-attr]
    shown = covex("requests", "show", str(request["id"])).stdout
    assert "metrics.auc >= 0.80" in shown and "approvals: 0 of 1" in shown
    approved = covex("requests", "approve", str(request["id"]), "-m", "ok", token=lead)
    assert 0 == approved.exit_code and "APPLIED" in approved.stdout, approved.stderr
    again = covex("requests", "approve", str(request["id"]), token=lead)
    assert 4 == again.exit_code and "is APPLIED" in again.stderr

    placed = covex("history", "churn", "--stage", "production")
    assert "version 2 held stage Production" in placed.stdout and "moved by lead" in placed.stdout
    assert "better" in placed.stdout
    then = covex("history", "churn", "--stage", "Production", "--at", "2000-01-01T00:00", "--json").json()
    assert [] == then["versions"]  # type: ignore[index]
    comments = covex("comments", "list", "churn", "2", "--json").json()
    assert ["better", "ok"] == [c["body"] for c in comments]  # type: ignore[union-attr]

    rolled = covex("rollback", "churn", "--stage", "Production", "-m", "regression")
    assert 0 == rolled.exit_code and "request" in rolled.stdout, rolled.stderr


def test_bad_policy_file_names_the_line(covex: Run, tmp_path: Path) -> None:
    policy = tmp_path / "policy.yaml"
    policy.write_text("policies:\n  - stage: Production\n    approvals: two\n")
    r = covex("policies", "apply", str(policy))
    assert 2 == r.exit_code
    assert "line 3: 'approvals' must be an integer from 0 to 100" in r.stderr
    assert "[]" == covex("policies", "list", "--json").stdout.strip()


def test_comments_and_cancel(covex: Run) -> None:
    covex("models", "create", "churn")
    covex("versions", "create", "churn", "--source", "s3://m", "-m", "auc=0.9")
    assert 0 == covex("comments", "add", "churn", "1", "Calibrated on Q3 data").exit_code
    assert "Calibrated on Q3 data" in covex("comments", "list", "churn", "1").stdout
    both = covex("rollback", "churn", "--stage", "Production", "--alias", "champion")
    assert 2 == both.exit_code and "exactly one" in both.stderr
    missing = covex("requests", "cancel", "999")
    assert 3 == missing.exit_code and "request 999 does not exist" in missing.stderr


SCOPED = """\
policies:
  - stage: Production
    gates: ["metrics.auc >= 0.80"]
  - stage: Production
    model: network/*
    approvals: 2
  - stage: Test
    from: [Dev]
"""


def test_scoped_policies_and_show(covex: Run, tmp_path: Path) -> None:
    for name in ("store-sales", "network/edge"):
        assert 0 == covex("models", "create", name, "-t", "team=retail").exit_code
    policy = tmp_path / "policy.yaml"
    policy.write_text(SCOPED)
    assert 0 == covex("policies", "apply", str(policy)).exit_code
    made = covex(
        "policies", "set", "--stage", "Production", "--model", "store-sales", "--gate", "metrics.rmse <= 12",
        "--approvals", "0", "--from", "Test", "--json",
    )  # fmt: skip
    assert 0 == made.exit_code, made.stderr
    scoped: dict[str, Any] = made.json()  # type: ignore[assignment]
    assert ("model", "store-sales", ["Test"]) == (scoped["scope"], scoped["model"], scoped["from"])
    listed = covex("policies", "list").stdout
    assert "model 'store-sales'" in listed and "pattern 'network/*'" in listed

    shown = covex("policies", "show", "store-sales")
    assert 0 == shown.exit_code, shown.stderr
    lines = shown.stdout.splitlines()
    production = next(i for i, line in enumerate(lines) if line.startswith("stage Production"))
    assert (
        f"policy {scoped['id']} (model 'store-sales'): the policy for model 'store-sales' itself" in lines[production]
    )
    assert "1 approval" not in lines[production + 1] and "gate metrics.rmse <= 12; from Test" in lines[production + 1]
    assert (
        "passed over: policy" in lines[production + 2] and "(global): covers it too, but model" in lines[production + 2]
    )
    assert "pattern 'network/*' does not match 'store-sales'" in shown.stdout
    assert any(line.startswith("stage Dev: no policy") for line in lines)
    only = covex("policies", "show", "network/edge", "--stage", "production", "--json").json()
    assert [("Production", "pattern")] == [(p["target"], p["policy"]["scope"]) for p in only]  # type: ignore[union-attr,index]
    one = covex("policies", "show", "--stage", "Production", "--model", "network/*", "--json").json()
    assert 2 == one["approvals"]  # type: ignore[index]
    both = covex("policies", "show", "store-sales", "--model", "churn")
    assert 2 == both.exit_code and "not both" in both.stderr

    assert 0 == covex("versions", "create", "store-sales", "--source", "s3://m", "-m", "rmse=10").exit_code
    assert 0 == covex("stages", "set", "store-sales", "1", "Dev").exit_code
    refused = covex("stages", "set", "store-sales", "1", "Production")
    assert 4 == refused.exit_code
    assert "is in stage 'Dev'; stage 'Production' may be entered only from Test" in refused.stderr
    assert 0 == covex("stages", "set", "store-sales", "1", "Test").exit_code
    request = covex("requests", "create", "store-sales", "1", "--stage", "Production", "--json").json()
    assert ("APPLIED", "model:store-sales") == (request["status"], request["policy_scope"])  # type: ignore[index]
    shown_request = covex("requests", "show", str(request["id"])).stdout  # type: ignore[index]
    assert f"judged by: policy {scoped['id']} (model 'store-sales')" in shown_request
    assert "entered only from: Test" in shown_request
    assert "(model 'store-sales')" in covex("requests", "list").stdout

    deleted = covex("policies", "delete", "--stage", "Production", "--model", "store-sales")
    assert "deleted the policy of stage Production for model 'store-sales'" in deleted.stdout
    bad = covex("policies", "set", "--stage", "Production", "--tag", "team")
    assert 2 == bad.exit_code and "'tag' must be written key=value" in bad.stderr


def test_policies_that_leave_a_stage_no_version_could_enter_are_refused(covex: Run, tmp_path: Path) -> None:
    assert 0 == covex("policies", "set", "--stage", "Dev", "--from", "Test").exit_code
    cycle = covex("policies", "set", "--stage", "Test", "--from", "Dev")
    assert 2 == cycle.exit_code
    assert "no version could ever enter Dev and Test: Dev and Test are entered only from each other" in cycle.stderr
    policy = tmp_path / "policy.yaml"
    policy.write_text(
        "policies:\n  - stage: Production\n    model: churn\n    from: [Dev]\n  - stage: Test\n    from: [Dev]\n"
    )
    applied = covex("policies", "apply", str(policy))
    assert 2 == applied.exit_code
    assert "; line 6: under the global policies, no version could ever enter Dev and Test: Dev and Test are" in (
        applied.stderr
    )
    first = covex("policies", "set", "--stage", "None", "--from", "Dev")
    assert 2 == first.exit_code and "'from' cannot be set on stage 'None': it is the first stage" in first.stderr
    assert ["Dev"] == [p["target"] for p in covex("policies", "list", "--json").json()]  # type: ignore[index,union-attr]


def test_a_serving_version_is_kept_out_of_the_archive(covex: Run, reg: Registry) -> None:
    made = covex("policies", "set", "--stage", "Archived", "--not-while-serving", "--json")
    assert 0 == made.exit_code, made.stderr
    assert (True, 0) == (made.json()["not_while_serving"], made.json()["approvals"])  # type: ignore[index]
    assert "not while serving" in covex("policies", "list").stdout
    assert 0 == covex("models", "create", "churn").exit_code
    assert 0 == covex("versions", "create", "churn", "--source", "s3://m").exit_code
    assert "; not while serving" in covex("policies", "show", "churn", "--stage", "Archived").stdout
    d = reg.service.start_deployment("churn", 1, "serving", "http://h:8081")
    refused = covex("stages", "set", "churn", "1", "Archived")
    assert 4 == refused.exit_code
    assert f"is serving (deployment {d.id} at http://h:8081)" in refused.stderr
    reg.service.update_deployment(d.id, status="STOPPED")
    assert 0 == covex("stages", "set", "churn", "1", "Archived").exit_code
