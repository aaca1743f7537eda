"""Explaining a registered version and keeping the result on it.

``explain_version`` loads the version, draws a background from its drift reference when it has
one (each column sampled from its stored bins or categories: a background of typical values that
never reads the training data again), explains the rows, and stores the global importances on the
version as an ``explanation`` evaluation, keyed by the data's digest, so the same request is found
again rather than recomputed.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from covex.domain.errors import NotFound

if TYPE_CHECKING:
    from covex.client import Client
    from covex.domain.evaluations import Evaluation
    from covex.explain.result import Explanation

KIND = "explanation"
BACKGROUND_ROWS = 100


def background_from_reference(reference: dict[str, Any], columns: list[str], rows: int, seed: int) -> Any:
    """``rows`` rows drawn column by column from a drift reference's bins and categories (None when it
    lacks one of ``columns``)."""
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(seed)
    stored = reference.get("columns") or {}
    out: dict[str, Any] = {}
    for name in columns:
        col = stored.get(name)
        if not isinstance(col, dict):
            return None
        if col.get("kind") == "numeric":
            counts = np.asarray(col.get("counts") or [], dtype=float)
            bounds = np.asarray([col.get("low", 0.0), *(col.get("edges") or []), col.get("high", 0.0)], dtype=float)
            if counts.sum() <= 0 or len(bounds) != len(counts) + 1:
                out[name] = np.full(rows, float(col.get("low", 0.0)))
                continue
            at = rng.choice(len(counts), size=rows, p=counts / counts.sum())
            out[name] = bounds[at] + rng.random(rows) * (bounds[at + 1] - bounds[at])
        else:
            categories = col.get("counts") or {}
            if not categories:
                return None
            names = list(categories)
            weights = np.asarray([categories[n] for n in names], dtype=float)
            out[name] = rng.choice(np.asarray(names, dtype=object), size=rows, p=weights / weights.sum())
    return pd.DataFrame(out)


@dataclass
class Explained:
    """The stored record, and the explanation itself when it was computed in this run."""

    evaluation: Evaluation
    explanation: Explanation | None = None
    reused: bool = False


def explain_version(
    client: Client,
    uri: str,
    data: Any,
    *,
    source: str = "a DataFrame",
    rows: int | None = 1000,
    seed: int = 0,
    top: int = 20,
    force: bool = False,
) -> Explained:
    """Explain ``uri`` on ``data`` (a DataFrame) and store its global importances on the version."""
    import warnings

    from covex.batch.model import ScoringModel
    from covex.explain import explain
    from covex.ml.lineage import frame_digest

    version = client.get_version(uri)
    digest = "sha256:" + frame_digest(data)
    decided = {"data": digest, "rows": rows, "seed": seed, "top": top, "manifest": version.manifest_digest}
    key = "explain:" + hashlib.sha256(json.dumps(decided, sort_keys=True).encode()).hexdigest()
    if not force:
        found = client.evaluations(version.uri, kind=KIND, key=key, max_results=1)
        if found:
            return Explained(found[0], None, True)
    model = ScoringModel.load(client, version.uri)
    background = None
    columns = model.feature_columns(list(data.columns), None, "the data to explain")
    try:
        reference = client.get_document(version.uri, "reference")
        background = background_from_reference(reference, columns, BACKGROUND_ROWS, seed)
    except NotFound:
        background = None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        explanation = explain(model, data, background=background, rows=rows, seed=seed)
    body = explanation.to_record(top=top) | {"background": "reference" if background is not None else "data"}
    recorded = client.record_evaluation(
        version.uri, kind=KIND, key=key, data_digest=digest, source=source, rows=explanation.rows, body=body
    )
    return Explained(recorded, explanation, False)
