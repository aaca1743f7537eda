"""Differential test: the same MlflowClient registry calls against a real ``mlflow server`` and a Covex server.

Every answer is turned into plain data (an entity into the dict of its public properties, an error into its
``error_code``) and the two runs are compared step by step. Fields that differ by design are left out:
timestamps, ``user_id`` (MLflow's server has no users), ``run_link``, ``workspace`` and the deployment-job
fields MLflow fills with its own defaults.
"""

from __future__ import annotations

import inspect
import uuid
import warnings
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from mlflow import MlflowClient
from mlflow.entities.model_registry import ModelVersion
from mlflow.exceptions import MlflowException
from mlflow.store.entities.paged_list import PagedList

from covex.server import create_app
from covex.service import open_service
from covex.settings import Settings
from tests import support

pytestmark = pytest.mark.slow

IGNORED = {
    "creation_timestamp",
    "last_updated_timestamp",
    "user_id",
    "run_link",
    "workspace",
    "deployment_job_id",
    "deployment_job_state",
}
RUN_1, RUN_2 = "a1" * 16, "b2" * 16


def _plain(value: Any) -> Any:
    """An MLflow answer as plain data: entities as dicts of their public properties, pages with a token flag."""
    if isinstance(value, PagedList):
        return {"items": [_plain(v) for v in value], "has_next_page": bool(value.token)}
    if isinstance(value, list | tuple):
        items = [_plain(v) for v in value]
        if all(isinstance(v, ModelVersion) for v in value):
            # A list of latest versions (one per stage): MLflow's order is its rows', no contract.
            items.sort(key=lambda v: int(v["version"]))
        return items
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if type(value).__module__.startswith("mlflow.entities"):
        names = [n for n, _ in inspect.getmembers(type(value), lambda m: isinstance(m, property))]
        return {n: _plain(getattr(value, n)) for n in names if not n.startswith("_") and n not in IGNORED}
    return value


def _step(call: Callable[[], Any]) -> Any:
    try:
        return _plain(call())
    except MlflowException as exc:
        return {"error_code": exc.error_code}


def _walk(search: Callable[..., PagedList[Any]], text: str, max_results: int) -> list[list[str]]:
    """Every page of a search, as the names (and version numbers) on each."""
    pages, token = [], None
    while True:
        page = search(text, max_results=max_results, page_token=token)
        pages.append([f"{e.name}/{getattr(e, 'version', '')}" for e in page])
        token = page.token
        if not token or len(pages) > 20:
            return pages


