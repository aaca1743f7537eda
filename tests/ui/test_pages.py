"""The web UI in a real server: signing in with a token, CSRF, the models, model and version pages, errors."""

from __future__ import annotations

import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from covex.domain.entities import NewVersion
from covex.server import create_app
from covex.service import RegistryService, open_service
from covex.settings import Settings
from tests import support
from tests.server.test_docs import CHROMIUM_FLAGS
from tests.ui.forms import Site, csrf_of, running_site, signed_in

CHROMIUM = shutil.which("chromium")


def _seed(service: RegistryService) -> None:
    service.create_model("team/churn", description="<script>alert('x')</script> churn", tags={"team": "crm"})
    for auc in (0.81, 0.86):
        service.create_version("team/churn", NewVersion(source="s3://b/m", metrics={"auc": auc}, params={"C": "1"}))
    service.set_alias("team/churn", "champion", 2)
    for i in range(60):
        service.create_model(f"bulk-{i:02d}")


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    with running_site(tmp_path_factory.mktemp("ui"), _seed) as running:
        yield running


def test_a_stranger_is_sent_to_sign_in_and_back(site: Site) -> None:
    with httpx.Client(base_url=site.url) as browser:
        answer = browser.get("/models/team/churn")
        assert (303, "/sign-in?next=/models/team/churn") == (answer.status_code, answer.headers["location"])


def test_signing_in_keeps_the_token_in_an_httponly_samesite_cookie(site: Site) -> None:
    with httpx.Client(base_url=site.url) as browser:
        form = browser.get("/sign-in")
        answer = browser.post("/sign-in", data={"token": site.admin, "csrf": csrf_of(form.text), "next": "/"})
        cookie = answer.headers["set-cookie"]
        assert cookie.startswith("covex_session=") and "HttpOnly" in cookie and "SameSite=strict" in cookie
        assert "Models" in browser.get("/").text


def test_a_bad_token_or_a_form_without_its_csrf_token_is_refused(site: Site) -> None:
    with httpx.Client(base_url=site.url) as browser:
        form = browser.get("/sign-in")
        bad = browser.post("/sign-in", data={"token": "cvx_forged", "csrf": csrf_of(form.text)})
        assert (
            401 == bad.status_code
            and "not valid" in bad.text
            and "covex_session" not in bad.headers.get("set-cookie", "")
        )
        forged = browser.post("/sign-in", data={"token": site.admin, "csrf": "x" * 43})
        assert 403 == forged.status_code and "another site" in forged.text
        assert "covex_session" not in forged.headers.get("set-cookie", "")


def test_next_never_leaves_the_site(site: Site) -> None:
    with httpx.Client(base_url=site.url) as browser:
        form = browser.get("/sign-in?next=https://evil.example/")
        assert 'value="/"' in form.text
        answer = browser.post("/sign-in", data={"token": site.admin, "csrf": csrf_of(form.text), "next": "//evil"})
        assert "/" == answer.headers["location"]


def test_the_models_page_searches_sorts_and_pages(site: Site) -> None:
    with signed_in(site, site.admin) as browser:
        first = browser.get("/")
        assert 200 == first.status_code and "bulk-00" in first.text
        assert 50 == first.text.count("<tr>") - 1  # one page, then a link to the next
        following = re.search(r'rel="next" href="([^"]+)"', first.text)
        assert following is not None
        rest = browser.get(following.group(1).replace("&amp;", "&"))
        assert 11 == rest.text.count("<tr>") - 1 and 'rel="next"' not in rest.text
        assert "team/churn" in rest.text
        assert "<script>alert" not in rest.text and "&lt;script&gt;" in rest.text  # escaped
        found = browser.get("/", params={"filter": "tags.team = 'crm'", "order": "name DESC"})
        assert ["team/churn"] == re.findall(r'<td><a href="/models/(?:(?!/-/)[^"])+">([^<]+)</a>', found.text)
        bad = browser.get("/", params={"filter": "nonsense = 1"})
        assert 400 == bad.status_code and "unknown field" in bad.text
        assert 400 == browser.get("/", params={"order": "evil"}).status_code


