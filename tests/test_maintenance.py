"""Keeping the registry consistent: the sweeper of abandoned uploads, what gc keeps and why, fsck.

Real databases (SQLite, PostgreSQL), a real server on a loopback port, real files. Damage to
the store is done to its files directly, as a failing disk or a careless hand would.
"""

from __future__ import annotations

import json
import os
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select, update

import covex
from covex.domain.access import Principal
from covex.domain.entities import FileEntry, NewVersion
from covex.service import RegistryService, open_service
from covex.service.maintenance import MaintenanceService
from covex.store.schema import model_versions, models
from tests import support
from tests.conftest import Registry
from tests.test_s3 import monkeypatch_module, s3_client, s3_endpoint, s3_settings  # noqa: F401 - fixtures
from tests.test_upload_faults import sha256

Tree = Callable[..., Path]  # the ``tree`` fixture
DB_PARAMS = ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)]
DAY_MS = 24 * 3600 * 1000


def unique(prefix: str) -> str:
    # The audit trail is shared by every test of the session: each test looks only at its own targets.
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


@pytest.fixture(params=DB_PARAMS)
def service(request: pytest.FixtureRequest, registries: Callable[[str, str], Registry]) -> RegistryService:
    """The in-process service (acting as the admin "tester") on each database, on an empty registry."""
    reg = registries("embedded", request.param)
    reg.reset()
    return reg.service


def pending(service: RegistryService, name: str, *, age_ms: int = 0) -> int:
    """A PENDING version of ``name`` whose file is never uploaded, created ``age_ms`` ago; its number."""
    data = os.urandom(100)
    v = service.create_version(
        name, NewVersion(files=[FileEntry(path="model.bin", digest=sha256(data), size=len(data))])
    )
    backdate(service, name, v.version, age_ms)
    return v.version


def backdate(service: RegistryService, name: str, version: int, age_ms: int) -> None:
    with service.engine.begin() as conn:
        model_id = conn.execute(select(models.c.id).where(models.c.name == name)).scalar_one()
        conn.execute(
            update(model_versions)
            .where(model_versions.c.model_id == model_id, model_versions.c.version == version)
            .values(creation_timestamp=model_versions.c.creation_timestamp - age_ms)
        )


def fail_records(service: RegistryService, name: str) -> list[tuple[str, str]]:
    page = service.audit.list_records(target=f"model:{name}", action="version.fail", max_results=1000)
    return sorted((r.target, r.actor) for r in page.items)


def status(service: RegistryService, name: str, version: int) -> str:
    return service.get_version(covex.parse_model_uri(f"models:/{name}/{version}")).status


# -- the sweeper ----------------------------------------------------------------------------------


def test_sweep_fails_only_versions_pending_longer_than_the_timeout(service: RegistryService) -> None:
    name = unique("churn")
    service.create_model(name)
    old = pending(service, name, age_ms=2 * DAY_MS)
    young = pending(service, name, age_ms=10 * 60 * 1000)
    ready = service.create_version(name, NewVersion(source="s3://bucket/model")).version
    backdate(service, name, ready, 2 * DAY_MS)

    report = service.maintenance.sweep_pending()

    assert ([f"models:/{name}/{old}"], 86400.0) == (report.failed, report.older_than)
    failed = service.get_version(covex.parse_model_uri(f"models:/{name}/{old}"))
    assert "FAILED" == failed.status
    assert "still PENDING 86400 s after the version was created (COVEX_PENDING_TIMEOUT)" in failed.status_message
    assert ("PENDING", "READY") == (status(service, name, young), status(service, name, ready))
    assert [(f"model:{name}/{old}", "tester")] == fail_records(service, name)
    with pytest.raises(covex.InvalidState, match="has FAILED \\(upload abandoned"):
        service.finalize_version(name, old)

    assert [] == service.maintenance.sweep_pending().failed  # nothing left to do: nothing written
    assert 1 == len(fail_records(service, name))
    assert [f"models:/{name}/{young}"] == service.sweep_pending(older_than=300).failed
    with pytest.raises(covex.InvalidInput, match="'older_than' must be a non-negative number"):
        service.sweep_pending(older_than=float("nan"))


