"""Covex: a model registry for machine-learning teams.

import covex
c = covex.Client()                    # embedded in ./covex-data
c.create_model("churn")
v = c.create_version("churn", "model_dir/", metrics={"auc": 0.91})
"""

from covex.client import Client
from covex.domain.entities import FileEntry, GcReport, Model, ModelVersion, Page
from covex.domain.errors import (
    AlreadyExists,
    ArtifactCorrupted,
    CovexError,
    InternalError,
    InvalidInput,
    InvalidState,
    NotFound,
    PermissionDenied,
    ServiceUnavailable,
    Unauthenticated,
)
from covex.domain.uris import ModelRef, parse_model_uri
from covex.settings import Settings

__version__ = "0.1.0"

__all__ = [
    "AlreadyExists",
    "ArtifactCorrupted",
    "Client",
    "CovexError",
    "FileEntry",
    "GcReport",
    "InternalError",
    "InvalidInput",
    "InvalidState",
    "Model",
    "ModelRef",
    "ModelVersion",
    "NotFound",
    "Page",
    "PermissionDenied",
    "ServiceUnavailable",
    "Settings",
    "Unauthenticated",
    "__version__",
    "parse_model_uri",
]
