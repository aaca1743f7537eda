"""``covex serve`` as a process: every input format, the Open Inference Protocol, health, version, metrics, errors."""

from __future__ import annotations

import json
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import covex
from tests.serving.conftest import COLUMNS, Serving, split, training_data

ROWS = [[0.9, 0.8, 0.1, 2], [0.1, 0.05, 0.3, 0]]
CSV_HEADER = ",".join(COLUMNS).encode() + b"\n"


def raw_split(first_row: str, columns: str = '"tenure","spend","calls","plan"') -> bytes:
    """A ``dataframe_split`` body written by hand (for what ``json.dumps`` will not write)."""
    return f'{{"dataframe_split": {{"columns": [{columns}], "data": [[{first_row}]]}}}}'.encode()


@pytest.fixture(scope="module")
def churn(template: Path, tmp_path_factory: pytest.TempPathFactory) -> Any:
    from tests.serving.conftest import serve_process

    registry = tmp_path_factory.mktemp("app") / "registry"
    import shutil

    shutil.copytree(template, registry)
    with serve_process("models:/churn@champion", str(registry)) as s:
        yield s


@pytest.fixture(scope="module")
def mlflow_model(template: Path) -> Any:
    """The same version loaded by MLflow itself, with its own scoring server's parser."""
    with covex.Client(template) as c:
        return covex.load_model("models:/churn/1", client=c)


def mlflow_answer(model: Any, body: str, content_type: str = "application/json") -> Any:
    from mlflow.pyfunc import scoring_server

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        r = scoring_server.invocations(body, content_type, model, model.metadata.get_input_schema())
    assert 200 == r.status, r.response
    return json.loads(r.response)


BODIES = {
    "dataframe_split": split(ROWS),
    "dataframe_records": {"dataframe_records": [dict(zip(COLUMNS, r, strict=True)) for r in ROWS]},
    "instances": {"instances": [dict(zip(COLUMNS, r, strict=True)) for r in ROWS]},
    "inputs": {"inputs": {c: [r[i] for r in ROWS] for i, c in enumerate(COLUMNS)}},
    "with params": {**split(ROWS), "params": {}},
}


@pytest.mark.parametrize("kind", list(BODIES))
def test_every_mlflow_json_format_answers_as_mlflow_does(churn: Serving, mlflow_model: Any, kind: str) -> None:
    body = json.dumps(BODIES[kind])
    r = churn.post("/invocations", content=body, headers={"Content-Type": "application/json"})
    assert (200, mlflow_answer(mlflow_model, body)) == (r.status_code, r.json())
    assert "1" == r.headers["Covex-Model-Version"]


def test_csv_answers_as_mlflow_does(churn: Serving, mlflow_model: Any) -> None:
    X, _ = training_data()
    body = X.head(20).to_csv(index=False)
    r = churn.post("/invocations", content=body, headers={"Content-Type": "text/csv"})
    assert (200, mlflow_answer(mlflow_model, body, "text/csv")) == (r.status_code, r.json())
    assert 20 == len(r.json()["predictions"])


def test_the_predictions_are_the_models(churn: Serving, mlflow_model: Any) -> None:
    X, _ = training_data()
    r = churn.post("/invocations", json={"dataframe_split": X.head(100).to_dict(orient="split")})
    assert mlflow_model.predict(X.head(100)).tolist() == r.json()["predictions"]


def test_request_id_is_echoed_or_made(churn: Serving) -> None:
    given = churn.post("/invocations", json=split(ROWS), headers={"X-Request-ID": "abc-123"})
    made = churn.post("/invocations", json=split(ROWS))
    bad = churn.get("/ping", headers={"X-Request-ID": "no spaces allowed"})
    assert "abc-123" == given.headers["X-Request-ID"]
    assert 32 == len(made.headers["X-Request-ID"]) and "no spaces allowed" != bad.headers["X-Request-ID"]


