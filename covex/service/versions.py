"""Versions: create and finalize them, their files, tags, metrics, params and documents (the card among them)."""

from __future__ import annotations

import itertools
import json
from collections.abc import Mapping, Sequence
from functools import lru_cache
from typing import Any, NamedTuple

from sqlalchemy import Connection, Row, Select, Table, bindparam, delete, func, insert, select, update

from covex.artifacts import check_digest, manifest_digest
from covex.domain.cards import validate_card
from covex.domain.documents import check_kind, validate_documents
from covex.domain.entities import FileEntry, ModelVersion, NewVersion, Page
from covex.domain.errors import AlreadyExists, InvalidInput, InvalidState, NotFound
from covex.domain.filters import VERSION_FIELDS, parse_filter, parse_order_by
from covex.domain.names import (
    MAX_INT64,
    MAX_KEY_LENGTH,
    MAX_URI_LENGTH,
    validate_artifact_path,
    validate_id,
    validate_key,
    validate_metrics,
    validate_ref,
    validate_tags,
    validate_text,
)
from covex.domain.uris import MAX_ID, ModelRef
from covex.service.base import ServiceBase, now_ms
from covex.service.blobs import BlobService
from covex.service.deployments import DeploymentService
from covex.service.placement import record_event
from covex.service.scans import ScanService
from covex.store import database, keyed, queries, search
from covex.store.prepared import Prepared
from covex.store.schema import (
    model_aliases,
    model_versions,
    models,
    version_documents,
    version_files,
    version_metrics,
    version_params,
    version_tags,
)

VERSION_SORTABLE = {"name", "version", "creation_timestamp", "last_updated_timestamp", "metrics"}


def _newest_of(newest: Select[Any]) -> Select[Any]:
    """Version rows that are the newest of their model in their stage, among ``newest``'s groups."""
    sub = newest.group_by(model_versions.c.model_id, model_versions.c.stage).subquery()
    return queries.version_select().join(
        sub, (model_versions.c.model_id == sub.c.model_id) & (model_versions.c.version == sub.c.newest)
    )


_NEWEST = (
    select(model_versions.c.model_id, func.max(model_versions.c.version).label("newest"))
    .join(models, models.c.id == model_versions.c.model_id)
    .where(models.c.name.in_(bindparam("names", expanding=True)))
)
# Built once (the names and stages are bound): building them per call cost more than running them.
_LATEST = _newest_of(_NEWEST)
_LATEST_IN_STAGES = _newest_of(_NEWEST.where(model_versions.c.stage.in_(bindparam("stages", expanding=True))))


class _VersionSearch(NamedTuple):
    """A search's statement (any page), and the same ready to run with the page as parameters (``limit``,
    ``offset``): over every model, and over one (``in_model``)."""

    statement: Select[Any]
    paged: Prepared
    paged_in_model: Prepared


@lru_cache(maxsize=search.SEARCHES_CACHED)
def _version_search(filter: str | None, order_by: tuple[str, ...]) -> _VersionSearch:
    """The statement finding the versions ``filter`` matches in ``order_by``'s order."""
    node = parse_filter(filter, VERSION_FIELDS)
    order = parse_order_by(list(order_by or []), VERSION_FIELDS, VERSION_SORTABLE)
    q = queries.version_select().where(search.version_filter(node)).order_by(*search.version_order(order))
    in_model = q.where(model_versions.c.model_id == bindparam("in_model"))
    return _VersionSearch(
        q,
        Prepared(q.limit(bindparam("limit")).offset(bindparam("offset")), on_reuse=True),
        Prepared(in_model.limit(bindparam("limit")).offset(bindparam("offset")), on_reuse=True),
    )


_DOCUMENT = select(version_documents.c.body).where(
    version_documents.c.version_id == bindparam("version_id"), version_documents.c.kind == bindparam("kind")
)


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


# Built once: a create runs them every time.
_INSERT_VERSION = Prepared(
    insert(model_versions).returning(model_versions.c.id),
    keys=(
        "model_id",
        "version",
        "status",
        "status_message",
        "stage",
        "created_by",
        "manifest_digest",
        "file_count",
        "size",
        "creation_timestamp",
        "last_updated_timestamp",
        "source",
        "description",
        "run_id",
        "run_link",
    ),
)
_NEXT_VERSION = Prepared(
    update(models)
    .where(models.c.id == bindparam("model_id"))
    .values(last_version=models.c.last_version + 1, last_updated_timestamp=bindparam("now"))
    .returning(models.c.last_version)
)
_INSERT_KEYED = {
    t.name: Prepared(insert(t), keys=("version_id", "key", "value"))
    for t in (version_tags, version_metrics, version_params)
}


