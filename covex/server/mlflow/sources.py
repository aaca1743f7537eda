"""Model sources as MLflow's clients send them: checked like MLflow's server does, and copied from the
team's MLflow server (``COVEX_MLFLOW_TRACKING_URI``) when Covex does not hold them itself.

Copying goes through the MLflow server's REST API and its artifact proxy (``mlflow server`` serves
artifacts by default): ``models:/m-<id>`` through the logged model, ``runs:/<run>/<path>`` through the run,
``mlflow-artifacts:/<path>`` directly.
"""

from __future__ import annotations

import posixpath
import re
import time
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import httpx

from covex.domain.errors import InvalidInput, InvalidState, NotFound
from covex.domain.uris import is_logged_model_uri
from covex.service.sources import CopiedModel, Fetch
from covex.settings import Settings

_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.\-]*):")
_ARTIFACTS = "/api/2.0/mlflow-artifacts/artifacts"
MAX_FILES = 10_000
MAX_DEPTH = 64


def check_source(source: str) -> str:
    """``source`` if MLflow's server would take it: a URI, never a local path or one climbing out with ``..``."""
    if "\x00" in source:
        raise InvalidInput("Invalid model version source: it must not contain NUL characters.")
    decoded = source
    for _ in range(3):  # %252E%252E is .. too
        decoded = unquote(decoded)
    if ".." in re.split(r"[/\\]", decoded):
        raise InvalidInput(f"Invalid model version source: {source!r}. It must not contain '..' path segments.")
    scheme = _SCHEME.match(source)
    # A file: anywhere (jar:file:///x!/) is a local path too.
    if scheme is None or len(scheme.group(1)) == 1 or "file:" in decoded.lower():
        raise InvalidInput(
            f"Invalid model version source: {source!r}. Local paths are not allowed: give a URI Covex can reach "
            "(models:/, runs:/, mlflow-artifacts:/, s3://, ...)."
        )
    return source


def copy_from_mlflow(settings: Settings) -> Fetch | None:
    """The fetcher for the team's MLflow server, or None when none is configured."""
    if not settings.mlflow_tracking_uri:
        return None
    base = settings.mlflow_tracking_uri.rstrip("/")
    headers = {"Authorization": f"Bearer {settings.mlflow_tracking_token}"} if settings.mlflow_tracking_token else {}
    limit = settings.max_blob_bytes

    def fetch(source: str, folder: Path) -> CopiedModel | None:
        deadline = time.monotonic() + settings.http_timeout  # for the whole copy, not per read
        try:
            with httpx.Client(base_url=base, headers=headers, timeout=settings.http_timeout) as http:
                return _copy(http, source, folder, limit, deadline)
        except httpx.HTTPError as exc:
            # Not a 503: MLflow's client retries those for minutes and then shows none of this message.
            raise InvalidState(f"could not copy {source!r} from the MLflow server {base}: {exc}") from None

    return fetch


def _get(http: httpx.Client, path: str, params: dict[str, str]) -> dict[str, Any]:
    response = http.get(path, params=params)
    if response.status_code == 404:
        raise NotFound(f"the MLflow server has no {params}: {response.text[:200]}")
    if response.status_code >= 400:
        raise InvalidInput(f"the MLflow server refused {path}: {response.status_code} {response.text[:200]}")
    body: dict[str, Any] = response.json()
    return body


def _copy(http: httpx.Client, source: str, folder: Path, limit: int, deadline: float) -> CopiedModel | None:
    run: dict[str, Any] = {}
    if is_logged_model_uri(source):
        model = _get(http, f"/api/2.0/mlflow/logged-models/{source.removeprefix('models:/')}", {})["model"]
        location = model["info"]["artifact_uri"]
        if model["info"].get("source_run_id"):
            run = _get(http, "/api/2.0/mlflow/runs/get", {"run_id": model["info"]["source_run_id"]})["run"]
    elif source.startswith("runs:/"):
        run_id, _, path = source.removeprefix("runs:/").partition("/")
        run = _get(http, "/api/2.0/mlflow/runs/get", {"run_id": run_id})["run"]
        location = posixpath.join(run["info"]["artifact_uri"], path)
    elif source.startswith("mlflow-artifacts:"):
        location = source
    else:
        return None
    if not location.startswith("mlflow-artifacts:"):
        raise InvalidInput(
            f"the MLflow server keeps {source!r} at {location!r}, which it does not serve: Covex copies models "
            "through the server's artifact proxy (mlflow server with --serve-artifacts, its default)"
        )
    root = re.sub(r"^mlflow-artifacts:(//[^/]*)?/", "", location).strip("/")
    _download_tree(http, root, folder, limit, deadline)
    if not (folder / "MLmodel").is_file():
        raise InvalidInput(f"{source!r} holds no MLflow model (no MLmodel file at {location!r})")
    data, info = run.get("data", {}), run.get("info", {})
    base = str(http.base_url).rstrip("/")
    link = f"{base}/#/experiments/{info['experiment_id']}/runs/{info['run_id']}" if info else ""
    return CopiedModel(
        run_id=info.get("run_id", ""),
        run_link=link,
        metrics={m["key"]: float(m["value"]) for m in data.get("metrics", [])},
        params={p["key"]: str(p["value"]) for p in data.get("params", [])},
    )


def _download_tree(http: httpx.Client, root: str, folder: Path, limit: int, deadline: float) -> None:
    pending, count, listed_dirs = [""], 0, 0
    while pending:
        relative = pending.pop()
        listed_dirs += 1
        if listed_dirs > MAX_FILES or relative.count("/") >= MAX_DEPTH:
            raise InvalidInput(f"the model's folders nest deeper than {MAX_DEPTH} or number more than {MAX_FILES}")
        if time.monotonic() > deadline:
            raise InvalidState(f"copying the model took longer than COVEX_HTTP_TIMEOUT; {count} files were copied")
        listed = _get(http, _ARTIFACTS, {"path": posixpath.join(root, relative) if relative else root})
        for entry in listed.get("files", []):
            name = posixpath.join(relative, posixpath.basename(entry["path"]))
            if ".." in name.split("/") or name.startswith("/"):
                raise InvalidInput(f"the MLflow server listed an unsafe path {name!r}")
            if entry.get("is_dir"):
                pending.append(name)
                continue
            count += 1
            if count > MAX_FILES:
                raise InvalidInput(f"the model holds more than {MAX_FILES} files")
            target = folder / name
            target.parent.mkdir(parents=True, exist_ok=True)
            with http.stream("GET", f"{_ARTIFACTS}/{posixpath.join(root, name)}") as response:
                if response.status_code >= 400:
                    raise InvalidInput(f"the MLflow server refused to send {name!r}: {response.status_code}")
                written = 0
                with target.open("wb") as out:
                    for chunk in response.iter_bytes(1024 * 1024):
                        written += len(chunk)
                        if written > limit:
                            raise InvalidInput(f"{name!r} is larger than COVEX_MAX_BLOB_BYTES ({limit})")
                        out.write(chunk)