def test_health_ready_and_version(churn: Serving, template: Path) -> None:
    with covex.Client(template) as c:
        v1 = c.get_version("models:/churn/1")
    version = churn.get("/version").json()
    assert {"model": "churn", "version": 1, "uri": "models:/churn@champion", "version_uri": "models:/churn/1"} == {
        k: version[k] for k in ("model", "version", "uri", "version_uri")
    }
    assert v1.manifest_digest == version["manifest_digest"] and version["loaded_since"].endswith("Z")
    for path in ("/ping", "/health", "/ready", "/v2/health/live", "/v2/health/ready", "/v2/models/churn/ready"):
        r = churn.get(path)
        assert (200, "1") == (r.status_code, r.headers["Covex-Model-Version"]), path


def test_open_inference_protocol(churn: Serving, mlflow_model: Any) -> None:
    types = {"tenure": "FP64", "spend": "FP64", "calls": "FP64", "plan": "INT64"}
    meta = churn.get("/v2/models/churn").json()
    assert [{"name": c, "datatype": types[c], "shape": [-1]} for c in COLUMNS] == meta["inputs"]
    assert ("churn", ["1"]) == (meta["name"], meta["versions"])
    by_column = {
        "id": "r1",
        "inputs": [
            {"name": c, "shape": [2], "datatype": types[c], "data": [r[i] for r in ROWS]} for i, c in enumerate(COLUMNS)
        ],
    }
    as_rows = {"inputs": [{"name": "input-0", "shape": [2, 4], "datatype": "FP64", "data": ROWS}]}
    expected = mlflow_answer(mlflow_model, json.dumps(split(ROWS)))["predictions"]
    for body in (by_column, as_rows):
        r = churn.post("/v2/models/churn/infer", json=body)
        assert 200 == r.status_code, r.text
        answer = r.json()
        assert ("churn", "1") == (answer["model_name"], answer["model_version"])
        assert [{"name": "predict", "shape": [2], "datatype": "INT64", "data": expected}] == answer["outputs"]
    assert "r1" == churn.post("/v2/models/churn/infer", json=by_column).json()["id"]
    other = churn.post("/v2/models/other/infer", json=by_column)
    assert (404, "model 'other' is not served here; this server serves 'churn'") == (
        other.status_code,
        other.json()["error"],
    )
    # KServe and Triton clients name the version: the one served answers, another is not here.
    versioned = churn.post("/v2/models/churn/versions/1/infer", json=as_rows)
    assert (200, "1") == (versioned.status_code, versioned.json()["model_version"])
    assert ("churn", 200) == (churn.get("/v2/models/churn/versions/1").json()["name"], 200)
    assert 200 == churn.get("/v2/models/churn/versions/1/ready").status_code
    elsewhere = churn.post("/v2/models/churn/versions/2/infer", json=as_rows)
    assert (404, True) == (elsewhere.status_code, "this server serves version 1" in elsewhere.json()["error"])


