"""Config-driven registration: one YAML file describes a finished model; Covex checks it, then registers it.

    model: store-sales
    model_source: {mlflow_model: ./out/model}
    metrics_file: ./out/metrics.json
    datasets: [{name: train, path: ./data/train.csv}]
    aliases: [candidate]

``load_config`` reads and checks everything (keys, types, files, the metrics file, the data
frames) and writes nothing; every problem names the key and its line in the file.
``run_config`` then registers the model through the SDK, once: the identity digest of the
inputs (model files, metrics, params, datasets; see ``identity``) is stored in the version tag
``covex.source_digest``, and a re-run with the same inputs finds that version, writes the
config's tags, description and card onto it, and places it (aliases, stage; a protected one by
an approval request) without undoing what happened since.

Modules: ``schema`` (the keys), ``loading`` (reading and checking), ``interpolation``
(``${VAR}``), ``readers`` (metrics files, frames, datasets, card), ``identity`` (the digest),
``registration`` (registering once), ``placement`` (aliases and stage, or requests).
"""

from covex.ml.config.loading import load_config
from covex.ml.config.placement import Move
from covex.ml.config.registration import (
    Change,
    RegistrationResult,
    RegistryCheck,
    check_against_registry,
    find_registered,
    register_config,
    run_config,
)
from covex.ml.config.schema import Config, DatasetSpec, ModelSource, ParentSpec, RunInfo
from covex.ml.registering import SOURCE_DIGEST_TAG

__all__ = [
    "SOURCE_DIGEST_TAG",
    "Change",
    "Config",
    "DatasetSpec",
    "ModelSource",
    "Move",
    "ParentSpec",
    "RegistrationResult",
    "RegistryCheck",
    "RunInfo",
    "check_against_registry",
    "find_registered",
    "load_config",
    "register_config",
    "run_config",
]
