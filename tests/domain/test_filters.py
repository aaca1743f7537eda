from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from covex.domain.errors import InvalidInput
from covex.domain.filters import (
    MODEL_FIELDS,
    VERSION_FIELDS,
    BoolOp,
    Comparison,
    Field,
    parse_filter,
    parse_order_by,
)


def test_precedence_and_binds_tighter_than_or() -> None:
    node = parse_filter("name = 'a' OR name = 'b' AND version > 2", VERSION_FIELDS)
    assert isinstance(node, BoolOp) and "OR" == node.op
    assert isinstance(node.terms[1], BoolOp) and "AND" == node.terms[1].op


def test_keys_with_dots_backticks_and_quotes() -> None:
    for text, key in [
        ("tags.mlflow.source.type = 'x'", "mlflow.source.type"),
        ("tags.`my key` = 'x'", "my key"),
        ("tags.\"k-1\" = 'x'", "k-1"),
    ]:
        node = parse_filter(text, MODEL_FIELDS)
        assert isinstance(node, Comparison)
        assert Field("tags", key) == node.field


def test_values() -> None:
    node = parse_filter("metrics.auc IN (1, 0.5, -2e-3)", VERSION_FIELDS)
    assert isinstance(node, Comparison) and (1, 0.5, -0.002) == node.value
    node = parse_filter("name = 'it''s'", VERSION_FIELDS)
    assert isinstance(node, Comparison) and "it's" == node.value
    node = parse_filter("name NOT ILIKE '%x%'", VERSION_FIELDS)
    assert isinstance(node, Comparison) and "NOT ILIKE" == node.op


def test_empty_filter_is_none() -> None:
    assert parse_filter("  ", MODEL_FIELDS) is None
    assert parse_filter(None, MODEL_FIELDS) is None


def test_model_fields_reject_version_fields() -> None:
    with pytest.raises(InvalidInput, match="unknown field 'metrics'"):
        parse_filter("metrics.auc > 1", MODEL_FIELDS)


def test_order_by() -> None:
    keys = parse_order_by(["metrics.auc DESC", "name"], VERSION_FIELDS, {"metrics", "name"})
    assert [(Field("metrics", "auc"), True), (Field("name"), False)] == [(k.field, k.descending) for k in keys]


@given(st.text(max_size=40))
def test_any_text_parses_or_raises_invalid_input(text: str) -> None:
    try:
        parse_filter(text, VERSION_FIELDS)
    except InvalidInput as exc:
        assert exc.message.startswith("invalid filter")
