"""The registry's use cases behind one façade: one method per action, one transaction each.

Each concept lives in a module of its own; ``RegistryService`` joins them so adapters (SDK,
server, CLI) hold one object:

- ``covex.service.models``: models as a whole;
- ``covex.service.versions``: versions, their files, metadata and documents (cards);
- ``covex.service.placement``: stage and alias moves and their history;
- ``covex.service.blobs``: the files themselves and who may write or read them;
- ``covex.service.deployments``: where versions run (scoring servers, batch runs);
- ``covex.service.evaluations``: what versions scored on named data (comparisons, explanations);
- ``covex.service.sources``: versions registered from where MLflow says a model is.

Governance and upkeep are services beside it, reached as ``access``, ``approvals``, ``audit``,
``webhooks``, ``monitoring``, ``tracking`` (MLflow's experiments, runs and logged models),
``trust`` (file scans, signatures, bundles) and ``maintenance``.
"""

from __future__ import annotations

import logging

from sqlalchemy.exc import OperationalError

from covex.domain.entities import FsckReport, GcReport, SweepReport
from covex.domain.errors import ServiceUnavailable
from covex.service.access import AccessService
from covex.service.approvals import ApprovalService
from covex.service.audit import AuditService
from covex.service.blobs import BlobService
from covex.service.deployments import DeploymentService
from covex.service.evaluations import EvaluationService
from covex.service.maintenance import FSCK_BATCH, GC_GRACE_SECONDS, MaintenanceService
from covex.service.models import ModelService
from covex.service.monitoring import MonitoringService
from covex.service.placement import PlacementService
from covex.service.sources import SourceService
from covex.service.tracking import TrackingService
from covex.service.trust import TrustService
from covex.service.versions import VersionService
from covex.service.webhooks import WebhookService

log = logging.getLogger("covex.service")


class RegistryService(
    ModelService, VersionService, PlacementService, BlobService, DeploymentService, EvaluationService, SourceService
):
    """The registry over one metadata database and one blob store, acting as one principal."""

    def close(self) -> None:
        self.engine.dispose()

    @property
    def access(self) -> AccessService:
        """Users, groups, tokens and grants."""
        return self._sibling(AccessService)

    @property
    def approvals(self) -> ApprovalService:
        """Policies, approval requests, rollback and placement history."""
        return self._sibling(ApprovalService)

    @property
    def audit(self) -> AuditService:
        """The audit trail: list, verify, export."""
        return self._sibling(AuditService)

    @property
    def webhooks(self) -> WebhookService:
        """Webhook subscriptions and their deliveries."""
        return self._sibling(WebhookService)

    @property
    def monitoring(self) -> MonitoringService:
        """Monitor configs, drift references and the results of checks."""
        return self._sibling(MonitoringService)

    @property
    def trust(self) -> TrustService:
        """File scans, signing keys, signed statements, verification and bundles."""
        return self._sibling(TrustService)

    @property
    def tracking(self) -> TrackingService:
        """MLflow's tracking records: experiments, runs, logged models and their artifacts."""
        return self._sibling(TrackingService)

    @property
    def maintenance(self) -> MaintenanceService:
        """Garbage collection, the sweeper of abandoned uploads, the integrity check."""
        return self._sibling(MaintenanceService)

    def ping(self) -> None:
        """Raise ``ServiceUnavailable`` unless the database answers."""
        try:
            with self.engine.connect() as conn:
                conn.exec_driver_sql("SELECT 1")
        except OperationalError as exc:
            # The reason (host, port, database name) goes to the log: /ready answers anyone.
            log.warning("database unavailable: %s", exc.orig)
            raise ServiceUnavailable("the database does not answer; see the server log") from None

    # -- maintenance (``covex.service.maintenance``) ---------------------------------

    def gc(self, *, apply: bool = False, grace_seconds: float = GC_GRACE_SECONDS) -> GcReport:
        """Find (and with ``apply`` delete) blobs no version references (admins only)."""
        return self.maintenance.gc(apply=apply, grace_seconds=grace_seconds)

    def sweep_pending(self, older_than: float | None = None) -> SweepReport:
        """Mark FAILED the versions left PENDING longer than ``older_than`` seconds (admins only)."""
        return self.maintenance.sweep_pending(older_than)

    def fsck(self, *, after: str | None = None, limit: int = FSCK_BATCH) -> FsckReport:
        """Re-hash the stored files of the next ``limit`` models after ``after`` (admins only)."""
        return self.maintenance.fsck(after=after, limit=limit)