def test_sweep_is_for_admins_and_a_refusal_is_audited(service: RegistryService) -> None:
    bob = service.as_principal(Principal(name=unique("bob")))
    with pytest.raises(covex.PermissionDenied, match="needs admin rights"):
        bob.maintenance.sweep_pending()
    [refused] = service.audit.list_records(actor=bob.actor, outcome="refused").items
    assert ("versions.sweep", "versions") == (refused.action, refused.target)


def test_a_version_finalized_while_the_sweep_runs_stays_ready(
    service: RegistryService, monkeypatch: pytest.MonkeyPatch
) -> None:
    name = unique("churn")
    service.create_model(name)
    data = os.urandom(100)
    v = service.create_version(
        name, NewVersion(files=[FileEntry(path="model.bin", digest=sha256(data), size=len(data))])
    )
    backdate(service, name, v.version, 2 * DAY_MS)
    real = MaintenanceService._fail_abandoned

    def finalized_first(self: MaintenanceService, row: Any, cutoff: int, message: str) -> str | None:
        # The interleaving to survive: the sweep found the version PENDING; the upload completes now.
        service.put_blob(sha256(data), len(data), [data])
        service.finalize_version(name, v.version)
        return real(self, row, cutoff, message)

    monkeypatch.setattr(MaintenanceService, "_fail_abandoned", finalized_first)
    assert [] == service.maintenance.sweep_pending().failed
    assert "READY" == status(service, name, v.version)
    assert [] == fail_records(service, name)


@pytest.mark.parametrize("db", DB_PARAMS)
def test_finalize_and_sweep_racing_never_disagree(registries: Callable[[str, str], Registry], db: str) -> None:
    """Each version ends READY with its finalize succeeding, or FAILED with one audit record and finalize refused."""
    reg = registries("embedded", db)
    reg.reset()
    service = reg.service
    name = unique("race")
    service.create_model(name)
    blobs = [os.urandom(100 + i) for i in range(20)]
    for i, data in enumerate(blobs):
        service.put_blob(sha256(data), len(data), [data])
        files = [FileEntry(path="model.bin", digest=sha256(data), size=len(data))]
        backdate(service, name, service.create_version(name, NewVersion(files=files)).version, 2 * DAY_MS + i)
    finalized: dict[int, bool] = {}

    def finalize_all() -> None:
        for number in range(1, len(blobs) + 1):
            try:
                service.as_principal(Principal.local_admin("uploader")).finalize_version(name, number)
                finalized[number] = True
            except covex.InvalidState:
                finalized[number] = False

    swept = run_together(
        [finalize_all, lambda: service.as_principal(Principal.local_admin("sweeper")).maintenance.sweep_pending()]
    )
    failed_uris = set(swept[1].failed)
    for number in range(1, len(blobs) + 1):
        final = status(service, name, number)
        assert (final == "READY") == finalized[number] == (f"models:/{name}/{number}" not in failed_uris)
    assert len(failed_uris) == len(fail_records(service, name))


@pytest.mark.parametrize("db", DB_PARAMS)
def test_several_sweepers_at_once_fail_each_version_once(registries: Callable[[str, str], Registry], db: str) -> None:
    reg = registries("embedded", db)
    reg.reset()
    service = reg.service
    name = unique("abandoned")
    service.create_model(name)
    numbers = [pending(service, name, age_ms=2 * DAY_MS) for _ in range(30)]

    sweepers = [service.as_principal(Principal.local_admin(f"server-{i}")).maintenance for i in range(4)]
    reports = run_together([s.sweep_pending for s in sweepers])

    failed = [uri for r in reports for uri in r.failed]
    assert sorted(f"models:/{name}/{n}" for n in numbers) == sorted(failed)  # each once, by one of them
    records = fail_records(service, name)
    assert sorted(f"model:{name}/{n}" for n in numbers) == sorted(target for target, _ in records)
    assert {actor for _, actor in records} <= {f"server-{i}" for i in range(4)}


