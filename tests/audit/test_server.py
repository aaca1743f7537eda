"""The audit routes over real HTTP: JSON Lines streaming, and refusals rendered before streaming."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import text
from typer.testing import CliRunner

import covex
from covex.cli import app
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


def test_a_broken_chain_is_a_409_with_the_report(server: tuple[str, RegistryService, str]) -> None:
    url, service, token = server
    service.create_model("churn")
    auth = {"Authorization": f"Bearer {token}"}
    intact = httpx.get(f"{url}/api/v1/audit/verify", headers=auth).json()
    saved = f"{intact['last_seq']}:{intact['last_hash']}"
    with service.engine.begin() as conn:
        conn.execute(text("UPDATE audit_log SET actor = 'mallory' WHERE seq = 1"))
    for params in ({}, {"expect_head": saved}):
        r = httpx.get(f"{url}/api/v1/audit/verify", params=params, headers=auth)
        assert (409, "AUDIT_CHAIN_BROKEN") == (r.status_code, r.json()["error_code"])
        assert "audit chain broken at record 1" in r.json()["message"]
        assert (False, 1) == (r.json()["report"]["ok"], r.json()["report"]["first_bad_seq"])
    with covex.Client(url, token=token) as c:  # the SDK returns the report, as embedded does
        report = c.audit.verify(saved)
        assert (False, 1) == (report.ok, report.first_bad_seq)
    r = httpx.get(f"{url}/api/v1/audit/verify", params={"expect_head": "nonsense"}, headers=auth)
    assert (400, "INVALID_PARAMETER_VALUE") == (r.status_code, r.json()["error_code"])


def test_cli_verify_against_a_saved_head(server: tuple[str, RegistryService, str]) -> None:
    url, service, token = server
    service.create_model("churn")
    env = {"COVEX_URI": url, "COVEX_TOKEN": token, "COLUMNS": "200"}
    first = CliRunner().invoke(app, ["audit", "verify"], env=env)
    assert 0 == first.exit_code, first.output
    saved = first.stdout.split("head ")[1].split()[0].rstrip(";")
    service.set_model_tag("churn", "k", "v")
    later = CliRunner().invoke(app, ["audit", "verify", "--expect-head", saved], env=env)
    assert (0, True) == (later.exit_code, "the saved head is part of it" in later.stdout), later.output
    with service.engine.begin() as conn:
        conn.execute(text("UPDATE audit_log SET actor = 'mallory' WHERE seq = 1"))
    broken = CliRunner().invoke(app, ["audit", "verify", "--expect-head", saved], env=env)
    assert 4 == broken.exit_code
    assert broken.stderr.startswith("error: audit chain broken at record 1")
