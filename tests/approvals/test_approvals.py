"""Policies, approval requests, rollback and placement on every backend, with real users and tokens."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass

import pytest

import covex
from tests.conftest import Registry

POLICY = """\
policies:
  - stage: Production
    approvals: 2
    approvers: [group:ml-leads]
    gates: ["metrics.auc >= 0.80", "metrics.auc >= champion.metrics.auc - 0.005"]
    require: [description, card.intended_use, signature]
    archive_existing: true
    approval_ttl_days: 14
"""
DOCS = {"card": {"intended_use": "Retention offers"}, "signature": {"inputs": [{"name": "x", "type": "double"}]}}


@dataclass
class Team:
    admin: covex.Client
    requester: covex.Client
    author: covex.Client
    lead1: covex.Client
    lead2: covex.Client
    lead3: covex.Client
    outsider: covex.Client

    def version(self, auc: float | None, **kwargs: object) -> int:
        metrics = {} if auc is None else {"auc": auc}
        v = self.author.create_version(
            "churn", source="s3://m/churn", description="Churn model", metrics=metrics, documents=DOCS, **kwargs
        )
        return v.version


@pytest.fixture
def team(registry: Registry, client: covex.Client) -> Iterator[Team]:
    """churn v1 (auc 0.85) in Production, then a Production policy; ml-leads approve."""
    with ExitStack() as stack:
        users = {
            name: stack.enter_context(registry.user(name, groups=groups))
            for name, groups in (
                ("alice", ()),
                ("carol", ()),
                ("lead1", ("ml-leads",)),
                ("lead2", ("ml-leads",)),
                ("lead3", ("ml-leads",)),
                ("mallory", ()),
            )
        }
        client.create_model("churn")
        access = client.access
        for name in ("alice", "carol"):
            access.grant(f"user:{name}", "editor", model="churn")
        access.grant("group:ml-leads", "reader", model="churn")
        access.grant("user:mallory", "reader", model="churn")
        access.grant("group:ml-leads", "approver", scope="stage:Production")
        t = Team(
            client, users["alice"], users["carol"], users["lead1"], users["lead2"], users["lead3"], users["mallory"]
        )
        t.version(0.85)
        client.transition_stage("churn", 1, "Production")
        client.approvals.apply_policy_file(POLICY)
        yield t


def stages(client: covex.Client) -> dict[int, str]:
    return {v.version: v.stage for v in client.list_versions("churn")}


def test_full_flow(team: Team) -> None:
    v2 = team.version(0.86)
    request = team.requester.approvals.create_request("churn", v2, stage="production", comment="better recall")
    assert ("OPEN", "Production", 1, 2) == (request.status, request.target, request.champion, request.approvals_needed)
    assert [True] * 5 == [g.passed for g in request.gates]
    auc = request.gates[1]
    assert (0.86, 0.845) == (auc.value, pytest.approx(auc.threshold))
    with pytest.raises(covex.PermissionDenied, match="created version 2"):
        team.author.approvals.approve(request.id)
    with pytest.raises(covex.PermissionDenied, match="approvers of stage 'Production'"):
        team.outsider.approvals.approve(request.id)
    assert [request.id] == [r.id for r in team.lead1.approvals.inbox()]
    once = team.lead1.approvals.approve(request.id, "looks good")
    assert ("OPEN", 1) == (once.status, once.approvals)
    assert [] == team.lead1.approvals.inbox()
    with pytest.raises(covex.InvalidState, match="already approved"):
        team.lead1.approvals.approve(request.id)
    done = team.lead2.approvals.approve(request.id, "ship it")
    assert ("APPLIED", ["lead1", "lead2"]) == (done.status, [r.reviewer for r in done.reviews])
    assert {1: "Archived", 2: "Production"} == stages(team.admin)
    moves = [e for e in team.admin.history("churn") if e.request_id == request.id]
    assert [(2, "Production", "lead2", "better recall"), (1, "Archived", "lead2", "better recall")] == sorted(
        ((e.version, e.after, e.actor, e.comment) for e in moves), key=lambda m: -m[0]
    )
    thread = [(c.author, c.body, c.request_id) for c in team.admin.approvals.list_comments("churn", v2)]
    assert [
        ("alice", "better recall", request.id),
        ("lead1", "looks good", request.id),
        ("lead2", "ship it", request.id),
    ] == thread
    with pytest.raises(covex.InvalidState, match="is APPLIED"):
        team.lead3.approvals.approve(request.id)


def test_the_requester_may_not_approve(team: Team, registry: Registry) -> None:
    v2 = team.version(0.86)
    registry.service.access.add_member("ml-leads", "alice")
    request = team.requester.approvals.create_request("churn", v2, stage="Production")
    with pytest.raises(covex.PermissionDenied, match="made request"):
        team.requester.approvals.approve(request.id)


def test_protected_stage_refuses_direct_moves(team: Team) -> None:
    v2 = team.version(0.86)
    with pytest.raises(covex.PermissionDenied, match="protected by a policy"):
        team.author.transition_stage("churn", v2, "Production")
    with pytest.raises(covex.InvalidInput, match="has no policy"):
        team.requester.approvals.create_request("churn", v2, stage="Dev")


def test_failing_gates_refuse_the_request(team: Team) -> None:
    worse = team.version(0.82)
    with pytest.raises(covex.InvalidState, match=r"champion.metrics.auc - 0.005 \(value 0.82, threshold 0.845\)"):
        team.requester.approvals.create_request("churn", worse, stage="Production")
    bare = team.version(None)
    with pytest.raises(covex.InvalidState, match="version 3 has no metric 'auc'"):
        team.requester.approvals.create_request("churn", bare, stage="Production")
    assert [] == team.admin.approvals.list_requests("churn")


def test_missing_requirements_are_listed(team: Team) -> None:
    v = team.author.create_version("churn", source="s3://m/x", metrics={"auc": 0.9})
    with pytest.raises(covex.InvalidState) as info:
        team.requester.approvals.create_request("churn", v.version, stage="Production")
    for item in ("require description", "require card.intended_use", "require signature"):
        assert item in info.value.message


def test_reject_and_cancel(team: Team) -> None:
    v2 = team.version(0.86)
    first = team.requester.approvals.create_request("churn", v2, stage="Production")
    with pytest.raises(covex.AlreadyExists, match="is open"):
        team.requester.approvals.create_request("churn", v2, stage="Production")
    rejected = team.lead1.approvals.reject(first.id, "needs a fairness review")
    assert ("REJECTED", "rejected by lead1: needs a fairness review") == (rejected.status, rejected.status_message)
    second = team.requester.approvals.create_request("churn", v2, stage="Production")
    with pytest.raises(covex.PermissionDenied, match="only its requester"):
        team.lead1.approvals.cancel(second.id)
    assert "CANCELLED" == team.requester.approvals.cancel(second.id, "wrong version").status
    with pytest.raises(covex.InvalidState, match="is CANCELLED"):
        team.lead1.approvals.approve(second.id)
    assert {1: "Production", 2: "None"} == stages(team.admin)
    assert ["CANCELLED", "REJECTED"] == [r.status for r in team.admin.approvals.list_requests("churn")]
    assert [second.id] == [r.id for r in team.admin.approvals.list_requests("churn", "cancelled")]


def test_stale_when_the_champion_changes(team: Team, registry: Registry) -> None:
    v2, v3 = team.version(0.86), team.version(0.87)
    r2 = team.requester.approvals.create_request("churn", v2, stage="Production")
    r3 = team.requester.approvals.create_request("churn", v3, stage="Production")
    team.lead1.approvals.approve(r3.id)
    assert "APPLIED" == team.lead2.approvals.approve(r3.id).status
    with pytest.raises(covex.InvalidState, match=r"champion of Production is now version 3 \(was version 1\)"):
        team.lead1.approvals.approve(r2.id)
    stale = team.admin.approvals.get_request(r2.id)
    assert ("STALE", []) == (stale.status, stale.reviews)
    assert {1: "Archived", 2: "None", 3: "Production"} == stages(team.admin)


def test_stale_when_the_version_changes(team: Team) -> None:
    v2 = team.version(0.86)
    request = team.requester.approvals.create_request("churn", v2, stage="Production")
    team.lead1.approvals.approve(request.id)
    team.author.log_metrics("churn", v2, {"auc": 0.79})
    with pytest.raises(covex.InvalidState, match=r"no longer holds: metrics.auc >= 0.80 \(value 0.79"):
        team.lead2.approvals.approve(request.id)
    stale = team.admin.approvals.get_request(request.id)
    assert ("STALE", 0.79) == (stale.status, stale.gates[0].value)
    assert {1: "Production", 2: "None"} == stages(team.admin)


def test_zero_approvals_apply_at_once(team: Team) -> None:
    team.admin.approvals.set_policy("alias", "champion", {"approvals": 0, "gates": ["metrics.auc >= 0.8"]})
    request = team.requester.approvals.create_request("churn", 1, alias="champion", comment="first champion")
    assert "APPLIED" == request.status
    assert 1 == team.admin.get_version("models:/churn@champion").version
    v2 = team.version(0.86)
    with pytest.raises(covex.PermissionDenied, match="alias 'champion' is protected"):
        team.author.set_alias("churn", "champion", v2)


def test_racing_approvals_apply_once(team: Team, registry: Registry) -> None:
    v2 = team.version(0.86)
    request = team.requester.approvals.create_request("churn", v2, stage="Production")
    team.lead1.approvals.approve(request.id)
    outcomes: list[str] = []
    barrier = threading.Barrier(2)

    def approve(lead: covex.Client) -> None:
        barrier.wait()
        try:
            outcomes.append(lead.approvals.approve(request.id).status)
        except covex.InvalidState as exc:
            outcomes.append(type(exc).__name__)

    threads = [threading.Thread(target=approve, args=(lead,)) for lead in (team.lead2, team.lead3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert ["APPLIED", "InvalidState"] == sorted(outcomes)
    into_production = [e for e in team.admin.history("churn") if e.kind == "stage" and e.after == "Production"]
    assert [v2] == [e.version for e in into_production if e.request_id is not None]


def test_policies_are_admin_only_and_files_apply_whole(team: Team) -> None:
    with pytest.raises(covex.PermissionDenied, match="admin"):
        team.lead1.approvals.set_policy("stage", "Test", {"approvals": 1})
    bad = "policies:\n  - stage: Test\n    approvals: 1\n  - stage: Dev\n    approvals: -1\n"
    with pytest.raises(covex.InvalidInput, match="line 5: 'approvals' must be an integer from 0 to 100"):
        team.admin.approvals.apply_policy_file(bad)
    assert [("stage", "Production")] == [(p.target_kind, p.target) for p in team.lead1.approvals.list_policies()]
    team.admin.approvals.apply_policy_file("policies:\n  - stage: test\n    approvals: 1\n", replace=True)
    assert [("stage", "Test", 1)] == [
        (p.target_kind, p.target, p.approvals) for p in team.admin.approvals.list_policies()
    ]
    assert "tester" == team.admin.approvals.get_policy("stage", "TEST").updated_by
    team.admin.approvals.delete_policy("stage", "Test")
    with pytest.raises(covex.NotFound, match="has no policy"):
        team.admin.approvals.get_policy("stage", "Test")


def test_rollback_opens_a_request_under_the_policy(team: Team) -> None:
    v2 = team.version(0.86)
    request = team.requester.approvals.create_request("churn", v2, stage="Production")
    team.lead1.approvals.approve(request.id)
    team.lead2.approvals.approve(request.id)
    # v1 (0.85) is below the champion gate against v2 (0.86 - 0.005): a rollback skips that gate only.
    with pytest.raises(covex.InvalidState, match="champion"):
        team.requester.approvals.create_request("churn", 1, stage="Production")
    rollback = team.requester.approvals.rollback("churn", stage="Production", comment="v2 misbehaves")
    assert (2, 1, False) == (rollback.from_version, rollback.to_version, rollback.applied)
    assert rollback.request is not None
    assert ("v2 misbehaves", "rollback") == (rollback.request.comment, rollback.request.kind)
    skipped = [g.gate for g in rollback.request.gates if g.message.startswith("skipped")]
    assert ["metrics.auc >= champion.metrics.auc - 0.005"] == skipped
    team.lead1.approvals.approve(rollback.request.id)
    team.lead2.approvals.approve(rollback.request.id)
    assert {1: "Production", 2: "Archived"} == stages(team.admin)


def test_a_rollback_still_meets_the_absolute_gates(team: Team) -> None:
    v2 = team.version(0.86)
    request = team.requester.approvals.create_request("churn", v2, stage="Production")
    team.lead1.approvals.approve(request.id)
    team.lead2.approvals.approve(request.id)
    team.admin.approvals.set_policy(
        "stage", "Production", {"approvals": 1, "gates": ["metrics.auc >= 0.855"], "archive_existing": True}
    )
    with pytest.raises(covex.InvalidState, match=r"metrics.auc >= 0.855 \(value 0.85"):
        team.requester.approvals.rollback("churn", stage="Production")
    assert {1: "Archived", 2: "Production"} == stages(team.admin)


def test_rollback_of_an_unprotected_alias_moves_directly(team: Team) -> None:
    team.author.set_alias("churn", "challenger", 1)
    v2 = team.version(0.86)
    team.author.set_alias("churn", "challenger", v2)
    rollback = team.requester.approvals.rollback("churn", alias="challenger")
    assert (v2, 1, True, None) == (rollback.from_version, rollback.to_version, rollback.applied, rollback.request)
    assert 1 == team.admin.get_version("models:/churn@challenger").version
    with pytest.raises(covex.NotFound, match="nothing to roll back"):
        team.requester.approvals.rollback("churn", stage="Test")


def test_placement_at_a_moment(team: Team) -> None:
    before = team.admin.approvals.placement("churn", stage="Production")
    assert ([1], "tester") == (before.versions, before.actor)
    time.sleep(0.01)
    middle = int(time.time() * 1000)
    time.sleep(0.01)
    v2 = team.version(0.86)
    request = team.requester.approvals.create_request("churn", v2, stage="Production", comment="quarterly refresh")
    team.lead1.approvals.approve(request.id)
    team.lead2.approvals.approve(request.id)
    then = team.lead1.approvals.placement("churn", stage="Production", at=middle)
    assert [1] == then.versions
    now = team.lead1.approvals.placement("churn", stage="production")
    assert ([v2], "lead2", "quarterly refresh", request.id) == (now.versions, now.actor, now.comment, now.request_id)
    assert [] == team.admin.approvals.placement("churn", stage="Production", at=0).versions
    assert [] == team.admin.approvals.placement("churn", stage="None", at=middle).versions
    assert [] == team.admin.approvals.placement("churn", alias="champion").versions


def test_comments(team: Team) -> None:
    comment = team.outsider.approvals.add_comment("churn", 1, "Why is recall lower on segment B?")
    assert ("mallory", None) == (comment.author, comment.request_id)
    assert ["Why is recall lower on segment B?"] == [c.body for c in team.lead1.approvals.list_comments("churn", 1)]
    with pytest.raises(covex.InvalidInput, match="'body'"):
        team.outsider.approvals.add_comment("churn", 1, "  ")
    with pytest.raises(covex.NotFound, match="version 9"):
        team.outsider.approvals.list_comments("churn", 9)


def test_requests_need_the_editor_role(team: Team) -> None:
    with pytest.raises(covex.PermissionDenied, match="editor"):
        team.outsider.approvals.create_request("churn", 1, stage="Production")
    with pytest.raises(covex.InvalidState, match="already in stage 'Production'"):
        team.requester.approvals.create_request("churn", 1, stage="Production")
    with pytest.raises(covex.InvalidInput, match="exactly one"):
        team.requester.approvals.create_request("churn", 1)


def refusals(registry: Registry, actor: str, since: int) -> list[str]:
    """The actions refused to ``actor`` since ``since`` (ms): the audit trail outlives ``registry.reset``."""
    records = registry.service.audit.list_records(actor=actor, outcome="refused", since=since).items
    return [r.action for r in records]


def test_only_admins_make_the_server_read_a_policy_file(team: Team, registry: Registry) -> None:
    # The rights are checked before the YAML is read: a recursive alias would otherwise be parsed.
    start = int(time.time() * 1000)
    with pytest.raises(covex.PermissionDenied, match="admin rights"):
        team.lead1.approvals.apply_policy_file("policies: &a [*a]\n")
    assert ["policy.set"] == refusals(registry, "lead1", start)
    with pytest.raises(covex.InvalidInput, match="line 1: YAML aliases are not allowed in policy files"):
        team.admin.approvals.apply_policy_file("policies: &a [*a]\n")
    with pytest.raises(covex.InvalidInput, match="'approvals' must be an integer from 0 to 100"):
        team.admin.approvals.apply_policy_file("policies:\n  - stage: Test\n    approvals: 101\n")


def test_without_a_policy_only_the_requester_managers_or_admins_close_a_request(team: Team, registry: Registry) -> None:
    v2 = team.version(0.86)
    start = int(time.time() * 1000)
    with registry.user("eve") as eve:
        first = team.requester.approvals.create_request("churn", v2, stage="Production")
        with pytest.raises(covex.PermissionDenied, match="reader role"):
            eve.approvals.reject(first.id)
        team.admin.approvals.delete_policy("stage", "Production")
        with pytest.raises(covex.PermissionDenied, match="reader role"):
            eve.approvals.reject(first.id, "nope")
        with pytest.raises(covex.PermissionDenied, match="only its requester"):
            team.outsider.approvals.reject(first.id)
        with pytest.raises(covex.PermissionDenied, match="only its requester"):
            team.lead1.approvals.approve(first.id)
        assert ["request.reject"] * 2 == refusals(registry, "eve", start)
        assert ["request.reject"] == refusals(registry, "mallory", start)
        closed = team.requester.approvals.reject(first.id)
        assert (
            "STALE",
            f"policy {first.policy_id} (global), which judged the request, no longer governs stage 'Production' for "
            "'churn': it was deleted; no policy governs it now (closed by alice); move the version directly",
        ) == (closed.status, closed.status_message)
        second = team.admin.approvals.get_request(first.id)
        assert [] == second.reviews
    registry.service.access.grant("user:carol", "manager", model="churn")
    team.admin.approvals.set_policy("stage", "Production", {"approvals": 1})
    again = team.requester.approvals.create_request("churn", v2, stage="Production")
    team.admin.approvals.delete_policy("stage", "Production")
    with pytest.raises(covex.InvalidState, match=r"stale and was closed: policy \d+ \(global\), which judged the"):
        team.author.approvals.approve(again.id)
    assert "STALE" == team.admin.approvals.get_request(again.id).status


@pytest.mark.parametrize("lapse", ["left the group", "disabled", "grant revoked"])
def test_approvals_by_reviewers_no_longer_eligible_do_not_count(team: Team, registry: Registry, lapse: str) -> None:
    access = registry.service.access
    v2 = team.version(0.86)
    request = team.requester.approvals.create_request("churn", v2, stage="Production")
    team.lead1.approvals.approve(request.id)
    if lapse == "left the group":
        access.remove_member("ml-leads", "lead1")
    elif lapse == "disabled":
        access.update_user("lead1", disabled=True)
    else:
        grant = next(g for g in access.list_grants(subject="group:ml-leads") if g.role == "approver")
        for lead in ("lead2", "lead3"):
            access.grant(f"user:{lead}", "approver", scope="stage:Production")
        access.revoke_grant(grant.id)
    second = team.lead2.approvals.approve(request.id)
    assert ("OPEN", ["lead1", "lead2"]) == (second.status, [r.reviewer for r in second.reviews])
    assert "APPLIED" == team.lead3.approvals.approve(request.id).status
    assert {1: "Archived", 2: "Production"} == stages(team.admin)


def test_numbers_out_of_range_are_bad_input(team: Team) -> None:
    big = 2**63
    for field, call in [
        ("'id'", lambda: team.admin.approvals.get_request(big)),
        ("'id'", lambda: team.admin.approvals.approve(big)),
        ("'id'", lambda: team.admin.approvals.reject(0)),
        ("'version'", lambda: team.requester.approvals.create_request("churn", big, stage="Production")),
        ("'version'", lambda: team.admin.approvals.list_requests("churn", version=big)),
        ("'version'", lambda: team.admin.approvals.list_comments("churn", big)),
        ("'version'", lambda: team.admin.approvals.add_comment("churn", big, "hi")),
        ("'at'", lambda: team.admin.approvals.placement("churn", stage="Production", at="0001-01-01T00:00")),
        ("'at'", lambda: team.admin.approvals.placement("churn", stage="Production", at=10**30)),
        ("'approvals'", lambda: team.admin.approvals.set_policy("stage", "Test", {"approvals": 10**30})),
        (
            "'approval_ttl_days'",
            lambda: team.admin.approvals.set_policy("stage", "Test", {"approval_ttl_days": 10**17}),
        ),
    ]:
        with pytest.raises(covex.InvalidInput, match=field):
            call()


def test_requests_are_listed_by_requester_and_paged_by_id(team: Team) -> None:
    v2, v3 = team.version(0.86), team.version(0.87)
    mine = [team.requester.approvals.create_request("churn", v, stage="Production") for v in (v2, v3)]
    listed = team.admin.approvals.list_requests("churn", requester="alice")
    assert [r.id for r in reversed(mine)] == [r.id for r in listed]
    assert [] == team.admin.approvals.list_requests("churn", requester="carol")
    assert [mine[0].id] == [r.id for r in team.admin.approvals.list_requests("churn", before=mine[1].id)]
    with pytest.raises(covex.InvalidInput, match="'before'"):
        team.admin.approvals.list_requests("churn", before=0)
