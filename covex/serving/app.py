"""The scoring server's HTTP surface: a Starlette app over one ``ModelHolder``.

Routes parse the request (``payloads``, ``oip``), score it on the version they read once from the
holder, and render. Every response carries ``X-Request-ID`` and, once a version is loaded,
``Covex-Model-Version`` (the version that answered); with ``--split``, ``Covex-Model-Role`` too
(``champion`` or ``challenger``). A second holder follows the shadow or challenger URI
(``covex.serving.challenger``).
"""

from __future__ import annotations

import hmac
import logging
import os
import re
import time
import uuid
import warnings
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from functools import partial
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.background import BackgroundTask
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from covex import __version__
from covex.domain.deployments import MAX_MESSAGE
from covex.domain.errors import CovexError, MethodNotAllowed, NotFound, RequestTooLarge, Unauthenticated
from covex.domain.webhooks import verify_signature
from covex.serving import oip
from covex.serving.challenger import ShadowScorer, Splitter
from covex.serving.errors import BadInput, ModelFailed, NotReady, kind_of
from covex.serving.holder import ModelHolder, Served
from covex.serving.metrics import CONTENT_TYPE, Metrics
from covex.serving.options import ServeOptions
from covex.serving.payloads import JSON, ModelInput, dumps, jsonable, load_json, parse_invocation

log = logging.getLogger("covex.serving")
_REQUEST_ID = re.compile(r"[A-Za-z0-9._\-]{1,64}")


