"""The requests pages in a real server: the inbox, a request with its gates and champion, approve, reject, cancel."""

from __future__ import annotations

import html
import re
from collections.abc import Iterator
from dataclasses import dataclass
from itertools import count

import httpx
import pytest

from covex.domain.entities import NewVersion
from covex.domain.errors import InvalidInput
from covex.domain.policy import TransitionRequest
from covex.domain.uris import ModelRef
from covex.server import create_app
from covex.service import RegistryService, open_service
from covex.settings import Settings
from tests import support
from tests.ui.forms import csrf_of, signed_in

POLICY = {"approvals": 1, "gates": ["metrics.auc >= 0.80", "metrics.auc >= champion.metrics.auc - 0.01"]}
_names = count(1)


@dataclass(frozen=True)
class Site:
    url: str
    service: RegistryService
    admin: str
    requester: str  # alice, an editor of every model made here
    approver: str  # bob, a reader who may approve moves into Production

    def as_requester(self) -> RegistryService:
        return self.service.with_credentials(self.requester)


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    settings = Settings(uri=str(tmp_path_factory.mktemp("inbox")), user="admin")
    service = open_service(settings)
    admin = service.access.bootstrap("admin").secret
    tokens = {}
    for name in ("alice", "bob"):
        service.access.create_user(name)
        tokens[name] = service.access.create_token(name).secret
    service.access.grant("user:bob", "approver", scope="stage:Production")
    with support.server_thread(create_app(service, settings, auth=True), settings) as url:
        yield Site(url, service, admin, tokens["alice"], tokens["bob"])
    service.close()


def _model(site: Site) -> str:
    """A model with version 1 (auc 0.85) in Production under a policy, and version 2 (auc 0.86) to promote."""
    svc, name = site.service, f"team/churn-{next(_names)}"
    svc.create_model(name)
    svc.create_version(name, NewVersion(source="s3://b/1", metrics={"auc": 0.85}, params={"C": "1", "k": "5"}))
    svc.transition_stage(name, 1, "Production")
    svc.approvals.set_policy("stage", "Production", POLICY, model=name)
    svc.create_version(name, NewVersion(source="s3://b/2", metrics={"auc": 0.86}, params={"C": "2", "k": "5"}))
    svc.access.grant("user:alice", "editor", model=name)
    svc.access.grant("user:bob", "reader", model=name)
    return name


def _request(site: Site) -> TransitionRequest:
    requester = site.as_requester()
    return requester.approvals.create_request(_model(site), 2, stage="Production", comment="better **recall**")


def _post(browser: httpx.Client, url: str, **fields: str) -> httpx.Response:
    page = browser.get(url.rsplit("/", 1)[0])
    return browser.post(url, data={"csrf": csrf_of(page.text), **fields})


def _status(site: Site, request_id: int) -> str:
    return site.service.approvals.get_request(request_id).status


def _stage(site: Site, name: str, number: int) -> str:
    return site.service.get_version(ModelRef(name, "version", str(number))).stage


def _waiting(page: str) -> str:
    return page.split('id="waiting"')[1].split('id="all"')[0]


def test_a_request_waits_in_the_approvers_inbox_with_its_gates_and_champion(site: Site) -> None:
    r = _request(site)
    with signed_in(site, site.approver) as browser:
        listing = browser.get("/requests")
        assert 200 == listing.status_code and f'href="/requests/{r.id}"' in _waiting(listing.text)
        page = browser.get(f"/requests/{r.id}")
        assert 200 == page.status_code
        gates = page.text.split("<h2>Gate results</h2>")[1].split("<h2>")[0]
        assert 2 == gates.count("✓ pass") and "metrics.auc &gt;= 0.80" in gates and "0.86" in gates and "0.84" in gates
        diff = page.text.split("<h2>Against the champion</h2>")[1].split("<h2>Reviews")[0]
        assert "Version 2 (candidate)" in diff and "Version 1 (champion)" in diff
        assert re.search(r"auc</th>\s*<td>0.86</td>\s*<td>0.85</td>\s*<td>\+0.01</td>", diff)
        assert re.search(r'<tr class="changed">\s*<th scope="row">C</th>\s*<td>2</td>\s*<td>1</td>', diff)
        assert re.search(r"<tr>\s*<th scope=\"row\">k</th>.*?same", diff, re.S)
        assert "<strong>recall</strong>" in page.text  # the comment as Markdown
        assert f'action="/requests/{r.id}/approve"' in page.text and f'action="/requests/{r.id}/reject"' in page.text
        assert f'action="/requests/{r.id}/cancel"' not in page.text  # bob neither made it nor is an admin
    with signed_in(site, site.requester) as browser:
        assert "No requests are waiting for your review." in _waiting(browser.get("/requests").text)
        page = browser.get(f"/requests/{r.id}").text
        assert f'action="/requests/{r.id}/approve"' not in page and f'action="/requests/{r.id}/cancel"' in page


