"""The one exception hierarchy of Covex.

Every error a user can see is a ``CovexError``; each class declares its stable
``code`` and its HTTP ``status`` once, here. The server renders
``{"error_code": code, "message": ...}``; the HTTP client rebuilds the same class
from the code; the CLI prints the message and exits non-zero.

    CovexError
    ├── InvalidInput (ValueError)            INVALID_PARAMETER_VALUE     400
    │   ├── ArtifactCorrupted                ARTIFACT_CORRUPTED          400
    │   ├── SignatureInvalid                 SIGNATURE_INVALID           400
    │   ├── RequestTimeout                   REQUEST_TIMEOUT             408
    │   └── RequestTooLarge                  REQUEST_TOO_LARGE           413
    │       └── HeadersTooLarge              REQUEST_HEADERS_TOO_LARGE   431
    ├── Unauthenticated                      UNAUTHENTICATED             401
    ├── PermissionDenied (PermissionError)   PERMISSION_DENIED           403
    ├── NotFound (LookupError)               RESOURCE_DOES_NOT_EXIST     404
    ├── MethodNotAllowed                     METHOD_NOT_ALLOWED          405
    ├── AlreadyExists                        RESOURCE_ALREADY_EXISTS     409
    ├── InvalidState                         INVALID_STATE               409
    │   ├── ChainBroken                      AUDIT_CHAIN_BROKEN          409
    │   └── UnsafeModel                      UNSAFE_MODEL                409
    ├── ServiceUnavailable                   TEMPORARILY_UNAVAILABLE     503
    │   ├── TooManyRequests                  REQUEST_LIMIT_EXCEEDED      429
    │   └── StorageUnavailable               STORAGE_UNAVAILABLE         503
    │       └── StorageFull                  INSUFFICIENT_STORAGE        507
    └── InternalError                        INTERNAL_ERROR              500
"""

from __future__ import annotations

from typing import ClassVar


class CovexError(Exception):
    """Root of every error Covex raises on purpose."""

    code: ClassVar[str] = "INTERNAL_ERROR"
    status: ClassVar[int] = 500

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def to_dict(self) -> dict[str, str]:
        return {"error_code": self.code, "message": self.message}


class InvalidInput(CovexError, ValueError):
    """A request carried a value that is malformed or not allowed."""

    code = "INVALID_PARAMETER_VALUE"
    status = 400


class ArtifactCorrupted(InvalidInput):
    """A file's content does not match the digest recorded for it."""

    code = "ARTIFACT_CORRUPTED"


class SignatureInvalid(InvalidInput):
    """A signature does not verify, names a key that is not trusted, or signs something else."""

    code = "SIGNATURE_INVALID"


class RequestTimeout(InvalidInput):
    """A request body stopped arriving for longer than the server waits."""

    code = "REQUEST_TIMEOUT"
    status = 408


class RequestTooLarge(InvalidInput):
    """A request body, or a list in it, is larger than the server accepts."""

    code = "REQUEST_TOO_LARGE"
    status = 413


class HeadersTooLarge(RequestTooLarge):
    """A request's line and headers are larger than the server reads."""

    code = "REQUEST_HEADERS_TOO_LARGE"
    status = 431


class Unauthenticated(CovexError):
    """No credentials, or credentials that are not valid."""

    code = "UNAUTHENTICATED"
    status = 401


class PermissionDenied(CovexError, PermissionError):
    """The caller is known but may not do this."""

    code = "PERMISSION_DENIED"
    status = 403


class NotFound(CovexError, LookupError):
    """The model, version, alias or file does not exist."""

    code = "RESOURCE_DOES_NOT_EXIST"
    status = 404


class MethodNotAllowed(CovexError):
    """The endpoint exists but does not take this HTTP method."""

    code = "METHOD_NOT_ALLOWED"
    status = 405


class AlreadyExists(CovexError):
    """Something with that name exists already."""

    code = "RESOURCE_ALREADY_EXISTS"
    status = 409


class InvalidState(CovexError):
    """The action is not allowed in the resource's current state."""

    code = "INVALID_STATE"
    status = 409


class ChainBroken(InvalidState):
    """The audit chain does not verify: a record was altered, deleted or reordered."""

    code = "AUDIT_CHAIN_BROKEN"


class UnsafeModel(InvalidState):
    """A version's latest scan found high-severity findings (or none ran): it is not loaded without an override."""

    code = "UNSAFE_MODEL"


class ServiceUnavailable(CovexError):
    """The server or one of its backing services cannot be reached."""

    code = "TEMPORARILY_UNAVAILABLE"
    status = 503


class TooManyRequests(ServiceUnavailable):
    """Too many requests of one kind at once from one caller; try again shortly."""

    code = "REQUEST_LIMIT_EXCEEDED"
    status = 429


class StorageUnavailable(ServiceUnavailable):
    """The artifact store failed to read or write (read-only, unreachable, I/O error)."""

    code = "STORAGE_UNAVAILABLE"
    status = 503


class StorageFull(StorageUnavailable):
    """The artifact store has no space left."""

    code = "INSUFFICIENT_STORAGE"
    status = 507


class InternalError(CovexError):
    """An unexpected failure; the message carries no internals."""


ERROR_CLASSES: dict[str, type[CovexError]] = {
    cls.code: cls
    for cls in (
        InvalidInput,
        ArtifactCorrupted,
        SignatureInvalid,
        RequestTimeout,
        RequestTooLarge,
        HeadersTooLarge,
        Unauthenticated,
        PermissionDenied,
        NotFound,
        MethodNotAllowed,
        AlreadyExists,
        InvalidState,
        ChainBroken,
        UnsafeModel,
        ServiceUnavailable,
        TooManyRequests,
        StorageUnavailable,
        StorageFull,
        InternalError,
    )
}


def error_from_code(code: str, message: str) -> CovexError:
    """Rebuild the exception class a server reported by its code."""
    return ERROR_CLASSES.get(code, CovexError)(message)
