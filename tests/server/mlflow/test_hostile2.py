"""Hostile probes of the tracking read rule, MLflow's stage transitions with requests, filters and LIKE."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import httpx
import pytest

from covex.domain import tracking as dom
from covex.domain.access import Principal
from covex.domain.entities import FileEntry, NewVersion
from covex.domain.errors import AlreadyExists, InvalidInput, InvalidState, NotFound, PermissionDenied
from covex.domain.policy import TransitionRequest
from covex.domain.uris import ModelRef
from covex.server.mlflow.registry import translate_filter, translate_order
from covex.service import RegistryService, open_service
from covex.settings import Settings
from tests.server.mlflow.conftest import MlflowServer

pytestmark = [pytest.mark.slow]
API = "/api/2.0/mlflow"
ARTIFACTS = "/api/2.0/mlflow-artifacts/artifacts"


@dataclass(frozen=True)
class Secret:
    experiment: str
    run_id: str
    model_id: str


def _http(server: MlflowServer, token: str) -> httpx.Client:
    return httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {token}"}, timeout=30)


def _ok(response: httpx.Response) -> dict:  # type: ignore[type-arg]
    assert response.status_code == 200, response.text
    return response.json()  # type: ignore[no-any-return]


@pytest.fixture(scope="module")
def secret(mlflow_server: MlflowServer) -> Iterator[Secret]:
    """Alice's run (param, tag, metric, model files) and a logged model of it, logged over raw REST."""
    with _http(mlflow_server, mlflow_server.user_token) as a:
        exp = _ok(a.post(f"{API}/experiments/create", json={"name": f"h2-{uuid.uuid4().hex[:8]}"}))["experiment_id"]
        run = _ok(a.post(f"{API}/runs/create", json={"experiment_id": exp, "run_name": "alice-secret"}))["run"]
        run_id = run["info"]["run_id"]
        batch = {
            "run_id": run_id,
            "params": [{"key": "alpha", "value": "0.5"}],
            "tags": [{"key": "team", "value": "vault"}],
            "metrics": [{"key": "loss", "value": 0.25, "timestamp": 1, "step": 0}],
        }
        _ok(a.post(f"{API}/runs/log-batch", json=batch))
        for name in ("MLmodel", "model.pkl"):
            _ok(a.put(f"{ARTIFACTS}/{exp}/{run_id}/artifacts/model/{name}", content=b"secret " + name.encode()))
        body = {"experiment_id": exp, "name": "model", "source_run_id": run_id}
        model_id = _ok(a.post(f"{API}/logged-models", json=body))["model"]["info"]["model_id"]
        _ok(a.put(f"{ARTIFACTS}/{exp}/models/{model_id}/artifacts/MLmodel", content=b"secret logged"))
        yield Secret(exp, run_id, model_id)


def test_bob_cannot_put_metrics_on_alices_logged_model(mlflow_server: MlflowServer, secret: Secret) -> None:
    with _http(mlflow_server, mlflow_server.other_token) as b:
        exp = _ok(b.post(f"{API}/experiments/create", json={"name": f"bob-{uuid.uuid4().hex[:8]}"}))["experiment_id"]
        mine = _ok(b.post(f"{API}/runs/create", json={"experiment_id": exp}))["run"]["info"]["run_id"]
        metric = {"run_id": mine, "key": "accuracy", "value": 1.0, "timestamp": 5, "step": 0}
        answer = b.post(f"{API}/runs/log-metric", json=metric | {"model_id": secret.model_id})
        assert answer.status_code == 404, answer.text
        batch = {"run_id": mine, "metrics": [metric | {"key": "acc2", "model_id": secret.model_id}]}
        assert b.post(f"{API}/runs/log-batch", json=batch).status_code == 404
    with _http(mlflow_server, mlflow_server.user_token) as a:
        got = _ok(a.get(f"{API}/logged-models/{secret.model_id}"))["model"]
    assert [m["key"] for m in got["data"]["metrics"]] == []