class ScoringServer:
    """The state one worker's routes share: options, the holder, metrics, the inference log."""

    def __init__(
        self,
        options: ServeOptions,
        holder: ModelHolder | None = None,
        refresh_stamp: Path | None = None,
        challenger: ModelHolder | None = None,
    ) -> None:
        self.options = options
        self.metrics = Metrics()
        self.holder = holder or ModelHolder(
            options.client,
            options.uri,
            poll_seconds=options.poll_seconds,
            cache_dir=options.registry.get("cache_dir"),
            on_failure=self._load_failed,
            refresh_stamp=refresh_stamp,
        )
        self.holder.add_listener(self.metrics.served)
        self.record: Any = None  # covex.recording.DeploymentRecord, from start to stop
        self.inference_log: Any = None
        if options.log_inferences:
            from covex.serving.inference_log import InferenceLog

            self.inference_log = InferenceLog(
                options.log_inferences,
                max_queue=options.log_queue,
                interval=options.log_batch_seconds,
                on_drop=self.metrics.log_dropped.inc,
            )
        # A second version (covex.serving.challenger): scored in the shadow, or answering a share of requests.
        self.challenger: ModelHolder | None = None
        self.shadow: ShadowScorer | None = None
        self.splitter: Splitter | None = None
        other, role = (options.shadow, "shadow") if options.shadow else (options.split, "challenger")
        if other is not None:
            self.challenger = challenger or ModelHolder(
                options.client,
                other,
                poll_seconds=options.poll_seconds,
                cache_dir=options.registry.get("cache_dir"),
                refresh_stamp=refresh_stamp,
            )
            self.challenger.add_listener(
                lambda old, new: self.metrics.challenger_version.labels(new.name, role).set(new.version)
            )
        if options.shadow is not None and self.challenger is not None:
            self.shadow = ShadowScorer(
                self.challenger, self.inference_log, self.metrics, max_queue=options.shadow_queue
            )
        if options.split is not None:
            self.splitter = Splitter(options.split_percent, options.split_key)
        self.explaining: Any = None
        if options.explain:
            from covex.serving.explaining import Explaining

            self.explaining = Explaining(options.client)

    # -- scoring ---------------------------------------------------------------------------

    async def invocations(self, request: Request) -> Response:
        return await self._score(request, "invocations", self._parse_invocation, _mlflow_answer)

    async def explain(self, request: Request) -> Response:
        """``POST /explain``: SHAP contributions per row for the version that answers (``covex.serving.explaining``)."""
        if self.explaining is None:
            raise NotFound("/explain is off on this server: start it with 'covex serve --explain'")
        self._authorize(request)
        served = self._routed(request)
        started = time.perf_counter()
        parsed, _ = await self._parse_invocation(request, served)
        doc = await run_in_threadpool(self.explaining.explain, served, parsed.data)
        self.metrics.latency.labels("explain").observe(time.perf_counter() - started)
        return Response(dumps(doc), media_type=JSON)

    async def infer(self, request: Request) -> Response:
        self._authorize(request)  # before the name: without the token, learn nothing of what is served
        served = self._served_named(request, route=True)
        return await self._score(request, "v2_infer", self._parse_infer, _oip_answer, served)

    async def _parse_invocation(self, request: Request, served: Served) -> tuple[ModelInput, Any]:
        body = await self._body(request)
        content_type = request.headers.get("content-type", "")
        parse = partial(
            parse_invocation, body, content_type, served.schema, served.metadata, max_body=self.options.max_body
        )
        return await _off_loop_if_large(body, parse), None

    async def _parse_infer(self, request: Request, served: Served) -> tuple[ModelInput, Any]:
        body = await self._body(request)
        return await _off_loop_if_large(body, _parse_infer, body, served.schema)  # type: ignore[no-any-return]

    async def _score(
        self, request: Request, endpoint: str, parse: Callable[..., Any], answer: Any, served: Served | None = None
    ) -> Response:
        started = time.perf_counter()
        self._authorize(request)
        served = served or self._routed(request)
        parsed, extra = await parse(request, served)
        predictions = await run_in_threadpool(_predict, served, parsed)
        body = answer(predictions, served, extra)
        elapsed = time.perf_counter() - started
        self.metrics.rows.inc(parsed.rows)
        self.metrics.latency.labels(endpoint).observe(elapsed)
        request_id = request.state.request_id
        if self.inference_log is not None:
            self.inference_log.record(request_id, served, parsed, predictions, elapsed, endpoint=endpoint)
        if self.shadow is None:
            return Response(body, media_type=JSON)
        # Queued once the answer is sent: the shadow costs the caller nothing.
        shadowed = BackgroundTask(self.shadow.submit, request_id, served, parsed, endpoint)
        return Response(body, media_type=JSON, background=shadowed)

    def _served(self, request: Request) -> Served:
        served = self.holder.current
        if served is None:
            raise NotReady(f"no version of {self.options.uri} is loaded yet; see /version")
        request.state.served_version = served.version
        return served

    def _routed(self, request: Request) -> Served:
        """The version that answers this request: the served one, or with ``--split`` now and then the challenger."""
        served = self._served(request)
        if self.splitter is None:
            return served
        challenger = self.challenger.current if self.challenger is not None else None
        # Until a challenger version is loaded, the served one answers its share too.
        if challenger is not None and self.splitter.to_challenger(request.headers):
            served, role = challenger, "challenger"
        else:
            role = "champion"
        request.state.served_version = served.version
        request.state.served_role = role
        self.metrics.split_requests.labels(role).inc()
        return served

    def _authorize(self, request: Request) -> None:
        token = self.options.token
        if token is None:
            return
        scheme, _, given = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(given.strip().encode(), token.encode()):
            raise Unauthenticated("this endpoint needs 'Authorization: Bearer <token>' with the server's token")

    async def _body(self, request: Request) -> bytes:
        limit = self.options.max_body
        declared = request.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            raise RequestTooLarge(f"body: at most {limit} bytes are read (--max-body), got {declared}")
        chunks, size = [], 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                raise RequestTooLarge(f"body: at most {limit} bytes are read (--max-body)")
            chunks.append(chunk)
        return b"".join(chunks)

    # -- the rest ----------------------------------------------------------------------------

    async def refresh(self, request: Request) -> Response:
        """``POST /-/refresh``: look where the URI points now (the registry's webhook calls this)."""
        body = await self._body(request)
        secret = self.options.webhook_secret
        signed = secret is not None and verify_signature(
            secret,
            request.headers.get("covex-timestamp", ""),
            body,
            request.headers.get("covex-signature", ""),
        )
        if not signed:
            if secret is not None and self.options.token is None:
                raise Unauthenticated("'Covex-Signature': missing, expired or not signed with the webhook secret")
            if secret is not None or self.options.token is not None:
                self._authorize(request)
        self.holder.refresh()
        if self.challenger is not None:
            self.challenger.refresh()
        return _json({"refreshing": True, "uri": self.options.uri}, 202)

    async def version(self, request: Request) -> Response:
        served = self.holder.current
        status = self.holder.status
        doc: dict[str, Any] = {
            "uri": self.options.uri,
            "ready": served is not None,
            "swaps": status.swaps,
            "failed_swaps": status.failures,
            "last_swap_error": status.last_error,
            "last_swap_error_at": _iso(status.last_error_at),
            "last_check_at": _iso(status.last_check_at),
            "covex": __version__,
        }
        if served is not None:
            request.state.served_version = served.version
            doc |= {
                "model": served.name,
                "version": served.version,
                "version_uri": served.uri,
                "manifest_digest": served.manifest_digest,
                "loaded_since": _iso(served.loaded_since),
            }
        if self.challenger is not None:
            doc["shadow" if self.shadow is not None else "split"] = self._challenger_doc()
        return _json(doc)

    def _challenger_doc(self) -> dict[str, Any]:
        """The ``shadow`` or ``split`` part of ``/version``: which version, and how it fares."""
        assert self.challenger is not None
        other, status = self.challenger.current, self.challenger.status
        doc: dict[str, Any] = {
            "uri": self.challenger.uri,
            "ready": other is not None,
            "model": other.name if other else None,
            "version": other.version if other else None,
            "version_uri": other.uri if other else None,
            "loaded_since": _iso(other.loaded_since) if other else None,
            "swaps": status.swaps,
            "failed_swaps": status.failures,
            "last_swap_error": status.last_error,
        }
        if self.shadow is not None:
            return doc | self.shadow.describe()
        assert self.splitter is not None
        return doc | {"percent": self.splitter.percent, "key": self.options.split_key}

    async def ping(self, request: Request) -> Response:
        return _json({"status": "alive"})

    async def ready(self, request: Request) -> Response:
        served = self.holder.current
        if served is None:
            return _json({"ready": False, "uri": self.options.uri, "error": self.holder.status.last_error}, 503)
        return _json({"ready": True, "model": served.name, "version": served.version})

    async def v2_server(self, request: Request) -> Response:
        return _json({"name": "covex", "version": __version__, "extensions": []})

    async def v2_model(self, request: Request) -> Response:
        self._authorize(request)
        served = self._served_named(request)
        return _json(oip.metadata(served.name, served.version, served.schema, served.metadata))

    async def v2_model_ready(self, request: Request) -> Response:
        self._authorize(request)
        served = self._served_named(request)
        return _json({"name": served.name, "ready": True})

    def _served_named(self, request: Request, *, route: bool = False) -> Served:
        """The served version, if the path names its model (and, in ``/versions/N/``, its version).

        With ``--split``, the challenger is served too: a path naming its version reaches it, and
        ``route`` (infer) sends a path without a version where ``/invocations`` would go.
        """
        name, version = request.path_params["name"], request.path_params.get("version")
        served = self._served(request)
        challenger = self.challenger.current if self.splitter is not None and self.challenger is not None else None
        if name != served.name and (challenger is None or name != challenger.name):
            raise NotFound(f"model {name!r} is not served here; this server serves {served.name!r}")
        if version is None:
            if route:
                return self._routed(request)
            return served if name == served.name or challenger is None else challenger
        for candidate, role in ((served, "champion"), (challenger, "challenger")):
            if candidate is not None and (candidate.name, str(candidate.version)) == (name, version):
                request.state.served_version = candidate.version
                if self.splitter is not None:
                    request.state.served_role = role
                return candidate
        raise NotFound(
            f"version {version!r} of {name!r} is not served here; this server serves version "
            f"{served.version} (or omit /versions/... to ask whichever version it serves)"
        )

    async def metrics_text(self, request: Request) -> Response:
        return Response(self.metrics.render(), media_type=CONTENT_TYPE)

    @asynccontextmanager
    async def lifespan(self, app: Starlette) -> AsyncIterator[None]:
        self._start_record()
        self.holder.start()
        if self.inference_log is not None:
            self.inference_log.start()
        if self.challenger is not None:
            self.challenger.start()
        if self.shadow is not None:
            self.shadow.start()
        try:
            yield
        finally:
            self.holder.stop()
            if self.challenger is not None:
                self.challenger.stop()
            if self.shadow is not None:  # before the log closes: the request being scored is written
                self.shadow.stop()
            if self.inference_log is not None:
                self.inference_log.close()
            if self.record is not None:
                await run_in_threadpool(self._end_record)

    # -- the deployment record (covex.recording): this process, on the version it serves ------------

    def _start_record(self) -> None:
        """Record this process as a deployment (STARTING); the first load makes it SERVING, swaps move it."""
        if self.options.record_target is None:
            return
        from covex.recording import DeploymentRecord

        client = self.options.client()
        self.record = DeploymentRecord(
            client,
            self.options.uri,
            "serving",
            self.options.record_target,
            heartbeat_seconds=self.options.heartbeat_seconds,
            log_location=_log_location(self.options.log_inferences),
        )
        self.record.start()
        self.holder.add_listener(self._recorded_swap)

    def _load_failed(self, error: str) -> None:
        """Count it; while nothing serves yet, say why on the deployment record (it stays STARTING: the
        server keeps trying, and an alias may move to a version that loads)."""
        self.metrics.swap_failures.inc()
        if self.record is not None and self.holder.current is None:
            self.record.update(message=f"not loaded: {error}"[:MAX_MESSAGE])

    def _recorded_swap(self, old: Served | None, new: Served) -> None:
        if old is None:
            self.record.update(status="SERVING", version=new.version, message=f"pid {os.getpid()}")
        else:
            self.record.swapped(new.version, f"swapped from version {old.version}")

    def _end_record(self) -> None:
        self.record.end("STOPPED")
        self.record.client.close()


