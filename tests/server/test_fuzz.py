"""Schemathesis over the whole OpenAPI document of a real server on a loopback port.

Four runs, each on its own freshly seeded registry (SQLite; PostgreSQL with ``COVEX_FUZZ_DB=postgresql``):

- ``test_fuzz_with_token``: the admin's bearer token, so requests pass authentication and reach the service;
- ``test_fuzz_without_token``: no token at all: no call may succeed (the health checks aside) nor fail with a
  5xx (nearly all are refused with 401; a few inputs are refused for what they are first, with a 4xx);
- ``test_fuzz_negative``: the admin's token and data that violates the schema: the answer must be a 4xx;
- ``test_fuzz_stateful``: scenarios chained along the links schemathesis infers (create, then read/update/delete).

Random names mostly reach 404. So before fuzzing, the registry is seeded with real data (models ``churn``
and ``team/churn`` with READY versions, an alias, tags, stages, a user, a group, grants, a policy, an OPEN
approval request, a webhook with a delivery, a stored blob) and schemathesis draws path, query and body
values from dictionaries of those names often (schemathesis' ``parameters`` bindings, per path group).
Version numbers and integer ids change when a deleted object is re-created, so the dictionaries hold
sentinels, replaced by the live values just before a request is sent. After an operation that may have
changed data the seed is restored, so one operation deleting ``churn`` does not starve the next of data.

Every response is checked for: no 5xx, a documented status code, a documented content type, a body
that matches the documented schema and documented headers (negative mode also: invalid data refused
with a 4xx; without a token: no success). Examples are bounded (``COVEX_FUZZ_EXAMPLES``, default 25, per
operation and mode; ``COVEX_FUZZ_STATEFUL_EXAMPLES`` scenarios) and the seed is fixed, so CI sends the same
requests every time. ``COVEX_FUZZ_STATS=<file>`` appends each test's figures to that file as a JSON line.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import hypothesis
import pytest
import schemathesis
from hypothesis.stateful import run_state_machine_as_test
from sqlalchemy import delete

from covex.server import create_app
from covex.service import RegistryService, open_service
from covex.settings import Settings
from covex.store.schema import grants, groups, models, policies, users, webhooks
from tests import support

pytestmark = pytest.mark.slow

FUZZ_EXAMPLES = int(os.environ.get("COVEX_FUZZ_EXAMPLES", "25"))
STATEFUL_EXAMPLES = int(os.environ.get("COVEX_FUZZ_STATEFUL_EXAMPLES", "30"))
STATEFUL_STEPS = 8
FUZZ_SEED = 20_240_601
FUZZ_DB = os.environ.get("COVEX_FUZZ_DB", "sqlite")

# The checks every response must pass.
CHECKS = (
    "not_a_server_error",
    "status_code_conformance",
    "content_type_conformance",
    "response_schema_conformance",
    "response_headers_conformance",
)

# Integer ids and version numbers change when the fuzzer deletes what they name and the seed is restored,
# so the dictionaries hold these sentinels (valid per the schema, and below 2**31 so that no backend refuses
# them for size), mapped to the live value before sending.
V1, V2, V3, V4, TEAM_V1, WEBHOOK, REQUEST, TOKEN, GRANT, DELIVERY = range(2_000_000_001, 2_000_000_011)

BLOB = b"covex fuzz weights\n"
BLOB_DIGEST = hashlib.sha256(BLOB).hexdigest()
MISSING_DIGEST = hashlib.sha256(b"never uploaded").hexdigest()
POLICY_YAML = """\
policies:
  - stage: Production
    approvals: 1
    approvers: [group:ml-leads]
    forbid_self_approval: false
