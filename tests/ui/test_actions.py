"""The forms that change models and versions, in a real server: each by role, CSRF, policies, hostile input."""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import pytest

from covex.domain.entities import NewVersion
from covex.domain.uris import ModelRef
from covex.server import create_app
from covex.service import RegistryService, open_service
from covex.settings import Settings
from tests import support
from tests.ui.forms import csrf_of, signed_in

_names = itertools.count()


@dataclass(frozen=True)
class Site:
    url: str
    service: RegistryService
    admin: str
    editor: str
    reader: str


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    settings = Settings(uri=str(tmp_path_factory.mktemp("actions")), user="admin")
    service = open_service(settings)
    admin = service.access.bootstrap("admin").secret
    tokens = {}
    for user in ("ed", "rita"):
        service.access.create_user(user)
        tokens[user] = service.access.create_token(user).secret
    with support.server_thread(create_app(service, settings, auth=True), settings) as url:
        yield Site(url, service, admin, tokens["ed"], tokens["rita"])
    service.close()


def _model(site: Site) -> str:
    """A fresh model with two READY versions; ed edits it, rita reads it."""
    name = f"team/m{next(_names)}"
    site.service.create_model(name, description="first words")
    for auc in (0.8, 0.9):
        site.service.create_version(name, NewVersion(source="s3://b/m", metrics={"auc": auc}))
    site.service.access.grant("user:ed", "editor", model=name)
    site.service.access.grant("user:rita", "reader", model=name)
    return name


def _ref(name: str, number: int) -> ModelRef:
    return ModelRef(name, "version", str(number))


def _send(browser: httpx.Client, page: str, action: str, **fields: str | list[str]) -> httpx.Response:
    """Send a form of ``page`` (its CSRF token read from the page) to ``page``/``action``."""
    data = {"csrf": csrf_of(browser.get(page).text), **fields}
    return browser.post(f"{page}/{action}", data=data)


def _done(browser: httpx.Client, answer: httpx.Response, page: str) -> str:
    """The page a form went back to, with its message: the form worked."""
    assert (303, page) == (answer.status_code, answer.headers["location"]), answer.text[-500:]
    shown = browser.get(page)
    assert 200 == shown.status_code
    return shown.text


def _refused(answer: httpx.Response, status: int, *said: str) -> None:
    assert status == answer.status_code, answer.text[-500:]
    assert answer.headers["content-type"].startswith("text/html")
    assert "Traceback" not in answer.text
    for words in said:
        assert words in answer.text


def test_an_editor_changes_a_model_from_its_page(site: Site) -> None:
    name = _model(site)
    page = f"/models/{name}"
    with signed_in(site, site.editor) as browser:
        assert f"{page}/-/actions/description" in browser.get(page).text
        shown = _done(browser, _send(browser, page, "-/actions/description", description="new <b>words</b>"), page)
        assert "Description saved." in shown and "new &lt;b&gt;words&lt;/b&gt;" in shown
        shown = _done(browser, _send(browser, page, "-/actions/tag", key="team", value="crm"), page)
        assert "Tag team set." in shown and "<dt>team</dt><dd>crm</dd>" in shown
        shown = _done(browser, _send(browser, page, "-/actions/alias", alias="champion", version="1"), page)
        assert "Alias @champion now names version 1." in shown and "Delete alias @champion" in shown
        assert 1 == site.service.get_model(name).aliases["champion"]
        shown = _done(browser, _send(browser, page, "-/actions/alias-delete", alias="champion"), page)
        aliases = shown[shown.index("<h2>Aliases</h2>") : shown.index("<h2>Versions</h2>")]
        assert "Alias @champion deleted." in shown and "@champion" not in aliases
        shown = _done(browser, _send(browser, page, "-/actions/tag-delete", key="team"), page)
        assert "Tag team deleted." in shown and "<dt>team</dt>" not in shown
        assert "Tag team deleted." not in browser.get(page).text  # the message shows once
        # A form's address opened as a page (after signing in again, say) leads to the page the form is on.
        opened = browser.get(f"{page}/-/actions/description")
        assert (303, page) == (opened.status_code, opened.headers["location"])
        opened = browser.get(f"{page}/-/versions/2/actions/stage")
        assert (303, f"{page}/-/versions/2") == (opened.status_code, opened.headers["location"])
    model = site.service.get_model(name)
    assert ("new <b>words</b>", {}, {}) == (model.description, model.tags, model.aliases)


