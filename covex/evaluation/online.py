"""``covex compare --online``: a champion and its shadow compared on the requests both answered.

``covex serve URI --shadow CHALLENGER --log-inferences DIR`` logs each request twice, once per
version, under the same request id. Once outcomes arrive (``covex monitor labels``), the rows both
versions scored that have a label are the evaluation data: the same rows for both, so the paired
tests apply as offline. The data digest is of the request ids, rows and labels used.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from covex.domain.errors import InvalidInput
from covex.evaluation import differences, paired
from covex.evaluation.compare import Comparison, Settings, check_finite, stored
from covex.evaluation.metrics import TASKS, metric_names
from covex.evaluation.scoring import Scored, answers

if TYPE_CHECKING:
    from covex.client import Client

KIND = "online"
DEFAULT_SINCE_S = 7 * 86400.0


def _logged(location: str, name: str, version: int, start: Any, end: Any) -> Any:
    """One row per logged scored row: request_id, row, and the answer's prediction columns."""
    import pandas as pd

    from covex.monitoring.performance import key_text
    from covex.monitoring.sources import log_chunks

    parts = []
    for chunk in log_chunks(location, name, version, start, end):
        if chunk.predictions is None or not len(chunk.keys):
            continue
        keys = key_text(chunk.keys.reset_index(drop=True))
        parts.append(pd.concat([keys, chunk.predictions.reset_index(drop=True).add_prefix("p:")], axis=1))
    if not parts:
        return pd.DataFrame(columns=["request_id", "row"])
    return pd.concat(parts, ignore_index=True).drop_duplicates(subset=["request_id", "row"], keep="last")


def compare_online(
    client: Client,
    uris: Sequence[str],
    *,
    since: str | None = None,
    log: str | None = None,
    task: str | None = None,
    metrics: Sequence[str] | None = None,
    resamples: int = 1000,
    level: float = 0.95,
    seed: int = 0,
    positive: str | None = None,
    force: bool = False,
) -> Comparison:
    """Compare two versions on the logged requests both scored (a shadow deployment) that have labels."""
    import numpy as np
    import pandas as pd

    from covex.monitoring.monitor import Window, log_location_of, stored_labels
    from covex.monitoring.performance import LABEL, class_text, infer_task, key_text

    if len(uris) != 2:
        raise InvalidInput("'--online' compares two versions: the one that answered and its shadow")
    if task is not None and task not in TASKS:
        raise InvalidInput(f"'--task' must be classification or regression, got {task!r}")
    versions = [client.get_version(u) for u in uris]
    if (versions[0].name, versions[0].version) == (versions[1].name, versions[1].version):
        raise InvalidInput(f"{uris[0]} and {uris[1]} are the same version ({versions[0].uri})")
    location = log or log_location_of(client, versions[0].name)
    window = Window.of(since, None, None, DEFAULT_SINCE_S)
    base, other = (_logged(location, v.name, v.version, window.start, window.end) for v in versions)
    both = base.merge(other, on=["request_id", "row"], suffixes=("", "#2"))
    if both.empty:
        raise InvalidInput(
            f"no request in the inference log at {location} since {window.start:%Y-%m-%d %H:%M} was scored by both "
            f"{versions[0].uri} and {versions[1].uri}: serve one with --shadow the other and --log-inferences"
        )
    labelled = None
    for labels, key in sorted(stored_labels(location, versions[0].name), key=lambda s: -len(s[1])):
        if all(k in ("request_id", "row") for k in key):
            found = both.merge(key_text(labels[list(key)]).assign(**{LABEL: labels[LABEL]}), on=list(key))
            labelled = (
                found if labelled is None else pd.concat([labelled, found]).drop_duplicates(["request_id", "row"])
            )
    if labelled is None or labelled.empty:
        raise InvalidInput(
            f"none of the {len(both)} rows both versions scored has a label yet: add outcomes with "
            f"'covex monitor labels {versions[0].uri} FILE --key request_id'"
        )
    labelled = labelled.sort_values(["request_id", "row"]).reset_index(drop=True)
    truth = labelled[LABEL]
    task = task or infer_task(truth)
    if task == "classification":
        y = class_text(truth)
        classes = sorted(set(y))
        chosen = class_text([positive])[0] if positive is not None else classes[-1]
    else:
        y, classes, chosen = truth.to_numpy(dtype=float), [], ""
    settings = Settings(LABEL, task, tuple(metric_names(task, metrics)), (), resamples, level, seed, positive)
    h = hashlib.sha256()
    h.update(pd.util.hash_pandas_object(labelled[["request_id", "row", LABEL]].astype(str), index=False).to_numpy())
    digest = "sha256:" + h.hexdigest()
    keys = [f"online:{settings.key(digest, v, versions[0])}"[:128] for v in versions]
    source = f"inference log {location} from {window.start:%Y-%m-%dT%H:%M}Z to {window.end:%Y-%m-%dT%H:%M}Z"
    result = Comparison(source, digest, len(labelled), settings, positive=chosen)
    if not force:
        found = stored(client, versions, keys, KIND)
        if found is not None:
            result.evaluations, result.reused = found, True
            return result
    scored = []
    for v, suffix in zip(versions, ("", "#2"), strict=True):
        columns = [c for c in both.columns if c.startswith("p:") and c.endswith(suffix) and (suffix or "#2" not in c)]
        predictions = labelled[columns].rename(columns=lambda c: c[2:].removesuffix("#2"))
        hard, scores = answers(v.uri, predictions, task, classes, chosen)
        scored.append(Scored(v, None, hard, scores, float("nan")))
        check_finite(scored[-1])
    bodies = paired.evaluate(scored, y, labelled, settings, classes, chosen)
    for body in bodies:  # a logged row is found by its request, not by its place in this comparison
        for d in body.get("disagreements", []):
            d["request_id"], d["row"] = str(labelled["request_id"].iat[d["row"]]), int(labelled["row"].iat[d["row"]])
    result.scored, result.truth = scored, np.asarray(y)
    for v, key, body in zip(versions, keys, bodies, strict=True):
        body["differences"] = differences.between(client, v, versions[0])
        body["compared_with"] = [x.uri for x in versions]
        recorded = client.record_evaluation(
            v.uri, kind=KIND, key=key, data_digest=digest, source=source, rows=len(labelled), body=body
        )
        result.evaluations.append(recorded)
    return result
