"""Evaluations: what a version scored on a named set of rows, stored on the version.

``covex.evaluation`` scores versions side by side on the same data (``offline``), or on the requests
they both answered once labels arrived (``online``); ``covex.explain`` stores a version's global
feature importances (``explanation``). Each record holds the digest of the data it was computed on,
the number of rows, the labels the data was given (``holdout``, ``q3``) and a ``key``: a digest of
everything that decided the result (data, target, task, metrics, segments, baseline), so the same
evaluation asked for again is found and reused rather than recomputed. The body holds the numbers.
"""

from __future__ import annotations

import math
import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

from covex.domain.errors import InvalidInput
from covex.domain.names import validate_text

EvaluationKind = Literal["offline", "online", "explanation"]
KINDS: tuple[str, ...] = ("offline", "online", "explanation")
MAX_BODY = 1024 * 1024
MAX_SOURCE = 1000
MAX_DATA_TAGS = 20
_KEY = re.compile(r"[A-Za-z0-9:._\-]{1,128}")
_DIGEST = re.compile(r"sha256:[0-9a-f]{64}")
_TAG = re.compile(r"[A-Za-z0-9][A-Za-z0-9._\-]{0,63}")


class Evaluation(BaseModel):
    """One evaluation of one version: on which data, decided by what (``key``), and what it found."""

    model_config = ConfigDict(frozen=True)

    id: int
    name: str
    version: int
    kind: str
    key: str
    data_digest: str
    source: str  # where the rows came from, as the caller named them (a file, "inference log since ...")
    data_tags: list[str] = []
    rows: int
    created_at: int
    created_by: str
    body: dict[str, Any] = {}

    @property
    def uri(self) -> str:
        return f"models:/{self.name}/{self.version}"


def check_kind(value: object) -> str:
    if value not in KINDS:
        raise InvalidInput(f"'kind' must be one of {', '.join(KINDS)}, got {value!r}")
    return str(value)


def check_key(value: object) -> str:
    if not isinstance(value, str) or not _KEY.fullmatch(value):
        raise InvalidInput(f"'key' must be 1 to 128 letters, digits or ':._-', got {value!r}")
    return value


def check_digest(value: object) -> str:
    if not isinstance(value, str) or not _DIGEST.fullmatch(value):
        raise InvalidInput(f"'data_digest' must be 'sha256:' and 64 lowercase hex digits, got {value!r}")
    return value


def check_source(value: object) -> str:
    return validate_text(value, "source", MAX_SOURCE, required=True)


def check_data_tags(tags: object) -> list[str]:
    """Labels of the evaluation data (``holdout``): a short list of short names, kept sorted and unique."""
    if tags is None:
        return []
    if not isinstance(tags, list | tuple):
        raise InvalidInput(f"'data_tags' must be a list of names, got {type(tags).__name__}")
    if len(tags) > MAX_DATA_TAGS:
        raise InvalidInput(f"'data_tags' holds at most {MAX_DATA_TAGS} names, got {len(tags)}")
    for tag in tags:
        if not isinstance(tag, str) or not _TAG.fullmatch(tag):
            raise InvalidInput(
                f"'data_tags': {tag!r} is not a tag name (1 to 64 letters, digits or '._-', starting with a "
                "letter or digit)"
            )
    return sorted(set(tags))


def check_rows(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < 2**53:
        raise InvalidInput(f"'rows' must be a non-negative integer, got {value!r}")
    return value


# The body sections every reader of an evaluation relies on, and their numeric fields (a number or null).
_SECTIONS = {"metrics": ("value", "low", "high"), "against_baseline": ("difference", "low", "high", "p_value")}


def check_body(body: object) -> dict[str, Any]:
    """An evaluation's body: free-form, except the sections pages, cards and gates read, which must have
    their documented shapes (``metrics`` and ``against_baseline``: metric name to an object of numbers or
    nulls; ``importances``: a list of ``{"feature": name, "mean_abs": number}``)."""
    if not isinstance(body, dict):
        raise InvalidInput("'body' must be a JSON object")
    for section, numbers in _SECTIONS.items():
        found = body.get(section)
        if found is None:
            continue
        if not isinstance(found, dict):
            raise InvalidInput(f"'body.{section}' must be an object of metric name to its values")
        for name, entry in found.items():
            if not isinstance(entry, dict):
                raise InvalidInput(f"'body.{section}.{name}' must be an object")
            for field in numbers:
                if not _number_or_null(entry.get(field)):
                    raise InvalidInput(f"'body.{section}.{name}.{field}' must be a number or null")
            for field in ("verdict", "test"):
                if entry.get(field) is not None and not isinstance(entry[field], str):
                    raise InvalidInput(f"'body.{section}.{name}.{field}' must be text or null")
    listed = body.get("importances")
    if listed is not None:
        if not isinstance(listed, list):
            raise InvalidInput("'body.importances' must be a list")
        for i, item in enumerate(listed):
            if (
                not isinstance(item, dict)
                or not isinstance(item.get("feature"), str)
                or not _number_or_null(item.get("mean_abs"))
                or (item.get("mean_abs") or 0) < 0
            ):
                raise InvalidInput(
                    f'\'body.importances[{i}]\' must be {{"feature": name, "mean_abs": a number from 0}}'
                )
    return body


def _number_or_null(value: object) -> bool:
    return value is None or (isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value))


def importances(body: dict[str, Any]) -> list[tuple[str, float]]:
    """An explanation's global importances as (feature, mean |contribution|), largest first."""
    out = []
    listed = body.get("importances")
    for item in listed if isinstance(listed, list) else []:
        if isinstance(item, dict):
            name, value = item.get("feature"), item.get("mean_abs")
        elif isinstance(item, list | tuple) and len(item) == 2:
            name, value = item
        else:
            continue
        if isinstance(name, str) and isinstance(value, int | float):
            out.append((name, float(value)))
    return sorted(out, key=lambda x: -x[1])


def _section(body: dict[str, Any], name: str) -> dict[str, Any]:
    found = body.get(name)
    return found if isinstance(found, dict) else {}


def summary(kind: str, body: dict[str, Any]) -> str:
    """One line a person reads: the metrics with intervals and the verdicts against the baseline, or the
    top features of an explanation."""
    if kind == "explanation":
        top = ", ".join(f"{name} {value:.3g}" for name, value in importances(body)[:5])
        return f"top features (mean |SHAP|, {body.get('explainer', '?')}): {top or '-'}"
    parts = []
    for name, m in sorted(_section(body, "metrics").items()):
        if isinstance(m, dict) and isinstance(m.get("value"), int | float):
            low, high = m.get("low"), m.get("high")
            within = (
                f" [{low:.3g}, {high:.3g}]" if isinstance(low, int | float) and isinstance(high, int | float) else ""
            )
            parts.append(f"{name} {m['value']:.4g}{within}")
    line = "; ".join(parts)
    against = _section(body, "against_baseline")
    verdicts = [
        f"{name} {t['difference']:+.3g} (p={t['p_value']:.3g}, {t.get('verdict', '?')})"
        for name, t in sorted(against.items())
        if isinstance(t, dict)
        and isinstance(t.get("difference"), int | float)
        and isinstance(t.get("p_value"), int | float)
    ]
    if verdicts:
        line += f" | vs {body.get('baseline', 'baseline')}: " + "; ".join(verdicts)
    return line or "-"
