"""What a scoring request can fail with, each with its HTTP status and the field it names.

    CovexError
    ├── InvalidInput                 INVALID_PARAMETER_VALUE   400   (BadInput: with ``field``)
    │   ├── BadInput                 INVALID_PARAMETER_VALUE   400
    │   ├── UnsupportedMediaType     UNSUPPORTED_MEDIA_TYPE    415
    │   └── RequestTooLarge          REQUEST_TOO_LARGE         413
    ├── Unauthenticated              UNAUTHENTICATED           401
    ├── NotFound                     RESOURCE_DOES_NOT_EXIST   404
    ├── ServiceUnavailable           TEMPORARILY_UNAVAILABLE   503   (NotReady: no model loaded yet)
    └── ModelFailed                  MODEL_ERROR               500   (the model raised on valid input)

Each is counted in ``/metrics`` under ``covex_serving_errors_total{kind=...}`` by its ``kind``.
"""

from __future__ import annotations

from typing import ClassVar

from covex.domain.errors import CovexError, InvalidInput, ServiceUnavailable


class BadInput(InvalidInput):
    """The request's data does not fit the served version's signature, or cannot be read at all."""

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field

    def to_dict(self) -> dict[str, str]:
        out = super().to_dict()
        if self.field is not None:
            out["field"] = self.field
        return out


class UnsupportedMediaType(InvalidInput):
    """The body's content type is not one the endpoint reads."""

    code = "UNSUPPORTED_MEDIA_TYPE"
    status = 415


class NotReady(ServiceUnavailable):
    """No version is loaded yet (or none could be)."""


class ModelFailed(CovexError):
    """The model raised while predicting on input that fits its signature."""

    code: ClassVar[str] = "MODEL_ERROR"
    status: ClassVar[int] = 500


def kind_of(error: CovexError) -> str:
    """The ``kind`` label an error is counted under."""
    from covex.domain.errors import RequestTooLarge, Unauthenticated

    if isinstance(error, RequestTooLarge):
        return "too_large"
    if isinstance(error, UnsupportedMediaType):
        return "unsupported_media_type"
    if isinstance(error, InvalidInput):
        return "bad_input"
    if isinstance(error, Unauthenticated):
        return "unauthenticated"
    if isinstance(error, NotReady):
        return "not_ready"
    if isinstance(error, ModelFailed):
        return "model_error"
    return "other"
