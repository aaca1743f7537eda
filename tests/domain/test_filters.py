from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from covex.domain.errors import InvalidInput
from covex.domain.filters import (
    MAX_COMPARISONS,
    MAX_FILTER_LENGTH,
    MAX_IN_VALUES,
    MAX_NESTING,
    MAX_ORDER_BY,
    MAX_ORDER_BY_LENGTH,
    MODEL_FIELDS,
    VERSION_FIELDS,
    BoolOp,
    Comparison,
    Field,
    Node,
    parse_filter,
    parse_order_by,
)
from covex.domain.names import MAX_KEY_LENGTH


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


# -- limits and hostile input (a fuzzer found RecursionError, SQLite's "Expression tree is too large",
# -- integer overflow and encoding errors; each must be InvalidInput naming the problem) ---------------


def _ors(count: int, term: str = "name = 'a'") -> str:
    return " OR ".join([term] * count)


def _nested(depth: int) -> str:
    return "(" * depth + "name = 'a'" + ")" * depth


def test_nesting_up_to_the_limit_parses() -> None:
    assert Comparison(Field("name"), "=", "a", MAX_NESTING) == parse_filter(_nested(MAX_NESTING), VERSION_FIELDS)


@pytest.mark.parametrize("depth", [MAX_NESTING + 1, 500, 4000])
def test_nesting_beyond_the_limit_is_refused(depth: int) -> None:
    with pytest.raises(InvalidInput) as info:
        parse_filter(_nested(depth), VERSION_FIELDS)
    expected = f"invalid filter: parentheses nest more than {MAX_NESTING} deep at position {MAX_NESTING} ('(')"
    assert expected == info.value.message


def test_comparisons_up_to_the_limit_parse() -> None:
    node = parse_filter(_ors(MAX_COMPARISONS), VERSION_FIELDS)
    assert isinstance(node, BoolOp) and MAX_COMPARISONS == len(node.terms)


@pytest.mark.parametrize("count", [MAX_COMPARISONS + 1, 700])
def test_comparisons_beyond_the_limit_are_refused(count: int) -> None:
    with pytest.raises(InvalidInput) as info:
        parse_filter(_ors(count), VERSION_FIELDS)
    assert info.value.message.startswith(f"invalid filter: more than {MAX_COMPARISONS} comparisons at position ")


def test_in_list_up_to_the_limit_parses() -> None:
    node = parse_filter(f"version IN ({', '.join(['1'] * MAX_IN_VALUES)})", VERSION_FIELDS)
    assert isinstance(node, Comparison) and isinstance(node.value, tuple)
    assert MAX_IN_VALUES == len(node.value)


def test_in_list_beyond_the_limit_is_refused() -> None:
    with pytest.raises(InvalidInput) as info:
        parse_filter(f"version IN ({','.join(['1'] * (MAX_IN_VALUES + 1))})", VERSION_FIELDS)
    assert info.value.message.startswith(f"invalid filter: an IN list holds more than {MAX_IN_VALUES} values")


def test_filter_text_up_to_the_limit_parses() -> None:
    text = "name = '" + "a" * (MAX_FILTER_LENGTH - len("name = ''")) + "'"
    assert MAX_FILTER_LENGTH == len(text)
    assert isinstance(parse_filter(text, VERSION_FIELDS), Comparison)


@pytest.mark.parametrize(
    "text",
    [
        "name = '" + "a" * MAX_FILTER_LENGTH + "'",
        # The fuzzer's: 1,000 terms, past SQLite's expression-depth limit.
        _ors(1000),
        "(" * 10_000 + "name = 'a'" + ")" * 10_000,
        " " * (MAX_FILTER_LENGTH + 1),
    ],
)
def test_filter_text_beyond_the_limit_is_refused(text: str) -> None:
    with pytest.raises(InvalidInput) as info:
        parse_filter(text, VERSION_FIELDS)
    expected = f"invalid filter: it is {len(text)} characters long; the limit is {MAX_FILTER_LENGTH}"
    assert expected == info.value.message


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("version = 9223372036854775807", 2**63 - 1),
        ("version = -9223372036854775808", -(2**63)),
        ("version = 00000000000000000000000001", 1),
        ("metrics.auc < 1e308", 1e308),
        ("metrics.auc > 1e-400", 0.0),
        ("metrics.auc > 99999999999999999999999.0", 1e23),
    ],
)
def test_numbers_at_the_edges_of_their_range(text: str, value: float) -> None:
    node = parse_filter(text, VERSION_FIELDS)
    assert isinstance(node, Comparison) and value == node.value


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("version = 9223372036854775808", "integer 9223372036854775808 is out of range"),
        ("version = -9223372036854775809", "integer -9223372036854775809 is out of range"),
        ("version = 99999999999999999999999", "integer 99999999999999999999999 is out of range"),
        ("metrics.auc < 99999999999999999999999", "write it with a decimal point or exponent"),
        ("version IN (1, 99999999999999999999999)", "integer 99999999999999999999999 is out of range"),
        # int() refuses more than 4,300 digits with a ValueError of its own.
        ("version = " + "1" * 5000, "integer " + "1" * 40 + "... is out of range"),
        ("metrics.auc > 1e400", "number 1e400 is out of range"),
        ("metrics.auc > -1e400", "number -1e400 is out of range"),
        ("metrics.auc > 1" + "0" * 400 + ".0", "is out of range"),
    ],
)
def test_numbers_out_of_range_are_refused(text: str, says: str) -> None:
    with pytest.raises(InvalidInput, match=r"^invalid filter: ") as info:
        parse_filter(text, VERSION_FIELDS)
    assert says in info.value.message


