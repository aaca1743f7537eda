"""Keeping the registry and its store consistent: collect garbage, fail abandoned uploads, verify files.

Every action here is for admins. Each keeps its transactions small and does its I/O on the
store outside them, and each is safe while the registry serves, and from several processes
at once: a change is made only by a conditional statement that re-checks what it changes.
"""

from __future__ import annotations

import logging
import math
import time
from collections import defaultdict
from typing import Any

from sqlalchemy import bindparam, func, select, update

from covex.domain.entities import BlobProblem, BrokenFile, FsckReport, GcReport, SweepReport
from covex.domain.errors import InvalidInput, StorageUnavailable
from covex.domain.names import validate_model_name
from covex.service.base import Refused, ServiceBase, now_ms
from covex.store import database
from covex.store.schema import model_versions, models, tracking_artifacts, version_files

# Blobs and temporary uploads younger than this are never collected: an upload may be in flight.
GC_GRACE_SECONDS = 3600.0
# Models per fsck batch: one HTTP request each, so that none runs for hours.
FSCK_BATCH = 10
MAX_FSCK_BATCH = 1000
# Blobs looked at again and deleted per transaction (holding the blob lock: writers of versions wait).
GC_BATCH = 200
# PENDING versions read per query while sweeping (each is then failed in a transaction of its own).
SWEEP_BATCH = 200

log = logging.getLogger("covex.service")


def _seconds(value: object, field: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) or value < 0:
        raise InvalidInput(f"'{field}' must be a non-negative number of seconds, got {value!r}")
    return float(value)