BAD = [
    # (what, content type, body, status, field, words in the message)
    ("missing column", "application/json", split([[0.1, 0.2, 0.3]], COLUMNS[:3]), 400, "plan", "missing column"),
    ("unknown column", "application/json", split([[*ROWS[0], 1]], [*COLUMNS, "zip"]), 400, "zip", "unknown column"),
    ("string for a number", "application/json", split([[0.1, "x", 0.3, 1]]), 400, "spend", "expected double"),
    ("fraction for a long", "application/json", split([[0.1, 0.2, 0.3, 1.5]]), 400, "plan", "expected long"),
    ("null for a long", "application/json", split([[0.1, 0.2, 0.3, None]]), 400, "plan", "required"),
    ("boolean for a number", "application/json", split([[True, 0.2, 0.3, 1]]), 400, "tenure", "expected double"),
    ("ragged row", "application/json", {"dataframe_split": {"columns": COLUMNS, "data": [[1.0]]}}, 400, None, "4"),
    ("two formats", "application/json", {**split(ROWS), "instances": []}, 400, "body", "exactly one"),
    ("no format", "application/json", {"data": []}, 400, "body", "exactly one"),
    ("a list", "application/json", [1, 2], 400, "body", "JSON object"),
    ("not JSON", "application/json", b"{nope", 400, "body", "not valid JSON"),
    ("not UTF-8", "application/json", b'{"a": "\xff"}', 400, "body", "UTF-8"),
    ("bad CSV", "text/csv", b"tenure,spend\n1,2,3,4,5\n", 400, None, ""),
    ("CSV of text", "text/csv", b"tenure,spend,calls,plan\na,b,c,d\n", 400, "tenure", "expected double"),
    ("records not objects", "application/json", {"dataframe_records": [[1, 2]]}, 400, None, "object"),
    ("no content type", "", split(ROWS), 415, None, "Content-Type"),
    ("XML", "application/xml", b"<a/>", 415, None, "Content-Type"),
    ("latin-1", "application/json; charset=latin-1", split(ROWS), 415, None, "UTF-8"),
    ("2**70 for a long", "application/json", split([[0.1, 0.2, 0.3, 2**70]]), 400, "plan", "out of range for long"),
    ("below int64", "application/json", split([[0.1, 0.2, 0.3, -(2**63) - 1]]), 400, "plan", "out of range for long"),
    ("1e300 for a long", "application/json", split([[0.1, 0.2, 0.3, 1e300]]), 400, "plan", "out of range for long"),
    ("2**2000 for a double", "application/json", split([[2**2000, 0.2, 0.3, 1]]), 400, "tenure", "range for double"),
    ("CSV uint64 long", "text/csv", CSV_HEADER + b"0.1,0.2,0.3,18446744073709551615\n", 400, "plan", "range for long"),
    ("CSV huge long", "text/csv", CSV_HEADER + b"0.1,0.2,0.3,99999999999999999999999\n", 400, "plan", "range for long"),
    ("CSV inf", "text/csv", CSV_HEADER + b"0.1,-inf,0.3,1\n", 400, "spend", "not a finite number"),
    ("NaN", "application/json", raw_split("NaN, 0.2, 0.3, 1"), 400, "dataframe_split.data[0][0]", "not a finite"),
    ("Infinity", "application/json", raw_split("0.1, Infinity, 0.3, 1"), 400, "dataframe_split.data[0][1]", "finite"),
    ("-Infinity", "application/json", raw_split("0.1, 0.2, -Infinity, 1"), 400, "dataframe_split.data[0][2]", "finite"),
    ("1e400", "application/json", raw_split("1e400, 0.2, 0.3, 1"), 400, "dataframe_split.data[0][0]", "not a finite"),
    (
        "lone surrogate column",
        "application/json",
        raw_split("0.1, 0.2, 0.3, 1, 5", '"tenure","spend","calls","plan","\\ud800"'),
        400,
        "dataframe_split.columns[4]",
        "surrogate",
    ),
    ("no rows", "application/json", split([]), 400, "dataframe_split.data", "no rows to score"),
    ("no rows in columns", "application/json", {"instances": {c: [] for c in COLUMNS}}, 400, "instances", "no rows"),
    ("no records", "application/json", {"dataframe_records": []}, 400, "dataframe_records", "no rows to score"),
    ("CSV header only", "text/csv", CSV_HEADER, 400, "body", "no rows to score"),
    ("CSV column twice", "text/csv", CSV_HEADER[:-1] + b",calls\n0.1,0.2,0.3,1,4\n", 400, "calls", "given twice"),
]


@pytest.mark.parametrize(("what", "ctype", "body", "status", "field", "words"), BAD, ids=[b[0] for b in BAD])
def test_bad_input_gets_a_4xx_naming_the_field(
    churn: Serving, what: str, ctype: str, body: Any, status: int, field: str | None, words: str
) -> None:
    content = body if isinstance(body, bytes) else json.dumps(body).encode()
    r = churn.post("/invocations", content=content, headers={"Content-Type": ctype} if ctype else {})
    assert status == r.status_code, r.text
    answer = r.json()
    assert words in answer["message"]
    if field is not None:
        assert field == answer["field"]
    assert "Traceback" not in r.text and "1" == r.headers["Covex-Model-Version"]


def v2_columns(rows: int, **data: list[Any]) -> dict[str, Any]:
    """An infer body with one tensor per column, ``rows`` rows of ``ROWS[0]`` unless ``data`` says otherwise."""
    types = {"tenure": "FP64", "spend": "FP64", "calls": "FP64", "plan": "INT64"}
    tensors = [
        {"name": c, "shape": [rows], "datatype": t, "data": data.get(c, [ROWS[0][i]] * rows)}
        for i, (c, t) in enumerate(types.items())
    ]
    return {"inputs": tensors}


