"""Trust end to end: a malicious pickle flagged, gated and never run; signed promotions verified and
tampered; bundles exchanged between an embedded SQLite registry and a server on PostgreSQL."""

from __future__ import annotations

import json
import os
import pickle
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select, update
from typer.testing import CliRunner, Result

import covex
from covex.cli.main import app
from covex.domain.errors import InvalidState, SignatureInvalid, UnsafeModel
from covex.domain.signing import generate
from covex.service.factory import open_service
from covex.settings import Settings
from covex.store.schema import audit_log, model_versions
from covex.store.trust_schema import version_statements
from tests import support


class Detonator:
    """Unpickling this runs a shell command that leaves a marker file: the test fails if it ever appears."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (os.system, (f"touch {self.marker}",))


def _cli(args: list[str], env: dict[str, str]) -> Result:
    return CliRunner().invoke(app, args, env={"COLUMNS": "200", **env})


def _key(tmp: Path, name: str) -> Path:
    pem, _ = generate()
    path = tmp / f"{name}.pem"
    path.write_bytes(pem)
    return path


def _model_dir(tmp: Path, name: str, payload: object) -> Path:
    folder = tmp / name
    folder.mkdir()
    (folder / "model.pkl").write_bytes(pickle.dumps(payload))
    (folder / "README.md").write_text("a model\n")
    return folder


@pytest.fixture
def marker(tmp_path: Path) -> Iterator[Path]:
    path = tmp_path / "DETONATED"
    yield path
    assert not path.exists(), "a scanned pickle was loaded and ran its payload"


@pytest.fixture
def dev(tmp_path: Path) -> Iterator[covex.Client]:
    with covex.Client(tmp_path / "dev", signing_key_file=str(_key(tmp_path, "dev"))) as c:
        yield c


def test_a_malicious_pickle_is_flagged_blocked_and_never_runs(dev: covex.Client, tmp_path: Path, marker: Path) -> None:
    dev.create_model("churn")
    dev.create_version("churn", _model_dir(tmp_path, "good", {"weights": [0.5, 1.5]}))
    dev.create_version("churn", _model_dir(tmp_path, "bad", Detonator(marker)))
    good, bad = dev.trust.latest_scan("churn", 1), dev.trust.latest_scan("churn", 2)
    assert good is not None and bad is not None
    assert ("CLEAN", []) == (good.verdict, good.findings)
    assert ("FINDINGS", "high") == (bad.verdict, bad.max_severity)
    assert [("model.pkl", "high")] == [(f["file"], f["severity"]) for f in bad.findings]
    assert bad.findings[0]["global"] in ("posix.system", "os.system")
    assert {"model.pkl", "README.md"} == {f["path"] for f in bad.files}

    dev.approvals.apply_policy_file(
        "policies:\n  - stage: Test\n    scan: clean\n  - stage: Production\n    scan: {max_severity: low}\n"
        "    approvals: 1\n"
    )
    with pytest.raises(
        InvalidState, match=r"policy of stage 'Test': scan clean \(FINDINGS.*model.pkl: (posix|os)\.system"
    ):
        dev.transition_stage("churn", 2, "Test")
    with pytest.raises(InvalidState, match=r"scan max_severity: low.*model.pkl"):
        dev.approvals.create_request("churn", 2, stage="Production")
    request = dev.approvals.create_request("churn", 1, stage="Production")
    assert [("scan max_severity: low", True)] == [(g.gate, g.passed) for g in request.gates]
    assert "Test" == dev.transition_stage("churn", 1, "Test").stage

    with pytest.raises(UnsafeModel, match="override"):
        covex.load_model("models:/churn/2", client=dev)
    dev.trust.check_loadable("churn", 2, override="reviewed by security, ticket SEC-12")
    overrides = dev.audit.list_records(action="scan.override").items
    assert ["model:churn/2"] == [r.target for r in overrides]
    assert "SEC-12" in (overrides[0].after or "")

    # A manager's review accepts the findings: the version loads from then on, the gates still judge them.
    accepted = dev.trust.accept_scan("churn", 2, "the payload is ours: a test fixture")
    assert (dev.settings.user, "FINDINGS") == (accepted.accepted_by, accepted.verdict)
    assert dev.trust.check_loadable("churn", 2).accepted_by == dev.settings.user
    with pytest.raises(InvalidState, match="scan clean"):
        dev.transition_stage("churn", 2, "Test")
    assert ["model:churn/2"] == [r.target for r in dev.audit.list_records(action="scan.accept").items]
    dev.scan("models:/churn/2")  # a new scan must be accepted again
    with pytest.raises(UnsafeModel):
        dev.trust.check_loadable("churn", 2)


def test_scans_on_demand_and_over_the_cli(dev: covex.Client, tmp_path: Path, marker: Path) -> None:
    dev.create_model("churn")
    dev.create_version("churn", _model_dir(tmp_path, "bad", Detonator(marker)))
    again = dev.scan("models:/churn/1")
    assert ("FINDINGS", "demand") == (again.verdict, again.trigger)
    assert 2 == len(dev.trust.list_scans("churn", 1))
    env = {"COVEX_URI": str(tmp_path / "dev"), "COLUMNS": "200"}
    r = _cli(["scan", "models:/churn/1"], env)
    assert (1, True) == (r.exit_code, "high" in r.stdout and "model.pkl" in r.stdout)


def test_a_signed_promotion_verifies_and_every_tampered_field_is_caught(dev: covex.Client, tmp_path: Path) -> None:
    dev.create_model("churn")
    dev.create_version("churn", _model_dir(tmp_path, "good", {"w": 1}))
    dev.approvals.apply_policy_file("policies:\n  - stage: Test\n    scan: clean\n")
    assert not dev.trust.verify_version("churn", 1).verified  # nothing vouches for it yet
    dev.transition_stage("churn", 1, "Test")
    found = dev.trust.verify_version("churn", 1)
    assert (True, ["stage Test"]) == (found.verified, [s.target for s in found.statements])
    [statement] = dev.trust.list_statements("churn", 1)
    body = statement.content
    assert (body["model"], body["version"], body["target"]) == ("churn", 1, "Test")

    engine = open_service(dev.settings).engine
    for field, value in (
        ("model", "other"),
        ("version", 2),
        ("manifest_digest", "0" * 64),
        ("target", "Production"),
        ("signed_at", 1),
        ("moved_by", "mallory"),
    ):
        tampered = json.dumps({**body, field: value}, sort_keys=True, separators=(",", ":"))
        with engine.begin() as conn:
            conn.execute(update(version_statements).values(body=tampered))
        checked = dev.trust.verify_version("churn", 1)
        assert (False, False) == (checked.verified, checked.statements[0].valid), field
    with engine.begin() as conn:
        conn.execute(update(version_statements).values(body=statement.body))
    assert dev.trust.verify_version("churn", 1).verified

    [blob] = [f for f in dev.list_files("churn", 1) if f.path == "model.pkl"]
    stored = tmp_path / "dev" / "artifacts" / "blobs" / "sha256" / blob.digest[:2] / blob.digest
    stored.write_bytes(stored.read_bytes() + b"x")
    found = dev.trust.verify_version("churn", 1)
    assert (False, True) == (found.verified, "model.pkl" in " ".join(found.problems))


@pytest.mark.postgres
def test_bundles_between_an_embedded_registry_and_a_server_on_postgres(
    dev: covex.Client, tmp_path: Path, marker: Path
) -> None:
    dev.create_model("churn", description="churn model")
    dev.create_version("churn", _model_dir(tmp_path, "good", {"w": 1}), metrics={"auc": 0.91})
    dev.approvals.apply_policy_file("policies:\n  - stage: Test\n    scan: clean\n")
    dev.transition_stage("churn", 1, "Test")
    dev.set_alias("churn", "champion", 1)
    bundle = tmp_path / "churn-1.cvxb"
    env_dev = {"COVEX_URI": str(tmp_path / "dev"), "COVEX_SIGNING_KEY_FILE": dev.settings.signing_key_file or ""}
    r = _cli(["bundle", "export", "models:/churn@champion", "--out", str(bundle)], env_dev)
    assert 0 == r.exit_code, r.stderr
    dev_key = next(k for k in dev.trust.list_keys() if k.origin == "own")

    with support.fresh_postgres_database() as url:
        settings = Settings(uri=url, artifacts=str(tmp_path / "prod-artifacts"))
        service = open_service(settings)
        token = service.access.bootstrap("admin").secret
        service.close()
        env = {
            "COVEX_URI": url,
            "COVEX_ARTIFACTS": str(tmp_path / "prod-artifacts"),
            "COVEX_SIGNING_KEY_FILE": str(_key(tmp_path, "prod")),
        }
        with support.server_process(env) as server, covex.Client(server, token=token) as prod:
            with pytest.raises(SignatureInvalid, match="does not trust"):
                with bundle.open("rb") as f:
                    prod.trust.import_bundle(f)
            prod.trust.trust_key("development", dev_key.public_key)
            # A scan gate too: the server scans in the background, so the import has the version scanned first.
            prod.approvals.apply_policy_file("policies:\n  - stage: Production\n    approvals: 1\n    scan: clean\n")

            data = bundle.read_bytes()
            for at in (3, 30, len(data) // 3, len(data) - 1):
                tampered = tmp_path / "tampered.cvxb"
                tampered.write_bytes(data[:at] + bytes([data[at] ^ 1]) + data[at + 1 :])
                with pytest.raises(SignatureInvalid), tampered.open("rb") as f:
                    prod.trust.import_bundle(f)
            with pytest.raises(covex.NotFound):
                prod.get_model("churn")  # nothing written by a refused bundle

            with bundle.open("rb") as f:
                made = prod.trust.import_bundle(f, stage="Production")
            assert (1, "churn/1", False) == (made.version, made.source, made.already_imported)
            assert made.request is not None and "OPEN" == made.request.status  # the receiving policy holds
            assert "None" == prod.get_version("churn", 1).stage
            with bundle.open("rb") as f:
                assert prod.trust.import_bundle(f).already_imported
            assert 1 == len(prod.list_versions("churn").items)
            assert {"auc": 0.91} == prod.get_version("churn", 1).metrics
            assert prod.trust.verify_version("churn", 1).verified
            assert httpx.get(f"{server}/api/v1/keys", headers={"Authorization": f"Bearer {token}"}).is_success
            came = prod.trust.get_provenance("churn", 1)
            assert came is not None and ("churn/1", dev_key.key_id) == (came.source, came.key_id)
            assert {"version.create", "stage.transition", "alias.set"} <= {r["action"] for r in came.audit}
            assert came.scan is not None and "CLEAN" == came.scan["verdict"]
            assert prod.trust.get_provenance("churn", 1) == prod.trust.get_provenance("churn", 1)

            # And back: a bundle exported by the server imports into another embedded registry.
            prod.set_alias("churn", "candidate", 1)
            back = tmp_path / "back.cvxb"
            with back.open("wb") as f:
                prod.trust.export_bundle("churn", 1, f)
            prod_key = next(k for k in prod.trust.list_keys() if k.origin == "own")
        with covex.Client(tmp_path / "qa") as qa:
            qa.init()
            qa.trust.trust_key("production", prod_key.public_key)
            qa.trust.trust_key("development", dev_key.public_key)
            with back.open("rb") as f:
                landed = qa.trust.import_bundle(f, name="churn-qa")
            assert ("churn-qa", 1) == (landed.model, landed.version)
            checked = qa.trust.verify_version("churn-qa", 1)
            assert checked.verified
            assert all("signed for churn/1" in s.target for s in checked.statements)  # said, not hidden


def test_audit_records_travel_with_the_bundle(dev: covex.Client, tmp_path: Path) -> None:
    dev.create_model("churn")
    dev.create_version("churn", _model_dir(tmp_path, "good", {"w": 1}))
    dev.approvals.apply_policy_file("policies:\n  - stage: Test\n    scan: clean\n")
    dev.transition_stage("churn", 1, "Test")
    bundle = tmp_path / "b.cvxb"
    with bundle.open("wb") as f:
        dev.trust.export_bundle("churn", 1, f)
    with covex.Client(tmp_path / "other") as other:
        other.init()
        other.trust.trust_key("dev", next(k for k in dev.trust.list_keys() if k.origin == "own").public_key)
        with bundle.open("rb") as f:
            other.trust.import_bundle(f)
        engine = open_service(other.settings).engine
        with engine.connect() as conn:
            actions = conn.execute(select(audit_log.c.action).where(audit_log.c.target == "model:churn/1")).scalars()
            assert "bundle.import" in set(actions)
            assert 1 == conn.execute(select(model_versions.c.version)).scalar_one()


def test_concurrent_imports_of_one_bundle_make_one_version(dev: covex.Client, tmp_path: Path) -> None:
    import threading

    dev.create_model("churn")
    dev.create_version("churn", _model_dir(tmp_path, "good", {"w": 1}))
    bundle = tmp_path / "b.cvxb"
    with bundle.open("wb") as f:
        dev.trust.export_bundle("churn", 1, f)
    key = next(k for k in dev.trust.list_keys() if k.origin == "own").public_key
    with covex.Client(tmp_path / "other") as other:
        other.init()
        other.trust.trust_key("dev", key)
        results: list[object] = []

        def run() -> None:
            with covex.Client(tmp_path / "other") as c, bundle.open("rb") as f:
                try:
                    results.append(c.trust.import_bundle(f))
                except Exception as exc:
                    results.append(exc)

        threads = [threading.Thread(target=run) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
        made = [r for r in results if not isinstance(r, Exception)]
        assert (4, []) == (len(made), [r for r in results if isinstance(r, Exception)])
        assert [1] == [v.version for v in other.list_versions("churn").items]
        assert ["READY"] == [v.status for v in other.list_versions("churn").items]
        assert 3 == sum(1 for r in made if getattr(r, "already_imported", False))


def test_a_source_only_version_is_signed_with_its_source(dev: covex.Client) -> None:
    dev.create_model("ext")
    dev.create_version("ext", source="s3://bucket/models/ext")
    dev.approvals.apply_policy_file("policies:\n  - stage: Test\n    scan: clean\n")
    dev.transition_stage("ext", 1, "Test")
    [statement] = dev.trust.list_statements("ext", 1)
    assert "s3://bucket/models/ext" == statement.content["source"]
    assert dev.trust.verify_version("ext", 1).verified
    engine = open_service(dev.settings).engine
    with engine.begin() as conn:
        conn.execute(update(model_versions).values(source="s3://elsewhere/model"))
    assert not dev.trust.verify_version("ext", 1).verified


def test_an_approved_request_is_signed_with_its_approvals_and_carried_across(dev: covex.Client, tmp_path: Path) -> None:
    dev.create_model("churn")
    dev.create_version("churn", _model_dir(tmp_path, "good", {"w": 1}))
    dev.approvals.apply_policy_file("policies:\n  - stage: Production\n    approvals: 1\n    scan: clean\n")
    request = dev.approvals.create_request("churn", 1, stage="Production", comment="ship it")
    dev.access.create_user("carol")
    dev.access.grant("user:carol", "reader", model="churn")
    dev.access.grant("user:carol", "approver", model="churn", scope="stage:Production")
    token = dev.access.create_token("carol", name="review").secret
    with covex.Client(tmp_path / "dev", token=token, signing_key_file=dev.settings.signing_key_file) as carol:
        carol.approvals.approve(request.id, "looks right")
    assert "Production" == dev.get_version("churn", 1).stage
    [statement] = dev.trust.list_statements("churn", 1)
    signed = statement.content["request"]
    assert (request.id, dev.settings.user, 1) == (signed["id"], signed["requester"], signed["approvals_needed"])
    assert [("carol", "approve")] == [(r["reviewer"], r["decision"]) for r in signed["reviews"]]
    assert [("scan clean", True)] == [(g["gate"], g["passed"]) for g in signed["gates"]]
    assert dev.trust.verify_version("churn", 1).verified

    bundle = tmp_path / "b.cvxb"
    with bundle.open("wb") as f:
        dev.trust.export_bundle("churn", 1, f)
    with covex.Client(tmp_path / "prod") as prod:
        prod.init()
        prod.trust.trust_key("dev", next(k for k in dev.trust.list_keys() if k.origin == "own").public_key)
        with bundle.open("rb") as f:
            assert 1 == prod.trust.import_bundle(f).statements
