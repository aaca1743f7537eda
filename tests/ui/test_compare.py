"""The compare page: 2 to 4 versions side by side, what differs marked, the stored evaluations, refusals."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest

from covex.domain.entities import NewVersion
from covex.service import RegistryService
from tests.ui.forms import Site, running_site, signed_in

DIGEST = "sha256:" + "cd" * 32
# Version 3 changes C, the type of its input column and its commit; version 4 is the worst on both metrics.
VERSIONS = (
    (0.81, 0.40, "1", "long"),
    (0.86, 0.35, "1", "long"),
    (0.84, 0.30, "10", "double"),
    (0.79, 0.50, "1", "long"),
)


def _seed(service: RegistryService) -> None:
    service.create_model("churn")
    for auc, loss, c, kind in VERSIONS:
        documents = {
            "signature": {"inputs": [{"name": "age", "type": kind}]},
            "lineage": {
                "git": {"commit": ("b" if c == "10" else "a") * 40},
                "datasets": [{"name": "train", "digest": "e" * 64}],
            },
        }
        metrics = {"auc": auc, "log_loss": loss}
        new = NewVersion(source="s3://b/m", metrics=metrics, params={"C": c, "seed": "7"}, documents=documents)
        service.create_version("churn", new)
    service.set_alias("churn", "champion", 2)
    baseline = {"metrics": {"roc_auc": {"value": 0.81, "low": 0.78, "high": 0.84}}}
    challenger = {
        "metrics": {"roc_auc": {"value": 0.86, "low": 0.83, "high": 0.89}},
        "against_baseline": {"roc_auc": {"difference": 0.05, "p_value": 0.01, "verdict": "better"}},
    }
    for version, body in ((1, baseline), (2, challenger)):
        service.record_evaluation(
            "churn",
            version,
            kind="offline",
            key=f"k{version}",
            data_digest=DIGEST,
            source="holdout.csv",
            rows=900,
            body=body,
        )
    service.create_model("other")
    service.create_version("other", NewVersion(source="s3://b/o", params={"C": "<script>x</script>"}))


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    with running_site(tmp_path_factory.mktemp("compare"), _seed) as running:
        yield running


def _row(page: str, name: str) -> str:
    found = re.search(rf"<tr[^>]*><th scope=\"row\"><code>{re.escape(name)}</code>.*?</tr>", page, re.S)
    assert found is not None, name
    return found.group(0)


def test_without_versions_the_page_explains_and_offers_the_form(site: Site) -> None:
    with signed_in(site, site.admin) as browser:
        page = browser.get("/compare")
    assert 200 == page.status_code
    assert 'name="model"' in page.text and 'name="versions"' in page.text and 'name="v"' in page.text
    assert "Name 2 to 4 versions" in page.text and 'role="alert"' not in page.text


def test_two_versions_side_by_side_with_the_best_marked(site: Site) -> None:
    with signed_in(site, site.admin) as browser:
        page = browser.get("/compare", params={"model": "churn", "versions": "1, 2"})
    assert 200 == page.status_code
    auc, loss = _row(page.text, "auc"), _row(page.text, "log_loss")
    assert re.search(r"<strong>0\.86</strong> <span class=\"badge best\">best</span>", auc)
    assert "higher is better" in auc and "lower is better" in loss
    assert re.search(r"<strong>0\.35</strong> <span class=\"badge best\">best</span>", loss)  # lower wins here
    assert "differs" not in _row(page.text, "C")
    evaluated = page.text[page.text.index("<h2>Evaluations</h2>") :]
    assert "holdout.csv" in evaluated and '0.81 <span class="muted">[0.78, 0.84]</span>' in evaluated
    assert "+0.05 vs baseline, p=0.01 <strong>(better)</strong>" in evaluated
    assert "v=models%3A/churn/1&amp;v=models%3A/churn/2" in page.text  # a link that names the versions


def test_four_versions_mark_what_differs(site: Site) -> None:
    uris = [f"models:/churn/{n}" for n in (1, 2)] + ["models:/churn@champion", "models:/churn/4"]
    with signed_in(site, site.admin) as browser:
        refused = browser.get("/compare", params={"v": uris})
        assert 400 == refused.status_code and "named twice" in refused.text  # @champion is version 2
        uris[2] = "models:/churn/3"
        page = browser.get("/compare", params={"v": uris})
    assert 200 == page.status_code
    heads = re.search(r"<h2>Versions</h2>\s*<table>\s*<thead>(.*?)</thead>", page.text, re.S)
    assert heads is not None and 4 == heads.group(1).count('<th scope="col"><a href=')
    assert 'class="differs"' in _row(page.text, "C") and "(differs)" in _row(page.text, "C")
    assert 'class="differs"' not in _row(page.text, "seed")
    assert 'class="differs"' in _row(page.text, "age") and "double" in _row(page.text, "age")
    assert 'class="differs"' in _row(page.text, "git commit")
    assert 'class="differs"' not in _row(page.text, "dataset train")
    assert "not on this data" in page.text  # versions 3 and 4 were not evaluated on the holdout


def test_one_or_five_versions_or_an_unknown_one_are_refused_with_the_form(site: Site) -> None:
    with signed_in(site, site.admin) as browser:
        for params in (
            {"model": "churn", "versions": "1"},
            {"v": [f"models:/churn/{n}" for n in (1, 2, 3, 4)] + ["models:/other/1"]},
            {"model": "churn", "versions": "1, 9"},
            {"versions": "1, 2"},
            {"model": "churn", "versions": "1, x"},
        ):
            page = browser.get("/compare", params=params)
            assert 400 == page.status_code, params
            assert 'role="alert"' in page.text and 'name="model"' in page.text
        assert "5 were named" in browser.get("/compare", params={"model": "churn", "versions": "1 2 3 4 1"}).text
        assert "1 was named" in browser.get("/compare", params={"v": "models:/churn/1"}).text
        assert "does not exist" in browser.get("/compare", params={"model": "churn", "versions": "1, 9"}).text


def test_an_alias_names_a_version_and_the_version_page_links_here(site: Site) -> None:
    with signed_in(site, site.admin) as browser:
        page = browser.get("/compare", params={"model": "churn", "versions": "1, @champion"})
        assert 200 == page.status_code and "v=models%3A/churn/1&amp;v=models%3A/churn/2" in page.text
        version = browser.get("/models/churn/-/versions/3").text
        link = re.search(r'href="(/compare\?[^"]+)">Compare with version 2<', version)
        assert link is not None
        linked = browser.get(link.group(1).replace("&amp;", "&"))
        assert 200 == linked.status_code and "churn 3</a>" in linked.text and "churn 2</a>" in linked.text


def test_a_stage_names_its_latest_version(site: Site) -> None:
    site.service.transition_stage("churn", 3, "Production")
    with signed_in(site, site.admin) as browser:
        page = browser.get("/compare", params={"model": "churn", "versions": "1, Production"})
        assert 200 == page.status_code and "churn 3</a>" in page.text
        refused = browser.get("/compare", params={"model": "churn", "versions": "1, \u0663"})  # an Arabic-Indic 3
        assert 400 == refused.status_code
    site.service.transition_stage("churn", 3, "None")


def test_versions_of_two_models_and_hostile_values(site: Site) -> None:
    with signed_in(site, site.admin) as browser:
        page = browser.get("/compare", params={"v": ["models:/churn/1", "models:/other/1"]})
    assert 200 == page.status_code
    assert "&lt;script&gt;x&lt;/script&gt;" in page.text and "<script>x" not in page.text


def test_a_viewer_without_rights_is_refused(site: Site) -> None:
    with signed_in(site, site.stranger) as browser:
        page = browser.get("/compare", params={"model": "churn", "versions": "1, 2"})
    assert 403 == page.status_code and "0.86" not in page.text
