"""What a request must pass before any route sees it: a clean path, a bounded body, a token first.

``RequestGuard`` is pure ASGI middleware, so nothing here reads a body it is about to refuse:

- a path holding ``.`` or ``..`` segments (after percent-decoding) is refused, so no value can
  climb from one resource to another;
- with authentication on, a request with a body but no bearer token is refused (401) before the
  body is read, and a large body is read only after its token was verified;
- a body larger than the limit is refused with 413: at once when ``Content-Length`` says so,
  else as soon as the bytes received pass it (blob uploads have their own, larger limit);
- a body that stalls longer than ``body_timeout`` between two reads is cut off with 408.
"""

from __future__ import annotations

import asyncio
import base64
import ipaddress
from dataclasses import dataclass

from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from covex.domain.errors import (
    CovexError,
    InvalidInput,
    RequestTimeout,
    RequestTooLarge,
    TooManyRequests,
    Unauthenticated,
)
from covex.server.errors import error_response, is_ui_path, plain_error_page

API = ("/api/v1/", "/api/2.0/")
# File uploads: Covex's own and MLflow's artifact proxy.
BLOB_UPLOAD = ("/api/v1/blobs/", "/api/2.0/mlflow-artifacts/artifacts/")
BUNDLE_UPLOAD = "/api/v1/bundles"  # a bundle carries a version's files: it is an upload too
# Bodies up to this size are parsed before their token is checked (in the action's own transaction):
# reading them costs less than a second round trip to the database.
SMALL_BODY = 64 * 1024


@dataclass(frozen=True)
class GuardLimits:
    max_body_bytes: int
    max_blob_bytes: int
    body_timeout: float


class Refusal(HTTPException):
    """A refusal raised while a route reads the body; FastAPI lets HTTPExceptions through body parsing."""

    def __init__(self, error: CovexError) -> None:
        super().__init__(error.status, error.message)
        self.error = error


def dot_segments(path: str) -> bool:
    return any(part in (".", "..") for part in path.split("/"))


def credentials(scope: Scope) -> tuple[str | None, str | None]:
    """The API token and, for ``Basic`` auth, the user name it must belong to.

    MLflow's clients send ``MLFLOW_TRACKING_TOKEN`` as a bearer token and ``MLFLOW_TRACKING_USERNAME`` /
    ``MLFLOW_TRACKING_PASSWORD`` as basic auth; with Covex the password is one of that user's API tokens.
    """
    for key, value in scope["headers"]:
        if key == b"authorization":
            scheme, _, secret = value.decode("latin-1").partition(" ")
            scheme = scheme.lower()
            if scheme == "bearer":
                return secret.strip() or None, None
            if scheme == "basic":
                try:
                    user, colon, password = base64.b64decode(secret.strip(), validate=True).decode().partition(":")
                except (ValueError, UnicodeDecodeError):
                    return None, None
                return (password or None, user) if colon else (None, None)
            return None, None
    return None, None


def client_address(scope: Scope) -> str:
    """The client's IP address; anything else a proxy header put there is "unknown" (it lands in the audit trail)."""
    client = scope.get("client")
    try:
        return str(ipaddress.ip_address(str(client[0]))) if client else "unknown"
    except ValueError:
        return "unknown"


class RequestGuard:
    """Refuses bad paths, oversized or stalled bodies, and unauthenticated bodies before a route reads them."""

    def __init__(self, app: ASGIApp, *, limits: GuardLimits) -> None:
        self.app = app
        self.limits = limits

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]
        if dot_segments(path):
            await _reply(scope, send, InvalidInput("the path must not hold '.' or '..' segments"))
            return
        upload = (scope["method"] == "PUT" and path.startswith(BLOB_UPLOAD)) or (
            scope["method"] == "POST" and path == BUNDLE_UPLOAD
        )
        limit = self.limits.max_blob_bytes if upload else self.limits.max_body_bytes
        try:
            length = _content_length(scope)
        except InvalidInput as exc:
            await _reply(scope, send, exc)
            return
        too_large = length is not None and length > limit
        has_body = (length is None and _chunked(scope)) or bool(length)
        if has_body and path.startswith(API):
            # Who is asking comes first, also for what is refused by size: no work, and no limits, for strangers.
            # An upload checks its token itself before reading (unless it is refused by size here first).
            large = length is None or length > SMALL_BODY
            refusal = await _authenticate_first(scope, verify=too_large or (large and not upload))
            if refusal is not None:
                await _reply(scope, send, refusal)
                return
        if too_large:
            await _reply(scope, send, _too_large(limit, upload))
            return
        received = 0
        timeout = self.limits.body_timeout
        done = not has_body

        async def guarded_receive() -> Message:
            nonlocal received, done
            if done:
                return await receive()
            try:
                # A timer, not ``wait_for``: that starts a task per read, 16,384 of them for a 1 GiB upload.
                async with asyncio.timeout(timeout):
                    message = await receive()
            except TimeoutError:
                raise Refusal(RequestTimeout(f"the request body stalled: no data for {timeout:g} s")) from None
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise Refusal(_too_large(limit, upload))
                done = not message.get("more_body", False)
            return message

        await self.app(scope, guarded_receive, send)


async def _authenticate_first(scope: Scope, *, verify: bool) -> CovexError | None:
    """Refuse a body without a token before reading it; with ``verify``, check the token's validity too."""
    app = scope["app"]
    if not app.state.auth:
        return None
    token, user = credentials(scope)
    if token is not None and not verify:
        return None  # checked in the action's own transaction, after a cheap read
    service = app.state.service.with_credentials(
        token, scope.get("state", {}).get("request_id", ""), source=client_address(scope), user=user
    )
    try:
        await run_in_threadpool(lambda: service.principal)
    except Unauthenticated as exc:
        return exc
    return None


def _content_length(scope: Scope) -> int | None:
    for key, value in scope["headers"]:
        if key == b"content-length":
            text = value.decode("latin-1").strip()
            if not text.isdigit():
                raise InvalidInput(f"'Content-Length' must be a non-negative integer, got {text!r}")
            return int(text)
    return None


def _chunked(scope: Scope) -> bool:
    return any(key == b"transfer-encoding" for key, _ in scope["headers"])


def _too_large(limit: int, upload: bool) -> RequestTooLarge:
    if upload:
        return RequestTooLarge(f"a file upload may hold at most {limit} bytes (COVEX_MAX_BLOB_BYTES)")
    return RequestTooLarge(f"the request body may hold at most {limit} bytes (COVEX_MAX_BODY_BYTES)")


async def _reply(scope: Scope, send: Send, error: CovexError) -> None:
    page = plain_error_page(error) if is_ui_path(scope["path"]) else error_response(error, scope["path"])
    await page(scope, _no_receive, send)


async def _no_receive() -> Message:
    return {"type": "http.disconnect"}


class UploadSlots:
    """At most ``limit`` uploads at once per user in this server process.

    Only the event loop calls these (one coroutine at a time), so the counts need no lock.
    """

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._active: dict[str, int] = {}

    def acquire(self, caller: str) -> None:
        if self._active.get(caller, 0) >= self.limit:
            raise TooManyRequests(
                f"at most {self.limit} upload{'s' if self.limit != 1 else ''} at once per user "
                "(COVEX_MAX_UPLOADS_PER_CALLER); retry when one has finished"
            )
        self._active[caller] = self._active.get(caller, 0) + 1

    def release(self, caller: str) -> None:
        left = self._active[caller] - 1
        if left:
            self._active[caller] = left
        else:
            del self._active[caller]


__all__ = ["GuardLimits", "Refusal", "RequestGuard", "UploadSlots"]