def test_the_requester_cannot_approve_its_own_request(site: Site) -> None:
    r = _request(site)
    with signed_in(site, site.requester) as browser:
        refused = _post(browser, f"/requests/{r.id}/approve", comment="lgtm")
        assert 403 == refused.status_code and f"made request {r.id} and may not approve it" in refused.text
        assert "Traceback" not in refused.text
    assert "OPEN" == _status(site, r.id)


def test_the_approver_approves_and_the_version_moves(site: Site) -> None:
    r = _request(site)
    with signed_in(site, site.approver) as browser:
        answer = _post(browser, f"/requests/{r.id}/approve", comment="ship it")
        assert (303, f"/requests/{r.id}") == (answer.status_code, answer.headers["location"])
        page = browser.get(answer.headers["location"]).text
        assert "Approved request" in page and "is now in stage Production" in page
        assert "APPLIED" in page and "ship it" in page and "approved" in page
        assert f'action="/requests/{r.id}/approve"' not in page  # reviewed: no longer in the inbox
        assert "Production" == _stage(site, r.model, 2)
        version = browser.get(f"/models/{r.model}/-/versions/2").text
        assert '<span class="badge stage">Production</span>' in version


def test_the_approver_rejects(site: Site) -> None:
    r = _request(site)
    with signed_in(site, site.approver) as browser:
        answer = _post(browser, f"/requests/{r.id}/reject", comment="recall is not enough")
        assert 303 == answer.status_code
        page = browser.get(answer.headers["location"]).text
        assert "Rejected request" in page and "REJECTED" in page and "recall is not enough" in page
    assert ("REJECTED", "None") == (_status(site, r.id), _stage(site, r.model, 2))


def test_the_requester_cancels_and_nobody_else_may(site: Site) -> None:
    r = _request(site)
    with signed_in(site, site.approver) as browser:
        refused = _post(browser, f"/requests/{r.id}/cancel")
        assert 403 == refused.status_code and "only its requester" in refused.text
    assert "OPEN" == _status(site, r.id)
    with signed_in(site, site.requester) as browser:
        answer = _post(browser, f"/requests/{r.id}/cancel", comment="wrong version")
        assert 303 == answer.status_code
        page = browser.get(answer.headers["location"]).text
        assert "Cancelled request" in page and "CANCELLED" in page and "wrong version" in page
        again = _post(browser, f"/requests/{r.id}/cancel")
        assert 409 == again.status_code and "only OPEN requests can be cancelled" in again.text
    assert "CANCELLED" == _status(site, r.id)


def test_a_request_whose_gates_no_longer_hold_is_shown_stale_with_its_reason(site: Site) -> None:
    r = _request(site)
    site.service.log_metrics(r.model, 2, {"auc": 0.5})
    with signed_in(site, site.approver) as browser:
        refused = _post(browser, f"/requests/{r.id}/approve")
        assert 409 == refused.status_code and "stale" in refused.text
        page = browser.get(f"/requests/{r.id}").text
        assert '<span class="request-status stale">STALE</span>' in page and "no longer holds" in page
        assert "This request is stale" in page and f'action="/requests/{r.id}/approve"' not in page
        listing = browser.get("/requests", params={"status": "stale", "model": r.model}).text
        assert f'href="/requests/{r.id}"' in listing and "no longer holds" in listing
    assert ("STALE", "None") == (_status(site, r.id), _stage(site, r.model, 2))


