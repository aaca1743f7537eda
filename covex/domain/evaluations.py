"""Evaluations: what a version scored on a named set of rows, stored on the version.

``covex.evaluation`` scores versions side by side on the same data (``offline``), or on the requests
they both answered once labels arrived (``online``); ``covex.explain`` stores a version's global
feature importances (``explanation``). Each record holds the digest of the data it was computed on,
the number of rows, the labels the data was given (``holdout``, ``q3``) and a ``key``: a digest of
everything that decided the result (data, target, task, metrics, segments, baseline), so the same
evaluation asked for again is found and reused rather than recomputed. The body holds the numbers.
"""

from __future__ import annotations

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


def importances(body: dict[str, Any]) -> list[tuple[str, float]]:
    """An explanation's global importances as (feature, mean |contribution|), largest first."""
    out = []
    for item in body.get("importances") or []:
        if isinstance(item, dict):
            name, value = item.get("feature"), item.get("mean_abs")
        elif isinstance(item, list | tuple) and len(item) == 2:
            name, value = item
        else:
            continue
        if isinstance(name, str) and isinstance(value, int | float):
            out.append((name, float(value)))
    return sorted(out, key=lambda x: -x[1])


def summary(kind: str, body: dict[str, Any]) -> str:
    """One line a person reads: the metrics with intervals and the verdicts against the baseline, or the
    top features of an explanation."""
    if kind == "explanation":
        top = ", ".join(f"{name} {value:.3g}" for name, value in importances(body)[:5])
        return f"top features (mean |SHAP|, {body.get('explainer', '?')}): {top or '-'}"
    parts = []
    for name, m in sorted((body.get("metrics") or {}).items()):
        if isinstance(m, dict) and isinstance(m.get("value"), int | float):
            low, high = m.get("low"), m.get("high")
            within = (
                f" [{low:.3g}, {high:.3g}]" if isinstance(low, int | float) and isinstance(high, int | float) else ""
            )
            parts.append(f"{name} {m['value']:.4g}{within}")
    line = "; ".join(parts)
    against = body.get("against_baseline") or {}
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
