"""Hot swap: the alias moves under load and ``covex serve`` follows it, without a failed request."""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

import covex
from covex.domain.webhooks import signed_headers
from tests import support
from tests.serving.conftest import Serving, serve_process, split

ROWS = [[0.9, 0.8, 0.1, 2], [0.1, 0.05, 0.3, 0]]
LOAD_SECONDS_MAX = 120


class Load:
    """Requests sent back to back from a thread until stopped (bounded in count and time)."""

    def __init__(self, url: str, max_requests: int = 20_000) -> None:
        self.url, self.max_requests = url, max_requests
        self.statuses: dict[int, int] = {}
        self.versions: list[str] = []
        self.failures: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> Load:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(30)

    def _run(self) -> None:
        deadline = time.monotonic() + LOAD_SECONDS_MAX
        with httpx.Client(timeout=30) as http:
            for _ in range(self.max_requests):
                if self._stop.is_set() or time.monotonic() > deadline:
                    return
                try:
                    r = http.post(self.url + "/invocations", json=split(ROWS))
                except httpx.HTTPError as exc:
                    self.failures.append(repr(exc))
                    continue
                self.statuses[r.status_code] = self.statuses.get(r.status_code, 0) + 1
                if r.status_code != 200:
                    self.failures.append(r.text)
                elif not self.versions or self.versions[-1] != r.headers["Covex-Model-Version"]:
                    self.versions.append(r.headers["Covex-Model-Version"])


def wait_for_version(serving: Serving, version: int, timeout: float = 60) -> float:
    """Seconds until ``/version`` reports ``version``."""
    start = time.monotonic()
    while serving.get("/version").json().get("version") != version:
        assert time.monotonic() - start < timeout, serving.get("/version").json()
        time.sleep(0.05)
    return time.monotonic() - start


def test_the_alias_moves_under_load_by_polling(serve: Callable[..., Any], registry_dir: Path) -> None:
    with (
        serve("models:/churn@champion", "--poll-seconds", "0.3") as s,
        covex.Client(registry_dir) as c,
        Load(s.url) as load,
    ):
        for target in (2, 1, 2, 1, 2):
            c.set_alias("churn", "champion", target)
            wait_for_version(s, target)
            time.sleep(0.3)  # some requests on each version
        c.set_alias("churn", "champion", 3)  # files that do not load: not switched to
        deadline = time.monotonic() + 60
        while s.get("/version").json()["failed_swaps"] < 1:
            assert time.monotonic() < deadline
            time.sleep(0.1)
        time.sleep(0.5)
        final = s.get("/version").json()
    assert [] == load.failures
    assert ["1", "2", "1", "2", "1", "2"] == load.versions
    assert (2, 5, 1) == (final["version"], final["swaps"], final["failed_swaps"])
    assert "models:/churn/3" in final["last_swap_error"]


def test_the_registry_server_webhook_swaps_at_once_and_a_broken_version_is_not_served(
    registry_dir: Path, tmp_path: Path
) -> None:
    """A real ``covex server`` with tokens: the serving process reads it with a reader service account's token,
    polls rarely, and learns of each move from the registry's signed webhook."""
    serve_port = support.free_port()
    server_log = tmp_path / "server.log"
    env = {"COVEX_WEBHOOK_ALLOW": f"127.0.0.1:{serve_port}", "COVEX_DISPATCH_INTERVAL": "0.1"}
    with support.server_process(env, options=["--uri", str(registry_dir)], log_path=server_log) as url:
        admin_token = re.search(r"shown only now:\s+(\S+)", server_log.read_text())
        assert admin_token is not None
        with covex.Client(url, token=admin_token[1]) as admin:
            admin.access.create_user("scorer", kind="service")
            admin.access.grant("user:scorer", "reader", model="churn")
            reader_token = admin.access.create_token("scorer", name="serving").secret
            hook = admin.webhooks.create_webhook(f"http://127.0.0.1:{serve_port}/-/refresh", ["alias.*"], model="churn")
            secret_file = tmp_path / "webhook-secret"
            secret_file.write_text(hook.secret)
            with (
                serve_process(
                    "models:/churn@champion",
                    url,
                    "--poll-seconds",
                    "300",
                    "--webhook-secret-file",
                    str(secret_file),
                    env={"COVEX_TOKEN": reader_token},
                    port=serve_port,
                ) as s,
                Load(s.url) as load,
            ):
                unsigned = s.post("/-/refresh", json={})
                assert 401 == unsigned.status_code
                for target in (2, 1, 2):
                    admin.set_alias("churn", "champion", target)
                    assert wait_for_version(s, target, timeout=30) < 30
                    time.sleep(0.3)
                admin.set_alias("churn", "champion", 3)
                deadline = time.monotonic() + 60
                while (version := s.get("/version").json())["failed_swaps"] < 1:
                    assert time.monotonic() < deadline, version
                    time.sleep(0.1)
                assert 2 == version["version"] and "models:/churn/3" in version["last_swap_error"]
                metrics = s.metrics()
                assert (3, 1) == (metrics["covex_serving_swaps_total"], metrics["covex_serving_swap_failures_total"])
                assert 2 == metrics['covex_serving_model_version{model="churn"}']
                time.sleep(0.3)
    assert [] == load.failures
    assert ["1", "2", "1", "2"] == load.versions


def test_refresh_takes_a_signed_call(serve: Callable[..., Any], registry_dir: Path, tmp_path: Path) -> None:
    secret_file = tmp_path / "secret"
    secret_file.write_text("whsec-test")
    with serve("models:/churn@champion", "--poll-seconds", "300", "--webhook-secret-file", str(secret_file)) as s:
        with covex.Client(registry_dir) as c:
            c.set_alias("churn", "champion", 2)
        body = json.dumps({"event": "alias.set"}).encode()
        forged = signed_headers("other-secret", "alias.set", 1, body)
        assert 401 == s.post("/-/refresh", content=body, headers=forged).status_code
        time.sleep(1)
        assert 1 == s.get("/version").json()["version"]
        r = s.post("/-/refresh", content=body, headers=signed_headers("whsec-test", "alias.set", 2, body))
        assert 202 == r.status_code
        assert wait_for_version(s, 2, timeout=30) < 30


def test_one_refresh_reaches_every_worker(serve: Callable[..., Any], registry_dir: Path) -> None:
    """With --workers 2 the call lands on one worker; the others learn of it through a shared file."""
    from prometheus_client.parser import text_string_to_metric_families

    def served(s: Any) -> dict[str, float]:
        """The version each worker serves, by process id (any worker's /metrics answers for all)."""
        families = text_string_to_metric_families(s.get("/metrics").text)
        samples = [x for f in families for x in f.samples if x.name == "covex_serving_model_version"]
        return {x.labels["pid"]: x.value for x in samples}

    def wait_until(s: Any, version: int, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while not ((now := served(s)) and len(now) == 2 and set(now.values()) == {version}):
            assert time.monotonic() < deadline, now
            time.sleep(0.2)

    with serve("models:/churn@champion", "--poll-seconds", "300", "--workers", "2") as s:
        wait_until(s, 1, 60)
        with covex.Client(registry_dir) as c:
            c.set_alias("churn", "champion", 2)
        assert 202 == s.post("/-/refresh", json={}).status_code  # an open server: no secret, no token
        wait_until(s, 2, 30)  # without the shared file, one worker would wait for its 300 s poll