def test_a_form_without_its_csrf_token_is_refused(site: Site) -> None:
    r = _request(site)
    with signed_in(site, site.approver) as browser:
        for fields in ({}, {"csrf": "x" * 43}):
            forged = browser.post(f"/requests/{r.id}/approve", data=fields)
            assert 403 == forged.status_code and "another site" in forged.text
    assert "OPEN" == _status(site, r.id)


def test_the_list_filters_by_status_model_and_requester_and_pages(site: Site, monkeypatch: pytest.MonkeyPatch) -> None:
    mine = [_request(site) for _ in range(3)]
    other = site.service.approvals.create_request(_model(site), 2, stage="Production")  # by the admin
    site.as_requester().approvals.cancel(mine[0].id)
    with signed_in(site, site.requester) as browser:

        def ids(page: str) -> list[int]:
            return [int(i) for i in re.findall(r'<td><a href="/requests/(\d+)">', page.split('id="all"')[1])]

        cancelled = ids(browser.get("/requests", params={"status": "CANCELLED", "mine": "1"}).text)
        assert mine[0].id in cancelled and mine[1].id not in cancelled
        assert [other.id] == ids(browser.get("/requests", params={"model": other.model}).text)
        listed = browser.get("/requests", params={"mine": "1", "status": "OPEN"}).text
        assert "My requests" in listed and other.id not in ids(listed) and mine[2].id in ids(listed)
        monkeypatch.setattr("covex.ui.inbox.PAGE_SIZE", 1)
        first = browser.get("/requests", params={"mine": "1"}).text
        following = re.search(r'rel="next" href="([^"]+)"', first)
        assert following is not None and [mine[2].id] == ids(first)
        assert [mine[1].id] == ids(browser.get(following.group(1).replace("&amp;", "&")).text)
        empty = browser.get("/requests", params={"status": "REJECTED", "model": other.model}).text
        assert "No request matches these filters." in empty


@pytest.mark.parametrize(
    ("params", "said"),
    [
        ({"status": "EVIL"}, "'status' must be one of"),
        ({"model": "m" * 10_000}, "'model' may hold at most"),
        ({"before": "x" * 10_000}, "'before' must be a request number"),
        ({"before": "9" * 40}, "'before' must be a request number"),
        ({"model": "bad\x00name"}, "name"),
    ],
)
def test_hostile_filters_are_a_400_page(site: Site, params: dict[str, str], said: str) -> None:
    with signed_in(site, site.requester) as browser:
        answer = browser.get("/requests", params=params)
        assert (400, True) == (answer.status_code, said in html.unescape(answer.text))


def test_a_missing_or_malformed_request_is_an_error_page(site: Site) -> None:
    with signed_in(site, site.approver) as browser:
        assert 404 == browser.get("/requests/999999").status_code
        assert 400 == browser.get("/requests/abc").status_code
        assert 400 == browser.get("/requests/" + "9" * 40).status_code


def test_may_review_answers_for_one_request_as_the_inbox_does(site: Site) -> None:
    mine = _request(site)
    bob = site.service.with_credentials(site.approver)
    assert bob.approvals.may_review(mine.id) and not site.as_requester().approvals.may_review(mine.id)
    for who in (site.as_requester(), bob):
        waiting = {r.id for r in who.approvals.inbox()}
        for r in site.service.approvals.list_requests(None, None, max_results=1000):
            assert (r.id in waiting) == who.approvals.may_review(r.id), (who.actor, r.id)


def test_the_inbox_shows_the_oldest_page_and_says_more_are_waiting(site: Site, monkeypatch: pytest.MonkeyPatch) -> None:
    _request(site), _request(site)
    bob = site.service.with_credentials(site.approver)
    every = bob.approvals.inbox()
    assert len(every) >= 2 and [every[0].id] == [r.id for r in bob.approvals.first_waiting(1)]
    with pytest.raises(InvalidInput, match="'max_results'"):
        bob.approvals.first_waiting(0)
    monkeypatch.setattr("covex.ui.inbox.PAGE_SIZE", 1)
    with signed_in(site, site.approver) as browser:
        page = browser.get("/requests").text
    waiting = page.split('id="waiting"')[1].split('id="all"')[0]
    assert "more are waiting" in waiting and len(re.findall(r'<td><a href="/requests/(\d+)">', waiting)) == 1
