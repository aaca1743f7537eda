"""The HTTP backend: the same methods as the service layer, over a Covex server."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from json import dumps
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

import httpx

from covex.artifacts.blobstore import check_digest
from covex.client.transfer import read_ahead
from covex.domain.deployments import Deployment
from covex.domain.entities import FileEntry, FsckReport, GcReport, Model, ModelEvent, ModelVersion, Page
from covex.domain.errors import (
    CovexError,
    InternalError,
    InvalidInput,
    RequestTooLarge,
    ServiceUnavailable,
    error_from_code,
)
from covex.domain.evaluations import Evaluation
from covex.domain.names import (
    check_encodable,
    validate_alias,
    validate_id,
    validate_key,
    validate_metrics,
    validate_model_name,
    validate_ref,
    validate_tags,
)
from covex.domain.uris import ModelRef
from covex.settings import Settings

if TYPE_CHECKING:
    from covex.domain.entities import NewVersion

API = "/api/v1"
# Seconds to wait for one batch of an integrity check (each re-hashes up to a batch of models' files).
FSCK_TIMEOUT = 3600.0


def segment(value: str) -> str:
    """One path segment, percent-encoded so that no value can change the route.

    ``/`` is encoded, and so are ``.`` and ``..`` (URL normalisation would drop them): the
    server sees the value as given, and refuses it.
    """
    quoted = quote(value, safe="")
    return quoted.replace(".", "%2E") if quoted in (".", "..") else quoted


def model_path(name: str) -> str:
    """``/api/v1/models/<name>`` for a valid model name (``InvalidInput`` first, as embedded)."""
    validate_model_name(name)
    return f"{API}/models/" + "/".join(segment(part) for part in name.split("/"))


_m = model_path


def _v(name: str, version: int) -> str:
    return f"{_m(name)}/-/versions/{_number(version)}"


def _number(version: int) -> int:
    return validate_id(version, "version")


class HttpBackend:
    """Talks to a Covex server with one keep-alive connection pool."""

    def __init__(self, settings: Settings) -> None:
        headers = {"User-Agent": "covex-python"}
        if settings.token:
            headers["Authorization"] = f"Bearer {settings.token}"
        self.settings = settings
        self.http = httpx.Client(
            base_url=settings.uri.rstrip("/"),
            headers=headers,
            timeout=httpx.Timeout(settings.http_timeout, connect=10.0),
        )
        self._stages: list[str] | None = None

    def close(self) -> None:
        self.http.close()

    @property
    def access(self) -> Any:
        from covex.client.http_access import HttpAccess

        return HttpAccess(self)

    @property
    def approvals(self) -> Any:
        from covex.client.http_approvals import HttpApprovals

        return HttpApprovals(self)

    @property
    def audit(self) -> Any:
        from covex.client.http_audit import HttpAudit

        return HttpAudit(self)

    @property
    def webhooks(self) -> Any:
        from covex.client.http_webhooks import HttpWebhooks

        return HttpWebhooks(self)

    @property
    def trust(self) -> Any:
        from covex.client.http_trust import HttpTrust

        return HttpTrust(self)

    @property
    def monitoring(self) -> Any:
        from covex.client.http_monitoring import HttpMonitoring

        return HttpMonitoring(self)

    # -- transport ------------------------------------------------------------------

    def _raise_for(self, response: httpx.Response) -> None:
        if response.is_success:
            return
        try:
            body = response.json()
            code, message = body["error_code"], body["message"]
        except (ValueError, KeyError, TypeError):
            text = response.text[:200] if not response.is_stream_consumed or response.content else ""
            raise InternalError(f"server answered {response.status_code}: {text}") from None
        raise error_from_code(code, message)

    def _call(self, method: str, path: str, *, json: Any = None, **kwargs: Any) -> Any:
        if json is not None:
            # ASCII-only JSON: text the server must refuse (a lone surrogate) travels as an escape and is
            # refused there with the field's name, as embedded; NaN and infinity travel too, and are refused there.
            kwargs["content"] = dumps(json, ensure_ascii=True, separators=(",", ":")).encode()
            kwargs["headers"] = {**kwargs.get("headers", {}), "Content-Type": "application/json"}
        try:
            response = self.http.request(method, path, **kwargs)
        except httpx.TransportError as exc:
            raise ServiceUnavailable(f"cannot reach Covex server at {self.settings.uri}: {exc}") from None
        except UnicodeEncodeError:
            raise InvalidInput("the request holds text that is not valid Unicode (a lone surrogate)") from None
        except httpx.InvalidURL as exc:
            raise RequestTooLarge(f"the request cannot be sent as a URL: {exc}") from None
        self._raise_for(response)
        return response.json() if response.content else None

    # -- models ---------------------------------------------------------------------

    @property
    def stages(self) -> list[str]:
        if self._stages is None:
            self._stages = list(self._call("GET", f"{API}/stages")["stages"])
        return self._stages

    def ping(self) -> None:
        self._call("GET", "/ready")

    def create_model(self, name: str, description: str = "", tags: Mapping[str, str] | None = None) -> Model:
        body = {"name": name, "description": _text(description), "tags": validate_tags(tags, "tags")}
        return Model.model_validate(self._call("POST", f"{API}/models", json=body))

    def get_model(self, name: str) -> Model:
        return Model.model_validate(self._call("GET", _m(name)))

    def rename_model(self, name: str, new_name: str) -> Model:
        return self.update_model(name, new_name=new_name)

    def update_model(self, name: str, *, description: str | None = None, new_name: str | None = None) -> Model:
        body = {k: v for k, v in (("description", description), ("new_name", new_name)) if v is not None}
        return Model.model_validate(self._call("PATCH", _m(name), json=body))

    def set_model_tag(self, name: str, key: str, value: str) -> Model:
        return Model.model_validate(self._call("POST", f"{_m(name)}/-/tags", json={"key": key, "value": value}))

    def delete_model_tag(self, name: str, key: str) -> Model:
        validate_key(key, "key")
        return Model.model_validate(self._call("DELETE", f"{_m(name)}/-/tags", params={"key": key}))

    def delete_model(self, name: str) -> None:
        self._call("DELETE", _m(name))

    def search_models(
        self,
        filter: str | None = None,
        order_by: Sequence[str] | None = None,
        max_results: int = 100,
        page_token: str | None = None,
    ) -> Page[Model]:
        params = _page_params(filter, order_by, max_results, page_token)
        return Page[Model].model_validate(self._call("GET", f"{API}/models", params=params))

    # -- versions -------------------------------------------------------------------

    def create_version(self, name: str, new: NewVersion) -> ModelVersion:
        body = {
            "documents": dict(new.documents or {}),
            "number": new.number,
            "files": [f.model_dump() for f in new.files or []],
            "source": _text(new.source),
            "description": _text(new.description),
            # Checked as embedded does (a list of pairs is not a mapping), before anything is sent.
            "tags": validate_tags(new.tags, "tags"),
            "metrics": validate_metrics(new.metrics),
            "params": validate_tags(new.params, "params"),
            "run_id": _text(new.run_id),
            "run_link": _text(new.run_link),
        }
        return ModelVersion.model_validate(self._call("POST", f"{_m(name)}/-/versions", json=body))

    def finalize_version(self, name: str, version: int) -> ModelVersion:
        return ModelVersion.model_validate(self._call("POST", f"{_v(name, version)}/finalize"))

    def fail_version(self, name: str, version: int, message: str) -> ModelVersion:
        return ModelVersion.model_validate(
            self._call("POST", f"{_v(name, version)}/fail", json={"message": _text(message)})
        )

    def get_version(self, ref: ModelRef) -> ModelVersion:
        validate_ref(ref, self.stages)
        if ref.kind == "version":
            return ModelVersion.model_validate(self._call("GET", _v(ref.name, ref.version)))
        return ModelVersion.model_validate(self._call("GET", f"{API}/resolve", params={"uri": str(ref)}))

    def list_files(self, ref: ModelRef) -> tuple[ModelVersion, list[FileEntry]]:
        validate_ref(ref, self.stages)
        body = self._call("GET", f"{API}/files", params={"uri": str(ref)})
        return ModelVersion.model_validate(body["version"]), [FileEntry.model_validate(f) for f in body["files"]]

    def search_versions(
        self,
        filter: str | None = None,
        order_by: Sequence[str] | None = None,
        max_results: int = 100,
        page_token: str | None = None,
        *,
        model: str | None = None,
    ) -> Page[ModelVersion]:
        params = _page_params(filter, order_by, max_results, page_token)
        path = f"{_m(model)}/-/versions" if model is not None else f"{API}/versions"
        return Page[ModelVersion].model_validate(self._call("GET", path, params=params))

    def update_version(self, name: str, version: int, *, description: str) -> ModelVersion:
        return ModelVersion.model_validate(
            self._call("PATCH", _v(name, version), json={"description": _text(description)})
        )

    def set_version_tag(self, name: str, version: int, key: str, value: str) -> ModelVersion:
        body = {"key": key, "value": value}
        return ModelVersion.model_validate(self._call("POST", f"{_v(name, version)}/tags", json=body))

    def delete_version_tag(self, name: str, version: int, key: str) -> ModelVersion:
        validate_key(key, "key")
        return ModelVersion.model_validate(self._call("DELETE", f"{_v(name, version)}/tags", params={"key": key}))

    def log_metrics(self, name: str, version: int, metrics: Mapping[str, float]) -> ModelVersion:
        body = {"metrics": validate_metrics(metrics)}
        return ModelVersion.model_validate(self._call("POST", f"{_v(name, version)}/metrics", json=body))

    def log_params(self, name: str, version: int, params: Mapping[str, str]) -> ModelVersion:
        body = {"params": validate_tags(params, "params")}
        return ModelVersion.model_validate(self._call("POST", f"{_v(name, version)}/params", json=body))

    def delete_version(self, name: str, version: int) -> None:
        self._call("DELETE", _v(name, version))

    def transition_stage(
        self, name: str, version: int, stage: str, *, archive_existing: bool = False, comment: str = ""
    ) -> ModelVersion:
        if not isinstance(archive_existing, bool):  # as embedded: pydantic would say it in its own words
            raise InvalidInput(f"'archive_existing' must be true or false, got {archive_existing!r}")
        body = {"stage": stage, "archive_existing": archive_existing, "comment": _text(comment)}
        return ModelVersion.model_validate(self._call("POST", f"{_v(name, version)}/stage", json=body))

    def set_alias(self, name: str, alias: str, version: int, *, comment: str = "") -> ModelVersion:
        body = {"alias": alias, "version": version, "comment": _text(comment)}
        return ModelVersion.model_validate(self._call("POST", f"{_m(name)}/-/aliases", json=body))

    def delete_alias(self, name: str, alias: str) -> None:
        validate_alias(alias, self.stages)
        self._call("DELETE", f"{_m(name)}/-/aliases", params={"alias": alias})

    def get_document(self, ref: ModelRef, kind: str) -> dict[str, Any]:
        validate_ref(ref, self.stages)
        return dict(self._call("GET", f"{API}/documents", params={"uri": str(ref), "kind": kind}))

    def set_card(self, name: str, version: int, card: Mapping[str, Any], *, replace: bool = False) -> dict[str, Any]:
        if not isinstance(replace, bool):  # as embedded: pydantic would say it in its own words
            raise InvalidInput(f"'replace' must be true or false, got {replace!r}")
        if not isinstance(card, Mapping):
            raise InvalidInput("'card' must be a mapping of card fields")
        # PUT replaces the card; PATCH merges into it (a null field removes it).
        method = "PUT" if replace else "PATCH"
        return dict(self._call(method, f"{_v(name, version)}/card", json={"card": dict(card)}))

    def history(self, name: str, version: int | None = None) -> list[ModelEvent]:
        params = {"version": version} if version is not None else {}
        return [ModelEvent.model_validate(e) for e in self._call("GET", f"{_m(name)}/-/history", params=params)]

    # -- deployments ----------------------------------------------------------------

    def start_deployment(
        self,
        name: str,
        version: int,
        kind: str,
        target: str,
        *,
        status: str | None = None,
        message: str = "",
        log_location: str | None = None,
    ) -> Deployment:
        body = {"name": name, "version": version, "kind": kind, "target": target, "message": _text(message)}
        if status is not None:
            body["status"] = status
        if log_location is not None:
            body["log_location"] = log_location
        return Deployment.model_validate(self._call("POST", f"{API}/deployments", json=body))

    def update_deployment(
        self,
        deployment_id: int,
        *,
        status: str | None = None,
        version: int | None = None,
        message: str | None = None,
        rows: int | None = None,
        duration_s: float | None = None,
    ) -> Deployment:
        validate_id(deployment_id, "deployment_id")
        given = {"status": status, "version": version, "message": message, "rows": rows, "duration_s": duration_s}
        body = {k: v for k, v in given.items() if v is not None}
        return Deployment.model_validate(self._call("PATCH", f"{API}/deployments/{deployment_id}", json=body))

    def get_deployment(self, deployment_id: int) -> Deployment:
        validate_id(deployment_id, "deployment_id")
        return Deployment.model_validate(self._call("GET", f"{API}/deployments/{deployment_id}"))

    def list_deployments(
        self, name: str | None = None, version: int | None = None, *, active: bool = False
    ) -> list[Deployment]:
        if not isinstance(active, bool):  # as embedded: the query string would read any text as true
            raise InvalidInput(f"'active' must be true or false, got {active!r}")
        params: dict[str, Any] = {"active": "true" if active else "false"}
        if name is not None:
            params["model"] = name
        if version is not None:
            params["version"] = version
        found = self._call("GET", f"{API}/deployments", params=params)["deployments"]
        return [Deployment.model_validate(d) for d in found]

    # -- evaluations ----------------------------------------------------------------

    def record_evaluation(
        self,
        name: str,
        version: int,
        *,
        kind: str,
        key: str,
        data_digest: str,
        source: str,
        rows: int,
        body: dict[str, Any],
        data_tags: list[str] | None = None,
    ) -> Evaluation:
        payload = {"kind": kind, "key": key, "data_digest": data_digest, "source": source, "rows": rows}
        payload |= {"body": body, "data_tags": list(data_tags or [])}
        return Evaluation.model_validate(self._call("POST", f"{_v(name, version)}/evaluations", json=payload))

    def get_evaluation(self, evaluation_id: int) -> Evaluation:
        validate_id(evaluation_id, "evaluation_id")
        return Evaluation.model_validate(self._call("GET", f"{API}/evaluations/{evaluation_id}"))

    def list_evaluations(
        self,
        name: str,
        version: int | None = None,
        *,
        kind: str | None = None,
        key: str | None = None,
        max_results: int = 100,
    ) -> list[Evaluation]:
        given = {"version": version, "kind": kind, "key": key, "max_results": max_results}
        params = {k: v for k, v in given.items() if v is not None}
        found = self._call("GET", f"{_m(name)}/-/evaluations", params=params)["evaluations"]
        return [Evaluation.model_validate(e) for e in found]

    # -- blobs ----------------------------------------------------------------------

    def missing_blobs(self, digests: Sequence[str]) -> list[str]:
        return list(self._call("POST", f"{API}/blobs/missing", json={"digests": list(digests)})["missing"])

    def put_blob(self, digest: str, size: int, chunks: Iterable[bytes]) -> None:
        check_digest(digest)
        headers = {"Content-Length": str(size), "Content-Type": "application/octet-stream"}
        self._call("PUT", f"{API}/blobs/{digest}", content=chunks, headers=headers)

    def read_blob(self, digest: str) -> Iterator[bytes]:
        check_digest(digest)
        try:
            with self.http.stream("GET", f"{API}/blobs/{digest}") as response:
                if not response.is_success:
                    response.read()
                    self._raise_for(response)
                yield from read_ahead(response.iter_bytes(), self.settings.chunk_size)
        except httpx.TransportError as exc:
            raise ServiceUnavailable(f"download of blob {digest} broke off: {exc}") from None

    def gc(self, *, apply: bool = False, grace_seconds: float = 3600.0) -> GcReport:
        body = {"apply": apply, "grace_seconds": grace_seconds}
        return GcReport.model_validate(self._call("POST", f"{API}/admin/gc", json=body))

    def fsck(self, *, after: str | None = None, limit: int = 10) -> FsckReport:
        if after is not None:
            validate_model_name(after, "after")
        # The server answers once the whole batch is re-hashed: wait longer than for other calls.
        timeout = httpx.Timeout(max(self.settings.http_timeout, FSCK_TIMEOUT), connect=10.0)
        body = {"after": after, "limit": limit}
        return FsckReport.model_validate(self._call("POST", f"{API}/admin/fsck", json=body, timeout=timeout))


def _text(value: str | None) -> str | None:
    """None reads as empty text, as the service reads it (``validate_text``)."""
    return "" if value is None else value


def _page_params(
    filter: str | None, order_by: Sequence[str] | None, max_results: int, page_token: str | None
) -> dict[str, Any]:
    params: dict[str, Any] = {"max_results": max_results}
    if filter is not None and not isinstance(filter, str):
        raise InvalidInput(f"invalid filter: must be a string, got {type(filter).__name__}")
    if filter:
        params["filter"] = check_encodable(filter, "filter")
    if order_by:
        params["order_by"] = list(order_by)
    if page_token:
        params["page_token"] = page_token
    return params


__all__ = ["CovexError", "HttpBackend"]