"""


@dataclass
class Seed:
    """A seeded registry behind a real server, and how to put its data back."""

    url: str
    service: RegistryService
    admin_token: str
    ids: dict[int, int] = field(default_factory=dict)  # sentinel -> live id
    last_operation: str = ""
    dirty: bool = False  # a request that may have changed data was sent since the last restore
    # What was sent, for the figures.
    statuses: Counter[str] = field(default_factory=Counter)
    operations: set[str] = field(default_factory=set)
    succeeded: set[str] = field(default_factory=set)

    def count(self, case: schemathesis.Case, status: int) -> None:
        self.dirty = self.dirty or case.method.upper() != "GET"
        self.operations.add(case.operation.label)
        if status < 300:
            self.succeeded.add(case.operation.label)
        self.statuses[f"{status // 100}xx" if status not in (401, 404, 500) else str(status)] += 1

    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.admin_token}"}

    def client(self) -> httpx.Client:
        return httpx.Client(base_url=self.url, headers=self.headers(), timeout=30)

    def make_live(self, case: schemathesis.Case) -> None:
        """Replace sentinels in the path, the query and the top level of a JSON body by live values."""
        for container in (case.path_parameters, case.query, case.body):
            if isinstance(container, dict):
                for key, value in list(container.items()):
                    if type(value) is int and value in self.ids:
                        container[key] = self.ids[value]

    def renew_token(self) -> None:
        """A fresh admin token (the fuzzer may revoke the one in use: token ids are small integers)."""
        self.admin_token = self.service.access.create_token("tester", name="fuzz").secret

    def reset(self) -> None:
        """Back to the seed alone (as ``tests/conftest.py`` empties a registry), for a scenario to replay alike."""
        with self.service.engine.begin() as conn:
            for table in (models, policies, webhooks, groups, grants):
                conn.execute(delete(table))
            conn.execute(delete(users).where(users.c.name != "tester"))
        self.ids.clear()
        self.restore()

    def restore(self) -> None:
        """Create whatever of the seed is missing (idempotent); record the live ids."""
        with self.client() as c:
            if c.get("/api/v1/whoami").status_code != 200:
                self.renew_token()
                c.headers.update(self.headers())
            _restore(c, self.ids)
        self.dirty = False


def _must(r: httpx.Response, *ok: int) -> httpx.Response:
    if r.status_code >= 300 and r.status_code not in ok:
        raise AssertionError(f"seeding: {r.request.method} {r.request.url} -> {r.status_code} {r.text}")
    return r


def _ensure_version(
    c: httpx.Client, ids: dict[int, int], sentinel: int, name: str, body: dict[str, Any], *, not_in: str = ""
) -> int:
    """The seeded version ``sentinel`` stands for, re-created (with a new number) if it is gone or spoilt."""
    want = "PENDING" if body.get("files") and body["files"][0]["digest"] == MISSING_DIGEST else "READY"
    number = ids.get(sentinel)
    if number is not None:
        r = c.get(f"/api/v1/models/{name}/-/versions/{number}")
        if r.status_code == 200 and r.json()["status"] == want and r.json()["stage"] != not_in:
            return number
    number = _must(c.post(f"/api/v1/models/{name}/-/versions", json=body)).json()["version"]
    if want == "READY" and body.get("files"):
        if _must(c.get(f"/api/v1/blobs/{BLOB_DIGEST}"), 404).status_code == 404:
            _must(c.put(f"/api/v1/blobs/{BLOB_DIGEST}", content=BLOB))
        _must(c.post(f"/api/v1/models/{name}/-/versions/{number}/finalize"))
    ids[sentinel] = number
    return number


def _restore(c: httpx.Client, ids: dict[int, int]) -> None:
    # Models, versions (v1 READY with a stored file, v2 READY, v3 PENDING, v4 READY: a candidate for Production),
    # tags, stages, alias, comment.
    for name in ("churn", "team/churn"):
        _must(c.post("/api/v1/models", json={"name": name, "description": "seed", "tags": {"team": "crm"}}), 409)
        _must(c.post(f"/api/v1/models/{name}/-/tags", json={"key": "team", "value": "crm"}))
    files = [{"path": "model.pkl", "digest": BLOB_DIGEST, "size": len(BLOB)}]
    docs = {"card": {"intended_use": "Retention offers"}, "signature": {"inputs": [{"name": "x", "type": "double"}]}}
    common = {"description": "seed", "tags": {"framework": "sklearn"}, "metrics": {"auc": 0.85}, "documents": docs}
    v1 = _ensure_version(c, ids, V1, "churn", {**common, "files": files, "params": {"depth": "4"}})
    v2 = _ensure_version(c, ids, V2, "churn", {**common, "source": "s3://models/churn/2", "metrics": {"auc": 0.86}})
    pending = [{"path": "model.pkl", "digest": MISSING_DIGEST, "size": 14}]
    _ensure_version(c, ids, V3, "churn", {"files": pending})
    candidate = _ensure_version(
        c,
        ids,
        V4,
        "churn",
        {**common, "source": "s3://models/churn/next", "metrics": {"auc": 0.9}},
        not_in="Production",
    )
    _ensure_version(c, ids, TEAM_V1, "team/churn", {**common, "source": "s3://models/team-churn/1"})
    # A policy may stand in the way of these once the fuzzer has written one: 403/409 leave them be.
    _must(c.post(f"/api/v1/models/churn/-/versions/{v1}/tags", json={"key": "framework", "value": "sklearn"}))
    _must(c.post("/api/v1/models/churn/-/aliases", json={"alias": "champion", "version": v1}), 403, 409)
    _must(c.post(f"/api/v1/models/churn/-/versions/{v2}/stage", json={"stage": "Test"}), 403, 409)
    if c.get(f"/api/v1/models/churn/-/versions/{v1}").json()["stage"] != "Production":
        # Before the seed's policy exists (later, with it in place, this needs an approval: 409).
        _must(c.post(f"/api/v1/models/churn/-/versions/{v1}/stage", json={"stage": "Production"}), 403, 409)
    if not c.get(f"/api/v1/models/churn/-/versions/{v1}/comments").json():
        _must(c.post(f"/api/v1/models/churn/-/versions/{v1}/comments", json={"body": "looks good"}))
    # A user, a group with the user (and the admin, who approves) in it, grants, a token of the user's (never
    # the admin's own).
    _must(c.post("/api/v1/users", json={"name": "alice"}), 409)
    _must(c.patch("/api/v1/users/alice", json={"disabled": False}))
    _must(c.post("/api/v1/groups", json={"name": "ml-leads", "description": "seed"}), 409)
    for member in ("alice", "tester"):
        _must(c.post("/api/v1/groups/ml-leads/members", json={"user": member}), 409)
    grants = c.get("/api/v1/grants", params={"subject": "user:alice"}).json()
    grant = next((g for g in grants if g.get("model") == "churn"), None)
    if grant is None:
        grant = _must(c.post("/api/v1/grants", json={"subject": "user:alice", "role": "editor", "model": "churn"}))
        grant = grant.json()
    ids[GRANT] = grant["id"]
    approver = {"subject": "group:ml-leads", "role": "approver", "scope": "stage:Production"}
    _must(c.post("/api/v1/grants", json=approver), 409)
    tokens = [t for t in c.get("/api/v1/tokens", params={"user": "alice"}).json() if not t.get("revoked_at")]
    if not tokens:
        tokens = [_must(c.post("/api/v1/tokens", json={"user": "alice", "name": "seed"})).json()]
    ids[TOKEN] = tokens[0]["id"]
    # A policy on Production, and an OPEN request to put the candidate there (the admin may approve it).
    _must(c.put("/api/v1/policies", content=POLICY_YAML, headers={"Content-Type": "application/yaml"}))
    open_requests = c.get("/api/v1/requests", params={"model": "churn", "status": "OPEN"}).json()
    if not open_requests:
        body = {"name": "churn", "version": candidate, "stage": "Production", "comment": "seed"}
        open_requests = [_must(c.post("/api/v1/requests", json=body)).json()]
    ids[REQUEST] = open_requests[0]["id"]
    # A webhook (never sent: the server runs without its delivery thread) and one delivery of it.
    hooks = c.get("/api/v1/webhooks", params={"model": "churn"}).json()["webhooks"]
    if not hooks:
        body = {"url": "https://hooks.example.com/covex", "events": ["*"], "model": "churn"}
        hooks = [_must(c.post("/api/v1/webhooks", json=body)).json()]
    ids[WEBHOOK] = hooks[0]["id"]
    deliveries = c.get(f"/api/v1/webhooks/{ids[WEBHOOK]}/deliveries").json()["items"]
    if not deliveries:
        # An event the webhook subscribes to queues a delivery (moving an alias is one, whatever it held).
        for version in (ids[V1], ids[V2]):
            _must(c.post("/api/v1/models/churn/-/aliases", json={"alias": "seeded", "version": version}), 403, 409)
        deliveries = c.get(f"/api/v1/webhooks/{ids[WEBHOOK]}/deliveries").json()["items"]
    ids[DELIVERY] = deliveries[0]["id"] if deliveries else DELIVERY


# -- the schemathesis configuration -------------------------------------------------------


def _dictionaries(stages: list[str]) -> dict[str, Any]:
    def values(*items: Any) -> dict[str, Any]:
        return {"values": list(items)}

    return {
        "models": values("churn", "team/churn"),
        "versions": values(V1, V2, V3, V4, TEAM_V1),
        "urls": values("https://hooks.example.com/covex", "https://example.org/hooks/registry"),
        "stages": values(*stages),
        "aliases": values("champion"),
        "keys": values("team", "framework", "auc", "depth"),
        "principals": values("alice", "ml-leads"),
        "users": values("alice"),
        "subjects": values("user:alice", "group:ml-leads", "everyone"),
        "roles": values("reader", "editor", "manager", "approver"),
        "scopes": values("stage:Production", "alias:champion"),
        "digests": values(BLOB_DIGEST, MISSING_DIGEST),
        "uris": values(
            "models:/churn/1",
            "models:/churn/2",
            "models:/churn@champion",
            "models:/churn/Production",
            "models:/churn/Test",
            "models:/team/churn/1",
            "models:/churn/latest",
        ),
        "documents": values("card", "signature", "lineage", "profile"),
        "filters": values("name LIKE 'churn%'", "tags.team = 'crm'", "metrics.auc > 0.8", "status = 'READY'"),
        "order": values("name ASC", "version DESC", "metrics.auc DESC"),
        "events": values("*", "version.created", "stage.changed", "request.*"),
        "request_status": values("OPEN", "APPROVED", "REJECTED", "CANCELLED", "APPLIED"),
        "delivery_status": values("pending", "delivered", "failed"),
        "policy_kinds": values("stage", "alias"),
        "policy_targets": values("Production", "champion"),
        "webhook_ids": values(WEBHOOK),
        "request_ids": values(REQUEST),
        "token_ids": values(TOKEN),
        "grant_ids": values(GRANT),
        "delivery_ids": values(DELIVERY),
    }


def _bind(**parameters: str) -> dict[str, Any]:
    """``location.name`` -> dictionary, drawn from with a fixed probability."""
    return {key.replace("__", "."): {"dictionary": name, "probability": 0.7} for key, name in parameters.items()}


# Disjoint path groups, each with the dictionaries for the names its parameters mean.
OPERATIONS: list[tuple[str, dict[str, Any]]] = [
    (
        r"^/api/v1/models/\{name\}",
        _bind(
            path__name="models",
            path__version="versions",
            path__stage="stages",
            query__key="keys",
            query__alias="aliases",
            query__version="versions",
            query__stage="stages",
            query__filter="filters",
            body__key="keys",
            body__alias="aliases",
            body__version="versions",
            body__stage="stages",
            body__new_name="models",
        ),
    ),
    (r"^/api/v1/models$", _bind(query__filter="filters", query__order_by="order", body__name="models")),
    (r"^/api/v1/versions$", _bind(query__filter="filters", query__order_by="order")),
    (r"^/api/v1/(resolve|files|documents)$", _bind(query__uri="uris", query__kind="documents")),
    (r"^/api/v1/blobs", _bind(path__digest="digests", body__digests__ANY="digests")),
    (r"^/api/v1/(users|groups)", _bind(path__name="principals", path__user="users", body__user="users")),
    (r"^/api/v1/tokens", _bind(path__token_id="token_ids", query__user="users", body__user="users")),
    (
        r"^/api/v1/grants",
        _bind(
            path__grant_id="grant_ids",
            query__model="models",
            query__subject="subjects",
            body__subject="subjects",
            body__role="roles",
            body__model="models",
            body__scope="scopes",
        ),
    ),
    (r"^/api/v1/policies", _bind(path__kind="policy_kinds", path__target="policy_targets")),
    (
        r"^/api/v1/requests",
        _bind(
            path__request_id="request_ids",
            query__model="models",
            query__status="request_status",
            query__version="versions",
            body__name="models",
            body__version="versions",
            body__stage="stages",
            body__alias="aliases",
        ),
    ),
    (
        r"^/api/v1/webhooks",
        _bind(
            path__webhook_id="webhook_ids",
            query__model="models",
            query__status="delivery_status",
            body__model="models",
            body__events__ANY="events",
            body__url="urls",
        ),
    ),
    (r"^/api/v1/deliveries", _bind(path__delivery_id="delivery_ids")),
    (r"^/api/v1/audit", _bind(query__target="models", query__actor="users")),
]


def _config(url: str, stages: list[str], *, mode: str) -> schemathesis.Config:
    operations = []
    for regex, parameters in OPERATIONS:
        fixed = {key.replace(".ANY", "[*]"): value for key, value in parameters.items()}
        operations.append({"include-path-regex": regex, "parameters": fixed})
    checks: dict[str, Any] = {"enabled": False, **{name: {"enabled": True} for name in CHECKS}}
    if mode == "negative":
        checks["negative_data_rejection"] = {"enabled": True}
    return schemathesis.Config.from_dict(
        {
            "seed": FUZZ_SEED,
            "base-url": url,
            "generation": {
                "mode": mode,
                "max-examples": FUZZ_EXAMPLES,
                "deterministic": True,
                "database": "none",
            },
            "checks": checks,
            "phases": {"stateful": {"max-steps": STATEFUL_STEPS}},
            "dictionaries": _dictionaries(stages),
            "operations": operations,
            "warnings": False,
            "suppress-health-check": ["all"],
        }
    )


# -- the server and the schemas ----------------------------------------------------------


@pytest.fixture
def seed(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Seed]:
    """A new registry (admin "tester"), served on a loopback port, seeded."""
    started = time.monotonic()
    with ExitStack() as stack:
        if FUZZ_DB == "postgresql":
            reason = support.postgres_available()
            if reason:
                pytest.skip(reason)
            uri = stack.enter_context(support.fresh_postgres_database())
        else:
            uri = f"sqlite:///{tmp_path / 'covex.db'}"
        settings = Settings(uri=uri, artifacts=str(tmp_path / "artifacts"), user="tester")
        service = open_service(settings)
        stack.callback(service.close)
        token = service.access.bootstrap("tester").secret
        url = stack.enter_context(support.server_thread(create_app(service, settings, auth=True)))
        seeded = Seed(url, service, token)
        seeded.restore()
        yield seeded
    stats = os.environ.get("COVEX_FUZZ_STATS")
    if stats:
        figures = {
            "test": request.node.name,
            "db": FUZZ_DB,
            "max_examples": STATEFUL_EXAMPLES if "stateful" in request.node.name else FUZZ_EXAMPLES,
            "operations": len(seeded.operations),
            "requests": sum(seeded.statuses.values()),
            "statuses": dict(sorted(seeded.statuses.items())),
            "operations_with_a_2xx": len(seeded.succeeded),
            "operations_without_a_2xx": sorted(seeded.operations - seeded.succeeded),
            "seconds": round(time.monotonic() - started, 1),
        }
        with open(stats, "a") as out:
            out.write(json.dumps(figures) + "\n")


def _schema(seed: Seed, mode: str) -> schemathesis.BaseSchema:
    stages = httpx.get(f"{seed.url}/api/v1/stages", headers=seed.headers()).json()["stages"]
    return schemathesis.openapi.from_url(f"{seed.url}/openapi.json", config=_config(seed.url, stages, mode=mode))


@pytest.fixture
def positive_schema(seed: Seed) -> schemathesis.BaseSchema:
    return _schema(seed, "positive")


@pytest.fixture
def negative_schema(seed: Seed) -> schemathesis.BaseSchema:
    return _schema(seed, "negative")


def _call(case: schemathesis.Case, seed: Seed, *, token: bool) -> None:
    """Send one case (sentinels made live; the seed restored before an operation if data may have changed)."""
    label = case.operation.label
    if label != seed.last_operation:
        seed.last_operation = label
        if token and seed.dirty:  # without a token nothing can have changed
            seed.restore()
    seed.make_live(case)
    headers = seed.headers() if token else None
    response = case.call(headers=headers)
    seed.count(case, response.status_code)
    if token and response.status_code == 401:
        seed.renew_token()  # the case revoked the admin's token; later cases get a new one
    case.validate_response(response, headers=headers, additional_checks=[] if token else [no_success_without_token])


PUBLIC = {"GET /health", "GET /ready"}


def no_success_without_token(
    ctx: schemathesis.CheckContext, response: schemathesis.Response, case: schemathesis.Case
) -> None:
    """Without a token, no operation but the health checks answers with success."""
    if case.operation.label not in PUBLIC and response.status_code < 400:
        raise AssertionError(f"{case.operation.label} answered {response.status_code} to a caller without a token")


@pytest.fixture(autouse=True)
def _node_id_for_schemathesis(request: pytest.FixtureRequest) -> None:
    """Schemathesis' lazy schemas (4.32) read ``Node._nodeid``, which pytest 9.2 no longer has."""
    if not hasattr(request.node, "_nodeid"):
        request.node._nodeid = request.node.nodeid


