"""Trust over a real server: the version page shows the scan and the signed statements; the API answers
scans, keys and verification; a reader may see but not scan, trust keys or export."""

from __future__ import annotations

import hashlib
import os
import pickle
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from covex.domain.entities import FileEntry, NewVersion
from covex.domain.signing import generate
from covex.service import RegistryService
from tests.ui.forms import Site, running_site, signed_in


class Detonator:
    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (os.system, ("true",))


def _version_of(service: RegistryService, name: str, data: bytes) -> None:
    digest = hashlib.sha256(data).hexdigest()
    service.put_blob(digest, len(data), [data])
    made = service.create_version(name, NewVersion(files=[FileEntry(path="model.pkl", digest=digest, size=len(data))]))
    service.finalize_version(name, made.version)


def _seed(service: RegistryService) -> None:
    _, service.signer = generate()
    service.create_model("churn")
    _version_of(service, "churn", pickle.dumps({"w": [1, 2]}))
    _version_of(service, "churn", pickle.dumps(Detonator()))
    service.approvals.apply_policy_file("policies:\n  - stage: Test\n    scan: clean\n")
    service.transition_stage("churn", 1, "Test")


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    with running_site(tmp_path_factory.mktemp("trust-ui"), _seed) as running:
        yield running


def test_the_version_page_shows_the_scan_and_the_statements(site: Site) -> None:
    with signed_in(site, site.admin) as browser:
        clean = browser.get("/models/churn/-/versions/1").text
        flagged = browser.get("/models/churn/-/versions/2").text
    assert "CLEAN" in clean and "stage Test" in clean and "covex verify models:/churn/1" in clean
    assert "FINDINGS" in flagged and "system</code>" in flagged and "high" in flagged
    assert "No signed statement" in flagged


def test_the_api_answers_scans_keys_and_verification(site: Site) -> None:
    auth = {"Authorization": f"Bearer {site.admin}"}
    with httpx.Client(base_url=site.url, headers=auth, timeout=60) as api:
        scans = api.get("/api/v1/models/churn/-/versions/2/scans").json()["scans"]
        assert "FINDINGS" == scans[0]["verdict"]
        keys = api.get("/api/v1/keys").json()["keys"]
        assert ["own"] == [k["origin"] for k in keys]
        assert api.post("/api/v1/models/churn/-/versions/1/verify").json()["statements"][0]["valid"]
        refused = api.post("/api/v1/models/churn/-/versions/2/loadable")
        assert (409, "UNSAFE_MODEL") == (refused.status_code, refused.json()["error_code"])
        verified = api.post("/api/v1/models/churn/-/versions/1/verify").json()["verified"]
        unsigned = api.post("/api/v1/models/churn/-/versions/2/verify").json()["verified"]
        assert (True, False) == (verified, unsigned)
        empty = api.post("/api/v1/models/churn/-/versions/2/scans/accept", json={"reason": " "})
        assert (400, "'reason'") == (empty.status_code, empty.json()["message"][:8])
        bad = api.post("/api/v1/keys", json={"name": "x", "public_key": "not a key"})
        assert (400, "'public_key'") == (bad.status_code, bad.json()["message"][:12])
        big = api.post("/api/v1/bundles", content=b"COVEX-BUNDLE/1\n" + b"\xff" * 8 + b"x" * 100)
        assert (400, "SIGNATURE_INVALID") == (big.status_code, big.json()["error_code"])


def test_a_stranger_may_not_scan_trust_keys_or_export(site: Site, tmp_path: Path) -> None:
    auth = {"Authorization": f"Bearer {site.stranger}"}
    with httpx.Client(base_url=site.url, headers=auth, timeout=60) as api:
        assert 403 == api.post("/api/v1/models/churn/-/versions/1/scans").status_code
        assert 403 == api.post("/api/v1/keys", json={"name": "x", "public_key": generate()[1].public_key}).status_code
        assert 403 == api.get("/api/v1/models/churn/-/versions/1/bundle").status_code
        assert 403 == api.post("/api/v1/models/churn/-/versions/2/scans/accept", json={"reason": "mine"}).status_code