def test_the_model_and_version_pages_show_what_the_registry_knows(site: Site) -> None:
    with signed_in(site, site.admin) as browser:
        model = browser.get("/models/team/churn")
        assert 200 == model.status_code
        for shown in ("@champion", "version 2", "auc=0.86", "team", "crm", "None"):
            assert shown in model.text
        version = browser.get("/models/team/churn/-/versions/2")
        assert 200 == version.status_code
        for shown in ("models:/team/churn/2", "s3://b/m", "0.86", "@champion", "alias"):
            assert shown in version.text
        assert version.headers["content-security-policy"].startswith("default-src 'self'")


def test_errors_are_pages_that_say_what_went_wrong(site: Site) -> None:
    with signed_in(site, site.admin) as browser:
        missing = browser.get("/models/nope")
        assert (404, "text/html; charset=utf-8") == (missing.status_code, missing.headers["content-type"])
        assert "does not exist" in missing.text and "Traceback" not in missing.text
        assert 404 == browser.get("/models/team/churn/-/versions/9").status_code
        assert 400 == browser.get("/models/team/churn/-/versions/x").status_code
        assert 404 == browser.get("/no/such/page").status_code
    with signed_in(site, site.stranger) as browser:
        refused = browser.get("/models/team/churn")
        assert 403 == refused.status_code and "reader" in refused.text


def test_signing_out_needs_the_form_and_clears_the_cookie(site: Site) -> None:
    with signed_in(site, site.admin) as browser:
        page = browser.get("/")
        assert 403 == browser.post("/sign-out", data={"csrf": "nope"}).status_code
        answer = browser.post("/sign-out", data={"csrf": csrf_of(page.text)})
        assert 303 == answer.status_code and 'covex_session=""' in answer.headers["set-cookie"]
        assert 303 == browser.get("/").status_code


def test_api_paths_keep_their_json_errors(site: Site) -> None:
    answer = httpx.get(f"{site.url}/api/v1/nope", headers={"Authorization": f"Bearer {site.admin}"})
    assert (404, "application/json") == (answer.status_code, answer.headers["content-type"])


@pytest.mark.slow
@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (scripts/test installs it where apt-get works)")
def test_a_browser_renders_the_pages_with_local_times(tmp_path: Path) -> None:
    settings = Settings(uri=str(tmp_path / "open"), user="admin", auth=False)
    service = open_service(settings)
    _seed(service)
    try:
        with support.server_thread(create_app(service, settings, auth=False), settings) as url:
            argv = [str(CHROMIUM), *CHROMIUM_FLAGS, f"--user-data-dir={tmp_path / 'profile'}", "--dump-dom"]
            dom = subprocess.run([*argv, f"{url}/models/team/churn"], capture_output=True, text=True, timeout=180)
    finally:
        service.close()
    assert 0 == dom.returncode, dom.stderr[-2000:]
    assert "@champion" in dom.stdout
    # The script ran: each time shows the viewer's local time, with the UTC value kept as its title.
    stamps = re.findall(r'<time datetime="\d+" title="([^"]+)">([^<]+)</time>', dom.stdout)
    assert stamps and all(title.endswith("UTC") and not shown.endswith("UTC") for title, shown in stamps)


def test_a_csrf_cookie_planted_by_a_neighbour_does_not_pass(site: Site) -> None:
    """Another port or a sibling subdomain can set cookies for this host; signed in, the form token is bound
    to the session, so a planted cookie with a matching form value is still refused."""
    planted = "A" * 43
    with signed_in(site, site.admin) as browser:
        real = csrf_of(browser.get("/").text)
        assert real != planted
        browser.cookies.set("covex_csrf", planted)
        answer = browser.post("/sign-out", data={"csrf": planted})
        assert 403 == answer.status_code
        assert 303 == browser.post("/sign-out", data={"csrf": real}).status_code
    with signed_in(site, site.stranger) as other:
        assert real != csrf_of(other.get("/").text)  # each session its own


def test_a_message_planted_in_the_flash_cookie_is_not_shown(site: Site) -> None:
    with signed_in(site, site.admin) as browser:
        browser.cookies.set("covex_flash", "x.Your%20session%20expired%3A%20sign%20in%20at%20evil.example")
        assert "evil.example" not in browser.get("/").text