def scenario(client: MlflowClient, prefix: str) -> Iterator[tuple[str, Any]]:
    """The calls, each with a label and its answer as plain data; ``prefix`` keeps names apart between runs."""
    a, b, c, gone = f"{prefix}-a", f"{prefix}-b", f"{prefix}-c", f"{prefix}-missing"
    mine = f"name LIKE '{prefix}-%'"
    steps: list[tuple[str, Callable[[], Any]]] = [
        ("create a", lambda: client.create_registered_model(a, tags={"team": "x", "k w": "v"}, description="one")),
        ("create b", lambda: client.create_registered_model(b)),
        ("create c", lambda: client.create_registered_model(c, tags={"team": "y"})),
        ("create a again", lambda: client.create_registered_model(a)),
        ("get a", lambda: client.get_registered_model(a)),
        ("get missing", lambda: client.get_registered_model(gone)),
        ("update a", lambda: client.update_registered_model(a, description="two")),
        ("update missing", lambda: client.update_registered_model(gone, description="x")),
        ("set model tag", lambda: client.set_registered_model_tag(a, "extra", "1")),
        ("delete model tag", lambda: client.delete_registered_model_tag(a, "team")),
        ("get a tagged", lambda: client.get_registered_model(a)),
        (
            "version a1",
            lambda: client.create_model_version(a, "s3://bucket/a/1", RUN_1, tags={"t": "1"}, description="v1"),
        ),
        ("version a2", lambda: client.create_model_version(a, f"runs:/{RUN_2}/model", RUN_2)),
        ("version a3", lambda: client.create_model_version(a, "s3://bucket/a/3")),
        ("version b1", lambda: client.create_model_version(b, "s3://bucket/b/1", RUN_1)),
        ("version of missing", lambda: client.create_model_version(gone, "s3://bucket/x")),
    ]
    for bad in ("s3://bucket/../x", "../x", "/etc/passwd", "file:///tmp/x", "s3://bucket/%2e%2e/x"):
        steps.append((f"source {bad}", lambda bad=bad: client.create_model_version(a, bad)))  # type: ignore[misc]
    steps += [
        ("get a1", lambda: client.get_model_version(a, "1")),
        ("get a99", lambda: client.get_model_version(a, "99")),
        ("update a1", lambda: client.update_model_version(a, "1", description="v1b")),
        ("set version tag", lambda: client.set_model_version_tag(a, "2", "k", "v")),
        ("delete version tag", lambda: client.delete_model_version_tag(a, "1", "t")),
        ("get a2 tagged", lambda: client.get_model_version(a, "2")),
        ("set alias", lambda: client.set_registered_model_alias(a, "champ", "1")),
        ("by alias", lambda: client.get_model_version_by_alias(a, "champ")),
        ("move alias", lambda: client.set_registered_model_alias(a, "champ", "2")),
        ("by moved alias", lambda: client.get_model_version_by_alias(a, "champ")),
        ("a1 after move", lambda: client.get_model_version(a, "1")),
        ("a with alias", lambda: client.get_registered_model(a)),
        ("by alias latest", lambda: client.get_model_version_by_alias(a, "latest")),
        ("alias of missing model", lambda: client.get_model_version_by_alias(gone, "champ")),
        ("alias to missing version", lambda: client.set_registered_model_alias(a, "other", "99")),
        ("delete alias", lambda: client.delete_registered_model_alias(a, "champ")),
        ("by deleted alias", lambda: client.get_model_version_by_alias(a, "champ")),
        ("delete missing alias", lambda: client.delete_registered_model_alias(a, "champ")),
        ("a1 to Staging", lambda: client.transition_model_version_stage(a, "1", "Staging")),
        ("a2 to Production", lambda: client.transition_model_version_stage(a, "2", "Production")),
        (
            "a3 to Production, archiving",
            lambda: client.transition_model_version_stage(a, "3", "Production", archive_existing_versions=True),
        ),
        ("a2 archived", lambda: client.get_model_version(a, "2")),
        ("to a bad stage", lambda: client.transition_model_version_stage(a, "1", "Bogus")),
        ("latest", lambda: client.get_latest_versions(a)),
        ("latest Production", lambda: client.get_latest_versions(a, ["Production"])),
        ("latest Staging+None", lambda: client.get_latest_versions(a, ["Staging", "None"])),
        ("latest of missing", lambda: client.get_latest_versions(gone)),
        ("a with stages", lambda: client.get_registered_model(a)),
        ("search name =", lambda: client.search_registered_models(f"name = '{b}'")),
        ("search LIKE", lambda: client.search_registered_models(mine)),
        ("search ILIKE", lambda: client.search_registered_models(f"name ILIKE '{prefix.upper()}-%'")),
        ("search tag", lambda: client.search_registered_models(f"{mine} AND tags.team = 'y'")),
        ("search quoted tag", lambda: client.search_registered_models(f"{mine} AND tags.`k w` = 'v'")),
        ("search name DESC", lambda: client.search_registered_models(mine, order_by=["name DESC"])),
        ("search timestamp", lambda: client.search_registered_models(mine, order_by=["timestamp DESC"])),
        ("search page 1", lambda: client.search_registered_models(mine, max_results=2)),
        ("walk model pages", lambda: _walk(client.search_registered_models, mine, max_results=1)),
        ("search !=", lambda: client.search_registered_models(f"{mine} AND name != '{a}'")),
        ("search last updated", lambda: client.search_registered_models(mine, order_by=["last_updated_timestamp"])),
        ("search too many", lambda: client.search_registered_models(mine, max_results=5000)),
        ("bad filter", lambda: client.search_registered_models("name = ")),
        ("bad order", lambda: client.search_registered_models(mine, order_by=["nope ASC"])),
        ("bad page token", lambda: client.search_registered_models(mine, page_token="garbage")),
        ("versions of a", lambda: client.search_model_versions(f"name = '{a}'")),
        ("versions by run", lambda: client.search_model_versions(f"run_id IN ('{RUN_1}', '{RUN_2}')")),
        ("versions by number", lambda: client.search_model_versions(f"name = '{a}' AND version_number = 2")),
        ("versions by source", lambda: client.search_model_versions("source_path = 's3://bucket/a/1'")),
        ("versions by tag", lambda: client.search_model_versions(f"name = '{a}' AND tags.k = 'v'")),
        (
            "versions ordered",
            lambda: client.search_model_versions(f"name = '{a}'", order_by=["version_number ASC"]),
        ),
        ("versions page", lambda: client.search_model_versions(f"name = '{a}'", max_results=2)),
        ("walk version pages", lambda: _walk(client.search_model_versions, f"name LIKE '{prefix}-%'", max_results=2)),
        ("versions LIKE", lambda: client.search_model_versions(f"name LIKE '{prefix}-%'")),
        ("versions bad filter", lambda: client.search_model_versions("nope = 1")),
        ("versions bad page token", lambda: client.search_model_versions(f"name = '{a}'", page_token="garbage")),
        ("download uri", lambda: client.get_model_version_download_uri(a, "1")),
        ("download uri of missing", lambda: client.get_model_version_download_uri(a, "99")),
        ("tag missing version", lambda: client.set_model_version_tag(a, "99", "k", "v")),
        ("update missing version", lambda: client.update_model_version(a, "99", description="x")),
        ("move missing version", lambda: client.transition_model_version_stage(a, "99", "Staging")),
        ("rename missing", lambda: client.rename_registered_model(gone, f"{gone}2")),
        ("delete missing version", lambda: client.delete_model_version(a, "99")),
        ("rename b", lambda: client.rename_registered_model(b, f"{b}2")),
        ("renamed version", lambda: client.get_model_version(f"{b}2", "1")),
        ("old name", lambda: client.get_registered_model(b)),
        ("rename to taken", lambda: client.rename_registered_model(f"{b}2", a)),
        ("delete a3", lambda: client.delete_model_version(a, "3")),
        ("deleted a3", lambda: client.get_model_version(a, "3")),
        ("latest after delete", lambda: client.get_latest_versions(a)),
        ("delete c", lambda: client.delete_registered_model(c)),
        ("deleted c", lambda: client.get_registered_model(c)),
        ("delete missing", lambda: client.delete_registered_model(gone)),
        ("search after", lambda: client.search_registered_models(mine)),
    ]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # MLflow's stage APIs are deprecated, still served
        for label, call in steps:
            yield label, _step(call)


