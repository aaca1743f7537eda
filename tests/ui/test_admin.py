"""The admin pages in a real server: each section lists and changes real data; others are refused."""

from __future__ import annotations

import html
import re
from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import pytest

from covex.domain.errors import InvalidInput
from covex.server import create_app
from covex.service import RegistryService, open_service
from covex.settings import Settings
from tests import support
from tests.ui.forms import csrf_of, signed_in


@dataclass(frozen=True)
class Site:
    url: str
    service: RegistryService
    admin: str  # an admin's API token
    member: str  # a user without admin rights


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    settings = Settings(uri=str(tmp_path_factory.mktemp("admin")), user="admin")
    service = open_service(settings)
    admin = service.access.bootstrap("admin").secret
    service.access.create_user("member")
    member = service.access.create_token("member").secret
    service.create_model("team/churn")
    with support.server_thread(create_app(service, settings, auth=True), settings) as url:
        yield Site(url, service, admin, member)
    service.close()


def _post(browser: httpx.Client, url: str, data: dict[str, str | list[str]], page: str = "/admin") -> httpx.Response:
    return browser.post(url, data={**data, "csrf": csrf_of(browser.get(page).text)})


@pytest.fixture
def admin(site: Site) -> Iterator[httpx.Client]:
    with signed_in(site, site.admin) as browser:
        yield browser


def test_the_index_links_every_section_and_the_nav_shows_admin_to_admins_only(site: Site, admin: httpx.Client) -> None:
    index = admin.get("/admin")
    assert 200 == index.status_code
    for section in ("users", "groups", "tokens", "grants", "policies", "webhooks"):
        assert f'href="/admin/{section}"' in index.text
    with signed_in(site, site.member) as member:
        assert 'href="/admin"' not in member.get("/").text


def test_users_and_service_accounts_are_created_changed_and_deleted(site: Site, admin: httpx.Client) -> None:
    made = _post(admin, "/admin/users", {"name": "robot", "kind": "service", "admin": "yes"})
    assert (303, "/admin/users") == (made.status_code, made.headers["location"])
    listed = admin.get("/admin/users").text
    assert "Created service account robot." in listed and "service account" in listed
    robot = site.service.access.get_user("robot")
    assert ("service", True) == (robot.kind, robot.is_admin)
    _post(admin, "/admin/users/robot/admin", {"admin": "no"})
    _post(admin, "/admin/users/robot/disabled", {"disabled": "yes"})
    robot = site.service.access.get_user("robot")
    assert (False, True) == (robot.is_admin, robot.disabled)
    _post(admin, "/admin/users/robot/disabled", {"disabled": "no"})
    assert not site.service.access.get_user("robot").disabled
    gone = _post(admin, "/admin/users/robot/delete", {})
    assert 303 == gone.status_code and "robot" not in [u.name for u in site.service.access.list_users()]


def test_the_last_admin_is_kept_with_a_clear_page(admin: httpx.Client) -> None:
    refused = _post(admin, "/admin/users/admin/admin", {"admin": "no"})
    assert 409 == refused.status_code and "last active admin" in refused.text


def test_groups_are_created_filled_emptied_and_deleted(site: Site, admin: httpx.Client) -> None:
    assert "No groups yet." in admin.get("/admin/groups").text
    _post(admin, "/admin/groups", {"name": "ml-leads", "description": "the leads"})
    _post(admin, "/admin/groups/ml-leads/members", {"user": "member"})
    assert ["member"] == site.service.access.get_group("ml-leads").members
    page = admin.get("/admin/groups").text
    assert "the leads" in page and "Remove member from ml-leads" in page
    _post(admin, "/admin/groups/ml-leads/members/remove", {"user": "member"})
    assert [] == site.service.access.get_group("ml-leads").members
    _post(admin, "/admin/groups/ml-leads/delete", {})
    assert [] == site.service.access.list_groups()


def test_a_token_secret_is_shown_once_works_and_is_revoked(site: Site, admin: httpx.Client) -> None:
    made = _post(
        admin, "/admin/tokens", {"user": "member", "name": "ci", "expires_in_days": "30", "confirm": site.admin}
    )
    assert 201 == made.status_code and "no-store" == made.headers["cache-control"]
    secrets = re.findall(r"cvx_[A-Za-z0-9_\-]{20,}", made.text)
    assert 1 == len(secrets) and "will not be shown again" in made.text
    secret = secrets[0]
    assert secret not in made.headers.get("set-cookie", "") and secret not in str(made.url)
    listed = admin.get("/admin/tokens", params={"user": "member"})
    assert "ci" in listed.text and secret not in listed.text and secret[:12] in listed.text
    me = httpx.get(f"{site.url}/api/v1/whoami", headers={"Authorization": f"Bearer {secret}"})
    assert (200, "member") == (me.status_code, me.json()["name"])
    token = next(t for t in site.service.access.list_tokens("member") if t.name == "ci")
    assert token.expires_at is not None
    _post(admin, f"/admin/tokens/{token.id}/revoke", {})
    again = httpx.get(f"{site.url}/api/v1/whoami", headers={"Authorization": f"Bearer {secret}"})
    assert 401 == again.status_code


