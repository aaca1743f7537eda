"""Browsing the registry: the models list, a model, a version and its files.

Each page reads through the service as the viewer; lists are capped (the newest first) so a model
with thousands of versions, moves or checks renders in bounded time. Charts are drawn by the
``chart.html`` macros from the series prepared here.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

from fastapi import APIRouter, Request
from fastapi.responses import Response, StreamingResponse
from markupsafe import Markup

from covex.domain.cards import CARD_FIELDS, render_card
from covex.domain.entities import Model, ModelVersion, Page
from covex.domain.errors import InvalidInput, NotFound
from covex.domain.evaluations import Evaluation, importances, summary
from covex.domain.monitoring import MonitorResult
from covex.domain.scans import ScanReport, rank
from covex.domain.tracking import check_path
from covex.domain.uris import ModelRef
from covex.service import RegistryService
from covex.service.tracking_artifacts import verified
from covex.ui.session import Viewer
from covex.ui.web import PAGE_SIZE, page, render, templates

router = APIRouter(include_in_schema=False)
ORDERS = ("name ASC", "name DESC", "last_updated_timestamp DESC", "creation_timestamp DESC")
TIMELINE = 100  # stage and alias moves shown on a model page, newest first
LISTED = 50  # deployments, checks and evaluations shown on a page, newest first
LISTED_FILES = 500  # files listed on a version page (a download fetches them all)
CHARTED = 30  # checks drawn in a monitoring chart
FEATURES = 20  # bars in a drift or importance chart
SHOWN_DISTRIBUTIONS = 3  # drifting features whose distributions are drawn
CARD_CHECKS = 5  # monitoring results the card lists, as ``covex card`` does
_UNSAFE_NAME = re.compile(r"[^A-Za-z0-9._-]")
_HEADING = re.compile(r"<(/?)h([1-6])>")


@router.get("/")
@page
def models(request: Request, svc: Viewer, filter: str = "", order: str = "name ASC", page_token: str = "") -> Response:
    if order not in ORDERS:
        raise InvalidInput(f"'order' must be one of: {', '.join(ORDERS)}")
    context: dict[str, Any] = {"filter": filter, "order": order, "orders": ORDERS}
    try:
        found = svc.search_models(filter or None, [order], PAGE_SIZE, page_token or None)
    except InvalidInput as exc:  # a filter to correct: the page with its search box, saying what is wrong
        return render(request, "models.html", svc, 400, models=Page[Model](items=[]), problem=exc.message, **context)
    context["stages"] = svc.stages_of([m.name for m in found.items])
    return render(request, "models.html", svc, models=found, **context)


@router.get("/models/{name:path}/-/versions/{number}/files/{path:path}")
@page
def download(request: Request, name: str, number: str, path: str, svc: Viewer) -> Response:
    """One file of a READY version, streamed with the viewer's rights and cut short if it does not match its digest."""
    inner = check_path(path, allow_empty=False)
    found, files = svc.list_files(ModelRef(name, "version", str(_number(number))))
    entry = next((f for f in files if f.path == inner), None)
    if entry is None:
        raise NotFound(f"version {found.version} of {found.name!r} has no file {inner!r}")
    # read_blob takes a READY version holding the blob: listing a digest in a pending version proves nothing.
    content = verified(entry, svc.read_blob(entry.digest), f"{found.uri}/{inner}")
    headers = {
        "Content-Length": str(entry.size),
        "Content-Disposition": _attachment(inner.rsplit("/", 1)[-1]),
        "X-Content-Type-Options": "nosniff",
        "Cache-Control": "no-store",
    }
    return StreamingResponse(content, media_type="application/octet-stream", headers=headers)


@router.get("/models/{name:path}/-/versions/{number}")
@page
def version(request: Request, name: str, number: str, svc: Viewer) -> Response:
    ref = ModelRef(name, "version", str(_number(number)))
    found, files = svc.list_files(ref)
    docs = {kind: _document(svc, ref, kind) for kind in ("card", "signature", "lineage")}
    history = svc.history(name, found.version)
    deployed = svc.list_deployments(name, found.version)
    checks = svc.monitoring.list_results(name, found.version, max_results=LISTED)
    evaluated = svc.list_evaluations(name, found.version, max_results=LISTED)
    explained = [e for e in evaluated if e.kind == "explanation"]
    scan = svc.trust.latest_scan(name, found.version)
    context: dict[str, Any] = {
        "scan": scan,
        "findings": sorted(scan.findings, key=lambda f: -rank(f["severity"]))[:LISTED] if scan else [],
        "statements": [s.content for s in svc.trust.list_statements(name, found.version)],
        "files": files,
        "listed": LISTED,
        "listed_files": LISTED_FILES,
        "history": history,
        "role": svc.role_on(name),
        "comments": svc.approvals.list_comments(name, found.version),
        "stages": svc.stages,
        "card": docs["card"] or {},  # the fields as written, for the card form
        "open_requests": svc.approvals.list_requests(name, "OPEN", version=found.version, max_results=10),
        "card_shown": _card_fields(docs["card"] or {}),
        "description": _markdown(found.description, 2),
        "card_markdown": _card_html(found, docs, history, deployed, checks, evaluated, scan),
        "signature": _signature(docs["signature"]),
        "lineage": docs["lineage"],
        "parent": _version_link(docs["lineage"]),
        "deployments": deployed[:LISTED],
        "checks": checks,
        "monitoring": _monitoring_charts(checks),
        "evaluations": [(e, summary(e.kind, e.body)) for e in evaluated if e.kind != "explanation"],
        "explanation": explained[0] if explained else None,
        "importance": _importance_chart(explained[0]) if explained else None,
    }
    return render(request, "version.html", svc, v=found, **context)