# A body up to this size is parsed on the event loop (a fraction of a millisecond); a larger one on a
# worker thread, so that a 4 MB JSON body does not hold /ping and the other connections for as long.
PARSE_ON_LOOP_BYTES = 64 * 1024


async def _off_loop_if_large(body: bytes, fn: Callable[..., Any], *args: Any) -> Any:
    if len(body) <= PARSE_ON_LOOP_BYTES:
        return fn(*args)
    return await run_in_threadpool(fn, *args)


def _parse_infer(body: bytes, schema: Any) -> tuple[ModelInput, Any]:
    return oip.parse_infer(load_json(body), schema)


def _predict(served: Served, parsed: ModelInput) -> Any:
    from mlflow.exceptions import MlflowException

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return served.predict(parsed.data, parsed.params)
    except MlflowException as exc:
        if exc.error_code in ("INVALID_PARAMETER_VALUE", "BAD_REQUEST") or "enforce schema" in exc.message:
            raise BadInput(f"the input does not fit the model: {_line(exc.message)}") from None
        log.exception("%s failed on valid input", served.uri)
        raise ModelFailed(f"version {served.version} failed to predict: {_line(exc.message)}") from None
    except Exception as exc:
        log.exception("%s failed on valid input", served.uri)
        raise ModelFailed(
            f"version {served.version} failed to predict: {type(exc).__name__}: {_line(str(exc))}"
        ) from None


