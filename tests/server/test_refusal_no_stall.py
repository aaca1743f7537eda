"""A create refused on the event loop does not wait there for the write lock to record the refusal.

The create runs on the event loop when SQLite's write lock is free at once (``routes.write``). A refused
one rolls back, and its refusal is audited in a transaction of its own: if another process takes the
lock in between, that transaction must not wait for it on the event loop, where every other request
would wait too. It is recorded (once) from a worker thread instead.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import event

from covex.domain.entities import NewVersion
from covex.domain.errors import PermissionDenied
from covex.server.app import create_app
from covex.service import RegistryService, WriteWouldWait, open_service, without_waiting
from covex.settings import Settings
from tests import support

HOLD = 2.0  # how long another process holds the write lock once the refused create has rolled back


@pytest.fixture
def service(tmp_path: Path) -> Iterator[RegistryService]:
    svc = open_service(Settings(uri=str(tmp_path / "data"), user="admin"))
    svc.scan_inline = False  # as ``covex server``: a create is one transaction
    svc.create_model("m")
    svc.access.create_user("carol")  # no role on m
    yield svc
    svc.close()


def _lock_taken_after_the_next_rollback(svc: RegistryService) -> threading.Event:
    """Another connection (as another process would) takes the write lock as soon as the next transaction
    that rolls back has given its connection back, and holds it for ``HOLD`` seconds."""
    rolled_back, taken = threading.Event(), threading.Event()

    def _grab(*_: Any) -> None:
        if taken.is_set() or not rolled_back.is_set():
            return
        other = sqlite3.connect(svc.engine.url.database or "", isolation_level=None, check_same_thread=False)
        other.execute("BEGIN IMMEDIATE")
        taken.set()

        def _release() -> None:
            other.execute("ROLLBACK")
            other.close()

        threading.Timer(HOLD, _release).start()

    event.listen(svc.engine, "rollback", lambda *_: rolled_back.set())
    event.listen(svc.engine.pool, "checkin", _grab)
    return taken


def _refusals(svc: RegistryService) -> int:
    records = svc.audit.list_records(action="version.create", target="model:m").items
    return sum(1 for r in records if r.outcome == "refused")


def test_a_refused_create_gives_up_instead_of_waiting_to_record_its_refusal(service: RegistryService) -> None:
    carol = service.with_credentials(service.access.create_token("carol").secret)
    taken = _lock_taken_after_the_next_rollback(service)
    started = time.monotonic()
    with pytest.raises(WriteWouldWait), without_waiting():
        carol.create_version("m", NewVersion(source="s3://b/1"))
    assert taken.is_set()
    assert time.monotonic() - started < HOLD / 2
    with pytest.raises(PermissionDenied):  # run again where it may wait, as ``routes.write`` does
        carol.create_version("m", NewVersion(source="s3://b/1"))
    assert _refusals(service) == 1
    assert service.audit.verify().ok


def test_the_server_answers_others_while_a_refused_create_s_refusal_waits(service: RegistryService) -> None:
    token = service.access.create_token("carol").secret
    app = create_app(service, auth=True)
    with support.server_thread(app) as url, httpx.Client(base_url=url, timeout=60) as http:
        _lock_taken_after_the_next_rollback(service)
        answers: list[httpx.Response] = []
        create = threading.Thread(
            target=lambda: answers.append(
                http.post(
                    "/api/v1/models/m/-/versions",
                    json={"source": "s3://b/1"},
                    headers={"Authorization": f"Bearer {token}"},
                )
            )
        )
        create.start()
        time.sleep(0.2)
        slowest = 0.0
        with httpx.Client(base_url=url, timeout=60) as other:
            while create.is_alive():
                started = time.monotonic()
                assert other.get("/health").status_code == 200
                slowest = max(slowest, time.monotonic() - started)
                time.sleep(0.02)
        create.join()
        assert [a.status_code for a in answers] == [403]
        assert slowest < HOLD / 2
    assert _refusals(service) == 1


def test_a_create_with_a_bad_token_is_audited_once_from_the_thread(service: RegistryService) -> None:
    stranger = service.with_credentials("not-a-token", source="10.0.0.9")
    with pytest.raises(WriteWouldWait), without_waiting():
        stranger.create_version("m", NewVersion(source="s3://b/1"))
    with pytest.raises(Exception, match="not valid"):
        stranger.create_version("m", NewVersion(source="s3://b/1"))
    records = service.audit.list_records(action="authenticate").items
    assert [r.outcome for r in records] == ["refused"]
