"""A create on a local SQLite file runs on the event loop only when it can have the write lock at once.

When another process holds the lock, the create waits for it in a worker thread: the server keeps
answering meanwhile, and the create lands once, when the lock is free.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from pathlib import Path

import httpx
import pytest

from covex.service import open_service
from covex.settings import Settings
from tests import support

pytestmark = pytest.mark.slow


def test_a_create_waits_for_another_process_s_lock_without_stalling_the_server(tmp_path: Path) -> None:
    data = tmp_path / "data"
    service = open_service(Settings(uri=str(data), user="tester"))
    auth = {"Authorization": f"Bearer {service.access.bootstrap('tester').secret}"}
    service.close()
    env = {"COVEX_URI": str(data), "COVEX_DISPATCH_INTERVAL": "0"}
    with support.server_process(env) as url, httpx.Client(base_url=url, headers=auth, timeout=60) as http:
        assert http.post("/api/v1/models", json={"name": "m"}).status_code == 201
        assert http.post("/api/v1/models/m/-/versions", json={"source": "s3://b/1"}).status_code == 201
        other = sqlite3.connect(data / "covex.db", isolation_level=None, check_same_thread=False)
        other.execute("BEGIN IMMEDIATE")  # another process writing, for as long as this test likes
        answers: list[httpx.Response] = []
        create = threading.Thread(
            target=lambda: answers.append(
                httpx.post(f"{url}/api/v1/models/m/-/versions", json={"source": "s3://b/2"}, headers=auth, timeout=60)
            )
        )
        create.start()
        try:
            time.sleep(0.5)
            for _ in range(5):  # the event loop is free: reads are answered while the create waits
                started = time.monotonic()
                assert http.get("/api/v1/models/m/-/versions/1").status_code == 200
                assert time.monotonic() - started < 5
            assert create.is_alive() and answers == []
        finally:
            other.execute("ROLLBACK")
            other.close()
        create.join(60)
        assert [a.status_code for a in answers] == [201]
        assert answers[0].json()["version"] == 2
        listed = http.get("/api/v1/models/m/-/versions").json()["items"]
        assert sorted(v["version"] for v in listed) == [1, 2]