def test_bob_reaches_nothing_of_alices_run(mlflow_server: MlflowServer, secret: Secret) -> None:
    r, m = secret.run_id, secret.model_id
    with _http(mlflow_server, mlflow_server.other_token) as b:
        for flt in (f"attributes.run_id = '{r}'", "tags.team = 'vault'", "params.alpha = '0.5'", "metrics.loss < 1"):
            found = _ok(b.post(f"{API}/runs/search", json={"experiment_ids": [secret.experiment], "filter": flt}))
            assert found.get("runs", []) == [], flt
        body = {"experiment_ids": [secret.experiment], "filter": f"source_run_id = '{r}'"}
        assert _ok(b.post(f"{API}/logged-models/search", json=body)).get("models", []) == []
        body = {"experiment_ids": [secret.experiment]}
        assert _ok(b.post(f"{API}/logged-models/search", json=body)).get("models", []) == []
        for path in (
            secret.experiment,
            f"{secret.experiment}/{r}",
            f"{secret.experiment}/{r}/artifacts",
            f"{secret.experiment}/{r}/artifacts/model",
            f"{secret.experiment}/models",
            f"{secret.experiment}/models/{m}/artifacts",
        ):
            assert _ok(b.get(ARTIFACTS, params={"path": path})).get("files", []) == [], path
        assert b.get(f"{ARTIFACTS}/{secret.experiment}/{r}/artifacts/model/MLmodel").status_code == 404
        assert b.get(f"{API}/metrics/get-history", params={"run_id": r, "metric_key": "loss"}).status_code == 404
        exp = _ok(b.get(f"{API}/experiments/get", params={"experiment_id": secret.experiment}))
        assert r not in str(exp) and m not in str(exp)
        bob_exp = _ok(b.post(f"{API}/experiments/create", json={"name": f"bob-{uuid.uuid4().hex[:8]}"}))[
            "experiment_id"
        ]
        mine = _ok(b.post(f"{API}/runs/create", json={"experiment_id": bob_exp}))["run"]["info"]["run_id"]
        linked = b.post(f"{API}/runs/log-inputs", json={"run_id": mine, "models": [{"model_id": m}]})
        assert linked.status_code == 404
        linked = b.post(f"{API}/runs/outputs", json={"run_id": mine, "models": [{"model_id": m, "step": 1}]})
        assert linked.status_code == 404
        for exp_id in (secret.experiment, bob_exp):
            made = b.post(f"{API}/logged-models", json={"experiment_id": exp_id, "source_run_id": r})
            assert made.status_code == 404, made.text
        name = f"bob-{uuid.uuid4().hex[:8]}"
        _ok(b.post(f"{API}/registered-models/create", json={"name": name}))
        root = f"{secret.experiment}/{r}/artifacts/model"
        for source in (
            f"runs:/{r}/model",
            f"models:/{m}",
            f"models:/{m}/",
            f"mlflow-artifacts:/{root}",
            f"mlflow-artifacts://host:1/{root}",
            f"http://anyhost/api/2.0/mlflow-artifacts/artifacts/{root}",
            f"https://x/api/2.0/mlflow-artifacts/artifacts/{root}?a=b",
            f"mlflow-artifacts:/{secret.experiment}/models/{m}/artifacts",
        ):
            made = b.post(f"{API}/model-versions/create", json={"name": name, "source": source})
            assert made.status_code == 404 and made.json()["error_code"] == "RESOURCE_DOES_NOT_EXIST", (
                source,
                made.text,
            )
        assert (
            _ok(b.get(f"{API}/model-versions/search", params={"filter": f"name = '{name}'"})).get("model_versions", [])
            == []
        )


def test_a_version_alice_registers_from_her_run_stays_hers(mlflow_server: MlflowServer, secret: Secret) -> None:
    name = f"alice-{uuid.uuid4().hex[:8]}"
    with _http(mlflow_server, mlflow_server.user_token) as a:
        _ok(a.post(f"{API}/registered-models/create", json={"name": name}))
        _ok(a.post(f"{API}/model-versions/create", json={"name": name, "source": f"runs:/{secret.run_id}/model"}))
        uri = _ok(a.get(f"{API}/model-versions/get-download-uri", params={"name": name, "version": "1"}))
        assert uri["artifact_uri"].endswith(f"/registry/{name}/-/1")
        assert a.get(f"{ARTIFACTS}/registry/{name}/-/1/MLmodel").content == b"secret MLmodel"
    with _http(mlflow_server, mlflow_server.other_token) as b:
        assert b.get(f"{ARTIFACTS}/registry/{name}/-/1/MLmodel").status_code in (403, 404)
        listed = b.get(ARTIFACTS, params={"path": f"registry/{name}/-/1"})
        assert listed.status_code in (403, 404) or listed.json().get("files", []) == []
        got = b.get(f"{API}/model-versions/get-download-uri", params={"name": name, "version": "1"})
        assert got.status_code in (403, 404)


