"""Routes of API v1 for trust: file scans, signing keys, signed statements, verification, bundles."""

from __future__ import annotations

import tempfile
from typing import Annotated

from fastapi import APIRouter, Request, Response
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool
from starlette.requests import ClientDisconnect

from covex.domain.errors import InvalidInput
from covex.domain.names import MAX_COMMENT_LENGTH
from covex.domain.scans import ScanReport
from covex.domain.signing import BundleImport, Provenance, SigningKey, Statement, Verification
from covex.server.guard import UploadSlots
from covex.server.routes import API, ERRORS, VERSION, Service, render
from covex.server.schemas import ModelNameIn, QueryInt, RequestBody, VersionIn, text

router = APIRouter(tags=["trust"])
SPOOL = 8 * 1024 * 1024  # a bundle this small stays in memory while it is checked


class ScanList(BaseModel):
    scans: list[ScanReport]


class KeyList(BaseModel):
    keys: list[SigningKey]


class StatementList(BaseModel):
    statements: list[Statement]


class ProvenanceOf(BaseModel):
    provenance: Provenance | None


class Loadable(RequestBody):
    override: Annotated[str, Field(json_schema_extra=text(MAX_COMMENT_LENGTH))] = ""


class TrustKey(RequestBody):
    name: str
    public_key: str


@router.post(f"{VERSION}/scans", response_model=ScanReport, status_code=201, responses=ERRORS)
def scan_version(name: ModelNameIn, version: VersionIn, svc: Service) -> Response:
    """Scan a version's files now, without loading them; takes the editor role."""
    return render(svc.trust.scan_version(name, version), 201)


@router.get(f"{VERSION}/scans", response_model=ScanList, responses=ERRORS)
def list_scans(name: ModelNameIn, version: VersionIn, svc: Service, max_results: QueryInt = 20) -> Response:
    """A version's scans, newest first (``verdict`` PENDING, CLEAN, FINDINGS or ERROR, with the findings)."""
    return render(ScanList(scans=svc.trust.list_scans(name, version, max_results)))


class Accept(RequestBody):
    reason: Annotated[str, Field(json_schema_extra=text(MAX_COMMENT_LENGTH))]


@router.post(f"{VERSION}/scans/accept", response_model=ScanReport, responses=ERRORS)
def accept_scan(name: ModelNameIn, version: VersionIn, body: Accept, svc: Service) -> Response:
    """Accept the latest scan's findings after a review (managers; audited): the version then loads."""
    return render(svc.trust.accept_scan(name, version, body.reason))


@router.post(f"{VERSION}/loadable", response_model=ScanReport, responses=ERRORS)
def check_loadable(name: ModelNameIn, version: VersionIn, svc: Service, body: Loadable | None = None) -> Response:
    """409 UNSAFE_MODEL unless the version may be loaded; an ``override`` (a reason) is audited."""
    return render(svc.trust.check_loadable(name, version, override=(body or Loadable()).override))


@router.get(f"{API}/keys", response_model=KeyList, responses=ERRORS)
def list_keys(svc: Service) -> Response:
    """The registry's own Ed25519 public keys (``origin`` own: its statements and bundles verify with
    them) and the keys it trusts (``trusted``)."""
    return render(KeyList(keys=svc.trust.list_keys()))


@router.post(f"{API}/keys", response_model=SigningKey, status_code=201, responses=ERRORS)
def trust_key(body: TrustKey, svc: Service) -> Response:
    """Trust another registry's public key for its statements and bundles; admins only."""
    return render(svc.trust.trust_key(body.name, body.public_key), 201)


@router.delete(f"{API}/keys/{{key_id}}", status_code=204, responses=ERRORS)
def untrust_key(key_id: str, svc: Service) -> Response:
    """Stop trusting a key; admins only."""
    svc.trust.untrust_key(key_id)
    return Response(status_code=204)


@router.get(f"{VERSION}/statements", response_model=StatementList, responses=ERRORS)
def list_statements(name: ModelNameIn, version: VersionIn, svc: Service) -> Response:
    """The signed statements about a version (each with the exact text signed)."""
    return render(StatementList(statements=svc.trust.list_statements(name, version)))


@router.post(f"{VERSION}/verify", response_model=Verification, responses=ERRORS)
def verify_version(name: ModelNameIn, version: VersionIn, svc: Service) -> Response:
    """Check every statement about a version and hash every one of its files again."""
    return render(svc.trust.verify_version(name, version))


@router.get(f"{VERSION}/provenance", response_model=ProvenanceOf, responses=ERRORS)
def get_provenance(name: ModelNameIn, version: VersionIn, svc: Service) -> Response:
    """Where a version imported from a bundle came from, with the source's audit records (null: made here)."""
    return render(ProvenanceOf(provenance=svc.trust.get_provenance(name, version)))


@router.get(f"{VERSION}/bundle", responses=ERRORS, response_class=Response)
def export_bundle(name: ModelNameIn, version: VersionIn, svc: Service) -> Response:
    """A signed promotion bundle of a version (``.cvxb``); takes the manager role."""
    export = svc.trust.prepare_export(name, version)
    headers = {"Content-Length": str(export.size), "Content-Disposition": f'attachment; filename="{version}.cvxb"'}
    return StreamingResponse(export.chunks(), media_type="application/octet-stream", headers=headers)


@router.post(f"{API}/bundles", response_model=BundleImport, responses=ERRORS)
async def import_bundle(request: Request, svc: Service, name: str | None = None, stage: str | None = None) -> Response:
    """Import a bundle (the body): every signature, approval and byte is checked before anything is written;
    ``stage`` is asked of this registry's own policy."""
    if request.headers.get("content-length") is None:
        raise InvalidInput("'Content-Length' header is required for bundle uploads")
    uploads: UploadSlots = request.app.state.uploads
    caller = await run_in_threadpool(lambda: svc.actor)  # checks the token before a byte of the body is read
    uploads.acquire(caller)
    try:
        with tempfile.SpooledTemporaryFile(SPOOL) as spool:
            try:
                async for chunk in request.stream():
                    spool.write(chunk)
            except ClientDisconnect:
                return Response(status_code=400)
            spool.seek(0)
            found = await run_in_threadpool(lambda: svc.trust.import_bundle(spool, name=name, stage=stage))
    finally:
        uploads.release(caller)
    return render(found)
