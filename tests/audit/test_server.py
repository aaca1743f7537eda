"""The audit routes over real HTTP: JSON Lines streaming, and refusals rendered before streaming."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from covex.server import create_app
from covex.service import RegistryService, open_service
from covex.settings import Settings
from tests import support


@pytest.fixture
def server(tmp_path: Path) -> Iterator[tuple[str, RegistryService, str]]:
    service = open_service(
        Settings(uri=f"sqlite:///{tmp_path / 'covex.db'}", artifacts=str(tmp_path / "a"), user="tester")
    )
    token = service.access.bootstrap("admin").secret
    try:
        with support.server_thread(create_app(service, auth=True)) as url:
            yield url, service, token
    finally:
        service.close()


def test_export_streams_json_lines(server: tuple[str, RegistryService, str]) -> None:
    url, _, token = server
    response = httpx.get(f"{url}/api/v1/audit/export", headers={"Authorization": f"Bearer {token}"})
    assert 200 == response.status_code
    assert response.headers["content-type"].startswith("application/x-ndjson")
    lines = response.text.splitlines()
    assert '{"seq":1,' == lines[0][:9]
    assert lines[-1].startswith('{"head":{"seq":1,')


def test_a_reader_without_rights_gets_a_json_403_not_a_stream(server: tuple[str, RegistryService, str]) -> None:
    url, service, _ = server
    service.access.create_user("bob")
    token = service.access.create_token("bob", name="t").secret
    for path in ("", "/verify", "/export"):
        response = httpx.get(f"{url}/api/v1/audit{path}", headers={"Authorization": f"Bearer {token}"})
        assert (403, "PERMISSION_DENIED") == (response.status_code, response.json()["error_code"])
    assert 401 == httpx.get(f"{url}/api/v1/audit/verify").status_code
