"""Policies per model, name pattern and tag, and stage order, on every backend."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

import covex
from covex.domain.scopes import AppliedPolicy
from tests.conftest import Registry

POLICIES = """\
policies:
  - stage: Production
    gates: ["metrics.auc >= 0.80"]
  - stage: Production
    model: store-sales
    gates: ["metrics.rmse <= 12"]
  - stage: Production
    model: network/*
    approvals: 0
  - stage: Production
    model: net*
    approvals: 3
  - stage: Production
    tag: team=retail
    gates: ["metrics.mape <= 0.2"]
  - stage: Production
    tag: tier=gold
    approvals: 2
"""


@pytest.fixture
def lead(registry: Registry) -> Iterator[covex.Client]:
    """A second admin: approves what the tester (the author and requester) asks."""
    with registry.user("lead", admin=True) as c:
        yield c


def version(client: covex.Client, name: str, **metrics: float) -> int:
    return client.create_version(name, source=f"s3://m/{name}", metrics=metrics).version


def applied(client: covex.Client, name: str, stage: str = "Production") -> AppliedPolicy:
    (place,) = [p for p in client.approvals.applicable_policies(name) if (p.target_kind, p.target) == ("stage", stage)]
    return place


@pytest.fixture
def scoped(client: covex.Client) -> covex.Client:
    for name, tags in (
        ("store-sales", {"team": "retail"}),
        ("network/edge", {"team": "retail"}),
        ("basket", {"team": "retail", "tier": "gold"}),
        ("churn", {"team": "crm"}),
    ):
        client.create_model(name, tags=tags)
    client.approvals.apply_policy_file(POLICIES)
    return client


def test_the_most_specific_policy_applies(scoped: covex.Client) -> None:
    by_model = {name: applied(scoped, name) for name in ("store-sales", "network/edge", "basket", "churn")}
    assert {
        "store-sales": "model:store-sales",
        "network/edge": "pattern:network/*",
        "basket": "tag:team=retail",
        "churn": "global",
    } == {name: a.policy.scope_ref for name, a in by_model.items() if a.policy is not None}
    sales = by_model["store-sales"]
    assert "the policy for model 'store-sales' itself" == sales.reason
    assert [
        ("tag:team=retail", True),
        ("global", True),
        ("pattern:network/*", False),
        ("pattern:net*", False),
        ("tag:tier=gold", False),
    ] == [(p.scope, p.covers) for p in sales.passed_over]
    edge = by_model["network/edge"]
    assert ("pattern:net*", True, "matches too, but pattern 'network/*' is longer") == (
        edge.passed_over[0].scope,
        edge.passed_over[0].covers,
        edge.passed_over[0].reason,
    )
    # Two tags cover basket: team=retail comes before tier=gold.
    basket = by_model["basket"]
    assert "covers it too, but tag team=retail comes first in alphabetical order" in [
        p.reason for p in basket.passed_over if p.scope == "tag:tier=gold"
    ]
    churn = by_model["churn"]
    assert "the model's tag team is 'crm', not 'retail'" in [p.reason for p in churn.passed_over]
    assert "pattern 'network/*' does not match 'churn'" in [p.reason for p in churn.passed_over]
    # Other stages have no policy; they say so.
    test = applied(scoped, "churn", "Test")
    assert (None, []) == (test.policy, test.passed_over)


def test_requests_are_judged_by_the_policy_of_their_model(scoped: covex.Client, lead: covex.Client) -> None:
    sales = version(scoped, "store-sales", rmse=10.0)
    request = scoped.approvals.create_request("store-sales", sales, stage="Production")
    sales_policy = scoped.approvals.get_policy("stage", "Production", model="store-sales")
    assert (sales_policy.id, "model:store-sales") == (request.policy_id, request.policy_scope)
    assert request.policy is not None and ["metrics.rmse <= 12"] == request.policy.gates
    assert ["metrics.rmse <= 12"] == [g.gate for g in request.gates]
    assert (request.policy_id, "model:store-sales") == (
        scoped.approvals.get_request(request.id).policy_id,
        scoped.approvals.list_requests("store-sales")[0].policy_scope,
    )
    assert "APPLIED" == lead.approvals.approve(request.id).status
    # churn falls to the global policy: an auc gate, which a regression model cannot pass.
    churn = version(scoped, "churn", rmse=10.0)
    with pytest.raises(covex.InvalidState, match=r"does not meet the policy of stage 'Production': .*no metric 'auc'"):
        scoped.approvals.create_request("churn", churn, stage="Production")
    # network/* needs no approvals: the request applies at once.
    edge = version(scoped, "network/edge")
    done = scoped.approvals.create_request("network/edge", edge, stage="Production")
    assert ("APPLIED", "pattern:network/*", 0) == (done.status, done.policy_scope, done.approvals_needed)


def test_a_request_turns_stale_when_another_policy_governs_its_model(scoped: covex.Client, lead: covex.Client) -> None:
    churn = version(scoped, "churn", auc=0.9)
    request = scoped.approvals.create_request("churn", churn, stage="Production")
    assert "global" == request.policy_scope
    mine = scoped.approvals.set_policy("stage", "Production", {"approvals": 1}, model="churn")
    with pytest.raises(covex.InvalidState, match="stale"):
        lead.approvals.approve(request.id)
    stale = scoped.approvals.get_request(request.id)
    assert (
        "STALE",
        f"policy {request.policy_id} (global), which judged the request, no longer governs stage 'Production' for "
        f"'churn': it still covers the model, but model 'churn' is more specific; policy {mine.id} (model 'churn') "
        "governs it now",
    ) == (stale.status, stale.status_message)


def test_a_request_whose_policy_no_longer_governs_its_renamed_model_says_what_happened(
    client: covex.Client, lead: covex.Client
) -> None:
    client.create_model("churn")
    v = version(client, "churn")
    mine = client.approvals.set_policy("stage", "Production", {"approvals": 1}, model="churn")
    # Other policies exist, of this stage and of others; none covers the new name.
    client.approvals.set_policy("stage", "Production", {"approvals": 2}, model="sales/*")
    client.approvals.set_policy("stage", "Test", {"approvals": 1})
    request = client.approvals.create_request("churn", v, stage="Production")
    client.rename_model("churn", "churn-v2")
    with pytest.raises(covex.InvalidState) as info:
        lead.approvals.approve(request.id)
    change = (
        f"policy {mine.id} (model 'churn'), which judged the request, no longer governs stage 'Production' for "
        "'churn-v2': it is for model 'churn', which was renamed 'churn-v2'; no policy governs it now"
    )
    assert f"request {request.id} is stale and was closed: {change} (closed by lead); move the version directly" == (
        info.value.message
    )
    assert ("STALE", "None") == (
        client.approvals.get_request(request.id).status,
        client.get_version("churn-v2", v).stage,
    )
    # Renamed out of a pattern, into the global policy's care: the message names the one that governs now.
    glob = client.approvals.set_policy("stage", "Production", {"approvals": 3})
    client.create_model("sales/eu")
    w = version(client, "sales/eu")
    pattern = client.approvals.get_policy("stage", "Production", model="sales/*")
    request = client.approvals.create_request("sales/eu", w, stage="Production")
    client.rename_model("sales/eu", "eu-sales")
    with pytest.raises(covex.InvalidState) as info:
        lead.approvals.approve(request.id)
    assert (
        f"request {request.id} is stale and was closed: policy {pattern.id} (pattern 'sales/*'), which judged the "
        "request, no longer governs stage 'Production' for 'eu-sales': pattern 'sales/*' does not match "
        f"'eu-sales': the model was renamed; policy {glob.id} (global) governs it now; open a new request"
    ) == info.value.message


def test_a_request_whose_tag_policy_no_longer_governs_says_what_happened(
    registry: Registry, client: covex.Client, lead: covex.Client
) -> None:
    client.create_model("basket", tags={"team": "retail"})
    v = version(client, "basket")
    retail = client.approvals.set_policy("stage", "Production", {"approvals": 1}, tag="team=retail")
    request = client.approvals.create_request("basket", v, stage="Production")
    client.set_model_tag("basket", "team", "crm")
    change = (
        f"policy {retail.id} (tag team=retail), which judged the request, no longer governs stage 'Production' for "
        "'basket': the model's tag team is 'crm', not 'retail'; no policy governs it now"
    )
    with registry.user("bob") as bob:
        client.access.grant("user:bob", "reader", model="basket")
        with pytest.raises(covex.PermissionDenied) as refused:
            bob.approvals.approve(request.id)
    assert (
        f"'bob' may not review request {request.id}: {change}, so only its requester ('{request.requester}'), "
        "a manager of 'basket' or an admin may close it"
    ) == refused.value.message
    with pytest.raises(covex.InvalidState) as info:
        lead.approvals.approve(request.id)
    assert (
        f"request {request.id} is stale and was closed: {change} (closed by lead); move the version directly"
    ) == info.value.message


def test_a_request_is_stale_when_its_policy_is_deleted_and_another_takes_its_id(
    client: covex.Client, lead: covex.Client
) -> None:
    client.create_model("s/x")
    v = version(client, "s/x")
    strict = client.approvals.set_policy("stage", "Production", {"approvals": 3}, model="s/*")
    request = client.approvals.create_request("s/x", v, stage="Production")
    client.approvals.delete_policy("stage", "Production", model="s/*")
    lax = client.approvals.set_policy("stage", "Production", {"approvals": 1}, model="s/x")
    assert strict.id <= lax.id  # SQLite gives the highest deleted id again; PostgreSQL never does
    with pytest.raises(covex.InvalidState, match="stale"):
        lead.approvals.approve(request.id)
    assert ("STALE", "None") == (client.approvals.get_request(request.id).status, client.get_version("s/x", v).stage)


def test_direct_moves_follow_the_policy_of_their_model(scoped: covex.Client) -> None:
    scoped.create_model("forecast")
    scoped.approvals.set_policy("stage", "Production", {"from": ["Test"]}, model="forecast")
    v = version(scoped, "forecast")
    with pytest.raises(covex.InvalidState, match="stage 'Production' may be entered only from Test"):
        scoped.transition_stage("forecast", v, "Production")
    scoped.transition_stage("forecast", v, "Test")
    assert "Production" == scoped.transition_stage("forecast", v, "Production").stage
    churn = version(scoped, "churn", auc=0.9)
    with pytest.raises(covex.PermissionDenied, match="protected by a policy"):
        scoped.transition_stage("churn", churn, "Production")


def test_scoped_policies_are_set_read_and_deleted_by_scope(client: covex.Client) -> None:
    approvals = client.approvals
    glob = approvals.set_policy("stage", "production", {"approvals": 1})
    mine = approvals.set_policy("stage", "Production", {"approvals": 2}, model="churn")
    pattern = approvals.set_policy("stage", "Production", {"approvals": 3}, model="net/*")
    tagged = approvals.set_policy("alias", "champion", {"approvals": 0}, tag="team=retail")
    assert [
        ("global", None, None),
        ("model", "churn", None),
        ("pattern", "net/*", None),
        ("tag", None, "team=retail"),
    ] == [(p.scope, p.model, p.tag) for p in (glob, mine, pattern, tagged)]
    assert 4 == len({glob.id, mine.id, pattern.id, tagged.id})
    assert 2 == approvals.get_policy("stage", "Production", model="churn").approvals
    assert 1 == approvals.get_policy("stage", "Production").approvals
    assert ["global", "model", "pattern", "tag"] == [p.scope for p in approvals.list_policies()]
    approvals.delete_policy("stage", "Production", model="churn")
    with pytest.raises(covex.NotFound, match="stage 'Production' has no policy for model 'churn'"):
        approvals.get_policy("stage", "Production", model="churn")
    assert 1 == approvals.get_policy("stage", "Production").approvals  # the global one stays
    with pytest.raises(covex.NotFound, match="has no policy for tag team=crm"):
        approvals.delete_policy("alias", "champion", tag="team=crm")


@pytest.mark.parametrize(
    ("scope", "message"),
    [
        ({"model": "churn", "tag": "team=crm"}, "give at most one of 'model' or 'tag'"),
        ({"tag": "team"}, "'tag' must be written key=value"),
        ({"tag": "team="}, "'tag' 'team=' needs a value after '='"),
        ({"model": "bad name"}, "'model' 'bad name' is not a valid model name"),
        ({"model": "net/*;drop"}, "'model' pattern 'net/\\*;drop' may hold only"),
    ],
)
def test_bad_scopes_name_the_field(client: covex.Client, scope: dict[str, str], message: str) -> None:
    with pytest.raises(covex.InvalidInput, match=message):
        client.approvals.set_policy("stage", "Production", {"approvals": 1}, **scope)
    assert [] == client.approvals.list_policies()


# -- stage order ----------------------------------------------------------------------------

ORDER = """\
policies:
  - stage: Test
    from: [Dev]
  - stage: Production
    from: [Test]
    approvals: 1
"""


def test_stage_order_holds_for_direct_moves(client: covex.Client) -> None:
    client.create_model("churn")
    client.approvals.apply_policy_file(ORDER)
    v = version(client, "churn")
    with pytest.raises(
        covex.InvalidState, match="version 1 of 'churn' is in stage 'None'; stage 'Test' may be entered only from Dev"
    ):
        client.transition_stage("churn", v, "Test")
    client.transition_stage("churn", v, "Dev")
    # Test's policy asks for nothing but the order: editors move in directly, from Dev.
    assert "Test" == client.transition_stage("churn", v, "Test").stage
    # Production's asks for an approval too: a request, even from the right stage.
    with pytest.raises(covex.PermissionDenied, match="protected by a policy"):
        client.transition_stage("churn", v, "Production")
    # Leaving an order-only stage needs no manager: it is not protected.
    assert "Dev" == client.transition_stage("churn", v, "Dev").stage


def test_stage_order_holds_for_requests(registry: Registry, client: covex.Client, lead: covex.Client) -> None:
    client.create_model("churn")
    client.approvals.apply_policy_file(ORDER)
    v = version(client, "churn")
    client.transition_stage("churn", v, "Dev")
    with pytest.raises(
        covex.InvalidState,
        match="version 1 of 'churn' is in stage 'Dev'; stage 'Production' may be entered only from Test",
    ):
        client.approvals.create_request("churn", v, stage="Production")
    client.transition_stage("churn", v, "Test")
    request = client.approvals.create_request("churn", v, stage="Production")
    assert request.policy is not None and ["Test"] == request.policy.from_
    # The version goes back to Dev meanwhile: the approval finds the order broken.
    client.transition_stage("churn", v, "Dev")
    with pytest.raises(covex.InvalidState, match="stale"):
        lead.approvals.approve(request.id)
    assert "stage 'Production' may be entered only from Test" in client.approvals.get_request(request.id).status_message
    client.transition_stage("churn", v, "Test")
    again = client.approvals.create_request("churn", v, stage="Production")
    assert "APPLIED" == lead.approvals.approve(again.id).status
    assert "Production" == client.get_version("churn", v).stage


def test_from_is_checked_where_policies_are_set(client: covex.Client) -> None:
    with pytest.raises(covex.InvalidInput, match=r"'from\[0\]' 'Prod' is not a stage"):
        client.approvals.set_policy("stage", "Production", {"from": ["Prod"]})
    with pytest.raises(covex.InvalidInput, match="'from' applies to stages only"):
        client.approvals.set_policy("alias", "champion", {"from": ["Test"]})
    with pytest.raises(covex.InvalidInput, match=r"'from\[1\]' names stage 'Test' itself"):
        client.approvals.set_policy("stage", "Test", {"from": ["Dev", "test"]})
    policy = client.approvals.set_policy("stage", "Production", {"from": ["test", "Test"]}, model="churn")
    assert (["Test"], 0, True) == (policy.from_, policy.approvals, policy.direct)


def test_a_tag_change_that_changes_the_policy_takes_a_manager(registry: Registry, client: covex.Client) -> None:
    client.create_model("store-sales", tags={"team": "retail", "owner": "ana"})
    client.approvals.set_policy("stage", "Production", {"approvals": 2})
    client.approvals.set_policy("stage", "Production", {"approvals": 0}, tag="team=retail")
    with registry.user("alice") as alice:
        client.access.grant("user:alice", "editor", model="store-sales")
        alice.set_model_tag("store-sales", "owner", "bo")  # no policy is scoped by 'owner'
        alice.set_model_tag("store-sales", "team", "retail")  # the same policy still governs
        with pytest.raises(
            covex.PermissionDenied,
            match=r"removing tag team moves stage 'Production' from the policy for tag team=retail to the global",
        ):
            alice.delete_model_tag("store-sales", "team")
        with pytest.raises(covex.PermissionDenied, match="takes a manager of 'store-sales'"):
            alice.set_model_tag("store-sales", "team", "crm")
        assert "retail" == client.get_model("store-sales").tags["team"]
        client.access.grant("user:alice", "manager", model="store-sales")
        alice.delete_model_tag("store-sales", "team")
    assert "global" == applied(client, "store-sales").policy.scope  # type: ignore[union-attr]