def run_together(calls: list[Callable[[], Any]]) -> list[Any]:
    """Run ``calls`` in threads released at once; their results in order (re-raising the first error)."""
    start = threading.Barrier(len(calls))
    results: list[Any] = [None] * len(calls)
    errors: list[BaseException] = []

    def run(i: int) -> None:
        start.wait()
        try:
            results[i] = calls[i]()
        except BaseException as exc:  # re-raised below, in the test's thread
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(calls))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    if errors:
        raise errors[0]
    return results


def test_the_server_sweeps_on_its_own(tmp_path: Path) -> None:
    local = open_service(covex.Settings(uri=str(tmp_path)))
    try:
        local.create_model("churn")
        assert 1 == pending(local, "churn")  # an upload that never comes
    finally:
        local.close()
    env = {
        "COVEX_URI": str(tmp_path),
        "COVEX_PENDING_TIMEOUT": "1",
        "COVEX_SWEEP_INTERVAL": "0.2",
        "COVEX_DISPATCH_INTERVAL": "0",
    }
    with support.server_process(env):
        deadline = time.monotonic() + 60
        while (current := _version(tmp_path)).status == "PENDING":
            assert time.monotonic() < deadline, "the server did not sweep within 60 s"
            time.sleep(0.1)
    assert "FAILED" == current.status and "COVEX_PENDING_TIMEOUT" in current.status_message
    with covex.Client(str(tmp_path)) as reader:
        [record] = reader.audit.list_records(action="version.fail").items
    assert ("model:churn/1", covex.Settings().user) == (record.target, record.actor)  # the server's own principal


def _version(root: Path) -> covex.ModelVersion:
    with covex.Client(str(root)) as local:
        return local.get_version("churn", 1)


# -- gc says what it keeps and why ----------------------------------------------------------------


def test_gc_reports_the_partial_uploads_it_keeps_and_why(client: covex.Client, registry: Registry) -> None:
    blobs = registry.service.blobs
    partial = Path(blobs.root) / "tmp" / f"upload-{uuid.uuid4().hex}"
    partial.parent.mkdir(parents=True, exist_ok=True)
    with partial.open("wb") as f:
        f.truncate(153_000_000)  # sparse: 153 MB as far as gc can tell, nothing on disk
    try:
        report = client.gc()
        assert (1, 153_000_000, 0, 3600.0) == (
            report.partial_uploads,
            report.partial_upload_bytes,
            report.stale_uploads,
            report.grace_seconds,
        )
        text = registry.cli("gc").stdout
        assert "1 partial upload (153 MB) kept: younger than the grace period of 3600 s" in text
        assert "0 abandoned uploads (0 B) can be deleted" in text
        assert "dry run: nothing was changed" in text
        now = client.gc(grace_seconds=0)
        assert (0, 1, 153_000_000) == (now.partial_uploads, now.stale_uploads, now.stale_upload_bytes)
        assert partial.exists()  # a dry run
    finally:
        partial.unlink(missing_ok=True)


def test_gc_counts_referenced_blobs_that_are_missing_and_points_at_fsck(
    client: covex.Client, registry: Registry, tree: Tree
) -> None:
    name = unique("churn")
    client.create_model(name)
    kept, lost = os.urandom(1000), os.urandom(2000)
    client.create_version(name, tree({"kept.bin": kept, "lost.bin": lost}))
    os.remove(registry.service.blobs.blob_path(sha256(lost)))
    # A PENDING version's file not uploaded yet is on its way, not missing.
    client.create_model(f"{name}-pending")
    pending(registry.service, f"{name}-pending")

    report = client.gc()

    assert (3, 1, 1) == (report.referenced, report.referenced_present, report.referenced_missing)
    text = registry.cli("gc").stdout
    assert "1 referenced blob kept (present; covex fsck checks their content)" in text
    assert "warning: 1 blob of READY versions missing from the artifact store: covex fsck names" in text


