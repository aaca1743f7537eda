"""Model files scanned without being loaded: real pickles, joblib files, torch-style and skops archives."""

from __future__ import annotations

import gzip
import io
import json
import os
import pickle
import struct
import sys
import types
import zipfile
from collections import OrderedDict
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from unittest import mock

import pytest

from covex.artifacts import scanner
from covex.artifacts.scanner import SCANNER_NAME, FileScan, Finding, scan_file, scanner_version


@pytest.fixture
def marker(tmp_path: Path) -> Iterator[Path]:
    """The file a malicious pickle would create if anything here ever loaded one."""
    path = tmp_path / "pwned"
    yield path
    assert not path.exists(), "a malicious pickle was loaded"


def evil(marker: Path, call: Any = os.system) -> Any:
    class Evil:
        def __reduce__(self) -> tuple[Any, tuple[str]]:
            return call, (f"touch {marker}",)

    return Evil()


def scan(path: str, data: bytes) -> FileScan:
    return scan_file(path, io.BytesIO(data))


def severities(result: FileScan) -> dict[str, str]:
    return {f.global_name: f.severity for f in result.findings}


def zipped(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return buffer.getvalue()


def test_the_interface_names_the_scanner_and_its_version() -> None:
    finding = Finding("m.pkl", "GLOBAL", "posix.system", "high", 2, "why")

    assert "picklescan" == SCANNER_NAME
    assert scanner_version().count(".") >= 1
    expected = {"file": "m.pkl", "operation": "GLOBAL", "global": "posix.system", "severity": "high", "offset": 2}
    assert {**expected, "detail": "why"} == finding.to_dict()


@pytest.mark.parametrize("protocol", range(6))
def test_plain_data_is_clean(protocol: int) -> None:
    data = pickle.dumps({"a": [1, 2.5, "x", None, True], "b": (1, (2, 3)), "c": {"d": -(10**30)}}, protocol=protocol)

    assert FileScan("data.pkl", "pickle", (), None) == scan("data.pkl", data)


@pytest.mark.parametrize("protocol", [0, 2, 4, 5])
def test_os_system_is_high_at_the_opcode_that_imports_it(marker: Path, protocol: int) -> None:
    data = pickle.dumps(evil(marker), protocol=protocol)

    result = scan("model.pkl", data)

    [finding] = result.findings
    assert finding.global_name in {"posix.system", "os.system"}
    assert ("high", None) == (finding.severity, result.error)
    assert isinstance(finding.offset, int)
    assert data[finding.offset : finding.offset + 1] == (b"c" if protocol < 4 else b"\x93")
    assert ("GLOBAL" if protocol < 4 else "STACK_GLOBAL") == finding.operation
    assert "deny list" in finding.detail


def test_builtins_eval_by_inst_and_exec_by_reduce_are_high(marker: Path) -> None:
    inst = b"(S'print(1)'\nibuiltins\neval\n."
    reduce = pickle.dumps(evil(marker, exec), protocol=4)

    assert {"builtins.eval": "high"} == severities(scan("a.pkl", inst))
    assert "INST" == scan("a.pkl", inst).findings[0].operation
    assert {"builtins.exec": "high"} == severities(scan("b.pkl", reduce))


def test_stack_global_operands_from_the_memo_or_behind_a_mark_are_resolved() -> None:
    via_memo = b"\x80\x04\x8c\x05posixq\x070\x8c\x06systemq\x030h\x07h\x03\x93\x8c\x04true\x85R."
    behind_mark = b"\x80\x04\x8c\x05posix\x8c\x06system(\x8c\x01x1\x93\x8c\x04true\x85R."

    memo = scan("a.pkl", via_memo)
    mark = scan("b.pkl", behind_mark)

    assert {"posix.system": "high"} == severities(memo)
    assert "high" == severities(mark)["posix.system"]  # picklescan alone sees an unresolvable import here
    assert via_memo[memo.findings[0].offset or 0] == 0x93


def test_a_dotted_name_is_rated_by_what_it_reaches_and_a_loader_is_not_low() -> None:
    def stack_global(module: str, name: str) -> bytes:
        text = [b"\x8c" + bytes([len(s)]) + s.encode() for s in (module, name, "true")]
        return b"\x80\x04" + text[0] + text[1] + b"\x93" + text[2] + b"\x85R."

    # Protocol 4 reads "f2py.os.system" attribute by attribute from numpy: os.system, which picklescan rates suspicious.
    assert {"numpy.f2py.os.system": "high"} == severities(scan("a.pkl", stack_global("numpy", "f2py.os.system")))
    assert {"sklearn.utils.os.system": "high"} == severities(scan("b.pkl", stack_global("sklearn", "utils.os.system")))
    nested_class = stack_global("sklearn", "base.BaseEstimator")
    assert {"sklearn.base.BaseEstimator": "low"} == severities(scan("c.pkl", nested_class))
    assert {"numpy.load": "high"} == severities(scan("d.pkl", stack_global("numpy", "load")))


def test_a_renamed_pickle_is_still_a_pickle(marker: Path) -> None:
    for name, protocol in [("weights.bin", 4), ("model.dat", 4), ("model.dat", 0), ("blob", 0), ("x.onnx.bak", 2)]:
        result = scan(name, pickle.dumps(evil(marker), protocol=protocol))

        assert ("pickle", ["high"]) == (result.format, [f.severity for f in result.findings]), name


def test_a_fitted_sklearn_model_has_low_findings_only() -> None:
    from sklearn.linear_model import LogisticRegression

    model = LogisticRegression().fit([[0.0], [1.0], [2.0], [3.0]], [0, 0, 1, 1])

    result = scan("model.pkl", pickle.dumps(model))

    assert "low" == severities(result)["sklearn.linear_model._logistic.LogisticRegression"]
    assert {"low"} == {f.severity for f in result.findings}
    assert all(isinstance(f.offset, int) for f in result.findings)
    assert ("pickle", None) == (result.format, result.error)


def test_a_joblib_file_is_walked_past_its_arrays(marker: Path) -> None:
    joblib = pytest.importorskip("joblib")
    np = pytest.importorskip("numpy")
    objects = np.array([1, "two", None], dtype=object)
    benign, hostile = io.BytesIO(), io.BytesIO()
    joblib.dump({"w": np.arange(1000.0), "names": np.array(["ab", "c"]), "objects": objects, "n": 3}, benign)
    joblib.dump({"w": np.arange(1000.0).reshape(10, 100), "evil": evil(marker)}, hostile)

    clean = scan("model.joblib", benign.getvalue())
    caught = scan("model.joblib", hostile.getvalue())

    assert ("joblib", None) == (clean.format, clean.error)
    assert {"low"} == {f.severity for f in clean.findings}
    assert ("joblib", None) == (caught.format, caught.error)
    assert "high" == severities(caught).get("posix.system")  # it comes after the array: picklescan stops before


def test_arrays_of_objects_in_a_joblib_file_are_not_misread() -> None:
    joblib = pytest.importorskip("joblib")
    from sklearn.preprocessing import OneHotEncoder

    buffer = io.BytesIO()
    joblib.dump(OneHotEncoder().fit([["a", "x"], ["b", "y"]]), buffer)

    result = scan("encoder.joblib", buffer.getvalue())

    # picklescan alone reads a memo of the nested pickle as an import of "None.dtype"
    assert ({"low"}, None) == ({f.severity for f in result.findings}, result.error)


def test_a_compressed_joblib_file_is_inflated_and_scanned(marker: Path) -> None:
    joblib = pytest.importorskip("joblib")
    np = pytest.importorskip("numpy")
    for compress in ["zlib", "gzip", "bz2", "xz", "lzma"]:
        buffer = io.BytesIO()
        joblib.dump({"w": np.arange(100.0), "evil": evil(marker)}, buffer, compress=(compress, 3))

        result = scan("model.joblib", buffer.getvalue())

        assert ("joblib", "high", None) == (result.format, severities(result).get("posix.system"), result.error)


def torch_style(payload: Any) -> bytes:
    """A PyTorch zip as torch.save writes it, from stand-in torch classes (torch itself is not needed)."""
    torch, utils = types.ModuleType("torch"), types.ModuleType("torch._utils")

    class FloatStorage:
        pass

    def _rebuild_tensor_v2(*args: Any) -> None:
        raise AssertionError("never called")

    FloatStorage.__module__, _rebuild_tensor_v2.__module__ = "torch", "torch._utils"
    FloatStorage.__qualname__, _rebuild_tensor_v2.__qualname__ = "FloatStorage", "_rebuild_tensor_v2"
    torch.FloatStorage, utils._rebuild_tensor_v2 = FloatStorage, _rebuild_tensor_v2  # type: ignore[attr-defined]

    class Tensor:
        def __reduce__(self) -> Any:
            return _rebuild_tensor_v2, (FloatStorage(), 0, (2, 2), (2, 1), False, OrderedDict())

    class Pickler(pickle.Pickler):
        def persistent_id(self, obj: Any) -> Any:
            return ("storage", FloatStorage, "0", "cpu", 4) if isinstance(obj, FloatStorage) else None

    buffer = io.BytesIO()
    with mock.patch.dict(sys.modules, {"torch": torch, "torch._utils": utils}):
        Pickler(buffer, protocol=2).dump(OrderedDict(weight=Tensor(), extra=payload))
    data = struct.pack("<4f", 1.0, 2.0, 3.0, 4.0)
    return zipped({"archive/data.pkl": buffer.getvalue(), "archive/data/0": data, "archive/version": b"3\n"})


def test_a_torch_style_zip_is_clean_and_its_pickle_is_scanned(marker: Path) -> None:
    clean = scan("model.pt", torch_style(None))
    hostile = scan("model.pt", torch_style(evil(marker)))

    assert FileScan("model.pt", "pytorch", (), None) == clean
    [finding] = hostile.findings
    assert ("model.pt:archive/data.pkl", "high") == (finding.file, finding.severity)


def test_pickles_inside_zips_are_found_nested_and_a_bomb_is_refused(marker: Path, monkeypatch: Any) -> None:
    bad = pickle.dumps(evil(marker))
    data = zipped({"README.md": b"# model\n", "inner/model.pkl": bad, "more.zip": zipped({"x.pkl": bad})})

    result = scan("bundle.zip", data)

    assert {"bundle.zip:inner/model.pkl", "bundle.zip:more.zip:x.pkl"} == {f.file for f in result.findings}
    assert ("zip", None) == (result.format, result.error)
    monkeypatch.setattr(scanner, "MAX_NESTED_ZIP_BYTES", 100)
    refused = scan("bundle.zip", data)
    assert "bundle.zip:more.zip: an archive inside another, larger than 100 bytes" in (refused.error or "")


def test_an_encrypted_member_is_an_error(marker: Path) -> None:
    data = bytearray(zipped({"model.pkl": pickle.dumps(evil(marker)), "README.md": b"hi"}))
    for signature, at in [(b"PK\x03\x04", 6), (b"PK\x01\x02", 8)]:
        start = data.find(signature)
        data[start + at] |= 1

    result = scan("bundle.zip", bytes(data))

    assert ((), "bundle.zip:model.pkl: encrypted: not analysed") == (result.findings, result.error)


def test_a_legacy_torch_file_ends_in_raw_tensor_bytes_that_are_no_error() -> None:
    data = b"".join(pickle.dumps(x, protocol=2) for x in [0x1950A86A20F9469CFC6C, 1001, {"little_endian": True}])
    data += pickle.dumps(OrderedDict(w=1), protocol=2) + pickle.dumps(["0"], protocol=2)
    data += struct.pack("<q4f", 4, 1.0, 2.0, 3.0, 4.0)

    assert FileScan("old.pt", "pickle", (), None) == scan("old.pt", data)


def test_a_skops_file_lists_the_types_skops_does_not_trust() -> None:
    sio = pytest.importorskip("skops.io")
    from sklearn.linear_model import LogisticRegression

    model = LogisticRegression().fit([[0.0], [1.0], [2.0], [3.0]], [0, 0, 1, 1])
    schema = {
        **{"__class__": "eval", "__module__": "builtins", "__loader__": "FunctionNode", "__id__": 1},
        **{"content": {"module_path": "builtins", "function": "eval"}, "protocol": 2, "_skops_version": "0.16.0"},
    }

    real = scan("model.skops", sio.dumps(model))
    forged = scan("model.skops", zipped({"schema.json": json.dumps(schema).encode()}))
    broken = scan("model.skops", zipped({"schema.json": b"{}"}))

    assert ("skops", None) == (real.format, real.error)
    assert {f.severity for f in real.findings} <= {"low"}
    [finding] = forged.findings
    assert ("skops type", "builtins.eval", "high") == (finding.operation, finding.global_name, finding.severity)
    assert forged.error is None
    assert "skops could not read its schema" in (broken.error or "")


def test_a_safetensors_file_is_read_by_its_header_only() -> None:
    header = json.dumps({"w": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}}).encode()
    data = struct.pack("<Q", len(header)) + header + struct.pack("<2f", 1.0, 2.0)

    assert FileScan("model.safetensors", "safetensors", (), None) == scan("model.safetensors", data)
    assert "safetensors" == scan("weights.bin", data).format