def test_signing_out_revokes_the_session_whose_cookie_then_no_longer_works(site: Site) -> None:
    with signed_in(site, site.stranger) as browser:
        cookie = browser.cookies["covex_session"]
        assert cookie != site.stranger  # the session has a token of its own, not the one typed in
        session = site.service.with_credentials(cookie).principal
        assert 200 == browser.get("/").status_code
        assert 303 == browser.post("/sign-out", data={"csrf": csrf_of(browser.get("/").text)}).status_code
    (token,) = [t for t in site.service.access.list_tokens("stranger") if t.id == session.token_id]
    assert ("web UI session", True) == (token.name, token.revoked_at is not None)
    with httpx.Client(base_url=site.url, cookies={"covex_session": cookie}) as replay:
        answer = replay.get("/")
        assert (303, "/sign-in?next=/") == (answer.status_code, answer.headers["location"])
    assert (
        200 == httpx.get(f"{site.url}/api/v1/whoami", headers={"Authorization": f"Bearer {site.stranger}"}).status_code
    )


def test_a_visit_without_signing_in_is_not_audited_as_a_refusal(site: Site) -> None:
    before = site.service.audit.list_records(max_results=1).items[0].seq
    with httpx.Client(base_url=site.url) as browser:
        assert 303 == browser.get("/models/team/churn").status_code
    assert before == site.service.audit.list_records(max_results=1).items[0].seq


def test_numbers_in_paths_are_ascii_digits_only(site: Site) -> None:
    with signed_in(site, site.admin) as browser:
        for path in ("/models/team/churn/-/versions/%D9%A3", "/requests/%D9%A3", "/admin/webhooks/%D9%A3"):
            assert 400 == browser.get(path).status_code, path


def test_an_oversized_form_is_refused_as_a_page_without_reading_it_all(site: Site) -> None:
    with signed_in(site, site.admin) as browser:
        token = csrf_of(browser.get("/").text)
        big = f"csrf={token}&description=" + "x" * 300_000
        declared = browser.post("/models/team/churn/-/actions/description", content=big.encode(),
                                headers={"content-type": "application/x-www-form-urlencoded"})  # fmt: skip
        chunked = browser.post(
            "/models/team/churn/-/actions/description",
            content=iter([big.encode()[i : i + 65536] for i in range(0, len(big), 65536)]),
            headers={"content-type": "application/x-www-form-urlencoded"},
        )
        for answer in (declared, chunked):
            assert (400, "text/html") == (answer.status_code, answer.headers["content-type"].split(";")[0])
            assert "a form may hold at most" in answer.text
    assert "x" * 1000 not in site.service.get_model("team/churn").description


def test_a_session_cannot_mint_a_lasting_token_but_a_confirmed_admin_can(site: Site) -> None:
    """The session's token lasts hours and makes nothing that outlives it; the admin page makes tokens with the
    admin's own API token, asked for again, and they are limited as that token is."""
    site.service.access.create_user("limited")
    site.service.access.update_user("limited", admin=True)
    lasting = site.service.access.create_token("limited").secret
    brief = site.service.access.create_token("limited", expires_in_days=1)
    for typed, expected in ((lasting, None), (brief.secret, brief.expires_at)):
        with signed_in(site, typed) as browser:
            cookie = browser.cookies["covex_session"]
            session = site.service.with_credentials(cookie).principal
            assert session.token_expires_at is not None and session.token_expires_at <= (expected or 2**62)
            minted = httpx.post(f"{site.url}/api/v1/tokens", json={"name": "copied"},
                                headers={"Authorization": f"Bearer {cookie}"})  # fmt: skip
            assert 201 == minted.status_code and minted.json()["expires_at"] <= session.token_expires_at
            page = browser.get("/admin/tokens").text
            form = {"csrf": csrf_of(page), "user": "stranger", "name": "n"}
            assert 400 == browser.post("/admin/tokens", data=form).status_code  # no confirmation
            assert 201 == browser.post("/admin/tokens", data={**form, "confirm": typed}).status_code
        assert expected == site.service.access.list_tokens("stranger")[-1].expires_at


