"""Evaluation records (comparisons, explanations), the same on every backend and database."""

from __future__ import annotations

from typing import Any

import pytest

import covex
from tests.conftest import Registry

DIGEST = "sha256:" + "ab" * 32
BODY: dict[str, Any] = {
    "metrics": {"roc_auc": {"value": 0.81, "low": 0.78, "high": 0.84}},
    "baseline": "models:/churn/1",
}


@pytest.fixture
def churn(client: covex.Client, tree) -> covex.Client:
    client.create_model("churn")
    client.create_version("churn", tree())
    client.create_version("churn", tree())
    return client


def record(c: covex.Client, uri: str = "models:/churn/2", **kw: Any) -> covex.Evaluation:
    args: dict[str, Any] = {"kind": "offline", "key": "k1", "data_digest": DIGEST, "source": "holdout.parquet"}
    args |= {"rows": 500, "body": BODY, "data_tags": ["holdout"]} | kw
    return c.record_evaluation(uri, **args)


def test_recorded_listed_and_read_back(churn: covex.Client) -> None:
    first = record(churn)
    assert (first.name, first.version, first.kind, first.data_tags, first.body) == (
        "churn",
        2,
        "offline",
        ["holdout"],
        BODY,
    )
    second = record(churn, "models:/churn/1", key="k2", kind="explanation", data_tags=["b", "a", "a"])
    assert second.data_tags == ["a", "b"]
    assert [e.id for e in churn.evaluations("churn")] == [second.id, first.id]  # newest first
    assert [e.id for e in churn.evaluations("models:/churn/2")] == [first.id]
    assert [e.id for e in churn.evaluations("churn", kind="explanation")] == [second.id]
    assert [e.id for e in churn.evaluations("churn", key="k1")] == [first.id]
    assert churn.get_evaluation(first.id) == first
    trail = churn.audit.list_records(action="evaluation.record").items
    assert {r.target for r in trail} == {"model:churn/1", "model:churn/2"}


@pytest.mark.parametrize(
    ("changes", "says"),
    [
        ({"kind": "ranking"}, "'kind'"),
        ({"key": "a b"}, "'key'"),
        ({"key": "x" * 129}, "'key'"),
        ({"data_digest": "md5:00"}, "'data_digest'"),
        ({"source": ""}, "'source'"),
        ({"rows": -1}, "'rows'"),
        ({"data_tags": ["ok", "not ok"]}, "'data_tags'"),
        ({"data_tags": [f"t{i}" for i in range(21)]}, "'data_tags'"),
        ({"body": {"x": "y" * (1024 * 1024 + 1)}}, "'body'"),
        ({"body": {"x": float("nan")}}, "'body'"),
    ],
)
def test_bad_input_is_refused_by_name_and_stores_nothing(churn: covex.Client, changes: dict, says: str) -> None:
    with pytest.raises(covex.InvalidInput, match=says):
        record(churn, **changes)
    assert churn.evaluations("churn") == []


def test_missing_things_are_not_found(churn: covex.Client) -> None:
    with pytest.raises(covex.NotFound):
        churn.get_evaluation(999)
    with pytest.raises(covex.NotFound):
        record(churn, "models:/churn/9")
    with pytest.raises(covex.NotFound):
        churn.evaluations("ghost")
    with pytest.raises(covex.InvalidInput, match="'max_results'"):
        churn.evaluations("churn", max_results=0)


def test_a_reader_reads_evaluations_but_may_not_record_them(registry: Registry, churn: covex.Client) -> None:
    found = record(churn)
    reader = registry.user("ann")
    outsider = registry.user("bob")
    churn.access.grant("ann", "reader", model="churn")
    assert [e.id for e in reader.evaluations("churn")] == [found.id]
    with pytest.raises(covex.PermissionDenied):
        record(reader, key="k9")
    with pytest.raises((covex.PermissionDenied, covex.NotFound)):
        outsider.get_evaluation(found.id)
