"""Promotion bundles: a version moved between registries with the proof of how it was approved.

``export_bundle`` writes one file (``covex.artifacts.bundle_file``) holding the version's files,
metadata, documents (lineage, card ...), evaluations, signed statements, latest scan and the audit
records about it, sealed with this registry's key. ``import_bundle`` checks, before writing
anything, that the seal and every statement verify against keys this registry trusts, that each
statement is about the bundle's exact files, that each approved move had the approvals its policy
asked for and passed its gates, and that every blob matches its digest. Only then is the version
created (keeping its number when that is free), with the statements and history attached. A
requested stage is asked of this registry's own policy like any move: a bundle never bypasses it.
Importing the same bundle into the same model again answers the version it made.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from typing import IO, Any

from sqlalchemy import Connection, insert, select

from covex.artifacts import manifest_digest
from covex.artifacts.bundle_file import BundleReader, head_bytes
from covex.domain import evaluations as ev
from covex.domain import signing as dom
from covex.domain.entities import FileEntry, ModelVersion, NewVersion
from covex.domain.errors import AlreadyExists, CovexError, InvalidState, SignatureInvalid
from covex.domain.names import validate_id, validate_model_name
from covex.domain.signing import BundleImport, Provenance
from covex.domain.uris import ModelRef
from covex.service.base import ServiceBase, now_ms
from covex.service.models import ModelService
from covex.service.monitoring import json_text
from covex.service.requests import RequestService
from covex.service.scans import ScanService
from covex.service.signing import SigningService
from covex.service.versions import Checked, VersionService
from covex.store import queries
from covex.store.schema import audit_log, evaluations, models, version_documents
from covex.store.trust_schema import bundle_imports, version_statements

FORMAT = "covex-bundle/1"
MAX_AUDIT = 10_000


class Export:
    """A bundle ready to be written: ``chunks`` yields its bytes."""

    def __init__(self, service: ServiceBase, head: bytes, blobs: list[tuple[str, int]]) -> None:
        self.service, self.head, self.blobs = service, head, blobs
        self.size = len(head) + sum(size for _, size in blobs)

    def chunks(self) -> Iterator[bytes]:
        yield self.head
        for digest, _ in self.blobs:
            yield from self.service.blobs.iter_chunks(digest)


class BundleService(ServiceBase):
    """Export versions as signed bundles and import bundles from registries this one trusts."""

    def export_bundle(self, name: str, version: int, out: IO[bytes]) -> int:
        """Write a bundle of a version to ``out`` (the manager role on its model); the bytes written."""
        export = self.prepare_export(name, version)
        for chunk in export.chunks():
            out.write(chunk)
        return export.size

    def prepare_export(self, name: str, version: int) -> Export:
        """A bundle of a version, ready to stream; the manager role on its model (the file carries its history)."""
        validate_model_name(name)
        validate_id(version, "version")
        ref = ModelRef(name, "version", str(version))
        signing = self._sibling(SigningService)
        if self.signer is None:
            raise InvalidState(
                "this registry has no signing key, so it cannot seal a bundle: set COVEX_SIGNING_KEY_FILE "
                "(covex keys generate makes one)"
            )
        with self._tx(write=False) as conn:
            row = self._sibling(VersionService)._resolve_row(conn, ref)
            model = conn.execute(select(models).where(models.c.id == row.model_id)).one()
            self.require(conn, model, "manager", "bundle.export")
            if row.status != "READY":
                raise InvalidState(f"version {row.version} of {model.name!r} is {row.status}; only READY versions")
            mv = self._version(conn, row)
            files = queries.load_files(conn, row.id)
            docs = conn.execute(
                select(version_documents.c.kind, version_documents.c.body).where(
                    version_documents.c.version_id == row.id
                )
            ).all()
            evals = conn.execute(
                select(evaluations).where(evaluations.c.version_id == row.id).order_by(evaluations.c.id)
            ).all()
            statements = signing.statements_of(conn, row.id)
            where = f"model:{model.name}/{row.version}"
            about = (audit_log.c.target == where) | audit_log.c.target.startswith(
                f"model:{model.name}@", autoescape=True
            )
            audit = [
                r
                for r in conn.execute(select(audit_log).where(about).order_by(audit_log.c.seq).limit(MAX_AUDIT))
                if r.target == where or _names_version(r, row.version)
            ]
            scan = self._sibling(ScanService).latest_scan_of(conn, row.id)
        blobs = list({f.digest: f.size for f in files}.items())
        header = {
            "format": FORMAT,
            "exported_at": now_ms(),
            "exported_by": self.actor,
            "key_id": self.signer.key_id,
            "model": {"name": model.name, "description": model.description},
            "version": {
                "number": mv.version,
                "description": mv.description,
                "tags": mv.tags,
                "metrics": mv.metrics,
                "params": mv.params,
                "source": mv.source,
                "run_id": mv.run_id,
                "run_link": mv.run_link,
                "stage": mv.stage,
                "aliases": mv.aliases,
                "created_by": mv.created_by,
                "creation_timestamp": mv.creation_timestamp,
                "manifest_digest": mv.manifest_digest,
                "files": [{"path": f.path, "digest": f.digest, "size": f.size, "mode": f.mode} for f in files],
            },
            "documents": {kind: json.loads(body) for kind, body in docs},
            "evaluations": [
                {c: (json.loads(e._mapping[c]) if c in ("data_tags", "body") else e._mapping[c]) for c in _EVAL}
                for e in evals
            ],
            "statements": [{"key_id": s.key_id, "body": s.body, "signature": s.signature} for s in statements],
            "scan": None if scan is None else scan.model_dump(),
            "audit": [{k: v for k, v in r._mapping.items()} for r in audit],
            "blobs": [{"digest": d, "size": n} for d, n in blobs],
        }
        text = dom.canonical(header)
        seal = {"key_id": self.signer.key_id, "signature": self.signer.sign(text)}
        with self._tx(write=True) as conn:
            signing._own_key(conn)  # the seal verifies here after the key is rotated
            summary = {"key_id": self.signer.key_id, "bundle_digest": _digest(text), "statements": len(statements)}
            self._audit(conn, "bundle.export", where, None, summary)
        return Export(self, head_bytes(text, seal), blobs)

    def import_bundle(self, source: IO[bytes], *, name: str | None = None, stage: str | None = None) -> BundleImport:
        """Import the bundle read from ``source`` (seekable: it is read twice, to check and then to store);
        the manager role on the target model (it is created when missing)."""
        if name is not None:
            validate_model_name(name)
        target_stage = None if stage is None else self.stage(stage)
        start = source.tell()
        reader = BundleReader(source)
        text, seal = reader.head()
        with self._tx(write=False) as conn:
            keys = self._sibling(SigningService).known_keys(conn)
        header = _check_header(text, seal, keys)
        target = name or header["model"]["name"]
        digest = _digest(text)
        version, evals = self._checked_contents(header)  # a bundle whose contents would be refused writes nothing
        done = self._imported(digest, target)
        if done is None:
            self._may_import(target)
            blobs = [(b["digest"], b["size"]) for b in header["blobs"]]
            for d, size in blobs:  # the first pass only checks: nothing is written unless every byte holds
                for _ in reader.blob(d, size):
                    pass
            reader.finish()
            source.seek(start)
            reader = BundleReader(source)
            reader.head()
            for d, size in blobs:  # the store checks each digest again as it writes
                self.blobs.put(reader.blob(d, size, check=False), expected_digest=d, expected_size=size)
            done = self._create(header, target, version, evals, digest, seal["key_id"])
        if target_stage is None:
            return done
        # The stage is asked of this registry's own policy, which may ask for a scan: have it now.
        self._sibling(ScanService).after_ready(target, done.version, now=True)
        try:
            moved = self._sibling(RequestService).move_or_request(
                target, done.version, target_stage, comment=f"imported from bundle {digest[:12]}"
            )
        except CovexError as exc:
            return done.model_copy(update={"stage_refused": exc.message})
        if isinstance(moved, ModelVersion):
            return done.model_copy(update={"stage": moved.stage})
        return done.model_copy(update={"request": moved})

    def _checked_contents(self, header: dict[str, Any]) -> tuple[Checked, list[dict[str, Any]]]:
        """The version and evaluations the bundle describes, checked as if they were made here."""
        v = header["version"]
        try:
            version = self._sibling(VersionService).check_version(
                NewVersion(
                    files=[FileEntry(**f) for f in v["files"]],
                    description=v.get("description", ""),
                    tags=v.get("tags") or {},
                    metrics=v.get("metrics") or {},
                    params=v.get("params") or {},
                    source=v.get("source", ""),
                    run_id=v.get("run_id", ""),
                    run_link=v.get("run_link", ""),
                    documents=header.get("documents") or None,
                    number=v["number"],
                )
            )
            evals = [
                {
                    "kind": ev.check_kind(e["kind"]),
                    "key": ev.check_key(e["key"]),
                    "data_digest": ev.check_digest(e["data_digest"]),
                    "source": ev.check_source(e["source"]),
                    "data_tags": json.dumps(ev.check_data_tags(e["data_tags"])),
                    "rows": ev.check_rows(e["rows"]),
                    "created_at": int(e["created_at"]),
                    "created_by": str(e["created_by"])[:256],
                    "body": json_text(ev.check_body(e["body"]), "body", ev.MAX_BODY),
                }
                for e in header.get("evaluations") or []
            ]
        except CovexError as exc:
            raise SignatureInvalid(f"the bundle's contents would be refused here: {exc.message}") from None
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise SignatureInvalid(f"the bundle's header is not one Covex writes ({exc!r})") from None
        return version, evals

    def _may_import(self, target: str) -> None:
        """Refuse before any byte is stored: importing into a model takes its manager role (into a new one,
        what creating a model takes)."""
        with self._tx(write=False) as conn:
            found = conn.execute(select(models).where(models.c.name == target)).one_or_none()
            if found is not None:
                self.require(conn, found, "manager", "bundle.import")

    def get_provenance(self, name: str, version: int) -> Provenance | None:
        """Where a version imported from a bundle came from, with the history it carried (None: made here)."""
        validate_model_name(name)
        validate_id(version, "version")
        with self._tx(write=False) as conn:
            _, row = self._version_for(conn, name, version, "reader", "bundle.read", lock=False)
            found = conn.execute(select(bundle_imports).where(bundle_imports.c.version_id == row.id)).one_or_none()
        if found is None:
            return None
        history = json.loads(found.history)
        return Provenance(
            model=name,
            version=version,
            source=history.get("source", ""),
            bundle_digest=found.bundle_digest,
            key_id=found.key_id,
            imported_at=found.imported_at,
            imported_by=found.imported_by,
            audit=history.get("audit") or [],
            scan=history.get("scan"),
        )

    def _imported(self, digest: str, target: str) -> BundleImport | None:
        with self._tx(write=False) as conn:
            return self._import_of(conn, digest, target)

    def _import_of(self, conn: Connection, digest: str, target: str) -> BundleImport | None:
        found = conn.execute(
            select(bundle_imports, models.c.name)
            .join(models, models.c.id == bundle_imports.c.model_id)
            .where(bundle_imports.c.bundle_digest == digest, models.c.name == target)
        ).one_or_none()
        if found is None:
            return None
        _, row = self._version_for(conn, target, found.version, "manager", "bundle.import", lock=False)
        count = conn.execute(select(version_statements.c.id).where(version_statements.c.version_id == row.id))
        return BundleImport(
            model=target,
            version=found.version,
            bundle_digest=digest,
            key_id=found.key_id,
            statements=len(count.all()),
            already_imported=True,
            source=json.loads(found.history).get("source", ""),
            stage=row.stage,
        )

    def _create(
        self,
        header: dict[str, Any],
        target: str,
        version: Checked,
        evals: list[dict[str, Any]],
        digest: str,
        key_id: str,
    ) -> BundleImport:
        """The version, its statements, evaluations and history, in one transaction: all or nothing."""
        source = f"{header['model']['name']}/{header['version']['number']}"
        try:
            self._sibling(ModelService).create_model(target, description=header["model"].get("description", ""))
        except AlreadyExists:
            pass
        with self._tx(write=True) as conn:
            model = self._model_for(conn, target, "manager", "bundle.import")  # locked: imports queue here
            already = self._import_of(conn, digest, target)
            if already is not None:  # another import of this bundle finished first
                return already
            if model.last_version >= header["version"]["number"]:
                version = version._replace(number=None)  # the number is taken: the next one
            created = self._sibling(VersionService).insert_version(conn, model, version, held=True)
            row = self._version_row(conn, model, created.version)
            now = now_ms()
            for s in header["statements"]:
                values = {"key_id": s["key_id"], "body": s["body"], "signature": s["signature"]}
                conn.execute(
                    insert(version_statements).values(
                        model_id=model.id,
                        version_id=row.id,
                        version=row.version,
                        origin="imported",
                        created_at=now,
                        **values,
                    )
                )
            for e in evals:
                conn.execute(insert(evaluations).values(model_id=model.id, version_id=row.id, version=row.version, **e))
            history = {"source": source, "audit": header["audit"], "scan": header["scan"]}
            conn.execute(
                insert(bundle_imports).values(
                    bundle_digest=digest,
                    model_id=model.id,
                    version_id=row.id,
                    version=row.version,
                    key_id=key_id,
                    imported_at=now,
                    imported_by=self.actor,
                    history=json.dumps(history),
                )
            )
            summary = {"bundle_digest": digest, "key_id": key_id, "source": source, "evaluations": len(evals)}
            self._audit(conn, "bundle.import", f"model:{target}/{row.version}", None, summary)
        self._sibling(ScanService).after_ready(target, created.version)
        return BundleImport(
            model=target,
            version=created.version,
            bundle_digest=digest,
            key_id=key_id,
            statements=len(header["statements"]),
            source=source,
            stage=created.stage,
        )


_EVAL = ("kind", "key", "data_digest", "source", "data_tags", "rows", "created_at", "created_by", "body")


def _names_version(record: Any, number: int) -> bool:
    """Whether an alias record moved the alias onto or off version ``number``."""
    for side in (record.before, record.after):
        try:
            if isinstance(found := json.loads(side or "null"), dict) and found.get("version") == number:
                return True
        except ValueError:
            continue
    return False


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def _check_header(text: str, seal: dict[str, Any], keys: dict[str, dom.SigningKey]) -> dict[str, Any]:
    """The header, once its seal, statements, approvals and file list hold; else ``SignatureInvalid``."""
    key = keys.get(seal["key_id"])
    if key is None:
        raise SignatureInvalid(
            f"the bundle is sealed by key {seal['key_id']!r}, which this registry does not trust "
            "(covex keys trust NAME PUBLIC_KEY)"
        )
    if not dom.verifies(key.public_key, text, seal["signature"]):
        raise SignatureInvalid(f"the bundle's seal does not verify with key {key.key_id}: it was altered")
    try:
        return _check_structure(json.loads(text), keys)
    except SignatureInvalid:
        raise
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        # Sealed by a trusted key, yet not what Covex writes: refused like any other bad bundle.
        raise SignatureInvalid(f"the bundle's header is not one Covex writes ({exc!r})") from None


def _check_structure(header: dict[str, Any], keys: dict[str, dom.SigningKey]) -> dict[str, Any]:
    if header.get("format") != FORMAT:
        raise SignatureInvalid(f"the bundle's format {header.get('format')!r} is not {FORMAT}")
    v = header["version"]
    files = [FileEntry(**f) for f in v["files"]]
    validate_id(v["number"], "version")
    validate_model_name(header["model"]["name"])
    if (manifest_digest(files) if files else None) != v["manifest_digest"]:
        raise SignatureInvalid("the bundle's file list does not match its manifest digest")
    listed = [(str(b["digest"]), int(b["size"])) for b in header["blobs"]]
    if sorted(listed) != sorted({f.digest: f.size for f in files}.items()) or any(n < 0 for _, n in listed):
        raise SignatureInvalid("the bundle's blobs are not the version's files")
    for field in ("statements", "audit", "evaluations"):
        if not isinstance(header[field], list):
            raise SignatureInvalid(f"the bundle's {field} must be a list")
    expected = {"model": header["model"]["name"], "version": v["number"], "manifest_digest": v["manifest_digest"]}
    for i, s in enumerate(header["statements"]):
        content = json.loads(s["body"])
        if not isinstance(content, dict):
            raise SignatureInvalid(f"statement {i + 1} of the bundle is not a statement")
        reason = dom.check_statement(content, s["body"], s["signature"], keys.get(s["key_id"]), expected)
        if not reason:
            reason = _approval_problem(content)
        if reason:
            raise SignatureInvalid(f"statement {i + 1} of the bundle ({content.get('target')}): {reason}")
    return header


def _approval_problem(statement: dict[str, Any]) -> str:
    """Why a signed promotion's request does not show the approvals and gates its policy asked for."""
    request = statement.get("request")
    if request is None:
        return ""
    approvers = {str(r["reviewer"]) for r in request.get("reviews", []) if r.get("decision") == "approve"}
    if request.get("forbid_self_approval", True):
        approvers.discard(str(request.get("requester")))  # a self-approval did not count where it was signed
    if len(approvers) < int(request.get("approvals_needed", 0)):
        return f"request {request.get('id')} shows {len(approvers)} approvals of {request.get('approvals_needed')}"
    failed = [g.get("gate") for g in request.get("gates", []) if not g.get("passed")]
    if failed:
        return f"request {request.get('id')} was signed with failing gates: {', '.join(map(str, failed))}"
    return ""


__all__ = ["BundleService", "Export"]