def test_an_editor_changes_a_version_from_its_page(site: Site) -> None:
    name = _model(site)
    page = f"/models/{name}/-/versions/2"
    with signed_in(site, site.editor) as browser:
        shown = _done(browser, _send(browser, page, "actions/stage", stage="test", comment="looks good"), page)
        assert "Version 2 is in stage Test." in shown and '<span class="badge stage">Test</span>' in shown
        assert "looks good" in shown  # the move's comment, in the history
        shown = _done(browser, _send(browser, page, "actions/description", description="tuned"), page)
        assert "Description saved." in shown and "<p>tuned</p>" in shown
        shown = _done(browser, _send(browser, page, "actions/tag", key="data", value="2026-11"), page)
        assert "<dt>data</dt><dd>2026-11</dd>" in shown
        shown = _done(browser, _send(browser, page, "actions/tag-delete", key="data"), page)
        assert "Tag data deleted." in shown and "<dt>data</dt>" not in shown
        shown = _done(browser, _send(browser, page, "actions/alias", alias="candidate"), page)
        assert (
            "Alias @candidate now names version 2." in shown and '<span class="badge alias">@candidate</span>' in shown
        )
        card = _send(browser, page, "actions/card", overview="Scores churn.", owners="ed, rita\nann")
        assert "Card saved (Overview, Owners)." in _done(browser, card, page)
        # Merged like `covex card --field`: a second form keeps the fields it leaves empty, removes those ticked.
        card = _send(browser, page, "actions/card", limitations="Only EU data.", clear=["owners"])
        _done(browser, card, page)
        shown = _done(browser, _send(browser, page, "actions/comment", body="Ship it **now**"), page)
        assert "Comment added." in shown and "Ship it <strong>now</strong>" in shown
    found = site.service.get_version(_ref(name, 2))
    assert ("Test", "tuned", {}) == (found.stage, found.description, found.tags)
    assert {"overview": "Scores churn.", "limitations": "Only EU data."} == site.service.get_document(
        _ref(name, 2), "card"
    )
    assert [("ed", "Ship it **now**")] == [(c.author, c.body) for c in site.service.approvals.list_comments(name, 2)]


def test_a_reader_sees_no_controls_and_forced_forms_change_nothing(site: Site) -> None:
    name = _model(site)
    model_page, page = f"/models/{name}", f"/models/{name}/-/versions/2"
    with signed_in(site, site.reader) as browser:
        assert "/actions/" not in browser.get(model_page).text
        # Readers may comment (the service lets them): that is the only form they see.
        assert {"/actions/comment"} == set(re.findall(r"/actions/[a-z-]+", browser.get(page).text))
        forced = [
            (model_page, "-/actions/description", {"description": "defaced"}),
            (model_page, "-/actions/tag", {"key": "k", "value": "v"}),
            (model_page, "-/actions/alias", {"alias": "champion", "version": "1"}),
            (page, "actions/stage", {"stage": "Production"}),
            (page, "actions/card", {"overview": "defaced"}),
        ]
        for where, action, fields in forced:
            _refused(_send(browser, where, action, **fields), 403, "needs the editor role")
        shown = _done(browser, _send(browser, page, "actions/comment", body="Why this data?"), page)
        assert "Why this data?" in shown and "rita" in shown
    model, version = site.service.get_model(name), site.service.get_version(_ref(name, 2))
    assert ("first words", {}, {}) == (model.description, model.tags, model.aliases)
    assert "None" == version.stage
    with pytest.raises(LookupError):
        site.service.get_document(_ref(name, 2), "card")


def test_a_form_without_its_csrf_token_is_refused(site: Site) -> None:
    name = _model(site)
    page = f"/models/{name}"
    with signed_in(site, site.editor) as browser:
        browser.get(page)
        missing = browser.post(f"{page}/-/actions/description", data={"description": "forged"})
        _refused(missing, 403, "another site")
        wrong = browser.post(f"{page}/-/actions/description", data={"description": "forged", "csrf": "x" * 43})
        _refused(wrong, 403, "another site")
        stage = browser.post(f"{page}/-/versions/1/actions/stage", data={"stage": "Test", "csrf": ""})
        _refused(stage, 403)
    assert "first words" == site.service.get_model(name).description
    assert "None" == site.service.get_version(_ref(name, 1)).stage


def test_a_protected_stage_opens_a_request_instead_of_moving(site: Site) -> None:
    name = _model(site)
    site.service.approvals.set_policy("stage", "Production", {"approvals": 1}, model=name)
    page = f"/models/{name}/-/versions/2"
    with signed_in(site, site.editor) as browser:
        shown = _done(browser, _send(browser, page, "actions/stage", stage="Production", comment="please"), page)
        (request,) = site.service.approvals.list_requests(name)
        assert ("OPEN", 2, "Production", "ed") == (request.status, request.version, request.target, request.requester)
        assert f"Stage Production is protected: request {request.id} to move version 2" in shown
        assert f'Request <a href="/requests/{request.id}">#{request.id}</a> by ed' in shown  # the page says so
        assert '<span class="badge stage">None</span>' in shown
        # Sent again, the form names the same request rather than failing.
        again = _done(browser, _send(browser, page, "actions/stage", stage="Production"), page)
        assert f"request {request.id}" in again
        # An unprotected stage still moves at once.
        assert "is in stage Test" in _done(browser, _send(browser, page, "actions/stage", stage="Test"), page)
    assert 1 == len(site.service.approvals.list_requests(name))
    assert "Test" == site.service.get_version(_ref(name, 2)).stage