V2_BAD = [
    ({"inputs": []}, "inputs"),
    (v2_columns(0), "inputs"),
    ({"inputs": [{"name": "rows", "shape": [0, 4], "datatype": "FP64", "data": []}]}, "inputs"),
    (v2_columns(1, plan=[2**64]), "plan"),
    (v2_columns(1, tenure=[2**2000]), "tenure"),
    (b'{"inputs": [{"name": "tenure", "shape": [1], "datatype": "BYTES", "data": ["\\udc00"]}]}', "inputs[0].data[0]"),
    (b'{"inputs": [{"name": "tenure", "shape": [1], "datatype": "FP64", "data": [NaN]}]}', "inputs[0].data[0]"),
    ({"inputs": [{"name": "tenure", "shape": [1], "datatype": "FP64", "data": [1.0, 2.0]}]}, "inputs[0].data"),
    ({"inputs": [{"name": "tenure", "shape": [1], "datatype": "DOUBLE", "data": [1.0]}]}, "inputs[0].datatype"),
    ({"inputs": [{"name": "x", "shape": [1, 3], "datatype": "FP64", "data": [1.0, 2.0, 3.0]}]}, "inputs[0].shape"),
    ({"inputs": [{"name": "tenure", "shape": [1], "datatype": "FP64", "data": [1.0]}]}, "spend"),
]


@pytest.mark.parametrize(("body", "field"), V2_BAD)
def test_bad_v2_input_gets_a_400_naming_the_field(churn: Serving, body: Any, field: str) -> None:
    content = body if isinstance(body, bytes) else json.dumps(body).encode()
    r = churn.post("/v2/models/churn/infer", content=content, headers={"Content-Type": "application/json"})
    assert (400, field) == (r.status_code, r.json()["field"]), r.text
    assert r.json()["error"]


def test_an_oversized_body_is_refused(template: Path, serve: Callable[..., Any]) -> None:
    with serve("models:/churn/1", "--max-body", "2000") as s:
        small = s.post("/invocations", json=split(ROWS))
        big = s.post("/invocations", json=split(ROWS * 100))
        chunked = s.post("/invocations", content=iter([json.dumps(split(ROWS * 100)).encode()]))
        assert (200, 413, 413) == (small.status_code, big.status_code, chunked.status_code)
        assert "REQUEST_TOO_LARGE" == big.json()["error_code"] and "--max-body" in big.json()["message"]
        # A Parquet body is read only when its footer's rows x columns x 8 bytes stay within 4 x --max-body
        small_file, packed = parquet(ROWS), parquet(ROWS * 1000)
        assert len(small_file) < 2000 and len(packed) < 2000
        few = s.post("/invocations", content=small_file, headers={"Content-Type": PARQUET})
        bomb = s.post("/invocations", content=packed, headers={"Content-Type": PARQUET})
        assert (200, 413) == (few.status_code, bomb.status_code), bomb.text
        assert "2000 rows of 4 columns" in bomb.json()["message"] and "--max-body" in bomb.json()["message"]
        assert 3 == s.metrics()['covex_serving_errors_total{kind="too_large"}']


PARQUET = "application/vnd.apache.parquet"


def parquet(rows: list[list[Any]]) -> bytes:
    """``rows`` as a zstd Parquet file, without pandas' schema metadata (to keep it small)."""
    import io

    import pandas as pd
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.Table.from_pandas(pd.DataFrame(rows, columns=COLUMNS), preserve_index=False)
    out = io.BytesIO()
    pq.write_table(table.replace_schema_metadata(None), out, compression="zstd")
    return out.getvalue()


def test_a_model_failing_on_valid_input_is_a_500_and_the_server_keeps_serving(serve: Callable[..., Any]) -> None:
    def body(x: float) -> dict[str, Any]:
        return split([[x, 0.0, "a"]], ["x", "sleep", "kind"])

    with serve("models:/echo/latest") as s:
        failed = s.post("/invocations", json=body(-1.0))
        ok = s.post("/invocations", json=body(2.0))
        assert 500 == failed.status_code and "x must not be negative" in failed.json()["message"]
        assert "MODEL_ERROR" == failed.json()["error_code"] and "Traceback" not in failed.text
        assert (200, [{"double": 4.0, "kind": "a"}]) == (ok.status_code, ok.json()["predictions"])
        wrong = s.post("/invocations", json=split([[1.0, 0.0, 7]], ["x", "sleep", "kind"]))
        assert (400, "kind") == (wrong.status_code, wrong.json()["field"])
        metrics = s.metrics()
        assert 1 == metrics['covex_serving_errors_total{kind="model_error"}']
        assert 1 == metrics['covex_serving_requests_total{code="500",endpoint="invocations"}']


