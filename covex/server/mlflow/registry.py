"""MLflow's model-registry API (``/api/2.0/mlflow/registered-models/*``, ``model-versions/*``) over Covex.

Each route reads MLflow's message, calls one service method and answers in MLflow's shape. The same
routes answer under ``/api/2.0/preview/mlflow/``, which MLflow's clients still call for some requests.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any
from urllib.parse import quote

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

from covex.domain.entities import Model, ModelVersion, NewVersion, Page
from covex.domain.errors import AlreadyExists, InvalidInput, NotFound, PermissionDenied
from covex.domain.filters import MAX_ORDER_BY
from covex.domain.policy import TransitionRequest
from covex.domain.uris import ModelRef, is_logged_model_uri, is_model_uri, parse_model_uri
from covex.server.mlflow import shapes
from covex.server.mlflow.messages import Fields, Message
from covex.server.mlflow.sources import check_source, copy_from_mlflow
from covex.server.routes import Service, read
from covex.service import RegistryService

router = APIRouter(include_in_schema=False)
PREFIXES = ("/api/2.0/mlflow", "/api/2.0/preview/mlflow")
# MLflow's limits on one page of a search.
MAX_MODELS_PAGE = 1_000
MAX_VERSIONS_PAGE = 200_000
DOWNLOADS = "/api/2.0/mlflow-artifacts/artifacts/registry"
MAX_COPIES = 10  # copies of copies followed by get-download-uri


def _routes(path: str, methods: list[str]) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    def register(endpoint: Callable[..., Any]) -> Callable[..., Any]:
        for prefix in PREFIXES:
            router.add_api_route(prefix + path, endpoint, methods=methods)
        return endpoint

    return register


def _answer(body: dict[str, Any]) -> Response:
    return JSONResponse(body)


def _stages(request: Request) -> shapes.StageMap:
    return request.app.state.mlflow_stages  # type: ignore[no-any-return]


def _version_number(msg: Message) -> int:
    text = msg.text("version")
    if not text.isdigit() or len(text) > 18:
        raise InvalidInput(f"Parameter 'version' must be an integer, got {text!r}.")
    return int(text)


def _latest(svc: RegistryService, models: list[Model]) -> dict[str, list[ModelVersion]]:
    return svc.latest_versions([m.name for m in models]) if models else {}


def _search(msg: Message, kind: str, default: int, most: int) -> tuple[str | None, list[str], int, str | None]:
    """A search's filter, order, page size and page token in Covex's terms (a page holds at most 10,000)."""
    max_results = msg.integer("max_results", default)
    if not 1 <= max_results <= most:
        raise InvalidInput(
            f"Invalid value for request parameter max_results. It must be at most {most}, but got value {max_results}"
        )
    order = translate_order(msg.strings("order_by"), kind)
    return translate_filter(msg.optional("filter")), order, min(max_results, 10_000), msg.optional("page_token")


# -- registered models --------------------------------------------------------------------


@_routes("/registered-models/create", ["POST"])
def create_registered_model(request: Request, msg: Fields, svc: Service) -> Response:
    model = svc.create_model(msg.text("name"), msg.text("description", ""), msg.tags())
    return _answer({"registered_model": shapes.registered_model(model, [], _stages(request))})


@_routes("/registered-models/get", ["GET"])
async def get_registered_model(request: Request, msg: Fields, svc: Service) -> Response:
    name = msg.text("name")
    model = await read(svc, svc.get_model, name)
    latest = await read(svc, svc.latest_versions, [name])
    return _answer({"registered_model": shapes.registered_model(model, latest.get(name, []), _stages(request))})


@_routes("/registered-models/rename", ["POST"])
def rename_registered_model(request: Request, msg: Fields, svc: Service) -> Response:
    model = svc.rename_model(msg.text("name"), msg.text("new_name"))
    latest = svc.latest_versions([model.name])
    return _answer({"registered_model": shapes.registered_model(model, latest.get(model.name, []), _stages(request))})


@_routes("/registered-models/update", ["PATCH"])
def update_registered_model(request: Request, msg: Fields, svc: Service) -> Response:
    model = svc.update_model(msg.text("name"), description=msg.text("description", ""))
    latest = svc.latest_versions([model.name])
    return _answer({"registered_model": shapes.registered_model(model, latest.get(model.name, []), _stages(request))})


@_routes("/registered-models/delete", ["DELETE"])
def delete_registered_model(msg: Fields, svc: Service) -> Response:
    svc.delete_model(msg.text("name"))
    return _answer({})


@_routes("/registered-models/search", ["GET"])
async def search_registered_models(request: Request, msg: Fields, svc: Service) -> Response:
    page: Page[Model] = await read(svc, svc.search_models, *_search(msg, "model", 100, MAX_MODELS_PAGE))
    latest = await read(svc, _latest, svc, page.items)
    stages = _stages(request)
    body: dict[str, Any] = {
        "registered_models": [shapes.registered_model(m, latest.get(m.name, []), stages) for m in page.items]
    }
    if page.next_page_token:
        body["next_page_token"] = page.next_page_token
    return _answer(body)


@_routes("/registered-models/get-latest-versions", ["POST", "GET"])
async def get_latest_versions(request: Request, msg: Fields, svc: Service) -> Response:
    name = msg.text("name")
    stages = _stages(request)
    wanted = [stages.covex(s) for s in msg.strings("stages")] or None
    latest = await read(svc, svc.latest_versions, [name], wanted)
    return _answer({"model_versions": [shapes.model_version(v, stages) for v in latest.get(name, [])]})


@_routes("/registered-models/set-tag", ["POST"])
def set_registered_model_tag(msg: Fields, svc: Service) -> Response:
    svc.set_model_tag(msg.text("name"), msg.text("key"), msg.text("value", ""))
    return _answer({})


@_routes("/registered-models/delete-tag", ["DELETE"])
def delete_registered_model_tag(msg: Fields, svc: Service) -> Response:
    svc.delete_model_tag(msg.text("name"), msg.text("key"))
    return _answer({})


@_routes("/registered-models/alias", ["POST"])
def set_registered_model_alias(msg: Fields, svc: Service) -> Response:
    svc.set_alias(msg.text("name"), msg.text("alias"), _version_number(msg))
    return _answer({})


@_routes("/registered-models/alias", ["DELETE"])
def delete_registered_model_alias(msg: Fields, svc: Service) -> Response:
    """Delete an alias; one the model does not have is already gone, which MLflow answers as done."""
    name = msg.text("name")
    try:
        svc.delete_alias(name, msg.text("alias"))
    except NotFound:
        svc.get_model(name)  # an unknown model is still RESOURCE_DOES_NOT_EXIST
    return _answer({})


@_routes("/registered-models/alias", ["GET"])
async def get_model_version_by_alias(request: Request, msg: Fields, svc: Service) -> Response:
    """The version an alias names; ``latest`` is the newest version, as in MLflow."""
    name, alias = msg.text("name"), msg.text("alias")
    if alias.lower() == "latest":
        version = await read(svc, svc.get_version, ModelRef(name, "latest"))
    else:
        try:
            version = await read(svc, svc.get_version, ModelRef(name, "alias", alias))
        except NotFound:
            await read(svc, svc.get_model, name)  # an unknown model is RESOURCE_DOES_NOT_EXIST; an unknown
            raise InvalidInput(f"Registered model alias {alias} not found.") from None  # alias, as MLflow says
    return _answer({"model_version": shapes.model_version(version, _stages(request))})


# -- model versions -----------------------------------------------------------------------


@_routes("/model-versions/create", ["POST"])
def create_model_version(request: Request, msg: Fields, svc: Service) -> Response:
    """Register a version. A source Covex holds (its own tracking store) or can fetch (the team's MLflow
    server, ``COVEX_MLFLOW_TRACKING_URI``) is copied in, verified and content-addressed; any other is
    recorded as a pointer, as MLflow does."""
    name = msg.text("name")
    source = check_source(msg.text("source"))
    new = NewVersion(
        source=source,
        run_id=msg.text("run_id", ""),
        run_link=msg.text("run_link", ""),
        description=msg.text("description", ""),
        tags=msg.tags(),
    )
    settings = request.app.state.mlflow_settings
    version = svc.register_source(name, new, fetch=copy_from_mlflow(settings))
    return _answer({"model_version": shapes.model_version(version, _stages(request))})


@_routes("/model-versions/get", ["GET"])
async def get_model_version(request: Request, msg: Fields, svc: Service) -> Response:
    ref = ModelRef(msg.text("name"), "version", str(_version_number(msg)))
    version = await read(svc, svc.get_version, ref)
    return _answer({"model_version": shapes.model_version(version, _stages(request))})


@_routes("/model-versions/update", ["PATCH"])
def update_model_version(request: Request, msg: Fields, svc: Service) -> Response:
    version = svc.update_version(msg.text("name"), _version_number(msg), description=msg.text("description", ""))
    return _answer({"model_version": shapes.model_version(version, _stages(request))})


@_routes("/model-versions/delete", ["DELETE"])
def delete_model_version(msg: Fields, svc: Service) -> Response:
    svc.delete_version(msg.text("name"), _version_number(msg))
    return _answer({})


@_routes("/model-versions/search", ["GET"])
async def search_model_versions(request: Request, msg: Fields, svc: Service) -> Response:
    page: Page[ModelVersion] = await read(svc, svc.search_versions, *_search(msg, "version", 10_000, MAX_VERSIONS_PAGE))
    stages = _stages(request)
    body: dict[str, Any] = {"model_versions": [shapes.model_version(v, stages) for v in page.items]}
    if page.next_page_token:
        body["next_page_token"] = page.next_page_token
    return _answer(body)


@_routes("/model-versions/set-tag", ["POST"])
def set_model_version_tag(msg: Fields, svc: Service) -> Response:
    svc.set_version_tag(msg.text("name"), _version_number(msg), msg.text("key"), msg.text("value", ""))
    return _answer({})


@_routes("/model-versions/delete-tag", ["DELETE"])
def delete_model_version_tag(msg: Fields, svc: Service) -> Response:
    svc.delete_version_tag(msg.text("name"), _version_number(msg), msg.text("key"))
    return _answer({})


@_routes("/model-versions/transition-stage", ["POST"])
def transition_model_version_stage(request: Request, msg: Fields, svc: Service) -> Response:
    """Move a version between stages. Into a stage a policy protects, it is refused with the request to open;
    with ``COVEX_MLFLOW_OPEN_REQUESTS`` the request is opened (and the answer still says it is not done)."""
    name, number = msg.text("name"), _version_number(msg)
    stage = _stages(request).covex(msg.text("stage"))
    archive = msg.flag("archive_existing_versions")
    if request.app.state.mlflow_settings.mlflow_open_requests:
        try:
            moved = svc.approvals.move_or_request(name, number, stage, archive_existing=archive, comment="from MLflow")
        except AlreadyExists as exc:  # opened meanwhile by another call
            raise PermissionDenied(f"stage {stage!r} is protected by a policy: {exc.message}") from None
        if isinstance(moved, TransitionRequest):
            raise PermissionDenied(
                f"stage {stage!r} is protected by a policy: request #{moved.id} to move version {number} of "
                f"{name!r} there is {moved.status} (covex requests show {moved.id})"
            )
        version = moved
    else:
        version = svc.transition_stage(name, number, stage, archive_existing=archive)
    return _answer({"model_version": shapes.model_version(version, _stages(request))})


@_routes("/model-versions/get-download-uri", ["GET"])
async def get_model_version_download_uri(request: Request, msg: Fields, svc: Service) -> Response:
    """Where MLflow's client downloads the version's files: Covex's artifact endpoint, which checks digests;
    a version that only points elsewhere answers its source."""
    name, number = msg.text("name"), _version_number(msg)
    version = await read(svc, svc.get_version, ModelRef(name, "version", str(number)))
    for _ in range(MAX_COPIES):  # a copy of a version that only points elsewhere points there too
        if version.manifest_digest or not is_model_uri(version.source) or is_logged_model_uri(version.source):
            break
        try:
            version = await read(svc, svc.get_version, parse_model_uri(version.source))
        except (InvalidInput, NotFound):
            break
    if not version.manifest_digest:
        return _answer({"artifact_uri": version.source})
    base = str(request.base_url).rstrip("/")
    return _answer({"artifact_uri": f"{base}{DOWNLOADS}/{quote(version.name)}/-/{version.version}"})


# -- MLflow's filters in Covex's language -------------------------------------------------

# The same language but for a few names: MLflow's attribute names and its ``tag.`` short form.
_RENAMED = {"version_number": "version", "source_path": "source", "tag": "tags", "timestamp": "last_updated_timestamp"}
# MLflow's clients add this clause to leave prompts out of model searches; Covex keeps no prompts, and in its
# language a tag comparison holds only where the tag is set, so the clause would leave every model out.
# It is taken off as a whole filter or as the first or last term of an AND (with ``OR`` it stays: it is the
# caller's own), never out of a string literal: the clause ends the text, or is followed by ``AND``.
_PROMPT_CLAUSE = r"""tags?\.`mlflow\.prompt\.is_prompt`\s*!=\s*(?:'true'|"true")"""
_NOT_PROMPTS = re.compile(
    rf"^\s*{_PROMPT_CLAUSE}\s*$|\s*\bAND\s+{_PROMPT_CLAUSE}\s*$|^\s*{_PROMPT_CLAUSE}\s+AND\b\s*", re.IGNORECASE
)
_QUOTED_OR_WORD = re.compile(r"""('(?:[^'\\]|\\.|'')*'|"(?:[^"\\]|\\.|"")*"|`[^`]*`)|([A-Za-z_][A-Za-z0-9_]*)""")


