"""Models: create, read, rename, describe, tag, delete and search them."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from functools import lru_cache
from typing import Any

from sqlalchemy import Select, bindparam, delete, func, insert, select, update
from sqlalchemy.exc import IntegrityError

from covex.domain.access import RANK
from covex.domain.entities import Model, Page
from covex.domain.errors import AlreadyExists, InvalidInput, InvalidState, NotFound
from covex.domain.filters import MODEL_FIELDS, parse_filter, parse_order_by
from covex.domain.names import validate_key, validate_model_name, validate_tags, validate_text
from covex.service.base import ServiceBase, now_ms
from covex.service.deployments import DeploymentService
from covex.service.policies import guard_retag
from covex.store import keyed, queries, search
from covex.store.prepared import Prepared
from covex.store.schema import grants, model_tags, model_versions, models

MODEL_SORTABLE = {"name", "creation_timestamp", "last_updated_timestamp"}


@lru_cache(maxsize=search.SEARCHES_CACHED)
def _model_search(filter: str | None, order_by: tuple[str, ...]) -> tuple[Select[Any], Prepared]:
    """The statement finding the models ``filter`` matches in ``order_by``'s order (any page of them), and the
    same with the page as parameters (``limit``, ``offset``), ready to run."""
    node = parse_filter(filter, MODEL_FIELDS)
    order = parse_order_by(list(order_by or []), MODEL_FIELDS, MODEL_SORTABLE)
    q = select(models).where(search.model_filter(node)).order_by(*search.model_order(order))
    return q, Prepared(q.limit(bindparam("limit")).offset(bindparam("offset")), on_reuse=True)


def _tag(key: str, value: str | None) -> dict[str, str] | None:
    return None if value is None else {key: value}


class ModelService(ServiceBase):
    """The use cases on models as a whole (their versions: ``covex.service.versions``)."""

    def create_model(self, name: str, description: str = "", tags: Mapping[str, str] | None = None) -> Model:
        validate_model_name(name)
        description = validate_text(description, "description")
        tag_values = validate_tags(tags, "tags")
        now = now_ms()
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
            row = self._model_for(conn, name, "reader", "model.read", lock=False)
            return self._model(conn, row)

    def role_on(self, name: str) -> str:
        """The viewer's role on a model (``reader``, ``editor`` or ``manager``; admins are managers).

        For showing only the actions the viewer may take: every action checks the role again itself.
        """
        with self._tx(write=False) as conn:
            row = self._model_for(conn, name, "reader", "model.read", lock=False)
            rank = self.model_role(conn, row.id)
        return next(role for role, n in RANK.items() if n == rank)

    def rename_model(self, name: str, new_name: str) -> Model:
        return self.update_model(name, new_name=new_name)

    def update_model(self, name: str, *, description: str | None = None, new_name: str | None = None) -> Model:
        """Change a model's description and/or name, in one transaction."""
        if description is None and new_name is None:
            raise InvalidInput("give 'description' or 'new_name'")
        values: dict[str, Any] = {"last_updated_timestamp": now_ms()}
        if description is not None:
            values["description"] = validate_text(description, "description")
        if new_name is not None:
            values["name"] = validate_model_name(new_name, "new_name")
        try:
            with self._tx(write=True) as conn:
                role = "manager" if new_name not in (None, name) else "editor"
                row = self._model_for(conn, name, role, "model.update")
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
            row = self._model_for(conn, name, "editor", "model.tag.set")
            guard_retag(self, conn, row, key, value)
            before = keyed.replace_keys(conn, model_tags, row.id, {key: value}).get(key)
            self._touch_model(conn, row.id, now_ms())
            self._audit(conn, "model.tag.set", f"model:{name}", _tag(key, before), {key: value})
            return self._model(conn, self._model_row(conn, name))

    def delete_model_tag(self, name: str, key: str) -> Model:
        validate_key(key, "key")
        with self._tx(write=True) as conn:
            row = self._model_for(conn, name, "editor", "model.tag.delete")
            guard_retag(self, conn, row, key, None)
            before = keyed.delete_key(conn, model_tags, row.id, key)
            if before is None:
                raise NotFound(f"model {name!r} has no tag {key!r}")
            self._touch_model(conn, row.id, now_ms())
            self._audit(conn, "model.tag.delete", f"model:{name}", {key: before}, None)
            return self._model(conn, self._model_row(conn, name))

    def delete_model(self, name: str) -> None:
        """Delete a model with all its versions, tags and aliases (files stay until ``gc``)."""
        with self._tx(write=True) as conn:
            row = self._model_for(conn, name, "manager", "model.delete")
            serving = self._sibling(DeploymentService).serving_deployments(conn, model_id=row.id)
            if serving:
                where = ", ".join(f"version {d.version} at {d.target} (deployment {d.id})" for d in serving)
                raise InvalidState(f"model {name!r} is serving: {where}; stop those before deleting the model")
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
        q, paged = search.cached_statement(_model_search, filter, order_by)
        limit = search.check_max_results(max_results)
        offset = search.decode_page_token(page_token)
        with self._tx(write=False) as conn:
            readable = self.readable_model_ids(conn)
            if readable is None:
                rows = paged.all(conn, {"limit": limit + 1, "offset": offset})
            else:
                rows = list(conn.execute(q.where(models.c.id.in_(readable)).limit(limit + 1).offset(offset)))
            items = queries.load_models(conn, rows[:limit])
        token = search.encode_page_token(offset + limit) if len(rows) > limit else None
        return Page[Model](items=items, next_page_token=token)

    def stages_of(self, names: Sequence[str]) -> dict[str, dict[str, int]]:
        """For each model named (that the principal may read): its stages in use, other than the first (``None``)
        and ``Archived``, each with the newest version in it. One query, for a page listing many models."""
        if len(names) > 1000:
            raise InvalidInput("'names' may name at most 1000 models")
        for i, name in enumerate(names):
            validate_model_name(name, f"names[{i}]")
        q = (
            select(models.c.name, model_versions.c.stage, func.max(model_versions.c.version))
            .join(models, models.c.id == model_versions.c.model_id)
            .where(models.c.name.in_(list(names)), model_versions.c.stage.not_in((self.initial_stage, "Archived")))
            .group_by(models.c.name, model_versions.c.stage)
        )
        out: dict[str, dict[str, int]] = {}
        with self._tx(write=False) as conn:
            readable = self.readable_model_ids(conn)
            if readable is not None:
                q = q.where(models.c.id.in_(readable))
            for name, stage, version in conn.execute(q):
                out.setdefault(name, {})[stage] = version
        return {
            name: dict(sorted(found.items(), key=lambda kv: self._stage_rank(kv[0]))) for name, found in out.items()
        }

    def _stage_rank(self, stage: str) -> int:
        return self.stages.index(stage) if stage in self.stages else len(self.stages)
