"""Performance once the outcomes are known: labels read and checked, joined to predictions, scored.

Labels are a file (Parquet or CSV) with one or more key columns and a target column. They join to
the current data by key: to the inference log by ``request_id`` (and ``row``, the row's position
in its request, for requests that scored several rows; without ``row`` only single-row requests
join), to a file by any columns both have. Metrics are scikit-learn's; each is compared with the
version's registered metric of the same name (or its usual alias) and with the mean of the
previous results' values, and is a degradation when worse than either by more than the
configured relative ``tolerance``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

from covex.domain.errors import InvalidInput
from covex.domain.monitoring import CLASSIFICATION_METRICS, LOWER_IS_BETTER, REGRESSION_METRICS, MonitorConfig
from covex.monitoring.sources import Chunk

LABEL = "__label__"
PREVIOUS_WINDOWS = 5
ALIASES = {
    "accuracy": ("accuracy", "acc", "accuracy_score"),
    "precision": ("precision", "precision_score"),
    "recall": ("recall", "recall_score"),
    "f1": ("f1", "f1_score"),
    "roc_auc": ("roc_auc", "auc", "roc_auc_score"),
    "log_loss": ("log_loss", "logloss"),
    "rmse": ("rmse", "root_mean_squared_error"),
    "mae": ("mae", "mean_absolute_error"),
    "mape": ("mape", "mean_absolute_percentage_error"),
    "r2": ("r2", "r2_score"),
}


def read_labels(location: str, key: Sequence[str], target: str) -> Any:
    """The labels of ``location`` as a DataFrame of the key columns and ``__label__``; refused with the reason."""
    from covex.batch.sources import open_source

    if not key:
        raise InvalidInput("'key' names at least one column")
    source = open_source(location)
    columns = source.columns
    for name in [*key, target]:
        if name not in columns:
            raise InvalidInput(f"the labels file {location} has no column {name!r} (it has {', '.join(columns[:20])})")
    if target in key:
        raise InvalidInput(f"'target' {target!r} is also a key column")
    import pandas as pd

    tables = [t.to_pandas() for t in source.chunks([*key, target], 500_000)]
    if not tables:
        raise InvalidInput(f"the labels file {location} has no rows")
    frame = pd.concat(tables, ignore_index=True)
    return check_labels(frame, key, target, location)


def check_labels(frame: Any, key: Sequence[str], target: str, where: str = "the labels") -> Any:
    """Refuse null or duplicate keys, and targets that are neither numbers, text nor booleans."""
    import pandas as pd

    for name in [*key, target]:
        if name not in frame.columns:
            raise InvalidInput(f"{where} has no column {name!r}")
    if len(frame) == 0:
        raise InvalidInput(f"{where} has no rows")
    for name in key:
        empty = frame[name].isna() | (frame[name].astype(str).str.strip() == "")
        if empty.any():
            line = int(empty.to_numpy().argmax()) + 1
            raise InvalidInput(f"{where}: key column {name!r} is empty in record {line} (of {len(frame)})")
    keys = key_text(frame[list(key)])
    duplicated = keys.duplicated()
    if duplicated.any():
        first = keys[duplicated].iloc[0].tolist()
        raise InvalidInput(f"{where}: key {', '.join(key)} = {', '.join(first)} appears more than once")
    labels = frame[target]
    if not (
        pd.api.types.is_numeric_dtype(labels)
        or pd.api.types.is_bool_dtype(labels)
        or pd.api.types.is_string_dtype(labels)
        or labels.dtype == object
    ):
        raise InvalidInput(f"{where}: target {target!r} is {labels.dtype}; labels are numbers, text or booleans")
    if labels.isna().all():
        raise InvalidInput(f"{where}: target {target!r} has no values")
    if labels.dtype == object:
        odd = labels.map(lambda v: v is not None and not isinstance(v, str | int | float | bool))
        if odd.any():
            line = int(odd.to_numpy().argmax()) + 1
            kind = type(labels.iloc[line - 1]).__name__
            raise InvalidInput(
                f"{where}: target {target!r} holds a {kind} in record {line}; labels are numbers, text or booleans"
            )
    out = keys.copy()
    out[LABEL] = labels.to_numpy()
    return out[out[LABEL].notna()].reset_index(drop=True)


def key_text(keys: Any) -> Any:
    """Key columns as text: a numeric column's whole numbers without their ``.0`` (7 and 7.0 are one key).

    Text stays as written: "0007" and "7" are two keys (zip codes, padded ids).
    """
    import pandas as pd

    out = {}
    for name in keys.columns:
        column = keys[name]
        numeric = pd.api.types.is_numeric_dtype(column) and not pd.api.types.is_bool_dtype(column)
        if numeric and pd.api.types.is_float_dtype(column) and (column.dropna() % 1 == 0).all():
            within = column.dropna().abs().max() < 2**53 if len(column.dropna()) else True
            out[name] = column.astype("Int64").astype(str) if within else column.astype(str)
        else:
            out[name] = column.astype(str)
    return pd.DataFrame(out, index=keys.index)


def class_text(values: Any) -> Any:
    """Class labels as text that matches across types: True, 1, 1.0 and "1" are one class."""
    import numpy as np
    import pandas as pd

    series = pd.Series(values)
    if pd.api.types.is_bool_dtype(series):
        return series.astype(int).astype(str).to_numpy()
    numbers = pd.to_numeric(series, errors="coerce")
    if numbers.notna().all() and (numbers % 1 == 0).all():
        return numbers.astype("int64").astype(str).to_numpy()
    return np.asarray([str(int(v)) if isinstance(v, bool) else str(v) for v in series], dtype=object)


LabelSet = tuple[Any, Sequence[str]]
"""Labels (key columns and ``__label__``) with the key they join on."""


def joined(chunks: Iterator[Chunk], label_sets: Sequence[LabelSet]) -> Iterator[tuple[Chunk, Any]]:
    """Each chunk with the (prediction frame, label) pairs of its rows that have a label.

    Sets with more key columns are tried first (``request_id`` + ``row`` before ``request_id``); a row
    takes the label of the first set that has one.
    """
    import pandas as pd

    ordered = sorted(label_sets, key=lambda s: -len(s[1]))
    for chunk in chunks:
        pairs = None
        keys = chunk.keys
        if keys is not None and chunk.predictions is not None and len(keys):
            at: list[Any] = []
            found: list[Any] = []
            taken: set[int] = set()
            for labels, key in ordered:
                if not all(k in keys.columns for k in key):
                    continue
                frame = key_text(keys[list(key)])
                if "row" in keys.columns and "row" not in key:  # the log: a request of several rows has no one label
                    frame = frame[keys.groupby("request_id")["row"].transform("size").to_numpy() == 1]
                frame = frame.assign(__at__=frame.index)
                matched = frame.merge(labels, on=list(key), how="inner")
                matched = matched[~matched["__at__"].isin(taken)]
                taken.update(matched["__at__"].tolist())
                at.extend(matched["__at__"].tolist())
                found.extend(matched[LABEL].tolist())
            if at:
                predictions = chunk.predictions.iloc[at].reset_index(drop=True)
                pairs = (predictions, pd.Series(found))
        yield chunk, pairs


def infer_task(labels: Any) -> str:
    import numpy as np
    import pandas as pd

    if pd.api.types.is_bool_dtype(labels):
        return "classification"
    numbers = pd.to_numeric(labels, errors="coerce")
    if numbers.isna().any():  # text (or a mix): classes
        return "classification"
    values = numbers.to_numpy(dtype=float)
    integral = bool(np.all(np.mod(values, 1) == 0))
    return "classification" if integral and len(np.unique(values)) <= 20 else "regression"


def metrics(predictions: Any, labels: Any, config: MonitorConfig) -> tuple[str, dict[str, float], list[str]]:
    """(task, metric values, notes) of predictions (a frame) against labels (a Series), by scikit-learn."""
    import numpy as np
    from sklearn import metrics as m

    task = config.performance.task or infer_task(labels)
    wanted = config.performance.metrics or (CLASSIFICATION_METRICS if task == "classification" else REGRESSION_METRICS)
    notes: list[str] = []
    out: dict[str, float] = {}
    if task == "regression":
        try:
            y = labels.to_numpy(dtype=float)
            p = predictions.iloc[:, 0].to_numpy(dtype=float)
        except (TypeError, ValueError):
            return task, {}, ["labels or predictions are not numbers: no regression metric"]
        funcs: dict[str, Callable[[], Any]] = {
            "rmse": lambda: math.sqrt(m.mean_squared_error(y, p)),
            "mae": lambda: m.mean_absolute_error(y, p),
            "mape": lambda: m.mean_absolute_percentage_error(y, p),
            "r2": lambda: m.r2_score(y, p),
        }
    else:
        y = class_text(labels)
        classes = sorted(set(y))
        scores = scores_of(predictions, classes)
        if scores is not None:  # probabilities: the predicted class is the most probable
            hard = (
                np.asarray(classes)[scores.argmax(axis=1)]
                if scores.ndim == 2
                else np.where(scores >= 0.5, classes[-1], classes[0])
            )
        else:
            hard = class_text(predictions.iloc[:, 0])
        binary = len(set(classes) | set(hard)) <= 2
        given = config.performance.positive
        positive = str(class_text([given])[0]) if given is not None else (classes[-1] if classes else "1")
        kwargs: dict[str, Any] = {"pos_label": positive} if binary else {"average": "macro"}
        funcs = {
            "accuracy": lambda: m.accuracy_score(y, hard),
            "precision": lambda: m.precision_score(y, hard, zero_division=0, **kwargs),
            "recall": lambda: m.recall_score(y, hard, zero_division=0, **kwargs),
            "f1": lambda: m.f1_score(y, hard, zero_division=0, **kwargs),
        }
        if scores is not None:
            funcs["roc_auc"] = lambda: m.roc_auc_score(
                y, scores, **({} if scores.ndim == 1 else {"multi_class": "ovr", "labels": classes})
            )
            funcs["log_loss"] = lambda: m.log_loss(
                y, scores if scores.ndim == 2 else np.column_stack([1 - scores, scores]), labels=classes
            )
        elif {"roc_auc", "log_loss"} & set(wanted):
            notes.append("roc_auc and log_loss need probabilities; the model answered class labels")
    for name in wanted:
        if name not in funcs:
            continue
        try:
            value = float(funcs[name]())
        except ValueError as exc:  # one class only, a label never predicted...
            notes.append(f"{name}: {str(exc).splitlines()[0]}")
            continue
        if math.isfinite(value):
            out[name] = value
    return task, out, notes


def scores_of(predictions: Any, classes: list[str]) -> Any:
    """Class probabilities when the model answered them (one column in [0, 1] for two classes, or one per class)."""
    import numpy as np
    import pandas as pd

    if not all(pd.api.types.is_float_dtype(predictions[c]) for c in predictions.columns):
        return None
    values = predictions.to_numpy(dtype=float)
    if not np.all((values >= 0) & (values <= 1)):
        return None
    if values.shape[1] == 1 and len(classes) <= 2 and not np.all(np.isin(values, (0.0, 1.0))):
        return values[:, 0]
    if values.shape[1] == len(classes) > 1:
        return values
    return None


def compare(
    values: Mapping[str, float],
    registered: Mapping[str, float],
    previous: Sequence[Mapping[str, float]],
    tolerance: float,
) -> dict[str, Any]:
    """Each metric against the registered value and the previous windows' mean: ``degraded`` says which."""
    out: dict[str, Any] = {}
    for name, value in values.items():
        base = next((registered[a] for a in ALIASES.get(name, (name,)) if a in registered), None)
        history = [p[name] for p in previous[:PREVIOUS_WINDOWS] if name in p]
        recent = sum(history) / len(history) if history else None
        worse = [b for b in (base, recent) if b is not None and _worse(name, value, b, tolerance)]
        out[name] = {"value": value, "registered": base, "previous": recent, "degraded": bool(worse)}
    return out


def _worse(name: str, value: float, base: float, tolerance: float) -> bool:
    margin = abs(base) * tolerance
    return value > base + margin if name in LOWER_IS_BETTER else value < base - margin


__all__ = ["REGRESSION_METRICS", "compare", "joined", "metrics", "read_labels"]
