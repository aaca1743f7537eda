"""Comparing 2 to 4 versions side by side: metrics, params, signature, lineage, evaluations.

The URL names the versions (``?v=models:/churn/3&v=models:/churn/4``, or ``?model=churn&versions=3,4``),
so a comparison is a link to share. The evaluations shown are those ``covex compare`` stored on the
versions: each metric with its interval, and each challenger's test against the baseline.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response

from covex.domain.entities import ModelVersion
from covex.domain.errors import InvalidInput, NotFound
from covex.domain.evaluations import Evaluation
from covex.domain.monitoring import LOWER_IS_BETTER
from covex.domain.uris import ModelRef, parse_model_uri
from covex.service import RegistryService
from covex.ui.session import Viewer
from covex.ui.web import page, render

router = APIRouter(include_in_schema=False)
FEWEST, MOST = 2, 4
EVALUATIONS = 20  # offline evaluations read per version, newest first
DATA_SETS = 3  # shared evaluation data sets shown
_LOWER = re.compile(r"loss|error|rmse|mse|mae|mape|latency", re.IGNORECASE)


@dataclass
class Picked:
    """One compared version and the documents the comparison reads."""

    version: ModelVersion
    signature: dict[str, Any]
    lineage: dict[str, Any]
    evaluations: list[Evaluation] = field(default_factory=list)


@router.get("/compare")
@page
def compare(
    request: Request,
    svc: Viewer,
    model: str = "",
    versions: str = "",
    v: Annotated[list[str], Query()] = [],  # noqa: B006 - FastAPI copies a default list
) -> Response:
    form = {"model": model, "versions": versions, "uris": v}
    if not (model.strip() or versions.strip() or any(u.strip() for u in v)):
        return render(request, "compare.html", svc, picked=[], form=form)
    try:
        uris = _uris(model, versions, v)
        if not FEWEST <= len(uris) <= MOST:
            named = f"{len(uris)} {'was' if len(uris) == 1 else 'were'} named"
            raise InvalidInput(f"compare {FEWEST} to {MOST} versions; {named}")
        picked = [_pick(svc, uri) for uri in uris]
        _refuse_repeats(picked)
    except (InvalidInput, NotFound) as exc:
        return render(request, "compare.html", svc, status=400, picked=[], form=form, problem=exc.message)
    context: dict[str, Any] = {
        "picked": picked,
        "form": form,
        "metrics": _metrics(picked),
        "params": _rows([p.version.params for p in picked]),
        "signature": _rows([_columns(p.signature) for p in picked]),
        "lineage": _rows([_lineage(p.lineage) for p in picked]),
        "evaluated": _evaluations(picked),
    }
    return render(request, "compare.html", svc, **context)


def _uris(model: str, versions: str, given: list[str]) -> list[str]:
    """The versions named: ``model`` with its ``versions`` (``3, 4, @champion``), then each ``v`` URI."""
    numbers = [n for n in re.split(r"[\s,]+", versions.strip()) if n]
    if numbers and not model.strip():
        raise InvalidInput("'model' is empty: name the model whose versions to compare")
    for n in numbers:
        if not (n.isascii() and (n.isdigit() or n.startswith("@") or n.isalnum())):
            raise InvalidInput(f"'versions': {n[:40]!r} is neither a version number, an @alias nor a stage")
    named = [f"models:/{model.strip()}{n if n.startswith('@') else '/' + n}" for n in numbers]
    return named + [u.strip() for u in given if u.strip()]


def _pick(svc: RegistryService, uri: str) -> Picked:
    found = svc.get_version(parse_model_uri(uri, svc.stages))
    ref = ModelRef(found.name, "version", str(found.version))
    return Picked(
        version=found,
        signature=_document(svc, ref, "signature"),
        lineage=_document(svc, ref, "lineage"),
        evaluations=svc.list_evaluations(found.name, found.version, kind="offline", max_results=EVALUATIONS),
    )


def _document(svc: RegistryService, ref: ModelRef, kind: str) -> dict[str, Any]:
    try:
        return svc.get_document(ref, kind)
    except NotFound:
        return {}


def _refuse_repeats(picked: list[Picked]) -> None:
    seen: set[str] = set()
    for p in picked:
        if p.version.uri in seen:
            raise InvalidInput(f"{p.version.uri} is named twice: compare different versions")
        seen.add(p.version.uri)


def lower_is_better(metric: str) -> bool:
    """Whether a smaller value of ``metric`` is the better one (losses, errors, latency)."""
    return metric in LOWER_IS_BETTER or _LOWER.search(metric) is not None


def _metrics(picked: list[Picked]) -> list[dict[str, Any]]:
    """Each metric any version logged: the values side by side, and which are best."""
    names = sorted({n for p in picked for n in p.version.metrics})
    out = []
    for name in names:
        values = [p.version.metrics.get(name) for p in picked]
        known = [x for x in values if x is not None]
        lower = lower_is_better(name)
        best = (min(known) if lower else max(known)) if len(known) > 1 else None
        out.append({"name": name, "lower": lower, "values": values, "best": best})
    return out


def _rows(columns: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each key of any version, its value in each (None: absent), and whether they differ."""
    keys = sorted({k for c in columns for k in c})
    return [
        {"key": k, "values": [c.get(k) for c in columns], "differs": len({json.dumps(c.get(k)) for c in columns}) > 1}
        for k in keys
    ]


