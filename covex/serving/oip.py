"""The Open Inference Protocol (KServe v2, MLServer, Triton): infer requests, responses and model metadata.

A request names its tensors::

    {"id": "42", "inputs": [{"name": "tenure", "shape": [2], "datatype": "FP64", "data": [3.0, 7.0]}, ...]}

For a model whose signature names its columns, each input is one column (MLServer's pandas codec);
or a single input of shape ``[rows, columns]`` holds whole rows in the signature's column order (as
KServe's scikit-learn server takes them). The answer holds one output per prediction column.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from covex.serving.errors import BadInput
from covex.serving.payloads import ModelInput, jsonable
from covex.serving.signature import InputSchema

if TYPE_CHECKING:
    pass

DATATYPES = {
    "BOOL",
    "UINT8",
    "UINT16",
    "UINT32",
    "UINT64",
    "INT8",
    "INT16",
    "INT32",
    "INT64",
    "FP16",
    "FP32",
    "FP64",
    "BYTES",
}


def parse_infer(document: Any, schema: InputSchema | None) -> tuple[ModelInput, str | None]:
    """The model input of an infer request, and the request's ``id`` (echoed in the answer)."""
    import numpy as np
    import pandas as pd

    if not isinstance(document, dict):
        raise BadInput("body: expected a JSON object with 'inputs'", "body")
    request_id = document.get("id")
    if request_id is not None and not isinstance(request_id, str):
        raise BadInput("'id' must be a string", "id")
    inputs = document.get("inputs")
    if not isinstance(inputs, list) or not inputs:
        raise BadInput("'inputs' must be a non-empty list of tensors", "inputs")
    params = document.get("parameters")
    if params is not None and not isinstance(params, dict):
        raise BadInput("'parameters' must be a JSON object", "parameters")
    tensors = [_tensor(i, t) for i, t in enumerate(inputs)]
    if any(shape and shape[0] == 0 for _, shape, _ in tensors):
        raise BadInput("'inputs': no rows to score (a tensor's first dimension is 0)", "inputs")
    if schema is not None and len(tensors) == 1 and tensors[0][0] not in schema.names:
        name, shape, data = tensors[0]
        if len(shape) != 2 or shape[1] != len(schema.columns):
            raise BadInput(
                f"'inputs[0]' ({name!r}) is not a column of the model; a single tensor of rows needs shape "
                f"[rows, {len(schema.columns)}] (columns {', '.join(schema.names)}), got {shape}",
                "inputs[0].shape",
            )
        rows = [data[r * shape[1] : (r + 1) * shape[1]] for r in range(shape[0])]
        frame = pd.DataFrame(rows, columns=schema.names)
        return ModelInput(schema.conform(frame), _plain(params), len(frame)), request_id
    if schema is None and len(tensors) == 1:
        name, shape, data = tensors[0]
        array = np.array(data, dtype=object if any(isinstance(v, str) for v in data[:1]) else None)
        array = array.reshape(shape)
        return ModelInput(array, _plain(params), int(shape[0]) if shape else 1), request_id
    columns: dict[str, list[Any]] = {}
    sizes = set()
    for i, (name, shape, data) in enumerate(tensors):
        if name in columns:
            raise BadInput(f"'inputs[{i}].name': {name!r} is given twice", f"inputs[{i}].name")
        if len(shape) > 1 and math.prod(shape[1:]) != 1:
            raise BadInput(
                f"'inputs[{i}]' ({name!r}) is one column: its shape must be [rows] or [rows, 1], got {shape}",
                f"inputs[{i}].shape",
            )
        columns[name] = data
        sizes.add(len(data))
    if len(sizes) > 1:
        raise BadInput("'inputs': every column must hold the same number of rows", "inputs")
    frame = pd.DataFrame(columns)
    if schema is not None:
        frame = schema.conform(frame)
    return ModelInput(frame, _plain(params), len(frame)), request_id