def _mlflow_answer(predictions: Any, served: Served, extra: Any) -> bytes:
    return dumps({"predictions": jsonable(predictions)})


def _oip_answer(predictions: Any, served: Served, request_id: Any) -> bytes:
    return dumps(oip.infer_response(predictions, served.name, served.version, request_id))


def _line(text: str) -> str:
    from covex.ml.packaging import one_line

    return one_line(text)


def _iso(ts: float | None) -> str | None:
    if ts is None:
        return None
    from datetime import UTC, datetime

    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _json(document: Any, status: int = 200) -> Response:
    return Response(dumps(document), status_code=status, media_type=JSON)


def _error(request: Request, error: CovexError, server: ScoringServer) -> Response:
    body: dict[str, Any] = error.to_dict()
    if request.url.path.startswith("/v2/"):
        body = {"error": error.message, **body}  # the Open Inference Protocol's error shape
    response = _json(body, error.status)
    if isinstance(error, Unauthenticated):
        response.headers["WWW-Authenticate"] = "Bearer"
    endpoint = _endpoint(request.url.path)
    if endpoint is not None:
        server.metrics.errors.labels(kind_of(error)).inc()
        server.metrics.requests.labels(endpoint, str(error.status)).inc()
    return response


def _endpoint(path: str) -> str | None:
    if path == "/invocations":
        return "invocations"
    if path == "/explain":
        return "explain"
    if path.startswith("/v2/models/") and path.endswith("/infer"):
        return "v2_infer"
    return None