class MaintenanceService(ServiceBase):
    """Garbage collection, the sweeper of abandoned uploads and the integrity check (admins only)."""

    def _admin_only(self, action: str, target: str) -> None:
        try:
            self.require_admin(action, target)
        except Refused as exc:
            self.record_refusal(exc.action, exc.target, exc.message)
            raise

    # -- abandoned uploads --------------------------------------------------------------

    def checkpoint(self) -> None:
        """Copy SQLite's write-ahead log into the database (a server's chore: the changes it makes on its
        event loop leave that to it); nothing to do on other databases."""
        database.checkpoint(self.engine)

    def sweep_pending(self, older_than: float | None = None) -> SweepReport:
        """Mark FAILED every version still PENDING ``older_than`` seconds after it was created.

        The default is ``limits.pending_timeout`` (COVEX_PENDING_TIMEOUT). Each version is failed
        in a transaction of its own, audited as ``version.fail`` by the caller; one finalized
        meanwhile stays READY.
        """
        self._admin_only("versions.sweep", "versions")
        timeout = self.limits.pending_timeout if older_than is None else _seconds(older_than, "older_than")
        cutoff = now_ms() - int(timeout * 1000)
        message = (
            f"upload abandoned: still PENDING {timeout:g} s after the version was created "
            "(COVEX_PENDING_TIMEOUT); create a new version"
        )
        failed: list[str] = []
        last_id = 0
        while True:
            with self._tx(write=False) as conn:
                rows = conn.execute(_EXPIRED, {"cutoff": cutoff, "after_id": last_id, "batch": SWEEP_BATCH}).all()
            for row in rows:
                uri = self._fail_abandoned(row, cutoff, message)
                if uri is not None:
                    failed.append(uri)
            if len(rows) < SWEEP_BATCH:
                break
            last_id = rows[-1].id
        if failed:
            log.info("marked %d PENDING versions FAILED (older than %g s): %s", len(failed), timeout, failed[:20])
        return SweepReport(older_than=timeout, failed=failed)

    def _fail_abandoned(self, row: Any, cutoff: int, message: str) -> str | None:
        with self._tx(write=True) as conn:
            # The model's row lock, as finalize_version takes it: a finalize in flight lands first
            # (and the version stays READY) or sees FAILED; never READY over FAILED.
            model = conn.execute(
                select(models.c.name).where(models.c.id == row.model_id).with_for_update()
            ).one_or_none()
            if model is None:
                return None  # deleted meanwhile
            changed = conn.execute(
                update(model_versions)
                .where(
                    model_versions.c.id == row.id,
                    model_versions.c.status == "PENDING",
                    model_versions.c.creation_timestamp < cutoff,
                )
                .values(status="FAILED", status_message=message, last_updated_timestamp=now_ms())
            )
            if changed.rowcount != 1:
                return None  # finalized, failed or swept by someone else meanwhile
            after = {"status": "FAILED", "message": message}
            self._audit(conn, "version.fail", f"model:{model.name}/{row.version}", {"status": "PENDING"}, after)
            return f"models:/{model.name}/{row.version}"

    def _count_expired(self) -> int:
        cutoff = now_ms() - int(self.limits.pending_timeout * 1000)
        with self._tx(write=False) as conn:
            return int(conn.execute(_COUNT_EXPIRED, {"cutoff": cutoff}).scalar_one())

    # -- garbage collection -------------------------------------------------------------

    def gc(self, *, apply: bool = False, grace_seconds: float = GC_GRACE_SECONDS) -> GcReport:
        """Find (and with ``apply`` delete) blobs no version or tracking artifact references, and abandoned partial
        uploads.

        With ``apply`` it also fails versions left PENDING past the timeout (``sweep_pending``).
        The report says what it kept and why: anything younger than ``grace_seconds``, and the
        referenced blobs, of which it counts those missing (``fsck`` re-hashes the others).
        """
        self._admin_only("gc", "blobs")
        grace = _seconds(grace_seconds, "grace_seconds")
        expired = len(self.sweep_pending().failed) if apply else self._count_expired()
        stored = self.blobs.list_blobs()
        uploads = self.blobs.uploads()
        # Read references after listing: a version created meanwhile protects its blobs.
        with self._tx(write=False) as conn:
            referenced = set(conn.execute(select(version_files.c.digest).distinct()).scalars())
            referenced |= set(conn.execute(select(tracking_artifacts.c.digest).distinct()).scalars())
            complete = set(conn.execute(_READY_DIGESTS).scalars())
        cutoff = time.time() - grace
        unreferenced = [d for d in sorted(stored) if d not in referenced]
        collectable = [d for d in unreferenced if grace <= 0 or self._older_than(d, cutoff)]
        young = sorted(set(unreferenced) - set(collectable))
        stale = [u for u in uploads if grace <= 0 or u.modified < cutoff]
        partial = [u for u in uploads if not (grace <= 0 or u.modified < cutoff)]
        # Only the referenced blobs the listing did not show are looked up again (stored meanwhile, or missing).
        absent = self.blobs.missing(d for d in sorted(referenced) if d not in stored)
        report = GcReport(
            applied=apply,
            referenced=len(referenced),
            unreferenced=collectable,
            bytes_freed=sum(stored[d] for d in collectable),
            stale_uploads=len(stale),
            stale_upload_bytes=sum(u.size for u in stale),
            grace_seconds=grace,
            young_unreferenced=len(young),
            young_unreferenced_bytes=sum(stored[d] for d in young),
            partial_uploads=len(partial),
            partial_upload_bytes=sum(u.size for u in partial),
            referenced_present=len(referenced) - len(absent),
            # A PENDING version's blobs may still be on their way: only READY versions' count as missing.
            referenced_missing=len([d for d in absent if d in complete]),
            pending_timeout=self.limits.pending_timeout,
            pending_expired=expired,
        )
        if apply:
            deleted = self._collect(report, [u.path for u in stale], stored)
            report = report.model_copy(update={"unreferenced": deleted, "bytes_freed": sum(stored[d] for d in deleted)})
        return report

    def _collect(self, report: GcReport, stale: list[str], stored: dict[str, int]) -> list[str]:
        """Delete the unreferenced blobs (and stale uploads); return the digests deleted.

        The references were read before: a version created since may hold one of these blobs
        now. So each batch is looked at again, and deleted, holding the lock every version
        insert takes: a blob referenced (or stored again) meanwhile stays, and a version created
        after its blob went finds it missing (its upload sends it again) instead of READY on nothing.
        """
        deleted: list[str] = []
        try:
            for start in range(0, len(report.unreferenced), GC_BATCH):
                batch = report.unreferenced[start : start + GC_BATCH]
                with self._tx(write=True) as conn:
                    database.lock_blobs(conn, exclusive=True)
                    held = set(
                        conn.execute(select(version_files.c.digest).where(version_files.c.digest.in_(batch))).scalars()
                    )
                    held |= set(  # MLflow runs' and logged models' artifacts are blobs too
                        conn.execute(
                            select(tracking_artifacts.c.digest).where(tracking_artifacts.c.digest.in_(batch))
                        ).scalars()
                    )
                    cutoff = time.time() - report.grace_seconds
                    for digest in batch:
                        if digest in held or (report.grace_seconds > 0 and not self._older_than(digest, cutoff)):
                            continue
                        self.blobs.delete(digest)
                        deleted.append(digest)
            for path in stale:
                self.blobs.remove_path(path)
        except StorageUnavailable as exc:
            self._audit_gc(report, len(deleted), failed=exc.message)  # what was deleted before the store failed
            raise
        self._audit_gc(report.model_copy(update={"bytes_freed": sum(stored[d] for d in deleted)}), len(deleted))
        return deleted

    def _audit_gc(self, report: GcReport, deleted: int, failed: str | None = None) -> None:
        after: dict[str, Any] = {
            "deleted": deleted,
            "bytes_freed": report.bytes_freed if failed is None else None,
            "stale_uploads": report.stale_uploads,
            "pending_failed": report.pending_expired,
        }
        if failed is not None:
            after["failed"] = failed
        with self._tx(write=True) as conn:
            self._audit(conn, "gc", "blobs", None, after)

    def _older_than(self, digest: str, cutoff: float) -> bool:
        modified = self.blobs.modified(digest)
        return modified is None or modified < cutoff

    # -- integrity ----------------------------------------------------------------------

    def fsck(self, *, after: str | None = None, limit: int = FSCK_BATCH) -> FsckReport:
        """Re-hash the stored files of the READY versions of up to ``limit`` models named after ``after``.

        Models go in name order; pass the report's ``next`` as ``after`` for the next batch
        (None: done). Each blob is read in chunks, once per batch. The report names every
        blob missing or not matching its digest with the versions' files it breaks. One
        audit record per batch: each batch is one call, and a check may stop after any batch.
        """
        self._admin_only("fsck", "blobs")
        if after is not None:
            validate_model_name(after, "after")
        if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_FSCK_BATCH:
            raise InvalidInput(f"'limit' must be an integer from 1 to {MAX_FSCK_BATCH}, got {limit!r}")
        with self._tx(write=False) as conn:
            q = select(models.c.id, models.c.name).order_by(models.c.name).limit(limit + 1)
            batch = conn.execute(q if after is None else q.where(models.c.name > after)).all()
            more, batch = len(batch) > limit, batch[:limit]
            total = int(conn.execute(select(func.count()).select_from(models)).scalar_one())
            before = 0
            if after is not None:
                before = int(
                    conn.execute(select(func.count()).select_from(models).where(models.c.name <= after)).scalar_one()
                )
            files = conn.execute(_READY_FILES.where(models.c.id.in_([m.id for m in batch]))).all()
        # Re-hashing is I/O: outside any transaction.
        by_blob: dict[str, list[Any]] = defaultdict(list)  # digest → rows of the files that hold it
        for f in files:
            by_blob[f.digest].append(f)
        missing: list[BlobProblem] = []
        corrupted: list[BlobProblem] = []
        hashed = 0
        for digest, listed in sorted(by_blob.items()):
            size = listed[0].size
            try:
                found = self.blobs.hash_blob(digest)
            except StorageUnavailable as exc:
                corrupted.append(_problem(digest, size, f"cannot be read: {exc.message}", listed))
                continue
            if found is None:
                missing.append(_problem(digest, size, "not in the artifact store", listed))
                continue
            hashed += found[1]
            if found[0] != digest:
                corrupted.append(_problem(digest, size, f"content hashes to {found[0]}", listed))
            elif any(f.size != found[1] for f in listed):
                corrupted.append(_problem(digest, size, f"stored size {found[1]} != {size}", listed))
        report = FsckReport(
            after=after,
            next=batch[-1].name if more else None,
            models=len(batch),
            versions=len({(f.name, f.version) for f in files}),
            files=len(files),
            blobs=len(by_blob),
            bytes=hashed,
            models_done=before + len(batch),
            models_total=max(total, before + len(batch)),
            missing=missing,
            corrupted=corrupted,
        )
        summary = report.model_dump(include={"after", "next", "models", "files", "blobs", "bytes"})
        with self._tx(write=True) as conn:
            self._audit(conn, "fsck", "blobs", None, {**summary, "missing": len(missing), "corrupted": len(corrupted)})
        return report


