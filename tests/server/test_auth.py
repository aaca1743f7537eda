"""Bearer-token authentication of a real server, request ids in the audit trail, and ``covex admin bootstrap``."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from covex.cli import app
from covex.server import create_app
from covex.store.schema import audit_log
from tests import support
from tests.conftest import Registry


@pytest.fixture
def reg(registries) -> Registry:
    """A real server with ``auth=True`` on SQLite (``support.server_thread(create_app(service, auth=True))``)."""
    r: Registry = registries("http", "sqlite")
    r.reset()
    return r


@pytest.fixture
def anonymous(reg: Registry) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=reg.url, timeout=30) as c:
        yield c


def _audit(reg: Registry, request_id: str) -> list[tuple[str, str, str]]:
    with reg.engine.connect() as conn:
        rows = conn.execute(
            select(audit_log.c.actor, audit_log.c.action, audit_log.c.outcome)
            .where(audit_log.c.request_id == request_id)
            .order_by(audit_log.c.seq)
        )
        return [tuple(r) for r in rows]  # type: ignore[misc]


@pytest.mark.parametrize(
    ("headers", "says"),
    [
        ({}, "no API token"),
        ({"Authorization": ""}, "no API token"),
        ({"Authorization": "Bearer"}, "no API token"),
        # Basic auth's password is an API token (how MLflow's clients send MLFLOW_TRACKING_PASSWORD).
        ({"Authorization": "Basic dGVzdGVyOnNlY3JldA=="}, "not valid"),
        ({"Authorization": "Basic bm90IGJhc2U2NA=="}, "no API token"),  # no ':' in it
        ({"Authorization": "Basic %%%"}, "no API token"),
        ({"Authorization": "Token cvx_abc"}, "no API token"),
        ({"Authorization": "Bearer cvx_forged0000000000000000000000000000000000"}, "not valid"),
        ({"Authorization": "Bearer not a token"}, "not valid"),
    ],
)
@pytest.mark.parametrize(
    ("method", "path"), [("GET", "/api/v1/models"), ("POST", "/api/v1/users"), ("GET", "/api/v1/whoami")]
)
def test_missing_malformed_or_forged_tokens_get_401_json(
    anonymous: httpx.Client, headers: dict[str, str], says: str, method: str, path: str
) -> None:
    r = anonymous.request(method, path, headers=headers, json={"name": "x"} if method == "POST" else None)
    assert (401, "UNAUTHENTICATED") == (r.status_code, r.json()["error_code"])
    assert says in r.json()["message"]
    assert "Traceback" not in r.text


def test_basic_auth_takes_a_token_of_the_named_user_as_password(reg: Registry, anonymous: httpx.Client) -> None:
    assert reg.settings.token
    r = anonymous.get("/api/v1/whoami", auth=("tester", reg.settings.token))
    assert (200, "tester") == (r.status_code, r.json()["name"])
    r = anonymous.get("/api/v1/whoami", auth=("someone-else", reg.settings.token))
    assert (401, "the password is not an API token of that user") == (r.status_code, r.json()["message"])


def test_bearer_scheme_is_case_insensitive(reg: Registry, anonymous: httpx.Client) -> None:
    r = anonymous.get("/api/v1/whoami", headers={"Authorization": f"bearer {reg.settings.token}"})
    assert (200, "tester") == (r.status_code, r.json()["name"])


@pytest.mark.parametrize("path", ["/health", "/ready", "/docs", "/openapi.json"])
def test_health_ready_and_docs_need_no_token(anonymous: httpx.Client, path: str) -> None:
    assert 200 == anonymous.get(path).status_code


def test_request_id_lands_in_the_audit_record(reg: Registry) -> None:
    auth = {"Authorization": f"Bearer {reg.settings.token}", "X-Request-ID": "req-churn-1"}
    r = httpx.post(f"{reg.url}/api/v1/models", json={"name": "churn"}, headers=auth, timeout=30)
    assert 201 == r.status_code
    assert [("tester", "model.create", "ok")] == _audit(reg, "req-churn-1")


@pytest.mark.parametrize(("path", "status"), [("/api/v1/whoami", 200), ("/api/v1/models/ghost", 404)])
def test_request_id_is_echoed(reg: Registry, path: str, status: int) -> None:
    auth = {"Authorization": f"Bearer {reg.settings.token}"}
    with httpx.Client(base_url=reg.url, headers=auth, timeout=30) as http:
        r = http.get(path, headers={"X-Request-ID": "req-echo-1"})
        assert (status, "req-echo-1") == (r.status_code, r.headers.get("x-request-id"))
        generated = http.get(path, headers={"X-Request-ID": "not a valid id!"}).headers.get("x-request-id", "")
        assert 32 == len(generated)


def test_refusals_carry_the_request_id(reg: Registry, anonymous: httpx.Client) -> None:
    reg.service.flush_refusals(everything=True)  # the first refusal from a source is recorded on its own
    r = anonymous.get("/api/v1/models", headers={"X-Request-ID": "req-anon-1"})
    assert 401 == r.status_code
    assert [("", "authenticate", "refused")] == _audit(reg, "req-anon-1")

    reg.service.access.create_user("alice")
    token = reg.service.access.create_token("alice").secret
    r = anonymous.post(
        "/api/v1/admin/gc", json={}, headers={"Authorization": f"Bearer {token}", "X-Request-ID": "req-gc-1"}
    )
    assert (403, "PERMISSION_DENIED") == (r.status_code, r.json()["error_code"])
    assert [("alice", "gc", "refused")] == _audit(reg, "req-gc-1")


def test_no_auth_server_accepts_calls_without_a_token(reg: Registry) -> None:
    with (
        support.server_thread(create_app(reg.service, auth=False)) as url,
        httpx.Client(base_url=url, timeout=30) as http,
    ):
        assert 201 == http.post("/api/v1/models", json={"name": "open"}).status_code
        me = http.get("/api/v1/whoami").json()
        assert ("tester", True) == (me["name"], me["is_admin"])
        # A token, even a bad one, changes nothing: auth is off.
        assert 200 == http.get("/api/v1/models", headers={"Authorization": "Bearer nonsense"}).status_code


# -- covex admin bootstrap --------------------------------------------------------------------


def test_admin_bootstrap_prints_a_working_token_once(tmp_path: Path) -> None:
    runner = CliRunner()
    env = {"COVEX_URI": str(tmp_path / "data"), "COVEX_TOKEN": "", "COLUMNS": "200"}
    first = runner.invoke(app, ["admin", "bootstrap", "--name", "root"], env=env)
    assert 0 == first.exit_code, first.stderr
    secret = first.stdout.strip()
    assert secret.startswith("cvx_") and "\n" not in secret
    assert "shown only now" in first.stderr

    whoami = runner.invoke(app, ["whoami", "--json"], env={**env, "COVEX_TOKEN": secret})
    assert 0 == whoami.exit_code, whoami.stderr
    assert '"name": "root"' in whoami.stdout and '"is_admin": true' in whoami.stdout

    again = runner.invoke(app, ["admin", "bootstrap"], env=env)
    assert 4 == again.exit_code
    assert "already has an admin" in again.stderr
    assert "cvx_" not in again.stdout


def test_admin_bootstrap_refuses_a_server_url(reg: Registry) -> None:
    r = CliRunner().invoke(app, ["admin", "bootstrap"], env={"COVEX_URI": reg.url, "COVEX_TOKEN": ""})
    assert 2 == r.exit_code
    assert "not a server URL" in r.stderr


def test_the_cli_without_a_token_says_how_to_give_one(reg: Registry) -> None:
    r = CliRunner().invoke(app, ["models", "list"], env={"COVEX_URI": reg.url, "COVEX_TOKEN": ""})
    assert 5 == r.exit_code
    assert "error: no API token: send 'Authorization: Bearer <token>' (set COVEX_TOKEN or pass --token)\n" == r.stderr