@router.get("/models/{name:path}")
@page
def model(request: Request, name: str, svc: Viewer, page_token: str = "") -> Response:
    found = svc.get_model(name)
    versions = svc.search_versions(None, ["version DESC"], PAGE_SIZE, page_token or None, model=name)
    timeline, moves = svc.recent_history(name, TIMELINE)
    deployed = svc.list_deployments(name)
    context: dict[str, Any] = {
        "versions": versions,
        "description": _markdown(found.description, 2),
        "stages": svc.stages,
        "role": svc.role_on(name),
        "timeline": timeline,
        "moves": moves,
        "policies": svc.approvals.applicable_policies(name),
        "deployments": deployed[:LISTED],
        "deployed": len(deployed),
    }
    return render(request, "model.html", svc, m=found, **context)


def _number(text: str) -> int:
    if not (text.isascii() and text.isdigit()) or len(text) > 18:
        raise InvalidInput(f"version {text[:40]!r} is not a number")
    return int(text)


def _attachment(filename: str) -> str:
    """A download's Content-Disposition: an ASCII name any browser accepts, and the exact name in UTF-8."""
    plain = _UNSAFE_NAME.sub("_", filename).strip(".") or "file"
    return f"attachment; filename=\"{plain}\"; filename*=UTF-8''{quote(filename, safe='')}"


def _document(svc: RegistryService, ref: ModelRef, kind: str) -> dict[str, Any] | None:
    try:
        return svc.get_document(ref, kind)
    except NotFound:
        return None


def _card_html(
    found: ModelVersion,
    docs: dict[str, dict[str, Any] | None],
    history: list[Any],
    deployed: list[Any],
    checks: list[MonitorResult],
    evaluated: list[Evaluation],
    scan: ScanReport | None,
) -> Markup:
    """The card ``covex card`` prints, as HTML with its headings below the page's own."""
    latest: dict[str, dict[str, Any]] = {}
    for e in evaluated:  # the newest of each key: a comparison asked again is one entry
        latest.setdefault(e.key, e.model_dump())
    text = render_card(
        found,
        docs["card"] or {},
        signature=docs["signature"],
        lineage=docs["lineage"],
        history=[e.model_dump() for e in history],
        deployments=[d.model_dump() for d in deployed[:LISTED]],
        monitoring=[r.model_dump() for r in checks[:CARD_CHECKS]],
        evaluations=list(latest.values())[:CARD_CHECKS],
        scan=scan,
    )
    # The card's facts table has no header row of its own: name its columns for screen readers.
    html = str(_markdown(text, 3)).replace("<th></th>\n<th></th>", "<th>Fact</th>\n<th>Value</th>", 1)
    return Markup(html)  # the markdown filter's HTML, the author's own escaped


def _markdown(text: str, top: int) -> Markup:
    """Markdown as HTML (the ``markdown`` filter: raw HTML escaped), its headings from ``<h{top}>`` down,
    so an author's ``# Title`` stays below the page's own headings."""
    html = str(templates.filters["markdown"](text))
    return Markup(_HEADING.sub(lambda m: f"<{m.group(1)}h{min(int(m.group(2)) + top - 1, 6)}>", html))


def _card_fields(card: dict[str, Any]) -> list[tuple[str, Markup]]:
    """The author's card fields in the card's order, each as Markdown below the field's own heading."""
    shown = []
    for key, title in CARD_FIELDS.items():
        value = card.get(key)
        if value:
            shown.append((title, _markdown(", ".join(value) if isinstance(value, list) else str(value), 4)))
    return shown


def _signature(doc: dict[str, Any] | None) -> dict[str, list[dict[str, str]]] | None:
    """The signature's input and output columns as (name, type, required) text, MLflow's JSON text read too."""
    if doc is None:
        return None
    out: dict[str, list[dict[str, str]]] = {}
    for part in ("inputs", "outputs"):
        cols = doc.get(part)
        if isinstance(cols, str):
            try:
                cols = json.loads(cols)
            except ValueError:
                cols = None
        rows = [c for c in cols if isinstance(c, dict)] if isinstance(cols, list) else []
        out[part] = [
            {"name": str(c.get("name", "")), "type": _type_text(c), "required": str(c.get("required", True)).lower()}
            for c in rows
        ]
    return out