class Checked(NamedTuple):
    """A new version's parts, checked: what ``insert_version`` records."""

    entries: list[FileEntry]
    values: dict[str, str]
    tags: dict[str, str]
    metrics: dict[str, float]
    params: dict[str, str]
    documents: dict[str, str]
    number: int | None


class Held(NamedTuple):
    """A version just inserted, as ``ScanService.queue_scan`` reads it."""

    id: int
    version: int
    manifest_digest: str | None


class _Owner(NamedTuple):
    """The model a version row belongs to, as ``require`` reads it."""

    id: int
    name: str


class VersionService(ServiceBase):
    """The use cases on a model's versions (where they are placed: ``covex.service.placement``)."""

    def _resolve_row(self, conn: Connection, ref: ModelRef) -> Any:
        """The version row ``ref`` names (a ``Row``, or a named tuple with the same columns)."""
        validate_ref(ref, self.stages)
        # A number or an alias: one statement finds the version with its model; the permission check
        # follows. Found nothing: the longer way below says which part is missing.
        if ref.kind in ("version", "alias"):
            lookup, by = (
                (queries.VERSION_BY_MODEL_NAME_AND_NUMBER, {"name": ref.name, "version": ref.version})
                if ref.kind == "version"
                else (queries.VERSION_BY_MODEL_NAME_AND_ALIAS, {"name": ref.name, "alias": ref.value})
            )
            found = lookup.one_or_none(conn, by)
            if found is not None:
                self.require(conn, _Owner(found.model_id, found.name), "reader", "model.read")
                return found
        model = self._model_for(conn, ref.name, "reader", "model.read", lock=False)
        if ref.kind == "version":
            return self._version_row(conn, model, ref.version)
        if ref.kind == "alias":
            row = conn.execute(queries.VERSION_BY_ALIAS, {"model_id": model.id, "alias": ref.value}).one_or_none()
            if row is None:
                raise NotFound(f"model {ref.name!r} has no alias {ref.value!r}")
            return row
        if ref.kind == "stage":
            q, params = queries.LATEST_IN_STAGE, {"model_id": model.id, "stage": self.stage(ref.value)}
        else:
            q, params = queries.LATEST_READY, {"model_id": model.id}
        row = conn.execute(q, params).one_or_none()
        if row is None:
            where = f"in stage {self.stage(ref.value)!r}" if ref.kind == "stage" else "that is READY"
            raise NotFound(f"model {ref.name!r} has no version {where}")
        return row

    def create_version(
        self,
        name: str,
        new: NewVersion,
    ) -> ModelVersion:
        """Allocate the next version number and record the version.

        With ``files`` the version is PENDING until ``finalize_version`` has checked
        that every blob is stored; without, it records ``source`` only and is READY.
        ``documents`` (lineage, signature, profile, card) are stored in the same
        transaction. ``number`` keeps a number from elsewhere (imports); it must be
        higher than any number the model has handed out.
        """
        checked = self.check_version(new)
        with self._tx(write=True) as conn:
            # Choosing a number (imports keep theirs) is the manager's: it uses up the numbers below it.
            model = self._model_for(conn, name, "editor" if new.number is None else "manager", "version.create")
            created = self.insert_version(conn, model, checked)
        if created.status == "READY":
            self._sibling(ScanService).after_ready(name, created.version)
        return created

    def check_version(self, new: NewVersion) -> Checked:
        """Everything a new version is made of, checked (before any transaction)."""
        entries = self._check_files(new.files or [])
        if not entries and not new.source:
            raise InvalidInput("give 'files' to upload or a 'source' URI to record")
        if new.number is not None:
            validate_id(new.number, "number")
        return Checked(
            entries=entries,
            values={
                "source": validate_text(new.source, "source", MAX_URI_LENGTH),
                "description": validate_text(new.description, "description"),
                "run_id": validate_text(new.run_id, "run_id", MAX_KEY_LENGTH),
                "run_link": validate_text(new.run_link, "run_link", MAX_URI_LENGTH),
            },
            tags=validate_tags(new.tags, "tags"),
            metrics=validate_metrics(new.metrics),
            params=validate_tags(new.params, "params"),
            documents=validate_documents(new.documents),
            number=new.number,
        )

    def insert_version(self, conn: Connection, model: Row[Any], new: Checked, *, held: bool = False) -> ModelVersion:
        """Record a checked version of ``model`` (locked by the caller) in ``conn``'s transaction.

        ``held``: the service holds every blob already (imports), so the version is READY at once.
        A READY version's scan is queued in the same transaction.
        """
        name, entries, number, now = model.name, new.entries, new.number, now_ms()
        digest = manifest_digest(entries) if entries else None
        if number is None and model.last_version >= MAX_ID:
            raise InvalidState(f"model {name!r} has handed out its last version number ({MAX_ID})")
        if number is not None and number <= model.last_version:
            raise AlreadyExists(
                f"version number {number} of {name!r} is taken (the last handed out is {model.last_version})"
            )
        if number is None:
            (number,) = _NEXT_VERSION.all(conn, {"model_id": model.id, "now": now})[0]
        else:
            touched = {"last_version": number, "last_updated_timestamp": now}
            conn.execute(update(models).where(models.c.id == model.id).values(**touched))
        row = {
            "version": number,
            "status": "PENDING" if entries and not held else "READY",
            "status_message": "",
            "stage": self.initial_stage,
            "created_by": self.actor,
            "manifest_digest": digest,
            "file_count": len(entries),
            "size": sum(f.size for f in entries),
            "creation_timestamp": now,
            "last_updated_timestamp": now,
            **new.values,
        }
        ((version_id,),) = _INSERT_VERSION.all(conn, {"model_id": model.id, **row})
        for table, items in ((version_tags, new.tags), (version_metrics, new.metrics), (version_params, new.params)):
            rows = [{"version_id": version_id, "key": k, "value": v} for k, v in items.items()]
            _INSERT_KEYED[table.name].many(conn, rows)
        if entries:
            database.lock_blobs(conn, exclusive=False)  # gc deletes nothing while these references land
            conn.execute(
                insert(version_files),
                [
                    {"version_id": version_id, "path": f.path, "digest": f.digest, "size": f.size, "mode": f.mode}
                    for f in entries
                ],
            )
        if new.documents:
            conn.execute(
                insert(version_documents),
                [
                    {"version_id": version_id, "kind": k, "body": body, "last_updated_timestamp": now}
                    for k, body in new.documents.items()
                ],
            )
        summary = {
            "version": number,
            "status": row["status"],
            "source": new.values["source"],
            "manifest_digest": row["manifest_digest"],
            "metrics": new.metrics,
        }
        self._audit(conn, "version.create", f"model:{name}/{number}", None, summary)
        self._emit(conn, "version.created", {"model": name, **summary}, model.id)
        if row["status"] == "READY" and entries:  # held files: their scan is queued now
            self._sibling(ScanService).queue_scan(conn, model.id, Held(version_id, number, digest))
        elif row["status"] == "READY":  # a source only: nothing to read, so it is scanned already
            self._sibling(ScanService).record_nothing_to_scan(conn, model, Held(version_id, number, digest))
        # Everything is in hand: no need to read the new version back.
        return ModelVersion(name=name, tags=new.tags, metrics=new.metrics, params=new.params, aliases=[], **row)

    def get_document(self, ref: ModelRef, kind: str) -> dict[str, Any]:
        """One JSON document of a version (lineage, signature, profile or card)."""
        check_kind(kind)
        with self._tx(write=False) as conn:
            row = self._resolve_row(conn, ref)
            body = conn.execute(_DOCUMENT, {"version_id": row.id, "kind": kind}).scalar_one_or_none()
        if body is None:
            raise NotFound(f"{ref} has no {kind}")
        return dict(json.loads(body))

    def set_card(self, name: str, version: int, card: Mapping[str, Any], *, replace: bool = False) -> dict[str, Any]:
        """Merge ``card``'s fields into a version's model card (the one document that stays editable).

        A field given as None is removed. With ``replace`` the card becomes exactly ``card``.
        """
        if not isinstance(replace, bool):
            raise InvalidInput(f"'replace' must be true or false, got {replace!r}")
        if not isinstance(card, Mapping):  # None too: an empty card is {} (with replace=True to clear it)
            raise InvalidInput("'card' must be a mapping of card fields")
        given = dict(card)
        removed = {k for k, v in given.items() if v is None}
        # Removed fields must be card fields too: check them as if they were set.
        changes = validate_card(given if not removed else {**given, **dict.fromkeys(removed, "")})
        now = now_ms()
        with self._tx(write=True) as conn:
            _, row = self._version_for(conn, name, version, "editor", "version.card.set")
            stored = conn.execute(_DOCUMENT, {"version_id": row.id, "kind": "card"}).scalar_one_or_none()
            before = None if stored is None else dict(json.loads(stored))
            fields = {**({} if replace else before or {}), **changes}
            fields = {k: v for k, v in fields.items() if k not in removed}
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
            self._audit(conn, "version.card.set", f"model:{name}/{version}", before, fields)
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
            _, row = self._version_for(conn, name, version, "editor", "version.finalize", lock=False)
            if row.status == "READY":
                return self._version(conn, row)
            if row.status == "FAILED":
                raise InvalidState(
                    f"version {version} of {name!r} has FAILED ({row.status_message}); create a new version"
                )
            files = queries.load_files(conn, row.id)
            possessed = self._sibling(BlobService).possessed(conn, [f.digest for f in files])
        # Blob checks do I/O; keep them outside the write transaction.
        problems = []
        for f in files:
            size = self.blobs.size(f.digest)
            if possessed is not None and f.digest not in possessed:
                # Naming a digest is not holding the file: it must be uploaded, unless the caller can already
                # read it. One answer whatever is stored, so finalize tells nothing about other models' files.
                if size != f.size or not self._sibling(BlobService).stored_since(f.digest, row):
                    problems.append(f"{f.path} (not uploaded)")
            elif size is None:
                problems.append(f"{f.path} (not uploaded)")
            elif size != f.size:
                problems.append(f"{f.path} (stored size {size} != {f.size})")
        if problems:
            shown = ", ".join(problems[:5]) + (f" and {len(problems) - 5} more" if len(problems) > 5 else "")
            raise InvalidState(f"version {version} of {name!r} is missing files: {shown}")
        return self._mark_ready(name, version)

    def _mark_ready(self, name: str, version: int) -> ModelVersion:
        with self._tx(write=True) as conn:
            model = self._model_row(conn, name, lock=True)
            row = self._version_row(conn, model, version)
            if row.status == "PENDING":
                self._touch_version(conn, row.id, now_ms(), status="READY", status_message="")
                target = f"model:{name}/{version}"
                self._audit(conn, "version.finalize", target, {"status": "PENDING"}, {"status": "READY"})
                self._emit(conn, "version.ready", {"model": name, "version": version}, model.id)
                self._sibling(ScanService).queue_scan(conn, model.id, row)
            elif row.status == "FAILED":
                raise InvalidState(f"version {version} of {name!r} has FAILED ({row.status_message})")
            ready = self._version(conn, self._version_row(conn, model, version))
        self._sibling(ScanService).after_ready(name, version)
        return ready

    def create_held_version(self, name: str, new: NewVersion) -> ModelVersion:
        """Create a version from files this service holds proof of, READY at once.

        For the service's own use only, never for files a caller lists: the blobs were stored by the
        service itself (copied from elsewhere) or belong to a run or logged model of its tracking store that
        the caller may read. A blob that is missing or of another size fails the version.
        """
        created = self.create_version(name, new)
        wrong = [f.path for f in new.files if self.blobs.size(f.digest) != f.size]
        if wrong:
            self.fail_version(name, created.version, f"files missing from the store: {', '.join(wrong[:5])}")
            raise InvalidState(f"version {created.version} of {name!r} is missing files: {', '.join(wrong[:5])}")
        return self._mark_ready(name, created.version)

    def fail_version(self, name: str, version: int, message: str) -> ModelVersion:
        """Mark a PENDING version FAILED with a message (a READY version stays READY)."""
        message = validate_text(message, "message")[:2000]
        with self._tx(write=True) as conn:
            model, row = self._version_for(conn, name, version, "editor", "version.fail")
            if row.status == "READY":
                raise InvalidState(f"version {version} of {name!r} is READY and cannot fail")
            self._touch_version(conn, row.id, now_ms(), status="FAILED", status_message=message or "upload failed")
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
        if model is not None and not order_by:
            order_by = ["version DESC"]  # one model's versions: newest first
        found = search.cached_statement(_version_search, filter, order_by)
        limit = search.check_max_results(max_results)
        offset = search.decode_page_token(page_token)
        page = {"limit": limit + 1, "offset": offset}
        with self._tx(write=False) as conn:
            if model is not None:
                model_row = self._model_for(conn, model, "reader", "model.read", lock=False)
                rows = found.paged_in_model.all(conn, {"in_model": model_row.id, **page})
            elif (readable := self.readable_model_ids(conn)) is None:
                rows = found.paged.all(conn, page)
            else:
                q = found.statement.where(model_versions.c.model_id.in_(readable))
                rows = list(conn.execute(q.limit(limit + 1).offset(offset)))
            items = queries.load_versions(conn, rows[:limit])
        token = search.encode_page_token(offset + limit) if len(rows) > limit else None
        return Page[ModelVersion](items=items, next_page_token=token)

    def latest_versions(
        self, names: Sequence[str], stages: Sequence[str] | None = None
    ) -> dict[str, list[ModelVersion]]:
        """The newest version of each named model in each stage (or in ``stages``), in stage order.

        One statement for all the models: listing models with their latest versions costs no query per model.
        Models the caller may not read, or that do not exist, are left out (one name alone: NotFound).
        """
        wanted = [self.stage(s) for s in stages] if stages else None
        params: dict[str, Any] = {"names": list(names), **({"stages": wanted} if wanted else {})}
        with self._tx(write=False) as conn:
            q = _LATEST_IN_STAGES if wanted else _LATEST
            if len(names) == 1:
                self._model_for(conn, names[0], "reader", "model.read", lock=False)
            else:
                readable = self.readable_model_ids(conn)
                q = q if readable is None else q.where(model_versions.c.model_id.in_(readable))
            found = queries.load_versions(conn, conn.execute(q, params).all()) if names else []
        order = {s: i for i, s in enumerate(self.stages)}
        latest: dict[str, list[ModelVersion]] = {}
        for v in sorted(found, key=lambda v: (order.get(v.stage, len(order)), v.version)):
            latest.setdefault(v.name, []).append(v)
        return latest

    def update_version(self, name: str, version: int, *, description: str) -> ModelVersion:
        description = validate_text(description, "description")
        with self._tx(write=True) as conn:
            model, row = self._version_for(conn, name, version, "editor", "version.update")
            self._touch_version(conn, row.id, now_ms(), description=description)
            target = f"model:{name}/{version}"
            self._audit(conn, "version.update", target, {"description": row.description}, {"description": description})
            return self._version(conn, self._version_row(conn, model, version))

    def _set_keyed(self, name: str, version: int, table: Table, items: Mapping[str, Any], action: str) -> ModelVersion:
        with self._tx(write=True) as conn:
            model, row = self._version_for(conn, name, version, "editor", action)
            before = keyed.replace_keys(conn, table, row.id, items)
            self._touch_version(conn, row.id, now_ms())
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
            model, row = self._version_for(conn, name, version, "editor", "version.tag.delete")
            before = keyed.delete_key(conn, version_tags, row.id, key)
            if before is None:
                raise NotFound(f"version {version} of {name!r} has no tag {key!r}")
            self._touch_version(conn, row.id, now_ms())
            self._audit(conn, "version.tag.delete", f"model:{name}/{version}", {key: before}, None)
            return self._version(conn, self._version_row(conn, model, version))

    def delete_version(self, name: str, version: int) -> None:
        """Delete a version and its aliases; its number is never handed out again."""
        with self._tx(write=True) as conn:
            model, row = self._version_for(conn, name, version, "manager", "version.delete")
            serving = self._sibling(DeploymentService).serving_deployments(conn, version_id=row.id)
            if serving:
                where = ", ".join(f"deployment {d.id} at {d.target}" for d in serving)
                raise InvalidState(
                    f"version {version} of {name!r} is serving ({where}); stop it, or let it swap to another "
                    "version, before deleting this one"
                )
            aliases = (
                conn.execute(select(model_aliases.c.alias).where(model_aliases.c.version_id == row.id)).scalars().all()
            )
            conn.execute(delete(model_versions).where(model_versions.c.id == row.id))
            now = now_ms()
            self._touch_model(conn, model.id, now)
            # Its aliases go with it: the history and webhooks must say so, as for delete_alias.
            for alias in aliases:
                why = "version deleted"
                record_event(conn, self.actor, model.id, version, "alias", alias, str(version), None, now, why)
                self._audit(conn, "alias.delete", f"model:{name}@{alias}", {"version": version}, None)
                self._emit(conn, "alias.deleted", {"model": name, "alias": alias, "previous": version}, model.id)
            before = {"stage": row.stage, "aliases": list(aliases), "manifest_digest": row.manifest_digest}
            self._audit(conn, "version.delete", f"model:{name}/{version}", before, None)
            self._emit(conn, "version.deleted", {"model": name, "version": version, **before}, model.id)
