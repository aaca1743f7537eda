"""Request bodies to model input, and predictions to response bodies.

``POST /invocations`` reads what MLflow's scoring server reads (``mlflow models serve``): JSON with
exactly one of ``dataframe_split``, ``dataframe_records``, ``instances`` or ``inputs`` (plus optional
``params``), CSV (``text/csv``) or Parquet (``application/vnd.apache.parquet``), and answers
``{"predictions": [...]}``. ``POST /v2/models/{name}/infer`` reads the Open Inference Protocol's
tensors: one named input per column, or one ``[rows, columns]`` input in the signature's order.
"""

from __future__ import annotations

import io
import json
import math
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from covex.domain.errors import RequestTooLarge
from covex.serving.errors import BadInput, UnsupportedMediaType
from covex.serving.signature import InputSchema

if TYPE_CHECKING:
    import pandas as pd

FORMATS = ("dataframe_split", "dataframe_records", "instances", "inputs")
JSON = "application/json"
CSV = "text/csv"
PARQUET = "application/vnd.apache.parquet"
# A Parquet body is refused before decoding when its cells, at 8 bytes each, pass this many times --max-body.
PARQUET_EXPANSION = 4
# A lone surrogate is written as an escape (\ud800) or, against UTF-8's rules, as its raw bytes.
_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F]|\xed[\xa0-\xbf]")
_SURROGATE = re.compile("[\ud800-\udfff]")
_BIG_EXPONENT = re.compile(rb"[eE][+]?0*[1-9][0-9]{2}")
_DIGITS_AS_ZEROS = bytes(48 if 48 <= b <= 57 else 32 for b in range(256))  # a run of 20 digits: 20 zeros


@dataclass(frozen=True)
class ModelInput:
    """What a request asks the model to score: its data, the ``params`` it passes, and its row count."""

    data: Any
    params: dict[str, Any] | None
    rows: int


def media_type(content_type: str) -> str:
    """The media type of a ``Content-Type`` header; refuses a charset other than UTF-8."""
    mime, *parameters = (p.strip() for p in content_type.split(";"))
    for parameter in parameters:
        key, _, value = parameter.partition("=")
        if key.strip().lower() == "charset" and value.strip().strip('"').lower() not in ("utf-8", "utf8"):
            raise UnsupportedMediaType(f"'Content-Type': only UTF-8 is read, got charset {value.strip()!r}")
    return mime.lower()


def parse_invocation(
    body: bytes, content_type: str, schema: InputSchema | None, metadata: Any, *, max_body: int | None = None
) -> ModelInput:
    """Read an ``/invocations`` body in any of MLflow's formats, checked against ``schema`` when there is one.

    ``max_body`` (``--max-body``) also bounds what a compressed Parquet body may decode to.
    """
    import pandas as pd

    mime = media_type(content_type)
    if mime == CSV:
        frame = _read_csv(body)
        return _checked(frame, None, schema, "body", text_input=True)
    if mime == PARQUET:
        _check_parquet_size(body, max_body)
        try:
            frame = pd.read_parquet(io.BytesIO(body))
        except Exception as exc:  # noqa: BLE001 - pyarrow raises many kinds for a bad file
            raise BadInput(f"body: not a Parquet file: {_first_line(exc)}", "body") from None
        return _checked(frame, None, schema, "body")
    if mime != JSON:
        raise UnsupportedMediaType(f"'Content-Type' must be {JSON}, {CSV} or {PARQUET}, got {content_type or 'none'!r}")
    document = load_json(body)
    if not isinstance(document, dict):
        raise BadInput(
            f"body: expected a JSON object with one of {', '.join(FORMATS)}, got a {_json_kind(document)}", "body"
        )
    given = [key for key in FORMATS if key in document]
    if len(given) != 1:
        found = f"found {', '.join(given)}" if given else f"found keys {', '.join(map(repr, list(document)[:10]))}"
        raise BadInput(f"body: give exactly one of {', '.join(FORMATS)}; {found}", "body")
    key = given[0]
    params = document.get("params")
    if params is not None and not isinstance(params, dict):
        raise BadInput("'params' must be a JSON object", "params")
    where = f"{key}.data" if key == "dataframe_split" else key
    if schema is None:
        parsed = _by_mlflow(document, key, params, metadata)
        if parsed.rows == 0:
            raise _no_rows(where)
        return parsed
    fast = _fast_frame(key, document[key], schema)
    if fast is not None:
        return ModelInput(fast, params, len(fast))
    return _checked(_frame(key, document[key]), params, schema, where)


