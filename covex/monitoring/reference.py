"""A version's drift reference: the bins and counts of its reference data, and of its predictions on it.

Built once (at registration, or later with ``covex monitor reference``) so that a check never
reads the training data again. Its shape is checked by ``covex.domain.monitoring.check_reference``.
"""

from __future__ import annotations

import sys
from typing import Any

from covex.domain.monitoring import MAX_CATEGORIES, REFERENCE_VERSION
from covex.monitoring.drift import DEFAULT_BINS, NumericReference, category_counts


def is_numeric(series: Any) -> bool:
    """Numbers (not booleans) are binned; everything else is counted by category."""
    import pandas as pd

    return bool(pd.api.types.is_numeric_dtype(series) and not pd.api.types.is_bool_dtype(series))


# A version document holds at most 1 MiB of JSON: a reference of many wide categorical columns keeps
# fewer categories per column (the rarer ones counted together as "other") until it fits in this.
BUDGET = 768 * 1024
FEWEST_CATEGORIES = 20


def column_reference(series: Any, bins: int = DEFAULT_BINS, categories: int = MAX_CATEGORIES) -> dict[str, Any]:
    """One column's reference entry (see ``check_reference``)."""
    import numpy as np

    missing = int(series.isna().sum())
    if is_numeric(series):
        values = series.to_numpy(dtype=float, na_value=np.nan)
        finite = values[np.isfinite(values)]
        if finite.size == 0:
            return {
                "kind": "numeric",
                "dtype": str(series.dtype),
                "edges": [],
                "counts": [0],
                "low": 0.0,
                "high": 0.0,
                "std": 0.0,
                "missing": missing,
            }
        ref = NumericReference.from_values(finite, bins)
        scale = float(np.max(np.abs(finite))) or 1.0  # huge values: the spread without overflowing
        spread = min(float((finite / scale).std()) * scale, sys.float_info.max)
        return {
            "kind": "numeric",
            "dtype": str(series.dtype),
            "edges": list(ref.edges),
            "counts": list(ref.counts),
            "low": ref.low,
            "high": ref.high,
            "std": spread,
            "missing": missing,
        }
    counts = category_counts(series)
    kept = dict(sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:categories])
    return {
        "kind": "categorical",
        "dtype": str(series.dtype),
        "counts": kept,
        "other": sum(counts.values()) - sum(kept.values()),
        "missing": missing,
    }


def _is_time(series: Any) -> bool:
    """Dates, times and durations, typed as such or held as Python objects (a Parquet date column)."""
    import pandas as pd

    if pd.api.types.is_datetime64_any_dtype(series) or pd.api.types.is_timedelta64_dtype(series):
        return True
    if series.dtype != object:
        return False
    return pd.api.types.infer_dtype(series, skipna=True) in ("date", "datetime", "time", "timedelta")


def build_reference(frame: Any, predictions: Any = None, *, bins: int = DEFAULT_BINS) -> dict[str, Any]:
    """The reference of a DataFrame (and of the model's ``predictions`` on it: a Series, array or frame)."""
    import pandas as pd

    if not isinstance(frame, pd.DataFrame):
        frame = pd.DataFrame(frame)
    import json

    from covex.domain.errors import InvalidInput

    twice = frame.columns[frame.columns.duplicated()]
    if len(twice):
        raise InvalidInput(f"the reference data has two columns named {str(twice[0])!r}")
    predicted = prediction_columns(predictions) if predictions is not None else None
    # Times are when a row happened, not what it says: every later window would hold only "new" ones.
    times = [c for c in frame.columns if _is_time(frame[c])]
    features = [c for c in frame.columns if c not in times]
    categories = MAX_CATEGORIES
    while True:
        out: dict[str, Any] = {
            "version": REFERENCE_VERSION,
            "rows": len(frame),
            "bins": bins,
            "columns": {str(name): column_reference(frame[name], bins, categories) for name in features},
        }
        if times:
            out["ignored"] = [str(c) for c in times]
        if predicted is not None:
            out["predictions"] = {name: column_reference(s, bins, categories) for name, s in predicted.items()}
        if categories <= FEWEST_CATEGORIES or len(json.dumps(out)) <= BUDGET:
            return out
        categories = max(FEWEST_CATEGORIES, categories // 2)


def prediction_columns(predictions: Any) -> dict[str, Any]:
    """Predictions as named Series: one ``prediction`` column, or a frame's columns as they are named."""
    import numpy as np
    import pandas as pd

    if isinstance(predictions, pd.DataFrame):
        if predictions.shape[1] == 1:
            return {"prediction": predictions.iloc[:, 0].reset_index(drop=True)}
        return {str(c): predictions[c].reset_index(drop=True) for c in predictions.columns}
    if isinstance(predictions, pd.Series):
        return {"prediction": predictions.reset_index(drop=True)}
    array = np.asarray(predictions)
    if array.ndim == 2 and array.shape[1] == 1:
        array = array[:, 0]
    if array.ndim == 2:
        return {f"prediction_{i}": pd.Series(array[:, i]) for i in range(array.shape[1])}
    return {"prediction": pd.Series(array)}
