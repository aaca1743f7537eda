"""A version's input signature, and the check that makes a request's frame fit it (or says which field does not).

Only column-based signatures (named columns with MLflow types) are checked here. A model with a
tensor signature, or none, gets its input as MLflow's scoring server would build it, and MLflow's
own schema enforcement answers for it (its refusals become 400s too).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING, Any

from covex.serving.errors import BadInput

if TYPE_CHECKING:
    import pandas as pd

# MLflow column types, and what their values become.
_FLOATS = {"double": "float64", "float": "float32"}
_INTS = {"long": "int64", "integer": "int32"}
# What each numeric type holds: checked before converting (numpy would wrap, overflow or raise).
_RANGES: dict[str, tuple[float, float]] = {
    "long": (-(2**63), 2**63 - 1),
    "integer": (-(2**31), 2**31 - 1),
    "double": (-1.7976931348623157e308, 1.7976931348623157e308),
    # Every double that rounds to a finite float32 (3.4028235e+38, float32's largest as numpy prints it).
    "float": (-3.4028235677973362e38, 3.4028235677973362e38),
}
_TEXT = {"string"}
_V2_TYPES = {
    "double": "FP64",
    "float": "FP32",
    "long": "INT64",
    "integer": "INT32",
    "boolean": "BOOL",
    "string": "BYTES",
    "binary": "BYTES",
    "datetime": "BYTES",
}


@dataclass(frozen=True)
class Column:
    name: str
    type: str  # MLflow's name: double, float, long, integer, boolean, string, binary, datetime
    required: bool = True

    @property
    def v2_datatype(self) -> str:
        return _V2_TYPES.get(self.type, "BYTES")


@dataclass(frozen=True)
class InputSchema:
    """The named, typed columns a version takes, in order."""

    columns: tuple[Column, ...]

    @property
    def names(self) -> list[str]:
        return [c.name for c in self.columns]

    @classmethod
    def from_model(cls, metadata: Any) -> InputSchema | None:
        """The column schema of a loaded pyfunc model's metadata; None for a tensor schema or none."""
        schema = metadata.get_input_schema() if metadata is not None else None
        if schema is None or schema.is_tensor_spec() or not schema.has_input_names():
            return None
        columns = []
        for spec in schema.inputs:
            kind = getattr(spec.type, "name", None)
            if not isinstance(kind, str):  # arrays, objects, maps: leave those to MLflow
                return None
            columns.append(Column(spec.name, kind, bool(spec.required)))
        return cls(tuple(columns))

    def conform(self, frame: pd.DataFrame, *, text_input: bool = False) -> pd.DataFrame:
        """``frame`` with the signature's columns, in its order and types; or ``BadInput`` naming the field.

        ``text_input`` (CSV): a string column may hold what the CSV reader took for numbers.
        """
        import pandas as pd

        known = set(self.names)
        unknown = [str(c) for c in frame.columns if c not in known]
        if unknown:
            raise BadInput(
                f"unknown column {unknown[0]!r}: the model takes {', '.join(map(repr, self.names))}", unknown[0]
            )
        if frame.columns.has_duplicates:
            dup = str(frame.columns[frame.columns.duplicated()][0])
            raise BadInput(f"column {dup!r} is given twice", dup)
        out: dict[str, Any] = {}
        for column in self.columns:
            if column.name not in frame.columns:
                if column.required:
                    raise BadInput(f"missing column {column.name!r} ({column.type})", column.name)
                continue
            out[column.name] = _convert(frame[column.name], column, text_input)
        conformed = pd.DataFrame(out, index=frame.index)
        conformed.columns = self.column_index if len(out) == len(self.columns) else pd.Index(list(out), dtype=object)
        return conformed

    def fast_frame(self, names: Sequence[str], values: Sequence[Sequence[Any]]) -> pd.DataFrame | None:
        """The frame of columns ``names`` holding ``values`` (one sequence per column), or None.

        It is built only when every column of the signature is given and every value already has its
        column's type (plain JSON numbers, booleans and text), which is nearly every request; it
        equals what ``conform`` makes of the same input. Anything else (None): ``conform`` checks
        the frame and names what is wrong. This skips building a first frame and converting it
        column by column, which is most of the time a small request takes.
        """
        import numpy as np
        import pandas as pd

        if len(names) != len(self.columns) or not all(type(name) is str for name in names):
            return None
        if set(names) != set(self.names) or not values or not values[0]:
            return None
        position = {name: i for i, name in enumerate(names)}
        columns: dict[str, Any] = {}
        for column in self.columns:
            given = values[position[column.name]]
            converted = _fast_column(given, column.type, np)
            if converted is None:
                return None
            columns[column.name] = converted
        kinds = {getattr(c, "dtype", None) for c in columns.values()}
        if len(kinds) == 1 and None not in kinds:  # one numeric type: one block, built at once
            return pd.DataFrame(np.vstack(list(columns.values())).T, columns=self.column_index)
        frame = pd.DataFrame(columns)
        frame.columns = self.column_index
        return frame

    @cached_property
    def column_index(self) -> pd.Index:
        """The column labels of every frame handed to the model: plain Python strings (an object index).

        pandas 3 would make an Arrow string index, which costs a model that reads the names (scikit-learn
        checks them on every call) about a third of a millisecond per request; pandas 2 makes this one.
        """
        import pandas as pd

        return pd.Index(self.names, dtype=object)