def test_numpy_arrays_are_clean_unless_they_hold_objects(marker: Path) -> None:
    np = pytest.importorskip("numpy")
    plain, objects = io.BytesIO(), io.BytesIO()
    np.save(plain, np.arange(10))
    np.save(objects, np.array([evil(marker)], dtype=object), allow_pickle=True)

    assert FileScan("a.npy", "numpy", (), None) == scan("a.npy", plain.getvalue())
    assert "high" == severities(scan("b.npy", objects.getvalue())).get("posix.system")


def test_a_cloudpickled_function_is_custom_code() -> None:
    cloudpickle = pytest.importorskip("cloudpickle")

    result = scan("python_model.pkl", cloudpickle.dumps(lambda x: x + 1))

    assert "cloudpickle" == result.format
    assert "medium" == severities(result)["cloudpickle.cloudpickle._make_function"]
    assert {"medium"} == {f.severity for f in result.findings}  # code built, none run: custom code to review


class _RunsOnLoad:
    """Unpickling this calls a cloudpickled function (which never runs here: the scan loads nothing)."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[object, tuple[()]]:
        marker = self.marker
        return (lambda: marker.touch(), ())


def test_a_cloudpickle_that_calls_its_own_function_while_loading_is_high(marker: Path) -> None:
    cloudpickle = pytest.importorskip("cloudpickle")

    result = scan("python_model.pkl", cloudpickle.dumps(_RunsOnLoad(marker)))

    [call] = [f for f in result.findings if f.severity == "high"]
    assert ("REDUCE", "") == (call.operation, call.global_name) and isinstance(call.offset, int)


def test_a_truncated_pickle_that_imported_something_is_an_error(marker: Path) -> None:
    data = pickle.dumps([evil(marker), list(range(100))], protocol=4)

    result = scan("model.pkl", data[:-40])

    assert "high" == severities(result)["posix.system"]
    assert "breaks off after importing globals" in (result.error or "")
    assert FileScan("plain.pkl", "pickle", (), None) == scan("plain.pkl", pickle.dumps(list(range(50)))[:-20])


def test_empty_text_and_unknown_files_have_no_findings() -> None:
    assert FileScan("empty.pkl", "pickle", (), None) == scan("empty.pkl", b"")
    assert FileScan("empty", "unknown", (), None) == scan("empty", b"")
    assert FileScan("README.md", "text", (), None) == scan("README.md", b"# A model\nimport os\n")
    assert FileScan("m/MLmodel", "yaml", (), None) == scan("m/MLmodel", b"flavors:\n  python_function: {}\n")
    assert FileScan("requirements.txt", "text", (), None) == scan("requirements.txt", b"scikit-learn==1.5\n")
    assert FileScan("data.bin", "pickle", (), None) == scan("data.bin", os.urandom(0) + bytes(range(256)) * 4)
    assert "unknown" == scan("model.h5", b"\x89HDF\r\n\x1a\n" + bytes(64)).format
    assert FileScan("Dockerfile", "unknown", (), None) == scan("Dockerfile", b"import os\nos.system('ls')\n")
    noise = bytes((i * 7919 + 13) % 251 for i in range(1 << 16))
    assert FileScan("weights.bin", "pickle", (), None) == scan("weights.bin", noise)


def test_a_pickle_larger_than_the_budget_is_refused(monkeypatch: Any) -> None:
    monkeypatch.setattr(scanner, "MAX_PICKLE_BYTES", 64)

    result = scan("big.pkl", pickle.dumps(["x" * 100, OrderedDict()]))

    assert "big.pkl: more than 64 bytes of pickle: not analysed" == result.error


def test_a_gzip_wrapped_pickle_is_inflated(marker: Path) -> None:
    result = scan("model.pkl.gz", gzip.compress(pickle.dumps(evil(marker))))

    assert ("pickle", "high") == (result.format, severities(result).get("posix.system"))


def test_raw_bytes_past_the_budget_are_stepped_over_unread(tmp_path: Path, marker: Path) -> None:
    """A 1.5 GiB bytes payload (a sparse file: nothing is written) costs neither memory nor the 1 GiB budget,
    and what follows it is still seen."""
    size = 3 << 29
    path = tmp_path / "big.pkl"
    with path.open("wb") as f:
        f.write(b"\x80\x04\x8e" + size.to_bytes(8, "little"))
        f.seek(size, 1)
        f.write(b"0" + pickle.dumps(evil(marker), protocol=4)[2:])  # POP the bytes, then the payload
    with path.open("rb") as f:
        result = scan_file("big.pkl", f)
    assert (None, "high") == (result.error, severities(result).get("posix.system"))