def test_a_per_model_reader_reads_no_runs(mlflow_server: MlflowServer, secret: Secret) -> None:
    access = mlflow_server.service.access
    user = f"dan{uuid.uuid4().hex[:6]}"
    access.create_user(user)
    name = f"m-{uuid.uuid4().hex[:8]}"
    mlflow_server.service.create_model(name)
    access.grant(f"user:{user}", "reader", model=name)
    token = access.create_token(user, name="t").secret
    with _http(mlflow_server, token) as d:
        assert d.get(f"{API}/runs/get", params={"run_id": secret.run_id}).status_code == 404
        assert d.get(f"{API}/logged-models/{secret.model_id}").status_code == 404
        found = _ok(d.post(f"{API}/runs/search", json={"experiment_ids": [secret.experiment]}))
        assert found.get("runs", []) == []


# -- LIKE ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "pattern", "fold", "expected"),
    [
        ("ß", "_", True, True),  # one character, as SQL's ILIKE sees it
        ("SS", "ß", True, False),
        ("ﬁ", "_", True, True),
        ("ﬁx", "fi%", True, False),
        ("İ", "_", True, True),
        ("\u017f", "S", True, True),  # long s
        ("STRASSE", "straße", True, False),
        ("abc", "a%b%c", False, True),
        ("ac", "a%_c", False, False),
        ("a\nb", "a_b", False, True),
    ],
)
def test_like_answers_as_sql_does(value: str, pattern: str, fold: bool, expected: bool) -> None:
    assert dom.like(value, pattern, fold=fold) is expected


@pytest.mark.parametrize(
    ("value", "pattern"),
    [
        ("a" * 8000, "%" + "_" * 3000 + "b%"),
        ("a" * 8000, "%" + "a_" * 2000 + "b"),
        ("a" * 8000, ("%a" * 3000) + "%b"),
        ("ß" * 8000, "%" + "s_" * 3000 + "x%"),
        ("a" * 8000, "%" + "_%" * 3000 + "b"),
    ],
)
def test_like_is_fast_on_hostile_patterns(value: str, pattern: str) -> None:
    start = time.perf_counter()
    for fold in (False, True):
        dom.like(value, pattern, fold=fold)
    assert time.perf_counter() - start < 0.1


# -- MLflow's stage transitions that open requests (``move_or_request``) --------------------


@dataclass(frozen=True)
class Staged:
    svc: RegistryService  # the admin
    editor: RegistryService
    reader: RegistryService
    name: str


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RegistryService]:
    settings = Settings(uri=str(tmp_path_factory.mktemp("h2-stages")), user="admin", mlflow_open_requests=True)
    svc = open_service(settings)
    yield svc
    svc.close()


@pytest.fixture
def staged(registry: RegistryService) -> Staged:
    """A model with versions 1 (Production), 2 and 3 (None), Production needing one approval; ed edits, rea reads."""
    name = f"s-{uuid.uuid4().hex[:8]}"
    registry.create_model(name)
    for i in range(3):
        registry.create_version(name, NewVersion(source=f"s3://b/{i}"))
    registry.transition_stage(name, 1, "Production")
    registry.approvals.set_policy("stage", "Production", {"approvals": 1}, model=name)
    users = []
    for role in ("editor", "reader"):
        user = f"{role}-{uuid.uuid4().hex[:6]}"
        registry.access.create_user(user)
        registry.access.grant(f"user:{user}", role, model=name)
        users.append(registry.as_principal(Principal(name=user)))
    return Staged(registry, users[0], users[1], name)


def _stage(s: Staged, number: int) -> str:
    return s.svc.get_version(ModelRef(s.name, "version", str(number))).stage


def test_an_editor_takes_nothing_out_of_a_protected_stage(staged: Staged) -> None:
    for archive in (False, True):
        with pytest.raises(PermissionDenied):
            staged.editor.approvals.move_or_request(staged.name, 1, "Test", archive_existing=archive)
    assert _stage(staged, 1) == "Production" and staged.svc.approvals.list_requests(staged.name) == []


def test_archiving_into_a_protected_stage_only_opens_a_request(staged: Staged) -> None:
    opened = staged.editor.approvals.move_or_request(staged.name, 2, "Production", archive_existing=True)
    assert isinstance(opened, TransitionRequest) and opened.status == "OPEN"
    assert (_stage(staged, 1), _stage(staged, 2)) == ("Production", "None")
    with pytest.raises((InvalidState, PermissionDenied)):  # already there: archiving the others is no way in
        staged.editor.approvals.move_or_request(staged.name, 1, "Production", archive_existing=True)
    assert _stage(staged, 1) == "Production" and len(staged.svc.approvals.list_requests(staged.name)) == 1


