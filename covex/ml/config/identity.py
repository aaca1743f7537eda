"""What makes a registered version the same one again: the identity digest of a config's inputs.

A version is what the model *is*: its files, the numbers it was judged by, the settings it was
trained with and the data it saw. Those go into the digest:

- the model's content (an MLflow folder's file manifest; a pickle or joblib file with its flavor,
  pip requirements and input example; an MLflow run's URI and tracking server),
- the metrics (file and inline) and the params,
- the datasets (name, role, URI, content digest, rows, columns) and the reference data's content.

What *describes* the model or says where it goes is left out, so that changing it never makes a
new version: tags (a ``run_date`` tag changes every day), description and card (a re-run writes
them onto the version found), the parent (which version ``@champion`` names moves over time), the
run id and link (a retried step with the same outputs finds its earlier version), aliases and
stage, and where the files lie (the same files in another folder are the same inputs).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from covex.ml.config.schema import Config

# Part of the digest: bumped whenever what goes into it changes, so old and new never collide.
# Format 1 also covered tags, description, card and parent.
DIGEST_FORMAT = 2


def _file_digest(path: Path) -> str:
    from covex.artifacts import hash_file

    return hash_file(path)[0]


def _source_fingerprint(config: Config) -> dict[str, Any]:
    source = config.model_source
    out: dict[str, Any] = {"kind": source.kind}
    if source.mlflow_model is not None:
        from covex.artifacts import scan
        from covex.artifacts.manifest import manifest_digest

        out["content"] = manifest_digest([f.entry for f in scan(source.mlflow_model)])
    elif source.pickle is not None or source.joblib is not None:
        file = source.pickle or source.joblib
        assert file is not None
        out.update(content=_file_digest(file), flavor=source.flavor, pip_requirements=source.pip_requirements)
        # Covex packages the file itself: the example becomes the signature, part of the model.
        out["input_example"] = _file_digest(config.input_example) if config.input_example else None
    else:
        # A run's files are not fetched to check a config: the run URI stands for them.
        out.update(uri=source.mlflow_run, tracking_uri=source.tracking_uri)
    return out


def identity_digest(config: Config) -> str:
    """SHA-256 over the model's content, metrics, params, datasets and reference data of ``config``."""
    datasets = []
    for spec, described in zip(config.datasets, config.described_datasets, strict=True):
        entry = {k: v for k, v in described.items() if k != "uri"}
        entry["uri"] = spec.uri or ""  # a local path's location is not part of the identity, its content is
        datasets.append(entry)
    payload = {
        "format": DIGEST_FORMAT,
        "source": _source_fingerprint(config),
        "metrics": config.all_metrics,
        "params": config.params,
        "datasets": datasets,
        "reference_data": _file_digest(config.reference_data) if config.reference_data else None,
    }
    text = json.dumps(payload, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()
