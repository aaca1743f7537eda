"""MLflow's own client against a Covex server: the ground MLflow's model-registry tests cover, in our words.

Every call goes through the real ``mlflow.MlflowClient`` over HTTP, so what is checked is what an MLflow
user sees: entities, pages, stages and ``MlflowException.error_code``; and, behind it, Covex's tokens,
roles, policies and audit trail.
"""

from __future__ import annotations

import uuid
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from mlflow import MlflowClient
from mlflow.entities.model_registry import ModelVersion
from mlflow.exceptions import MlflowException

from covex.domain.uris import ModelRef
from covex.server import create_app
from covex.service import RegistryService, open_service
from covex.settings import Settings
from tests import support

RUN_A, RUN_B = "a" * 32, "b" * 32


@dataclass(frozen=True)
class Server:
    """A running Covex server, its service (acting as the admin) and tokens."""

    url: str
    svc: RegistryService
    admin: str  # the admin's token
    reader: str  # ann, reader of every model
    editor: str  # wes, editor of every model


@contextmanager
def _server(root: str, **settings: Any) -> Iterator[Server]:
    config = Settings(uri=root, user="tester", **settings)
    svc = open_service(config)
    admin = svc.access.bootstrap("tester").secret
    tokens = []
    for user, role in (("ann", "reader"), ("wes", "editor")):
        svc.access.create_user(user)
        svc.access.grant(f"user:{user}", role)
        tokens.append(svc.access.create_token(user).secret)
    with support.server_thread(create_app(svc, config, auth=True), config) as url:
        yield Server(url, svc, admin, *tokens)
    svc.close()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with _server(str(tmp_path_factory.mktemp("covex"))) as s:
        yield s