def test_grants_are_listed_filtered_given_and_revoked(site: Site, admin: httpx.Client) -> None:
    given = _post(admin, "/admin/grants", {"subject": "user:member", "role": "editor", "model": "team/churn"})
    assert 303 == given.status_code
    _post(admin, "/admin/grants", {"subject": "everyone", "role": "reader", "model": ""})
    _post(admin, "/admin/grants", {"subject": "member", "role": "approver", "scope": "stage:Production"})
    shown = admin.get("/admin/grants", params={"subject": "user:member"}).text
    assert "editor" in shown and "approver" in shown and "stage:Production" in shown
    assert "<td>everyone</td>" not in shown
    assert "reader" in admin.get("/admin/grants", params={"model": "team/churn"}).text
    for g in site.service.access.list_grants():
        _post(admin, f"/admin/grants/{g.id}/revoke", {})
    assert [] == site.service.access.list_grants()
    assert "No grants yet." in admin.get("/admin/grants").text


POLICIES = """policies:
  - stage: Production
    approvals: 2
    gates: ["metrics.auc >= 0.8"]
"""


def test_a_policy_file_is_shown_and_applied(site: Site, admin: httpx.Client) -> None:
    applied = _post(admin, "/admin/policies", {"text": POLICIES, "replace": "yes"})
    assert 303 == applied.status_code
    page = admin.get("/admin/policies").text
    assert "Applied 1 policy." in page and "metrics.auc &gt;= 0.8" in page
    assert "approvals: 2" in html.unescape(page)  # the file to edit holds the current policies
    (policy,) = site.service.approvals.list_policies()
    assert (2, ["metrics.auc >= 0.8"]) == (policy.approvals, policy.gates)
    _post(admin, "/admin/policies", {"text": "policies: []\n", "replace": "yes"})
    assert [] == site.service.approvals.list_policies()


def test_the_policy_file_shown_applies_back_unchanged(site: Site, admin: httpx.Client) -> None:
    text = (
        "policies:\n  - stage: Production\n    approvals: 2\n    approvers: [user:member]\n    from: [Test]\n"
        "  - stage: Production\n    tag: team=crm\n    approvals: 1\n  - alias: champion\n    approvals: 1\n"
    )
    site.service.approvals.apply_policy_file(text, replace=True)
    before = [p.model_dump(exclude={"last_updated_timestamp"}) for p in site.service.approvals.list_policies()]
    shown = re.search(r'<textarea id="policy-text"[^>]*>\n(.*?)</textarea>', admin.get("/admin/policies").text, re.S)
    assert shown is not None
    assert 303 == _post(admin, "/admin/policies", {"text": html.unescape(shown.group(1)), "replace": "yes"}).status_code
    after = [p.model_dump(exclude={"last_updated_timestamp"}) for p in site.service.approvals.list_policies()]
    assert 3 == len(before) and before == after
    site.service.approvals.apply_policy_file("policies: []\n", replace=True)


def test_a_bad_policy_key_is_shown_at_its_line_and_nothing_is_applied(site: Site, admin: httpx.Client) -> None:
    text = "policies:\n  - stage: Production\n    approvals: 1\n    aprovers: [user:member]\n"
    answer = _post(admin, "/admin/policies", {"text": text, "replace": "yes"})
    assert 400 == answer.status_code
    assert '<a href="#policy-line-4">line 4</a>' in answer.text and "aprovers" in answer.text
    assert "nothing changed" in answer.text and html.escape(text, quote=False) in answer.text  # the text is kept
    assert 'id="policy-line-4" class="bad"' in answer.text
    assert [] == site.service.approvals.list_policies()


def test_every_problem_of_a_policy_file_is_listed_at_its_line(admin: httpx.Client) -> None:
    text = "policies:\n  - stage: Production\n    approvals: many\n  - stage: Nowhere\n    approvals: 1\n"
    answer = _post(admin, "/admin/policies", {"text": text})
    shown = re.findall(r'href="#policy-line-(\d+)">line \d+</a>: ([^<]+)<br><code>([^<]*)</code>', answer.text)
    assert ["3", "4"] == [line for line, _, _ in shown]
    assert "approvals" in html.unescape(shown[0][1]) and "Nowhere" in html.unescape(shown[1][1])
    assert ["    approvals: many", "  - stage: Nowhere"] == [code for _, _, code in shown]


