"""Routes of API v1. Each parses input, calls one service method and renders the result.

Model names may hold one ``/`` (a namespace), so a model's sub-resources sit
behind ``/-/``: ``/api/v1/models/team/churn/-/versions/3``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any, TypeVar

from fastapi import APIRouter, Depends, Query, Request, Response
from fastapi.responses import FileResponse, StreamingResponse
from pydantic import BaseModel
from starlette.concurrency import run_in_threadpool
from starlette.requests import ClientDisconnect

from covex.domain.entities import GcReport, Model, ModelEvent, ModelVersion, NewVersion, Page
from covex.domain.errors import InvalidInput
from covex.domain.uris import parse_model_uri
from covex.server import schemas
from covex.server.guard import UploadSlots, client_address, credentials
from covex.server.uploads import BodyChunks
from covex.service import RegistryService, WriteWouldWait, without_waiting

router = APIRouter()
API = "/api/v1"
MODEL = f"{API}/models/{{name:path}}"
# Not ``{version:int}``: a version that is not a number must be a 400 here, not fall through to another route.
VERSION = f"{MODEL}/-/versions/{{version}}"
T = TypeVar("T")


async def base_service(request: Request) -> RegistryService:
    """The service without a caller: for health checks only."""
    return request.app.state.service  # type: ignore[no-any-return]


async def service(request: Request) -> RegistryService:
    """The service acting as the caller the bearer token names (401 without a valid one).

    async and free of I/O: the token is checked inside the action's own transaction.
    """
    base: RegistryService = request.app.state.service
    request_id: str = getattr(request.state, "request_id", "")
    if not request.app.state.auth:
        return base.as_principal(base.principal, request_id)
    token, user = credentials(request.scope)
    return base.with_credentials(token, request_id, source=client_address(request.scope), user=user)


class _BlobFileResponse(FileResponse):
    chunk_size = 1024 * 1024  # Starlette's 64 KiB costs a thread-pool hop per 64 KiB


Service = Annotated[RegistryService, Depends(service)]
OrderBy = Annotated[list[str], Query()]
ERRORS: dict[int | str, dict[str, Any]] = {
    # 408 and 413 come from the request guard, before any route.
    code: {"model": schemas.ErrorBody}
    for code in (400, 401, 403, 404, 408, 409, 413, 500, 503)
}


async def read(svc: RegistryService, call: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """Run a read of the service: on a local SQLite file inline (it takes less than the hop to a worker
    thread would), on a database across the network in a worker thread (the event loop serves others
    meanwhile). Writes go to a worker thread unless they can have the write lock at once (``write``).
    """
    if svc.engine.dialect.name == "sqlite":
        return call(*args, **kwargs)
    return await run_in_threadpool(call, *args, **kwargs)


INLINE_MAX_FILES = 256  # a create with more files runs in a worker thread, not on the event loop (``write``)


async def write(svc: RegistryService, call: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """Run a change made in one transaction: on a local SQLite file inline when the write lock is free at
    once (the write takes less than the hop to a worker thread), else in a worker thread, where it may
    wait for the lock while the event loop serves others. A change that cannot have the lock at once has
    written nothing, so it simply runs again in the thread.
    """
    if svc.engine.dialect.name == "sqlite":
        try:
            with without_waiting():
                return call(*args, **kwargs)
        except WriteWouldWait:
            pass
    return await run_in_threadpool(call, *args, **kwargs)


def render(entity: BaseModel, status_code: int = 200) -> Response:
    # Serialise once with pydantic-core; FastAPI would validate the entity again.
    return Response(entity.model_dump_json(), status_code=status_code, media_type="application/json")


# -- health -----------------------------------------------------------------------------


@router.get("/health", tags=["health"])
async def health() -> dict[str, str]:
    """The process is up."""
    return {"status": "ok"}


@router.get("/ready", tags=["health"], responses=ERRORS)
def ready(svc: Annotated[RegistryService, Depends(base_service)]) -> dict[str, str]:
    """The database answers."""
    svc.ping()
    return {"status": "ready"}


@router.get(f"{API}/stages", response_model=schemas.Stages, tags=["stages"], responses=ERRORS)
def stages(svc: Service) -> Response:
    svc.principal  # noqa: B018 - like every call under /api/v1, this one needs a valid token
    return render(schemas.Stages(stages=svc.stages))


# -- models -----------------------------------------------------------------------------


@router.post(f"{API}/models", response_model=Model, status_code=201, tags=["models"], responses=ERRORS)
def create_model(body: schemas.CreateModel, svc: Service) -> Response:
    return render(svc.create_model(body.name, body.description, body.tags), 201)


@router.get(f"{API}/models", response_model=Page[Model], tags=["models"], responses=ERRORS)
async def search_models(
    svc: Service,
    filter: str | None = None,
    order_by: OrderBy = [],  # noqa: B006 - FastAPI copies defaults
    max_results: schemas.QueryInt = 100,
    page_token: str | None = None,
) -> Response:
    return render(await read(svc, svc.search_models, filter, order_by, max_results, page_token))


@router.get(f"{API}/versions", response_model=Page[ModelVersion], tags=["versions"], responses=ERRORS)
async def search_versions(
    svc: Service,
    filter: str | None = None,
    order_by: OrderBy = [],  # noqa: B006
    max_results: schemas.QueryInt = 100,
    page_token: str | None = None,
) -> Response:
    return render(await read(svc, svc.search_versions, filter, order_by, max_results, page_token))


@router.get(f"{API}/resolve", response_model=ModelVersion, tags=["versions"], responses=ERRORS)
async def resolve(uri: str, svc: Service) -> Response:
    """Resolve a ``models:/`` URI to the version it names."""
    return render(await read(svc, svc.get_version, parse_model_uri(uri)))


@router.get(f"{API}/files", response_model=schemas.VersionFiles, tags=["files"], responses=ERRORS)
def list_files(uri: str, svc: Service) -> Response:
    """The files of the version a ``models:/`` URI names."""
    version, files = svc.list_files(parse_model_uri(uri))
    return render(schemas.VersionFiles(version=version, files=files))


@router.get(f"{API}/documents", tags=["versions"], responses=ERRORS)
def get_document(uri: str, kind: str, svc: Service) -> dict[str, Any]:
    """A version's lineage, signature, profile or card (JSON)."""
    return svc.get_document(parse_model_uri(uri), kind)


