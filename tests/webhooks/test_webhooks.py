"""Webhook subscriptions on every backend: CRUD, the secret shown once, who may do what."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

import covex
from covex.domain.webhooks import NewWebhook, Webhook
from covex.store.schema import audit_log
from tests.conftest import Registry

URL = "https://hooks.example.com/covex"


def test_create_shows_the_secret_once(client: covex.Client) -> None:
    hook = client.webhooks.create_webhook(URL, ["stage.changed", "alias.*"], description="deploys")
    assert isinstance(hook, NewWebhook)
    assert 40 <= len(hook.secret)
    assert (URL, ["stage.changed", "alias.*"], None, "deploys", True) == (
        hook.url,
        hook.events,
        hook.model,
        hook.description,
        hook.active,
    )
    listed = client.webhooks.list_webhooks()
    fetched = client.webhooks.get_webhook(hook.id)
    assert [Webhook(**hook.model_dump(exclude={"secret"}))] == listed
    assert listed[0] == fetched
    assert "secret" not in fetched.model_dump()


def test_update_and_delete(client: covex.Client) -> None:
    hook = client.webhooks.create_webhook(URL, ["*"])
    paused = client.webhooks.update_webhook(hook.id, active=False, events=["version.created"])
    assert (False, ["version.created"]) == (paused.active, paused.events)
    moved = client.webhooks.update_webhook(hook.id, url="http://127.0.0.1:9/x", description="moved")
    assert ("http://127.0.0.1:9/x", "moved", False) == (moved.url, moved.description, moved.active)
    client.webhooks.delete_webhook(hook.id)
    assert [] == client.webhooks.list_webhooks()
    with pytest.raises(covex.NotFound, match=f"webhook {hook.id}"):
        client.webhooks.get_webhook(hook.id)


def test_rotate_secret(client: covex.Client) -> None:
    hook = client.webhooks.create_webhook(URL, ["*"])
    rotated = client.webhooks.rotate_secret(hook.id)
    assert hook.id == rotated.id
    assert hook.secret != rotated.secret


def test_model_scoped_webhooks(client: covex.Client) -> None:
    client.create_model("churn")
    client.create_model("fraud")
    on_churn = client.webhooks.create_webhook(URL, ["*"], model="churn")
    client.webhooks.create_webhook(URL, ["*"])
    assert "churn" == on_churn.model
    assert [on_churn.id] == [w.id for w in client.webhooks.list_webhooks("churn")]
    assert [] == client.webhooks.list_webhooks("fraud")
    assert 2 == len(client.webhooks.list_webhooks())
    with pytest.raises(covex.NotFound, match="'nope'"):
        client.webhooks.create_webhook(URL, ["*"], model="nope")


@pytest.mark.parametrize(
    ("url", "events", "field"),
    [("ftp://x/y", ["*"], "'url'"), (URL, ["stage.moved"], "'events'"), (URL, [], "'events'")],
)
def test_bad_input_names_the_field(client: covex.Client, url: str, events: list[str], field: str) -> None:
    with pytest.raises(covex.InvalidInput, match=field):
        client.webhooks.create_webhook(url, events)


def test_bad_update(client: covex.Client) -> None:
    hook = client.webhooks.create_webhook(URL, ["*"])
    with pytest.raises(covex.InvalidInput, match="'active'"):
        client.webhooks.update_webhook(hook.id)
    with pytest.raises(covex.InvalidInput, match="'status'"):
        client.webhooks.list_deliveries(hook.id, status="lost")


def test_outsider_may_not_create_or_see_global_webhooks(registry: Registry) -> None:
    with registry.client() as admin:
        hook = admin.webhooks.create_webhook(URL, ["*"])
    with registry.user("mallory") as outsider:
        with pytest.raises(covex.PermissionDenied, match="admin"):
            outsider.webhooks.create_webhook(URL, ["*"])
        with pytest.raises(covex.PermissionDenied):
            outsider.webhooks.get_webhook(hook.id)
        with pytest.raises(covex.PermissionDenied):
            outsider.webhooks.rotate_secret(hook.id)
        with pytest.raises(covex.PermissionDenied):
            outsider.webhooks.delete_webhook(hook.id)
        assert [] == outsider.webhooks.list_webhooks()


def test_a_model_manager_manages_its_model_webhooks(registry: Registry) -> None:
    with registry.client() as admin:
        admin.create_model("churn")
        admin.create_model("fraud")
    with registry.user("maria") as maria:
        registry.service.access.grant("user:maria", "manager", model="churn")
        registry.service.access.grant("user:maria", "editor", model="fraud")
        hook = maria.webhooks.create_webhook(URL, ["stage.changed"], model="churn")
        assert [hook.id] == [w.id for w in maria.webhooks.list_webhooks()]
        assert hook.id == maria.webhooks.rotate_secret(hook.id).id
        with pytest.raises(covex.PermissionDenied, match="manager"):
            maria.webhooks.create_webhook(URL, ["*"], model="fraud")
        with pytest.raises(covex.PermissionDenied, match="admin"):
            maria.webhooks.create_webhook(URL, ["*"])
        maria.webhooks.delete_webhook(hook.id)


def test_every_change_is_audited(registry: Registry) -> None:
    with registry.engine.connect() as conn:
        start = conn.execute(select(func.max(audit_log.c.seq))).scalar_one()
    with registry.client() as admin:
        hook = admin.webhooks.create_webhook(URL, ["*"])
        admin.webhooks.update_webhook(hook.id, active=False)
        admin.webhooks.rotate_secret(hook.id)
        admin.webhooks.delete_webhook(hook.id)
    with registry.engine.connect() as conn:
        rows = conn.execute(
            select(audit_log.c.action, audit_log.c.before, audit_log.c.after)
            .where(audit_log.c.target == f"webhook:{hook.id}", audit_log.c.seq > start)
            .order_by(audit_log.c.seq)
        ).all()
    assert ["webhook.create", "webhook.update", "webhook.rotate", "webhook.delete"] == [r.action for r in rows]
    assert all(hook.secret not in f"{r.before}{r.after}" for r in rows)
