"""Upgrading a registry made before scoped policies: its policies stay global, its requests name their policy."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import text

from covex.service import open_service
from covex.settings import Settings
from covex.store import database
from covex.store.schema import metadata
from tests import support

RULES = {"approvals": 1, "approvers": [], "forbid_self_approval": True, "gates": ["metrics.auc >= 0.8"]}


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'covex.db'}"
        return
    reason = support.postgres_available()
    if reason:
        pytest.skip(reason)
    with support.fresh_postgres_database() as fresh:
        yield fresh


def test_upgrade_keeps_policies_global_and_fills_the_policy_of_requests(url: str, tmp_path: Path) -> None:
    engine = database.create_db_engine(url)
    database.upgrade(engine, "0004")
    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO models (name, description, created_by, last_version, creation_timestamp, "
                "last_updated_timestamp) VALUES ('churn', '', 'tester', 1, 1, 1)"
            )
        )
        conn.execute(
            text(
                "INSERT INTO policies (target_kind, target, body, updated_by, last_updated_timestamp) "
                "VALUES ('stage', 'Production', :body, 'tester', 1)"
            ),
            {"body": json.dumps(RULES)},
        )
        for target_kind, target in (("stage", "Production"), ("alias", "champion")):
            conn.execute(
                text(
                    "INSERT INTO transition_requests (model_id, version, target_kind, target, status, "
                    "status_message, kind, requester, comment, champion, gates, policy, creation_timestamp, "
                    "last_updated_timestamp) SELECT id, 1, :kind, :target, 'OPEN', '', 'promotion', 'tester', '', "
                    "NULL, '[]', :policy, 1, 1 FROM models"
                ),
                {"kind": target_kind, "target": target, "policy": json.dumps(RULES)},
            )
    database.upgrade(engine)
    assert "0010" == database.current_revision(engine)  # the latest: later ones run too
    with engine.connect() as conn:
        assert [] == compare_metadata(MigrationContext.configure(conn), metadata)
    engine.dispose()

    service = open_service(Settings(uri=url, artifacts=str(tmp_path / "artifacts"), user="tester"))
    try:
        approvals = service.approvals
        (policy,) = approvals.list_policies()
        assert ("global", None, None, ["metrics.auc >= 0.8"]) == (policy.scope, policy.model, policy.tag, policy.gates)
        production, champion = sorted(approvals.list_requests("churn"), key=lambda r: r.target_kind, reverse=True)
        assert (policy.id, "global", 1) == (production.policy_id, production.policy_scope, production.approvals_needed)
        assert production.policy is not None and ["metrics.auc >= 0.8"] == production.policy.gates
        # The alias had no policy: the request names none.
        assert (None, "global") == (champion.policy_id, champion.policy_scope)
        # The old one-policy-per-stage constraint is gone: a model of its own may have one now.
        scoped = approvals.set_policy("stage", "Production", {"approvals": 2}, model="churn")
        assert ("model", 2) == (scoped.scope, scoped.approvals)
        assert 2 == len(approvals.list_policies())
    finally:
        service.close()