def test_a_yaml_syntax_error_is_shown_at_its_line(site: Site, admin: httpx.Client) -> None:
    text = "policies:\n  - stage: Production\n    approvals: [1, 2\n"
    answer = _post(admin, "/admin/policies", {"text": text})
    found = re.search(r'href="#policy-line-(\d+)">line (\d+)</a>', answer.text)
    assert 400 == answer.status_code and found is not None and found.group(1) == found.group(2)
    assert int(found.group(1)) >= 3
    assert [] == site.service.approvals.list_policies()


def test_webhooks_are_created_changed_rotated_and_deleted_with_their_delivery_log(
    site: Site, admin: httpx.Client
) -> None:
    made = _post(admin, "/admin/webhooks", {"url": "https://ci.example.com/hook", "events": ["model.*"]})
    assert 201 == made.status_code and "will not be shown again" in made.text
    (hook,) = site.service.webhooks.list_webhooks()
    secret = re.search(r'id="secret" class="secret" value="([^"]+)"', made.text)
    assert secret is not None and secret.group(1) not in admin.get(f"/admin/webhooks/{hook.id}").text
    assert "No deliveries yet" in admin.get(f"/admin/webhooks/{hook.id}").text
    site.service.create_model("hooked")  # queues a model.created delivery
    log = admin.get(f"/admin/webhooks/{hook.id}").text
    assert "model.created" in log and "pending" in log
    (delivery,) = site.service.webhooks.list_deliveries(hook.id).items
    again = _post(admin, f"/admin/webhooks/{hook.id}/deliveries/{delivery.id}/redeliver", {})
    assert (303, f"/admin/webhooks/{hook.id}") == (again.status_code, again.headers["location"])
    _post(admin, f"/admin/webhooks/{hook.id}/active", {"active": "no"})
    assert not site.service.webhooks.get_webhook(hook.id).active
    changed = {"url": "https://ci.example.com/other", "events": ["version.created", "alias.set"], "description": "ci"}
    _post(admin, f"/admin/webhooks/{hook.id}", changed)
    hook = site.service.webhooks.get_webhook(hook.id)
    assert ("https://ci.example.com/other", ["version.created", "alias.set"]) == (hook.url, hook.events)
    rotated = _post(admin, f"/admin/webhooks/{hook.id}/rotate", {})
    new = re.search(r'id="secret" class="secret" value="([^"]+)"', rotated.text)
    assert 200 == rotated.status_code and new is not None and new.group(1) != secret.group(1)
    _post(admin, f"/admin/webhooks/{hook.id}/delete", {})
    assert [] == site.service.webhooks.list_webhooks()
    assert "No webhooks yet." in admin.get("/admin/webhooks").text


PAGES = ("/admin", "/admin/users", "/admin/groups", "/admin/tokens", "/admin/grants", "/admin/policies")
FORMS: dict[str, dict[str, str | list[str]]] = {
    "/admin/users": {"name": "mallory", "kind": "user", "admin": "yes"},
    "/admin/users/member/admin": {"admin": "yes"},
    "/admin/users/admin/disabled": {"disabled": "yes"},
    "/admin/users/admin/delete": {},
    "/admin/groups": {"name": "mallory-group"},
    "/admin/tokens": {"user": "admin", "confirm": "cvx_not-really"},
    "/admin/grants": {"subject": "user:member", "role": "manager"},
    "/admin/policies": {"text": "policies: []\n", "replace": "yes"},
    "/admin/webhooks": {"url": "https://evil.example/", "events": ["*"]},
}


def test_a_user_without_admin_rights_gets_403_pages_and_changes_nothing(site: Site) -> None:
    site.service.approvals.apply_policy_file(POLICIES)
    users, grants = site.service.access.list_users(), site.service.access.list_grants()
    with signed_in(site, site.member) as member:
        for path in (*PAGES, "/admin/webhooks", "/admin/webhooks/1"):
            answer = member.get(path)
            assert (403, "text/html") == (answer.status_code, answer.headers["content-type"].split(";")[0]), path
            assert "admin rights" in answer.text
        for path, data in FORMS.items():
            assert 403 == _post(member, path, data, page="/").status_code, path
    assert users == site.service.access.list_users() and grants == site.service.access.list_grants()
    assert 1 == len(site.service.approvals.list_policies()) and [] == site.service.webhooks.list_webhooks()
    made = [t for t in site.service.access.list_tokens("admin")[1:] if t.name != "web UI session"]
    assert [] == made  # only the bootstrap token and the admin's own sign-ins
    site.service.approvals.apply_policy_file("policies: []\n", replace=True)