@pytest.mark.parametrize("word", ["nan", "NaN", "inf", "-inf", "Infinity", "1e400e"])
def test_nan_and_infinity_are_not_numbers(word: str) -> None:
    with pytest.raises(InvalidInput, match=r"^invalid filter: "):
        parse_filter(f"metrics.auc > {word}", VERSION_FIELDS)


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("name = 'a\x00b'", "a NUL character at position 9"),
        ("tags.`a\x00` = 'x'", "a NUL character at position 7"),
        ("tags.'\x00' = 'x'", "a NUL character at position 6"),
        ("name = '\ud800'", "a lone surrogate (not valid Unicode) at position 8"),
        ("tags.`\udfff` = 'x'", "a lone surrogate (not valid Unicode) at position 6"),
        ("\x00", "a NUL character at position 0"),
    ],
)
def test_unstorable_characters_are_refused(text: str, says: str) -> None:
    with pytest.raises(InvalidInput) as info:
        parse_filter(text, VERSION_FIELDS)
    assert f"invalid filter: {says}" == info.value.message


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("name = 'unterminated", "unexpected character"),
        ('name = "unterminated', "unexpected character"),
        ("tags.`unterminated = 'x'", "unexpected character '`'"),
        ("tags.`` = 'x'", "empty key"),
        ("name = `quoted`", "expected a quoted string or a number"),
        ("tags.`" + "k" * (MAX_KEY_LENGTH + 1) + "` = 'x'", f"the limit is {MAX_KEY_LENGTH}"),
        ("tags." + "k" * (MAX_KEY_LENGTH + 1) + " = 'x'", f"the limit is {MAX_KEY_LENGTH}"),
        ("name = 'a' OR", "at the end"),
        ("tags.", "expected a key after 'tags.' at the end"),
        ("(", "expected a field name"),
        (")", "expected a field name"),
    ],
)
def test_malformed_filters_are_refused(text: str, says: str) -> None:
    with pytest.raises(InvalidInput, match=r"^invalid filter: ") as info:
        parse_filter(text, VERSION_FIELDS)
    assert says in info.value.message


def test_key_up_to_the_limit_parses() -> None:
    node = parse_filter("tags.`" + "k" * MAX_KEY_LENGTH + "` = 'x'", VERSION_FIELDS)
    assert isinstance(node, Comparison) and Field("tags", "k" * MAX_KEY_LENGTH) == node.field


def test_long_tokens_are_shortened_in_messages() -> None:
    with pytest.raises(InvalidInput) as info:
        parse_filter("name = 'x' " + "a" * 5000, VERSION_FIELDS)
    expected = "invalid filter: expected AND, OR or the end of the filter at position 11 ('" + "a" * 40 + "...')"
    assert expected == info.value.message


@pytest.mark.parametrize("text", [5, b"name = 'x'", ["name = 'x'"]])
def test_a_filter_must_be_text(text: object) -> None:
    with pytest.raises(InvalidInput) as info:
        parse_filter(text, VERSION_FIELDS)  # type: ignore[arg-type]
    assert f"invalid filter: must be a string, got {type(text).__name__}" == info.value.message


_SORTABLE = {"name", "version", "metrics"}


def test_order_by_up_to_the_limit() -> None:
    assert MAX_ORDER_BY == len(parse_order_by(["name"] * MAX_ORDER_BY, VERSION_FIELDS, _SORTABLE))


@pytest.mark.parametrize(
    ("clauses", "says"),
    [
        (["name"] * (MAX_ORDER_BY + 1), f"invalid order_by: {MAX_ORDER_BY + 1} clauses; the limit is {MAX_ORDER_BY}"),
        (["name"] * 10_000, f"invalid order_by: 10000 clauses; the limit is {MAX_ORDER_BY}"),
        (["metrics.`a\x00` DESC"], "a NUL character at position 10"),
        (["metrics.`\ud800`"], "a lone surrogate (not valid Unicode) at position 9"),
        (["metrics.`" + "k" * (MAX_KEY_LENGTH + 1) + "`"], f"the limit is {MAX_KEY_LENGTH}"),
        ([" " * 5000 + "name"], f"5004 characters long; the limit is {MAX_ORDER_BY_LENGTH}"),
        ([5], "invalid order_by: each clause must be a string, got int"),
        (["metrics.`x"], "unexpected character '`'"),
        (["(name)"], "expected a field name"),
        (["name DESC DESC"], "expected '<field> [ASC|DESC]'"),
        ([""], "expected a field name"),
    ],
)
def test_hostile_order_by_is_refused(clauses: list[str], says: str) -> None:
    with pytest.raises(InvalidInput, match=r"^invalid order_by") as info:
        parse_order_by(clauses, VERSION_FIELDS, _SORTABLE)
    assert says in info.value.message


