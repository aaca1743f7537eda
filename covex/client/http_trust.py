"""Trust over HTTP: the same methods as ``covex.service.trust.TrustService``."""

from __future__ import annotations

import os
from typing import IO, TYPE_CHECKING, Any

import httpx

from covex.domain.errors import ServiceUnavailable
from covex.domain.scans import ScanReport
from covex.domain.signing import BundleImport, Provenance, SigningKey, Statement, Verification

if TYPE_CHECKING:
    from covex.client.http import HttpBackend

API = "/api/v1"


def _v(name: str, version: int) -> str:
    from covex.client.http import _v as version_path

    return version_path(name, version)


class HttpTrust:
    """Scans, keys, statements, verification and bundles, on a Covex server."""

    def __init__(self, backend: HttpBackend) -> None:
        self.backend = backend

    def scan_version(self, name: str, version: int) -> ScanReport:
        return ScanReport.model_validate(self.backend._call("POST", f"{_v(name, version)}/scans"))

    def latest_scan(self, name: str, version: int) -> ScanReport | None:
        found = self.backend._call("GET", f"{_v(name, version)}/scans", params={"max_results": 1})["scans"]
        return ScanReport.model_validate(found[0]) if found else None

    def list_scans(self, name: str, version: int, max_results: int = 20) -> list[ScanReport]:
        found = self.backend._call("GET", f"{_v(name, version)}/scans", params={"max_results": max_results})
        return [ScanReport.model_validate(s) for s in found["scans"]]

    def accept_scan(self, name: str, version: int, reason: str) -> ScanReport:
        body = self.backend._call("POST", f"{_v(name, version)}/scans/accept", json={"reason": reason})
        return ScanReport.model_validate(body)

    def check_loadable(self, name: str, version: int, *, override: str = "") -> ScanReport:
        body = self.backend._call("POST", f"{_v(name, version)}/loadable", json={"override": override})
        return ScanReport.model_validate(body)

    def list_keys(self) -> list[SigningKey]:
        return [SigningKey.model_validate(k) for k in self.backend._call("GET", f"{API}/keys")["keys"]]

    def trust_key(self, name: str, public_key: str) -> SigningKey:
        body = self.backend._call("POST", f"{API}/keys", json={"name": name, "public_key": public_key})
        return SigningKey.model_validate(body)

    def untrust_key(self, key_id: str) -> None:
        from urllib.parse import quote

        self.backend._call("DELETE", f"{API}/keys/{quote(str(key_id), safe='')}")

    def list_statements(self, name: str, version: int) -> list[Statement]:
        found = self.backend._call("GET", f"{_v(name, version)}/statements")["statements"]
        return [Statement.model_validate(s) for s in found]

    def verify_version(self, name: str, version: int) -> Verification:
        # The server hashes every file again before it answers: wait as long as a transfer may take.
        found = self.backend._call("POST", f"{_v(name, version)}/verify", timeout=self.backend.settings.http_timeout)
        return Verification.model_validate(found)

    def export_bundle(self, name: str, version: int, out: IO[bytes]) -> int:
        written = 0
        try:
            with self.backend.http.stream("GET", f"{_v(name, version)}/bundle") as response:
                if not response.is_success:
                    response.read()
                    self.backend._raise_for(response)
                for chunk in response.iter_bytes(self.backend.settings.chunk_size):
                    out.write(chunk)
                    written += len(chunk)
        except httpx.TransportError as exc:
            raise ServiceUnavailable(f"the bundle's download broke off: {exc}") from None
        return written

    def import_bundle(self, source: IO[bytes], *, name: str | None = None, stage: str | None = None) -> BundleImport:
        start = source.tell()
        size = source.seek(0, os.SEEK_END) - start
        source.seek(start)
        chunk = self.backend.settings.chunk_size

        def chunks() -> Any:
            while block := source.read(chunk):
                yield block

        params = {k: v for k, v in (("name", name), ("stage", stage)) if v is not None}
        headers = {"Content-Length": str(size), "Content-Type": "application/octet-stream"}
        body = self.backend._call("POST", f"{API}/bundles", content=chunks(), headers=headers, params=params)
        return BundleImport.model_validate(body)

    def get_provenance(self, name: str, version: int) -> Provenance | None:
        found = self.backend._call("GET", f"{_v(name, version)}/provenance")["provenance"]
        return None if found is None else Provenance.model_validate(found)