def _fast_frame(key: str, value: Any, schema: InputSchema) -> pd.DataFrame | None:
    """The checked frame of a well-formed request, straight from the JSON (None: take the checked path)."""
    if key == "dataframe_split":
        if type(value) is not dict:
            return None
        names, rows = value.get("columns"), value.get("data")
        if type(names) is not list or type(rows) is not list or not all(type(n) is str for n in names):
            return None
        width = len(names)
        if not all(type(row) is list and len(row) == width for row in rows):
            return None
        return schema.fast_frame(names, list(zip(*rows, strict=True)))
    if type(value) is list:  # records
        width = len(schema.columns)
        if not all(type(row) is dict and len(row) == width for row in value):
            return None
        try:
            return schema.fast_frame(schema.names, [[row[name] for row in value] for name in schema.names])
        except KeyError:
            return None
    if type(value) is dict and key != "dataframe_records":  # columns
        if not all(type(column) is list for column in value.values()):
            return None
        if len({len(column) for column in value.values()}) != 1:
            return None
        return schema.fast_frame(list(value), list(value.values()))
    return None


def _read_csv(body: bytes) -> pd.DataFrame:
    import pandas as pd

    try:
        frame = pd.read_csv(io.BytesIO(body))
        # pandas renames a repeated header ("calls", "calls.1"): read the header row as it is written
        header = pd.read_csv(io.BytesIO(body), header=None, nrows=1, dtype=str, keep_default_na=False)
    except (ValueError, UnicodeDecodeError, pd.errors.ParserError) as exc:
        raise BadInput(f"body: not valid CSV with a header row: {_first_line(exc)}", "body") from None
    names = header.iloc[0].tolist() if len(header) else []
    seen: set[str] = set()
    for name in names:
        if name in seen:
            raise BadInput(f"body: column {name!r} is given twice in the CSV header", name)
        seen.add(name)
    return frame


def _check_parquet_size(body: bytes, max_body: int | None) -> None:
    """Refuse a Parquet body whose footer says it decodes to far more than ``--max-body`` (a compression bomb)."""
    if max_body is None:
        return
    import pyarrow.parquet as pq  # type: ignore[import-untyped]

    try:
        meta = pq.ParquetFile(io.BytesIO(body)).metadata
    except Exception as exc:  # noqa: BLE001 - pyarrow raises many kinds for a bad file
        raise BadInput(f"body: not a Parquet file: {_first_line(exc)}", "body") from None
    bound = PARQUET_EXPANSION * max_body
    cells = meta.num_rows * meta.num_columns
    unpacked = sum(meta.row_group(i).total_byte_size for i in range(meta.num_row_groups))
    if cells * 8 > bound or unpacked > bound:
        raise RequestTooLarge(
            f"body: this Parquet file holds {meta.num_rows} rows of {meta.num_columns} columns "
            f"({unpacked} bytes uncompressed); at most {bound} bytes decoded "
            f"({PARQUET_EXPANSION} x --max-body {max_body}, 8 bytes a value) are read"
        )


def _checked(
    frame: pd.DataFrame,
    params: dict[str, Any] | None,
    schema: InputSchema | None,
    where: str,
    *,
    text_input: bool = False,
) -> ModelInput:
    """``frame`` checked against ``schema``; ``where`` (the field holding the rows) is named when it holds none."""
    if len(frame) == 0:
        raise _no_rows(where)
    if schema is not None:
        frame = schema.conform(frame, text_input=text_input)
    return ModelInput(frame, params, len(frame))


def _no_rows(where: str) -> BadInput:
    return BadInput(f"{where!r}: no rows to score", where)