def _type_text(column: dict[str, Any]) -> str:
    spec = column.get("tensor-spec")
    if isinstance(spec, dict):
        return f"tensor {spec.get('dtype', '')} {spec.get('shape', '')}".strip()
    return str(column.get("type", ""))


def _version_link(lineage: dict[str, Any] | None) -> str | None:
    """The page of the version a lineage names as its parent (``models:/name/3``), when it names one."""
    parent = (lineage or {}).get("parent")
    found = re.fullmatch(r"models:/(.+)/(\d+)", parent) if isinstance(parent, str) else None
    return f"/models/{quote(found.group(1), safe='/')}/-/versions/{found.group(2)}" if found else None


def _short_time(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, tz=UTC).strftime("%m-%d %H:%M")


def _number_or_none(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def _line(
    title: str, labels: list[str], series: list[tuple[str, list[float | None]]], floor: float | None = None
) -> dict[str, Any]:
    """A line chart's data: the series over ``labels`` and the range the axis spans."""
    values = [v for _, points in series for v in points if v is not None]
    lo = min([*values, *([] if floor is None else [floor])], default=0.0)
    hi = max(values, default=lo + 1.0)
    if hi == lo:
        hi = lo + (abs(lo) or 1.0)
    return {
        "title": title,
        "labels": labels,
        "series": [{"name": n, "points": p} for n, p in series],
        "lo": lo,
        "hi": hi,
    }


def _monitoring_charts(checks: list[MonitorResult]) -> dict[str, Any]:
    """Charts of a version's checks, oldest to newest: the share of drifting features, each performance
    metric against its registered value, and the latest check's drift statistic per feature."""
    if not checks:
        return {}
    shown = checks[:CHARTED][::-1]
    labels = [_short_time(r.created_at) for r in shown]
    share = [_number_or_none(r.body.get("share_drifted")) for r in shown]
    out: dict[str, Any] = {
        "drift": _line("Share of features drifting, per check", labels, [("share drifting", share)], 0.0)
    }
    names = sorted({n for r in shown for n in ((r.body.get("performance") or {}).get("metrics") or {})})
    performance = []
    for name in names[:6]:
        metrics = [((r.body.get("performance") or {}).get("metrics") or {}).get(name) or {} for r in shown]
        value = [_number_or_none(m.get("value")) for m in metrics]
        registered = [_number_or_none(m.get("registered")) for m in metrics]
        performance.append(_line(f"{name} per check", labels, [(name, value), (f"{name} registered", registered)]))
    out["performance"] = performance
    features = [
        (name, column)
        for name, column in (shown[-1].body.get("features") or {}).items()
        if isinstance(column, dict) and _number_or_none(column.get("value")) is not None
    ]
    features.sort(key=lambda item: -float(item[1]["value"]))
    bars = [
        {
            "label": name,
            "value": float(column["value"]),
            "marker": _number_or_none(column.get("drift")),
            "note": f"{column.get('method', '')}, {column.get('verdict', '')}",
            "kind": str(column.get("verdict", "")),
        }
        for name, column in features[:FEATURES]
    ]
    out["distributions"] = [
        chart
        for name, column in features
        if column.get("verdict") in ("drift", "warn")
        for chart in [_distribution(name, column.get("plot"))]
        if chart is not None
    ][:SHOWN_DISTRIBUTIONS]
    if bars:
        top = max(max(b["value"], b["marker"] or 0.0) for b in bars) or 1.0
        out["features"] = {
            "title": "Drift statistic per feature, latest check (tick: drift threshold)",
            "bars": bars,
            "hi": top,
        }
    return out


def _distribution(name: str, plot: Any) -> dict[str, Any] | None:
    """A drifting feature's shares per bin (numbers) or category, in the reference and in the check."""
    if not isinstance(plot, dict):
        return None
    reference, current = plot.get("reference") or [], plot.get("current") or []
    if plot.get("categories"):
        labels, axis = [str(c) for c in plot["categories"]], "Category"
    else:
        bounds = [plot.get("low"), *(plot.get("edges") or []), plot.get("high")]
        if len(bounds) != len(reference) + 1 or not all(isinstance(b, int | float) for b in bounds):
            return None
        labels, axis = [f"{bounds[i]:.3g} to {bounds[i + 1]:.3g}" for i in range(len(reference))], "Values"
    if not reference or len(labels) != len(reference) or len(current) != len(reference):
        return None
    top = max([*reference, *current]) or 1.0
    title = f"{name}: share of rows per {axis.lower().rstrip('s')}, reference and latest check"
    return {"title": title, "labels": labels, "reference": reference, "current": current, "hi": top, "axis": axis}


def _importance_chart(explanation: Evaluation) -> dict[str, Any] | None:
    ranked = importances(explanation.body)[:FEATURES]
    if not ranked:
        return None
    bars = [{"label": n, "value": v, "marker": None, "note": "", "kind": ""} for n, v in ranked]
    title = f"Feature importance (mean |SHAP|, {explanation.body.get('explainer', '?')} explainer)"
    return {"title": title, "bars": bars, "hi": max(v for _, v in ranked) or 1.0}