@router.put(f"{VERSION}/card", tags=["versions"], responses=ERRORS)
def replace_card(
    name: schemas.ModelNameIn, version: schemas.VersionIn, body: schemas.SetCard, svc: Service
) -> dict[str, Any]:
    """Replace a version's model card with the given fields; answer the card."""
    return svc.set_card(name, version, body.card, replace=True)


@router.patch(f"{VERSION}/card", tags=["versions"], responses=ERRORS)
def merge_card(
    name: schemas.ModelNameIn, version: schemas.VersionIn, body: schemas.SetCard, svc: Service
) -> dict[str, Any]:
    """Merge the given fields into a version's model card (a null field is removed); answer the card."""
    return svc.set_card(name, version, body.card)


@router.get(f"{MODEL}/-/history", response_model=list[ModelEvent], tags=["stages"], responses=ERRORS)
def history(name: schemas.ModelNameIn, svc: Service, version: schemas.QueryInt | None = None) -> list[ModelEvent]:
    """Stage moves and alias changes, oldest first (optionally those touching one version)."""
    return svc.history(name, version)


# Sub-resources first: ``{name:path}`` would otherwise swallow them.


@router.post(f"{MODEL}/-/tags", response_model=Model, tags=["models"], responses=ERRORS)
def set_model_tag(name: schemas.ModelNameIn, body: schemas.SetTag, svc: Service) -> Response:
    return render(svc.set_model_tag(name, body.key, body.value))


@router.delete(f"{MODEL}/-/tags", response_model=Model, tags=["models"], responses=ERRORS)
def delete_model_tag(name: schemas.ModelNameIn, key: str, svc: Service) -> Response:
    return render(svc.delete_model_tag(name, key))


@router.post(f"{MODEL}/-/aliases", response_model=ModelVersion, tags=["aliases"], responses=ERRORS)
def set_alias(name: schemas.ModelNameIn, body: schemas.SetAlias, svc: Service) -> Response:
    """Point an alias at a version, moving it off any other version."""
    return render(svc.set_alias(name, body.alias, body.version, comment=body.comment))


@router.delete(f"{MODEL}/-/aliases", status_code=204, tags=["aliases"], responses=ERRORS)
def delete_alias(name: schemas.ModelNameIn, alias: str, svc: Service) -> Response:
    svc.delete_alias(name, alias)
    return Response(status_code=204)


