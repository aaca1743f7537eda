"""The access routes themselves: status codes, JSON shapes, bad bodies, 403 for non-admins."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from tests.conftest import Registry


@pytest.fixture
def reg(registries) -> Registry:
    r: Registry = registries("http", "sqlite")
    r.reset()
    return r


@pytest.fixture
def http(reg: Registry) -> Iterator[httpx.Client]:
    auth = {"Authorization": f"Bearer {reg.settings.token}"}
    with httpx.Client(base_url=f"{reg.url}/api/v1", headers=auth, timeout=30) as c:
        yield c


def test_status_codes_of_every_route(http: httpx.Client) -> None:
    assert 201 == http.post("/users", json={"name": "alice"}).status_code
    assert 201 == http.post("/users", json={"name": "ci", "kind": "service"}).status_code
    assert ["alice", "ci", "tester"] == [u["name"] for u in http.get("/users").json()]
    assert {"name": "alice", "disabled": True} == {
        k: v for k, v in http.patch("/users/alice", json={"disabled": True}).json().items() if k in ("name", "disabled")
    }
    assert "alice" == http.get("/users/alice").json()["name"]

    assert 201 == http.post("/groups", json={"name": "crm", "description": "CRM team"}).status_code
    assert ["ci"] == http.post("/groups/crm/members", json={"user": "ci"}).json()["members"]
    assert ["crm"] == [g["name"] for g in http.get("/groups").json()]
    assert [] == http.delete("/groups/crm/members/ci").json()["members"]
    assert "CRM team" == http.get("/groups/crm").json()["description"]

    created = http.post("/tokens", json={"user": "ci", "name": "pipeline", "expires_in_days": 7})
    assert 201 == created.status_code
    token = created.json()
    assert token["secret"].startswith("cvx_")
    listed = http.get("/tokens", params={"user": "ci"}).json()
    assert [token["id"]] == [t["id"] for t in listed]
    assert all("secret" not in t for t in listed)
    assert 204 == http.delete(f"/tokens/{token['id']}").status_code

    assert 201 == http.post("/models", json={"name": "team/churn"}).status_code
    grant = http.post("/grants", json={"subject": "group:crm", "role": "editor", "model": "team/churn"})
    assert (201, "team/churn") == (grant.status_code, grant.json()["model"])
    assert grant.json()["id"] in [g["id"] for g in http.get("/grants", params={"model": "team/churn"}).json()]
    assert 204 == http.delete(f"/grants/{grant.json()['id']}").status_code
    assert 204 == http.delete("/groups/crm").status_code
    assert 204 == http.delete("/users/alice").status_code
    assert ("tester", True) == (http.get("/whoami").json()["name"], http.get("/whoami").json()["is_admin"])


@pytest.mark.parametrize(
    ("method", "path", "body", "status", "code", "says"),
    [
        ("POST", "/users", {"nam": "x"}, 400, "INVALID_PARAMETER_VALUE", "'name'"),
        ("POST", "/users", {"name": "x", "admin": "maybe"}, 400, "INVALID_PARAMETER_VALUE", "'admin'"),
        ("POST", "/users", {"name": "x y"}, 400, "INVALID_PARAMETER_VALUE", "'name'"),
        ("PATCH", "/users/tester", {}, 400, "INVALID_PARAMETER_VALUE", "'admin' or 'disabled'"),
        ("PATCH", "/users/tester", {"admin": False}, 409, "INVALID_STATE", "last active admin"),
        ("GET", "/users/ghost", None, 404, "RESOURCE_DOES_NOT_EXIST", "ghost"),
        ("POST", "/tokens", {"expires_in_days": "soon"}, 400, "INVALID_PARAMETER_VALUE", "'expires_in_days'"),
        ("POST", "/tokens", {"expires_in_days": -1}, 400, "INVALID_PARAMETER_VALUE", "'expires_in_days'"),
        ("DELETE", "/tokens/abc", None, 400, "INVALID_PARAMETER_VALUE", "'token_id'"),
        ("DELETE", "/tokens/99999", None, 404, "RESOURCE_DOES_NOT_EXIST", "99999"),
        ("POST", "/grants", {"subject": "everyone", "role": "boss"}, 400, "INVALID_PARAMETER_VALUE", "'role'"),
        ("POST", "/grants", {"subject": "x", "role": "reader", "extra": 1}, 400, "INVALID_PARAMETER_VALUE", "'extra'"),
        ("GET", "/grants?model=ghost", None, 404, "RESOURCE_DOES_NOT_EXIST", "ghost"),
    ],
)
def test_bad_requests_name_the_field(
    http: httpx.Client, method: str, path: str, body: object, status: int, code: str, says: str
) -> None:
    r = http.request(method, path, json=body)
    assert (status, code) == (r.status_code, r.json()["error_code"])
    assert says in r.json()["message"]


def test_non_admins_get_403_permission_denied(reg: Registry) -> None:
    reg.service.access.create_user("alice")
    token = reg.service.access.create_token("alice").secret
    with httpx.Client(base_url=f"{reg.url}/api/v1", headers={"Authorization": f"Bearer {token}"}, timeout=30) as h:
        for method, path, body in (
            ("POST", "/users", {"name": "mallory"}),
            ("PATCH", "/users/alice", {"admin": True}),
            ("DELETE", "/users/tester", None),
            ("POST", "/groups", {"name": "mine"}),
            ("POST", "/tokens", {"user": "tester"}),
            ("GET", "/tokens?user=tester", None),
            ("POST", "/grants", {"subject": "alice", "role": "manager"}),
        ):
            r = h.request(method, path, json=body)
            assert (403, "PERMISSION_DENIED") == (r.status_code, r.json()["error_code"]), (method, path)
        assert "alice" == h.get("/whoami").json()["name"]
        assert 201 == h.post("/tokens", json={"name": "own"}).status_code


def test_grants_list_shows_non_admins_only_models_they_read(reg: Registry) -> None:
    access = reg.service.access
    reg.service.create_model("secret")
    reg.service.create_model("open")
    access.create_user("alice")
    access.grant("alice", "reader", model="open")
    token = access.create_token("alice").secret
    with httpx.Client(base_url=f"{reg.url}/api/v1", headers={"Authorization": f"Bearer {token}"}, timeout=30) as h:
        assert {"open"} == {g["model"] for g in h.get("/grants").json()}
