"""The audit pages in a real server: the trail with filters and pages, verifying the chain, the export."""

from __future__ import annotations

import html
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import text

from covex.server import create_app
from covex.service import RegistryService, open_service
from covex.settings import Settings
from tests import support
from tests.ui.forms import signed_in


@dataclass(frozen=True)
class Site:
    url: str
    service: RegistryService
    auditor: str  # a member of the group auditors
    stranger: str  # neither an admin nor an auditor


def _open(root: Path) -> Iterator[Site]:
    settings = Settings(uri=str(root), user="admin")
    service = open_service(settings)
    service.access.bootstrap("admin")
    for name in ("audrey", "stranger"):
        service.access.create_user(name)
    service.access.create_group("auditors")
    service.access.add_member("auditors", "audrey")
    auditor = service.access.create_token("audrey").secret
    stranger = service.access.create_token("stranger").secret
    service.create_model("churn")
    service.create_model("fraud")
    service.set_model_tag("churn", "team", "crm")
    with support.server_thread(create_app(service, settings, auth=True), settings) as url:
        yield Site(url, service, auditor, stranger)
    service.close()


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    yield from _open(tmp_path_factory.mktemp("audit"))


@pytest.fixture
def own_site(tmp_path: Path) -> Iterator[Site]:
    """A registry of its own, for a test that tampers with the trail."""
    yield from _open(tmp_path)


def _seqs(page: str) -> list[int]:
    return [int(s) for s in re.findall(r"<tr>\s*<td>(\d+)</td>", page)]


def _actions(page: str) -> set[str]:
    return set(re.findall(r"<td><code>([a-z_.]+)</code></td>\s*<td><code>", page))


def test_who_may_not_read_the_trail_gets_the_403_page(site: Site) -> None:
    with signed_in(site, site.stranger) as browser:
        for url in ("/audit", "/audit/verify", "/audit/export"):
            refused = browser.get(url)
            assert (403, "text/html; charset=utf-8") == (refused.status_code, refused.headers["content-type"])
            assert "auditors" in refused.text


def test_the_trail_is_newest_first_and_filters_narrow_it(site: Site) -> None:
    with signed_in(site, site.stranger) as browser:
        browser.get("/audit")  # a refused read is itself audited
    with signed_in(site, site.auditor) as browser:
        everything = browser.get("/audit")
        assert 200 == everything.status_code
        seqs = _seqs(everything.text)
        assert len(seqs) > 5 and sorted(seqs, reverse=True) == seqs
        assert {"model.create", "model.tag.set"} <= _actions(everything.text)
        created = browser.get("/audit", params={"action": "model.create"}).text
        assert {"model.create"} == _actions(created) and 2 == len(_seqs(created))
        churn = browser.get("/audit", params={"target": "model:churn"}).text
        assert "model:churn" in churn and "model:fraud" not in churn and len(_seqs(churn)) < len(seqs)
        refused = browser.get("/audit", params={"outcome": "refused", "actor": "stranger"}).text
        assert {"audit.list"} <= _actions(refused) <= {
            "audit.list",
            "audit.verify",
            "audit.export",
        } and 'value="stranger"' in refused
        today = datetime.now(UTC).date()
        assert seqs == _seqs(browser.get("/audit", params={"since": today.isoformat()}).text)
        assert seqs == _seqs(browser.get("/audit", params={"until": today.isoformat()}).text)  # inclusive
        past = {"until": (today - timedelta(days=1)).isoformat()}
        assert "No record matches these filters." in browser.get("/audit", params=past).text


def test_the_trail_pages_with_its_token_and_keeps_the_filters(site: Site, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("covex.ui.audit.PAGE_SIZE", 2)
    with signed_in(site, site.auditor) as browser:
        first = browser.get("/audit", params={"target": "model:*"}).text
        following = re.search(r'rel="next" href="([^"]+)"', first)
        assert following is not None and "target=model%3A%2A" in following.group(1)
        second = browser.get(html.unescape(following.group(1))).text
        assert 2 == len(_seqs(first)) and _seqs(second) and max(_seqs(second)) < min(_seqs(first))


@pytest.mark.parametrize(
    ("params", "said"),
    [
        ({"target": "t" * 10_000}, "'target' may hold at most"),
        ({"actor": "a" * 10_000}, "'actor' may hold at most"),
        ({"action": "x" * 10_000}, "'action' may hold at most"),
        ({"since": "yesterday"}, "'since' must be a date"),
        ({"until": "2026-13-45"}, "'until' must be a date"),
        ({"since": "9" * 10_000}, "'since' must be a date"),
        ({"until": "9999-12-31"}, "'until' must be a date between"),
        ({"since": "0001-01-01"}, "'since' must be a date between"),
        ({"since": "2026-02-02", "until": "2026-02-01"}, "'until' must not be before 'since'"),
        ({"outcome": "evil"}, "'outcome' must be one of"),
        ({"page_token": "garbage"}, "'page_token' is not a token"),
        ({"page_token": "g" * 10_000}, "'page_token' is not a token"),
        ({"target": "\x00"}, "target"),
    ],
)
def test_hostile_filters_are_a_400_page(site: Site, params: dict[str, str], said: str) -> None:
    with signed_in(site, site.auditor) as browser:
        answer = browser.get("/audit", params=params)
        assert (400, True) == (answer.status_code, said in html.unescape(answer.text))


def test_the_export_is_a_download_of_every_record(site: Site) -> None:
    with signed_in(site, site.auditor) as browser:
        answer = browser.get("/audit/export")
        assert 200 == answer.status_code and answer.headers["content-type"].startswith("application/x-ndjson")
        assert re.fullmatch(
            r'attachment; filename="covex-audit-\d{8}T\d{6}Z\.jsonl"', answer.headers["content-disposition"]
        )
        lines = [json.loads(line) for line in answer.text.splitlines()]
        records, head = lines[:-1], lines[-1]
        assert [r["seq"] for r in records] == list(range(1, len(records) + 1))
        assert (len(records), len(records)) == (head["head"]["seq"], site.service.audit.verify().records)


def test_verify_says_intact_then_broken_after_tampering(own_site: Site) -> None:
    with signed_in(own_site, own_site.auditor) as browser:
        intact = browser.get("/audit/verify")
        assert 200 == intact.status_code and "✓ Intact." in intact.text and "Broken" not in intact.text
        report = own_site.service.audit.verify()
        assert f"{report.records} records verified" in intact.text
        with own_site.service.engine.begin() as conn:
            conn.execute(text("UPDATE audit_log SET actor = 'mallory' WHERE seq = 3"))
        broken = browser.get("/audit/verify")
        assert 200 == broken.status_code and "✗ Broken" in broken.text and "Intact" not in broken.text
        assert "record 3 was altered" in broken.text and 'role="alert"' in broken.text