class Headers:
    """Give each request an id (the caller's ``X-Request-ID`` when sane) and stamp the served version."""

    def __init__(self, app: ASGIApp, server: ScoringServer) -> None:
        self.app, self.server = app, server

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        given = dict(scope["headers"]).get(b"x-request-id", b"").decode("latin-1")
        request_id = given if _REQUEST_ID.fullmatch(given) else uuid.uuid4().hex
        state = scope.setdefault("state", {})
        state["request_id"] = request_id
        endpoint = _endpoint(scope["path"]) if scope["method"] == "POST" else None
        server = self.server

        async def stamped(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = [*message.get("headers", []), (b"x-request-id", request_id.encode())]
                version = state.get("served_version")
                if version is None and server.holder.current is not None:
                    version = server.holder.current.version
                if version is not None:
                    headers.append((b"covex-model-version", str(version).encode()))
                role = state.get("served_role")
                if role is not None:  # --split: champion or challenger
                    headers.append((b"covex-model-role", role.encode()))
                message["headers"] = headers
                if endpoint is not None and message["status"] < 400:
                    server.metrics.requests.labels(endpoint, str(message["status"])).inc()
            await send(message)

        await self.app(scope, receive, stamped)


def create_app(
    options: ServeOptions,
    holder: ModelHolder | None = None,
    *,
    refresh_stamp: Path | None = None,
    challenger: ModelHolder | None = None,
) -> Starlette:
    """The scoring app for ``options`` (it loads and follows the version while it runs).

    ``refresh_stamp``: a file the workers of one server share; ``/-/refresh`` on any of them touches it,
    and every worker looks where the URI points. ``challenger``: the holder of ``options.shadow`` or
    ``options.split`` (made from the options when not given).
    """
    server = ScoringServer(options, holder, refresh_stamp, challenger)
    routes = [
        Route("/invocations", server.invocations, methods=["POST"]),
        Route("/explain", server.explain, methods=["POST"]),
        Route("/v2/models/{name:path}/versions/{version}/infer", server.infer, methods=["POST"]),
        Route("/v2/models/{name:path}/versions/{version}/ready", server.v2_model_ready, methods=["GET"]),
        Route("/v2/models/{name:path}/versions/{version}", server.v2_model, methods=["GET"]),
        Route("/v2/models/{name:path}/infer", server.infer, methods=["POST"]),
        Route("/v2/models/{name:path}/ready", server.v2_model_ready, methods=["GET"]),
        Route("/v2/models/{name:path}", server.v2_model, methods=["GET"]),
        Route("/v2/health/live", server.ping, methods=["GET"]),
        Route("/v2/health/ready", server.ready, methods=["GET"]),
        Route("/v2", server.v2_server, methods=["GET"]),
        Route("/ping", server.ping, methods=["GET"]),
        Route("/health", server.ping, methods=["GET"]),
        Route("/ready", server.ready, methods=["GET"]),
        Route("/version", server.version, methods=["GET"]),
        Route("/metrics", server.metrics_text, methods=["GET"]),
        Route("/-/refresh", server.refresh, methods=["POST"]),
    ]

    async def covex_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, CovexError)
        return _error(request, exc, server)

    async def http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        if exc.status_code == 405:
            response = _error(request, MethodNotAllowed(f"{request.url.path} does not take {request.method}"), server)
            response.headers.update(exc.headers or {})
            return response
        return _error(request, NotFound(f"no such endpoint: {request.url.path}"), server)

    async def unexpected(request: Request, exc: Exception) -> Response:
        log.exception("unexpected error", exc_info=exc)
        return _error(request, ModelFailed("internal error; see the server log"), server)

    app = Starlette(
        routes=routes,
        lifespan=server.lifespan,
        exception_handlers={CovexError: covex_error, HTTPException: http_error, Exception: unexpected},
    )
    app.state.server = server
    app.add_middleware(Headers, server=server)
    return app


def app_from_environment() -> Starlette:
    """Factory for each worker process (``--workers N``): the options come from ``COVEX_SERVE_OPTIONS``."""
    import os

    from covex.serving.metrics import MULTIPROC_ENV
    from covex.serving.options import OPTIONS_ENV
    from covex.serving.runner import log_to_stderr

    log_to_stderr()
    stamp = Path(os.environ[MULTIPROC_ENV]) / "covex-refresh" if MULTIPROC_ENV in os.environ else None
    return create_app(ServeOptions.model_validate_json(os.environ[OPTIONS_ENV]), refresh_stamp=stamp)


def _log_location(location: str | None) -> str | None:
    """The inference log's location as monitoring on another machine would name it (a local folder absolute)."""
    if not location:
        return None
    if "://" in location and not location.startswith("file://"):
        return location
    return str(Path(location.removeprefix("file://")).resolve())
