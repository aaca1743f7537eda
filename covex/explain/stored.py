"""Explaining a registered version and keeping the result on it.

``explain_version`` loads the version, draws a background from its data profile or drift reference
when it has one (each column sampled from the stored histogram, bins or categories: a background of
typical values that never reads the training data again), explains the rows, and stores the global importances on the
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
            if len(bounds) > 3:
                # The outer bins reach the smallest and largest values seen: rare extremes, not a flat spread.
                # Drawn within one neighbouring bin's width of their inner edge, they do not pull the mean out.
                bounds[0] = max(bounds[0], bounds[1] - (bounds[2] - bounds[1]))
                bounds[-1] = min(bounds[-1], bounds[-2] + (bounds[-2] - bounds[-3]))
            at = rng.choice(len(counts), size=rows, p=counts / counts.sum())
            if "int" in str(col.get("dtype", "")):
                # Whole numbers: bin i holds [bound i, bound i+1), the last one its upper bound too.
                lo = np.ceil(bounds[at])
                hi = np.where(at == len(counts) - 1, np.floor(bounds[at + 1]) + 1, np.ceil(bounds[at + 1]))
                out[name] = np.floor(lo + rng.random(rows) * np.maximum(hi - lo, 1))
                continue
            out[name] = bounds[at] + rng.random(rows) * (bounds[at + 1] - bounds[at])
        else:
            categories = col.get("counts") or {}
            if not categories:
                return None
            names = list(categories)
            weights = np.asarray([categories[n] for n in names], dtype=float)
            out[name] = rng.choice(np.asarray(names, dtype=object), size=rows, p=weights / weights.sum())
    return pd.DataFrame(out)


def background_from_profile(profile: dict[str, Any], columns: list[str], rows: int, seed: int) -> Any:
    """``rows`` rows drawn column by column from a data profile: numbers from its equal-width histogram,
    moved to the profile's mean; categories from its most frequent values (None when it lacks a column)."""
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(seed)
    stored = profile.get("columns") or {}
    out: dict[str, Any] = {}
    for name in columns:
        col = stored.get(name)
        if not isinstance(col, dict):
            return None
        if col.get("kind") == "numeric":
            histogram = col.get("histogram") or {}
            edges = np.asarray(histogram.get("edges") or [], dtype=float)
            counts = np.asarray(histogram.get("counts") or [], dtype=float)
            if counts.sum() <= 0 or len(edges) != len(counts) + 1 or not isinstance(col.get("mean"), int | float):
                return None
            at = rng.choice(len(counts), size=rows, p=counts / counts.sum())
            values = edges[at] + rng.random(rows) * (edges[at + 1] - edges[at])
            out[name] = values - values.mean() + float(col["mean"])
        else:
            top = [t for t in col.get("top") or [] if isinstance(t, dict) and t.get("count")]
            if not top:
                return None
            weights = np.asarray([t["count"] for t in top], dtype=float)
            names = np.asarray([str(t["value"]) for t in top], dtype=object)
            out[name] = rng.choice(names, size=rows, p=weights / weights.sum())
    return pd.DataFrame(out)


def background_of(client: Client, uri: str, columns: list[str], rows: int = BACKGROUND_ROWS, seed: int = 0) -> Any:
    """A background for ``uri``'s explanations, from its data profile, else its drift reference; None without."""
    for kind, draw in (("profile", background_from_profile), ("reference", background_from_reference)):
        try:
            document = client.get_document(uri, kind)
        except NotFound:
            continue
        found = draw(document, columns, rows, seed)
        if found is not None:
            return found
    return None


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
    columns = model.feature_columns(list(data.columns), None, "the data to explain")
    background = background_of(client, version.uri, columns, BACKGROUND_ROWS, seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        explanation = explain(model, data, background=background, rows=rows, seed=seed)
    body = explanation.to_record(top=top) | {"background": "registered" if background is not None else "data"}
    recorded = client.record_evaluation(
        version.uri, kind=KIND, key=key, data_digest=digest, source=source, rows=explanation.rows, body=body
    )
    return Explained(recorded, explanation, False)
