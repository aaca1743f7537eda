"""The registry's use cases: one method per action, one transaction each.

Every rule lives here: name validation, version numbering, stage and alias
moves, upload completion. Adapters (SDK, server, CLI) call these methods and
render what they return.
"""

from __future__ import annotations

import itertools
import json
import logging
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any

from sqlalchemy import Connection, Row, delete, insert, select, update
from sqlalchemy.exc import IntegrityError, OperationalError

from covex.artifacts import BlobWriter, check_digest, manifest_digest
from covex.domain.cards import validate_card
from covex.domain.documents import check_kind, validate_documents
from covex.domain.entities import (
    FileEntry,
    FsckReport,
    GcReport,
    Model,
    ModelEvent,
    ModelVersion,
    Page,
    SweepReport,
)
from covex.domain.errors import AlreadyExists, InvalidInput, InvalidState, NotFound, ServiceUnavailable
from covex.domain.filters import MODEL_FIELDS, VERSION_FIELDS, parse_filter, parse_order_by
from covex.domain.names import (
    MAX_COMMENT_LENGTH,
    MAX_INT64,
    MAX_KEY_LENGTH,
    MAX_URI_LENGTH,
    validate_alias,
    validate_artifact_path,
    validate_id,
    validate_key,
    validate_metrics,
    validate_model_name,
    validate_ref,
    validate_tags,
    validate_text,
)
from covex.domain.uris import MAX_ID, ModelRef
from covex.service.base import Refused, ServiceBase, now_ms
from covex.service.maintenance import FSCK_BATCH, GC_GRACE_SECONDS, MaintenanceService
from covex.store import database, queries, search
from covex.store.schema import (
    grants,
    model_aliases,
    model_events,
    model_tags,
    model_versions,
    models,
    version_documents,
    version_files,
    version_metrics,
    version_params,
    version_tags,
)

log = logging.getLogger("covex.service")

MODEL_SORTABLE = {"name", "creation_timestamp", "last_updated_timestamp"}
VERSION_SORTABLE = {"name", "version", "creation_timestamp", "last_updated_timestamp", "metrics"}


_now = now_ms


def _first_clash(paths: list[str]) -> tuple[int, str] | None:
    """The first entry (in the given order) repeating a path, or a file that is also a folder.

    With ``/`` sorted lowest (as NUL), whatever lies under a folder comes right after the folder's
    own name: one sort and one pass over neighbours find every clash.
    """
    keys = [p.replace("/", "\0") for p in paths]
    order = sorted(range(len(keys)), key=keys.__getitem__)
    found: tuple[int, str] | None = None
    for a, b in itertools.pairwise(order):
        if keys[b] == keys[a]:
            problem = "appears twice"
        elif keys[b].startswith(keys[a] + "\0"):
            problem = "is both a file and a folder"
        else:
            continue
        later = max(a, b)
        if found is None or later < found[0]:
            found = (later, problem)
    return found


def _tag(key: str, value: str | None) -> dict[str, str] | None:
    return None if value is None else {key: value}


