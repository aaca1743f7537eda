"""Covex: a model registry for machine-learning teams.

import covex
c = covex.Client()                    # embedded in ./covex-data
c.create_model("churn")
v = c.create_version("churn", "model_dir/", metrics={"auc": 0.91})
"""

from typing import Any

from covex.client import Client
from covex.domain.deployments import Deployment
from covex.domain.entities import FileEntry, GcReport, Model, ModelEvent, ModelVersion, Page
from covex.domain.errors import (
    AlreadyExists,
    ArtifactCorrupted,
    CovexError,
    HeadersTooLarge,
    InternalError,
    InvalidInput,
    InvalidState,
    NotFound,
    PermissionDenied,
    RequestTooLarge,
    ServiceUnavailable,
    SignatureInvalid,
    StorageFull,
    StorageUnavailable,
    TooManyRequests,
    Unauthenticated,
    UnsafeModel,
)
from covex.domain.evaluations import Evaluation
from covex.domain.monitoring import MonitorResult
from covex.domain.uris import ModelRef, parse_model_uri
from covex.settings import Settings

__version__ = "0.1.0"


def load_model(uri: str, *, client: Client | None = None, cache_dir: str | None = None, override_scan: str = "") -> Any:
    """Load ``models:/...`` as an MLflow pyfunc model; every file is verified before it is deserialised.

    A version whose latest scan found high-severity findings raises ``UnsafeModel`` unless
    ``override_scan`` gives the reason to load it anyway (audited).
    """
    from covex.ml.loading import load_model as _load

    return _load(uri, client=client, cache_dir=cache_dir, override_scan=override_scan)


__all__ = [
    "AlreadyExists",
    "ArtifactCorrupted",
    "Client",
    "CovexError",
    "Deployment",
    "Evaluation",
    "FileEntry",
    "GcReport",
    "HeadersTooLarge",
    "InternalError",
    "InvalidInput",
    "InvalidState",
    "Model",
    "ModelEvent",
    "ModelRef",
    "ModelVersion",
    "MonitorResult",
    "NotFound",
    "Page",
    "PermissionDenied",
    "RequestTooLarge",
    "ServiceUnavailable",
    "Settings",
    "SignatureInvalid",
    "StorageFull",
    "StorageUnavailable",
    "TooManyRequests",
    "Unauthenticated",
    "UnsafeModel",
    "__version__",
    "load_model",
    "parse_model_uri",
]
