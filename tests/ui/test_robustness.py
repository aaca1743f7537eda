"""Pages over whatever is stored: evaluation bodies are checked when recorded, pages read older or odd ones
without failing, and an unexpected failure on a UI path is an HTML page without internals."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import update

from covex.domain.entities import NewVersion
from covex.domain.errors import InvalidInput
from covex.service import RegistryService
from covex.store.schema import evaluations
from tests.ui.forms import Site, running_site, signed_in

DIGEST = "sha256:" + "cd" * 32
GOOD = {"metrics": {"auc": {"value": 0.8, "low": 0.78, "high": 0.82}}}


def _seed(service: RegistryService) -> None:
    service.create_model("odd")
    for _ in range(2):
        service.create_version("odd", NewVersion(source="s3://b/m", metrics={"auc": 0.8}))


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    with running_site(tmp_path_factory.mktemp("robust"), _seed) as running:
        yield running


def _record(service: RegistryService, version: int, body: Any, kind: str = "offline", key: str = "k") -> Any:
    return service.record_evaluation(
        "odd", version, kind=kind, key=key, data_digest=DIGEST, source="holdout.csv", rows=10, body=body
    )


@pytest.mark.parametrize(
    ("body", "said"),
    [
        ({"metrics": ["auc"]}, "'body.metrics' must be an object"),
        ({"metrics": "auc"}, "'body.metrics' must be an object"),
        ({"metrics": {"auc": 0.8}}, "'body.metrics.auc' must be an object"),
        ({"metrics": {"auc": {"value": "high"}}}, "'body.metrics.auc.value' must be a number or null"),
        ({"metrics": {"auc": {"value": True}}}, "'body.metrics.auc.value' must be a number or null"),
        ({"against_baseline": "x"}, "'body.against_baseline' must be an object"),
        ({"against_baseline": {"auc": {"difference": 0.1, "p_value": "x"}}}, "'body.against_baseline.auc.p_value'"),
        ({"against_baseline": {"auc": {"difference": 0.1, "verdict": 3}}}, "'body.against_baseline.auc.verdict'"),
        ({"importances": {"a": 1}}, "'body.importances' must be a list"),
        ({"importances": [{"feature": 1, "mean_abs": 0.3}]}, r"'body.importances\[0\]'"),
        ({"importances": [{"feature": "a", "mean_abs": -5}]}, r"'body.importances\[0\]' must be .* a number from 0"),
        (["not", "an", "object"], "'body' must be a JSON object"),
    ],
)
def test_an_evaluation_body_of_the_wrong_shape_is_refused(site: Site, body: Any, said: str) -> None:
    before = len(site.service.list_evaluations("odd"))
    with pytest.raises(InvalidInput, match=said):
        _record(site.service, 1, body)
    assert before == len(site.service.list_evaluations("odd"))


def test_documented_shapes_with_nulls_are_kept(site: Site) -> None:
    body = {"metrics": {"auc": {"value": None, "low": None, "high": None}}, "against_baseline": {}, "extra": [1]}
    assert body == _record(site.service, 1, body, key="nulls").body


def test_pages_read_bodies_stored_before_they_were_checked(site: Site) -> None:
    """An evaluation written by an older release (or straight into the database) with odd sections."""
    for version in (1, 2):
        _record(site.service, version, GOOD, key="old")
    odd = {"metrics": ["auc"], "against_baseline": {"auc": {"difference": -0.1}}, "importances": "x"}
    with site.service.engine.begin() as conn:
        conn.execute(update(evaluations).where(evaluations.c.key == "old").values(body=json.dumps(odd)))
    _record(site.service, 2, {"importances": [{"feature": "a", "mean_abs": 0.2}]}, kind="explanation", key="e")
    with signed_in(site, site.admin) as browser:
        for path in ("/models/odd/-/versions/1", "/models/odd/-/versions/2", "/compare?model=odd&versions=1,2"):
            answer = browser.get(path)
            assert (200, "text/html; charset=utf-8") == (answer.status_code, answer.headers["content-type"]), path


def test_an_unexpected_failure_on_a_page_is_an_html_page_without_internals(
    site: Site, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("secret internals")

    monkeypatch.setattr("covex.service.models.ModelService.role_on", broken)
    with signed_in(site, site.admin) as browser:
        answer = browser.get("/models/odd")
    assert (500, "text/html; charset=utf-8") == (answer.status_code, answer.headers["content-type"])
    assert "internal error" in answer.text and "secret internals" not in answer.text
    assert "Traceback" not in answer.text
