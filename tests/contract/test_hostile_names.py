"""Names, aliases, keys and stages that try to leave their place: refused alike on every backend.

Over HTTP a model name once travelled into the URL path with ``/`` unquoted, and the HTTP
library normalised ``..``: ``delete_model("../users/tmpuser")`` deleted the *user*. Every value
is now validated on the client exactly as embedded, each path segment is encoded, and the
server refuses dot segments and invalid names before any route acts.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select

import covex
from covex.store.schema import audit_log
from tests import support
from tests.conftest import Registry

HOSTILE = [
    "..",
    "../users/tmpuser",
    "../whoami",
    "a/../../b",
    "%2e%2e",
    "%2E%2E/users/tmpuser",
    "a/./b",
    ".",
    "churn/",
    "/churn",
    "a\x00b",
    "a\nb",
    "\u2024\u2024",  # ONE DOT LEADER: looks like ".."
    "\uff0e\uff0e/users/tmpuser",  # FULLWIDTH FULL STOP
    "a" * 300,
    "",
]

Call = Callable[[covex.Client, str], Any]

# Every SDK method that takes a model name (the model "churn" and version 1 exist).
NAME_CALLS: dict[str, Call] = {
    "create_model": lambda c, v: c.create_model(v),
    "get_model": lambda c, v: c.get_model(v),
    "delete_model": lambda c, v: c.delete_model(v),
    "rename_model (old)": lambda c, v: c.rename_model(v, "fine"),
    "rename_model (new)": lambda c, v: c.rename_model("churn", v),
    "update_model": lambda c, v: c.update_model(v, description="x"),
    "set_model_tag": lambda c, v: c.set_model_tag(v, "k", "v"),
    "delete_model_tag": lambda c, v: c.delete_model_tag(v, "k"),
    "create_version": lambda c, v: c.create_version(v, source="s3://bucket/m"),
    "list_versions": lambda c, v: c.list_versions(v),
    "get_version": lambda c, v: c.get_version(v, 1),
    "get_version (alias)": lambda c, v: c.get_version(v, "@champion"),
    "get_latest_version": lambda c, v: c.get_latest_version(v, "Production"),
    "update_version": lambda c, v: c.update_version(v, 1, description="x"),
    "set_version_tag": lambda c, v: c.set_version_tag(v, 1, "k", "v"),
    "delete_version_tag": lambda c, v: c.delete_version_tag(v, 1, "k"),
    "log_metrics": lambda c, v: c.log_metrics(v, 1, {"auc": 0.5}),
    "log_params": lambda c, v: c.log_params(v, 1, {"C": "1"}),
    "delete_version": lambda c, v: c.delete_version(v, 1),
    "transition_stage": lambda c, v: c.transition_stage(v, 1, "Dev"),
    "set_alias": lambda c, v: c.set_alias(v, "champion", 1),
    "delete_alias": lambda c, v: c.delete_alias(v, "champion"),
    "list_files": lambda c, v: c.list_files(v, 1),
    "get_card": lambda c, v: c.get_card(v, 1),
    "set_card": lambda c, v: c.set_card(v, {"overview": "x"}, 1),
    "get_lineage": lambda c, v: c.get_lineage(v, 1),
    "history": lambda c, v: c.history(v),
    "add_comment": lambda c, v: c.approvals.add_comment(v, 1, "x"),
    "list_comments": lambda c, v: c.approvals.list_comments(v, 1),
    "placement": lambda c, v: c.approvals.placement(v, stage="Production"),
    "rollback": lambda c, v: c.approvals.rollback(v, stage="Production"),
    "create_request": lambda c, v: c.approvals.create_request(v, 1, stage="Production"),
}
ALIAS_CALLS: dict[str, Call] = {
    "set_alias": lambda c, v: c.set_alias("churn", v, 1),
    "delete_alias": lambda c, v: c.delete_alias("churn", v),
    "get_version": lambda c, v: c.get_version("churn", "@" + v),
    "list_files": lambda c, v: c.list_files("churn", "@" + v),
    "get_document": lambda c, v: c.get_document("churn", "card", "@" + v),
    "rollback": lambda c, v: c.approvals.rollback("churn", alias=v),
    "get_policy": lambda c, v: c.approvals.get_policy("alias", v),
}
KEY_CALLS: dict[str, Call] = {
    "set_model_tag": lambda c, v: c.set_model_tag("churn", v, "x"),
    "delete_model_tag": lambda c, v: c.delete_model_tag("churn", v),
    "set_version_tag": lambda c, v: c.set_version_tag("churn", 1, v, "x"),
    "delete_version_tag": lambda c, v: c.delete_version_tag("churn", 1, v),
    "log_metrics": lambda c, v: c.log_metrics("churn", 1, {v: 1.0}),
    "log_params": lambda c, v: c.log_params("churn", 1, {v: "x"}),
    "create_model tags": lambda c, v: c.create_model("other", tags={v: "x"}),
}
STAGE_CALLS: dict[str, Call] = {
    "transition_stage": lambda c, v: c.transition_stage("churn", 1, v),
    "get_latest_version": lambda c, v: c.get_latest_version("churn", v),
    "get_version": lambda c, v: c.get_version(f"models:/churn/{v}"),
    "placement": lambda c, v: c.approvals.placement("churn", stage=v),
}
PRINCIPAL_CALLS: dict[str, Call] = {
    "get_user": lambda c, v: c.access.get_user(v),
    "update_user": lambda c, v: c.access.update_user(v, disabled=True),
    "delete_user": lambda c, v: c.access.delete_user(v),
    "get_group": lambda c, v: c.access.get_group(v),
    "delete_group": lambda c, v: c.access.delete_group(v),
    "add_member (group)": lambda c, v: c.access.add_member(v, "tmpuser"),
    "add_member (user)": lambda c, v: c.access.add_member("crew", v),
    "remove_member": lambda c, v: c.access.remove_member("crew", v),
}


def _seq(registry: Registry) -> int:
    with registry.engine.connect() as conn:
        return int(conn.execute(select(func.coalesce(func.max(audit_log.c.seq), 0))).scalar_one())


@pytest.fixture
def world(registry: Registry, client: covex.Client) -> covex.Client:
    """``churn`` v1 READY with alias ``champion``; the user ``tmpuser`` in group ``crew``."""
    client.create_model("churn")
    client.create_version("churn", source="s3://bucket/churn/1")
    client.set_alias("churn", "champion", 1)
    registry.service.access.create_user("tmpuser")
    registry.service.access.create_group("crew")
    return client


KINDS: dict[str, tuple[dict[str, Call], list[str]]] = {
    "name": (NAME_CALLS, ["a/b/c", "-a", "a b"]),
    "alias": (ALIAS_CALLS, ["a@b", "champion/x", "latest", "v3", "Production"]),
    "key": (KEY_CALLS, ["a//b", "a/", "k=v", "k;drop"]),
    "stage": (STAGE_CALLS, ["Nowhere"]),
    "principal": (PRINCIPAL_CALLS, []),
}


@pytest.mark.parametrize(
    ("call", "values"),
    [
        pytest.param(call, [*HOSTILE, *extra], id=f"{kind}-{method}")
        for kind, (calls, extra) in KINDS.items()
        for method, call in calls.items()
    ],
)
def test_hostile_values_are_refused_alike(
    registry: Registry, world: covex.Client, call: Call, values: list[str]
) -> None:
    for value in values:
        if value == "" and call is STAGE_CALLS["get_latest_version"]:
            continue  # no stage means the latest version in any stage
        before = _seq(registry)
        with pytest.raises(covex.InvalidInput):
            call(world, value)
        # Nothing changed, nothing was even attempted: no audit record, the user and the model are there.
        assert before == _seq(registry), repr(value)
    assert "tmpuser" == registry.service.access.get_user("tmpuser").name
    assert "churn" == world.get_model("churn").name


def test_keys_that_read_as_paths_are_still_fine(world: covex.Client) -> None:
    world.set_model_tag("churn", "mlflow.source/git: commit", "abc")
    world.log_metrics("churn", 1, {"eval/auc": 0.9})
    assert "abc" == world.get_model("churn").tags["mlflow.source/git: commit"]
    assert 0.9 == world.get_version("churn", 1).metrics["eval/auc"]
    world.delete_model_tag("churn", "mlflow.source/git: commit")


def test_metrics_must_be_finite(world: covex.Client) -> None:
    for value in (float("inf"), float("-inf"), float("nan")):
        with pytest.raises(covex.InvalidInput, match=r"'metrics\.auc' must be a finite number"):
            world.log_metrics("churn", 1, {"auc": value})
        with pytest.raises(covex.InvalidInput, match="finite"):
            world.create_version("churn", source="s3://b/2", metrics={"auc": value})


# -- the server alone, as curl would call it ---------------------------------------------------


@pytest.mark.parametrize(
    "raw_path",
    [
        "/api/v1/models/../users/tmpuser",
        "/api/v1/models/%2e%2e/users/tmpuser",
        "/api/v1/models/%2E%2E%2Fusers%2Ftmpuser",
        "/api/v1/models/churn/..",
        "/api/v1/models/churn/%2e",
        "/api/v1/models/a/./b",
        "/api/v1/models/x%2F..%2F..%2Fusers%2Ftmpuser",
        "/api/v1/users/%2e%2e",
        "/api/v1/users/tmpuser/..",
    ],
)
def test_server_refuses_dot_segments_before_any_route(
    registries: Callable[[str, str], Registry], raw_path: str
) -> None:
    registry = registries("http", "sqlite")
    registry.reset()
    registry.service.access.create_user("tmpuser")
    registry.service.create_model("churn")
    before = _seq(registry)
    auth = {"Authorization": f"Bearer {registry.settings.token}"}
    for method in ("GET", "DELETE"):
        # httpx would normalise the path; send it byte for byte, as `curl --path-as-is` does.
        r = support.raw_request(registry.url, method, raw_path, auth)
        assert (400, "INVALID_PARAMETER_VALUE") == (r.status_code, r.json()["error_code"]), r.text
    assert before == _seq(registry)
    assert "tmpuser" == registry.service.access.get_user("tmpuser").name


# -- the two backends agree on every name --------------------------------------------------------


@pytest.fixture(scope="module")
def pair(registries: Callable[[str, str], Registry]) -> tuple[covex.Client, covex.Client]:
    embedded, http = registries("embedded", "sqlite"), registries("http", "sqlite")
    return embedded.client(), http.client()


def _outcome(call: Call, client: covex.Client, name: str) -> str:
    try:
        call(client, name)
    except covex.CovexError as exc:
        return type(exc).__name__
    return "ok"


NAMES = st.one_of(
    st.text(max_size=40),
    st.text(alphabet=st.sampled_from("ab./-_%2eE\x00 \u2024\uff0e@"), max_size=12),
    st.sampled_from(HOSTILE),
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(name=NAMES)
def test_http_and_embedded_agree_on_every_name(pair: tuple[covex.Client, covex.Client], name: str) -> None:
    embedded, http = pair
    for call in (
        NAME_CALLS["get_model"],
        NAME_CALLS["get_version (alias)"],
        NAME_CALLS["delete_model_tag"],
        NAME_CALLS["history"],
        ALIAS_CALLS["get_version"],
        KEY_CALLS["delete_model_tag"],
        STAGE_CALLS["get_latest_version"],
    ):
        assert _outcome(call, embedded, name) == _outcome(call, http, name), repr(name)
