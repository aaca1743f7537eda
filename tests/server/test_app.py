"""The HTTP adapter itself: health, OpenAPI, error rendering, keep-alive."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from covex.artifacts import BlobStore
from covex.server import create_app
from covex.service import RegistryService, open_service
from covex.settings import Settings
from covex.store import database
from tests import support
from tests.conftest import Registry


@pytest.fixture
def http(registries) -> Iterator[httpx.Client]:
    reg: Registry = registries("http", "sqlite")
    reg.reset()
    with httpx.Client(base_url=reg.url, headers={"Authorization": f"Bearer {reg.settings.token}"}) as c:
        yield c


def test_health_ready_docs(http: httpx.Client) -> None:
    assert {"status": "ok"} == http.get("/health").json()
    assert {"status": "ready"} == http.get("/ready").json()
    spec = http.get("/openapi.json").json()
    assert "/api/v1/models" in spec["paths"]
    assert "/api/v1/models/{name}/-/versions/{version}" in spec["paths"]
    assert 200 == http.get("/docs").status_code


@pytest.mark.parametrize(
    ("method", "path", "body", "status", "code", "says"),
    [
        ("GET", "/api/v1/models/ghost", None, 404, "RESOURCE_DOES_NOT_EXIST", "ghost"),
        ("POST", "/api/v1/models", {"name": "a/b/c"}, 400, "INVALID_PARAMETER_VALUE", "'name'"),
        ("POST", "/api/v1/models", {"nam": "x"}, 400, "INVALID_PARAMETER_VALUE", "'name': Field required"),
        ("POST", "/api/v1/models", {"name": "x", "tags": {"k": 1}}, 400, "INVALID_PARAMETER_VALUE", "'tags.k'"),
        ("GET", "/api/v1/versions?filter=metrics.auc%20%3E", None, 400, "INVALID_PARAMETER_VALUE", "invalid filter"),
        ("GET", "/api/v1/versions?max_results=abc", None, 400, "INVALID_PARAMETER_VALUE", "'max_results'"),
        ("GET", "/api/v1/nothing-here", None, 404, "RESOURCE_DOES_NOT_EXIST", "no such endpoint"),
        ("GET", "/api/v1/resolve?uri=churn/1", None, 400, "INVALID_PARAMETER_VALUE", "models:/"),
        ("GET", "/api/v1/blobs/notadigest", None, 400, "INVALID_PARAMETER_VALUE", "'digest'"),
        ("POST", "/api/v1/models", "not json", 400, "INVALID_PARAMETER_VALUE", "invalid request"),
    ],
)
def test_errors_are_json_with_stable_codes(
    http: httpx.Client, method: str, path: str, body: object, status: int, code: str, says: str
) -> None:
    kwargs = {"content": body} if isinstance(body, str) else {"json": body}
    r = http.request(method, path, **kwargs)
    assert (status, code) == (r.status_code, r.json()["error_code"])
    assert says in r.json()["message"]
    assert "Traceback" not in r.text


def test_duplicate_is_409(http: httpx.Client) -> None:
    assert 201 == http.post("/api/v1/models", json={"name": "m"}).status_code
    r = http.post("/api/v1/models", json={"name": "m"})
    assert (409, "RESOURCE_ALREADY_EXISTS") == (r.status_code, r.json()["error_code"])


def test_unexpected_errors_hide_internals(tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:
    settings = Settings(uri=str(tmp_path))
    engine = database.create_db_engine(settings.database_url)
    database.upgrade(engine)
    service = RegistryService(engine, BlobStore(settings.artifacts_url), settings.stages)

    def boom(*_a: object, **_k: object) -> None:
        raise RuntimeError("secret internals")

    monkeypatch.setattr(service, "get_model", boom)
    with support.server_thread(create_app(service, auth=False)) as url:
        r = httpx.get(f"{url}/api/v1/models/x")
    assert (500, "INTERNAL_ERROR") == (r.status_code, r.json()["error_code"])
    assert "secret" not in r.text


def test_ready_is_503_without_a_database(tmp_path) -> None:
    settings = Settings(uri="postgresql+psycopg://nobody@127.0.0.1:1/none", artifacts=str(tmp_path))
    engine = database.create_db_engine(settings.database_url)
    service = RegistryService(engine, BlobStore(str(tmp_path)), settings.stages)
    with support.server_thread(create_app(service)) as url:
        assert 200 == httpx.get(f"{url}/health").status_code
        r = httpx.get(f"{url}/ready")
    assert (503, "TEMPORARILY_UNAVAILABLE") == (r.status_code, r.json()["error_code"])


def test_one_connection_serves_many_requests(http: httpx.Client) -> None:
    http.post("/api/v1/models", json={"name": "m"})
    peers = set()
    for _ in range(20):
        r = http.get("/api/v1/models/m", extensions={})
        assert 200 == r.status_code
        stream = r.extensions["network_stream"]
        peers.add(stream.get_extra_info("client_addr"))
    assert 1 == len(peers)


@pytest.mark.postgres
def test_a_database_that_goes_away_is_503_and_names_nothing(tmp_path) -> None:
    import psycopg

    import covex

    reason = support.postgres_available()
    if reason:
        pytest.skip(reason)
    with support.fresh_postgres_database() as url:
        name = url.rsplit("/", 1)[1]
        settings = Settings(uri=url, artifacts=str(tmp_path / "a"), user="tester", dispatch_interval=0)
        service = open_service(settings)
        token = service.access.bootstrap("tester").secret
        embedded = covex.Client(url, artifacts=str(tmp_path / "a"))
        embedded.search_models()
        with support.server_thread(create_app(service, settings), settings) as served:
            with psycopg.connect(
                host=support.PG_HOST, port=support.PG_PORT, user=support.PG_USER, dbname="postgres", autocommit=True
            ) as conn:
                conn.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
            ready = httpx.get(f"{served}/ready")
            call = httpx.get(f"{served}/api/v1/models", headers={"Authorization": f"Bearer {token}"})
        for r in (ready, call):
            assert (503, "TEMPORARILY_UNAVAILABLE") == (r.status_code, r.json()["error_code"]), r.text
            assert name not in r.text and "5432" not in r.text
        with pytest.raises(covex.ServiceUnavailable, match="the database is unavailable"):
            embedded.search_models()
        embedded.close()
        service.close()