def test_a_protected_alias_opens_a_request_instead_of_moving(site: Site) -> None:
    name = _model(site)
    site.service.approvals.set_policy("alias", "champion", {"approvals": 1}, model=name)
    page = f"/models/{name}/-/versions/2"
    with signed_in(site, site.editor) as browser:
        shown = _done(browser, _send(browser, page, "actions/alias", alias="champion", comment="better"), page)
        (request,) = site.service.approvals.list_requests(name)
        assert ("OPEN", "alias", "champion") == (request.status, request.target_kind, request.target)
        assert f"Alias @champion is protected: request {request.id} to point it at version 2" in shown
        again = _done(browser, _send(browser, page, "actions/alias", alias="champion"), page)
        assert f"request {request.id}" in again
        assert "now names version 2" in _done(browser, _send(browser, page, "actions/alias", alias="free"), page)
    assert 1 == len(site.service.approvals.list_requests(name))
    assert "champion" not in site.service.get_version(_ref(name, 2)).aliases


def test_hostile_input_gets_an_error_page_and_changes_nothing(site: Site) -> None:
    name = _model(site)
    model_page, page = f"/models/{name}", f"/models/{name}/-/versions/2"
    with signed_in(site, site.editor) as browser:
        long_alias = _send(browser, model_page, "-/actions/alias", alias="a" * 300, version="2")
        _refused(long_alias, 400, "&#39;alias&#39; is longer than 250 characters")
        _refused(_send(browser, page, "actions/alias", alias=" "), 400, "&#39;alias&#39; must be a non-empty string")
        _refused(_send(browser, model_page, "-/actions/alias", alias="ok", version="two"), 400, "&#39;version&#39;")
        _refused(_send(browser, page, "actions/stage", stage="Nope"), 400, "&#39;Nope&#39; is not a stage")
        _refused(_send(browser, page, "actions/card", colour="blue"), 400, "unknown fields: colour")
        _refused(_send(browser, page, "actions/card", overview="half", colour="blue"), 400, "colour")
        _refused(_send(browser, page, "actions/card"), 400, "at least one field")
        _refused(_send(browser, page, "actions/promote", stage="Test"), 404, "no page")
        _refused(_send(browser, page, "actions/comment", body="  "), 400, "&#39;body&#39; must not be empty")
        _refused(_send(browser, model_page, "-/actions/tag", key="", value="v"), 400, "&#39;tag")
        _refused(_send(browser, model_page, "-/actions/tag-delete", key="absent"), 404, "no tag")
        _refused(_send(browser, page, "actions/description", description="x" * 20_001), 400, "the limit is 20000")
        missing = f"/models/{name}/-/versions/99/actions/comment"
        _refused(browser.post(missing, data={"csrf": csrf_of(browser.get(page).text), "body": "hi"}), 404, "version 99")
        for number in ("x", "1e3", "9" * 30, "-1"):
            bad = f"/models/{name}/-/versions/{number}/actions/description"
            _refused(browser.post(bad, data={"csrf": csrf_of(browser.get(page).text), "description": "x"}), 400)
        nowhere = browser.post("/models/nope/-/actions/tag", data={"csrf": csrf_of(browser.get(page).text), "key": "k"})
        _refused(nowhere, 404, "does not exist")
        script = "<script>alert(1)</script> [x](javascript:alert(1))"
        shown = _done(browser, _send(browser, page, "actions/comment", body=script), page)
        assert "<script>alert" not in shown and "&lt;script&gt;alert(1)&lt;/script&gt;" in shown
        assert 'href="javascript' not in shown
    model, version = site.service.get_model(name), site.service.get_version(_ref(name, 2))
    assert ({}, {}, "None", "") == (model.tags, model.aliases, version.stage, version.description)
    assert [script] == [c.body for c in site.service.approvals.list_comments(name, 2)]
    with pytest.raises(LookupError):
        site.service.get_document(_ref(name, 2), "card")


def test_the_card_form_starts_from_the_card_as_written(site: Site) -> None:
    name = _model(site)
    site.service.set_card(name, 2, {"intended_use": "Weekly <offers>", "owners": ["crm", "ds"]})
    with signed_in(site, site.editor) as browser:
        page = browser.get(f"/models/{name}/-/versions/2").text
    assert 'name="intended_use" rows="3">Weekly &lt;offers&gt;</textarea>' in page
    assert 'name="owners" rows="2">crm\nds</textarea>' in page
