"""The audit trail through the SDK, on every backend: what a change records, who may read it."""

from __future__ import annotations

import io
import json
import uuid
from pathlib import Path

import pytest

import covex
from covex.domain.audit import AuditRecord
from tests.conftest import Registry


def unique(prefix: str) -> str:
    # The trail is shared by every test of the session: each test looks only at its own targets.
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def records(client: covex.Client, target: str, **filters: str) -> list[AuditRecord]:
    return list(reversed(client.audit.list_records(target=target, **filters).items))


def test_each_change_appends_a_record_with_who_what_and_the_change(client: covex.Client) -> None:
    name = unique("churn")
    client.create_model(name, "first")
    client.create_version(name, source="s3://bucket/model")
    client.set_alias(name, "champion", 1)
    client.update_model(name, description="second")

    trail = records(client, f"model:{name}")

    assert [
        ("model.create", f"model:{name}"),
        ("version.create", f"model:{name}/1"),
        ("alias.set", f"model:{name}@champion"),
        ("model.update", f"model:{name}"),
    ] == [(r.action, r.target) for r in trail if r.action not in ("version.finalize", "scan.run")]  # scans: Trust
    assert {"tester"} == {r.actor for r in trail}
    assert {"ok"} == {r.outcome for r in trail}
    assert all(r.request_id for r in trail)
    update = trail[-1]
    assert ({"description": "first"}, {"description": "second"}) == (
        json.loads(update.before or "null"),
        json.loads(update.after or "null"),
    )
    assert [r.seq for r in trail] == sorted(r.seq for r in trail)
    assert client.audit.verify().ok


def test_a_refused_attempt_is_recorded(client: covex.Client, registry: Registry) -> None:
    name = unique("guarded")
    client.create_model(name)
    with registry.user("bob") as bob, pytest.raises(covex.PermissionDenied):
        bob.create_version(name, source="s3://bucket/model")

    [refused] = records(client, f"model:{name}", outcome="refused")

    assert ("bob", "version.create", "refused") == (refused.actor, refused.action, refused.outcome)
    assert "needs the editor role" in json.loads(refused.after or "{}")["reason"]


def test_a_failed_change_leaves_no_record(client: covex.Client) -> None:
    name = unique("twice")
    client.create_model(name)
    with pytest.raises(covex.AlreadyExists):
        client.create_model(name)

    assert 1 == len(records(client, f"model:{name}", action="model.create"))


def test_reading_the_trail_takes_admin_rights_and_a_refusal_is_recorded(
    client: covex.Client, registry: Registry
) -> None:
    with registry.user("bob") as bob:
        for read in (bob.audit.list_records, bob.audit.verify, lambda: bob.audit.export(io.BytesIO())):
            with pytest.raises(covex.PermissionDenied, match="admin rights or membership of the group 'auditors'"):
                read()

    refused = client.audit.list_records(target="audit", actor="bob", max_results=3).items
    assert ["audit.export", "audit.verify", "audit.list"] == [r.action for r in refused]


def test_auditors_may_read_but_not_change(client: covex.Client, registry: Registry) -> None:
    name = unique("seen")
    client.create_model(name)
    with registry.user("carol", groups=["auditors"]) as carol:
        assert [f"model:{name}"] == [r.target for r in carol.audit.list_records(target=f"model:{name}")]
        assert carol.audit.verify().ok
        with pytest.raises(covex.PermissionDenied):
            carol.create_version(name, source="s3://bucket/model")


def test_filters_and_pages(client: covex.Client) -> None:
    name = unique("paged")
    client.create_model(name)
    for i in range(5):
        client.set_model_tag(name, "k", str(i))

    first = client.audit.list_records(target=f"model:{name}", action="model.tag.*", max_results=3)
    second = client.audit.list_records(
        target=f"model:{name}", action="model.tag.*", max_results=3, page_token=first.next_page_token
    )

    assert ['{"k":"4"}', '{"k":"3"}', '{"k":"2"}', '{"k":"1"}', '{"k":"0"}'] == [r.after for r in [*first, *second]]
    assert second.next_page_token is None
    newest = first.items[0]
    assert [newest.seq] == [
        r.seq
        for r in client.audit.list_records(target=f"model:{name}", since=newest.timestamp, actor="tester")
        if r.seq == newest.seq
    ]
    assert [] == client.audit.list_records(target=f"model:{name}", until=0).items
    assert [] == client.audit.list_records(target=f"model:{name}", actor="nobody").items
    # A prefix is not a parent: model:paged-x does not match model:paged-xy.
    assert [] == client.audit.list_records(target=f"model:{name[:-1]}").items
    with pytest.raises(covex.InvalidInput, match="'page_token'"):
        client.audit.list_records(page_token="nope")
    with pytest.raises(covex.InvalidInput, match="'max_results'"):
        client.audit.list_records(max_results=0)


def test_an_export_verifies_offline(client: covex.Client, tmp_path: Path) -> None:
    client.create_model(unique("exported"))
    path = tmp_path / "trail.jsonl"

    count = client.audit.export(path)
    report = client.audit.verify_file(path)
    text = io.StringIO()
    client.audit.export(text)

    assert (True, True) == (report.ok, report.head_checked)
    assert count == report.records >= 1
    lines = path.read_text().splitlines()
    assert count + 1 == len(lines)
    assert {"head": {"seq": report.last_seq, "hash": report.last_hash}} == json.loads(lines[-1])
    assert text.getvalue().startswith(lines[0])