def test_a_reader_opens_nothing(staged: Staged) -> None:
    for stage in ("Production", "Test"):
        with pytest.raises(PermissionDenied):
            staged.reader.approvals.move_or_request(staged.name, 2, stage)
    assert staged.svc.approvals.list_requests(staged.name) == [] and _stage(staged, 2) == "None"


def test_unknown_stages_and_versions_are_refused(staged: Staged) -> None:
    for stage in ("Prod", "", "production ", "None'--"):
        with pytest.raises(InvalidInput):
            staged.editor.approvals.move_or_request(staged.name, 2, stage)
    with pytest.raises(NotFound):
        staged.editor.approvals.move_or_request(staged.name, 99, "Production")
    assert staged.svc.approvals.list_requests(staged.name) == []


def test_a_failed_version_moves_nowhere(staged: Staged) -> None:
    staged.svc.create_version(staged.name, NewVersion(files=[FileEntry(path="a", digest="0" * 64, size=1)]))
    for stage in ("Production", "Test"):
        with pytest.raises(InvalidState):
            staged.editor.approvals.move_or_request(staged.name, 4, stage)  # PENDING
    staged.svc.fail_version(staged.name, 4, "upload broke")
    for stage in ("Production", "Test"):
        with pytest.raises(InvalidState):
            staged.editor.approvals.move_or_request(staged.name, 4, stage)
    assert staged.svc.approvals.list_requests(staged.name) == [] and _stage(staged, 4) == "None"


def test_concurrent_identical_transitions_open_one_request(staged: Staged) -> None:
    def call(_: int) -> str:
        try:
            return type(staged.editor.approvals.move_or_request(staged.name, 3, "Production")).__name__
        except AlreadyExists:
            return "AlreadyExists"

    with ThreadPoolExecutor(10) as pool:
        answers = list(pool.map(call, range(10)))
    assert len(staged.svc.approvals.list_requests(staged.name)) == 1, answers
    assert set(answers) <= {"TransitionRequest", "AlreadyExists"}


def test_an_order_policy_holds_for_requests_too(staged: Staged) -> None:
    staged.svc.approvals.set_policy("stage", "Production", {"from": ["Test"]}, model=staged.name)
    with pytest.raises(InvalidState):
        staged.editor.approvals.move_or_request(staged.name, 2, "Production")
    staged.editor.approvals.move_or_request(staged.name, 2, "Test")
    moved = staged.editor.approvals.move_or_request(staged.name, 2, "Production")
    assert not isinstance(moved, TransitionRequest) and moved.stage == "Production"
    assert staged.svc.approvals.list_requests(staged.name) == []


# -- MLflow's filters and orders in Covex's language -----------------------------------------


@pytest.mark.parametrize(
    ("mlflow", "covex"),
    [
        ("tags.`mlflow.prompt.is_prompt` != 'true'", None),
        ('  TAG.`mlflow.prompt.is_prompt`!="true"  ', None),
        ("name = 'a' and tags.`mlflow.prompt.is_prompt` != 'true'", "name = 'a'"),
        ("tags.`mlflow.prompt.is_prompt` != 'true' AND name = 'a'", "name = 'a'"),
        (
            "name = 'x' OR tags.`mlflow.prompt.is_prompt` != 'true'",
            "name = 'x' OR tags.`mlflow.prompt.is_prompt` != 'true'",
        ),
        # In a string literal nothing is renamed, nor taken off.
        (
            "name = 'q AND tags.`mlflow.prompt.is_prompt` != ''true'",
            "name = 'q AND tags.`mlflow.prompt.is_prompt` != ''true'",
        ),
        ("tag.k = 'tag.version_number' AND version_number = 1", "tags.k = 'tag.version_number' AND version = 1"),
        ("name = \"version_number\" AND tags.`tag.x` = 'tag.'", "name = \"version_number\" AND tags.`tag.x` = 'tag.'"),
    ],
)
def test_mlflow_filters_translate(mlflow: str, covex: str | None) -> None:
    assert translate_filter(mlflow) == covex


def test_mlflow_orders_translate() -> None:
    with pytest.raises(InvalidInput, match="duplicate"):
        translate_order(["name ASC", "name DESC"], "version")
    with pytest.raises(InvalidInput, match="duplicate"):
        translate_order(["version_number DESC", "`version` ASC"], "version")
    nine = [f"tags.t{i} DESC" for i in range(9)]
    assert translate_order(nine, "version") == [*nine, "name ASC"]  # no "11 clauses" the caller never sent
    assert len(translate_order([f"tags.t{i}" for i in range(10)], "model")) == 10
