"""The web UI end to end: Debian's Chromium, driven by Playwright, against a real ``covex server`` process."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.ui import browser as b

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[b.Site]:
    with b.site(tmp_path_factory.mktemp("ui-browser")) as running:
        yield running


@pytest.fixture(scope="module")
def chromium() -> Iterator[Any]:
    with b.chromium() as browser:
        yield browser


def test_sign_in_search_and_open_a_version(site: b.Site, chromium: Any) -> None:
    page = b.sign_in(chromium, site, "alice")  # an editor of shop/churn only: she sees no other model
    assert page.get_by_role("link", name="shop/churn").is_visible()
    assert page.get_by_role("link", name="shop/sales").count() == 0
    page.context.close()
    page = b.sign_in(chromium, site, "admin")
    page.get_by_label("Filter").fill("name LIKE 'shop/s%'")
    page.get_by_role("button", name="Search").click()
    assert page.get_by_role("link", name="shop/sales").is_visible()
    assert page.get_by_role("link", name="shop/churn").count() == 0
    page.goto("/")
    page.get_by_role("link", name="shop/churn").click()
    page.wait_for_url("**/models/shop/churn")
    assert page.locator("strong", has_text="churn").is_visible()  # the description is Markdown
    page.get_by_role("link", name="3", exact=True).click()
    page.wait_for_url("**/models/shop/churn/-/versions/3")
    assert page.get_by_role("heading", level=1).inner_text() == "shop/churn · version 3"
    page.context.close()


def test_a_form_without_its_csrf_token_is_refused(site: b.Site, chromium: Any) -> None:
    page = b.sign_in(chromium, site, "admin")
    answer = page.request.post(f"{site.url}/sign-out", form={"csrf": "forged"})
    assert answer.status == 403
    assert "reload the page" in answer.text()
    page.goto("/models/shop/churn")
    assert page.get_by_role("heading", level=1).inner_text() == "shop/churn"  # still signed in
    page.context.close()


def test_the_main_pages_have_no_serious_accessibility_violations(site: b.Site, chromium: Any) -> None:
    pages = {
        "models": "/",
        "model": "/models/shop/churn",
        "version": "/models/shop/churn/-/versions/2",
    }
    page = b.sign_in(chromium, site, "admin")
    problems = {}
    for name, path in pages.items():
        page.goto(path)
        b.screenshot(page, name)
        problems[name] = b.serious_violations(page)
    context = page.context
    context.clear_cookies()
    page.goto("/sign-in")
    problems["sign-in"] = b.serious_violations(page)
    assert problems == {name: [] for name in problems}
    context.close()


def test_pages_fit_a_narrow_screen(site: b.Site, chromium: Any) -> None:
    page = b.sign_in(chromium, site, "admin", width=375, height=740)
    for path in ("/", "/models/shop/churn", "/models/shop/churn/-/versions/2"):
        page.goto(path)
        overflow = page.evaluate("document.documentElement.scrollWidth - document.documentElement.clientWidth")
        assert overflow <= 0, f"{path} scrolls sideways on a 375 px screen by {overflow} px"
    b.screenshot(page, "version-narrow")
    page.context.close()


def test_screenshots_are_written_outside_the_repository(site: b.Site) -> None:
    assert not b.SCREENSHOTS.resolve().is_relative_to(Path(__file__).resolve().parents[2])
