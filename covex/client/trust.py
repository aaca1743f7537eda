"""``client.trust``: file scans, signing keys, signed statements, verification and bundles.

Embedded, it is the service's own ``covex.service.trust.TrustService``; over HTTP,
``covex.client.http_trust.HttpTrust``. Both satisfy ``Trust`` with identical signatures.
"""

from __future__ import annotations

from typing import IO, TYPE_CHECKING, Protocol, runtime_checkable

from covex.domain.scans import ScanReport
from covex.domain.signing import BundleImport, Provenance, SigningKey, Statement, Verification


@runtime_checkable
class Trust(Protocol):
    """Scans, keys, statements, verification and bundles."""

    def scan_version(self, name: str, version: int) -> ScanReport:
        """Scan a version's files now, without loading them (the editor role)."""
        ...

    def latest_scan(self, name: str, version: int) -> ScanReport | None:
        """The version's latest scan (None: never scanned)."""
        ...

    def list_scans(self, name: str, version: int, max_results: int = 20) -> list[ScanReport]:
        """A version's scans, newest first."""
        ...

    def accept_scan(self, name: str, version: int, reason: str) -> ScanReport:
        """Accept the findings of the latest scan after a review (managers; audited): the version then loads."""
        ...

    def check_loadable(self, name: str, version: int, *, override: str = "") -> ScanReport:
        """Raise ``UnsafeModel`` unless the version may be loaded (``override``: a reason, audited)."""
        ...

    def list_keys(self) -> list[SigningKey]:
        """The registry's own public keys and the keys it trusts."""
        ...

    def trust_key(self, name: str, public_key: str) -> SigningKey:
        """Trust another registry's public key (base64 or PEM); the admin's."""
        ...

    def untrust_key(self, key_id: str) -> None:
        """Stop trusting a key."""
        ...

    def list_statements(self, name: str, version: int) -> list[Statement]:
        """The signed statements about a version."""
        ...

    def verify_version(self, name: str, version: int) -> Verification:
        """Check every statement about a version and hash every file again."""
        ...

    def export_bundle(self, name: str, version: int, out: IO[bytes]) -> int:
        """Write a signed bundle of a version to ``out``; the bytes written."""
        ...

    def import_bundle(self, source: IO[bytes], *, name: str | None = None, stage: str | None = None) -> BundleImport:
        """Import a bundle (seekable ``source``), checking every signature and byte first."""
        ...

    def get_provenance(self, name: str, version: int) -> Provenance | None:
        """Where an imported version came from, with the history its bundle carried (None: made here)."""
        ...


if TYPE_CHECKING:
    from covex.client.http_trust import HttpTrust
    from covex.service.trust import TrustService

    _BOTH: tuple[type[Trust], type[Trust]] = (HttpTrust, TrustService)

__all__ = ["Trust"]
