"""Which creates run on the event loop: small ones; one of many files is checked and inserted in a thread.

A create of 50,000 files spends about a second checking the files and inserting their rows: on the event
loop, every other request of the server would wait that long.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from covex.server.app import create_app
from covex.server.routes import INLINE_MAX_FILES
from covex.service import RegistryService, open_service
from covex.settings import Settings
from tests import support


@pytest.fixture
def service(tmp_path: Path) -> Iterator[RegistryService]:
    svc = open_service(Settings(uri=str(tmp_path / "data"), user="admin"))
    svc.scan_inline = False  # as ``covex server``
    svc.create_model("m")
    yield svc
    svc.close()


def _on_the_loop() -> bool:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


def _files(count: int) -> list[dict[str, Any]]:
    return [{"path": f"f{i}", "digest": hashlib.sha256(str(i).encode()).hexdigest(), "size": 1} for i in range(count)]


def test_a_create_of_many_files_runs_in_a_worker_thread(service: RegistryService) -> None:
    where: list[bool] = []
    create = service.create_version

    def recorded(*args: Any, **kwargs: Any) -> Any:
        where.append(_on_the_loop())
        return create(*args, **kwargs)

    service.create_version = recorded  # type: ignore[method-assign]
    app = create_app(service, auth=False)
    with support.server_thread(app) as url, httpx.Client(base_url=url, timeout=60) as http:
        for body in (
            {"source": "s3://b/1"},
            {"files": _files(INLINE_MAX_FILES)},
            {"files": _files(INLINE_MAX_FILES + 1)},
            {"files": _files(20_000)},
        ):
            assert http.post("/api/v1/models/m/-/versions", json=body).status_code == 201
    assert where == [True, True, False, False]