def _rename(text: str) -> str:
    out: list[str] = []
    pos = 0
    for m in _QUOTED_OR_WORD.finditer(text):
        out.append(text[pos : m.start()])
        word = m.group(2)
        at_field = word is not None and (m.start() == 0 or text[m.start() - 1] not in ".`")
        if at_field and word in _RENAMED and (word != "tag" or text[m.end() : m.end() + 1] == "."):
            out.append(_RENAMED[word])
        else:
            out.append(m.group(0))
        pos = m.end()
    out.append(text[pos:])
    return "".join(out)


def translate_filter(text: str | None) -> str | None:
    """An MLflow search filter in Covex's filter language (which errors name, as MLflow's do)."""
    text = _NOT_PROMPTS.sub("", text or "", count=1)
    return _rename(text) if text.strip() else None


# MLflow's orders: versions newest-updated first by default; ties broken by name, then the newest version.
_DEFAULT_ORDER = {"model": ["name ASC"], "version": ["last_updated_timestamp DESC", "name ASC", "version DESC"]}
_TIE_BREAKERS = {"model": ["name ASC"], "version": ["name ASC", "version DESC"]}


def translate_order(clauses: list[str], kind: str) -> list[str]:
    """MLflow's ``order_by`` in Covex's names, with MLflow's default order and tie-breakers."""
    if not clauses:
        return list(_DEFAULT_ORDER[kind])
    renamed = [_rename(c) for c in clauses]
    named = [c.strip().split(None, 1)[0].strip("`").lower() for c in renamed if isinstance(c, str) and c.strip()]
    if len(set(named)) < len(named):  # as MLflow's server: a field sorted twice is a mistake, not the last word
        raise InvalidInput(f"`order_by` contains duplicate fields: {clauses}")
    # Tie-breakers fill what room Covex's limit on clauses leaves: the caller's own clauses never exceed it.
    room = max(0, MAX_ORDER_BY - len(renamed))
    return renamed + [t for t in _TIE_BREAKERS[kind] if t.split()[0] not in set(named)][:room]