def _has_invalid_form(ctx: Any) -> bool:
    """Whether an operation has an input that can be invalid: a body, or a parameter with a type or rule.

    Schemathesis fails (rather than skips) a negative test of an operation without one, such as
    ``GET /api/v1/whoami`` (no input) or ``GET /api/v1/policies/{kind}/{target}`` (any string goes).
    """
    raw = ctx.operation.definition.raw
    if "requestBody" in raw:
        return True
    for parameter in raw.get("parameters", []):
        rules = {k: v for k, v in parameter.get("schema", {}).items() if k not in ("title", "description")}
        if rules != {"type": "string"}:
            return True
    return False


positive = schemathesis.pytest.from_fixture("positive_schema")
negative = schemathesis.pytest.from_fixture("negative_schema").include(_has_invalid_form)


@positive.parametrize()
def test_fuzz_with_token(case: schemathesis.Case, seed: Seed) -> None:
    _call(case, seed, token=True)


@positive.parametrize()
def test_fuzz_without_token(case: schemathesis.Case, seed: Seed) -> None:
    _call(case, seed, token=False)


@negative.parametrize()
def test_fuzz_negative(case: schemathesis.Case, seed: Seed) -> None:
    _call(case, seed, token=True)


def test_fuzz_stateful(positive_schema: schemathesis.BaseSchema, seed: Seed) -> None:
    """Chains of calls along the links schemathesis infers from the document."""
    base = positive_schema.as_state_machine()

    class Machine(base):  # type: ignore[misc, valid-type]
        def setup(self) -> None:
            seed.reset()  # each scenario starts from the same data, so a failing one replays alike

        def before_call(self, case: schemathesis.Case) -> None:
            seed.make_live(case)

        def get_call_kwargs(self, case: schemathesis.Case) -> dict[str, Any]:
            return {"headers": seed.headers()}

        def after_call(self, response: schemathesis.Response, case: schemathesis.Case) -> None:
            super().after_call(response, case)
            seed.count(case, response.status_code)
            if response.status_code == 401:
                seed.renew_token()

    settings = hypothesis.settings(
        max_examples=STATEFUL_EXAMPLES,
        stateful_step_count=STATEFUL_STEPS,
        derandomize=True,
        deadline=None,
        database=None,
        suppress_health_check=list(hypothesis.HealthCheck),
    )
    run_state_machine_as_test(Machine, settings=settings)
