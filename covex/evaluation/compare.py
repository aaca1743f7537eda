"""``covex compare``: every version scored on the same rows, each metric with its interval, each
challenger tested against the first version (the baseline), overall and per segment.

The result of each version is stored on it as an ``offline`` evaluation whose key is a digest of
everything that decided it (the data's digest, target, task, metrics, segments, resampling, the
version's and the baseline's files). Asking again finds the stored results and reuses them;
``force`` computes again.
"""

from __future__ import annotations

import copy
import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from covex.domain.errors import InvalidInput
from covex.evaluation import differences, paired
from covex.evaluation.metrics import TASKS, metric_names
from covex.evaluation.scoring import Scored, load, read_frame, score

if TYPE_CHECKING:
    from covex.client import Client
    from covex.domain.entities import ModelVersion
    from covex.domain.evaluations import Evaluation

KIND = "offline"
MAX_SEGMENTS = 50
MAX_CLASSES = 1000


@dataclass(frozen=True)
class Settings:
    """What decides a comparison's numbers (with the data and the versions)."""

    target: str
    task: str
    metrics: tuple[str, ...]
    by: tuple[str, ...] = ()
    resamples: int = 1000
    level: float = 0.95
    seed: int = 0
    positive: str | None = None

    def key(self, digest: str, version: ModelVersion, baseline: ModelVersion) -> str:
        decided = {
            "data": digest,
            "settings": self.__dict__,
            "version": [version.name, version.version, version.manifest_digest],
            "baseline": [baseline.name, baseline.version, baseline.manifest_digest],
        }
        return hashlib.sha256(json.dumps(decided, sort_keys=True, default=list).encode()).hexdigest()


@dataclass
class Comparison:
    """The versions compared (baseline first), each with its stored evaluation."""

    source: str
    data_digest: str
    rows: int
    settings: Settings
    evaluations: list[Evaluation] = field(default_factory=list)
    reused: bool = False
    scored: list[Scored] = field(default_factory=list)  # the answers, when computed in this run (for plots)
    truth: Any = None  # the target's values, likewise
    positive: str = ""  # the positive class of a classification

    @property
    def baseline(self) -> Evaluation:
        return self.evaluations[0]

    def as_dict(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "data_digest": self.data_digest,
            "rows": self.rows,
            "reused": self.reused,
            "settings": self.settings.__dict__ | {"metrics": list(self.settings.metrics), "by": list(self.settings.by)},
            "versions": [{"uri": e.uri, "evaluation": e.id, **copy.deepcopy(e.body)} for e in self.evaluations],
        }


