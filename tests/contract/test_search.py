"""Search filters, ordering and pagination over models and versions."""

from __future__ import annotations

import base64
import json
import time

import pytest
from hypothesis import HealthCheck, given, settings

import covex
from covex.domain.filters import (
    MAX_COMPARISONS,
    MAX_FILTER_LENGTH,
    MAX_IN_VALUES,
    MAX_NESTING,
    MAX_ORDER_BY,
    MAX_ORDER_BY_LENGTH,
)
from covex.domain.names import MAX_KEY_LENGTH
from tests.domain.test_filters import FILTER_TEXT


@pytest.fixture
def populated(client: covex.Client, tree) -> covex.Client:
    client.create_model("churn", tags={"team": "crm"})
    client.create_model("churn-eu", tags={"team": "crm", "region": "eu"})
    # Timestamps are in milliseconds: let the clock move on so that "fraud" is the newest model.
    before = client.get_model("churn-eu").creation_timestamp
    deadline = time.monotonic() + 5
    while time.time() * 1000 <= before + 1 and time.monotonic() < deadline:
        time.sleep(0.001)
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
        ("stage = 'production'", [("churn", 3)]),  # stage names match case-insensitively, as everywhere
        ("stage IN ('PRODUCTION', 'test')", [("churn", 3)]),
        ("stage != 'production' AND name = 'churn'", [("churn", 2), ("churn", 1)]),
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


# -- hostile input: each is a 400 INVALID_PARAMETER_VALUE on every backend, never a 500 ------------------


def _ors(terms: list[str]) -> str:
    return " OR ".join(terms)


@pytest.mark.parametrize(
    ("flt", "says"),
    [
        pytest.param("(" * 500 + "name = 'a'" + ")" * 500, f"nest more than {MAX_NESTING} deep", id="deep"),
        # The fuzzer's: 1,000 terms, past SQLite's expression-depth limit, and too long besides.
        pytest.param(_ors(["name = 'a'"] * 1000), f"the limit is {MAX_FILTER_LENGTH}", id="wide"),
        pytest.param(_ors(["name = 'a'"] * 700), f"more than {MAX_COMPARISONS} comparisons", id="wide-short"),
        pytest.param(
            _ors(["tags.t = 'a'"] * (MAX_COMPARISONS + 1)), f"more than {MAX_COMPARISONS} comparisons", id="wide-tags"
        ),
        pytest.param(
            f"version IN ({','.join(['1'] * (MAX_IN_VALUES + 1))})", f"more than {MAX_IN_VALUES} values", id="in-list"
        ),
        pytest.param("name LIKE '" + "%a" * 5000 + "'", f"the limit is {MAX_FILTER_LENGTH}", id="long-text"),
        pytest.param("version = 99999999999999999999999", "is out of range", id="int-overflow"),
        pytest.param("version = 9223372036854775808", "is out of range", id="int64-max-plus-1"),
        pytest.param("metrics.auc < 99999999999999999999999", "is out of range", id="int-overflow-metric"),
        pytest.param("version = " + "1" * 5000, "is out of range", id="int-5000-digits"),
        pytest.param("metrics.auc > 1e400", "is out of range", id="float-overflow"),
        pytest.param("metrics.auc > nan", "expected a quoted string or a number", id="nan"),
        pytest.param("metrics.auc > inf", "expected a quoted string or a number", id="inf"),
        pytest.param("name = 'a\x00b'", "NUL", id="nul-value"),
        pytest.param("tags.`a\x00` = 'x'", "NUL", id="nul-key"),
        pytest.param("name = '\ud800'", "lone surrogate", id="surrogate-value"),
        pytest.param("tags.`\udc00` = 'x'", "lone surrogate", id="surrogate-key"),
        pytest.param("name = 'unterminated", "unexpected character", id="unterminated-quote"),
        pytest.param("tags.`unterminated = 'x'", "unexpected character '`'", id="unterminated-backtick"),
        pytest.param("tags.`" + "k" * 1000 + "` = 'x'", f"the limit is {MAX_KEY_LENGTH}", id="long-key"),
    ],
)
def test_hostile_filters_are_invalid_input(client: covex.Client, flt: str, says: str) -> None:
    with pytest.raises(covex.InvalidInput) as info:
        client.search_versions(flt)
    assert "INVALID_PARAMETER_VALUE" == info.value.code
    assert says in info.value.message


