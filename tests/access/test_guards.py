"""Guards found by review: protected stages both ways, approver rights, token lifetimes, number ranges."""

from __future__ import annotations

import os
import time
from collections.abc import Callable

import httpx
import pytest

import covex
from covex.domain.entities import NewVersion
from tests.conftest import Registry

PROTECTED = {"approvals": 1, "archive_existing": True}


@pytest.fixture
def churn(registry: Registry, client: covex.Client) -> covex.Client:
    """churn v1 and v2 in Production (moved there before Production got its policy); ed is an editor."""
    client.create_model("churn")
    for _ in range(2):
        v = client.create_version("churn", source="s3://b/churn").version
        client.transition_stage("churn", v, "Production")
    client.approvals.set_policy("stage", "Production", PROTECTED)
    client.access.create_user("ed")
    client.access.grant("user:ed", "editor", model="churn")
    return client


def test_an_editor_cannot_change_who_holds_a_protected_stage(registry: Registry, churn: covex.Client) -> None:
    with registry.user_token("ed") as ed:
        with pytest.raises(covex.PermissionDenied, match="protected by a policy"):
            ed.transition_stage("churn", 1, "Production", archive_existing=True)
        with pytest.raises(covex.PermissionDenied, match="manager"):
            ed.transition_stage("churn", 2, "Archived")
    assert ["Production", "Production"] == [churn.get_version("churn", n).stage for n in (1, 2)]
    # The model's manager may retire a version from a protected stage.
    churn.transition_stage("churn", 2, "Archived")
    assert "Archived" == churn.get_version("churn", 2).stage


def test_only_admins_grant_approver_rights(registry: Registry, churn: covex.Client) -> None:
    churn.access.grant("user:ed", "manager", model="churn")
    with registry.user_token("ed") as ed:
        with pytest.raises(covex.PermissionDenied, match="admin"):
            ed.access.grant("user:ed", "approver", model="churn", scope="stage:Production")
        ed.access.grant("everyone", "reader", model="churn")  # other roles: still the manager's to give
    granted = churn.access.grant("user:ed", "approver", model="churn", scope="stage:Production")
    with registry.user_token("ed") as ed, pytest.raises(covex.PermissionDenied, match="admin"):
        ed.access.revoke_grant(granted.id)


def test_a_token_never_outlives_the_token_that_made_it(registry: Registry, client: covex.Client) -> None:
    client.access.create_user("bob")
    short = client.access.create_token("bob", expires_in_days=1 / 86_400)  # one second
    assert short.expires_at is not None
    with registry.client_with(short.secret) as bob:
        child = bob.access.create_token(name="forever")
    assert child.expires_at == short.expires_at
    time.sleep(max(0.0, (short.expires_at / 1000) - time.time()) + 0.05)
    with pytest.raises(covex.Unauthenticated, match="expired"), registry.client_with(child.secret) as c:
        c.access.whoami()


def test_deleting_a_version_records_its_aliases_going(churn: covex.Client) -> None:
    churn.set_alias("churn", "backup", 1)
    churn.delete_version("churn", 1)
    last = churn.history("churn")[-1]
    assert ("alias", "backup", "1", None) == (last.kind, last.subject, last.before, last.after)
    assert "version deleted" == last.comment


@pytest.mark.parametrize(
    "path",
    [
        "/api/v1/requests/99999999999999999999999999",
        "/api/v1/webhooks/99999999999999999999999999",
        "/api/v1/models/churn/-/versions/99999999999999999999999999",
        "/api/v1/models/churn/-/versions/9223372036854775808",
    ],
)
def test_numbers_past_64_bits_are_bad_input_not_a_crash(registries: Callable[[str, str], Registry], path: str) -> None:
    reg = registries("http", "sqlite")
    reg.reset()
    auth = {"Authorization": f"Bearer {reg.settings.token}"}
    with reg.client() as c:
        c.create_model("churn")
    r = httpx.get(reg.url + path, headers=auth, timeout=30)
    assert r.status_code in (400, 404), r.text
    assert r.json()["error_code"] in ("INVALID_PARAMETER_VALUE", "RESOURCE_DOES_NOT_EXIST")


def test_naming_a_digest_is_not_holding_the_file(registry: Registry, client: covex.Client, tree, tmp_path) -> None:
    secret = b"alice's private weights"
    client.create_model("private")
    held = client.create_version("private", tree({"model.bin": secret}))
    [entry] = client.list_files(f"models:/private/{held.version}")
    stored = registry.service.blobs.local_path(entry.digest)
    assert stored is not None
    os.utime(stored, (time.time() - 3600, time.time() - 3600))  # uploaded an hour ago
    with registry.user("eve") as eve:
        eve.create_model("mine")  # eve manages "mine": she may upload files
        with pytest.raises(covex.PermissionDenied):
            list(eve._backend.read_blob(entry.digest))
        assert [entry.digest] == eve._backend.missing_blobs([entry.digest])  # stored, but not hers to skip
        pending = eve._backend.create_version("mine", NewVersion(files=[entry]))
        with pytest.raises(covex.InvalidState) as named:
            eve._backend.finalize_version("mine", pending.version)
        # The same answer as for a digest stored nowhere, and for a stored one with a wrong size:
        # finalize tells nothing about other models' files, not even their sizes.
        ghost = covex.FileEntry(path="model.bin", digest="0" * 64, size=entry.size)
        resized = covex.FileEntry(path="model.bin", digest=entry.digest, size=entry.size + 1)
        for other in (ghost, resized):
            attempt = eve._backend.create_version("mine", NewVersion(files=[other]))
            with pytest.raises(covex.InvalidState) as unnamed:
                eve._backend.finalize_version("mine", attempt.version)
            assert named.value.message.replace(str(pending.version), "N") == unnamed.value.message.replace(
                str(attempt.version), "N"
            )
        assert "model.bin (not uploaded)" in named.value.message
        assert str(len(secret)) not in named.value.message
        with pytest.raises(covex.PermissionDenied):
            list(eve._backend.read_blob(entry.digest))
        # Holding the bytes is proof enough: uploading them makes the version hers.
        mine = eve.create_version("mine", tree({"model.bin": secret}))
        assert "READY" == mine.status
        assert secret == (eve.download(f"models:/mine/{mine.version}", tmp_path / "out") / "model.bin").read_bytes()
