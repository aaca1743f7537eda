"""Scans of versions' files (``covex.domain.scans``): queued when a version turns READY, run in the
background by servers (or at once by embedded registries), on demand, and before ``load_model``.

A queued scan is a PENDING row; a scanner claims it with an atomic update, so server replicas
never scan the same version twice at once, and a claim left by a killed process is taken again
after ``STALE_CLAIM_MS``. The files are read from the blob store outside any transaction; only
the result is written. Every finished scan is audited (``scan.run``) and announced
(``version.scanned``); loading a version despite findings is audited too (``scan.override``).
"""

from __future__ import annotations

import json
import logging
from typing import Any

from sqlalchemy import Connection, Row, bindparam, insert, or_, select, update

from covex.artifacts import scanner
from covex.domain.errors import InvalidInput, InvalidState, UnsafeModel
from covex.domain.gates import GateResult
from covex.domain.names import MAX_COMMENT_LENGTH, validate_id, validate_model_name, validate_text
from covex.domain.scans import ScanReport, evaluate_scan, findings_text, outcome
from covex.service.base import ServiceBase, now_ms
from covex.store import queries
from covex.store.prepared import Prepared
from covex.store.schema import models
from covex.store.trust_schema import version_scans

log = logging.getLogger("covex.service")
_FINISH = Prepared(
    update(version_scans)
    .where(version_scans.c.id == bindparam("scan_id"))
    .values({k: bindparam(k) for k in ("verdict", "max_severity", "finished_at", "files", "findings")})
)
_QUEUE = Prepared(
    insert(version_scans).returning(version_scans.c.id),
    keys=(
        "model_id",
        "version_id",
        "version",
        "verdict",
        "max_severity",
        "scanner",
        "scanner_version",
        "trigger",
        "requested_by",
        "created_at",
        "claimed_at",
        "finished_at",
        "manifest_digest",
        "files",
        "findings",
    ),
)

STALE_CLAIM_MS = 15 * 60 * 1000
MAX_FINDINGS = 500  # stored per scan; the verdict counts them all
_SELECT = select(version_scans, models.c.name.label("model_name")).select_from(
    version_scans.join(models, models.c.id == version_scans.c.model_id)
)


def _claimable() -> Any:
    """A queued scan no process holds: never claimed, or claimed by one that has not finished in time."""
    stale = now_ms() - STALE_CLAIM_MS
    claim = version_scans.c.claimed_at
    return (version_scans.c.verdict == "PENDING") & or_(claim.is_(None), claim < stale)


def _entity(row: Any) -> ScanReport:
    return ScanReport(
        id=row.id,
        model=row.model_name,
        version=row.version,
        verdict=row.verdict,
        max_severity=row.max_severity,
        scanner=row.scanner,
        scanner_version=row.scanner_version,
        trigger=row.trigger,
        requested_by=row.requested_by,
        created_at=row.created_at,
        finished_at=row.finished_at,
        manifest_digest=row.manifest_digest,
        files=json.loads(row.files),
        findings=json.loads(row.findings),
        accepted_by=row.accepted_by,
        accepted_at=row.accepted_at,
        accepted_reason=row.accepted_reason or "",
    )


