"""Trust in what gets promoted, behind one façade (``RegistryService.trust``):

- ``covex.service.scans``: every version's files scanned without loading them; the ``scan:`` gate;
  what ``load_model`` refuses;
- ``covex.service.signing``: the registry's key, the keys it trusts, signed promotion statements,
  ``verify``;
- ``covex.service.bundles``: signed promotion bundles between registries.
"""

from __future__ import annotations

from covex.service.bundles import BundleService
from covex.service.scans import ScanService
from covex.service.signing import SigningService


class TrustService(ScanService, SigningService, BundleService):
    """Scans, signing keys, statements, verification and bundles."""


__all__ = ["TrustService"]