def _problem(digest: str, size: int, reason: str, listed: list[Any]) -> BlobProblem:
    files = [BrokenFile(uri=f"models:/{f.name}/{f.version}", path=f.path) for f in listed]
    return BlobProblem(digest=digest, size=size, reason=reason, files=files)


# Statements built once.
_IS_EXPIRED = (model_versions.c.status == "PENDING", model_versions.c.creation_timestamp < bindparam("cutoff"))
_EXPIRED = (
    select(model_versions.c.id, model_versions.c.model_id, model_versions.c.version)
    .where(*_IS_EXPIRED, model_versions.c.id > bindparam("after_id"))
    .order_by(model_versions.c.id)
    .limit(bindparam("batch"))
)
_COUNT_EXPIRED = select(func.count()).select_from(model_versions).where(*_IS_EXPIRED)
_READY_DIGESTS = (
    select(version_files.c.digest)
    .join(model_versions, model_versions.c.id == version_files.c.version_id)
    .where(model_versions.c.status == "READY")
    .distinct()
)
_READY_FILES = (
    select(models.c.name, model_versions.c.version, version_files.c.path, version_files.c.digest, version_files.c.size)
    .select_from(
        version_files.join(model_versions, model_versions.c.id == version_files.c.version_id).join(
            models, models.c.id == model_versions.c.model_id
        )
    )
    .where(model_versions.c.status == "READY")
    .order_by(models.c.name, model_versions.c.version, version_files.c.path)
)
