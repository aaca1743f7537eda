"""Every role against every action: what is allowed and what is refused, embedded and over HTTP.

Each cell gets a fresh model ``m-…`` holding one READY version with a file; the
role's user holds that role on that model only (``approver``: the approver right
for ``stage:Production`` on it, nothing else). A refusal must raise
``PermissionDenied`` (403 ``PERMISSION_DENIED`` over HTTP), or ``Unauthenticated``
(401) without a valid token, and append a ``refused`` record to the audit trail (without a
valid token: counted per source, see tests/audit/test_flooding.py).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

import covex
from covex.store.schema import audit_log
from tests.conftest import Registry

ROLES = ("anonymous", "bad token", "outsider", "reader", "editor", "manager", "approver", "admin")
OK, HIDDEN, DENIED, UNAUTH = "ok", "hidden", "403", "401"

# fmt: off
EXPECTED: dict[str, tuple[str, ...]] = {
    #                          anonymous bad token outsider reader  editor  manager approver admin
    "get model":              (UNAUTH,   UNAUTH,   DENIED,  OK,     OK,     OK,     DENIED,  OK),
    "search models":          (UNAUTH,   UNAUTH,   HIDDEN,  OK,     OK,     OK,     HIDDEN,  OK),
    "create model":           (UNAUTH,   UNAUTH,   OK,      OK,     OK,     OK,     OK,      OK),
    "update description":     (UNAUTH,   UNAUTH,   DENIED,  DENIED, OK,     OK,     DENIED,  OK),
    "rename model":           (UNAUTH,   UNAUTH,   DENIED,  DENIED, DENIED, OK,     DENIED,  OK),
    "set model tag":          (UNAUTH,   UNAUTH,   DENIED,  DENIED, OK,     OK,     DENIED,  OK),
    "delete model":           (UNAUTH,   UNAUTH,   DENIED,  DENIED, DENIED, OK,     DENIED,  OK),
    "create version (upload)": (UNAUTH,  UNAUTH,   DENIED,  DENIED, OK,     OK,     DENIED,  OK),
    "download files":         (UNAUTH,   UNAUTH,   DENIED,  OK,     OK,     OK,     DENIED,  OK),
    "log metrics":            (UNAUTH,   UNAUTH,   DENIED,  DENIED, OK,     OK,     DENIED,  OK),
    "set card":               (UNAUTH,   UNAUTH,   DENIED,  DENIED, OK,     OK,     DENIED,  OK),
    "move to Dev (open)":     (UNAUTH,   UNAUTH,   DENIED,  DENIED, OK,     OK,     DENIED,  OK),
    "set alias":              (UNAUTH,   UNAUTH,   DENIED,  DENIED, OK,     OK,     DENIED,  OK),
    "delete version":         (UNAUTH,   UNAUTH,   DENIED,  DENIED, DENIED, OK,     DENIED,  OK),
    "grant on the model":     (UNAUTH,   UNAUTH,   DENIED,  DENIED, DENIED, OK,     DENIED,  OK),
    "grant on every model":   (UNAUTH,   UNAUTH,   DENIED,  DENIED, DENIED, DENIED, DENIED,  OK),
    "create user":            (UNAUTH,   UNAUTH,   DENIED,  DENIED, DENIED, DENIED, DENIED,  OK),
    "token for someone else": (UNAUTH,   UNAUTH,   DENIED,  DENIED, DENIED, DENIED, DENIED,  OK),
    "token for oneself":      (UNAUTH,   UNAUTH,   OK,      OK,     OK,     OK,     OK,      OK),
    "gc":                     (UNAUTH,   UNAUTH,   DENIED,  DENIED, DENIED, DENIED, DENIED,  OK),
}
# fmt: on

Action = Callable[[covex.Client, str, Path], Any]

ACTIONS: dict[str, Action] = {
    "get model": lambda c, m, _: c.get_model(m),
    "search models": lambda c, m, _: [x.name for x in c.search_models(f"name = '{m}'").items],
    "create model": lambda c, m, _: c.create_model(f"{m}-new"),
    "update description": lambda c, m, _: c.update_model(m, description="changed"),
    "rename model": lambda c, m, _: c.rename_model(m, f"{m}-renamed"),
    "set model tag": lambda c, m, _: c.set_model_tag(m, "team", "crm"),
    "delete model": lambda c, m, _: c.delete_model(m),
    "create version (upload)": lambda c, m, tmp: c.create_version(m, _fresh_file(tmp)),
    "download files": lambda c, m, tmp: c.download(f"models:/{m}/1", tmp / "out"),
    "log metrics": lambda c, m, _: c.log_metrics(m, 1, {"auc": 0.9}),
    "set card": lambda c, m, _: c.set_card(m, {"overview": "o"}, 1),
    "move to Dev (open)": lambda c, m, _: c.transition_stage(m, 1, "Dev"),
    "set alias": lambda c, m, _: c.set_alias(m, "champion", 1),
    "delete version": lambda c, m, _: c.delete_version(m, 1),
    "grant on the model": lambda c, m, _: c.access.grant("user:someone", "reader", model=m),
    "grant on every model": lambda c, m, _: c.access.grant("user:someone", "reader"),
    "create user": lambda c, m, _: c.access.create_user(f"u-{m}"),
    "token for someone else": lambda c, m, _: c.access.create_token("someone", name=m),
    "token for oneself": lambda c, m, _: c.access.create_token(name=m),
    "gc": lambda c, m, _: c.gc(),
}


def _fresh_file(tmp: Path) -> Path:
    # New content, so the upload really sends a blob (and needs the right to).
    path = tmp / "upload" / "model.pkl"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(uuid.uuid4().bytes * 100)
    return path.parent


# PostgreSQL runs a representative part: reads, writes, the manager and admin boundaries.
PG_SUBSET = {"get model", "search models", "update description", "delete version", "grant on the model", "gc"}
WORLDS = {
    "embedded-sqlite": ("embedded", "sqlite"),
    "http-sqlite": ("http", "sqlite"),
    "http-postgresql": ("http", "postgresql"),
}


@dataclass
class World:
    """One backend and database, with a token per role and an embedded admin client to set cells up."""

    registry: Registry
    backend: str
    admin: covex.Client
    secrets: dict[str, str | None]
    clients: dict[str, covex.Client] = field(default_factory=dict)

    def client(self, role: str) -> covex.Client:
        if role not in self.clients:
            settings = self.registry.settings.model_copy(update={"token": self.secrets[role]})
            self.clients[role] = covex.Client(self.registry.url, settings=settings)
        return self.clients[role]


@pytest.fixture(scope="module")
def worlds(registries: Callable[[str, str], Registry]) -> Iterator[Callable[[str], World]]:
    """Users are made once per database and module run (another module's ``reset`` removes them)."""
    per_db: dict[str, tuple[covex.Client, dict[str, str | None]]] = {}
    made: dict[str, World] = {}

    def get(world_id: str) -> World:
        if world_id in made:
            return made[world_id]
        backend, db = WORLDS[world_id]
        if db not in per_db:
            reg = registries("embedded", db)
            reg.reset()
            access = reg.service.access
            secrets: dict[str, str | None] = {"anonymous": None, "bad token": "cvx_" + "forged" * 7}
            access.create_user("someone")  # the target of grants and tokens: granting a role user would leak
            for role in ROLES[2:]:
                access.create_user(role, admin=role == "admin")
                secrets[role] = access.create_token(role, name="matrix").secret
            per_db[db] = (reg.client(), secrets)
        admin, secrets = per_db[db]
        made[world_id] = World(registries(backend, db), backend, admin, secrets)
        return made[world_id]

    yield get
    for w in made.values():
        for c in w.clients.values():
            c.close()
    for admin, _ in per_db.values():
        admin.close()


def _cells() -> Iterator[Any]:
    for world_id, (backend, db) in WORLDS.items():
        for action, outcomes in EXPECTED.items():
            if db == "postgresql" and action not in PG_SUBSET:
                continue
            for role, expected in zip(ROLES, outcomes, strict=True):
                if role == "anonymous" and backend == "embedded":
                    continue  # embedded without a token is the local admin: there is no anonymous caller
                yield pytest.param(
                    world_id,
                    action,
                    role,
                    expected,
                    id=f"{world_id}-{action}-{role}".replace(" ", "_"),
                    marks=[pytest.mark.postgres] if db == "postgresql" else [],
                )


def _last_seq(reg: Registry) -> int:
    with reg.engine.connect() as conn:
        return int(conn.execute(select(func.coalesce(func.max(audit_log.c.seq), 0))).scalar_one())


def _refusals_since(reg: Registry, seq: int) -> list[tuple[str, str]]:
    with reg.engine.connect() as conn:
        rows = conn.execute(
            select(audit_log.c.actor, audit_log.c.action).where(audit_log.c.seq > seq, audit_log.c.outcome == "refused")
        )
        return [(r.actor, r.action) for r in rows]


def test_the_matrix_covers_every_action() -> None:
    assert list(EXPECTED) == list(ACTIONS)


@pytest.mark.parametrize(("world_id", "action", "role", "expected"), list(_cells()))
def test_role_against_action(
    worlds: Callable[[str], World], world_id: str, action: str, role: str, expected: str, tmp_path: Path
) -> None:
    world = worlds(world_id)
    model = f"m-{uuid.uuid4().hex[:10]}"
    world.admin.create_model(model)
    world.admin.create_version(model, _fresh_file(tmp_path))
    access = world.registry.service.access
    if role in ("reader", "editor", "manager"):
        access.grant(f"user:{role}", role, model=model)
    elif role == "approver":
        access.grant("user:approver", "approver", model=model, scope="stage:Production")
    before = _last_seq(world.registry)

    try:
        result = ACTIONS[action](world.client(role), model, tmp_path)
    except covex.Unauthenticated as exc:
        assert "UNAUTHENTICATED" == exc.code
        actual = UNAUTH
    except covex.PermissionDenied as exc:
        assert "PERMISSION_DENIED" == exc.code
        actual = DENIED
    else:
        actual = OK if action != "search models" else (OK if result == [model] else HIDDEN)
    assert expected == actual

    refusals = _refusals_since(world.registry, before)
    if actual == DENIED:
        assert role in {actor for actor, _ in refusals}
    elif actual == UNAUTH:
        # Without a valid token, refusals are recorded once per source and interval, then counted
        # (tests/audit/test_flooding.py): a record may or may not appear, but no other.
        assert set(refusals) <= {("", "authenticate")}
    else:
        assert [] == refusals