def test_gc_apply_fails_versions_left_pending_past_the_timeout(client: covex.Client, registry: Registry) -> None:
    name = unique("churn")
    client.create_model(name)
    number = pending(registry.service, name, age_ms=2 * DAY_MS)

    dry = client.gc()
    assert (1, 86400.0, "PENDING") == (dry.pending_expired, dry.pending_timeout, client.get_version(name, 1).status)
    assert "1 version PENDING for over 86400 s can be marked FAILED" in registry.cli("gc").stdout

    applied = client.gc(apply=True)
    assert (1, "FAILED") == (applied.pending_expired, client.get_version(name, number).status)
    assert 0 == client.gc().pending_expired
    [audit] = client.audit.list_records(action="gc", max_results=1).items
    assert 1 == json.loads(audit.after or "{}")["pending_failed"]


# -- fsck -----------------------------------------------------------------------------------------


@pytest.fixture
def damaged(client: covex.Client, registry: Registry, tree: Tree) -> Iterator[dict[str, Any]]:
    """Two models: a shared blob corrupted (same size), another blob gone."""
    a, b = unique("a"), unique("b")
    shared, only_a, only_b = os.urandom(300_000), os.urandom(1000), os.urandom(2000)
    for name in (a, b):
        client.create_model(name)
    client.create_version(a, tree({"weights/shared.bin": shared, "a.bin": only_a}))
    client.create_version(a, tree({"weights/shared.bin": shared}))
    client.create_version(b, tree({"b.bin": only_b}))
    blobs = registry.service.blobs
    corrupted = Path(blobs.blob_path(sha256(shared)))
    corrupted.write_bytes(bytes([shared[0] ^ 1]) + shared[1:])
    os.remove(blobs.blob_path(sha256(only_b)))
    yield {"a": a, "b": b, "shared": shared, "only_a": only_a, "only_b": only_b}
    corrupted.unlink(missing_ok=True)


def test_fsck_names_missing_and_corrupted_files_with_the_versions_they_break(
    client: covex.Client, damaged: dict[str, Any]
) -> None:
    a, b, shared, only_b = damaged["a"], damaged["b"], damaged["shared"], damaged["only_b"]

    report = client.fsck()

    assert (False, None, 2, 3, 4, 3) == (
        report.ok,
        report.next,
        report.models,
        report.versions,
        report.files,
        report.blobs,
    )
    assert (2, 2) == (report.models_done, report.models_total)
    [missing] = report.missing
    assert (sha256(only_b), len(only_b), "not in the artifact store") == (missing.digest, missing.size, missing.reason)
    assert [(f"models:/{b}/1", "b.bin")] == [(f.uri, f.path) for f in missing.files]
    [corrupted] = report.corrupted
    assert (sha256(shared), True) == (corrupted.digest, corrupted.reason.startswith("content hashes to "))
    assert [(f"models:/{a}/1", "weights/shared.bin"), (f"models:/{a}/2", "weights/shared.bin")] == [
        (f.uri, f.path) for f in corrupted.files
    ]
    assert report.bytes == len(shared) + len(damaged["only_a"])  # every byte read, none of the missing one