@router.post(
    f"{MODEL}/-/versions",
    response_model=ModelVersion,
    status_code=201,
    tags=["versions"],
    responses=ERRORS,
)
async def create_version(name: schemas.ModelNameIn, body: schemas.CreateVersion, svc: Service) -> Response:
    """Create a version. With ``files`` it is PENDING until the blobs are uploaded and it is finalized."""
    new = NewVersion(**dict(body))  # the body's fields are NewVersion's
    # A READY version is scanned in this call too when the service scans inline: more than one transaction.
    # Many files take longer to check and insert than the hop to a thread (~15 µs each): never on the loop.
    if svc.scan_inline or len(new.files) > INLINE_MAX_FILES:
        return render(await run_in_threadpool(svc.create_version, name, new), 201)
    return render(await write(svc, svc.create_version, name, new), 201)


@router.get(f"{MODEL}/-/versions", response_model=Page[ModelVersion], tags=["versions"], responses=ERRORS)
async def list_versions(
    name: schemas.ModelNameIn,
    svc: Service,
    filter: str | None = None,
    order_by: OrderBy = [],  # noqa: B006
    max_results: schemas.QueryInt = 100,
    page_token: str | None = None,
) -> Response:
    return render(await read(svc, svc.search_versions, filter, order_by, max_results, page_token, model=name))


@router.get(
    f"{VERSION}",
    response_model=ModelVersion,
    tags=["versions"],
    responses=ERRORS,
)
async def get_version(name: schemas.ModelNameIn, version: schemas.VersionIn, svc: Service) -> Response:
    return render(await read(svc, svc.get_version, parse_model_uri(f"models:/{name}/{version}")))


@router.patch(
    f"{VERSION}",
    response_model=ModelVersion,
    tags=["versions"],
    responses=ERRORS,
)
def update_version(
    name: schemas.ModelNameIn, version: schemas.VersionIn, body: schemas.UpdateVersion, svc: Service
) -> Response:
    return render(svc.update_version(name, version, description=body.description))


@router.delete(f"{VERSION}", status_code=204, tags=["versions"], responses=ERRORS)
def delete_version(name: schemas.ModelNameIn, version: schemas.VersionIn, svc: Service) -> Response:
    svc.delete_version(name, version)
    return Response(status_code=204)


@router.post(
    f"{VERSION}/finalize",
    response_model=ModelVersion,
    tags=["versions"],
    responses=ERRORS,
)
def finalize_version(name: schemas.ModelNameIn, version: schemas.VersionIn, svc: Service) -> Response:
    """Mark the version READY once every file's blob is stored."""
    return render(svc.finalize_version(name, version))


@router.post(
    f"{VERSION}/fail",
    response_model=ModelVersion,
    tags=["versions"],
    responses=ERRORS,
)
def fail_version(
    name: schemas.ModelNameIn, version: schemas.VersionIn, body: schemas.FailVersion, svc: Service
) -> Response:
    return render(svc.fail_version(name, version, body.message))


@router.post(
    f"{VERSION}/tags",
    response_model=ModelVersion,
    tags=["versions"],
    responses=ERRORS,
)
def set_version_tag(
    name: schemas.ModelNameIn, version: schemas.VersionIn, body: schemas.SetTag, svc: Service
) -> Response:
    return render(svc.set_version_tag(name, version, body.key, body.value))


@router.delete(
    f"{VERSION}/tags",
    response_model=ModelVersion,
    tags=["versions"],
    responses=ERRORS,
)
def delete_version_tag(name: schemas.ModelNameIn, version: schemas.VersionIn, key: str, svc: Service) -> Response:
    return render(svc.delete_version_tag(name, version, key))


@router.post(
    f"{VERSION}/metrics",
    response_model=ModelVersion,
    tags=["versions"],
    responses=ERRORS,
)
def log_metrics(
    name: schemas.ModelNameIn, version: schemas.VersionIn, body: schemas.LogMetrics, svc: Service
) -> Response:
    return render(svc.log_metrics(name, version, body.metrics))


@router.post(
    f"{VERSION}/params",
    response_model=ModelVersion,
    tags=["versions"],
    responses=ERRORS,
)
def log_params(
    name: schemas.ModelNameIn, version: schemas.VersionIn, body: schemas.LogParams, svc: Service
) -> Response:
    return render(svc.log_params(name, version, body.params))