class ScanService(ServiceBase):
    """Scan versions' files and keep what the scans found."""

    def queue_scan(
        self, conn: Connection, model_id: int, version_row: Any, trigger: str = "ready", *, claimed: bool = False
    ) -> int:
        """Queue a scan of a version (a row with ``id``, ``version``, ``manifest_digest``) in ``conn``'s
        transaction; its id."""
        return int(
            _QUEUE.all(
                conn,
                {
                    "model_id": model_id,
                    "version_id": version_row.id,
                    "version": version_row.version,
                    "verdict": "PENDING",
                    "max_severity": None,
                    "scanner": scanner.SCANNER_NAME,
                    "scanner_version": scanner.scanner_version(),
                    "trigger": trigger,
                    "requested_by": self.actor,
                    "created_at": now_ms(),
                    "claimed_at": now_ms() if claimed else None,
                    "finished_at": None,
                    "manifest_digest": version_row.manifest_digest,
                    "files": "[]",
                    "findings": "[]",
                },
            )[0].id
        )

    def after_ready(self, name: str, version: int, *, now: bool = False) -> None:
        """Scan a version that just turned READY, when this registry scans inline or ``now`` (never raises)."""
        if not (self.scan_inline or now):
            return
        try:
            with self._tx(write=False) as conn:
                model = self._model_row(conn, name)
                row = self._version_row(conn, model, version)
                pending = conn.execute(
                    select(version_scans.c.id).where(
                        version_scans.c.version_id == row.id, version_scans.c.verdict == "PENDING"
                    )
                ).scalars()
                ids = list(pending)
            for scan_id in ids:
                self._run_claimed(scan_id)
        except Exception:
            log.exception("scanning version %s of %r failed", version, name)

    def scan_version(self, name: str, version: int) -> ScanReport:
        """Scan a version's files now (the editor role) and return the result."""
        validate_model_name(name)
        validate_id(version, "version")
        return self._scan_now(name, version, "editor", "demand")

    def _scan_now(self, name: str, version: int, role: str, trigger: str) -> ScanReport:
        """A scan queued already claimed by this caller, then run."""
        with self._tx(write=True) as conn:
            model, row = self._version_for(conn, name, version, role, "scan.run")
            scan_id = self.queue_scan(conn, model.id, row, trigger, claimed=True)
        return self._finish(scan_id)

    def run_pending_scans(self, limit: int = 20) -> int:
        """Claim and run up to ``limit`` queued scans (a server's background chore); how many ran."""
        ran = 0
        while ran < limit:
            with self._tx(write=False) as conn:
                waiting = conn.execute(
                    select(version_scans.c.id).where(_claimable()).order_by(version_scans.c.id).limit(1)
                ).scalar_one_or_none()
            if waiting is None:
                break
            self._run_claimed(waiting)
            ran += 1
        return ran

    def _run_claimed(self, scan_id: int) -> ScanReport | None:
        """Claim a queued scan (None when another process holds it) and run it."""
        with self._tx(write=True) as conn:
            claimed = conn.execute(
                update(version_scans).where(version_scans.c.id == scan_id, _claimable()).values(claimed_at=now_ms())
            ).rowcount
        return self._finish(scan_id) if claimed == 1 else None

    def _finish(self, scan_id: int) -> ScanReport:
        """Read and analyse every file of the scan's version, then store the verdict."""
        with self._tx(write=False) as conn:
            scan = conn.execute(select(version_scans).where(version_scans.c.id == scan_id)).one()
            files = queries.load_files(conn, scan.version_id)
        reports: list[dict[str, Any]] = []
        findings: list[dict[str, Any]] = []
        seen: dict[str, scanner.FileScan] = {}
        for f in files:
            try:
                if f.digest not in seen:
                    with self.blobs.open(f.digest) as stream:
                        seen[f.digest] = scanner.scan_file(f.path, stream)
                found = seen[f.digest]
                reports.append({"path": f.path, "format": found.format, "error": found.error})
                findings += [{**x.to_dict(), "file": f.path + x.file[len(found.path) :]} for x in found.findings]
            except Exception as exc:  # noqa: BLE001 - a file that cannot be read or analysed is an ERROR, never a pass
                problem = f"could not be scanned: {exc}"[:500]
                reports.append({"path": f.path, "format": "unknown", "error": problem})
        with self._tx(write=True) as conn:
            model = conn.execute(select(models).where(models.c.id == scan.model_id)).one()
            self._record(conn, model, scan_id, scan.version, reports, findings)
            return _entity(conn.execute(_SELECT.where(version_scans.c.id == scan_id)).one())

    def record_nothing_to_scan(self, conn: Connection, model: Any, version_row: Any) -> None:
        """A version of no files (a ``source`` only) in ``conn``'s transaction: its scan is finished as it is
        queued, CLEAN, with the records a scan leaves; no scanner has anything to read later."""
        scan_id = self.queue_scan(conn, model.id, version_row, claimed=True)
        self._record(conn, model, scan_id, version_row.version, [], [])

    def _record(
        self,
        conn: Connection,
        model: Any,
        scan_id: int,
        version: int,
        reports: list[dict[str, Any]],
        findings: list[dict[str, Any]],
    ) -> None:
        """Store a finished scan's verdict, audited as ``scan.run`` and announced as ``version.scanned``."""
        verdict, worst = outcome(reports, findings)
        values = {
            "scan_id": scan_id,
            "verdict": verdict,
            "max_severity": worst,
            "finished_at": now_ms(),
            "files": json.dumps(reports),
            "findings": json.dumps(findings[:MAX_FINDINGS]),
        }
        _FINISH.all(conn, values)
        summary = {"scan": scan_id, "verdict": verdict, "max_severity": worst, "findings": len(findings)}
        self._audit(conn, "scan.run", f"model:{model.name}/{version}", None, summary)
        self._emit(conn, "version.scanned", {"model": model.name, "version": version, **summary}, model.id)

    # -- reading ------------------------------------------------------------------------

    def latest_scan(self, name: str, version: int) -> ScanReport | None:
        """The version's latest scan (None when it was never scanned); the reader role."""
        validate_model_name(name)
        validate_id(version, "version")
        with self._tx(write=False) as conn:
            _, row = self._version_for(conn, name, version, "reader", "scan.read", lock=False)
            return self.latest_scan_of(conn, row.id)

    def latest_scan_of(self, conn: Connection, version_id: int) -> ScanReport | None:
        """The latest finished scan of a version, else the latest queued one."""
        found = conn.execute(
            _SELECT.where(version_scans.c.version_id == version_id)
            .order_by((version_scans.c.verdict == "PENDING").asc(), version_scans.c.id.desc())
            .limit(1)
        ).one_or_none()
        return None if found is None else _entity(found)

    def list_scans(self, name: str, version: int, max_results: int = 20) -> list[ScanReport]:
        """A version's scans, newest first."""
        validate_model_name(name)
        validate_id(version, "version")
        if isinstance(max_results, bool) or not isinstance(max_results, int) or not 1 <= max_results <= 100:
            raise InvalidInput(f"'max_results' must be from 1 to 100, got {max_results!r}")
        with self._tx(write=False) as conn:
            _, row = self._version_for(conn, name, version, "reader", "scan.read", lock=False)
            q = _SELECT.where(version_scans.c.version_id == row.id).order_by(version_scans.c.id.desc())
            return [_entity(r) for r in conn.execute(q.limit(max_results))]

    def check_loadable(self, name: str, version: int, *, override: str = "") -> ScanReport:
        """Whether ``load_model`` may load a version: its latest scan must have no high-severity finding and no
        file it could not analyse (a version never scanned is scanned first). ``override`` (a reason) loads it
        anyway, audited as ``scan.override``."""
        override = validate_text(override, "override", MAX_COMMENT_LENGTH)
        report = self.latest_scan(name, version)
        if report is None or report.verdict == "PENDING":
            # A reader may load a version, so a reader may have it scanned when no scan has finished yet.
            report = self._scan_now(name, version, "reader", "load")
        if (not report.high and report.verdict != "ERROR") or report.accepted_by:
            return report
        if not override.strip():
            found = findings_text(report) if report.high else report.summary
            raise UnsafeModel(
                f"version {version} of {name!r} is not loaded: its latest scan ({report.verdict}) found {found}. "
                f"Once reviewed, a manager accepts the findings (covex scan models:/{name}/{version} --accept REASON), "
                "or a caller passes an override with a reason (audited)"
            )
        with self._tx(write=True) as conn:
            self._version_for(conn, name, version, "reader", "scan.override", lock=False)
            after = {"scan": report.id, "verdict": report.verdict, "reason": override}
            self._audit(conn, "scan.override", f"model:{name}/{version}", None, after)
        return report

    def scan_gate(self, conn: Connection, policy: Any, row: Row[Any]) -> GateResult | None:
        """The policy's ``scan:`` checked against the version's latest scan (None: the policy asks none)."""
        if policy.scan is None:
            return None
        return evaluate_scan(policy.scan, self.latest_scan_of(conn, row.id), row.version)

    def accept_scan(self, name: str, version: int, reason: str) -> ScanReport:
        """Accept the findings of a version's latest scan after a review (the manager role; audited): the version
        then loads (``load_model``, ``covex serve``, ``covex batch``) despite them. Policy gates still judge the
        findings, and a later scan must be accepted again."""
        reason = validate_text(reason, "reason", MAX_COMMENT_LENGTH, required=True)
        with self._tx(write=True) as conn:
            _, row = self._version_for(conn, name, version, "manager", "scan.accept")
            latest = self.latest_scan_of(conn, row.id)
            if latest is None or latest.verdict == "PENDING":
                raise InvalidState(f"version {version} of {name!r} has no finished scan to accept")
            values = {"accepted_by": self.actor, "accepted_at": now_ms(), "accepted_reason": reason}
            conn.execute(update(version_scans).where(version_scans.c.id == latest.id).values(**values))
            after = {
                "scan": latest.id,
                "verdict": latest.verdict,
                "max_severity": latest.max_severity,
                "reason": reason,
            }
            self._audit(conn, "scan.accept", f"model:{name}/{version}", None, after)
            return _entity(conn.execute(_SELECT.where(version_scans.c.id == latest.id)).one())