def _mlflow_names(data: Any, prefix: str) -> Any:
    """Model names without the run's prefix, so both runs' answers compare."""
    if isinstance(data, str):
        return data.replace(prefix, "P").replace(prefix.upper(), "P")
    if isinstance(data, list):
        return [_mlflow_names(v, prefix) for v in data]
    if isinstance(data, dict):
        return {k: _mlflow_names(v, prefix) for k, v in data.items()}
    return data


@pytest.fixture(scope="module")
def mlflow_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real ``mlflow server`` on SQLite, started for this module and stopped after it."""
    with support.mlflow_server_process(tmp_path_factory.mktemp("mlflow")) as url:
        yield url


@pytest.fixture(scope="module")
def covex_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str]]:
    """A Covex server with tokens required; yields its URL and the admin's token."""
    settings = Settings(uri=str(tmp_path_factory.mktemp("covex")), user="tester")
    svc = open_service(settings)
    token = svc.access.bootstrap("tester").secret
    with support.server_thread(create_app(svc, settings, auth=True), settings) as url:
        yield url, token
    svc.close()


def test_mlflow_and_covex_answer_the_same_registry_calls_alike(
    mlflow_url: str, covex_url: tuple[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    url, token = covex_url
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.delenv("MLFLOW_TRACKING_TOKEN", raising=False)
    expected = [
        (label, _mlflow_names(answer, prefix))
        for prefix in [f"d{uuid.uuid4().hex[:8]}"]
        for label, answer in scenario(MlflowClient(tracking_uri=mlflow_url, registry_uri=mlflow_url), prefix)
    ]
    monkeypatch.setenv("MLFLOW_TRACKING_TOKEN", token)
    actual = [
        (label, _mlflow_names(answer, prefix))
        for prefix in [f"d{uuid.uuid4().hex[:8]}"]
        for label, answer in scenario(MlflowClient(tracking_uri=url, registry_uri=url), prefix)
    ]
    assert len(expected) >= 25
    differences = [
        f"{label}:\n  mlflow: {want}\n  covex:  {got}"
        for (label, want), (_, got) in zip(expected, actual, strict=True)
        if want != got
    ]
    assert not differences, f"{len(differences)} of {len(expected)} answers differ:\n" + "\n".join(differences)
