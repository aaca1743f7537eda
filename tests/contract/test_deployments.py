"""Deployments: recorded by the processes that run a version, the same on every backend and database."""

from __future__ import annotations

import pytest
from sqlalchemy import update

import covex
from covex.store.schema import deployments
from tests.conftest import Registry


@pytest.fixture
def churn(client: covex.Client) -> covex.Client:
    client.create_model("churn")
    for _ in range(2):
        client.create_version("churn", source="s3://b/churn")
    client.set_alias("churn", "champion", 1)
    return client


def test_a_serving_deployment_from_start_to_stop(churn: covex.Client) -> None:
    d = churn.start_deployment("models:/churn@champion", "serving", "http://10.0.0.5:8081")
    assert (d.name, d.version, d.kind, d.status, d.started_by, d.active) == (
        "churn",
        1,
        "serving",
        "STARTING",
        "tester",
        True,
    )
    assert churn.update_deployment(d.id, status="serving").status == "SERVING"  # any case
    swapped = churn.update_deployment(d.id, version=2, message="alias moved")
    assert (swapped.version, swapped.status, swapped.message) == (2, "SERVING", "alias moved")
    assert [d.id] == [x.id for x in churn.deployments("churn", 2)]
    assert [] == churn.deployments("churn", 1)  # it serves 2 now
    stopped = churn.update_deployment(d.id, status="STOPPED")
    assert stopped.stopped_at is not None and not stopped.active
    assert [] == churn.deployments("churn", active=True)
    with pytest.raises(covex.InvalidState, match="has ended"):
        churn.update_deployment(d.id)  # not even a heartbeat
    assert stopped == churn.get_deployment(d.id)


def test_a_batch_run_records_its_rows_and_duration(churn: covex.Client) -> None:
    d = churn.start_deployment("churn", "batch", "s3://bucket/scored.parquet", 2)
    assert d.status == "RUNNING"
    done = churn.update_deployment(d.id, status="SUCCEEDED", rows=10_000, duration_s=12.5)
    assert (done.status, done.rows, done.duration_s) == ("SUCCEEDED", 10_000, 12.5)
    other = churn.start_deployment("churn", "batch", "out.parquet", 1)
    with pytest.raises(covex.InvalidInput, match="only a serving deployment changes version"):
        churn.update_deployment(other.id, version=2)


def test_every_change_is_audited_and_emits_its_event(churn: covex.Client) -> None:
    hook = churn.webhooks.create_webhook("https://hooks.example.com/x", ["deployment.*"])
    d = churn.start_deployment("churn", "serving", "http://h:1", 1)
    churn.update_deployment(d.id)  # a heartbeat alone: neither audited nor an event
    churn.update_deployment(d.id, version=2)
    churn.update_deployment(d.id, status="FAILED", message="out of memory")
    # The trail outlives each test's registry: only what this one wrote (since its deployment started).
    records = churn.audit.list_records(since=d.started_at, max_results=50).items
    actions = [r.action for r in records]
    assert ["deployment.status", "deployment.swap", "deployment.start"] == [
        a for a in actions if a.startswith("deployment.")
    ]
    events = [x.event for x in churn.webhooks.list_deliveries(hook.id)]
    assert sorted(events) == ["deployment.failed", "deployment.started", "deployment.swapped"]


@pytest.mark.parametrize(
    ("call", "says"),
    [
        (lambda c: c.start_deployment("churn", "canary", "x", 1), "'kind' must be one of serving, batch"),
        (lambda c: c.start_deployment("churn", "serving", "", 1), "'target'"),
        (lambda c: c.start_deployment("churn", "serving", "x" * 3000, 1), "'target'"),
        (lambda c: c.start_deployment("churn", "serving", "x", 1, status="RUNNING"), "'status' of a serving"),
        (lambda c: c.start_deployment("churn", "batch", "x", 1, status="SUCCEEDED"), "has not run yet"),
        (lambda c: c.update_deployment(0), "'deployment_id'"),
        (lambda c: c.update_deployment(c.deployments()[0].id, rows=-1), "'rows'"),
        (lambda c: c.update_deployment(c.deployments()[0].id, duration_s=float("nan")), "'duration_s'"),
        (lambda c: c.deployments(version=1), "needs the model's 'name'"),
        (lambda c: c.start_deployment("churn", "serving", "a\x1b[31mred", 1), "'target' must not contain control"),
        (lambda c: c.start_deployment("churn", "serving", "a\r\nX: 1", 1), "'target' must not contain control"),
        (lambda c: c.update_deployment(c.deployments()[0].id, message="\x9b2J"), "'message' must not contain control"),
        (lambda c: c.update_deployment(c.deployments()[0].id, rows=5), "belong to batch runs"),
    ],
)
def test_bad_input_is_refused_by_name(churn: covex.Client, call, says: str) -> None:
    churn.start_deployment("churn", "serving", "http://h:1", 1)
    with pytest.raises(covex.InvalidInput, match=says):
        call(churn)


def test_a_status_never_goes_back(churn: covex.Client) -> None:
    d = churn.start_deployment("churn", "serving", "http://h:1", 1, message="line one\n\tline two")
    assert "line one\n\tline two" == d.message  # a message may hold line breaks and tabs
    churn.update_deployment(d.id, status="SERVING")
    with pytest.raises(covex.InvalidState, match="is SERVING; it cannot go back to STARTING"):
        churn.update_deployment(d.id, status="starting")
    assert "SERVING" == churn.update_deployment(d.id, status="SERVING").status  # the same status: a heartbeat