def test_metrics(churn: Serving) -> None:
    before = churn.metrics()
    churn.post("/invocations", json=split(ROWS))
    churn.post("/invocations", json=split([[0.1]], ["tenure"]))
    after = churn.metrics()

    def delta(key: str) -> float:
        return after.get(key, 0.0) - before.get(key, 0.0)

    assert 1 == delta('covex_serving_requests_total{code="200",endpoint="invocations"}')
    assert 1 == delta('covex_serving_requests_total{code="400",endpoint="invocations"}')
    assert 1 == delta('covex_serving_errors_total{kind="bad_input"}')
    assert 2 == delta("covex_serving_rows_total")
    assert 1 == delta('covex_serving_request_seconds_count{endpoint="invocations"}')
    assert 1 == after['covex_serving_model_version{model="churn"}']
    assert 0 == after["covex_serving_swaps_total"] == after["covex_serving_swap_failures_total"]


def test_token_file_guards_scoring_not_health(serve: Callable[..., Any], tmp_path: Path) -> None:
    token_file = tmp_path / "token"
    token_file.write_text("s3cret\n")
    with serve("models:/churn/1", "--token-file", str(token_file)) as s:
        none = s.post("/invocations", json=split(ROWS))
        wrong = s.post("/invocations", json=split(ROWS), headers={"Authorization": "Bearer nope"})
        right = s.post("/invocations", json=split(ROWS), headers={"Authorization": "Bearer s3cret"})
        v2 = s.post("/v2/models/churn/infer", json={"inputs": []})
        assert (401, 401, 200, 401) == (none.status_code, wrong.status_code, right.status_code, v2.status_code)
        assert "Bearer" == none.headers["WWW-Authenticate"]
        # /v2/models/... needs the token, and says nothing of which model is served without it
        other = s.post("/v2/models/other/infer", json={"inputs": []})
        guarded = [s.get(p).status_code for p in ("/v2/models/churn", "/v2/models/churn/ready", "/v2/models/x")]
        assert (401, [401, 401, 401]) == (other.status_code, guarded), other.text
        token = {"Authorization": "Bearer s3cret"}
        assert 404 == s.post("/v2/models/other/infer", json={"inputs": []}, headers=token).status_code
        assert 200 == s.get("/v2/models/churn/ready", headers=token).status_code
        open_paths = (
            "/ping",
            "/health",
            "/ready",
            "/version",
            "/metrics",
            "/v2",
            "/v2/health/live",
            "/v2/health/ready",
        )
        assert all(s.get(p).status_code == 200 for p in open_paths)


def test_unknown_paths_and_methods(churn: Serving) -> None:
    assert 404 == churn.get("/nope").status_code
    r = churn.get("/invocations")
    assert (405, "METHOD_NOT_ALLOWED") == (r.status_code, r.json()["error_code"])


def test_ping_answers_while_the_model_is_slow_even_after_quick_requests(serve: Callable[..., Any]) -> None:
    """Scoring never holds the event loop: a model fast for a while, then slow (or slow and failing),
    leaves /ping and the other connections answering."""
    import threading
    import time

    def body(pause: float, x: float = 1.0) -> dict[str, Any]:
        return split([[x, pause, "a"]], ["x", "sleep", "kind"])

    with serve("models:/echo/latest") as s:
        for _ in range(20):
            assert 200 == s.post("/invocations", json=body(0.0)).status_code
        for x in (1.0, -1.0):  # slow and answering, then slow and raising
            slow = threading.Thread(target=s.post, args=("/invocations",), kwargs={"json": body(3.0, x)})
            slow.start()
            try:
                time.sleep(0.3)  # the slow request is being scored
                started = time.monotonic()
                assert 200 == s.get("/ping").status_code
                assert time.monotonic() - started < 1.5, "the event loop was held by the model"
            finally:
                slow.join()