def test_signing_in_over_a_session_ends_it(site: Site) -> None:
    with signed_in(site, site.admin) as browser:
        first = browser.cookies["covex_session"]
        page = browser.get("/sign-in").text
        answer = browser.post("/sign-in", data={"token": site.stranger, "csrf": csrf_of(page), "next": "/"})
        assert 303 == answer.status_code
    gone = httpx.get(f"{site.url}/api/v1/whoami", headers={"Authorization": f"Bearer {first}"})
    assert 401 == gone.status_code


def test_a_referer_that_is_not_a_url_is_ignored(site: Site) -> None:
    with signed_in(site, site.admin) as browser:
        token = csrf_of(browser.get("/").text)
        answer = browser.post("/sign-out", data={"csrf": "wrong"}, headers={"Referer": "http://[::1/x"})
        assert (403, "text/html") == (answer.status_code, answer.headers["content-type"].split(";")[0])
        assert 303 == browser.post("/sign-out", data={"csrf": token}, headers={"Referer": "http://a]b/"}).status_code


def test_the_models_list_shows_each_models_stages_with_their_newest_version(site: Site) -> None:
    site.service.create_model("staged")
    for _ in range(3):
        site.service.create_version("staged", NewVersion(source="s3://b/s"))
    site.service.transition_stage("staged", 1, "Production")
    site.service.transition_stage("staged", 2, "Test")
    site.service.transition_stage("staged", 3, "Test")
    assert {"staged": {"Test": 3, "Production": 1}} == site.service.stages_of(["staged", "bulk-00"])
    with signed_in(site, site.admin) as browser:
        page = browser.get("/", params={"filter": "name = 'staged'"}).text
    assert "Test → 3</a>" in page and "Production → 1</a>" in page and "None →" not in page
    assert {} == site.service.with_credentials(site.stranger).stages_of(["staged"])  # not readable: not described


def test_error_pages_keep_the_signed_in_header_and_a_bad_filter_keeps_its_search_box(site: Site) -> None:
    with signed_in(site, site.admin) as browser:
        missing = browser.get("/models/nosuch")
        assert 404 == missing.status_code and "Sign out" in missing.text and 'href="/admin"' in missing.text
        bad = browser.get("/", params={"filter": "nonsense = 1"})
        assert 400 == bad.status_code and 'role="alert"' in bad.text and "unknown field" in bad.text
        assert 'value="nonsense = 1"' in bad.text  # corrected in place
    with httpx.Client(base_url=site.url) as anonymous:
        assert "Sign out" not in anonymous.get("/no-such-page").text


def test_the_audit_link_shows_only_to_those_who_may_read_the_trail(site: Site) -> None:
    with signed_in(site, site.admin) as browser:
        assert 'href="/audit"' in browser.get("/").text
    with signed_in(site, site.stranger) as browser:
        assert 'href="/audit"' not in browser.get("/").text


@pytest.mark.parametrize(
    "path", ["/models/team/churn/-/versions/1/files/%2e%2e/%2e%2e/x", "/admin/%2e%2e/audit", "/ui/static/%2e%2e/web.py"]
)
def test_a_path_the_guard_refuses_is_an_html_page_on_the_ui(site: Site, path: str) -> None:
    answer = httpx.get(f"{site.url}{path}")
    assert (400, "text/html") == (answer.status_code, answer.headers["content-type"].split(";")[0])
    assert "must not hold" in answer.text
    api = httpx.get(f"{site.url}/api/v1/models/%2e%2e/x")
    assert (400, "application/json") == (api.status_code, api.headers["content-type"].split(";")[0])


def test_signed_out_pages_show_no_message_from_a_cookie(site: Site) -> None:
    """Signed out, the key of a message's signature is a cookie a neighbour could plant: none is shown."""
    with httpx.Client(base_url=site.url) as browser:
        planted = "A" * 43
        browser.cookies.set("covex_csrf", planted)
        from covex.ui import session as s

        class Fake:  # what the signature would be with the planted key
            cookies = {"covex_csrf": planted}
            app = type("A", (), {"state": type("S", (), {"auth": True})()})()
            state = type("R", (), {})()

        message = "Your session expired: sign in at evil.example"
        browser.cookies.set("covex_flash", f"{s.sign(Fake, message)}.{message.replace(' ', '%20')}")  # type: ignore[arg-type]
        assert "evil.example" not in browser.get("/sign-in").text
