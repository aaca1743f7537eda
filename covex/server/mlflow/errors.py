"""Errors in MLflow's words: its error codes with the HTTP statuses MLflow's server gives them.

MLflow's clients read ``error_code`` and ``message`` from the body; the status differs from API v1's
for a few codes (an existing resource is a 400 there, a 409 here).
"""

from __future__ import annotations

from fastapi.responses import JSONResponse

from covex.domain.errors import CovexError, InvalidInput

PREFIXES = ("/api/2.0/mlflow/", "/api/2.0/preview/mlflow/", "/api/2.0/mlflow-artifacts/")
# MLflow's ERROR_CODE_TO_HTTP_STATUS where it differs from Covex's status for the same code.
# Covex's INVALID_STATE stays a 409: MLflow's 500 would make its clients retry for minutes.
_STATUS = {"RESOURCE_ALREADY_EXISTS": 400}
# Covex's own codes MLflow's clients do not know, as the MLflow code that means the same.
_CODE = {
    "ARTIFACT_CORRUPTED": "DATA_LOSS",
    "REQUEST_TIMEOUT": "BAD_REQUEST",
    "REQUEST_TOO_LARGE": "BAD_REQUEST",
    "REQUEST_HEADERS_TOO_LARGE": "BAD_REQUEST",
    "METHOD_NOT_ALLOWED": "ENDPOINT_NOT_FOUND",
    "AUDIT_CHAIN_BROKEN": "INVALID_STATE",
    "STORAGE_UNAVAILABLE": "TEMPORARILY_UNAVAILABLE",
    "INSUFFICIENT_STORAGE": "RESOURCE_EXHAUSTED",
}


def is_mlflow_path(path: str) -> bool:
    return path.startswith(PREFIXES)


class EndpointNotFound(CovexError):
    """A path under MLflow's API that Covex does not serve."""

    code = "ENDPOINT_NOT_FOUND"
    status = 404


class BadRequest(InvalidInput):
    """A request MLflow's server refuses as malformed rather than as a bad value."""

    code = "BAD_REQUEST"


def mlflow_error_response(exc: CovexError) -> JSONResponse:
    """``{"error_code", "message"}`` with MLflow's code and status for ``exc``."""
    code = _CODE.get(exc.code, exc.code)
    status = 404 if code == "ENDPOINT_NOT_FOUND" else _STATUS.get(code, exc.status)
    message = exc.message
    if code == "UNAUTHENTICATED" and message.startswith("no API token"):
        message += " (MLflow's clients: set MLFLOW_TRACKING_TOKEN to a Covex API token)"
    return JSONResponse({"error_code": code, "message": message}, status_code=status)