def _fast_column(values: Sequence[Any], kind: str, np: Any) -> Any:
    """``values`` as the array ``conform`` would make for a column of ``kind``; None when any value needs checking."""
    types = set(map(type, values))
    if kind in _FLOATS:
        if not types <= {float, int}:
            return None
        try:
            array = np.array(values, dtype=np.float64)
        except OverflowError:  # an integer past a double's range
            return None
        low, high = _RANGES[kind]
        if not np.isfinite(array).all() or array.min() < low or array.max() > high:
            return None
        if kind == "float" and types == {int} and np.abs(array).max() > 2**53:
            return None  # ints that a double rounds: converted straight to float32 on the checked path
        return array.astype(np.float32) if kind == "float" else array
    if kind in _INTS:
        low, high = _RANGES[kind]
        if types != {int} or min(values) < low or max(values) > high:
            return None
        return np.array(values, dtype=_INTS[kind])
    if kind == "boolean":
        return np.array(values, dtype=bool) if types == {bool} else None
    if kind in _TEXT:
        return list(values) if types == {str} else None  # pandas infers the text type, as for a first frame
    return None


def _convert(values: pd.Series, column: Column, text_input: bool) -> pd.Series:
    import pandas as pd
    from pandas.api import types

    dtype = values.dtype
    if column.type in _FLOATS:
        if types.is_bool_dtype(dtype):
            _fail(column, values, _not_number)
        if not types.is_numeric_dtype(dtype):
            _check_each(column, values, _not_number, missing_ok=True)
        _check_range(column, values)
        return values.astype(_FLOATS[column.type])
    if column.type in _INTS:
        if types.is_bool_dtype(dtype):
            _fail(column, values, _not_integer)
        if not types.is_integer_dtype(dtype):
            _check_each(column, values, _not_integer, missing_ok=False)
        _check_range(column, values)
        return values.astype(_INTS[column.type])
    if column.type == "boolean":
        if types.is_bool_dtype(dtype):
            return values
        _check_each(column, values, lambda v: not isinstance(v, bool), missing_ok=False)
        return values.astype(bool)
    if column.type in _TEXT:
        if text_input:
            _check_each(column, values, lambda v: False, missing_ok=False)
            return values.astype(str)
        _check_each(column, values, lambda v: not isinstance(v, str), missing_ok=False)
        return values
    if column.type == "datetime":
        _check_each(column, values, lambda v: not isinstance(v, str | int | pd.Timestamp), missing_ok=False)
        try:
            return pd.to_datetime(values)
        except (ValueError, TypeError, OverflowError) as exc:
            raise BadInput(f"column {column.name!r}: not a date and time: {exc}", column.name) from None
    return values  # binary: as given


def _is_missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def _not_number(value: Any) -> bool:
    return isinstance(value, bool) or not isinstance(value, int | float)


def _not_integer(value: Any) -> bool:
    if isinstance(value, bool):
        return True
    if isinstance(value, int):
        return False
    return not (isinstance(value, float) and math.isfinite(value) and value.is_integer())


def _check_range(column: Column, values: pd.Series) -> None:
    """Refuse a number the column's type cannot hold (an infinity for a double; 2**70 for a long)."""
    import numpy as np
    from pandas.api import types

    low, high = _RANGES[column.type]
    if len(values) == 0:
        return
    if types.is_float_dtype(values.dtype):
        array = values.to_numpy()
        finite = array[np.isfinite(array)]
        # A long's 2**63 - 1 is 2**63 as a double: there the bound is exclusive (2**63 would wrap).
        exclusive = float(high) != high
        if not np.isinf(array).any() and (
            finite.size == 0 or (low <= finite.min() and _below(finite.max(), high, exclusive))
        ):
            return
    elif types.is_integer_dtype(values.dtype):
        if low <= int(values.min()) and int(values.max()) <= high:
            return
    for row, value in enumerate(values.tolist()):
        problem = _range_problem(value, column.type, low, high)
        if problem is not None:
            raise BadInput(f"column {column.name!r} row {row}: {_describe(value)} {problem}", column.name)


def _below(top: float, high: float, exclusive: bool) -> bool:
    return bool(top < float(high)) if exclusive else bool(top <= high)


def _range_problem(value: Any, kind: str, low: float, high: float) -> str | None:
    if isinstance(value, bool) or not isinstance(value, int | float) or _is_missing(value):
        return None
    if isinstance(value, float) and math.isinf(value) and kind in _FLOATS:
        return "is not a finite number"
    if low <= value <= high:
        return None
    bounds = f" ({int(low)} to {int(high)})" if kind in _INTS else ""
    return f"is out of range for {kind}{bounds}"


def _check_each(column: Column, values: pd.Series, wrong: Any, *, missing_ok: bool) -> None:
    for row, value in enumerate(values.tolist()):
        if _is_missing(value):
            if missing_ok:
                continue
            raise BadInput(f"column {column.name!r} row {row}: a {column.type} is required, got null", column.name)
        if wrong(value):
            raise BadInput(
                f"column {column.name!r} row {row}: expected {column.type}, got {_describe(value)}", column.name
            )


def _fail(column: Column, values: pd.Series, wrong: Any) -> None:
    _check_each(column, values.astype(object), wrong, missing_ok=False)


def _describe(value: Any) -> str:
    kind = {bool: "boolean", int: "integer", float: "number", str: "string"}.get(type(value), type(value).__name__)
    text = repr(value)
    return f"{kind} {text[:40]}{'...' if len(text) > 40 else ''}"
