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
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from covex.serving.errors import BadInput, UnsupportedMediaType
from covex.serving.signature import InputSchema

if TYPE_CHECKING:
    import pandas as pd

FORMATS = ("dataframe_split", "dataframe_records", "instances", "inputs")
JSON = "application/json"
CSV = "text/csv"
PARQUET = "application/vnd.apache.parquet"


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


def parse_invocation(body: bytes, content_type: str, schema: InputSchema | None, metadata: Any) -> ModelInput:
    """Read an ``/invocations`` body in any of MLflow's formats, checked against ``schema`` when there is one."""
    import pandas as pd

    mime = media_type(content_type)
    if mime == CSV:
        try:
            frame = pd.read_csv(io.BytesIO(body))
        except (ValueError, UnicodeDecodeError, pd.errors.ParserError) as exc:
            raise BadInput(f"body: not valid CSV with a header row: {_first_line(exc)}", "body") from None
        return _checked(frame, None, schema, text_input=True)
    if mime == PARQUET:
        try:
            frame = pd.read_parquet(io.BytesIO(body))
        except Exception as exc:  # noqa: BLE001 - pyarrow raises many kinds for a bad file
            raise BadInput(f"body: not a Parquet file: {_first_line(exc)}", "body") from None
        return _checked(frame, None, schema)
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
    if schema is None:
        return _by_mlflow(document, key, params, metadata)
    return _checked(_frame(key, document[key]), params, schema)


def _checked(
    frame: pd.DataFrame, params: dict[str, Any] | None, schema: InputSchema | None, *, text_input: bool = False
) -> ModelInput:
    if schema is not None:
        frame = schema.conform(frame, text_input=text_input)
    return ModelInput(frame, params, len(frame))


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
    """The JSON document of a body, or ``BadInput`` saying where it breaks."""
    try:
        return json.loads(body)
    except UnicodeDecodeError:
        raise BadInput("body: not UTF-8 text", "body") from None
    except json.JSONDecodeError as exc:
        raise BadInput(f"body: not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}", "body") from None
    except RecursionError:
        raise BadInput("body: JSON nested too deeply", "body") from None


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
