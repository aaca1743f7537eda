"""The audit trail over HTTP: the same methods as ``covex.service.audit.AuditService``."""

from __future__ import annotations

import io
import os
from datetime import datetime
from typing import IO, TYPE_CHECKING, Any

import httpx

from covex.domain import audit
from covex.domain.audit import AuditRecord, ChainReport
from covex.domain.entities import Page
from covex.domain.errors import ChainBroken, InvalidInput, ServiceUnavailable

if TYPE_CHECKING:
    from covex.client.http import HttpBackend

AUDIT = "/api/v1/audit"
CHUNK = 1024 * 1024


class HttpAudit:
    """The tamper-evident audit trail of a Covex server: list, verify, export."""

    def __init__(self, backend: HttpBackend) -> None:
        self.backend = backend

    def list_records(
        self,
        *,
        target: str | None = None,
        actor: str | None = None,
        action: str | None = None,
        outcome: str | None = None,
        since: int | datetime | None = None,
        until: int | datetime | None = None,
        max_results: int = 100,
        page_token: str | None = None,
    ) -> Page[AuditRecord]:
        """Records newest first, filtered (see ``AuditService.list_records``)."""
        params: dict[str, Any] = {"max_results": max_results}
        for key, value in (
            ("target", target),
            ("actor", actor),
            ("action", action),
            ("outcome", outcome),
            ("page_token", page_token),
        ):
            if value:
                params[key] = value
        for key, when in (("since", since), ("until", until)):
            if when is not None:
                params[key] = _millis(when, key)
        return Page[AuditRecord].model_validate(self.backend._call("GET", AUDIT, params=params))

    def verify(self, expect_head: str | None = None) -> ChainReport:
        """Recompute the chain on the server; a broken chain is a report with ``ok`` False, as embedded."""
        params = {} if expect_head is None else {"expect_head": expect_head}
        try:
            response = self.backend.http.get(f"{AUDIT}/verify", params=params)
        except httpx.TransportError as exc:
            raise ServiceUnavailable(f"cannot reach Covex server at {self.backend.settings.uri}: {exc}") from None
        if response.status_code == ChainBroken.status and "report" in response.json():
            return ChainReport.model_validate(response.json()["report"])
        self.backend._raise_for(response)
        return ChainReport.model_validate(response.json())

    def export(self, out: str | os.PathLike[str] | IO[bytes] | IO[str]) -> int:
        """Stream the trail as JSON Lines to a path or stream; return the record count."""
        if isinstance(out, (str, os.PathLike)):
            with open(out, "wb") as f:
                return self._export(f)
        return self._export(out)

    def _export(self, out: IO[bytes] | IO[str]) -> int:
        text = isinstance(out, io.TextIOBase)
        lines, tail = 0, b""
        backend = self.backend
        try:
            with backend.http.stream("GET", f"{AUDIT}/export") as response:
                if not response.is_success:
                    response.read()
                    backend._raise_for(response)
                for chunk in response.iter_bytes(CHUNK):
                    lines += chunk.count(b"\n")
                    tail = (tail + chunk)[-256:]
                    out.write(chunk.decode() if text else chunk)  # type: ignore[arg-type]
        except httpx.TransportError as exc:
            raise ServiceUnavailable(f"the audit export broke off: {exc}") from None
        out.flush()
        # The last line is the head line, not a record (absent only from an empty or cut-off answer).
        last = tail.rstrip(b"\n").rsplit(b"\n", 1)[-1]
        return lines - 1 if last.startswith(b'{"head"') else lines

    @staticmethod
    def verify_file(source: str | os.PathLike[str] | IO[bytes] | IO[str]) -> ChainReport:
        """Verify an export offline (no server): a path or an open stream."""
        return audit.verify_file(source)


def _millis(value: int | datetime, field: str) -> int:
    if isinstance(value, datetime):
        return int(value.timestamp() * 1000)
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidInput(f"'{field}' must be a datetime or epoch milliseconds, got {value!r}")
    return value
