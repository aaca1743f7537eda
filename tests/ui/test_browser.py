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
    alice = site.service.with_credentials(site.tokens["alice"])
    request = alice.approvals.create_request("shop/churn", 2, stage="Production", comment="for the checks")
    pages = {
        "models": "/",
        "model": "/models/shop/churn",
        "version": "/models/shop/churn/-/versions/4",
        "version-plain": "/models/shop/churn/-/versions/2",
        "compare": "/compare?model=shop/churn&versions=2,3,4",
        "compare-picker": "/compare",
        "requests": "/requests",
        "request-page": f"/requests/{request.id}",
        "audit-trail": "/audit",
        "audit-verify": "/audit/verify",
        **{f"admin-{area}": f"/admin/{area}" for area in ("users", "groups", "tokens", "grants", "policies")},
        "admin-webhooks": "/admin/webhooks",
        "admin": "/admin",
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
    paths = ["/", "/models/shop/churn", "/models/shop/churn/-/versions/4", "/compare?model=shop/churn&versions=2,3,4"]
    paths += ["/requests", "/audit", "/admin/users", "/admin/policies", "/admin/tokens", "/admin/webhooks"]
    for path in paths:
        page.goto(path)
        overflow = page.evaluate("document.documentElement.scrollWidth - document.documentElement.clientWidth")
        assert overflow <= 0, f"{path} scrolls sideways on a 375 px screen by {overflow} px"
    b.screenshot(page, "version-narrow")
    page.context.close()


def test_screenshots_are_written_outside_the_repository(site: b.Site) -> None:
    assert not b.SCREENSHOTS.resolve().is_relative_to(Path(__file__).resolve().parents[2])


def _csrf(page: Any) -> str:
    return str(page.locator("input[name=csrf]").first.input_value())


def test_a_promotion_through_the_inbox_with_two_users(site: b.Site, chromium: Any) -> None:
    alice = b.sign_in(chromium, site, "alice")
    alice.goto("/models/shop/churn/-/versions/3")
    alice.get_by_label("Stage", exact=True).select_option("Production")
    alice.get_by_label("Comment", exact=True).first.fill("beats the champion")
    alice.get_by_role("button", name="Move, or ask for approval").click()
    message = alice.get_by_role("status").first.inner_text()  # the message comes first
    assert "request" in message and "waits for approval" in message, message
    request_id = site.service.approvals.list_requests("shop/churn", "OPEN")[0].id
    assert "None" == site.service.get_version(_ref(3)).stage
    # The requester has nothing to approve, sees no Approve button, and a forced approval is refused.
    alice.goto("/requests")
    assert "No requests are waiting for your review." in alice.content()
    alice.goto(f"/requests/{request_id}")
    assert alice.get_by_role("button", name=f"Approve request {request_id}").count() == 0
    forced = alice.request.post(f"{site.url}/requests/{request_id}/approve", form={"csrf": _csrf(alice)})
    assert 403 == forced.status
    assert "OPEN" == site.service.approvals.get_request(request_id).status
    b.screenshot(alice, "request")
    # The approver finds it in the inbox, sees the gates pass, and approves it.
    bob = b.sign_in(chromium, site, "bob")
    bob.goto("/requests")
    bob.get_by_role("link", name=f"#{request_id}").first.click()
    bob.wait_for_url(f"**/requests/{request_id}")
    assert "pass" in bob.locator("table", has_text="metrics.auc").inner_text()
    bob.get_by_label("Comment on approving (optional)").fill("looks good")
    bob.get_by_role("button", name=f"Approve request {request_id}").click()
    assert "Approved" in bob.get_by_role("status").first.inner_text()
    bob.goto("/models/shop/churn/-/versions/3")
    assert "Production" in bob.locator(".badge.stage").first.inner_text()
    alice.context.close()
    bob.context.close()


def _ref(number: int) -> Any:
    from covex.domain.uris import ModelRef

    return ModelRef("shop/churn", "version", str(number))


def test_a_reader_sees_no_edit_controls_and_a_forced_post_is_refused(site: b.Site, chromium: Any) -> None:
    rita = b.sign_in(chromium, site, "rita")
    for path in ("/models/shop/churn", "/models/shop/churn/-/versions/2"):
        rita.goto(path)
        actions = rita.locator("form[action*='/actions/']")
        forms = [actions.nth(i).get_attribute("action") for i in range(actions.count())]
        assert all(str(f).endswith("/actions/comment") for f in forms), forms  # readers may only comment
    forced = rita.request.post(
        f"{site.url}/models/shop/churn/-/versions/2/actions/tag",
        form={"csrf": _csrf(rita), "key": "hacked", "value": "yes"},
    )
    assert 403 == forced.status
    assert "needs the editor role" in forced.text()
    assert "hacked" not in site.service.get_version(_ref(2)).tags
    rita.context.close()


def test_an_admin_creates_a_token_and_sees_it_once(site: b.Site, chromium: Any) -> None:
    import httpx

    admin = b.sign_in(chromium, site, "admin")
    admin.goto("/admin/tokens")
    admin.get_by_label("For user").fill("rita")
    admin.get_by_label("Name (what it is for)").fill("notebook")
    admin.get_by_label("Your own API token, to confirm").fill(site.tokens["admin"])
    admin.get_by_role("button", name="Create token").click()
    secret = admin.get_by_role("textbox", name="Secret").input_value()
    assert secret.startswith("cvx_")
    assert "it will not be shown again" in admin.content()
    b.screenshot(admin, "token-created")
    whoami = httpx.get(f"{site.url}/api/v1/whoami", headers={"Authorization": f"Bearer {secret}"})
    assert (200, "rita") == (whoami.status_code, whoami.json()["name"])
    before = len(site.service.access.list_tokens("rita"))
    admin.reload()  # shows the tokens again: the form is not sent a second time
    assert f"{site.url}/admin/tokens" == admin.url
    assert "notebook" in admin.content() and secret not in admin.content()
    assert before == len(site.service.access.list_tokens("rita"))
    admin.context.close()


def test_audit_verify_shows_intact_then_broken_after_tampering(tmp_path: Path, chromium: Any) -> None:
    import sqlite3

    with b.site(tmp_path) as own:  # its own registry: the others keep an intact trail
        admin = b.sign_in(chromium, own, "admin")
        admin.goto("/audit")
        b.screenshot(admin, "audit")
        admin.get_by_role("button", name="Verify the chain").click()
        assert "Intact" in admin.get_by_role("status").inner_text()
        with sqlite3.connect(own.data / "covex.db") as db:
            db.execute("UPDATE audit_log SET actor = 'mallory' WHERE seq = 3")
        admin.reload()
        alert = admin.get_by_role("alert").inner_text()
        assert "Broken" in alert and "record 3" in alert, alert
        admin.context.close()


def test_hostile_texts_stay_text_in_the_browser(site: b.Site, chromium: Any) -> None:
    """team/fraud's tag, card and comments hold <script> and javascript: links: nothing runs, nothing links."""
    page = b.sign_in(chromium, site, "admin")
    dialogs: list[str] = []
    page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
    for path in ("/models/team/fraud", "/models/team/fraud/-/versions/2"):
        page.goto(path)
        assert "<script>alert(" in page.locator("main").inner_text()  # shown as the text it is
        assert page.locator("main a[href^='javascript:']").count() == 0
    assert [] == dialogs
    page.context.close()


def test_a_revoking_button_asks_first(site: b.Site, chromium: Any) -> None:
    token = site.service.access.create_token("rita", name="to revoke")
    admin = b.sign_in(chromium, site, "admin")
    admin.goto("/admin/tokens?user=rita")
    asked: list[str] = []
    admin.once("dialog", lambda dialog: (asked.append(dialog.message), dialog.dismiss()))
    admin.get_by_role("button", name=f"Revoke token {token.id}").click()
    assert [f"Revoke token {token.id}?"] == asked
    assert all(t.revoked_at is None for t in site.service.access.list_tokens("rita") if t.id == token.id)
    admin.once("dialog", lambda dialog: dialog.accept())
    admin.get_by_role("button", name=f"Revoke token {token.id}").click()
    assert "no longer works" in admin.get_by_role("status").inner_text()
    assert [True] == [t.revoked_at is not None for t in site.service.access.list_tokens("rita") if t.id == token.id]
    admin.context.close()