def test_a_form_without_its_csrf_token_is_refused(site: Site, admin: httpx.Client) -> None:
    for path, data in FORMS.items():
        answer = admin.post(path, data=data)
        assert 403 == answer.status_code and "another site" in answer.text, path
    assert "mallory" not in [u.name for u in site.service.access.list_users()]


HOSTILE: list[tuple[str, dict[str, str | list[str]]]] = [
    ("/admin/users", {"name": "<script>alert(1)</script>", "kind": "user"}),
    ("/admin/users", {"name": "x" * 10_000, "kind": "user"}),
    ("/admin/users", {"name": "eve", "kind": "robot"}),
    ("/admin/users/member/admin", {"admin": "maybe"}),
    ("/admin/groups", {"name": "g", "description": "d" * 20_001}),
    ("/admin/groups", {"name": "<b>g</b>"}),
    ("/admin/tokens", {"user": "member", "name": "n" * 10_000, "confirm": "<admin>"}),
    ("/admin/tokens", {"user": "member", "expires_in_days": "soon", "confirm": "<admin>"}),
    ("/admin/tokens", {"user": "member", "expires_in_days": "nan", "confirm": "<admin>"}),
    ("/admin/tokens", {"user": "member"}),
    ("/admin/tokens", {"user": "member", "confirm": "cvx_not-a-token"}),
    ("/admin/tokens", {"user": "member", "confirm": "<member>"}),
    ("/admin/tokens/abc/revoke", {}),
    ("/admin/tokens/99999999999999999999999/revoke", {}),
    ("/admin/grants", {"subject": "user:member", "role": "overlord"}),
    ("/admin/grants", {"subject": "<script>", "role": "reader"}),
    ("/admin/grants", {"subject": "user:member", "role": "reader", "scope": "stage:Production"}),
    ("/admin/policies", {"text": "x" * 10_000}),
    ("/admin/webhooks", {"url": "javascript:alert(1)", "events": ["*"]}),
    ("/admin/webhooks", {"url": "https://ok.example/", "events": ["<script>"]}),
    ("/admin/webhooks", {"url": "https://ok.example/" + "p" * 10_000, "events": ["*"]}),
    ("/admin/webhooks", {"url": "https://ok.example/", "events": []}),
    ("/admin/webhooks/abc/rotate", {}),
]


@pytest.mark.parametrize(("path", "data"), HOSTILE, ids=[f"{p}-{i}" for i, (p, _) in enumerate(HOSTILE)])
def test_hostile_input_gets_a_400_page(site: Site, admin: httpx.Client, path: str, data: dict[str, str]) -> None:
    tokens = {"<admin>": site.admin, "<member>": site.member}
    before = len(site.service.access.list_tokens())
    answer = _post(admin, path, {k: tokens.get(v, v) if isinstance(v, str) else v for k, v in data.items()})
    assert before == len(site.service.access.list_tokens())  # nothing made
    assert 400 == answer.status_code and answer.headers["content-type"].startswith("text/html")
    assert "<script>" not in answer.text.split("<main", 1)[1]


def test_a_missing_webhook_or_user_is_a_404_page(admin: httpx.Client) -> None:
    assert 404 == admin.get("/admin/webhooks/424242").status_code
    assert 404 == _post(admin, "/admin/users/nobody/delete", {}).status_code
    assert 400 == admin.get("/admin/webhooks/abc").status_code


def test_the_users_list_is_paged_and_searched(site: Site, admin: httpx.Client) -> None:
    for i in range(60):
        site.service.access.create_user(f"paged-{i:02d}")
    first = admin.get("/admin/users?q=paged-").text
    assert "Page 1 of 2 (60 in all)" in first and "paged-49" in first and "paged-50" not in first
    second = admin.get("/admin/users?q=paged-&page=2").text
    assert "paged-50" in second and "paged-59" in second and "paged-00" not in second
    assert "paged-59" in admin.get("/admin/users?q=paged-&page=999").text  # past the end: the last page
    assert "No user's name contains" in admin.get("/admin/users?q=nobody-at-all").text


def test_find_users_pages_in_the_database_and_counts(site: Site, admin: httpx.Client) -> None:
    for i in range(3):
        site.service.access.create_user(f"Finder-{i}")
    found, total = site.service.access.find_users("FINDER", offset=1, limit=1)
    assert (["Finder-1"], 3) == ([u.name for u in found], total)
    assert ([], 0) == site.service.access.find_users("100%_", offset=0, limit=5)  # LIKE's wildcards are text
    with pytest.raises(InvalidInput, match="'offset'"):
        site.service.access.find_users("", offset=-1)
    assert 200 == admin.get("/admin/users?page=0").status_code
