"""Inputs an attacker tried that were accepted and broke later readers, or answered differently by backend.

Each is now refused when written, with the same error on every backend and database.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

import covex
from covex.domain.entities import NewVersion
from tests.conftest import Registry


def _nested(depth: int) -> dict[str, Any]:
    doc: dict[str, Any] = {"leaf": 1}
    for _ in range(depth):
        doc = {"x": doc}
    return doc


@pytest.mark.parametrize(
    ("documents", "says"),
    [
        ({"lineage": _nested(40)}, "more than 32 deep"),
        ({"lineage": {"note": "a\ud800b"}}, "lone surrogate"),
        ({"lineage": {"note": "a\x00b"}}, "NUL"),
        ({"lineage": {"git": "x"}}, "'documents.lineage.git' must be an object"),
        ({"lineage": {"datasets": "x"}}, "'documents.lineage.datasets' must be a list of objects"),
        ({"lineage": {"datasets": [1]}}, "'documents.lineage.datasets' must be a list of objects"),
        ({"lineage": {"datasets": [{"rows": 3}]}}, "'documents.lineage.datasets[0].name' must be text"),
        ({"lineage": {"parent": 5}}, "'documents.lineage.parent' must be text"),
        ({"lineage": {"git": {"commit": 5}}}, "'documents.lineage.git.commit' must be text"),
        ({"signature": {"inputs": "not json"}}, "'documents.signature.inputs' is text that is not JSON"),
        ({"signature": {"inputs": [1, 2]}}, "must be a list of column objects"),
    ],
)
def test_documents_readers_could_not_render_are_refused(client: covex.Client, documents: Any, says: str) -> None:
    client.create_model("docs")
    with pytest.raises(covex.InvalidInput, match=None) as refused:
        client.create_version("docs", source="s3://b/1", documents=documents)
    assert says in refused.value.message
    assert [] == client.list_versions("docs").items


def test_documents_covex_writes_still_pass(client: covex.Client) -> None:
    lineage = {
        "git": {"commit": "abc", "branch": "main", "dirty": False, "remote": ""},
        "datasets": [{"name": "train", "uri": "s3://d", "rows": 10, "role": "training", "digest": "ff"}],
        "parent": None,
        "run_id": "r1",
        "run_link": "",
        "flavors": ["sklearn"],
        "environment": {"python": "3.11"},
        "extra": {"anything": [1, "two", {"three": 3}]},
    }
    signature = {"inputs": '[{"name": "x", "type": "double"}]', "outputs": [{"type": "long"}]}
    client.create_model("docs")
    v = client.create_version("docs", source="s3://b/1", documents={"lineage": lineage, "signature": signature})
    assert lineage == client.get_lineage(v.uri)


def test_policies_with_text_no_database_stores_are_refused(client: covex.Client) -> None:
    for approvers in (["group:a\ud800"], ["group:a\x00b"], ["user:../x"]):
        with pytest.raises(covex.InvalidInput):
            client.approvals.set_policy("stage", "Production", {"approvals": 1, "approvers": approvers})
    assert [] == client.approvals.list_policies()


def test_approver_grants_name_a_stage_or_alias_that_can_exist(registry: Registry, client: covex.Client) -> None:
    registry.service.access.create_user("ann")
    for scope in ("stage:NoSuchStage", "stage:Prod\x00uction", "alias:latest", "alias:a/b"):
        with pytest.raises(covex.InvalidInput):
            client.access.grant("user:ann", "approver", scope=scope)
    grant = client.access.grant("user:ann", "approver", scope="stage:production")
    assert "stage:Production" == grant.scope  # as configured
    for subject in ("user:a\x00b", "group:../x"):
        with pytest.raises(covex.InvalidInput):
            client.access.grant(subject, "reader")


def test_too_many_entries_in_one_request(client: covex.Client) -> None:
    many = {f"k{i}": "v" for i in range(1001)}
    client.create_model("m")
    calls: list[Callable[[], Any]] = [
        lambda: client.create_model("other", tags=many),
        lambda: client.create_version("m", source="s3://b", params=many),
        lambda: client.create_version("m", source="s3://b", metrics={k: 1.0 for k in many}),
    ]
    for call in calls:
        with pytest.raises(covex.InvalidInput, match="the limit is 1000 per request"):
            call()


def test_keys_do_not_start_or_end_with_spaces(client: covex.Client) -> None:
    client.create_model("m")
    for key in (" a", "a ", " "):
        with pytest.raises(covex.InvalidInput):
            client.set_model_tag("m", key, "v")


def test_choosing_a_version_number_is_for_managers(registry: Registry, client: covex.Client) -> None:
    client.create_model("prod-model")
    registry.service.access.create_user("alice")
    client.access.grant("user:alice", "editor", model="prod-model")
    with registry.user_token("alice") as alice:
        with pytest.raises(covex.PermissionDenied):
            alice._backend.create_version("prod-model", NewVersion(source="s3://x", number=2**31 - 1))
        assert 1 == alice.create_version("prod-model", source="s3://x").version
    v = client._backend.create_version("prod-model", NewVersion(source="s3://x", number=2**31 - 1))
    assert 2**31 - 1 == v.version
    with pytest.raises(covex.InvalidState, match="last version number"):
        client.create_version("prod-model", source="s3://x")


def test_file_modes_travel_as_executable_or_not(client: covex.Client) -> None:
    client.create_model("m")
    files = [
        covex.FileEntry(path="run.sh", digest="0" * 64, size=1, mode=0o777),
        covex.FileEntry(path="data.bin", digest="1" * 64, size=1, mode=0o666),
    ]
    client._backend.create_version("m", NewVersion(files=files))
    _, stored = client.get_version_files("m", 1)
    assert {"run.sh": 0o755, "data.bin": 0o644} == {f.path: f.mode for f in stored}


def test_like_escapes_with_a_backslash_on_every_database(client: covex.Client) -> None:
    client.create_model("pct", tags={"p": "50%"})
    client.create_model("back", tags={"p": "a\\b"})
    client.create_model("plain", tags={"p": "50x"})
    assert ["pct"] == [m.name for m in client.search_models(r"tags.p LIKE '50\\%'").items]
    assert ["pct", "plain"] == [m.name for m in client.search_models("tags.p LIKE '50%'").items]
    assert ["back"] == [m.name for m in client.search_models(r"tags.p LIKE 'a\\\\b'").items]


def test_the_same_answers_from_both_sdks(client: covex.Client) -> None:
    client.create_model("m", description=None)  # type: ignore[arg-type]  # None reads as empty everywhere
    client.create_version("m", source="s3://b/1")
    client.update_version("m", 1, description=None)  # type: ignore[arg-type]
    client.set_alias("m", "champion", 1, comment=None)  # type: ignore[arg-type]
    assert "" == client.get_version("m", 1).description
    with pytest.raises(covex.InvalidInput, match="'archive_existing' must be true or false"):
        client.transition_stage("m", 1, "Dev", archive_existing="yes")  # type: ignore[arg-type]
    with pytest.raises(covex.InvalidInput, match="'metrics' must be a mapping"):
        client.log_metrics("m", 1, [("auc", 1.0)])  # type: ignore[arg-type]
    with pytest.raises(covex.InvalidInput, match="'tags' must be a mapping"):
        client.create_model("n", tags=[("a", "b")])  # type: ignore[arg-type]
    with pytest.raises(covex.InvalidInput, match="invalid filter: must be a string"):
        client.search_models(5)  # type: ignore[arg-type]
    with pytest.raises(covex.InvalidInput, match="'actor'"):
        client.audit.list_records(actor="a\x00b")
