"""A version of no files (a source only) is scanned as it is created: nothing is left for a scanner to do."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from covex import Client
from covex.domain.entities import NewVersion
from covex.service import RegistryService, open_service
from covex.settings import Settings


@pytest.fixture
def server_like(tmp_path: Path) -> Iterator[RegistryService]:
    """A service that leaves scans to a background runner, as ``covex server`` does."""
    svc = open_service(Settings(uri=str(tmp_path / "data"), user="tester"))
    svc.scan_inline = False
    yield svc
    svc.close()


def test_a_source_only_version_is_clean_at_once_with_the_records_a_scan_leaves(server_like: RegistryService) -> None:
    svc = server_like
    svc.create_model("m")
    hook = svc.webhooks.create_webhook("http://127.0.0.1:9/hook", ["version.scanned"])
    created = svc.create_version("m", NewVersion(source="s3://bucket/model"))
    scans = svc.trust.list_scans("m", created.version)
    assert [(s.verdict, s.max_severity, s.files, s.findings) for s in scans] == [("CLEAN", None, [], [])]
    assert scans[0].finished_at is not None
    assert svc.trust.run_pending_scans() == 0  # nothing was queued for the runner
    runs = svc.audit.list_records(action="scan.run", target=f"model:m/{created.version}").items
    expected = {"scan": scans[0].id, "verdict": "CLEAN", "max_severity": None, "findings": 0}
    assert [json.loads(r.after) for r in runs] == [expected]
    deliveries = svc.webhooks.list_deliveries(hook.id).items
    assert [d.event for d in deliveries] == ["version.scanned"]
    assert svc.audit.verify().ok


def test_a_version_with_files_is_still_queued_for_the_runner(server_like: RegistryService, tmp_path: Path) -> None:
    svc = server_like
    svc.create_model("m")
    (tmp_path / "model.json").write_text("{}")
    client = Client(str(tmp_path / "data"))
    client._backend.service(create=False).scan_inline = False
    version = client.create_version("m", tmp_path / "model.json")
    assert [s.verdict for s in svc.trust.list_scans("m", version.version)] == ["PENDING"]
    assert svc.trust.run_pending_scans() == 1
    assert [s.verdict for s in svc.trust.list_scans("m", version.version)] == ["CLEAN"]
