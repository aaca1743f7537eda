"""Data profiles: a compact summary of a training frame that drift monitoring compares live data against."""

from __future__ import annotations

import math
from typing import Any

PROFILE_VERSION = 1
QUANTILES = (0.0, 0.01, 0.05, 0.25, 0.5, 0.75, 0.95, 0.99, 1.0)
HISTOGRAM_BINS = 20
TOP_CATEGORIES = 20


def _clean(value: Any) -> Any:
    """JSON-safe scalars: NaN and infinities become None."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if hasattr(value, "item"):
        return _clean(value.item())
    return value


def profile_frame(frame: Any) -> dict[str, Any]:
    """Profile a pandas DataFrame column by column.

    Numbers get count, missing share, mean, std, quantiles and a histogram;
    everything else gets count, missing share, distinct count and the top
    categories with their frequencies.
    """
    import numpy as np
    import pandas as pd

    if not isinstance(frame, pd.DataFrame):
        frame = pd.DataFrame(frame)
    rows = len(frame)
    columns: dict[str, Any] = {}
    for name in frame.columns:
        series = frame[name]
        missing = int(series.isna().sum())
        entry: dict[str, Any] = {
            "dtype": str(series.dtype),
            "count": rows - missing,
            "missing_share": (missing / rows) if rows else 0.0,
        }
        if pd.api.types.is_bool_dtype(series) or not pd.api.types.is_numeric_dtype(series):
            values = series.dropna().astype(str)
            counts = values.value_counts()
            entry["kind"] = "categorical"
            entry["distinct"] = int(counts.size)
            entry["top"] = [
                {"value": str(v), "count": int(c), "share": float(c) / len(values)}
                for v, c in counts.head(TOP_CATEGORIES).items()
            ]
        else:
            values = series.dropna().astype(float)
            values = values[np.isfinite(values)]
            entry["kind"] = "numeric"
            if len(values):
                counts, edges = np.histogram(values, bins=HISTOGRAM_BINS)
                entry.update(
                    mean=_clean(float(values.mean())),
                    std=_clean(float(values.std(ddof=0))),
                    quantiles={str(q): _clean(float(values.quantile(q))) for q in QUANTILES},
                    histogram={"edges": [_clean(float(e)) for e in edges], "counts": [int(c) for c in counts]},
                )
        columns[str(name)] = entry
    return {"version": PROFILE_VERSION, "rows": rows, "columns": columns}
