"""The model and version pages with every section filled from real records, their empty states, and downloads."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterator

import httpx
import pytest

from covex.domain.entities import FileEntry, NewVersion
from covex.domain.errors import InvalidInput
from covex.service import RegistryService
from covex.ui.browse import TIMELINE
from tests.ui.forms import Site, running_site, signed_in

MODEL = "team/fraud"
WEIGHTS = bytes(range(256)) * 40
NOTES = "héllo\n".encode()
DIGEST = "sha256:" + "ab" * 32
CARD = {
    "overview": "Scores **card** payments. [click me](javascript:alert(1)) <script>alert('card')</script>",
    "intended_use": "# Review\n\nFlag payments for review.",
}
LINEAGE = {
    "git": {"commit": "0123456789abcdef0123456789abcdef01234567", "branch": "main", "dirty": True},
    "datasets": [
        {"name": "payments", "role": "training", "uri": "s3://data/payments", "rows": 1200, "digest": "f" * 64}
    ],
    "parent": f"models:/{MODEL}/1",
    "run_id": "run-42",
}
SIGNATURE = {
    "inputs": [{"name": "amount", "type": "double"}, {"name": "country", "type": "string"}],
    "outputs": [{"name": "score", "type": "double"}],
}


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _check(status: str, share: float, auc: float) -> dict[str, object]:
    return {
        "share_drifted": share,
        "drifted": ["amount"] if status == "DRIFT" else [],
        "degraded": [],
        "features": {
            "amount": {
                "kind": "numeric",
                "method": "psi",
                "value": 0.4,
                "warn": 0.1,
                "drift": 0.25,
                "verdict": "drift",
                "plot": {
                    "edges": [10.0, 100.0],
                    "low": 0.0,
                    "high": 900.0,
                    "reference": [0.5, 0.4, 0.1],
                    "current": [0.2, 0.3, 0.5],
                },
            },
            "country": {
                "kind": "categorical",
                "method": "psi",
                "value": 0.02,
                "warn": 0.1,
                "drift": 0.25,
                "verdict": "ok",
            },
        },
        "performance": {"labelled": 300, "metrics": {"roc_auc": {"value": auc, "registered": 0.9, "degraded": False}}},
        "findings": [{"column": "amount", "kind": "shift", "message": "amount <b>moved</b>"}],
    }


def _seed(service: RegistryService) -> None:
    service.create_model(MODEL, description="Fraud *scores*.", tags={"owner": "<script>alert('tag')</script>"})
    files = [
        FileEntry(path="model.bin", digest=_sha(WEIGHTS), size=len(WEIGHTS)),
        FileEntry(path="docs/notes é.txt", digest=_sha(NOTES), size=len(NOTES)),
    ]
    for data in (WEIGHTS, NOTES):
        service.put_blob(_sha(data), len(data), [data])
    service.create_version(MODEL, NewVersion(files=files, metrics={"auc": 0.9}))
    service.finalize_version(MODEL, 1)
    documents = {"card": CARD, "lineage": LINEAGE, "signature": SIGNATURE}
    service.create_version(MODEL, NewVersion(source="s3://b/fraud", metrics={"auc": 0.93}, documents=documents))
    service.transition_stage(MODEL, 2, "Test", comment="ready for <b>tests</b>")
    service.set_alias(MODEL, "champion", 2)
    service.approvals.set_policy("stage", "Production", {"approvals": 2, "gates": ["metrics.auc >= 0.8"]})
    service.approvals.set_policy("stage", "Production", {"approvals": 1, "from": ["Test"]}, model="team/*")
    service.start_deployment(MODEL, 2, "serving", "http://scoring.internal:8080")
    service.start_deployment(MODEL, 1, "batch", "s3://out/scores", status="RUNNING")
    for status, share, auc in (("OK", 0.0, 0.91), ("DRIFT", 0.5, 0.84)):
        service.monitoring.record_result(
            MODEL, 2, status=status, source="inference log", rows=500, body=_check(status, share, auc)
        )
    service.record_evaluation(
        MODEL,
        2,
        kind="offline",
        key="cmp-1",
        data_digest=DIGEST,
        source="holdout.parquet",
        rows=1000,
        body={
            "metrics": {"roc_auc": {"value": 0.93, "low": 0.91, "high": 0.95}},
            "compared_with": [f"models:/{MODEL}/1", f"models:/{MODEL}/2"],
        },
    )
    service.record_evaluation(
        MODEL,
        2,
        kind="explanation",
        key="exp-1",
        data_digest=DIGEST,
        source="holdout.parquet",
        rows=200,
        body={
            "explainer": "tree",
            "output": "score",
            "importances": [{"feature": "amount", "mean_abs": 0.31}, {"feature": "country", "mean_abs": 0.07}],
        },
    )
    service.create_model("empty/model")


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    with running_site(tmp_path_factory.mktemp("browse"), _seed) as running:
        yield running


@pytest.fixture(scope="module")
def reader(site: Site) -> str:
    site.service.access.create_user("reader")
    site.service.access.grant("user:reader", "reader", model=MODEL)
    return site.service.access.create_token("reader").secret


def _section(page: str, anchor: str) -> str:
    """The HTML from the heading with id ``anchor`` to the next h2."""
    found = re.search(rf'<h2 id="{anchor}">(.*?)(?=<h2|</main>)', page, re.S)
    assert found is not None, anchor
    return found.group(1)


def test_the_model_page_shows_its_timeline_policies_and_deployments(site: Site) -> None:
    with signed_in(site, site.admin) as browser:
        page = browser.get(f"/models/{MODEL}")
    assert 200 == page.status_code
    assert "Fraud <em>scores</em>." in page.text  # the description is Markdown
    assert "&lt;script&gt;alert(&#39;tag&#39;)&lt;/script&gt;" in page.text and "<script>alert" not in page.text
    timeline = _section(page.text, "timeline")
    assert timeline.index("@champion") < timeline.index("moved from")  # newest first
    assert "ready for &lt;b&gt;tests&lt;/b&gt;" in timeline
    policies = _section(page.text, "policies")
    assert "pattern &#39;team/*&#39; policy" in policies and "entered only from Test" in policies
    assert "global:" in policies  # the global policy it passed over, and why
    assert "no policy covers this model" in policies  # stages without one
    deployments = _section(page.text, "deployments")
    assert "http://scoring.internal:8080" in deployments and "s3://out/scores" in deployments
    assert "STARTING" in deployments and "RUNNING" in deployments


def test_a_model_without_records_says_so(site: Site) -> None:
    with signed_in(site, site.admin) as browser:
        page = browser.get("/models/empty/model").text
    for empty in ("No versions yet.", "No stage or alias moves yet.", "No deployments yet"):
        assert empty in page


def test_the_version_page_shows_card_signature_lineage_and_records(site: Site) -> None:
    with signed_in(site, site.admin) as browser:
        page = browser.get(f"/models/{MODEL}/-/versions/2")
    assert 200 == page.status_code
    card = _section(page.text, "card")
    assert "<strong>card</strong>" in card and "Flag payments for review." in card
    assert not re.search(r"href=\"\s*javascript:", page.text, re.I) and "<script>alert" not in page.text
    assert "[click me](javascript:alert(1))" in card  # shown as text, not a link
    assert "&lt;script&gt;alert('card')&lt;/script&gt;" in card
    # The author's headings and the whole card's sit below the page's own.
    assert "<h3>Overview</h3>" in card and "<h4>Review</h4>" in card and "<h1>" not in card
    assert "<th>Fact</th>" in card and "&lt;th&gt;" not in card
    signature = _section(page.text, "signature")
    assert "<code>amount</code>" in signature and "<code>score</code>" in signature and "string" in signature
    lineage = _section(page.text, "lineage")
    assert LINEAGE["git"]["commit"] in lineage and "uncommitted changes" in lineage  # type: ignore[index]
    assert "f" * 64 in lineage and "1200" in lineage and "run-42" in lineage
    assert f'href="/models/{MODEL}/-/versions/1"' in lineage  # the parent, as a link
    assert "http://scoring.internal:8080" in _section(page.text, "deployments")
    monitoring = _section(page.text, "monitoring")
    assert "DRIFT" in monitoring and "amount &lt;b&gt;moved&lt;/b&gt;" in monitoring
    assert 'aria-labelledby="drift-share-title"' in monitoring and '<title id="drift-share-title">' in monitoring
    assert "Data table: roc_auc per check" in monitoring and "0.84" in monitoring
    assert '<rect class="bar drift"' in monitoring  # the latest check's drifting feature
    assert "amount: share of rows per value, reference and latest check" in monitoring
    assert "100 to 900, current: 50.0%" in monitoring
    assert '<th scope="row">0 to 10</th><td>50.0%</td>' in monitoring
    evaluations = _section(page.text, "evaluations")
    assert "roc_auc 0.93 [0.91, 0.95]" in evaluations and "holdout.parquet" in evaluations
    assert "/compare?v=models%3A/team/fraud/1&amp;v=models%3A/team/fraud/2" in evaluations
    explanation = _section(page.text, "explanation")
    assert '<title id="importance-title">' in explanation and "amount: 0.31" in explanation


def test_a_version_without_records_says_so(site: Site) -> None:
    with signed_in(site, site.admin) as browser:
        page = browser.get(f"/models/{MODEL}/-/versions/1").text
    for empty in (
        "No card written yet",
        "No signature recorded",
        "No lineage recorded",
        "No monitoring checks yet",
        "No evaluations yet",
        "No explanation yet",
    ):
        assert empty in page
    assert "s3://out/scores" in _section(page, "deployments")


def test_a_file_downloads_with_its_exact_bytes(site: Site, reader: str) -> None:
    with signed_in(site, reader) as browser:
        page = browser.get(f"/models/{MODEL}/-/versions/1")
        links = re.findall(r'href="(/models/[^"]+/files/[^"]+)"', page.text)
        assert [
            f"/models/{MODEL}/-/versions/1/files/docs/notes%20%C3%A9.txt",
            f"/models/{MODEL}/-/versions/1/files/model.bin",
        ] == links
        weights = browser.get(links[1])
        assert (200, WEIGHTS) == (weights.status_code, weights.content)
        assert "application/octet-stream" == weights.headers["content-type"]
        assert 'attachment; filename="model.bin"' in weights.headers["content-disposition"]
        assert "nosniff" == weights.headers["x-content-type-options"]
        notes = browser.get(links[0])
        assert NOTES == notes.content
        assert "filename=\"notes__.txt\"; filename*=UTF-8''notes%20%C3%A9.txt" in notes.headers["content-disposition"]


def test_a_download_is_refused_without_rights_or_outside_the_version(site: Site) -> None:
    with signed_in(site, site.stranger) as browser:
        refused = browser.get(f"/models/{MODEL}/-/versions/1/files/model.bin")
        assert 403 == refused.status_code and "text/html" in refused.headers["content-type"]
        assert WEIGHTS[:64] not in refused.content
    with signed_in(site, site.admin) as browser:
        assert 404 == browser.get(f"/models/{MODEL}/-/versions/1/files/nope.bin").status_code
        assert 404 == browser.get(f"/models/{MODEL}/-/versions/9/files/model.bin").status_code
        dotted = httpx.URL(f"{site.url}/models/{MODEL}/-/versions/1/files/docs/%2E%2E/%2E%2E/model.bin")
        assert 400 == browser.get(dotted).status_code  # the request guard refuses dot segments first
        hidden = browser.get(httpx.URL(f"{site.url}/models/{MODEL}/-/versions/1/files/docs%2F..%2F..%2Fmodel.bin"))
        assert 400 == hidden.status_code and WEIGHTS[:64] not in hidden.content
        for odd in ("a%5C..%5Cmodel.bin", "%2Fmodel.bin"):  # past the guard: the page refuses them itself
            climbed = browser.get(httpx.URL(f"{site.url}/models/{MODEL}/-/versions/1/files/{odd}"))
            assert (400, "text/html; charset=utf-8") == (climbed.status_code, climbed.headers["content-type"])
            assert "Invalid path" in climbed.text and WEIGHTS[:64] not in climbed.content


def test_a_pending_version_does_not_serve_files_its_lister_never_proved_it_holds(site: Site, reader: str) -> None:
    secret = b"uploaded for a version still pending"
    site.service.put_blob(_sha(secret), len(secret), [secret])
    listed = [FileEntry(path="secret.bin", digest=_sha(secret), size=len(secret))]
    pending = site.service.create_version(MODEL, NewVersion(files=listed))
    assert "PENDING" == pending.status
    with signed_in(site, reader) as browser:
        page = browser.get(f"/models/{MODEL}/-/versions/{pending.version}").text
        assert "/files/secret.bin" not in page and "after upload" in page
        refused = browser.get(f"/models/{MODEL}/-/versions/{pending.version}/files/secret.bin")
        assert 403 == refused.status_code and secret not in refused.content


def test_the_version_page_stays_fast_with_many_checks(site: Site) -> None:
    for i in range(60):
        site.service.monitoring.record_result(MODEL, 1, status="OK", source=f"batch {i}", rows=10, body={})
    with signed_in(site, site.admin) as browser:
        page = browser.get(f"/models/{MODEL}/-/versions/1").text
    monitoring = _section(page, "monitoring")
    assert 50 == monitoring.count('<td><span class="status ok">')
    assert "The latest 50 checks" in monitoring


def test_recent_history_is_the_newest_moves_first_and_their_count(site: Site) -> None:
    site.service.create_model("team/moves")
    site.service.create_version("team/moves", NewVersion(source="s3://b/m"))
    for stage in ("Dev", "Test", "Dev"):
        site.service.transition_stage("team/moves", 1, stage)
    events, total = site.service.recent_history("team/moves", 2)
    assert (3, ["Dev", "Test"]) == (total, [e.after for e in events])
    assert [e.after for e in site.service.history("team/moves")][::-1][:2] == [e.after for e in events]
    with pytest.raises(InvalidInput):
        site.service.recent_history("team/moves", 0)


def test_the_timeline_is_capped_with_a_note(site: Site) -> None:
    site.service.create_model("team/busy")
    site.service.create_version("team/busy", NewVersion(source="s3://b/m"))
    for i in range(TIMELINE + 1):
        site.service.transition_stage("team/busy", 1, ("Dev", "Test")[i % 2])
    with signed_in(site, site.admin) as browser:
        timeline = _section(browser.get("/models/team/busy").text, "timeline")
    assert TIMELINE == timeline.count("<li>")
    assert f"The latest {TIMELINE} of {TIMELINE + 1} moves" in timeline


def test_a_file_whose_stored_bytes_changed_is_cut_short(site: Site) -> None:
    data = b"weights that will rot on disk " * 100
    site.service.create_model("team/rot")
    site.service.put_blob(_sha(data), len(data), [data])
    files = [FileEntry(path="model.bin", digest=_sha(data), size=len(data))]
    site.service.create_version("team/rot", NewVersion(files=files))
    site.service.finalize_version("team/rot", 1)
    stored = site.service.blob_local_path(_sha(data))
    assert stored is not None
    with open(stored, "r+b") as f:
        f.write(b"X")  # same size, other content
    with signed_in(site, site.admin) as browser, pytest.raises(httpx.RemoteProtocolError):
        browser.get("/models/team/rot/-/versions/1/files/model.bin")
