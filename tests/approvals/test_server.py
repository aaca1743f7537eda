"""The governance routes themselves: hostile or out-of-range input gets 4xx, never a 500."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from covex.domain.entities import NewVersion
from tests.approvals.test_policy import BOMB
from tests.conftest import Registry

BIG = "9" * 30


@pytest.fixture
def reg(registries: Callable[[str, str], Registry]) -> Registry:
    r = registries("http", "sqlite")
    r.reset()
    return r


@pytest.fixture
def http(reg: Registry) -> Iterator[httpx.Client]:
    auth = {"Authorization": f"Bearer {reg.settings.token}"}
    with httpx.Client(base_url=f"{reg.url}/api/v1", headers=auth, timeout=30) as c:
        yield c


@pytest.mark.parametrize("text", ["policies: &a [*a]\n", BOMB, "policies: []\n"])
def test_an_anonymous_policy_file_is_refused_before_it_is_read(reg: Registry, text: str) -> None:
    started = time.monotonic()
    r = httpx.put(f"{reg.url}/api/v1/policies", content=text, headers={"content-type": "text/yaml"}, timeout=30)
    assert (401, "UNAUTHENTICATED") == (r.status_code, r.json()["error_code"])
    assert time.monotonic() - started < 5


def test_an_admin_gets_400_naming_the_line_of_an_alias(http: httpx.Client) -> None:
    for text in ("policies: &a [*a]\n", BOMB):
        r = http.put("/policies", content=text, headers={"content-type": "text/yaml"})
        assert 400 == r.status_code
        assert "line 1: YAML aliases are not allowed in policy files" in r.json()["message"]


CASES: list[tuple[str, str, Any]] = [
    ("GET", f"/requests/{BIG}", None),
    ("GET", f"/requests/{2**63}", None),
    ("POST", f"/requests/{BIG}/approve", None),
    ("POST", f"/requests/{2**63}/reject", None),
    ("POST", f"/requests/{2**63}/cancel", None),
    ("GET", f"/requests?model=m&version={BIG}", None),
    ("GET", f"/requests?model=m&version={2**63}", None),
    ("GET", f"/models/m/-/placement?stage=Production&at={BIG}", None),
    ("GET", "/models/m/-/placement?stage=Production&at=0001-01-01T00:00", None),
    ("GET", "/models/m/-/placement?stage=Production&at=-99999999999999999999", None),
    ("GET", f"/models/m/-/versions/{BIG}/comments", None),
    ("GET", f"/models/m/-/versions/{2**63}/comments", None),
    ("POST", f"/models/m/-/versions/{2**63}/comments", {"body": "hi"}),
    ("POST", "/requests", {"name": "m", "version": int(BIG), "stage": "Production"}),
    ("POST", "/requests", {"name": "m", "version": 2**63, "stage": "Production"}),
    ("PUT", "/policies/stage/Production", {"approvals": 10**30}),
    ("PUT", "/policies/stage/Production", {"approval_ttl_days": 10**30}),
    ("PUT", "/policies/stage/Production", {"approval_ttl_days": 10**17}),
    ("PUT", "/policies/stage/Production", {"gates": ["metrics.a >= 1e999"]}),
    ("PUT", "/policies", {"text": "policies:\n  - stage: Test\n    approvals: " + "9" * 5000 + "\n"}),
    ("PUT", "/policies", {"text": "policies: " + "[" * 5000 + "]" * 5000}),
]


def test_out_of_range_numbers_are_4xx(reg: Registry, http: httpx.Client) -> None:
    reg.service.create_model("m")
    reg.service.create_version("m", NewVersion(source="s3://m"))
    for method, url, body in CASES:
        r = http.request(method, url, json=body)
        assert (method, url, 400) == (method, url, r.status_code), r.text
        assert "INVALID_PARAMETER_VALUE" == r.json()["error_code"]
