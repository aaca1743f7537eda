"""``covex serve`` records itself on the version it serves: SERVING once loaded, moved by a swap, STOPPED at exit."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import covex


def wait_for(condition: Callable[[], bool], timeout: float = 120) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.1)
    return condition()


def test_the_record_follows_the_server(serve: Callable[..., Any], registry_dir: Path) -> None:
    with covex.Client(registry_dir) as c:
        with serve("models:/churn@champion", "--poll-seconds", "0.3") as s:
            # /ready answers once the model is in place; the record says so right after.
            assert wait_for(lambda: [x.status for x in c.deployments("churn")] == ["SERVING"]), s.log
            [d] = c.deployments("churn")
            assert (d.kind, d.version, d.target) == ("serving", 1, s.url), s.log
            assert d.message.startswith("pid ")
            c.set_alias("churn", "champion", 2)
            assert wait_for(lambda: c.get_deployment(d.id).version == 2), s.log
            assert "swapped from version 1" == c.get_deployment(d.id).message
            assert 0 == s.terminate(), s.log
        ended = c.get_deployment(d.id)
        assert (ended.status, ended.version) == ("STOPPED", 2)
        assert [e.action for e in c.audit.list_records(since=d.started_at).items if e.action.startswith("deploy")] == [
            "deployment.status",
            "deployment.swap",
            "deployment.status",
            "deployment.start",
        ]


def test_advertise_and_no_record(serve: Callable[..., Any], registry_dir: Path) -> None:
    with covex.Client(registry_dir) as c:
        with serve("models:/churn/1", "--advertise", "https://scoring.example.com/churn"):
            assert ["https://scoring.example.com/churn"] == [d.target for d in c.deployments("churn", active=True)]
        with serve("models:/churn/2", "--no-record"):
            assert [] == c.deployments("churn", 2)


def test_a_version_that_does_not_load_says_why_on_its_record(serve: Callable[..., Any], registry_dir: Path) -> None:
    """Version 3's files are not a model: the server keeps trying (503), and the record says why."""
    with covex.Client(registry_dir) as c, serve("models:/churn/3", ready=False) as s:
        assert 503 == s.get("/ready").status_code
        assert wait_for(lambda: [d.message[:11] for d in c.deployments("churn", 3)] == ["not loaded:"]), s.log
        [d] = c.deployments("churn", 3)
        assert d.status == "STARTING" and "python_function" in d.message