def _tensor(i: int, tensor: Any) -> tuple[str, list[int], list[Any]]:
    where = f"inputs[{i}]"
    if not isinstance(tensor, dict):
        raise BadInput(f"'{where}' must be an object with name, shape, datatype and data", where)
    name, shape, datatype, data = (tensor.get(k) for k in ("name", "shape", "datatype", "data"))
    if not isinstance(name, str) or not name:
        raise BadInput(f"'{where}.name' must be a non-empty string", f"{where}.name")
    if not isinstance(shape, list) or not all(isinstance(n, int) and not isinstance(n, bool) and n >= 0 for n in shape):
        raise BadInput(f"'{where}.shape' must be a list of non-negative integers", f"{where}.shape")
    if datatype not in DATATYPES:
        raise BadInput(f"'{where}.datatype' must be one of {', '.join(sorted(DATATYPES))}", f"{where}.datatype")
    if not isinstance(data, list):
        raise BadInput(f"'{where}.data' must be a list", f"{where}.data")
    flat = _flatten(data)
    if len(flat) != math.prod(shape):
        raise BadInput(
            f"'{where}.data' holds {len(flat)} values but shape {shape} needs {math.prod(shape)}", f"{where}.data"
        )
    return name, shape, flat


def _flatten(data: list[Any]) -> list[Any]:
    if not any(isinstance(v, list) for v in data):
        return data
    out: list[Any] = []
    for v in data:
        out.extend(_flatten(v) if isinstance(v, list) else [v])
    return out


def _plain(params: dict[str, Any] | None) -> dict[str, Any] | None:
    """OIP parameters minus the codec hints MLServer clients send (they are not the model's params)."""
    if not params:
        return None
    rest = {k: v for k, v in params.items() if k not in ("content_type", "headers")}
    return rest or None


def infer_response(
    predictions: Any, model: str, version: int, request_id: str | None, outputs_wanted: Any = None
) -> dict[str, Any]:
    """The answer to an infer request: one output tensor per prediction column (``predict`` for one)."""
    import pandas as pd

    outputs = []
    if isinstance(predictions, pd.DataFrame):
        for name in predictions.columns:
            outputs.append(_output(str(name), predictions[name]))
    else:
        outputs.append(_output("predict", predictions))
    answer: dict[str, Any] = {"model_name": model, "model_version": str(version), "outputs": outputs}
    if request_id is not None:
        answer["id"] = request_id
    return answer


def _output(name: str, values: Any) -> dict[str, Any]:
    import numpy as np

    array = np.asarray(values)
    data = jsonable(array.reshape(-1))
    return {"name": name, "shape": list(array.shape), "datatype": _datatype(array), "data": data}


def _datatype(array: Any) -> str:
    kind = array.dtype.kind
    if kind == "b":
        return "BOOL"
    if kind in "iu":
        return f"{'U' if kind == 'u' else ''}INT{array.dtype.itemsize * 8}"
    if kind == "f":
        return f"FP{array.dtype.itemsize * 8}"
    return "BYTES"


def metadata(name: str, version: int, schema: InputSchema | None, model_metadata: Any) -> dict[str, Any]:
    """``GET /v2/models/{name}``: the model's inputs and outputs, from its signature."""
    inputs: list[dict[str, Any]] = []
    if schema is not None:
        inputs = [{"name": c.name, "datatype": c.v2_datatype, "shape": [-1]} for c in schema.columns]
    outputs: list[dict[str, Any]] = []
    out_schema = model_metadata.get_output_schema() if model_metadata is not None else None
    if out_schema is not None:
        for i, spec in enumerate(out_schema.inputs):
            kind = getattr(getattr(spec, "type", None), "name", None) or str(getattr(spec, "type", "")) or "string"
            if out_schema.is_tensor_spec():
                kind = str(spec.type)
            outputs.append(
                {
                    "name": spec.name or ("predict" if i == 0 else f"output_{i}"),
                    "datatype": _from_kind(kind),
                    "shape": [-1],
                }
            )
    return {"name": name, "versions": [str(version)], "platform": "mlflow", "inputs": inputs, "outputs": outputs}


def _from_kind(kind: str) -> str:
    import numpy as np

    kinds = {"double": "FP64", "float": "FP32", "long": "INT64", "integer": "INT32", "boolean": "BOOL"}
    if kind in kinds:
        return kinds[kind]
    try:
        return _datatype(np.empty(0, dtype=kind))
    except TypeError:
        return "BYTES"
