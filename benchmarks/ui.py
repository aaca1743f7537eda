"""The web UI's pages at scale: 10,000 models, one model with 10,000 versions, 2,000 alias moves, 1,000 open
requests, 1,000 users and the audit trail all of that leaves.

A ``covex server`` (SQLite, one process) serves the pages to a signed-in client on loopback; each page is
fetched 200 times after a warm-up. The budget is 100 ms per page (issue 14); the empty-endpoint floor of
the same HTTP stack (``floor.py``) is measured beside it. Run from the repository root::

    .venv/bin/python benchmarks/ui.py            # about 1 minute, most of it making the data

The last line is one JSON object: ``*_budget_ratio`` is the 100 ms budget over the page's p95 (above 1:
within it).
"""

from __future__ import annotations

import json
import re
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from harness import AUTH_HEADERS, Measure, Server, covex_server, free_port, http_client, log, ok, running

from covex.domain.entities import NewVersion
from covex.service import open_service
from covex.settings import Settings

MODELS = 10_000
VERSIONS = 10_000
HISTORY = 2_000
REQUESTS = 1_000
USERS = 1_000
ROUNDS = 200
BUDGET_MS = 100.0


def seed(data: Path) -> None:
    service = open_service(Settings(uri=str(data), user="bench"))
    start = time.perf_counter()
    for i in range(MODELS):
        service.create_model(f"model-{i:05d}", description=f"model number {i}", tags={"team": f"t{i % 7}"})
    service.create_model("big")
    for i in range(VERSIONS):
        service.create_version("big", NewVersion(source=f"s3://bench/big/{i}", metrics={"auc": i / VERSIONS}))
    service.set_alias("big", "champion", VERSIONS // 2)
    for i in range(1, HISTORY + 1):  # the model's timeline and the audit trail grow with every move
        service.set_alias("big", "challenger", i)
    service.approvals.apply_policy_file("policies:\n  - stage: Production\n    model: big\n    approvals: 1\n")
    for i in range(1, REQUESTS + 1):
        service.approvals.create_request("big", i, stage="Production", comment=f"request {i}")
    for i in range(USERS):
        service.access.create_user(f"user-{i:04d}")
    log(f"made {MODELS} models and {VERSIONS} versions in {time.perf_counter() - start:.1f} s")
    service.close()


def measure(http: Any, path: str, check: Any) -> dict[str, Any]:
    """``ROUNDS`` sequential GETs of ``path`` after a warm-up, each answer checked."""
    for _ in range(20):
        check(http.get(path))
    m = Measure()
    start = time.perf_counter()
    for _ in range(ROUNDS):
        began = time.perf_counter()
        check(http.get(path))
        m.latencies_ms.append((time.perf_counter() - began) * 1000)
    m.seconds = time.perf_counter() - start
    return m.summary()


def ok_page(response: Any) -> None:
    if response.status_code != 200 or "<main" not in response.text:
        raise RuntimeError(f"{response.request.url}: {response.status_code} {response.text[:200]}")


def main() -> int:
    tmp = Path(tempfile.mkdtemp(prefix="covex-ui-bench-"))
    try:
        seed(tmp / "covex-data")
        covex = covex_server(tmp, 1)
        floor_port = free_port()
        floor = Server(
            "floor",
            [sys.executable, str(Path(__file__).parent / "floor.py"), "--port", str(floor_port)],
            floor_port,
            "/health",
            tmp / "floor.log",
        )
        with running([covex, floor]), http_client(covex.url) as http, http_client(floor.url) as bare:
            token = AUTH_HEADERS[covex.url]["Authorization"].removeprefix("Bearer ")
            http.cookies.set("covex_session", token)
            first = http.get("/")
            following = re.search(r'rel="next" href="([^"]+)"', first.text)
            assert following is not None, "the models page has no next page"
            pages = {
                "models_page": "/",
                "models_next_page": following.group(1).replace("&amp;", "&"),
                "models_filtered": "/?filter=tags.team+%3D+%27t3%27+AND+name+LIKE+%27model-05%25%27",
                "model_with_10k_versions": "/models/big",
                "version_page": f"/models/big/-/versions/{VERSIONS // 2}",
                "requests_page": "/requests",
                "request_page": f"/requests/{REQUESTS // 2}",
                "audit_page": "/audit",
                "audit_filtered": "/audit?target=model%3Abig&action=alias.set",
                "admin_users": "/admin/users",
                "admin_policies": "/admin/policies",
            }
            results = {name: measure(http, path, ok_page) for name, path in pages.items()}
            results["floor"] = measure(bare, "/floor", ok)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"{'page':<26} {'p50 ms':>8} {'p95 ms':>8} {'p99 ms':>8}")
    for name, s in results.items():
        print(f"{name:<26} {s['p50_ms']:>8.2f} {s['p95_ms']:>8.2f} {s['p99_ms']:>8.2f}")
    summary: dict[str, Any] = {f"{k}_p95_ms": round(v["p95_ms"], 2) for k, v in results.items()}
    summary.update({f"{k}_budget_ratio": round(BUDGET_MS / v["p95_ms"], 1) for k, v in results.items() if k != "floor"})
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