def _frame(key: str, value: Any) -> pd.DataFrame:
    """A DataFrame from one of the JSON formats, for a model whose signature names its columns."""
    import pandas as pd

    if key == "dataframe_split":
        if not isinstance(value, dict):
            raise BadInput("'dataframe_split' must be an object with 'columns' and 'data'", key)
        columns, data = value.get("columns"), value.get("data")
        if not isinstance(columns, list) or not all(isinstance(c, str) for c in columns):
            raise BadInput("'dataframe_split.columns' must be a list of column names", f"{key}.columns")
        if not isinstance(data, list):
            raise BadInput("'dataframe_split.data' must be a list of rows", f"{key}.data")
        for i, row in enumerate(data):
            if not isinstance(row, list) or len(row) != len(columns):
                raise BadInput(
                    f"'dataframe_split.data[{i}]' must be a list of {len(columns)} values (one per column)",
                    f"{key}.data[{i}]",
                )
        return pd.DataFrame(data, columns=columns)
    if isinstance(value, list):
        for i, row in enumerate(value):
            if not isinstance(row, dict):
                raise BadInput(
                    f"'{key}[{i}]' must be an object of column values (the model's signature names its columns)",
                    f"{key}[{i}]",
                )
        return pd.DataFrame.from_records(value) if value else pd.DataFrame()
    if isinstance(value, dict) and key != "dataframe_records":
        return _columns(key, value)
    expected = "a list of records" if key == "dataframe_records" else "a list of records or an object of columns"
    raise BadInput(f"'{key}' must be {expected}, got a {_json_kind(value)}", key)


def _columns(key: str, value: dict[str, Any]) -> pd.DataFrame:
    import pandas as pd

    lengths = {name: len(col) if isinstance(col, list) else None for name, col in value.items()}
    sizes = {n for n in lengths.values() if n is not None}
    if len(sizes) > 1:
        raise BadInput(f"'{key}': every column must hold the same number of values, got {lengths}", key)
    if not sizes:  # one value per column: one row
        return pd.DataFrame({name: [col] for name, col in value.items()})
    for name, n in lengths.items():
        if n is None:
            raise BadInput(f"'{key}.{name}' must be a list like the other columns", f"{key}.{name}")
    return pd.DataFrame(value)


def _by_mlflow(document: dict[str, Any], key: str, params: dict[str, Any] | None, metadata: Any) -> ModelInput:
    """Input for a model without a column signature, built as MLflow's scoring server builds it."""
    from mlflow.exceptions import MlflowException
    from mlflow.pyfunc.scoring_server import infer_and_parse_data

    schema = metadata.get_input_schema() if metadata is not None else None
    try:
        data = infer_and_parse_data({key: document[key]}, schema)  # type: ignore[arg-type]
    except MlflowException as exc:
        raise BadInput(f"'{key}': {_first_line(exc)}", key) from None
    return ModelInput(data, params, _rows(data))


def _rows(data: Any) -> int:
    shape = getattr(data, "shape", None)
    if shape:
        return int(shape[0])
    if isinstance(data, dict):
        return max((_rows(v) for v in data.values()), default=1)
    return len(data) if isinstance(data, list) else 1


def load_json(body: bytes) -> Any:
    """The JSON document of a body, or ``BadInput`` saying where it breaks.

    Standard JSON only: ``NaN``, ``Infinity`` and numbers too large for a double (``1e400``) are refused,
    and so is a string holding half of a surrogate pair (``"\\ud800"``: not text).
    """
    # A number passes a double's range only with a positive exponent of 3 digits or a run of 20 digits
    # (19 digits times 1e99 is 1e118): other bodies skip checking each number in Python, which is most
    # of a large body's parse.
    check = _finite_float if _may_overflow(body) else None
    try:
        document = json.loads(body, parse_constant=_refuse, parse_float=check)
    except UnicodeDecodeError:
        raise BadInput("body: not UTF-8 text", "body") from None
    except json.JSONDecodeError as exc:
        raise BadInput(f"body: not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}", "body") from None
    except RecursionError:
        raise BadInput("body: JSON nested too deeply", "body") from None
    except _NotFinite:
        raise _not_finite(body) from None
    except ValueError as exc:  # an integer of more digits than Python reads
        raise BadInput(f"body: not valid JSON: {_first_line(exc)}", "body") from None
    if _SURROGATE_ESCAPE.search(body):
        _check_text(document, "")
    return document


