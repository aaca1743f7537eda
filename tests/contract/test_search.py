"""Search filters, ordering and pagination over models and versions."""

from __future__ import annotations

import pytest

import covex


@pytest.fixture
def populated(client: covex.Client, tree) -> covex.Client:
    client.create_model("churn", tags={"team": "crm"})
    client.create_model("churn-eu", tags={"team": "crm", "region": "eu"})
    client.create_model("fraud", tags={"team": "risk"})
    src = tree()
    for auc in (0.85, 0.92, 0.95):
        client.create_version("churn", src, metrics={"auc": auc}, tags={"algo": "gbm"})
    client.create_version("churn-eu", src, metrics={"auc": 0.91, "f1": 0.5}, params={"C": "0.1"})
    client.create_version("fraud", src, metrics={"auc": 0.70})
    client.set_alias("churn", "champion", 2)
    client.transition_stage("churn", 3, "Production")
    return client


def names(page) -> list[str]:
    return [m.name for m in page]


def versions(page) -> list[tuple[str, int]]:
    return [(v.name, v.version) for v in page]


@pytest.mark.parametrize(
    ("flt", "expected"),
    [
        ("name = 'churn'", ["churn"]),
        ("name LIKE 'churn%'", ["churn", "churn-eu"]),
        ("name LIKE 'CHURN%'", []),
        ("name ILIKE 'CHURN%'", ["churn", "churn-eu"]),
        ("name != 'churn'", ["churn-eu", "fraud"]),
        ("tags.team = 'crm'", ["churn", "churn-eu"]),
        ("tags.team IN ('risk', 'ops')", ["fraud"]),
        ("tags.team = 'crm' AND tags.region = 'eu'", ["churn-eu"]),
        ("tags.region = 'eu' OR name = 'fraud'", ["churn-eu", "fraud"]),
        ("(name = 'fraud' OR name = 'churn') AND tags.team = 'crm'", ["churn"]),
        ("alias = 'champion'", ["churn"]),
        ("name NOT IN ('churn', 'fraud')", ["churn-eu"]),
        ("", ["churn", "churn-eu", "fraud"]),
    ],
)
def test_search_models(populated: covex.Client, flt: str, expected: list[str]) -> None:
    assert expected == names(populated.search_models(flt))


@pytest.mark.parametrize(
    ("flt", "expected"),
    [
        ("name = 'churn' AND metrics.auc > 0.9", [("churn", 3), ("churn", 2)]),
        ("metrics.auc >= 0.91", [("churn", 3), ("churn", 2), ("churn-eu", 1)]),
        ("metrics.auc < 0.8", [("fraud", 1)]),
        ("metrics.f1 = 0.5", [("churn-eu", 1)]),
        ("stage = 'Production'", [("churn", 3)]),
        ("alias = 'champion'", [("churn", 2)]),
        ("alias != 'champion' AND name = 'churn'", [("churn", 3), ("churn", 1)]),
        ("version = 2", [("churn", 2)]),
        ("version IN (1, 3) AND name = 'churn'", [("churn", 3), ("churn", 1)]),
        ("params.C = '0.1'", [("churn-eu", 1)]),
        ("tags.algo = 'gbm' AND version <= 1", [("churn", 1)]),
        ("status = 'READY' AND name ILIKE 'fr%'", [("fraud", 1)]),
    ],
)
def test_search_versions(populated: covex.Client, flt: str, expected) -> None:
    assert expected == versions(populated.search_versions(flt))


def test_order_by_metric_and_name(populated: covex.Client) -> None:
    page = populated.search_versions("metrics.auc > 0", order_by=["metrics.auc DESC"])
    assert [0.95, 0.92, 0.91, 0.85, 0.70] == [v.metrics["auc"] for v in page]
    page = populated.search_versions(order_by=["name DESC", "version ASC"])
    assert [("fraud", 1), ("churn-eu", 1), ("churn", 1), ("churn", 2), ("churn", 3)] == versions(page)
    assert ["fraud", "churn-eu", "churn"] == names(populated.search_models(order_by=["name DESC"]))
    newest = populated.search_models(order_by=["creation_timestamp DESC"])
    assert "fraud" == newest[0].name


def test_version_pages(populated: covex.Client) -> None:
    seen, token = [], None
    while True:
        page = populated.search_versions(order_by=["metrics.auc ASC"], max_results=2, page_token=token)
        seen += versions(page)
        token = page.next_page_token
        if not token:
            break
    assert 5 == len(seen) == len(set(seen))


@pytest.mark.parametrize(
    ("flt", "says"),
    [
        ("name = ", "at the end"),
        ("name == 'x'", "position 6"),
        ("nmae = 'x'", "unknown field 'nmae'"),
        ("metrics.auc > 'high'", "compares with numbers"),
        ("name > 'a'", "supports =, !=, IN and LIKE"),
        ("name = 'x' AND", "at the end"),
        ("name = 'x' name = 'y'", "expected AND, OR"),
        ("(name = 'x'", "expected ')'"),
        ("tags = 'x'", "needs a key"),
        ("name = 'unterminated", "unexpected character"),
        ("metrics.auc LIKE 'x'", "applies to text fields"),
        ("name IN 'x'", "expected '('"),
    ],
)
def test_malformed_filters_say_what_and_where(populated: covex.Client, flt: str, says: str) -> None:
    with pytest.raises(covex.InvalidInput, match="invalid filter") as info:
        populated.search_versions(flt)
    assert says in info.value.message


def test_bad_order_by(populated: covex.Client) -> None:
    with pytest.raises(covex.InvalidInput, match="order_by"):
        populated.search_versions(order_by=["stage DESC"])
    with pytest.raises(covex.InvalidInput, match="order_by"):
        populated.search_models(order_by=["name SIDEWAYS"])


def test_injection_is_just_a_value(populated: covex.Client) -> None:
    assert [] == names(populated.search_models("name = 'x'' OR ''1''=''1'"))
    assert [] == names(populated.search_models("tags.`team'; DROP TABLE models; --` = 'x'"))
    assert 3 == len(populated.search_models())


def test_unknown_order_by_field_lists_what_sorts(populated: covex.Client) -> None:
    with pytest.raises(covex.InvalidInput, match="order_by") as info:
        populated.search_versions(order_by=["auc DESC"])
    assert "known: creation_timestamp, last_updated_timestamp, metrics, name, version" in info.value.message
    assert "metrics.<name>" in info.value.message
