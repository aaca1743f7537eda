"""How errors leave the server: one JSON shape, and database refusals named by their cause."""

from __future__ import annotations

import html
import json

from fastapi.responses import HTMLResponse, JSONResponse

from covex.domain.errors import CovexError, InvalidInput
from covex.server.mlflow.errors import is_mlflow_path, mlflow_error_response


class _AsciiJSON(JSONResponse):
    def render(self, content: object) -> bytes:
        # A message may quote what the caller sent, lone surrogates included: escape rather than fail.
        return json.dumps(content, ensure_ascii=True, separators=(",", ":")).encode()


_API = ("/api/", "/docs", "/redoc", "/openapi.json", "/health", "/ready")


def is_ui_path(path: str) -> bool:
    """A path of the web UI: everything but the API, its docs and the health checks."""
    return not path.startswith(_API)


def plain_error_page(error: CovexError) -> HTMLResponse:
    """An error as a small HTML page, for a refusal made before the UI's own pages are reached."""
    body = (
        f'<!doctype html><html lang="en"><meta charset="utf-8"><title>{error.status} · Covex</title>'
        f'<h1>{error.status} · {html.escape(error.code)}</h1><p role="alert">{html.escape(error.message)}</p>'
        '<p><a href="/">Models</a></p></html>'
    )
    return HTMLResponse(body, status_code=error.status, headers={"X-Content-Type-Options": "nosniff"})


def error_response(error: CovexError, path: str = "") -> JSONResponse:
    """The one rendering of an error: ``{"error_code": ..., "message": ...}`` with the class's status
    (under MLflow's API, ``path``, with MLflow's code and status)."""
    if is_mlflow_path(path):
        return mlflow_error_response(error)
    return _AsciiJSON(error.to_dict(), status_code=error.status)


def unstorable(exc: Exception) -> InvalidInput:
    """A value the database refused to store, named by its cause (the same answer on SQLite and PostgreSQL)."""
    if isinstance(exc, UnicodeEncodeError):
        return InvalidInput("text in the request must be valid Unicode (it holds a lone surrogate)")
    cause = str(getattr(exc, "orig", exc)).lower()
    if "nul" in cause or "0x00" in cause:
        return InvalidInput("text in the request must not contain NUL characters")
    if isinstance(exc, OverflowError) or "out of range" in cause or "too large" in cause:
        return InvalidInput("a number in the request is out of range (integers must fit in 64 bits)")
    return InvalidInput("a value in the request cannot be stored: check its type and size")