@pytest.mark.parametrize(
    "flt",
    [
        pytest.param("(" * 500 + "name = 'a'" + ")" * 500, id="deep"),
        pytest.param(_ors(["tags.t = 'a'"] * 1000), id="wide"),
        pytest.param(_ors(["tags.t = 'a'"] * 500), id="wide-short"),
        pytest.param("name = '\x00'", id="nul"),
        pytest.param("tags.`\ud800` = 'x'", id="surrogate"),
    ],
)
def test_hostile_model_filters_are_invalid_input(client: covex.Client, flt: str) -> None:
    with pytest.raises(covex.InvalidInput):
        client.search_models(flt)


def test_filters_at_the_limits_work(populated: covex.Client) -> None:
    # Deep: each level wraps the last in parentheses, alternating a true AND and a false OR.
    deep = "metrics.auc > 0.9 AND name = 'churn'"
    for i in range(MAX_NESTING):
        deep = f"(alias != 'x{i}' AND {deep})" if i % 2 else f"(tags.none{i} = 'x' OR {deep})"
    assert [("churn", 3), ("churn", 2)] == versions(populated.search_versions(deep))
    # Wide: the most comparisons, each a subquery, is still far from SQLite's expression-depth limit.
    kinds = ["tags.k{} = 'v'", "params.k{} = 'v'", "metrics.k{} > 0", "alias = 'a{}'", "alias != 'champion{}'"]
    wide = ["name = 'fraud'"] + [kinds[i % len(kinds)].format(i) for i in range(MAX_COMPARISONS - 1)]
    everything = [("churn", 3), ("churn", 2), ("churn", 1), ("churn-eu", 1), ("fraud", 1)]
    assert everything == versions(populated.search_versions(_ors(wide)))
    narrow = " AND ".join(["name = 'fraud'"] + [f"alias != 'x{i}'" for i in range(MAX_COMPARISONS - 1)])
    assert [("fraud", 1)] == versions(populated.search_versions(narrow))
    listed = ", ".join([str(-i) for i in range(1, MAX_IN_VALUES)] + ["3"])
    assert [("churn", 3)] == versions(populated.search_versions(f"version IN ({listed}) AND name = 'churn'"))
    longest = "name IN ('churn', '" + "x" * (MAX_FILTER_LENGTH - len("name IN ('churn', '')")) + "')"
    assert MAX_FILTER_LENGTH == len(longest)
    assert [("churn", 3), ("churn", 2), ("churn", 1)] == versions(populated.search_versions(longest))


