"""A well-formed request's frame, built straight from the JSON, is exactly what the checked path makes."""

from __future__ import annotations

import json
from typing import Any

import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from covex.serving.errors import BadInput
from covex.serving.payloads import _checked, _fast_frame, _frame, parse_invocation
from covex.serving.signature import Column, InputSchema

TYPES = ["double", "float", "long", "integer", "boolean", "string"]
VALUES: dict[str, st.SearchStrategy[Any]] = {
    "double": st.one_of(st.floats(allow_nan=False, allow_infinity=False), st.integers(-(2**60), 2**60)),
    "float": st.one_of(st.floats(-3e38, 3e38, allow_nan=False), st.integers(-(2**63), 2**63 - 1)),
    "long": st.integers(-(2**63), 2**63 - 1),
    "integer": st.integers(-(2**31), 2**31 - 1),
    "boolean": st.booleans(),
    "string": st.text(alphabet=st.characters(blacklist_categories=["Cs"]), max_size=5),
}
# Values that need the checked path: of another type, missing, or out of the column's range.
ODD: list[Any] = [None, True, "1", 1.5, 2**70, 1e300, [1], {"a": 1}]


@st.composite
def requests(draw: st.DrawFn) -> tuple[InputSchema, list[str], list[list[Any]]]:
    kinds = draw(st.lists(st.sampled_from(TYPES), min_size=1, max_size=6))
    schema = InputSchema(tuple(Column(f"c{i}", kind) for i, kind in enumerate(kinds)))
    rows = draw(st.integers(1, 5))
    data = [[draw(VALUES[kind]) for kind in kinds] for _ in range(rows)]
    if draw(st.booleans()):  # now and then, one odd value somewhere
        row, column = draw(st.integers(0, rows - 1)), draw(st.integers(0, len(kinds) - 1))
        data[row][column] = draw(st.sampled_from(ODD))
    order = draw(st.permutations(schema.names))
    index = [schema.names.index(name) for name in order]
    return schema, order, [[row[i] for i in index] for row in data]


def checked(schema: InputSchema, key: str, value: Any) -> pd.DataFrame | BadInput:
    try:
        return _checked(_frame(key, value), None, schema, key).data
    except BadInput as exc:
        return exc


@settings(max_examples=300, deadline=None)
@given(requests())
def test_every_format_builds_the_frame_the_checked_path_builds(request: tuple[InputSchema, list[str], Any]) -> None:
    schema, names, rows = request
    records = [dict(zip(names, row, strict=True)) for row in rows]
    columns = {name: [row[i] for row in rows] for i, name in enumerate(names)}
    for key, value in (
        ("dataframe_split", {"columns": names, "data": rows}),
        ("dataframe_records", records),
        ("instances", records),
        ("inputs", columns),
    ):
        fast = _fast_frame(key, json.loads(json.dumps(value)), schema)
        slow = checked(schema, key, json.loads(json.dumps(value)))
        if fast is None:
            continue  # the checked path answers (and says what is wrong, if anything)
        assert isinstance(slow, pd.DataFrame), (key, value, slow)
        pd.testing.assert_frame_equal(slow, fast, check_exact=True)


@pytest.mark.parametrize(
    ("columns", "data"),
    [
        (["a"], [[1.0]]),  # a column short
        (["a", "b", "c"], [[1.0, 2, 3]]),  # one too many
        (["a", "a"], [[1.0, 2.0]]),  # one twice
        (["a", "b"], [[1.0]]),  # a row short
        (["a", "b"], []),  # no rows
        (["a", "b"], [[None, 2]]),  # a missing value
        (["a", "b"], [[1.0, 2.5]]),  # not an integer
        (["a", "b"], [[True, 2]]),  # a boolean is not a number
        (["a", "b"], [[1.0, 2**64]]),  # past a long
    ],
)
def test_anything_unusual_is_left_to_the_checked_path(columns: list[str], data: list[list[Any]]) -> None:
    schema = InputSchema((Column("a", "double"), Column("b", "long")))
    assert _fast_frame("dataframe_split", {"columns": columns, "data": data}, schema) is None


def test_an_optional_column_left_out_takes_the_checked_path() -> None:
    schema = InputSchema((Column("a", "double"), Column("b", "long", required=False)))
    body = json.dumps({"dataframe_records": [{"a": 1.0}]}).encode()
    assert _fast_frame("dataframe_records", [{"a": 1.0}], schema) is None
    parsed = parse_invocation(body, "application/json", schema, None)
    assert ["a"] == list(parsed.data.columns) and 1 == parsed.rows


@pytest.mark.parametrize(
    "number", ["1e400", "1E+400", "-1e0309", "9" * 308 + "e99", "1" * 400 + ".0", "0." + "0" * 30 + "1e400"]
)
def test_a_number_past_a_double_is_refused_whatever_its_spelling(number: str) -> None:
    from covex.serving.payloads import load_json

    with pytest.raises(BadInput, match=r"is not a finite number"):
        load_json(f'{{"inputs": [[{number}]]}}'.encode())


@given(st.floats(allow_nan=False, allow_infinity=False))
def test_every_finite_double_reads_back_as_itself(value: float) -> None:
    from covex.serving.payloads import load_json

    assert [value] == load_json(json.dumps([value]).encode())


TYPED = InputSchema(
    (Column("d", "double"), Column("f", "float"), Column("l", "long"), Column("i", "integer"), Column("s", "string"))
)


def parse(body: bytes | str) -> Any:
    return parse_invocation(body.encode() if isinstance(body, str) else body, "application/json", TYPED, None)


def row(values: str) -> str:
    return '{"dataframe_split": {"columns": ["d", "f", "l", "i", "s"], "data": [[' + values + "]]}}"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ('{"dataframe_split": {"columns": [["d"], "f", "l", "i", "s"], "data": [[1.5, 2.5, 3, 4, "x"]]}}', None),
        ('{"dataframe_split": {"columns": [{"a": 1}, "f", "l", "i", "s"], "data": [[1.5, 2.5, 3, 4, "x"]]}}', None),
        (row('1, 2, 9223372036854775807.0, 4, "x"'), "l"),
        (row('1, 2, 3, 2147483648.0, "x"'), "i"),
        (row('1, 3.5e38, 3, 4, "x"'), "f"),
        (b'{"dataframe_split": {"columns": ["d", "f", "l", "i", "s"], "data": [[1, 2, 3, 4, "\xed\xa0\x80"]]}}', None),
    ],
)
def test_odd_input_is_refused_by_name_not_wrapped_or_crashed(body: Any, field: str | None) -> None:
    with pytest.raises(BadInput) as info:
        parse(body)
    if field is not None:
        assert field == info.value.field


def test_the_largest_float32_as_numpy_prints_it_is_accepted() -> None:
    frame = parse(
        '{"dataframe_split": {"columns": ["d", "f", "l", "i", "s"], "data": [[1, 3.4028235e+38, 3, 4, "x"]]}}'
    )
    assert 3.4028235e38 == pytest.approx(float(frame.data["f"][0]))