# Hostile filters: comparisons of real fields with values that overflow, cannot be stored or are
# not values at all, joined and wrapped at random, mixed with fragments of the language and noise.
_NUMBER_FIELDS = ["version", "metrics.auc", "creation_timestamp", "metrics.`\x00`", "metrics.`\ud800`"]
_NUMBERS = [
    "0", "-1", "+2.5", ".5", "1.", "1.5", "1e400", "-1e400", "1e-400", "3000000000", "1" * 30,
    "9223372036854775807", "-9223372036854775808", "9223372036854775808", "-9223372036854775809",
]  # fmt: skip
_TEXT_FIELDS = ["name", "tags.t", "params.p", "alias", "stage", "tags.`\x00`", "tags.`\ud800`", "tags.'k'"]
_STRINGS = ["'a'", '"b"', "'%'", "''", "'it''s'", "'\\'", "'\x00'", "'\ud800'", "'\U0001f600'", "'churn%'"]
_ODDITIES = ["nmae", "tags", "tags.", "metrics.a.b", "`name`", "==", "NOT", "nan", "inf", "0x10", "()", "`k`"]
_NOISE = ["(", ")", ",", ".", "`", "'", '"', "\\", ";", "--", "AND", "OR", "NOT", "\x00", "\ud800", "\t", "\n"]


def _comparisons(fields: list[str], ops: list[str], values: list[str]) -> st.SearchStrategy[str]:
    listed = st.lists(st.sampled_from(values), min_size=1, max_size=4).map(lambda v: f"({', '.join(v)})")
    scalar = st.tuples(st.sampled_from(fields), st.sampled_from(ops), st.sampled_from(values))
    in_list = st.tuples(st.sampled_from(fields), st.sampled_from(["IN", "NOT IN"]), listed)
    return (scalar | in_list).map(" ".join)


_COMPARISON = (
    _comparisons(_NUMBER_FIELDS, ["=", "!=", "<", "<=", ">", ">="], _NUMBERS)
    | _comparisons(_TEXT_FIELDS, ["=", "!=", "<>", "LIKE", "NOT LIKE", "ILIKE", "NOT ILIKE"], _STRINGS)
    | _comparisons(
        _NUMBER_FIELDS + _TEXT_FIELDS + _ODDITIES, ["=", "<", "IN", "LIKE", *_ODDITIES], _NUMBERS + _STRINGS + _ODDITIES
    )
)
_TERM = _COMPARISON | st.sampled_from(_NOISE) | st.text(max_size=3)
FILTER_TEXT = st.recursive(
    _TERM,
    lambda inner: st.one_of(
        st.tuples(inner, st.sampled_from([" AND ", " OR ", " and ", " "]), inner).map("".join),
        inner.map(lambda t: f"({t})"),
    ),
    max_leaves=12,
)


def _comparisons_in(node: Node | None) -> list[Comparison]:
    if node is None:
        return []
    if isinstance(node, Comparison):
        return [node]
    return [c for term in node.terms for c in _comparisons_in(term)]


def _storable(value: object) -> bool:
    if isinstance(value, int):
        return -(2**63) <= value < 2**63
    if isinstance(value, float):
        return math.isfinite(value)
    return isinstance(value, str) and "\x00" not in value and value.encode("utf-8", "replace").decode() == value


@given(FILTER_TEXT, st.sampled_from([MODEL_FIELDS, VERSION_FIELDS]))
def test_any_filter_parses_to_a_tree_or_raises_invalid_input(text: str, fields: dict[str, str]) -> None:
    try:
        node = parse_filter(text, fields)
    except InvalidInput as exc:
        assert exc.message.startswith("invalid filter: ")
        return
    # A tree holds only what both databases bind: 64-bit integers, finite floats, encodable text.
    for cmp in _comparisons_in(node):
        values = cmp.value if isinstance(cmp.value, tuple) else (cmp.value,)
        assert [] == [v for v in values if not _storable(v)]
        assert cmp.field.key is None or (_storable(cmp.field.key) and len(cmp.field.key) <= MAX_KEY_LENGTH)


@given(st.lists(FILTER_TEXT, max_size=4))
def test_any_order_by_parses_to_keys_or_raises_invalid_input(clauses: list[str]) -> None:
    try:
        keys = parse_order_by(clauses, VERSION_FIELDS, _SORTABLE)
    except InvalidInput as exc:
        assert exc.message.startswith("invalid order_by")
    else:
        assert len(clauses) == len(keys)