def compare(
    client: Client,
    uris: Sequence[str],
    data: str,
    target: str,
    *,
    task: str | None = None,
    by: Sequence[str] = (),
    metrics: Sequence[str] | None = None,
    resamples: int = 1000,
    level: float = 0.95,
    seed: int = 0,
    positive: str | None = None,
    force: bool = False,
    data_tags: Sequence[str] = (),
    frame: Any = None,
) -> Comparison:
    """Compare the versions ``uris`` (the first is the baseline) on the rows of ``data`` (or ``frame``)."""
    import numpy as np
    import pandas as pd

    from covex.ml.lineage import frame_digest
    from covex.monitoring.performance import class_text, infer_task

    if not uris:
        raise InvalidInput("name at least one version to evaluate")
    if not 0 < level < 1:
        raise InvalidInput(f"'--level' must be between 0 and 1, got {level:g}")
    if not 0 <= resamples <= 100_000:
        raise InvalidInput(f"'--resamples' must be from 0 to 100000, got {resamples}")
    if task is not None and task not in TASKS:
        raise InvalidInput(f"'--task' must be classification or regression, got {task!r}")
    versions = [client.get_version(u) for u in uris]
    seen: dict[tuple[str, int], str] = {}
    for uri, v in zip(uris, versions, strict=True):
        if (v.name, v.version) in seen:
            raise InvalidInput(f"{uri} and {seen[(v.name, v.version)]} are the same version ({v.uri})")
        seen[(v.name, v.version)] = uri
    if frame is None:
        frame = read_frame(data)
    if target not in frame.columns:
        has = ", ".join(map(str, frame.columns))
        raise InvalidInput(f"'--target': column {target!r} is not in {data}; it has: {has}")
    for column in by:
        if column not in frame.columns:
            raise InvalidInput(f"'--by': column {column!r} is not in {data}")
        if column == target:
            raise InvalidInput(f"'--by': {column!r} is the target; segment by a feature")
    frame = frame[frame[target].notna()].reset_index(drop=True)
    numbers = pd.to_numeric(frame[target], errors="coerce")
    infinite = int(np.isinf(numbers.to_numpy(dtype=float, na_value=np.nan)).sum())
    if infinite:
        raise InvalidInput(f"'--target': column {target!r} holds {infinite} infinite value(s); leave them out first")
    if len(frame) < 2:
        raise InvalidInput(f"{data} has fewer than 2 rows with a {target!r} value to evaluate on")
    task = task or infer_task(frame[target])
    if task == "classification":
        y = class_text(frame[target])
        classes = sorted(set(y))
        if len(classes) > MAX_CLASSES:
            raise InvalidInput(
                f"'--target' {target!r} has {len(classes)} classes; a comparison handles at most {MAX_CLASSES} "
                "(is it a regression target? --task regression)"
            )
        chosen = class_text([positive])[0] if positive is not None else classes[-1]
        if positive is not None and chosen not in classes:
            raise InvalidInput(f"'--positive': {positive!r} is not a class of {target!r}")
    else:
        try:
            y = frame[target].to_numpy(dtype=float)
        except (TypeError, ValueError):
            raise InvalidInput(f"'--target' {target!r} holds text; a regression needs numbers") from None
        classes, chosen = [], ""
    settings = Settings(target, task, tuple(metric_names(task, metrics)), tuple(by), resamples, level, seed, positive)
    digest = "sha256:" + frame_digest(frame)
    keys = [settings.key(digest, v, versions[0]) for v in versions]
    result = Comparison(data, digest, len(frame), settings, positive=chosen)
    if not force:
        found = stored(client, versions, keys, KIND)
        if found is not None:
            result.evaluations = [_tagged(client, e, data_tags) for e in found]
            result.reused = True
            return result
    models = [load(client, v.uri) for v in versions]
    differences.check_signatures(models)
    scored = [score(m, frame, task, classes, chosen) for m in models]
    for s in scored:
        check_finite(s)
    bodies = paired.evaluate(scored, y, frame, settings, classes, chosen)
    result.scored, result.truth, result.positive = scored, y, chosen
    for body, s in zip(bodies, scored, strict=True):
        body["differences"] = differences.between(client, s.version, scored[0].version)
        body["compared_with"] = [v.uri for v in versions]
    for v, key, body in zip(versions, keys, bodies, strict=True):
        recorded = client.record_evaluation(
            v.uri,
            kind=KIND,
            key=key,
            data_digest=digest,
            source=data,
            rows=len(frame),
            body=body,
            data_tags=list(data_tags),
        )
        result.evaluations.append(recorded)
    return result


def check_finite(s: Scored) -> None:
    """Refuse a version whose answers hold NaN or infinity: no metric can be computed from them."""
    import numpy as np

    for values in (s.hard if s.hard.dtype.kind == "f" else None, s.scores):
        if values is None:
            continue
        bad = int((~np.isfinite(np.asarray(values, dtype=float))).sum())
        if bad:
            raise InvalidInput(f"{s.version.uri} answered {bad} value(s) that are not finite numbers (NaN or infinity)")


def _tagged(client: Client, found: Evaluation, data_tags: Sequence[str]) -> Evaluation:
    """A stored evaluation reused on data now given more tags: the same numbers, recorded with them all."""
    if set(data_tags) <= set(found.data_tags):
        return found
    return client.record_evaluation(
        found.uri,
        kind=found.kind,
        key=found.key,
        data_digest=found.data_digest,
        source=found.source,
        rows=found.rows,
        body=found.body,
        data_tags=sorted(set(found.data_tags) | set(data_tags)),
    )


def stored(client: Client, versions: Sequence[ModelVersion], keys: Sequence[str], kind: str) -> list[Evaluation] | None:
    """The newest stored evaluation of each version under its key; None unless every version has one."""
    found = [client.evaluations(v.uri, kind=kind, key=k, max_results=1) for v, k in zip(versions, keys, strict=True)]
    return [f[0] for f in found] if all(found) else None


__all__ = ["Comparison", "Scored", "Settings", "compare"]
