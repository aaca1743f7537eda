"""MLflow's artifact proxy: ``/api/2.0/mlflow-artifacts/artifacts/<path>`` (``covex.service.tracking_artifacts``).

``PUT`` stores a file (hashed as it streams into the content-addressed store), ``GET`` downloads one
(hashed on the way out, cut short if it does not match), ``GET ?path=<folder>`` lists a folder as
MLflow's server does (names relative to it, sizes of files) and ``DELETE`` removes a file or folder.
Under ``registry/<model name>/-/<version>/`` the files of registered versions are read-only.
"""

from __future__ import annotations

import mimetypes
from urllib.parse import unquote_to_bytes

from fastapi import APIRouter, Request, Response
from fastapi.responses import StreamingResponse
from starlette.concurrency import run_in_threadpool
from starlette.requests import ClientDisconnect

from covex.domain.errors import InvalidInput
from covex.server.guard import UploadSlots
from covex.server.mlflow.messages import Fields
from covex.server.mlflow.tracking import reply
from covex.server.routes import Service
from covex.server.uploads import BodyChunks


def _utf8(request: Request, path: str) -> str:
    """``path`` if the request's own bytes (path and query) are UTF-8: Starlette turns bad bytes into U+FFFD."""
    raw = [request.scope.get("raw_path", b""), *request.scope.get("query_string", b"").split(b"&")]
    try:
        for part in raw:
            unquote_to_bytes(part.replace(b"+", b" ").decode("latin-1")).decode("utf-8")
    except UnicodeDecodeError:
        raise InvalidInput("Invalid path: it must be valid UTF-8 once percent-decoded") from None
    return path


router = APIRouter(include_in_schema=False)  # MLflow's API is documented by MLflow, not in /docs
ARTIFACTS = "/api/2.0/mlflow-artifacts/artifacts"


@router.put(f"{ARTIFACTS}/{{path:path}}")
async def upload_artifact(path: str, request: Request, svc: Service) -> Response:
    """Store one file under a run's or logged model's artifact root (the body is the file)."""
    length = request.headers.get("content-length")
    size = int(length) if length is not None else None  # the guard has checked it is a number
    uploads: UploadSlots = request.app.state.uploads
    caller = await run_in_threadpool(lambda: svc.actor)  # checks the token before a byte of the body is read
    uploads.acquire(caller)
    chunks = BodyChunks(request.stream())
    chunks.start()
    try:
        await run_in_threadpool(svc.tracking.put_artifact, _utf8(request, path), size, chunks)
    except ClientDisconnect:
        return Response(status_code=400)
    finally:
        await chunks.stop()
        uploads.release(caller)
    return reply()


@router.get(f"{ARTIFACTS}/{{path:path}}", response_class=Response)
def download_artifact(path: str, request: Request, svc: Service) -> Response:
    """One file's content; the connection is cut short if it does not match the digest stored for it."""
    size, content = svc.tracking.open_artifact(_utf8(request, path))
    kind = mimetypes.guess_type(path)[0] or "application/octet-stream"
    return StreamingResponse(content, media_type=kind, headers={"Content-Length": str(size)})


@router.get(ARTIFACTS)
def list_artifacts(msg: Fields, request: Request, svc: Service) -> Response:
    """The files and folders directly in ``path``."""
    found = svc.tracking.list_artifacts(_utf8(request, msg.text("path", "")))
    return reply({"files": [f.model_dump(exclude_none=True) for f in found]})


@router.delete(f"{ARTIFACTS}/{{path:path}}")
def delete_artifact(path: str, request: Request, svc: Service) -> Response:
    svc.tracking.delete_artifacts(_utf8(request, path))
    return reply()
