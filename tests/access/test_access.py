"""Users, groups, API tokens and grants: one contract on every backend."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator

import pytest
from sqlalchemy import select, update

import covex
from covex.domain.access import Grant, NewToken, Token, User
from covex.store.schema import tokens
from tests.conftest import Registry

AsUser = Callable[..., covex.Client]


@pytest.fixture
def as_user(registry: Registry) -> Iterator[AsUser]:
    """Factory: a client acting as a new user by its own token; closed after the test."""
    opened: list[covex.Client] = []

    def make(name: str, **kwargs: object) -> covex.Client:
        c = registry.user(name, **kwargs)  # type: ignore[arg-type]
        opened.append(c)
        return c

    yield make
    for c in opened:
        c.close()


def whoami(registry: Registry, secret: str | None) -> str:
    """Who a fresh client with ``secret`` acts as (embedded clients check the token when they open)."""
    with covex.Client(registry.url, settings=registry.settings.model_copy(update={"token": secret})) as c:
        return str(c.access.whoami().name)


# -- users and groups -------------------------------------------------------------------


def test_whoami_is_the_admin(client: covex.Client) -> None:
    me = client.access.whoami()
    assert ("tester", True) == (me.name, me.is_admin)


def test_users_crud(client: covex.Client) -> None:
    access = client.access
    alice = access.create_user("alice")
    ci = access.create_user("ci-bot", kind="service")
    assert ("alice", "user", False, False, "tester") == (
        alice.name,
        alice.kind,
        alice.is_admin,
        alice.disabled,
        alice.created_by,
    )
    assert "service" == ci.kind
    assert ["alice", "ci-bot", "tester"] == [u.name for u in access.list_users()]
    assert alice == access.get_user("alice")
    assert isinstance(alice, User)

    assert access.update_user("alice", disabled=True).disabled
    assert access.update_user("alice", admin=True, disabled=False).is_admin
    access.delete_user("alice")
    with pytest.raises(covex.NotFound, match="alice"):
        access.get_user("alice")
    with pytest.raises(covex.AlreadyExists):
        access.create_user("ci-bot")


@pytest.mark.parametrize(
    ("kwargs", "says"),
    [
        ({"name": "bad name"}, "'name'"),
        ({"name": "-dash"}, "'name'"),
        ({"name": "ok", "kind": "robot"}, "'kind'"),
    ],
)
def test_bad_user_input_names_the_field(client: covex.Client, kwargs: dict[str, str], says: str) -> None:
    with pytest.raises(covex.InvalidInput, match=says):
        client.access.create_user(**kwargs)


def test_update_user_needs_a_change(client: covex.Client) -> None:
    client.access.create_user("alice")
    with pytest.raises(covex.InvalidInput, match="'admin' or 'disabled'"):
        client.access.update_user("alice")


def test_groups_and_members(client: covex.Client) -> None:
    access = client.access
    access.create_user("alice")
    access.create_user("bob")
    access.create_group("ml-leads", "People who ship models")
    access.add_member("ml-leads", "alice")
    group = access.add_member("ml-leads", "bob")
    assert (["alice", "bob"], "People who ship models") == (group.members, group.description)
    assert ["ml-leads"] == access.get_user("alice").groups
    assert ["ml-leads"] == [g.name for g in access.list_groups()]
    assert ["bob"] == access.remove_member("ml-leads", "alice").members
    with pytest.raises(covex.NotFound, match="not in group"):
        access.remove_member("ml-leads", "alice")
    with pytest.raises(covex.AlreadyExists):
        access.create_group("ml-leads")
    access.delete_group("ml-leads")
    with pytest.raises(covex.NotFound):
        access.get_group("ml-leads")
    assert [] == access.get_user("bob").groups


# -- tokens ---------------------------------------------------------------------------------


def test_token_is_shown_once_and_stored_only_as_a_hash(registry: Registry, client: covex.Client) -> None:
    client.access.create_user("alice")
    token = client.access.create_token("alice", name="laptop")
    assert isinstance(token, NewToken)
    assert token.secret.startswith("cvx_") and len(token.secret) > 40
    assert token.secret.startswith(token.prefix)

    listed = [t for t in client.access.list_tokens("alice")]
    assert [(token.id, "alice", "laptop")] == [(t.id, t.user, t.name) for t in listed]
    assert all(type(t) is Token and "secret" not in t.model_dump() for t in listed)

    with registry.engine.connect() as conn:
        row = conn.execute(select(tokens).where(tokens.c.id == token.id)).one()
        everything = [str(v) for r in conn.execute(select(tokens)) for v in r]
    assert hashlib.sha256(token.secret.encode()).hexdigest() == row.token_hash
    assert not any(token.secret in v for v in everything)
    assert "alice" == whoami(registry, token.secret)


def test_non_admins_manage_their_own_tokens_only(registry: Registry, client: covex.Client, as_user: AsUser) -> None:
    alice = as_user("alice")
    as_user("bob")
    mine = alice.access.create_token(name="ci", expires_in_days=30)
    assert mine.expires_at is not None and mine.expires_at > mine.creation_timestamp
    assert {"alice"} == {t.user for t in alice.access.list_tokens()}
    assert {"alice", "bob", "tester"} <= {t.user for t in client.access.list_tokens()}
    with pytest.raises(covex.PermissionDenied):
        alice.access.create_token("bob")
    with pytest.raises(covex.PermissionDenied):
        alice.access.list_tokens("bob")
    bobs = client.access.list_tokens("bob")[0]
    with pytest.raises(covex.PermissionDenied):
        alice.access.revoke_token(bobs.id)
    alice.access.revoke_token(mine.id)
    with pytest.raises(covex.Unauthenticated, match="revoked"):
        whoami(registry, mine.secret)


@pytest.mark.parametrize("days", [0, -1, "soon"])
def test_bad_expiry_names_the_field(client: covex.Client, days: object) -> None:
    with pytest.raises(covex.InvalidInput, match="expires_in_days"):
        client.access.create_token(expires_in_days=days)


def test_expired_token_is_refused(registry: Registry, client: covex.Client) -> None:
    client.access.create_user("alice")
    tiny = client.access.create_token("alice", expires_in_days=1e-8)
    with pytest.raises(covex.Unauthenticated, match="expired"):
        whoami(registry, tiny.secret)

    later = client.access.create_token("alice", expires_in_days=1)
    assert "alice" == whoami(registry, later.secret)
    with registry.engine.begin() as conn:
        conn.execute(update(tokens).where(tokens.c.id == later.id).values(expires_at=later.creation_timestamp))
    with pytest.raises(covex.Unauthenticated, match="expired"):
        whoami(registry, later.secret)


def test_revocation_takes_effect_at_once(registry: Registry, client: covex.Client) -> None:
    client.access.create_user("alice")
    token = client.access.create_token("alice")
    assert "alice" == whoami(registry, token.secret)
    client.access.revoke_token(token.id)
    client.access.revoke_token(token.id)  # revoking twice is harmless
    with pytest.raises(covex.Unauthenticated, match="revoked"):
        whoami(registry, token.secret)
    assert [token.id] == [t.id for t in client.access.list_tokens("alice") if t.revoked_at is not None]
    with pytest.raises(covex.NotFound):
        client.access.revoke_token(10**9)


def test_disabled_user_is_refused(registry: Registry, client: covex.Client) -> None:
    client.access.create_user("alice")
    token = client.access.create_token("alice")
    client.access.update_user("alice", disabled=True)
    with pytest.raises(covex.Unauthenticated, match="disabled"):
        whoami(registry, token.secret)
    with pytest.raises(covex.InvalidState, match="disabled"):
        client.access.create_token("alice")
    client.access.update_user("alice", disabled=False)
    assert "alice" == whoami(registry, token.secret)


def test_deleted_user_tokens_stop_working(registry: Registry, client: covex.Client) -> None:
    client.access.create_user("alice")
    token = client.access.create_token("alice")
    client.access.delete_user("alice")
    with pytest.raises(covex.Unauthenticated):
        whoami(registry, token.secret)


@pytest.mark.parametrize("secret", ["cvx_" + "A" * 43, "not-a-token", "cvx_"])
def test_forged_token_is_refused(registry: Registry, client: covex.Client, secret: str) -> None:
    with pytest.raises(covex.Unauthenticated, match="not valid"):
        whoami(registry, secret)


def test_a_token_altered_by_one_character_is_refused(registry: Registry, client: covex.Client) -> None:
    token = client.access.create_token(name="mine").secret
    forged = token[:-1] + ("a" if token[-1] != "a" else "b")
    with pytest.raises(covex.Unauthenticated, match="not valid"):
        whoami(registry, forged)


# -- admins ---------------------------------------------------------------------------------


def test_the_last_admin_cannot_be_removed(client: covex.Client) -> None:
    access = client.access
    for change in ({"admin": False}, {"disabled": True}):
        with pytest.raises(covex.InvalidState, match="last active admin"):
            access.update_user("tester", **change)
    with pytest.raises(covex.InvalidState, match="last active admin"):
        access.delete_user("tester")
    access.create_user("root", admin=True)
    assert not access.update_user("root", admin=False).is_admin
    access.update_user("root", admin=True)
    access.delete_user("root")
    assert ["tester"] == [u.name for u in access.list_users() if u.is_admin]


def test_only_admins_manage_users_and_groups(client: covex.Client, as_user: AsUser) -> None:
    alice = as_user("alice")
    client.access.create_group("team")
    for attempt in (
        lambda: alice.access.create_user("mallory"),
        lambda: alice.access.update_user("alice", admin=True),
        lambda: alice.access.delete_user("tester"),
        lambda: alice.access.create_group("mine"),
        lambda: alice.access.add_member("team", "alice"),
        lambda: alice.access.delete_group("team"),
        lambda: alice.access.grant("user:alice", "manager"),
    ):
        with pytest.raises(covex.PermissionDenied):
            attempt()
    assert ["alice", "tester"] == [u.name for u in alice.access.list_users()]
    assert "alice" == alice.access.whoami().name


def test_bootstrap_is_refused_once_an_admin_exists(registry: Registry) -> None:
    assert not registry.service.access.needs_bootstrap()
    with pytest.raises(covex.InvalidState, match="already has an admin"):
        registry.service.access.bootstrap("another")


# -- grants ---------------------------------------------------------------------------------


def test_creator_becomes_manager(client: covex.Client, as_user: AsUser) -> None:
    alice = as_user("alice")
    bob = as_user("bob")
    alice.create_model("churn")
    grants = alice.access.list_grants(model="churn")
    assert [("user:alice", "manager", "churn")] == [(g.subject, g.role, g.model) for g in grants]
    with pytest.raises(covex.PermissionDenied):
        bob.get_model("churn")
    alice.access.grant("bob", "reader", model="churn")
    assert "churn" == bob.get_model("churn").name
    with pytest.raises(covex.PermissionDenied):
        bob.access.grant("user:bob", "editor", model="churn")


def test_grants_crud(client: covex.Client) -> None:
    access = client.access
    client.create_model("churn")
    access.create_user("alice")
    access.create_group("leads")
    g = access.grant("user:alice", "editor", model="churn")
    assert isinstance(g, Grant)
    assert ("user:alice", "editor", "churn", "", "tester") == (g.subject, g.role, g.model, g.scope, g.created_by)
    assert g == access.grant("alice", "editor", model="churn")  # the same grant again: no duplicate
    everywhere = access.grant("group:leads", "reader")
    approver = access.grant("group:leads", "approver", model="churn", scope="stage:Production")
    assert {g.id, everywhere.id, approver.id} <= {x.id for x in access.list_grants(model="churn")}
    assert [everywhere.id, approver.id] == [x.id for x in access.list_grants(subject="group:leads")]
    assert everywhere.model is None
    access.revoke_grant(g.id)
    assert [] == access.list_grants(subject="user:alice")
    with pytest.raises(covex.NotFound):
        access.revoke_grant(g.id)


@pytest.mark.parametrize(
    ("subject", "role", "scope", "error", "says"),
    [
        ("user:alice", "owner", "", covex.InvalidInput, "'role'"),
        ("robot:alice", "reader", "", covex.InvalidInput, "'subject'"),
        ("user:alice", "approver", "", covex.InvalidInput, "'scope'"),
        ("user:alice", "approver", "Production", covex.InvalidInput, "'scope'"),
        ("user:alice", "reader", "stage:Production", covex.InvalidInput, "'scope'"),
        ("user:ghost", "reader", "", covex.NotFound, "ghost"),
        ("group:ghosts", "reader", "", covex.NotFound, "ghosts"),
    ],
)
def test_bad_grants_name_the_problem(
    client: covex.Client, subject: str, role: str, scope: str, error: type[Exception], says: str
) -> None:
    client.create_model("churn")
    client.access.create_user("alice")
    with pytest.raises(error, match=says):
        client.access.grant(subject, role, model="churn", scope=scope)


def test_group_grants_reach_members(client: covex.Client, as_user: AsUser) -> None:
    client.create_model("churn")
    client.access.create_group("crm")
    carol = as_user("carol", groups=["crm"])
    with pytest.raises(covex.PermissionDenied):
        carol.get_model("churn")
    client.access.grant("group:crm", "editor", model="churn")
    assert "d" == carol.update_model("churn", description="d").description
    everyone = as_user("dave")
    client.access.grant("everyone", "reader", model="churn")
    assert "churn" == everyone.get_model("churn").name


def test_a_bad_model_in_a_grant_names_the_model_field(client: covex.Client) -> None:
    client.access.create_user("alice")
    with pytest.raises(covex.InvalidInput, match="'model'"):
        client.access.grant("user:alice", "reader", model="m" * 10_000)
    with pytest.raises(covex.InvalidInput, match="'model'"):
        client.access.list_grants(model="m" * 10_000)