@pytest.mark.parametrize(
    ("flt", "expected"),
    [
        # PostgreSQL once cast these to the column's 32-bit INTEGER and failed; SQLite did not.
        ("metrics.auc < 3000000000", [("churn", 3), ("churn", 2), ("churn", 1), ("churn-eu", 1), ("fraud", 1)]),
        ("version < 3000000000 AND name = 'fraud'", [("fraud", 1)]),
        ("version = 9223372036854775807", []),
        ("version > -9223372036854775808 AND name = 'fraud'", [("fraud", 1)]),
        ("creation_timestamp > 1.5 AND name = 'fraud'", [("fraud", 1)]),
        ("creation_timestamp < 1e300 AND name = 'fraud'", [("fraud", 1)]),
        ("last_updated_timestamp > -1e300 AND name = 'fraud'", [("fraud", 1)]),
        # A fraction compares as a number: no version is 1.5, and version 2 is in (1.5, 2).
        ("version IN (1.5, 2) AND name = 'churn'", [("churn", 2)]),
        ("version NOT IN (1.5, 2) AND name = 'churn'", [("churn", 3), ("churn", 1)]),
        ("version = 1.5", []),
        ("version != 1.5 AND name = 'fraud'", [("fraud", 1)]),
        ("version > 1.5 AND name = 'churn'", [("churn", 3), ("churn", 2)]),
        ("version <= 2.5 AND name = 'churn'", [("churn", 2), ("churn", 1)]),
        ("version = 2.0 AND name = 'churn'", [("churn", 2)]),
        ("metrics.auc > 1e300", []),
        ("metrics.auc <= 1e-400", []),
        ("metrics.auc >= 1", []),
        ("metrics.auc IN (1, 0.5)", []),
        ("metrics.f1 IN (1, 0.5)", [("churn-eu", 1)]),
    ],
)
def test_numbers_compare_alike_on_every_database(populated: covex.Client, flt: str, expected) -> None:
    assert expected == versions(populated.search_versions(flt))


@pytest.mark.parametrize(
    ("order_by", "says"),
    [
        pytest.param(["name"] * (MAX_ORDER_BY + 1), f"the limit is {MAX_ORDER_BY}", id="many"),
        pytest.param(["metrics.`a\x00` DESC"], "NUL", id="nul"),
        pytest.param(["metrics.`\ud800`"], "lone surrogate", id="surrogate"),
        pytest.param(["metrics.`" + "k" * 300 + "`"], f"the limit is {MAX_KEY_LENGTH}", id="long-key"),
        pytest.param([" " * 2000 + "name"], f"the limit is {MAX_ORDER_BY_LENGTH}", id="long-clause"),
        pytest.param(["metrics.auc > 1"], "order_by", id="a-filter"),
    ],
)
def test_hostile_order_by_is_invalid_input(client: covex.Client, order_by: list[str], says: str) -> None:
    with pytest.raises(covex.InvalidInput) as info:
        client.search_versions(order_by=order_by)
    assert says in info.value.message


def _token(payload: bytes) -> str:
    return base64.urlsafe_b64encode(payload).decode().rstrip("=")


@pytest.mark.parametrize(
    "token",
    [
        pytest.param(_token(b"[" * 3000), id="deep-json"),
        pytest.param(_token(json.dumps({"offset": 10**30}).encode()), id="huge-offset"),
        pytest.param(_token(json.dumps({"offset": 2**63}).encode()), id="int64-max-plus-1"),
        pytest.param(_token(json.dumps({"offset": True}).encode()), id="bool"),
        pytest.param(_token(json.dumps({"offset": -1}).encode()), id="negative"),
        pytest.param(_token(json.dumps({"offset": 1.0}).encode()), id="float"),
        pytest.param(_token(b'{"offset": ' + b"1" * 5000 + b"}"), id="5000-digits"),
        pytest.param(_token(b"\xff\xfe"), id="not-utf8"),
        pytest.param("!!!!", id="not-base64"),
        pytest.param("a" * 5000, id="long"),
        pytest.param("\x00", id="nul"),
        pytest.param("\ud800", id="surrogate"),
    ],
)
def test_hostile_page_tokens_are_invalid_input(client: covex.Client, token: str) -> None:
    with pytest.raises(covex.InvalidInput, match=r"page_token|lone surrogate"):
        client.search_versions(page_token=token)
    with pytest.raises(covex.InvalidInput, match=r"page_token|lone surrogate"):
        client.search_models(page_token=token)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(flt=FILTER_TEXT)
def test_random_filters_answer_or_are_invalid_input(populated: covex.Client, flt: str) -> None:
    # Searching changes nothing, so one registry serves every example.
    try:
        populated.search_versions(flt)
    except covex.InvalidInput:
        pass