def _may_overflow(body: bytes) -> bool:
    """Whether a number in ``body`` could pass a double's range (a regular expression for the digit runs
    takes ten times as long)."""
    return body.translate(_DIGITS_AS_ZEROS).find(b"0" * 20) >= 0 or _BIG_EXPONENT.search(body) is not None


class _NotFinite(Exception):
    pass


@dataclass(frozen=True)
class _Marker:
    token: str


def _refuse(token: str) -> Any:
    raise _NotFinite(token)


def _finite_float(token: str) -> float:
    value = float(token)
    if not math.isfinite(value):
        raise _NotFinite(token)
    return value


def _not_finite(body: bytes) -> BadInput:
    """The error for a body holding NaN, an infinity or ``1e400``, naming where (read again, marking them)."""

    def mark(token: str) -> Any:
        value = float(token)
        return value if math.isfinite(value) else _Marker(token)

    found = _find_marker(json.loads(body, parse_constant=_Marker, parse_float=mark), "")
    where, token = found if found is not None else ("body", "NaN")
    return BadInput(f"{where!r}: {token[:40]} is not a finite number (JSON has no NaN or infinities)", where)


def _find_marker(value: Any, where: str) -> tuple[str, str] | None:
    if isinstance(value, _Marker):
        return where or "body", value.token
    items = enumerate(value) if isinstance(value, list) else value.items() if isinstance(value, dict) else ()
    for key, item in items:
        path = f"{where or 'body'}[{key}]" if isinstance(key, int) else f"{where}.{key}" if where else str(key)
        found = _find_marker(item, path)
        if found is not None:
            return found
    return None


def _check_text(value: Any, where: str) -> None:
    """Refuse a string (or key) holding a lone surrogate, naming where it is (``inputs[0].data[2]``)."""
    if isinstance(value, str):
        if _SURROGATE.search(value):
            where = where or "body"
            raise BadInput(f"{where!r}: holds a lone surrogate (\\ud800-\\udfff), not text", where)
    elif isinstance(value, list):
        for i, item in enumerate(value):
            _check_text(item, f"{where or 'body'}[{i}]")
    elif isinstance(value, dict):
        for key, item in value.items():
            name = key.encode("utf-8", "backslashreplace").decode()
            path = f"{where}.{name}" if where else name
            _check_text(key, path)
            _check_text(item, path)


# -- predictions ------------------------------------------------------------------------------


def jsonable(predictions: Any) -> Any:
    """Predictions as plain lists, numbers and strings (records for a DataFrame, as MLflow answers)."""
    import numpy as np
    import pandas as pd

    if isinstance(predictions, pd.DataFrame):
        return predictions.to_dict(orient="records")
    if isinstance(predictions, pd.Series | np.ndarray):
        return predictions.tolist()
    if isinstance(predictions, np.generic):
        return predictions.item()
    if isinstance(predictions, list | tuple):
        return [jsonable(p) for p in predictions]
    if isinstance(predictions, dict):
        return {str(k): jsonable(v) for k, v in predictions.items()}
    return predictions


def dumps(document: Any) -> bytes:
    """Compact JSON; NaN and infinities (not JSON) become null; numpy scalars their values."""
    try:
        return json.dumps(document, separators=(",", ":"), allow_nan=False, default=_default).encode()
    except ValueError:
        return json.dumps(_finite(document), separators=(",", ":"), default=_default).encode()


def _default(value: Any) -> Any:
    import numpy as np

    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if hasattr(value, "isoformat"):
        return value.isoformat()
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    raise TypeError(f"{type(value).__name__} is not JSON")


def _finite(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, list):
        return [_finite(v) for v in value]
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    return value


def _json_kind(value: Any) -> str:
    return {dict: "object", list: "list", str: "string", bool: "boolean", type(None): "null"}.get(type(value), "number")


def _first_line(exc: BaseException) -> str:
    text = str(getattr(exc, "message", None) or exc).strip()
    return (text.splitlines() or [type(exc).__name__])[0][:300]