def test_fsck_goes_in_batches_by_model_name_and_resumes(client: covex.Client, tree: Tree) -> None:
    prefix = unique("m")
    names = [f"{prefix}-{c}" for c in "ecadb"]  # created out of order
    for i, name in enumerate(names):
        client.create_model(name)
        client.create_version(name, tree({"model.bin": os.urandom(100 + i)}))
    first_seq = client.audit.list_records(max_results=1).items[0].seq

    batches = []
    after = None
    while True:
        report = client.fsck(after=after, limit=2)
        batches.append(report)
        if report.next is None:
            break
        after = report.next

    ordered = sorted(names)
    assert [ordered[1], ordered[3], None] == [r.next for r in batches]
    assert [(2, 2), (4, 2), (5, 1)] == [(r.models_done, r.models) for r in batches]
    assert {5} == {r.models_total for r in batches} and all(r.ok for r in batches)
    resumed = client.fsck(after=ordered[3], limit=2)
    assert (None, 1, 1) == (resumed.next, resumed.models, resumed.versions)
    # One audit record per batch (each is one call).
    records = [r for r in client.audit.list_records(action="fsck").items if r.seq > first_seq]
    assert 4 == len(records) and {"tester"} == {r.actor for r in records}
    assert [ordered[3], ordered[3], ordered[1], None] == [json.loads(r.after or "{}")["after"] for r in records]


def test_fsck_is_for_admins_and_checks_its_arguments(client: covex.Client, registry: Registry) -> None:
    bob = unique("bob")
    with registry.user(bob) as user, pytest.raises(covex.PermissionDenied, match="needs admin rights"):
        user.fsck()
    [refused] = client.audit.list_records(actor=bob, outcome="refused").items
    assert ("fsck", "blobs") == (refused.action, refused.target)
    with pytest.raises(covex.InvalidInput, match="limit"):
        client.fsck(limit=0)
    with pytest.raises(covex.InvalidInput, match="'after'"):
        client.fsck(after="../etc")


def test_fsck_on_s3(s3_client: covex.Client, s3_settings: covex.Settings, tree: Tree) -> None:  # noqa: F811
    import boto3  # type: ignore[import-untyped]

    big = os.urandom(3 * 1024 * 1024)  # several chunks
    s3_client.create_model("churn")
    s3_client.create_version("churn", tree({"model.bin": big, "MLmodel": "flavors: {}"}))
    assert s3_client.fsck().ok
    bucket, prefix = s3_settings.artifacts_url.removeprefix("s3://").split("/", 1)
    digest = sha256(big)
    s3: Any = boto3.client("s3", endpoint_url=s3_settings.artifacts_options["endpoint_url"])
    s3.put_object(Bucket=bucket, Key=f"{prefix}/blobs/sha256/{digest[:2]}/{digest}", Body=big[:-1] + b"\0")
    [corrupted] = s3_client.fsck().corrupted
    assert (digest, ["models:/churn/1"]) == (corrupted.digest, [f.uri for f in corrupted.files])


# -- covex fsck -----------------------------------------------------------------------------------


def test_covex_fsck_lists_what_is_broken_and_exits_4(registry: Registry, damaged: dict[str, Any]) -> None:
    a, b = damaged["a"], damaged["b"]
    r = registry.cli("fsck")
    assert 4 == r.exit_code
    assert f"MISSING sha256:{sha256(damaged['only_b'])} (2.0 KB): not in the artifact store" in r.stdout
    assert f"breaks models:/{b}/1 b.bin" in r.stdout
    assert f"CORRUPTED sha256:{sha256(damaged['shared'])} (300 KB): content hashes to" in r.stdout
    assert f"breaks models:/{a}/2 weights/shared.bin" in r.stdout
    assert "fsck found 1 missing blob and 1 corrupted blob, breaking 3 versions" in r.stderr
    as_json = registry.cli("fsck", "--json", "--batch", "1")
    assert 4 == as_json.exit_code
    report = as_json.json()
    assert (2, 1, 1, None) == (report["models"], len(report["missing"]), len(report["corrupted"]), report["next"])