def _columns(signature: dict[str, Any]) -> dict[str, str]:
    """A signature's columns by name (outputs prefixed), each as its type."""
    out = {}
    for part, prefix in (("inputs", ""), ("outputs", "output ")):
        cols = signature.get(part)
        if isinstance(cols, str):
            try:
                cols = json.loads(cols)
            except ValueError:
                cols = None
        for c in cols if isinstance(cols, list) else []:
            if isinstance(c, dict):
                out[f"{prefix}{c.get('name', '')}"] = str(c.get("type", "tensor"))
    return out


def _lineage(lineage: dict[str, Any]) -> dict[str, Any]:
    """The lineage facts a comparison lines up: code, parent, run, environment and each dataset's digest."""
    git: dict[str, Any] = lineage["git"] if isinstance(lineage.get("git"), dict) else {}
    out: dict[str, Any] = {
        "git commit": git.get("commit"),
        "git branch": git.get("branch"),
        "uncommitted changes": git.get("dirty"),
        "parent": lineage.get("parent"),
        "training run": lineage.get("run_id"),
        "python": (lineage.get("environment") or {}).get("python"),
        "flavors": ", ".join(lineage.get("flavors") or []) or None,
    }
    for d in lineage.get("datasets") or []:
        if isinstance(d, dict):
            out[f"dataset {d.get('name')}"] = d.get("digest") or d.get("uri") or "(no digest)"
    return {k: v for k, v in out.items() if v is not None}


def _evaluations(picked: list[Picked]) -> list[dict[str, Any]]:
    """The data sets at least two versions were evaluated on, newest first: each version's latest
    evaluation there, and each metric's value with its interval."""
    by_data: dict[str, list[Evaluation | None]] = {}
    for i, p in enumerate(picked):
        for e in p.evaluations:  # newest first: the first seen on a data set is the latest
            row = by_data.setdefault(e.data_digest, [None] * len(picked))
            if row[i] is None:
                row[i] = e
    out = []
    for digest, found in by_data.items():
        if sum(e is not None for e in found) < FEWEST:
            continue
        present = [e for e in found if e is not None]
        names = sorted({n for e in present for n in _mapping(e.body.get("metrics"))})
        metrics = [{"name": n, "lower": lower_is_better(n), "cells": [_interval(e, n) for e in found]} for n in names]
        out.append({"digest": digest, "source": present[0].source, "rows": present[0].rows, "found": found,
                    "metrics": metrics})  # fmt: skip
        if len(out) == DATA_SETS:
            break
    return out


def _interval(evaluation: Evaluation | None, metric: str) -> dict[str, Any] | None:
    """One metric of one evaluation: value, interval and, for a challenger, its test against the baseline."""
    if evaluation is None:
        return None
    m = _mapping(_mapping(evaluation.body.get("metrics")).get(metric))
    if _number(m.get("value")) is None:
        return None
    test = _mapping(_mapping(evaluation.body.get("against_baseline")).get(metric))
    verdict = test.get("verdict")
    return {
        "value": m["value"],
        "low": _number(m.get("low")),
        "high": _number(m.get("high")),
        "test": None
        if _number(test.get("difference")) is None
        else {
            "difference": test["difference"],
            "p_value": _number(test.get("p_value")),
            "verdict": verdict if isinstance(verdict, str) else None,
        },
    }


def _mapping(value: object) -> dict[str, Any]:
    """A stored body's section as read: an object, or nothing (an evaluation's body is the recorder's JSON)."""
    return value if isinstance(value, dict) else {}


def _number(value: object) -> float | None:
    return value if isinstance(value, int | float) and not isinstance(value, bool) else None
