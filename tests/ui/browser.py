"""A real ``covex server`` process with a seeded registry, and Debian's Chromium driven by Playwright.

The registry: an admin, an editor (``alice``), an approver (``bob``) and a reader (``rita``) of the model
``shop/churn``, whose ``Production`` stage needs one approval and an ``auc`` of at least 0.8.
Screenshots go to ``$COVEX_SCREENSHOTS`` (default: ``covex-ui-screenshots`` in the temp folder), never into
the repository.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from covex.domain.entities import NewVersion
from covex.service import RegistryService, open_service
from covex.settings import Settings
from tests import support

CHROMIUM = shutil.which("chromium")
# Chromium on a machine without a network: no background connections, no first-run or sync.
FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SCREENSHOTS = Path(os.environ.get("COVEX_SCREENSHOTS") or Path(tempfile.gettempdir()) / "covex-ui-screenshots")
POLICY = """\
policies:
  - stage: Production
    approvals: 1
    gates: ["metrics.auc >= 0.8"]
"""


@dataclass
class Site:
    url: str
    data: Path
    service: RegistryService
    tokens: dict[str, str] = field(default_factory=dict)


def seed(service: RegistryService) -> dict[str, str]:
    """The users and models every browser test starts from; answers each user's API token."""
    tokens = {"admin": service.access.bootstrap("admin").secret}
    for name in ("alice", "bob", "rita"):
        service.access.create_user(name)
        tokens[name] = service.access.create_token(name).secret
    service.create_model("shop/churn", description="Predicts **churn** of shop customers.", tags={"team": "crm"})
    for auc in (0.78, 0.84, 0.86):
        service.create_version(
            "shop/churn",
            NewVersion(source="s3://models/churn", metrics={"auc": auc, "f1": auc - 0.1}, params={"C": str(auc)}),
        )
    service.set_alias("shop/churn", "champion", 2)
    _describe(service)
    service.create_model("shop/sales", description="Daily sales.")
    service.access.grant("user:alice", "editor", model="shop/churn")
    service.access.grant("user:bob", "approver", model="shop/churn", scope="stage:Production")
    service.access.grant("user:bob", "reader", model="shop/churn")
    service.access.grant("user:rita", "reader", model="shop/churn")
    service.approvals.apply_policy_file(POLICY)
    return tokens


def _describe(service: RegistryService) -> None:
    """Version 2 of shop/churn as a team's pipeline leaves it: card, lineage, signature, a deployment, checks of
    its traffic, an evaluation and an explanation; and team/fraud, whose texts are hostile."""
    from tests.ui import test_browse

    card = {
        "overview": "Gradient-boosted trees scoring each customer's chance to **churn** within 30 days.",
        "intended_use": "Ranking customers for the retention team's weekly offers.",
        "limitations": "Trained on EU customers only.",
        "owners": ["crm-data-science"],
    }
    lineage = {
        "git": {"commit": "3f9c2d41a7b8e6f5d4c3b2a1908f7e6d5c4b3a29", "branch": "main", "dirty": False},
        "datasets": [{"name": "customers-2026-11", "role": "training", "rows": 184_220, "digest": "9e" * 32}],
        "run_id": "weekly-train-2026-11-30",
    }
    v = service.create_version(
        "shop/churn",
        NewVersion(
            source="s3://models/churn/weekly",
            description="Weekly retrain with November's customers.",
            metrics={"auc": 0.87, "f1": 0.74},
            params={"C": "0.5", "max_depth": "6"},
            documents={"card": card, "lineage": lineage, "signature": test_browse.SIGNATURE},
        ),
    ).version
    service.start_deployment("shop/churn", v, "serving", "http://scoring.internal:8080")
    for status, share, auc in (("OK", 0.0, 0.89), ("OK", 0.0, 0.88), ("DRIFT", 0.5, 0.84)):
        body = test_browse._check(status, share, auc)
        service.monitoring.record_result("shop/churn", v, status=status, source="inference log", rows=500, body=body)
    service.record_evaluation(
        "shop/churn",
        v,
        kind="explanation",
        key="exp-1",
        data_digest=test_browse.DIGEST,
        source="holdout.parquet",
        rows=200,
        body={
            "explainer": "tree",
            "output": "churn probability",
            "importances": [
                {"feature": "days_since_last_order", "mean_abs": 0.31},
                {"feature": "orders_90d", "mean_abs": 0.18},
                {"feature": "support_tickets", "mean_abs": 0.09},
                {"feature": "country", "mean_abs": 0.04},
            ],
        },
    )
    test_browse._seed(service)


@contextmanager
def site(root: Path) -> Iterator[Site]:
    data = root / "data"
    service = open_service(Settings(uri=str(data), user="admin"))
    tokens = seed(service)
    env = {"COVEX_URI": str(data), "COVEX_DISPATCH_INTERVAL": "0"}
    with support.server_process(env, log_path=root / "server.log") as url:
        yield Site(url, data, service, tokens)
    service.close()


@contextmanager
def chromium() -> Iterator[Any]:
    if CHROMIUM is None:
        pytest.skip("Debian's chromium is not installed (scripts/test installs it when it runs as root)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        try:
            yield browser
        finally:
            browser.close()


def sign_in(browser: Any, site: Site, user: str, *, width: int = 1280, height: int = 800) -> Any:
    """A new browser context (its own cookies) signed in as ``user``; answers its page, on the models list."""
    context = browser.new_context(viewport={"width": width, "height": height}, base_url=site.url)
    context.set_default_timeout(30_000)
    page = context.new_page()
    page.goto("/")
    page.get_by_label("API token").fill(site.tokens[user])
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(f"{site.url}/")
    return page


def screenshot(page: Any, name: str) -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


def serious_violations(page: Any) -> list[str]:
    """axe-core's serious and critical findings on the page, one line each (empty: none)."""
    from axe_playwright_python.sync_playwright import Axe

    found = Axe().run(page).response["violations"]
    return [
        f"{v['id']} ({v['impact']}): {v['help']} — {[n['target'] for n in v['nodes'][:3]]}"
        for v in found
        if v["impact"] in ("serious", "critical")
    ]