def test_covex_fsck_passes_on_an_intact_store_and_resumes_after_a_model(registry: Registry, tree: Tree) -> None:
    with registry.client() as c:
        for name in ("alpha", "beta"):
            c.create_model(name)
            c.create_version(name, tree({"model.bin": os.urandom(100)}))
    r = registry.cli("fsck")
    assert (0, True) == (r.exit_code, "every file is intact" in r.stdout)
    assert "checked 2 models, 2 READY versions, 2 files" in r.stdout
    assert "checked 1 model, 1 READY version, 1 file" in registry.cli("fsck", "--after", "alpha").stdout


def test_covex_fsck_interrupted_says_where_to_resume(
    registry: Registry, tree: Tree, monkeypatch: pytest.MonkeyPatch
) -> None:
    with registry.client() as c:
        for name in ("alpha", "beta", "gamma"):
            c.create_model(name)
            c.create_version(name, tree({"model.bin": os.urandom(100)}))
    real = covex.Client.fsck
    calls = []

    def interrupted_second(self: covex.Client, **kwargs: Any) -> Any:
        calls.append(kwargs)
        if len(calls) == 2:
            raise KeyboardInterrupt  # Ctrl-C while the second batch runs
        return real(self, **kwargs)

    monkeypatch.setattr(covex.Client, "fsck", interrupted_second)
    r = registry.cli("fsck", "--batch", "1")
    assert 130 == r.exit_code
    assert "fsck stopped (1 of 3 models checked); resume with: covex fsck --after alpha" in r.stderr
    monkeypatch.undo()
    resumed = registry.cli("fsck", "--after", "alpha")
    assert (0, "checked 2 models") == (resumed.exit_code, resumed.stdout.split(",")[0])


# -- gc racing a version that comes to hold a blob it is about to delete ---------------------------


def test_gc_never_deletes_a_blob_a_version_came_to_hold_while_it_ran(
    service: RegistryService, registry_settings_for: Callable[[RegistryService], covex.Client], tmp_path: Path
) -> None:
    """gc read the references, then a version was created on one of its candidates: the blob stays.

    The version is created from another thread on the first delete, while gc is still deleting:
    before, it became READY on a blob gc then deleted.
    """
    name = unique("precious")
    service.create_model(name)
    hour_ago = time.time() - 2 * 3600
    orphans = {}
    for _ in range(6):
        data = os.urandom(64)
        orphans[service.blobs.put([data])] = data
        os.utime(service.blobs.local_path(sha256(data)) or "", (hour_ago, hour_ago))
    last = max(orphans)  # gc deletes in digest order: this one goes last
    folder = tmp_path / "model"
    folder.mkdir()
    (folder / "weights.bin").write_bytes(orphans[last])
    delete = service.blobs.delete
    created: list[covex.ModelVersion] = []

    def create() -> None:
        with registry_settings_for(service) as c:
            created.append(c.create_version(name, folder))

    racer = threading.Thread(target=create)

    def delete_and_race(digest: str) -> None:
        if not racer.is_alive() and not created:
            racer.start()
            racer.join(2)  # done at once before the fix; after it, the version waits for gc's batch
        delete(digest)

    service.blobs.delete = delete_and_race  # type: ignore[method-assign]
    try:
        service.gc(apply=True)
    finally:
        service.blobs.delete = delete  # type: ignore[method-assign]
    racer.join(60)
    [version] = created
    assert "READY" == version.status
    assert [] == service.fsck().missing
    with registry_settings_for(service) as c:
        out = c.download(version.uri, tmp_path / "out")
    assert orphans[last] == (out / "weights.bin").read_bytes()


@pytest.fixture
def registry_settings_for(registries: Callable[[str, str], Registry]) -> Callable[[RegistryService], covex.Client]:
    """A client of its own (own connections) on the registry ``service`` serves."""

    def make(service: RegistryService) -> covex.Client:
        db = "postgresql" if service.engine.dialect.name == "postgresql" else "sqlite"
        return registries("embedded", db).client()

    return make
