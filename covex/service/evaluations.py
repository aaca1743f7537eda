"""Evaluation records: what a version scored on a set of rows (``covex.domain.evaluations``).

The evaluations themselves run above the SDK (``covex.evaluation``, ``covex.explain``); this
service stores and finds what they computed. Recording takes the editor role on the model (an
evaluation can open a policy gate, so a reader may not write one) and is audited; reading takes the
reader role.
"""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import Connection, insert, select

from covex.domain import evaluations as dom
from covex.domain.errors import InvalidInput, NotFound
from covex.domain.evaluations import Evaluation
from covex.domain.names import validate_id, validate_model_name
from covex.service.base import ServiceBase, now_ms
from covex.service.monitoring import json_text
from covex.store.schema import evaluations, models

MAX_LISTED = 1000
_SELECT = select(evaluations, models.c.name.label("model_name")).select_from(
    evaluations.join(models, models.c.id == evaluations.c.model_id)
)


def _entity(row: Any) -> Evaluation:
    return Evaluation(
        id=row.id,
        name=row.model_name,
        version=row.version,
        kind=row.kind,
        key=row.key,
        data_digest=row.data_digest,
        source=row.source,
        data_tags=json.loads(row.data_tags),
        rows=row.rows,
        created_at=row.created_at,
        created_by=row.created_by,
        body=json.loads(row.body),
    )


class EvaluationService(ServiceBase):
    """Record and find evaluations of versions."""

    def record_evaluation(
        self,
        name: str,
        version: int,
        *,
        kind: str,
        key: str,
        data_digest: str,
        source: str,
        rows: int,
        body: dict[str, Any],
        data_tags: list[str] | None = None,
    ) -> Evaluation:
        """Store one evaluation of ``version`` (an earlier one with the same key stays, as history)."""
        validate_model_name(name)
        validate_id(version, "version")
        kind, key = dom.check_kind(kind), dom.check_key(key)
        digest, source = dom.check_digest(data_digest), dom.check_source(source)
        rows, tags = dom.check_rows(rows), dom.check_data_tags(data_tags)
        text = json_text(dom.check_body(body), "body", dom.MAX_BODY)
        with self._tx(write=True) as conn:
            model, row = self._version_for(conn, name, version, "editor", "evaluation.record")
            new_id = conn.execute(
                insert(evaluations).returning(evaluations.c.id),
                {
                    "model_id": model.id,
                    "version_id": row.id,
                    "version": version,
                    "kind": kind,
                    "key": key,
                    "data_digest": digest,
                    "source": source,
                    "data_tags": json.dumps(tags),
                    "rows": rows,
                    "created_at": now_ms(),
                    "created_by": self.actor,
                    "body": text,
                },
            ).scalar_one()
            found = self._evaluation(conn, new_id)
            summary = {"id": found.id, "kind": kind, "key": key, "data_digest": digest, "rows": rows}
            self._audit(conn, "evaluation.record", f"model:{name}/{version}", None, summary)
            return found

    def list_evaluations(
        self,
        name: str,
        version: int | None = None,
        *,
        kind: str | None = None,
        key: str | None = None,
        max_results: int = 100,
    ) -> list[Evaluation]:
        """Evaluations of ``name`` (of one version, one kind, one key), newest first."""
        validate_model_name(name)
        if version is not None:
            validate_id(version, "version")
        if kind is not None:
            dom.check_kind(kind)
        if key is not None:
            dom.check_key(key)
        if isinstance(max_results, bool) or not isinstance(max_results, int) or not 1 <= max_results <= MAX_LISTED:
            raise InvalidInput(f"'max_results' must be from 1 to {MAX_LISTED}, got {max_results!r}")
        with self._tx(write=False) as conn:
            model = self._model_for(conn, name, "reader", "evaluation.read", lock=False)
            q = _SELECT.where(evaluations.c.model_id == model.id)
            if version is not None:
                q = q.where(evaluations.c.version == version)
            if kind is not None:
                q = q.where(evaluations.c.kind == kind)
            if key is not None:
                q = q.where(evaluations.c.key == key)
            return [_entity(r) for r in conn.execute(q.order_by(evaluations.c.id.desc()).limit(max_results))]

    def get_evaluation(self, evaluation_id: int) -> Evaluation:
        validate_id(evaluation_id, "evaluation_id")
        with self._tx(write=False) as conn:
            found = self._evaluation(conn, evaluation_id)
            self.require(conn, self._model_row(conn, found.name), "reader", "evaluation.read")
            return found

    def _evaluation(self, conn: Connection, evaluation_id: int) -> Evaluation:
        row = conn.execute(_SELECT.where(evaluations.c.id == evaluation_id)).one_or_none()
        if row is None:
            raise NotFound(f"evaluation {evaluation_id} does not exist")
        return _entity(row)


__all__ = ["EvaluationService"]
