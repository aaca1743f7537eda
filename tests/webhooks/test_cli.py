"""``covex webhooks``, invoked as a user would (embedded and against a server)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from tests.conftest import Registry
from tests.support import CliResult
from tests.webhooks.receiver import Receiver, allow, receiving

Run = Callable[..., CliResult]


@pytest.fixture(params=["embedded", "http"])
def registry(request: pytest.FixtureRequest, registries: Callable[[str, str], Registry]) -> Registry:
    reg = registries(request.param, "sqlite")
    reg.reset()
    return reg


@pytest.fixture
def covex(registry: Registry) -> Run:
    return registry.cli


def test_lifecycle(covex: Run, registry: Registry, tmp_path: Path) -> None:
    r = covex("webhooks", "create", "https://hooks.example.com/x", "-e", "stage.changed", "-e", "alias.set")
    assert 0 == r.exit_code, r.stderr
    assert "shown only now" in r.stdout
    hook = covex("webhooks", "list", "--json").json()[0]
    secret = registry.service.webhooks.rotate_secret(hook["id"]).secret
    assert "secret" not in hook
    assert ["stage.changed", "alias.set"] == hook["events"]
    assert secret not in covex("webhooks", "show", str(hook["id"])).stdout

    r = covex("webhooks", "update", str(hook["id"]), "--inactive", "-e", "*", "--json")
    assert (False, ["*"]) == (r.json()["active"], r.json()["events"])
    r = covex("webhooks", "rotate-secret", str(hook["id"]), "--json")
    assert r.json()["secret"] != secret
    assert 0 == covex("webhooks", "delete", str(hook["id"])).exit_code
    assert [] == covex("webhooks", "list", "--json").json()


def test_errors_are_one_line(covex: Run) -> None:
    r = covex("webhooks", "create", "https://hooks.example.com/x")
    assert (2, "error: give at least one '--event'") == (r.exit_code, r.stderr.split(" (")[0])
    r = covex("webhooks", "create", "ftp://x", "-e", "*")
    assert 2 == r.exit_code and "'url'" in r.stderr
    r = covex("webhooks", "show", "999999")
    assert 3 == r.exit_code and "webhook 999999 does not exist" in r.stderr


def test_dispatch_once_and_deliveries(covex: Run, registry: Registry, monkeypatch: pytest.MonkeyPatch) -> None:
    got = Receiver(fail=1)
    with receiving(got) as url:
        monkeypatch.setenv("COVEX_WEBHOOK_ALLOW", ",".join(allow(url)))
        r = covex("webhooks", "create", url, "-e", "model.created", "--json")
        got.secret = r.json()["secret"]
        hook_id = str(r.json()["id"])
        covex("models", "create", "churn")
        database = registry.service.engine.url.render_as_string(hide_password=False)
        r = covex("--uri", database, "webhooks", "dispatch", "--once")
        assert (0, "delivery attempts made: 1") == (r.exit_code, r.stdout.strip())
        failed = covex("webhooks", "deliveries", hook_id, "--json").json()["items"][0]
        assert ("pending", 500) == (failed["status"], failed["last_status_code"])
        assert "HTTP 500" in covex("webhooks", "deliveries", hook_id).stdout

        assert 0 == covex("webhooks", "redeliver", str(failed["id"])).exit_code
        assert 0 == covex("--uri", database, "webhooks", "dispatch", "--once").exit_code
    [delivery] = covex("webhooks", "deliveries", hook_id, "--status", "delivered", "--json").json()["items"]
    assert [500, 200] == [a["status_code"] for a in delivery["attempts"]]
    assert ["model.created"] == got.events() and got.received[0].valid


def test_dispatch_needs_the_database(covex: Run) -> None:
    r = covex("--uri", "http://127.0.0.1:9", "webhooks", "dispatch", "--once")
    assert 2 == r.exit_code and "database URL" in r.stderr


def test_dispatch_refuses_a_bad_allowlist(covex: Run, registry: Registry, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COVEX_WEBHOOK_ALLOW", "10.0.0.0/8,hooks.internal")
    database = registry.service.engine.url.render_as_string(hide_password=False)
    r = covex("--uri", database, "webhooks", "dispatch", "--once")
    assert 2 == r.exit_code and "COVEX_WEBHOOK_ALLOW: 'hooks.internal' is neither host:port" in r.stderr