class RegistryService(ServiceBase):
    """The registry over one metadata database and one blob store, acting as one principal."""

    def close(self) -> None:
        self.engine.dispose()

    @property
    def access(self) -> Any:
        """Users, groups, tokens and grants (``covex.service.access.AccessService``)."""
        from covex.service.access import AccessService

        return self._sibling(AccessService)

    @property
    def approvals(self) -> Any:
        """Policies, approval requests, rollback and placement history."""
        from covex.service.approvals import ApprovalService

        return self._sibling(ApprovalService)

    @property
    def audit(self) -> Any:
        """The audit trail: list, verify, export."""
        from covex.service.audit import AuditService

        return self._sibling(AuditService)

    @property
    def webhooks(self) -> Any:
        """Webhook subscriptions and their deliveries."""
        from covex.service.webhooks import WebhookService

        return self._sibling(WebhookService)

    @property
    def maintenance(self) -> MaintenanceService:
        """Garbage collection, the sweeper of abandoned uploads, the integrity check."""
        return self._sibling(MaintenanceService)  # type: ignore[no-any-return]

    # -- plumbing -------------------------------------------------------------------

    def _version_row(self, conn: Connection, model: Row[Any], version: int) -> Row[Any]:
        validate_id(version, "version")
        q = queries.version_select().where(model_versions.c.model_id == model.id, model_versions.c.version == version)
        row = conn.execute(q).one_or_none()
        if row is None:
            raise NotFound(f"version {version} of model {model.name!r} does not exist")
        return row

    def _resolve_row(self, conn: Connection, ref: ModelRef) -> Row[Any]:
        validate_ref(ref, self.stages)
        model = self._model_row(conn, ref.name)
        self.require(conn, model, "reader", "model.read")
        base = queries.version_select().where(model_versions.c.model_id == model.id)
        if ref.kind == "version":
            return self._version_row(conn, model, ref.version)
        if ref.kind == "alias":
            row = conn.execute(
                base.join(model_aliases, model_aliases.c.version_id == model_versions.c.id).where(
                    model_aliases.c.alias == ref.value
                )
            ).one_or_none()
            if row is None:
                raise NotFound(f"model {ref.name!r} has no alias {ref.value!r}")
            return row
        q = base.where(model_versions.c.status == "READY")
        if ref.kind == "stage":
            q = q.where(model_versions.c.stage == self.stage(ref.value))
        row = conn.execute(q.order_by(model_versions.c.version.desc()).limit(1)).one_or_none()
        if row is None:
            where = f"in stage {self.stage(ref.value)!r}" if ref.kind == "stage" else "that is READY"
            raise NotFound(f"model {ref.name!r} has no version {where}")
        return row

    def _version(self, conn: Connection, row: Row[Any]) -> ModelVersion:
        return queries.load_versions(conn, [row])[0]

    def _model(self, conn: Connection, row: Row[Any]) -> Model:
        return queries.load_models(conn, [row])[0]

    def _touch_model(self, conn: Connection, model_id: int, now: int) -> None:
        conn.execute(update(models).where(models.c.id == model_id).values(last_updated_timestamp=now))

    def _touch_version(self, conn: Connection, version_id: int, now: int, **values: Any) -> None:
        conn.execute(
            update(model_versions).where(model_versions.c.id == version_id).values(last_updated_timestamp=now, **values)
        )

    def ping(self) -> None:
        """Raise ``ServiceUnavailable`` unless the database answers."""
        try:
            with self.engine.connect() as conn:
                conn.exec_driver_sql("SELECT 1")
        except OperationalError as exc:
            # The reason (host, port, database name) goes to the log: /ready answers anyone.
            log.warning("database unavailable: %s", exc.orig)
            raise ServiceUnavailable("the database does not answer; see the server log") from None

    # -- models ---------------------------------------------------------------------

    def create_model(self, name: str, description: str = "", tags: Mapping[str, str] | None = None) -> Model:
        validate_model_name(name)
        description = validate_text(description, "description")
        tag_values = validate_tags(tags, "tags")
        now = _now()
        try:
            with self._tx(write=True) as conn:
                if conn.execute(select(models.c.id).where(models.c.name == name)).first():
                    raise AlreadyExists(f"model {name!r} already exists")
                model_id = conn.execute(
                    insert(models)
                    .values(
                        name=name,
                        description=description,
                        created_by=self.actor,
                        last_version=0,
                        creation_timestamp=now,
                        last_updated_timestamp=now,
                    )
                    .returning(models.c.id)
                ).scalar_one()
                if tag_values:
                    conn.execute(
                        insert(model_tags),
                        [{"model_id": model_id, "key": k, "value": v} for k, v in tag_values.items()],
                    )
                # The creator manages what it created.
                conn.execute(
                    insert(grants).values(
                        model_id=model_id,
                        subject=f"user:{self.actor}",
                        role="manager",
                        scope="",
                        created_by=self.actor,
                        creation_timestamp=now,
                    )
                )
                model = self._model(conn, self._model_row(conn, name))
                after = {"description": description, "tags": tag_values}
                self._audit(conn, "model.create", f"model:{name}", None, after)
                self._emit(conn, "model.created", {"model": name, **after}, model_id)
                return model
        except IntegrityError:
            raise AlreadyExists(f"model {name!r} already exists") from None

    def get_model(self, name: str) -> Model:
        with self._tx(write=False) as conn:
            row = self._model_row(conn, name)
            self.require(conn, row, "reader", "model.read")
            return self._model(conn, row)

    def rename_model(self, name: str, new_name: str) -> Model:
        return self.update_model(name, new_name=new_name)

    def update_model(self, name: str, *, description: str | None = None, new_name: str | None = None) -> Model:
        """Change a model's description and/or name, in one transaction."""
        if description is None and new_name is None:
            raise InvalidInput("give 'description' or 'new_name'")
        values: dict[str, Any] = {"last_updated_timestamp": _now()}
        if description is not None:
            values["description"] = validate_text(description, "description")
        if new_name is not None:
            values["name"] = validate_model_name(new_name, "new_name")
        try:
            with self._tx(write=True) as conn:
                row = self._model_row(conn, name, lock=True)
                self.require(conn, row, "manager" if new_name not in (None, name) else "editor", "model.update")
                if (
                    new_name not in (None, name)
                    and conn.execute(select(models.c.id).where(models.c.name == new_name)).first()
                ):
                    raise AlreadyExists(f"model {new_name!r} already exists")
                conn.execute(update(models).where(models.c.id == row.id).values(**values))
                changed = {k: v for k, v in values.items() if k != "last_updated_timestamp"}
                before = {"name": row.name, "description": row.description}
                self._audit(conn, "model.update", f"model:{name}", {k: before[k] for k in changed}, changed)
                if "name" in changed and changed["name"] != name:
                    self._emit(conn, "model.renamed", {"model": changed["name"], "previous_name": name}, row.id)
                return self._model(conn, self._model_row(conn, values.get("name", name)))
        except IntegrityError:
            raise AlreadyExists(f"model {new_name!r} already exists") from None

    def set_model_tag(self, name: str, key: str, value: str) -> Model:
        (key, value), *_ = validate_tags({key: value}, "tag").items()
        with self._tx(write=True) as conn:
            row = self._model_row(conn, name, lock=True)
            self.require(conn, row, "editor", "model.tag.set")
            before = conn.execute(
                select(model_tags.c.value).where(model_tags.c.model_id == row.id, model_tags.c.key == key)
            ).scalar_one_or_none()
            conn.execute(delete(model_tags).where(model_tags.c.model_id == row.id, model_tags.c.key == key))
            conn.execute(insert(model_tags).values(model_id=row.id, key=key, value=value))
            self._touch_model(conn, row.id, _now())
            self._audit(conn, "model.tag.set", f"model:{name}", _tag(key, before), {key: value})
            return self._model(conn, self._model_row(conn, name))

    def delete_model_tag(self, name: str, key: str) -> Model:
        validate_key(key, "key")
        with self._tx(write=True) as conn:
            row = self._model_row(conn, name, lock=True)
            self.require(conn, row, "editor", "model.tag.delete")
            before = conn.execute(
                select(model_tags.c.value).where(model_tags.c.model_id == row.id, model_tags.c.key == key)
            ).scalar_one_or_none()
            if before is None:
                raise NotFound(f"model {name!r} has no tag {key!r}")
            conn.execute(delete(model_tags).where(model_tags.c.model_id == row.id, model_tags.c.key == key))
            self._touch_model(conn, row.id, _now())
            self._audit(conn, "model.tag.delete", f"model:{name}", {key: before}, None)
            return self._model(conn, self._model_row(conn, name))

    def delete_model(self, name: str) -> None:
        """Delete a model with all its versions, tags and aliases (files stay until ``gc``)."""
        with self._tx(write=True) as conn:
            row = self._model_row(conn, name, lock=True)
            self.require(conn, row, "manager", "model.delete")
            versions = (
                conn.execute(select(model_versions.c.version).where(model_versions.c.model_id == row.id))
                .scalars()
                .all()
            )
            self._emit(conn, "model.deleted", {"model": name, "versions": list(versions)}, row.id)
            conn.execute(delete(models).where(models.c.id == row.id))
            self._audit(conn, "model.delete", f"model:{name}", {"versions": list(versions)}, None)

    def search_models(
        self,
        filter: str | None = None,
        order_by: Sequence[str] | None = None,
        max_results: int = 100,
        page_token: str | None = None,
    ) -> Page[Model]:
        node = parse_filter(filter, MODEL_FIELDS)
        order = parse_order_by(list(order_by or []), MODEL_FIELDS, MODEL_SORTABLE)
        limit = search.check_max_results(max_results)
        offset = search.decode_page_token(page_token)
        q = (
            select(models)
            .where(search.model_filter(node))
            .order_by(*search.model_order(order))
            .limit(limit + 1)
            .offset(offset)
        )
        with self._tx(write=False) as conn:
            readable = self.readable_model_ids(conn)
            if readable is not None:
                q = q.where(models.c.id.in_(readable))
            rows = conn.execute(q).all()
            items = queries.load_models(conn, rows[:limit])
        token = search.encode_page_token(offset + limit) if len(rows) > limit else None
        return Page[Model](items=items, next_page_token=token)

    # -- versions -------------------------------------------------------------------

    def create_version(
        self,
        name: str,
        *,
        files: Sequence[FileEntry] | None = None,
        source: str = "",
        description: str = "",
        tags: Mapping[str, str] | None = None,
        metrics: Mapping[str, float] | None = None,
        params: Mapping[str, str] | None = None,
        run_id: str = "",
        run_link: str = "",
        documents: Mapping[str, Any] | None = None,
        number: int | None = None,
    ) -> ModelVersion:
        """Allocate the next version number and record the version.

        With ``files`` the version is PENDING until ``finalize_version`` has checked
        that every blob is stored; without, it records ``source`` only and is READY.
        ``documents`` (lineage, signature, profile, card) are stored in the same
        transaction. ``number`` keeps a number from elsewhere (imports); it must be
        higher than any number the model has handed out.
        """
        entries = self._check_files(files or [])
        if not entries and not source:
            raise InvalidInput("give 'files' to upload or a 'source' URI to record")
        values = {
            "source": validate_text(source, "source", MAX_URI_LENGTH),
            "description": validate_text(description, "description"),
            "run_id": validate_text(run_id, "run_id", MAX_KEY_LENGTH),
            "run_link": validate_text(run_link, "run_link", MAX_URI_LENGTH),
        }
        tag_values = validate_tags(tags, "tags")
        metric_values = validate_metrics(metrics)
        param_values = validate_tags(params, "params")
        document_values = validate_documents(documents)
        if number is not None:
            validate_id(number, "number")
        now = _now()
        with self._tx(write=True) as conn:
            model = self._model_row(conn, name, lock=True)
            # Choosing a number (imports keep theirs) is the manager's: it uses up the numbers below it.
            self.require(conn, model, "editor" if number is None else "manager", "version.create")
            if number is None and model.last_version >= MAX_ID:
                raise InvalidState(f"model {name!r} has handed out its last version number ({MAX_ID})")
            if number is not None and number <= model.last_version:
                raise AlreadyExists(
                    f"version number {number} of {name!r} is taken (the last handed out is {model.last_version})"
                )
            bump = models.c.last_version + 1 if number is None else number
            number = conn.execute(
                update(models)
                .where(models.c.id == model.id)
                .values(last_version=bump, last_updated_timestamp=now)
                .returning(models.c.last_version)
            ).scalar_one()
            row = {
                "version": number,
                "status": "PENDING" if entries else "READY",
                "status_message": "",
                "stage": self.initial_stage,
                "created_by": self.actor,
                "manifest_digest": manifest_digest(entries) if entries else None,
                "file_count": len(entries),
                "size": sum(f.size for f in entries),
                "creation_timestamp": now,
                "last_updated_timestamp": now,
                **values,
            }
            version_id = conn.execute(
                insert(model_versions).values(model_id=model.id, **row).returning(model_versions.c.id)
            ).scalar_one()
            for table, items in (
                (version_tags, tag_values),
                (version_metrics, metric_values),
                (version_params, param_values),
            ):
                if items:
                    conn.execute(
                        insert(table), [{"version_id": version_id, "key": k, "value": v} for k, v in items.items()]
                    )
            if entries:
                database.lock_blobs(conn, exclusive=False)  # gc deletes nothing while these references land
                conn.execute(
                    insert(version_files),
                    [
                        {"version_id": version_id, "path": f.path, "digest": f.digest, "size": f.size, "mode": f.mode}
                        for f in entries
                    ],
                )
            if document_values:
                conn.execute(
                    insert(version_documents),
                    [
                        {"version_id": version_id, "kind": k, "body": body, "last_updated_timestamp": now}
                        for k, body in document_values.items()
                    ],
                )
            summary = {
                "version": number,
                "status": row["status"],
                "source": values["source"],
                "manifest_digest": row["manifest_digest"],
                "metrics": metric_values,
            }
            self._audit(conn, "version.create", f"model:{name}/{number}", None, summary)
            self._emit(conn, "version.created", {"model": name, **summary}, model.id)
            # Everything is in hand: no need to read the new version back.
            return ModelVersion(
                name=name, tags=tag_values, metrics=metric_values, params=param_values, aliases=[], **row
            )

    def get_document(self, ref: ModelRef, kind: str) -> dict[str, Any]:
        """One JSON document of a version (lineage, signature, profile or card)."""
        check_kind(kind)
        with self._tx(write=False) as conn:
            row = self._resolve_row(conn, ref)
            body = conn.execute(
                select(version_documents.c.body).where(
                    version_documents.c.version_id == row.id, version_documents.c.kind == kind
                )
            ).scalar_one_or_none()
        if body is None:
            raise NotFound(f"{ref} has no {kind}")
        return dict(json.loads(body))

    def set_card(self, name: str, version: int, card: Mapping[str, Any]) -> dict[str, Any]:
        """Replace a version's model card (the one document that stays editable)."""
        fields = validate_card(dict(card) if isinstance(card, Mapping) else card)
        now = _now()
        with self._tx(write=True) as conn:
            model = self._model_row(conn, name, lock=True)
            self.require(conn, model, "editor", "version.card.set")
            row = self._version_row(conn, model, version)
            before = conn.execute(
                select(version_documents.c.body).where(
                    version_documents.c.version_id == row.id, version_documents.c.kind == "card"
                )
            ).scalar_one_or_none()
            conn.execute(
                delete(version_documents).where(
                    version_documents.c.version_id == row.id, version_documents.c.kind == "card"
                )
            )
            conn.execute(
                insert(version_documents).values(
                    version_id=row.id, kind="card", body=json.dumps(fields), last_updated_timestamp=now
                )
            )
            self._touch_version(conn, row.id, now)
            self._audit(
                conn,
                "version.card.set",
                f"model:{name}/{version}",
                None if before is None else json.loads(before),
                fields,
            )
        return fields

    def _check_files(self, files: Sequence[FileEntry]) -> list[FileEntry]:
        """Validate a manifest: every path unique, none both a file and a folder (sorted once, not pairwise)."""
        if len(files) > self.limits.max_files:
            raise InvalidInput(
                f"'files' lists {len(files)} files; a version holds at most {self.limits.max_files} "
                "(COVEX_MAX_FILES_PER_VERSION)"
            )
        out = []
        for i, f in enumerate(files):
            path = validate_artifact_path(f.path, f"files[{i}].path")
            check_digest(f.digest, f"files[{i}].digest")
            if isinstance(f.size, bool) or not isinstance(f.size, int) or not 0 <= f.size <= MAX_INT64:
                raise InvalidInput(f"'files[{i}].size' must be an integer from 0 to {MAX_INT64}")
            # Only "executable or not" travels with a file: no write bits for others on a download.
            mode = 0o755 if isinstance(f.mode, int) and f.mode & 0o111 else 0o644
            out.append(f if (path, mode) == (f.path, f.mode) else f.model_copy(update={"path": path, "mode": mode}))
        clash = _first_clash([f.path for f in out])
        if clash is not None:
            i, problem = clash
            raise InvalidInput(f"'files[{i}].path' {out[i].path!r} {problem}")
        return out

    def finalize_version(self, name: str, version: int) -> ModelVersion:
        """Turn a PENDING version READY once every one of its blobs is stored and verified."""
        with self._tx(write=False) as conn:
            model = self._model_row(conn, name)
            self.require(conn, model, "editor", "version.finalize")
            row = self._version_row(conn, model, version)
            if row.status == "READY":
                return self._version(conn, row)
            if row.status == "FAILED":
                raise InvalidState(
                    f"version {version} of {name!r} has FAILED ({row.status_message}); create a new version"
                )
            files = queries.load_files(conn, row.id)
            possessed = self._possessed(conn, [f.digest for f in files])
        # Blob checks do I/O; keep them outside the write transaction.
        problems = []
        for f in files:
            size = self.blobs.size(f.digest)
            if possessed is not None and f.digest not in possessed:
                # Naming a digest is not holding the file: it must be uploaded, unless the caller can already
                # read it. One answer whatever is stored, so finalize tells nothing about other models' files.
                if size != f.size or not self._stored_since(f.digest, row):
                    problems.append(f"{f.path} (not uploaded)")
            elif size is None:
                problems.append(f"{f.path} (not uploaded)")
            elif size != f.size:
                problems.append(f"{f.path} (stored size {size} != {f.size})")
        if problems:
            shown = ", ".join(problems[:5]) + (f" and {len(problems) - 5} more" if len(problems) > 5 else "")
            raise InvalidState(f"version {version} of {name!r} is missing files: {shown}")
        with self._tx(write=True) as conn:
            model = self._model_row(conn, name, lock=True)
            row = self._version_row(conn, model, version)
            if row.status == "PENDING":
                self._touch_version(conn, row.id, _now(), status="READY", status_message="")
                target = f"model:{name}/{version}"
                self._audit(conn, "version.finalize", target, {"status": "PENDING"}, {"status": "READY"})
                self._emit(conn, "version.ready", {"model": name, "version": version}, model.id)
            elif row.status == "FAILED":
                raise InvalidState(f"version {version} of {name!r} has FAILED ({row.status_message})")
            return self._version(conn, self._version_row(conn, model, version))

    def fail_version(self, name: str, version: int, message: str) -> ModelVersion:
        """Mark a PENDING version FAILED with a message (a READY version stays READY)."""
        message = validate_text(message, "message")[:2000]
        with self._tx(write=True) as conn:
            model = self._model_row(conn, name, lock=True)
            self.require(conn, model, "editor", "version.fail")
            row = self._version_row(conn, model, version)
            if row.status == "READY":
                raise InvalidState(f"version {version} of {name!r} is READY and cannot fail")
            self._touch_version(conn, row.id, _now(), status="FAILED", status_message=message or "upload failed")
            after = {"status": "FAILED", "message": message or "upload failed"}
            self._audit(conn, "version.fail", f"model:{name}/{version}", {"status": row.status}, after)
            return self._version(conn, self._version_row(conn, model, version))

    def get_version(self, ref: ModelRef) -> ModelVersion:
        with self._tx(write=False) as conn:
            return self._version(conn, self._resolve_row(conn, ref))

    def list_files(self, ref: ModelRef) -> tuple[ModelVersion, list[FileEntry]]:
        with self._tx(write=False) as conn:
            row = self._resolve_row(conn, ref)
            return self._version(conn, row), queries.load_files(conn, row.id)

    def search_versions(
        self,
        filter: str | None = None,
        order_by: Sequence[str] | None = None,
        max_results: int = 100,
        page_token: str | None = None,
        *,
        model: str | None = None,
    ) -> Page[ModelVersion]:
        node = parse_filter(filter, VERSION_FIELDS)
        order = parse_order_by(list(order_by or []), VERSION_FIELDS, VERSION_SORTABLE)
        limit = search.check_max_results(max_results)
        offset = search.decode_page_token(page_token)
        q = queries.version_select().where(search.version_filter(node))
        with self._tx(write=False) as conn:
            readable = None if model is not None else self.readable_model_ids(conn)
            if readable is not None:
                q = q.where(model_versions.c.model_id.in_(readable))
            if model is not None:
                model_row = self._model_row(conn, model)
                self.require(conn, model_row, "reader", "model.read")
                q = q.where(model_versions.c.model_id == model_row.id)
                if not order:
                    order = parse_order_by(["version DESC"], VERSION_FIELDS, VERSION_SORTABLE)
            rows = conn.execute(q.order_by(*search.version_order(order)).limit(limit + 1).offset(offset)).all()
            items = queries.load_versions(conn, rows[:limit])
        token = search.encode_page_token(offset + limit) if len(rows) > limit else None
        return Page[ModelVersion](items=items, next_page_token=token)

    def update_version(self, name: str, version: int, *, description: str) -> ModelVersion:
        description = validate_text(description, "description")
        with self._tx(write=True) as conn:
            model = self._model_row(conn, name, lock=True)
            self.require(conn, model, "editor", "version.update")
            row = self._version_row(conn, model, version)
            self._touch_version(conn, row.id, _now(), description=description)
            target = f"model:{name}/{version}"
            self._audit(conn, "version.update", target, {"description": row.description}, {"description": description})
            return self._version(conn, self._version_row(conn, model, version))

    def _set_keyed(self, name: str, version: int, table: Any, items: Mapping[str, Any], action: str) -> ModelVersion:
        with self._tx(write=True) as conn:
            model = self._model_row(conn, name, lock=True)
            self.require(conn, model, "editor", action)
            row = self._version_row(conn, model, version)
            before: dict[str, Any] = dict(
                conn.execute(
                    select(table.c.key, table.c.value).where(table.c.version_id == row.id, table.c.key.in_(list(items)))
                ).all()
            )
            if items:
                conn.execute(delete(table).where(table.c.version_id == row.id, table.c.key.in_(list(items))))
                conn.execute(insert(table), [{"version_id": row.id, "key": k, "value": v} for k, v in items.items()])
            self._touch_version(conn, row.id, _now())
            self._audit(conn, action, f"model:{name}/{version}", before or None, dict(items))
            return self._version(conn, self._version_row(conn, model, version))

    def set_version_tag(self, name: str, version: int, key: str, value: str) -> ModelVersion:
        return self._set_keyed(name, version, version_tags, validate_tags({key: value}, "tag"), "version.tag.set")

    def log_metrics(self, name: str, version: int, metrics: Mapping[str, float]) -> ModelVersion:
        return self._set_keyed(name, version, version_metrics, validate_metrics(metrics), "version.metrics.log")

    def log_params(self, name: str, version: int, params: Mapping[str, str]) -> ModelVersion:
        return self._set_keyed(name, version, version_params, validate_tags(params, "params"), "version.params.log")

    def delete_version_tag(self, name: str, version: int, key: str) -> ModelVersion:
        validate_key(key, "key")
        with self._tx(write=True) as conn:
            model = self._model_row(conn, name, lock=True)
            self.require(conn, model, "editor", "version.tag.delete")
            row = self._version_row(conn, model, version)
            before = conn.execute(
                select(version_tags.c.value).where(version_tags.c.version_id == row.id, version_tags.c.key == key)
            ).scalar_one_or_none()
            if before is None:
                raise NotFound(f"version {version} of {name!r} has no tag {key!r}")
            conn.execute(delete(version_tags).where(version_tags.c.version_id == row.id, version_tags.c.key == key))
            self._touch_version(conn, row.id, _now())
            self._audit(conn, "version.tag.delete", f"model:{name}/{version}", {key: before}, None)
            return self._version(conn, self._version_row(conn, model, version))

    def delete_version(self, name: str, version: int) -> None:
        """Delete a version and its aliases; its number is never handed out again."""
        with self._tx(write=True) as conn:
            model = self._model_row(conn, name, lock=True)
            self.require(conn, model, "manager", "version.delete")
            row = self._version_row(conn, model, version)
            aliases = (
                conn.execute(select(model_aliases.c.alias).where(model_aliases.c.version_id == row.id)).scalars().all()
            )
            conn.execute(delete(model_versions).where(model_versions.c.id == row.id))
            now = _now()
            self._touch_model(conn, model.id, now)
            # Its aliases go with it: the history and webhooks must say so, as for delete_alias.
            for alias in aliases:
                self._event(conn, model.id, version, "alias", alias, str(version), None, now, "version deleted")
                self._audit(conn, "alias.delete", f"model:{name}@{alias}", {"version": version}, None)
                self._emit(conn, "alias.deleted", {"model": name, "alias": alias, "previous": version}, model.id)
            before = {"stage": row.stage, "aliases": list(aliases), "manifest_digest": row.manifest_digest}
            self._audit(conn, "version.delete", f"model:{name}/{version}", before, None)
            self._emit(conn, "version.deleted", {"model": name, "version": version, **before}, model.id)

    # -- stages and aliases ---------------------------------------------------------

    def transition_stage(
        self, name: str, version: int, stage: str, *, archive_existing: bool = False, comment: str = ""
    ) -> ModelVersion:
        """Move a READY version to ``stage``; optionally archive the others in it, atomically.

        Editors move versions directly into stages without a policy; a stage with a
        policy is entered only through an approved request (``approvals``).
        """
        target = self.stage(stage)
        comment = validate_text(comment, "comment", MAX_COMMENT_LENGTH)
        if not isinstance(archive_existing, bool):
            raise InvalidInput(f"'archive_existing' must be true or false, got {archive_existing!r}")
        with self._tx(write=True) as conn:
            model = self._model_row(conn, name, lock=True)
            self.require(conn, model, "editor", "stage.transition")
            row = self._version_row(conn, model, version)
            entering = row.stage != target or archive_existing  # archiving the others changes who holds it too
            if entering and self.policy_body(conn, "stage", target) is not None:
                raise Refused(
                    f"stage {target!r} is protected by a policy: open a request to move version {version} "
                    f"of {name!r} there (covex requests create {name} {version} --stage {target})",
                    action="stage.transition",
                    target=f"model:{name}/{version}",
                )
            if row.stage != target and self.policy_body(conn, "stage", row.stage) is not None:
                # Taking a version out of a protected stage (retiring it) takes the model's manager.
                self.require(conn, model, "manager", "stage.transition")
            self.move_stage(conn, model, row, target, archive_existing=archive_existing, comment=comment)
            return self._version(conn, self._version_row(conn, model, version))

    def move_stage(
        self,
        conn: Connection,
        model: Row[Any],
        row: Row[Any],
        target: str,
        *,
        archive_existing: bool,
        comment: str = "",
        request_id: int | None = None,
    ) -> None:
        """Move a version to ``target`` in ``conn``'s transaction (checks done by the caller)."""
        if row.status != "READY":
            raise InvalidState(
                f"version {row.version} of {model.name!r} is {row.status}; only READY versions change stage"
            )
        now = _now()
        events = [(row.version, row.stage, target)] if row.stage != target else []
        if archive_existing and target not in (self.initial_stage, self.archive_stage):
            others = update(model_versions).where(
                model_versions.c.model_id == model.id,
                model_versions.c.stage == target,
                model_versions.c.id != row.id,
            )
            archived = conn.execute(
                others.values(stage=self.archive_stage, last_updated_timestamp=now).returning(model_versions.c.version)
            ).scalars()
            events += [(n, target, self.archive_stage) for n in archived]
        self._touch_version(conn, row.id, now, stage=target)
        for number, before, after in events:
            self._event(conn, model.id, number, "stage", "", before, after, now, comment, request_id)
            where = f"model:{model.name}/{number}"
            self._audit(conn, "stage.transition", where, {"stage": before}, {"stage": after})
            data = {"model": model.name, "version": number, "from": before, "to": after, "comment": comment}
            self._emit(conn, "stage.changed", {**data, "request": request_id}, model.id)
        self._touch_model(conn, model.id, now)

    def set_alias(self, name: str, alias: str, version: int, *, comment: str = "") -> ModelVersion:
        """Point ``alias`` at ``version``, moving it off any other version.

        A protected alias (one with a policy) moves only through an approved request.
        """
        validate_alias(alias, self.stages)
        comment = validate_text(comment, "comment", MAX_COMMENT_LENGTH)
        with self._tx(write=True) as conn:
            model = self._model_row(conn, name, lock=True)
            self.require(conn, model, "editor", "alias.set")
            row = self._version_row(conn, model, version)
            if (
                self.policy_body(conn, "alias", alias) is not None
                and self._alias_target(conn, model.id, alias) != version
            ):
                raise Refused(
                    f"alias {alias!r} is protected by a policy: open a request to point it at version {version} "
                    f"of {name!r} (covex requests create {name} {version} --alias {alias})",
                    action="alias.set",
                    target=f"model:{name}@{alias}",
                )
            self.move_alias(conn, model, row, alias, comment=comment)
            return self._version(conn, self._version_row(conn, model, version))

    def move_alias(
        self,
        conn: Connection,
        model: Row[Any],
        row: Row[Any],
        alias: str,
        *,
        comment: str = "",
        request_id: int | None = None,
    ) -> None:
        """Point ``alias`` at a version in ``conn``'s transaction (checks done by the caller)."""
        if row.status != "READY":
            raise InvalidState(
                f"version {row.version} of {model.name!r} is {row.status}; aliases point at READY versions"
            )
        previous = self._alias_target(conn, model.id, alias)
        conn.execute(delete(model_aliases).where(model_aliases.c.model_id == model.id, model_aliases.c.alias == alias))
        conn.execute(insert(model_aliases).values(model_id=model.id, alias=alias, version_id=row.id))
        now = _now()
        if previous != row.version:
            before = None if previous is None else str(previous)
            self._event(conn, model.id, row.version, "alias", alias, before, str(row.version), now, comment, request_id)
            self._audit(
                conn, "alias.set", f"model:{model.name}@{alias}", {"version": previous}, {"version": row.version}
            )
            data = {"model": model.name, "alias": alias, "version": row.version, "previous": previous}
            self._emit(conn, "alias.set", {**data, "comment": comment, "request": request_id}, model.id)
        self._touch_model(conn, model.id, now)

    def _alias_target(self, conn: Connection, model_id: int, alias: str) -> int | None:
        q = (
            select(model_versions.c.version)
            .join(model_aliases, model_aliases.c.version_id == model_versions.c.id)
            .where(model_aliases.c.model_id == model_id, model_aliases.c.alias == alias)
        )
        return conn.execute(q).scalar_one_or_none()

    def _event(
        self,
        conn: Connection,
        model_id: int,
        version: int | None,
        kind: str,
        subject: str,
        before: str | None,
        after: str | None,
        now: int,
        comment: str = "",
        request_id: int | None = None,
    ) -> None:
        conn.execute(
            insert(model_events).values(
                model_id=model_id,
                version=version,
                kind=kind,
                subject=subject,
                before=before,
                after=after,
                actor=self.actor,
                timestamp=now,
                comment=comment,
                request_id=request_id,
            )
        )

    def history(self, name: str, version: int | None = None) -> list[ModelEvent]:
        """Stage moves and alias changes of a model (or those touching one version), oldest first."""
        with self._tx(write=False) as conn:
            model = self._model_row(conn, name)
            self.require(conn, model, "reader", "model.read")
            q = select(model_events).where(model_events.c.model_id == model.id)
            if version is not None:
                q = q.where(
                    (model_events.c.version == version)
                    | ((model_events.c.kind == "alias") & (model_events.c.before == str(version)))
                )
            rows = conn.execute(q.order_by(model_events.c.id)).all()
        return [
            ModelEvent(
                name=model.name,
                version=r.version,
                kind=r.kind,
                subject=r.subject,
                before=r.before,
                after=r.after,
                actor=r.actor,
                timestamp=r.timestamp,
                comment=r.comment,
                request_id=r.request_id,
            )
            for r in rows
        ]

    def delete_alias(self, name: str, alias: str) -> None:
        validate_alias(alias, self.stages)
        with self._tx(write=True) as conn:
            model = self._model_row(conn, name, lock=True)
            # Removing a protected alias takes the model's manager; moving one takes a request.
            protected = self.policy_body(conn, "alias", alias) is not None
            self.require(conn, model, "manager" if protected else "editor", "alias.delete")
            previous = self._alias_target(conn, model.id, alias)
            gone = conn.execute(
                delete(model_aliases).where(model_aliases.c.model_id == model.id, model_aliases.c.alias == alias)
            )
            if gone.rowcount == 0:
                raise NotFound(f"model {name!r} has no alias {alias!r}")
            now = _now()
            self._event(conn, model.id, previous, "alias", alias, str(previous), None, now)
            self._touch_model(conn, model.id, now)
            self._audit(conn, "alias.delete", f"model:{name}@{alias}", {"version": previous}, None)
            self._emit(conn, "alias.deleted", {"model": name, "alias": alias, "previous": previous}, model.id)

    # -- blobs ----------------------------------------------------------------------

    def _require_uploader(self) -> None:
        """Uploading blobs takes the editor role on some model: blobs are reachable only through versions."""
        if self.principal.is_admin:
            return
        with self._tx(write=False) as conn:
            allowed = conn.execute(
                select(grants.c.id)
                .where(grants.c.subject.in_(self.principal.subjects), grants.c.role.in_(["editor", "manager"]))
                .limit(1)
            ).first()
            if allowed is None:
                raise Refused(
                    f"{self.actor!r} may not upload files: it is an editor of no model",
                    action="blob.upload",
                    target="blobs",
                )

    def _possessed(self, conn: Connection, digests: Sequence[str]) -> set[str] | None:
        """Which of ``digests`` the principal may read already (None: every blob, it reads every model).

        Only READY versions count: their files were uploaded, or proven held, by someone allowed to.
        """
        readable = self.readable_model_ids(conn)
        if readable is None:
            return None
        found: set[str] = set()
        unique = list(dict.fromkeys(digests))
        for start in range(0, len(unique), 500):
            found.update(
                conn.execute(
                    select(version_files.c.digest)
                    .join(model_versions, model_versions.c.id == version_files.c.version_id)
                    .where(
                        version_files.c.digest.in_(unique[start : start + 500]),
                        model_versions.c.status == "READY",
                        model_versions.c.model_id.in_(readable),
                    )
                    .distinct()
                ).scalars()
            )
        return found

    def _stored_since(self, digest: str, version: Row[Any]) -> bool:
        """The blob was (re)written after ``version`` was created: uploaded for it (1 s for clock grain)."""
        modified = self.blobs.modified(digest)
        return modified is not None and modified * 1000 >= version.creation_timestamp - 1000

    def _require_blob_reader(self, digest: str) -> None:
        """Reading a blob takes the reader role on a model with a READY version that holds it."""
        with self._tx(write=False) as conn:
            possessed = self._possessed(conn, [digest])
            if possessed is not None and digest not in possessed:
                raise Refused(
                    f"{self.actor!r} may not read blob {digest}: no model it may read holds it",
                    action="blob.read",
                    target=f"blob:{digest}",
                )

    def open_blob_writer(self, digest: str, size: int) -> BlobWriter:
        """Start storing one blob; its ``commit`` verifies the digest and size before it lands."""
        check_digest(digest)
        if isinstance(size, bool) or not isinstance(size, int) or size < 0:
            raise InvalidInput("'size' must be a non-negative integer")
        self._require_uploader()
        return self.blobs.writer(digest, size)

    def put_blob(self, digest: str, size: int, chunks: Iterable[bytes]) -> None:
        """Store one blob from a stream of chunks, verifying its digest and size."""
        writer = self.open_blob_writer(digest, size)
        try:
            for chunk in chunks:
                writer.write(chunk)
        except BaseException:
            writer.abort()
            raise
        writer.commit()

    def read_blob(self, digest: str) -> Iterator[bytes]:
        """Stream a stored blob (the reader verifies it against the digest)."""
        check_digest(digest)
        self._require_blob_reader(digest)
        return self.blobs.iter_chunks(digest)

    def blob_local_path(self, digest: str) -> str | None:
        """The stored blob's path on this machine when blobs are in a local folder."""
        path = self.blobs.local_path(check_digest(digest))
        self._require_blob_reader(digest)
        if path is not None:
            # The server streams the file itself, after answering 200: a file it cannot read must fail now.
            self.blobs.check_readable(digest)
        return path

    def missing_blobs(self, digests: Sequence[str]) -> list[str]:
        for i, d in enumerate(digests):
            check_digest(d, f"digests[{i}]")
        self._require_uploader()
        absent = set(self.blobs.missing(digests))
        with self._tx(write=False) as conn:
            possessed = self._possessed(conn, digests)
        # A stored blob the caller cannot read is "missing" for it: uploading it proves it holds the file.
        return [d for d in dict.fromkeys(digests) if d in absent or (possessed is not None and d not in possessed)]

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
