"""Searches reuse the statement built for the same filter and order, and nothing else carries over."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

import covex
from covex.domain.entities import NewVersion
from covex.domain.errors import InvalidInput
from covex.service import RegistryService, open_service
from covex.service.models import _model_search
from covex.service.versions import _version_search


@pytest.fixture
def service(tmp_path: Path) -> Iterator[RegistryService]:
    svc = open_service(covex.Settings(uri=str(tmp_path / "data"), user="tester"))
    for i in range(5):
        svc.create_model(f"net-{i}", tags={"i": str(i)})
        svc.create_version(f"net-{i}", NewVersion(source="s3://b/x", metrics={"auc": i / 5}))
    yield svc
    svc.close()


def test_a_repeated_search_reuses_its_statement_and_answers_the_same(service: RegistryService) -> None:
    _model_search.cache_clear()
    wanted = "tags.i IN ('2', '3', '4', '9')"
    first = service.search_models(wanted, ["name DESC"], max_results=2)
    second = service.search_models(wanted, ("name DESC",), max_results=2, page_token=first.next_page_token)
    assert _model_search.cache_info().hits == 1
    assert [m.name for m in first.items] + [m.name for m in second.items] == ["net-4", "net-3", "net-2"]
    # A change between two searches shows in the second: only the statement is kept, never rows.
    service.create_model("net-9", tags={"i": "9"})
    assert service.search_models(wanted, ["name DESC"]).items[0].name == "net-9"


def test_one_models_versions_default_to_newest_first(service: RegistryService) -> None:
    _version_search.cache_clear()
    for _ in range(2):
        service.create_version("net-1", NewVersion(source="s3://b/y"))
    assert [v.version for v in service.search_versions(model="net-1").items] == [3, 2, 1]
    assert [v.version for v in service.search_versions(None, ["version ASC"], model="net-1").items] == [1, 2, 3]
    assert [v.name for v in service.search_versions("metrics.auc > 0.5", ["metrics.auc DESC"]).items] == [
        "net-4",
        "net-3",
    ]


@pytest.mark.parametrize(
    ("filter", "order_by", "message"),
    [
        (["name = 'x'"], None, "filter"),
        ("name = 'x'", "name", "order"),
        ("name = 'x'", [3], "order"),
        ("name ==== 'x'", None, "filter"),
    ],
)
def test_bad_input_is_refused_as_before(service: RegistryService, filter, order_by, message: str) -> None:
    for _ in range(2):  # and a refused search is never cached
        with pytest.raises(InvalidInput, match=message):
            service.search_models(filter, order_by)
        with pytest.raises(InvalidInput, match=message):
            service.search_versions(filter, order_by)