def test_missing_things_are_not_found(churn: covex.Client) -> None:
    with pytest.raises(covex.NotFound):
        churn.get_deployment(999_999)
    with pytest.raises(covex.NotFound):
        churn.start_deployment("churn", "serving", "http://h:1", 7)
    d = churn.start_deployment("churn", "serving", "http://h:1", 1)
    with pytest.raises(covex.NotFound):
        churn.update_deployment(d.id, version=9)


def test_a_serving_version_cannot_be_deleted_nor_its_model(churn: covex.Client, registry: Registry) -> None:
    d = churn.start_deployment("churn", "serving", "http://h:1", 1)
    with pytest.raises(covex.InvalidState, match=f"deployment {d.id} at http://h:1"):
        churn.delete_version("churn", 1)
    with pytest.raises(covex.InvalidState, match="is serving"):
        churn.delete_model("churn")
    churn.delete_version("churn", 2)  # not serving
    # A process that stopped heartbeating is stale: it no longer holds the version.
    with registry.engine.begin() as conn:
        conn.execute(update(deployments).values(heartbeat_at=0))
    stale = churn.get_deployment(d.id)
    assert (stale.status, stale.stale, stale.active) == ("STARTING", True, False)
    churn.delete_version("churn", 1)
    # The history stays: what ran where, for a version that is gone.
    assert [(d.id, 1)] == [(x.id, x.version) for x in churn.deployments("churn", 1)]
    assert churn.get_deployment(d.id).stale


def test_a_reader_records_its_own_and_changes_no_one_elses(churn: covex.Client, registry: Registry) -> None:
    churn.access.create_user("svc-serve", kind="service")
    churn.access.grant("user:svc-serve", "reader", model="churn")
    token = churn.access.create_token("svc-serve", name="t").secret
    others = churn.start_deployment("churn", "serving", "http://h:1", 1)
    with registry.client_with(token) as reader:
        mine = reader.start_deployment("models:/churn@champion", "serving", "http://h:2")
        assert reader.update_deployment(mine.id, status="SERVING").started_by == "svc-serve"
        with pytest.raises(covex.PermissionDenied):
            reader.update_deployment(others.id, status="STOPPED")
        assert {others.id, mine.id} == {d.id for d in reader.deployments("churn")}
    churn.access.create_user("stranger")
    with registry.client_with(churn.access.create_token("stranger", name="t").secret) as stranger:
        assert [] == stranger.deployments()
        with pytest.raises(covex.PermissionDenied):
            stranger.start_deployment("churn", "serving", "http://h:3", 1)


def test_a_policy_keeps_a_serving_version_out_of_the_archive(churn: covex.Client, registry: Registry) -> None:
    approvals = churn.approvals
    policy = approvals.set_policy("stage", "Archived", {"not_while_serving": True})
    assert (policy.not_while_serving, policy.approvals, policy.direct) == (True, 0, True)
    d = churn.start_deployment("churn", "serving", "http://h:1", 1)
    with pytest.raises(covex.InvalidState) as info:
        churn.transition_stage("churn", 1, "Archived")
    assert info.value.message == (
        f"version 1 of 'churn' is serving (deployment {d.id} at http://h:1); stage 'Archived' is not entered while "
        f"a version serves (the policy of {policy.label}); stop it or let it swap first"
    )
    assert "Archived" == churn.transition_stage("churn", 2, "Archived").stage  # not serving: moves directly
    # A batch run is not serving, and an ended or stale deployment holds nothing.
    churn.start_deployment("churn", "batch", "out.parquet", 1)
    churn.update_deployment(d.id, status="STOPPED")
    assert "Archived" == churn.transition_stage("churn", 1, "Archived").stage

    # Under a policy that takes an approval: refused when asked, and when the approval would apply it.
    churn.transition_stage("churn", 1, "None")
    lead = registry.user("lead", groups=["leads"])
    approvals.set_policy("stage", "Archived", {"not_while_serving": True, "approvers": ["group:leads"]})
    churn.access.grant("group:leads", "reader")
    churn.access.grant("group:leads", "approver", scope="stage:Archived")
    serving = churn.start_deployment("churn", "serving", "http://h:2", 1)
    with pytest.raises(covex.InvalidState, match=r"is serving \(deployment \d+ at http://h:2\)"):
        approvals.create_request("churn", 1, stage="Archived")
    churn.update_deployment(serving.id, status="STOPPED")
    request = approvals.create_request("churn", 1, stage="Archived")
    again = churn.start_deployment("churn", "serving", "http://h:3", 1)
    with pytest.raises(covex.InvalidState, match=r"http://h:3.*; the approval is not recorded"):
        lead.approvals.approve(request.id)
    assert ("OPEN", []) == (approvals.get_request(request.id).status, approvals.get_request(request.id).reviews)
    churn.update_deployment(again.id, status="STOPPED")
    assert "APPLIED" == lead.approvals.approve(request.id).status
    lead.close()
    assert "Archived" == churn.get_version("churn", 1).stage


def test_not_while_serving_is_for_stages_and_does_not_hold_back_archive_existing(churn: covex.Client) -> None:
    with pytest.raises(covex.InvalidInput, match="'not_while_serving' applies to stages only"):
        churn.approvals.set_policy("alias", "champion", {"not_while_serving": True})
    with pytest.raises(covex.InvalidInput, match="'not_while_serving' must be true or false"):
        churn.approvals.set_policy("stage", "Archived", {"not_while_serving": "yes"})
    churn.approvals.set_policy("stage", "Archived", {"not_while_serving": True})
    churn.transition_stage("churn", 1, "Production")
    churn.start_deployment("models:/churn/Production", "serving", "http://h:1")
    # A promotion that archives the version it replaces goes through: the server following the stage swaps.
    churn.transition_stage("churn", 2, "Production", archive_existing=True)
    assert ["Archived", "Production"] == [churn.get_version("churn", n).stage for n in (1, 2)]