@router.post(
    f"{VERSION}/stage",
    response_model=ModelVersion,
    tags=["stages"],
    responses=ERRORS,
)
def transition_stage(
    name: schemas.ModelNameIn, version: schemas.VersionIn, body: schemas.Transition, svc: Service
) -> Response:
    return render(
        svc.transition_stage(name, version, body.stage, archive_existing=body.archive_existing, comment=body.comment)
    )


@router.get(
    f"{MODEL}/-/stages/{{stage}}/latest",
    response_model=ModelVersion,
    tags=["stages"],
    responses=ERRORS,
)
async def latest_in_stage(name: schemas.ModelNameIn, stage: str, svc: Service) -> Response:
    return render(await read(svc, svc.get_version, parse_model_uri(f"models:/{name}/{stage}")))


@router.get(f"{MODEL}", response_model=Model, tags=["models"], responses=ERRORS)
async def get_model(name: schemas.ModelNameIn, svc: Service) -> Response:
    return render(await read(svc, svc.get_model, name))


@router.patch(f"{MODEL}", response_model=Model, tags=["models"], responses=ERRORS)
def update_model(name: schemas.ModelNameIn, body: schemas.UpdateModel, svc: Service) -> Response:
    """Change a model's description and/or rename it."""
    return render(svc.update_model(name, description=body.description, new_name=body.new_name))


@router.delete(f"{MODEL}", status_code=204, tags=["models"], responses=ERRORS)
def delete_model(name: schemas.ModelNameIn, svc: Service) -> Response:
    svc.delete_model(name)
    return Response(status_code=204)


# -- blobs ------------------------------------------------------------------------------


@router.post(f"{API}/blobs/missing", response_model=schemas.MissingBlobsResult, tags=["files"], responses=ERRORS)
def missing_blobs(body: schemas.MissingBlobs, svc: Service) -> Response:
    return render(schemas.MissingBlobsResult(missing=svc.missing_blobs(body.digests)))


BLOB_BODY = {
    "requestBody": {
        "required": True,
        "content": {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}},
    }
}
BLOB_RESPONSES: dict[int | str, dict[str, Any]] = {
    **ERRORS,
    200: {"content": {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}}},
}
UPLOAD_RESPONSES: dict[int | str, dict[str, Any]] = {
    **ERRORS,
    **{code: {"model": schemas.ErrorBody} for code in (429, 507)},
}


@router.put(
    f"{API}/blobs/{{digest}}", status_code=204, tags=["files"], responses=UPLOAD_RESPONSES, openapi_extra=BLOB_BODY
)
async def put_blob(digest: schemas.DigestIn, request: Request, svc: Service) -> Response:
    """Upload one file's content (``Content-Length`` required); it is hashed as it streams and stored
    only if it matches ``digest``."""
    length = request.headers.get("content-length")
    if length is None:
        raise InvalidInput("'Content-Length' header is required for uploads")
    content_length = int(length)  # the guard has checked it is a number
    uploads: UploadSlots = request.app.state.uploads
    caller = await run_in_threadpool(lambda: svc.actor)  # checks the token before a byte of the body is read
    uploads.acquire(caller)  # per user, not per token: a user can make tokens at will
    chunks = BodyChunks(request.stream())
    chunks.start()
    try:
        # One service call stores the blob (checks, hashes, writes, verifies, aborts on any failure),
        # in a worker thread fed as the body arrives.
        await run_in_threadpool(svc.put_blob, digest, content_length, chunks)
    except ClientDisconnect:
        return Response(status_code=400)
    finally:
        await chunks.stop()
        uploads.release(caller)
    return Response(status_code=204)


@router.get(f"{API}/blobs/{{digest}}", tags=["files"], responses=BLOB_RESPONSES, response_class=Response)
def get_blob(digest: schemas.DigestIn, svc: Service) -> Response:
    """Download one file's content by digest (clients verify it)."""
    local = svc.blob_local_path(digest)
    if local is not None:
        return _BlobFileResponse(local, media_type="application/octet-stream")
    return StreamingResponse(svc.read_blob(digest), media_type="application/octet-stream")


@router.post(f"{API}/admin/gc", response_model=GcReport, tags=["admin"], responses=ERRORS)
def gc(body: schemas.RunGc, svc: Service) -> Response:
    """Find (and with ``apply`` delete) blobs no version references."""
    return render(svc.gc(apply=body.apply, grace_seconds=body.grace_seconds))