@pytest.fixture(scope="module")
def custom(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A server that opens requests for protected stages and maps MLflow's Staging to Covex's Dev."""
    with _server(
        str(tmp_path_factory.mktemp("custom")), mlflow_open_requests=True, mlflow_stages={"Staging": "Dev"}
    ) as s:
        yield s


@pytest.fixture
def connect(monkeypatch: pytest.MonkeyPatch) -> Callable[..., MlflowClient]:
    """An MlflowClient for a server with a bearer token (or basic auth, or nothing)."""
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")  # a refusal is an answer, not a reason to retry

    def make(
        s: Server, token: str | None = "", *, username: str | None = None, password: str | None = None
    ) -> MlflowClient:
        for var in ("MLFLOW_TRACKING_TOKEN", "MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD"):
            monkeypatch.delenv(var, raising=False)
        if token is not None:
            monkeypatch.setenv("MLFLOW_TRACKING_TOKEN", token or s.admin)
        if username is not None:
            monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", username)
        if password is not None:
            monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", password)
        return MlflowClient(tracking_uri=s.url, registry_uri=s.url)

    return make


@pytest.fixture
def client(server: Server, connect: Callable[..., MlflowClient]) -> MlflowClient:
    return connect(server)


@pytest.fixture
def name() -> str:
    """A model name no other test uses."""
    return f"m-{uuid.uuid4().hex[:10]}"


def _code(call: Callable[[], Any]) -> str:
    with pytest.raises(MlflowException) as info:
        call()
    return info.value.error_code


@contextmanager
def _stage_api() -> Iterator[None]:
    """MLflow's stage calls warn that stages are deprecated; Covex still serves them."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        yield


def _versions(client: MlflowClient, name: str, *sources: str) -> list[ModelVersion]:
    return [client.create_model_version(name, source) for source in sources]


# -- registered models --------------------------------------------------------------------


def test_a_registered_model_is_created_read_updated_and_deleted(client: MlflowClient, name: str) -> None:
    created = client.create_registered_model(name, tags={"team": "fraud"}, description="first")
    assert (created.name, created.description, created.tags, created.latest_versions) == (
        name,
        "first",
        {"team": "fraud"},
        [],
    )
    assert created.creation_timestamp > 0
    got = client.get_registered_model(name)
    assert (got.name, got.description, got.tags, got.aliases) == (name, "first", {"team": "fraud"}, {})
    updated = client.update_registered_model(name, description="second")
    assert updated.description == "second"
    assert updated.last_updated_timestamp >= created.last_updated_timestamp
    assert client.get_registered_model(name).description == "second"
    client.delete_registered_model(name)
    assert _code(lambda: client.get_registered_model(name)) == "RESOURCE_DOES_NOT_EXIST"


def test_a_rename_moves_the_versions_and_frees_the_old_name(client: MlflowClient, name: str) -> None:
    client.create_registered_model(name)
    _versions(client, name, "s3://bucket/one")
    client.rename_registered_model(name, f"{name}-new")
    assert client.get_registered_model(f"{name}-new").name == f"{name}-new"
    assert client.get_model_version(f"{name}-new", "1").source == "s3://bucket/one"
    assert _code(lambda: client.get_registered_model(name)) == "RESOURCE_DOES_NOT_EXIST"
    client.create_registered_model(name)  # the old name is free again
    assert _code(lambda: client.rename_registered_model(name, f"{name}-new")) == "RESOURCE_ALREADY_EXISTS"


def test_a_name_is_taken_once(client: MlflowClient, name: str) -> None:
    client.create_registered_model(name)
    assert _code(lambda: client.create_registered_model(name)) == "RESOURCE_ALREADY_EXISTS"


@pytest.mark.parametrize(
    "call",
    [
        lambda c, n: c.get_registered_model(n),
        lambda c, n: c.update_registered_model(n, description="x"),
        lambda c, n: c.rename_registered_model(n, n + "-2"),
        lambda c, n: c.delete_registered_model(n),
        lambda c, n: c.set_registered_model_tag(n, "k", "v"),
        lambda c, n: c.create_model_version(n, "s3://bucket/x"),
        lambda c, n: c.get_model_version(n, "1"),
        lambda c, n: c.get_model_version_by_alias(n, "champion"),
    ],
    ids=["get", "update", "rename", "delete", "tag", "new version", "get version", "alias"],
)
def test_an_unknown_model_does_not_exist(client: MlflowClient, name: str, call: Callable[..., Any]) -> None:
    assert _code(lambda: call(client, name)) == "RESOURCE_DOES_NOT_EXIST"


def test_registered_model_tags_are_set_overwritten_and_deleted(client: MlflowClient, name: str) -> None:
    client.create_registered_model(name, tags={"a": "1"})
    client.set_registered_model_tag(name, "b", "2")
    client.set_registered_model_tag(name, "a", "one")
    assert client.get_registered_model(name).tags == {"a": "one", "b": "2"}
    client.delete_registered_model_tag(name, "a")
    assert client.get_registered_model(name).tags == {"b": "2"}


# -- searching models ---------------------------------------------------------------------


@pytest.fixture
def family(client: MlflowClient) -> str:
    """Three models under one fresh prefix: alpha (team=x), beta (team=y, `two words`=yes), Gamma."""
    prefix = f"s{uuid.uuid4().hex[:8]}"
    client.create_registered_model(f"{prefix}-alpha", tags={"team": "x"})
    client.create_registered_model(f"{prefix}-beta", tags={"team": "y", "two words": "yes"})
    client.create_registered_model(f"{prefix}-Gamma")
    return prefix


def test_an_empty_filter_or_page_token_means_none(client: MlflowClient, family: str) -> None:
    """MLflow's clients send ``filter=""`` and ``page_token=""`` for none; MLflow's own tests search so."""
    every = {m.name for m in client.search_registered_models(filter_string="", page_token="", max_results=1000)}
    assert {f"{family}-alpha", f"{family}-beta", f"{family}-Gamma"} <= every
    assert isinstance(client.search_model_versions(filter_string=""), list)


@pytest.mark.parametrize(
    ("text", "found"),
    [
        ("name = '{p}-beta'", ["beta"]),
        ("name LIKE '{p}-%a'", ["Gamma", "alpha", "beta"]),
        ("name LIKE '{p}-g%'", []),
        ("name ILIKE '{p}-g%'", ["Gamma"]),
        ("name LIKE '{p}-%' AND tags.team = 'x'", ["alpha"]),
        ("name LIKE '{p}-%' AND tags.`two words` = 'yes'", ["beta"]),
        ("name LIKE '{p}-%' AND tags.team != 'x'", ["beta"]),
        ("name LIKE '{p}-%' AND name != '{p}-alpha'", ["Gamma", "beta"]),
    ],
)
def test_models_are_searched_with_mlflow_filters(
    client: MlflowClient, family: str, text: str, found: list[str]
) -> None:
    page = client.search_registered_models(text.format(p=family))
    assert [m.name.removeprefix(f"{family}-") for m in page] == found
    assert not page.token


@pytest.mark.parametrize(
    ("order", "names"),
    [
        (["name ASC"], ["Gamma", "alpha", "beta"]),
        (["name DESC"], ["beta", "alpha", "Gamma"]),
        (["timestamp DESC"], ["beta", "alpha", "Gamma"]),
        (["last_updated_timestamp ASC"], ["Gamma", "alpha", "beta"]),
    ],
)
def test_models_are_ordered(client: MlflowClient, family: str, order: list[str], names: list[str]) -> None:
    # Touch them in this order, so the update order differs from the creation and the name orders.
    for suffix in ("Gamma", "alpha", "beta"):
        client.update_registered_model(f"{family}-{suffix}", description="touched")
    page = client.search_registered_models(f"name LIKE '{family}-%'", order_by=order)
    assert [m.name.removeprefix(f"{family}-") for m in page] == names


def _walk(search: Callable[..., Any], **kwargs: Any) -> list[list[Any]]:
    pages, token = [], None
    while len(pages) < 50:
        page = search(page_token=token, **kwargs)
        pages.append(list(page))
        token = page.token
        if not token:
            break
    return pages


def test_model_pages_have_no_duplicates_or_gaps(client: MlflowClient) -> None:
    prefix = f"p{uuid.uuid4().hex[:8]}"
    names = [f"{prefix}-{i:02d}" for i in range(7)]
    for n in reversed(names):
        client.create_registered_model(n)
    pages = _walk(client.search_registered_models, filter_string=f"name LIKE '{prefix}-%'", max_results=3)
    assert [len(p) for p in pages] == [3, 3, 1]
    assert [m.name for p in pages for m in p] == names
    by_name_desc = _walk(
        client.search_registered_models, filter_string=f"name LIKE '{prefix}-%'", max_results=2, order_by=["name DESC"]
    )
    assert [m.name for p in by_name_desc for m in p] == names[::-1]


@pytest.mark.parametrize(
    "call",
    [
        lambda c: c.search_registered_models("name = "),
        lambda c: c.search_registered_models("name IN 'x'"),
        lambda c: c.search_registered_models("nope = 'x'"),
        lambda c: c.search_registered_models(order_by=["nope ASC"]),
        lambda c: c.search_registered_models(max_results=100_000),
        lambda c: c.search_registered_models(page_token="not-a-token"),
        lambda c: c.search_model_versions("name = "),
        lambda c: c.search_model_versions("name = 'x'", page_token="not-a-token"),
    ],
    ids=["truncated", "bad operator", "unknown field", "bad order", "page too big", "token", "versions", "v token"],
)
def test_bad_searches_are_invalid_parameters(client: MlflowClient, call: Callable[..., Any]) -> None:
    assert _code(lambda: call(client)) == "INVALID_PARAMETER_VALUE"


# -- model versions -----------------------------------------------------------------------


def test_a_version_is_created_read_updated_and_deleted(client: MlflowClient, name: str) -> None:
    client.create_registered_model(name)
    v = client.create_model_version(name, "s3://bucket/m/1", RUN_A, tags={"t": "1"}, description="first")
    assert (v.name, v.version, v.source, v.run_id, v.tags, v.description) == (
        name,
        "1",
        "s3://bucket/m/1",
        RUN_A,
        {"t": "1"},
        "first",
    )
    assert (v.current_stage, v.status, v.aliases) == ("None", "READY", [])
    second = client.create_model_version(name, f"runs:/{RUN_B}/model", RUN_B)
    assert (second.version, second.run_id, second.description) == ("2", RUN_B, "")
    assert client.get_model_version(name, "1").description == "first"
    assert client.update_model_version(name, "1", description="better").description == "better"
    assert client.get_model_version(name, "1").description == "better"
    client.delete_model_version(name, "1")
    assert _code(lambda: client.get_model_version(name, "1")) == "RESOURCE_DOES_NOT_EXIST"
    third = client.create_model_version(name, "s3://bucket/m/3")
    assert third.version == "3"  # numbers are never reused
    assert (third.run_id, third.description, third.status_message) == ("", "", None)  # as MLflow's server says


def test_an_unknown_version_does_not_exist(client: MlflowClient, name: str) -> None:
    client.create_registered_model(name)
    _versions(client, name, "s3://bucket/x")
    for call in (
        lambda: client.get_model_version(name, "2"),
        lambda: client.update_model_version(name, "2", description="x"),
        lambda: client.delete_model_version(name, "2"),
        lambda: client.set_model_version_tag(name, "2", "k", "v"),
        lambda: client.set_registered_model_alias(name, "champion", "2"),
        lambda: client.get_model_version_download_uri(name, "2"),
    ):
        assert _code(call) == "RESOURCE_DOES_NOT_EXIST"


def test_version_tags_are_set_and_deleted(client: MlflowClient, name: str) -> None:
    client.create_registered_model(name)
    _versions(client, name, "s3://bucket/x")
    client.set_model_version_tag(name, "1", "k", "v")
    client.set_model_version_tag(name, "1", "j", "w")
    client.delete_model_version_tag(name, "1", "k")
    assert client.get_model_version(name, "1").tags == {"j": "w"}


@pytest.mark.parametrize(
    "source",
    [
        "s3://bucket/../x",
        "s3://bucket/a/../../x",
        "../x",
        "/etc/passwd",
        "file:///tmp/x",
        "s3://bucket/%2e%2e/x",
        "s3://bucket/%2E%2E%2Fx",
        "s3://bucket/%252e%252e/x",
        "runs:/abc/../../x",
        "C:\\models\\x",
        "jar:file:///tmp/x.jar!/model",
    ],
)
def test_sources_climbing_out_or_local_are_refused(client: MlflowClient, name: str, source: str) -> None:
    client.create_registered_model(name)
    assert _code(lambda: client.create_model_version(name, source)) == "INVALID_PARAMETER_VALUE"
    assert client.search_model_versions(f"name = '{name}'") == []


def test_a_pointer_version_downloads_from_its_source(client: MlflowClient, name: str) -> None:
    client.create_registered_model(name)
    _versions(client, name, "s3://bucket/models/7")
    assert client.get_model_version_download_uri(name, "1") == "s3://bucket/models/7"


# -- searching versions -------------------------------------------------------------------


@pytest.fixture
def versioned(client: MlflowClient, name: str) -> str:
    """``name`` with four versions: 1 and 2 from run A, 3 from run B (tagged k=v), 4 with no run."""
    client.create_registered_model(name)
    client.create_model_version(name, "s3://bucket/v/1", RUN_A)
    client.create_model_version(name, "s3://bucket/v/2", RUN_A)
    client.create_model_version(name, f"runs:/{RUN_B}/model", RUN_B, tags={"k": "v"})
    client.create_model_version(name, "s3://bucket/v/4")
    return name


@pytest.mark.parametrize(
    ("text", "found"),
    [
        ("name = '{n}'", ["4", "3", "2", "1"]),
        ("name='{n}' AND run_id = '" + RUN_A + "'", ["2", "1"]),
        ("name = '{n}' AND run_id IN ('" + RUN_A + "', '" + RUN_B + "')", ["3", "2", "1"]),
        ("name = '{n}' AND version_number = 3", ["3"]),
        ("name = '{n}' AND version_number > 2", ["4", "3"]),
        ("name = '{n}' AND source_path = 's3://bucket/v/2'", ["2"]),
        ("name = '{n}' AND tags.k = 'v'", ["3"]),
        ("name LIKE '{n}%' AND tags.`k` = 'v'", ["3"]),
    ],
)
def test_versions_are_searched_with_mlflow_filters(
    client: MlflowClient, versioned: str, text: str, found: list[str]
) -> None:
    assert [v.version for v in client.search_model_versions(text.format(n=versioned))] == found


def test_versions_are_ordered_and_paged_without_duplicates_or_gaps(client: MlflowClient, versioned: str) -> None:
    text = f"name = '{versioned}'"
    ordered = client.search_model_versions(text, order_by=["version_number ASC"])
    assert [v.version for v in ordered] == ["1", "2", "3", "4"]
    pages = _walk(client.search_model_versions, filter_string=text, max_results=3, order_by=["version_number DESC"])
    assert [[v.version for v in p] for p in pages] == [["4", "3", "2"], ["1"]]


def test_versions_come_in_mlflows_default_order_and_ties_are_broken_as_mlflow_does(
    client: MlflowClient, name: str
) -> None:
    """MLflow: last updated first, then name, then the newest version; a given order keeps those tie-breakers."""
    first, second = f"{name}-a", f"{name}-b"
    for model in (first, second):
        client.create_registered_model(model)
    _versions(client, first, "s3://bucket/1", "s3://bucket/2")
    _versions(client, second, "s3://bucket/1")
    client.update_model_version(first, "1", description="touched last")  # the most recently updated
    text = f"name LIKE '{name}-%'"
    found = [(v.name, v.version) for v in client.search_model_versions(text)]
    assert found[0] == (first, "1") and sorted(found) == [(first, "1"), (first, "2"), (second, "1")]
    by_name = [(v.name, v.version) for v in client.search_model_versions(text, order_by=["name DESC"])]
    assert by_name == [(second, "1"), (first, "2"), (first, "1")]


# -- aliases and stages -------------------------------------------------------------------


def test_an_alias_is_set_moved_and_deleted(client: MlflowClient, name: str) -> None:
    client.create_registered_model(name)
    _versions(client, name, "s3://bucket/1", "s3://bucket/2")
    client.set_registered_model_alias(name, "champion", "1")
    assert client.get_model_version_by_alias(name, "champion").version == "1"
    assert client.get_model_version(name, "1").aliases == ["champion"]
    client.set_registered_model_alias(name, "champion", "2")  # moves: an alias names one version
    assert client.get_model_version_by_alias(name, "champion").version == "2"
    assert client.get_model_version(name, "1").aliases == []
    assert client.get_registered_model(name).aliases == {"champion": "2"}
    client.delete_registered_model_alias(name, "champion")
    assert client.get_registered_model(name).aliases == {}
    # MLflow's words: an alias the model lacks is a bad parameter; deleting it again is no error.
    assert _code(lambda: client.get_model_version_by_alias(name, "champion")) == "INVALID_PARAMETER_VALUE"
    client.delete_registered_model_alias(name, "champion")


def test_versions_move_through_mlflow_stages(client: MlflowClient, name: str) -> None:
    client.create_registered_model(name)
    _versions(client, name, "s3://bucket/1", "s3://bucket/2", "s3://bucket/3")
    with _stage_api():
        assert client.transition_model_version_stage(name, "1", "Staging").current_stage == "Staging"
        assert client.transition_model_version_stage(name, "2", "Production").current_stage == "Production"
        moved = client.transition_model_version_stage(name, "3", "production", archive_existing_versions=True)
        assert moved.current_stage == "Production"
        assert client.get_model_version(name, "2").current_stage == "Archived"
        assert client.get_model_version(name, "1").current_stage == "Staging"  # only Production is archived
        assert client.transition_model_version_stage(name, "1", "None").current_stage == "None"
        assert _code(lambda: client.transition_model_version_stage(name, "1", "Nowhere")) == "INVALID_PARAMETER_VALUE"


def test_latest_versions_per_stage(client: MlflowClient, name: str) -> None:
    client.create_registered_model(name)
    _versions(client, name, *(f"s3://bucket/{i}" for i in range(1, 6)))
    with _stage_api():
        for version, stage in (("1", "Production"), ("2", "Staging"), ("3", "Staging"), ("4", "Archived")):
            client.transition_model_version_stage(name, version, stage)
        latest = {v.current_stage: v.version for v in client.get_latest_versions(name)}
        assert latest == {"None": "5", "Staging": "3", "Production": "1", "Archived": "4"}
        assert [v.version for v in client.get_latest_versions(name, ["Staging"])] == ["3"]
        both = client.get_latest_versions(name, ["Production", "None"])
        assert sorted(v.version for v in both) == ["1", "5"]
        assert _code(lambda: client.get_latest_versions(f"{name}-no")) == "RESOURCE_DOES_NOT_EXIST"
    assert {v.current_stage: v.version for v in client.get_registered_model(name).latest_versions} == latest


# -- errors, tokens and roles -------------------------------------------------------------


def test_an_unknown_endpoint_is_endpoint_not_found(server: Server) -> None:
    for prefix in ("/api/2.0/mlflow", "/api/2.0/preview/mlflow"):
        answer = httpx.get(f"{server.url}{prefix}/nope", headers={"Authorization": f"Bearer {server.admin}"})
        assert answer.status_code == 404
        assert answer.json()["error_code"] == "ENDPOINT_NOT_FOUND"


def test_no_token_is_unauthenticated(server: Server, connect: Callable[..., MlflowClient]) -> None:
    answer = httpx.get(f"{server.url}/api/2.0/mlflow/registered-models/search")
    assert (answer.status_code, answer.json()["error_code"]) == (401, "UNAUTHENTICATED")
    assert "MLFLOW_TRACKING_TOKEN" in answer.json()["message"]
    assert _code(lambda: connect(server, None).search_registered_models()) == "UNAUTHENTICATED"


def test_basic_auth_takes_a_token_as_the_password(server: Server, connect: Callable[..., MlflowClient]) -> None:
    assert connect(server, None, username="ann", password=server.reader).search_registered_models() is not None
    refused = connect(server, None, username="wes", password=server.reader)  # ann's token, another name
    assert _code(lambda: refused.search_registered_models()) == "UNAUTHENTICATED"
    forged = connect(server, None, username="ann", password="cvx_" + "0" * 43)
    assert _code(lambda: forged.search_registered_models()) == "UNAUTHENTICATED"


def test_a_reader_reads_but_does_not_write(
    server: Server, client: MlflowClient, connect: Callable[..., MlflowClient], name: str
) -> None:
    client.create_registered_model(name)
    _versions(client, name, "s3://bucket/1")
    ann = connect(server, server.reader)
    assert ann.get_registered_model(name).name == name
    assert [v.version for v in ann.search_model_versions(f"name = '{name}'")] == ["1"]
    with _stage_api():
        # Creating a model of one's own is not on the list: in Covex anyone signed in may.
        for write in (
            lambda: ann.update_registered_model(name, description="mine"),
            lambda: ann.set_registered_model_tag(name, "k", "v"),
            lambda: ann.create_model_version(name, "s3://bucket/2"),
            lambda: ann.set_registered_model_alias(name, "champion", "1"),
            lambda: ann.transition_model_version_stage(name, "1", "Staging"),
            lambda: ann.delete_model_version(name, "1"),
            lambda: ann.delete_registered_model(name),
        ):
            assert _code(write) == "PERMISSION_DENIED"
    assert client.get_model_version(name, "1").current_stage == "None"
    refusals = server.svc.audit.list_records(actor="ann", outcome="refused", target=f"model:{name}").items
    assert len(refusals) >= 7  # each refusal is on the record, under her name


def test_every_write_lands_in_the_audit_trail_with_the_users_name(
    server: Server, connect: Callable[..., MlflowClient], name: str
) -> None:
    wes = connect(server, server.editor)
    writes: list[tuple[str, Callable[[], Any]]] = [
        ("create model", lambda: wes.create_registered_model(name, tags={"a": "1"})),
        ("update model", lambda: wes.update_registered_model(name, description="d")),
        ("set model tag", lambda: wes.set_registered_model_tag(name, "b", "2")),
        ("delete model tag", lambda: wes.delete_registered_model_tag(name, "b")),
        ("create version", lambda: wes.create_model_version(name, "s3://bucket/1")),
        ("create version 2", lambda: wes.create_model_version(name, "s3://bucket/2")),
        ("update version", lambda: wes.update_model_version(name, "1", description="d")),
        ("set version tag", lambda: wes.set_model_version_tag(name, "1", "k", "v")),
        ("delete version tag", lambda: wes.delete_model_version_tag(name, "1", "k")),
        ("set alias", lambda: wes.set_registered_model_alias(name, "champion", "1")),
        ("delete alias", lambda: wes.delete_registered_model_alias(name, "champion")),
        ("transition", lambda: wes.transition_model_version_stage(name, "1", "Staging")),
        ("delete version", lambda: wes.delete_model_version(name, "2")),
        ("rename", lambda: wes.rename_registered_model(name, f"{name}-x")),
        ("delete model", lambda: wes.delete_registered_model(f"{name}-x")),
    ]
    unaudited = []
    with _stage_api():
        for label, write in writes:
            before = server.svc.audit.list_records(max_results=1).items[0].seq
            write()
            new = server.svc.audit.list_records(actor="wes", max_results=100).items
            if not any(r.seq > before and r.target.startswith(f"model:{name}") and r.outcome == "ok" for r in new):
                unaudited.append(label)
    assert unaudited == []


def test_a_protected_stage_is_refused_naming_the_request_to_open(
    server: Server, client: MlflowClient, name: str
) -> None:
    client.create_registered_model(name)
    _versions(client, name, "s3://bucket/1")
    server.svc.approvals.set_policy("stage", "Production", {"approvals": 1}, model=name)
    with _stage_api(), pytest.raises(MlflowException) as refused:
        client.transition_model_version_stage(name, "1", "Production")
    assert refused.value.error_code == "PERMISSION_DENIED"
    assert "request" in refused.value.message
    assert f"covex requests create {name} 1 --stage Production" in refused.value.message
    assert client.get_model_version(name, "1").current_stage == "None"
    assert server.svc.approvals.list_requests(name) == []  # refused, nothing opened


def test_with_open_requests_a_protected_stage_opens_one(
    custom: Server, connect: Callable[..., MlflowClient], name: str
) -> None:
    client = connect(custom)
    client.create_registered_model(name)
    _versions(client, name, "s3://bucket/1")
    custom.svc.approvals.set_policy("stage", "Production", {"approvals": 1}, model=name)
    with _stage_api(), pytest.raises(MlflowException) as refused:
        client.transition_model_version_stage(name, "1", "Production")
    assert refused.value.error_code == "PERMISSION_DENIED"
    [opened] = custom.svc.approvals.list_requests(name)
    assert (opened.version, opened.target_kind, opened.target, opened.status) == (1, "stage", "Production", "OPEN")
    assert f"request #{opened.id}" in refused.value.message
    assert client.get_model_version(name, "1").current_stage == "None"


def test_with_open_requests_a_retried_transition_names_the_same_request(
    custom: Server, connect: Callable[..., MlflowClient], name: str
) -> None:
    client = connect(custom, custom.editor)
    connect(custom).create_registered_model(name)
    _versions(client, name, "s3://bucket/1")
    custom.svc.approvals.set_policy("stage", "Production", {"approvals": 1}, model=name)
    answers = []
    for _ in range(2):
        with _stage_api(), pytest.raises(MlflowException) as refused:
            client.transition_model_version_stage(name, "1", "Production")
        answers.append((refused.value.error_code, refused.value.message))
    [opened] = custom.svc.approvals.list_requests(name)
    assert answers[0] == answers[1] and answers[0][0] == "PERMISSION_DENIED"
    assert f"request #{opened.id}" in answers[0][1]


def test_with_open_requests_leaving_a_protected_stage_still_takes_a_manager(
    custom: Server, connect: Callable[..., MlflowClient], name: str
) -> None:
    admin = connect(custom)
    admin.create_registered_model(name)
    _versions(admin, name, "s3://bucket/1")
    with _stage_api():
        admin.transition_model_version_stage(name, "1", "Production")
    custom.svc.approvals.set_policy("stage", "Production", {"approvals": 1}, model=name)
    editor = connect(custom, custom.editor)
    with _stage_api(), pytest.raises(MlflowException) as refused:
        editor.transition_model_version_stage(name, "1", "Staging")  # out of Production: the manager's
    assert refused.value.error_code == "PERMISSION_DENIED" and "manager" in refused.value.message
    assert admin.get_model_version(name, "1").current_stage == "Production"
    assert custom.svc.approvals.list_requests(name) == []  # no request went around the rule


def test_mlflow_stages_map_to_the_configured_covex_stages(
    custom: Server, connect: Callable[..., MlflowClient], name: str
) -> None:
    client = connect(custom)
    client.create_registered_model(name)
    _versions(client, name, "s3://bucket/1")
    with _stage_api():
        assert client.transition_model_version_stage(name, "1", "Staging").current_stage == "Staging"
        assert custom.svc.get_version(ModelRef(name, "version", "1")).stage == "Dev"
        assert client.get_model_version(name, "1").current_stage == "Staging"
        assert [v.version for v in client.get_latest_versions(name, ["Staging"])] == ["1"]


def test_a_copy_from_an_unreachable_mlflow_server_fails_at_once_and_creates_nothing(
    tmp_path: Path, connect: Callable[..., MlflowClient], name: str
) -> None:
    closed = support.free_port()  # nothing listens there
    with _server(str(tmp_path / "covex"), mlflow_tracking_uri=f"http://127.0.0.1:{closed}") as s:
        client = connect(s)
        client.create_registered_model(name)
        with pytest.raises(MlflowException) as failed:  # not a 503: MLflow's client would retry it for minutes
            client.create_model_version(name, "models:/m-0123456789abcdef0123456789abcdef")
        assert failed.value.error_code == "INVALID_STATE"
        assert f"127.0.0.1:{closed}" in failed.value.message
        assert client.search_model_versions(f"name = '{name}'") == []


def test_copy_model_version_copies_the_files_or_the_pointer(
    server: Server, client: MlflowClient, name: str, tmp_path: Path
) -> None:
    import covex

    client.create_registered_model(name)
    pointer = client.create_model_version(name, "runs:/run_id/model", "run_id_1", description="dummy")
    (tmp_path / "model").mkdir()
    (tmp_path / "model" / "MLmodel").write_text("flavors: {}\n")
    with covex.Client(server.url, token=server.admin) as native:
        held = native.create_version(name, tmp_path / "model")
    client.set_registered_model_alias(name, "held", str(held.version))

    copy = client.copy_model_version(f"models:/{name}/{pointer.version}", name)
    assert (copy.source, copy.description, copy.run_id) == (f"models:/{name}/1", "dummy", "run_id_1")
    assert client.get_model_version_download_uri(name, copy.version) == "runs:/run_id/model"  # as MLflow says

    files = client.copy_model_version(f"models:/{name}@held", name)
    original = server.svc.get_version(ModelRef(name, "version", str(held.version)))
    duplicate = server.svc.get_version(ModelRef(name, "version", files.version))
    assert duplicate.status == "READY" and duplicate.manifest_digest == original.manifest_digest
    uri = client.get_model_version_download_uri(name, files.version)
    assert uri.endswith(f"/registry/{name}/-/{files.version}")
