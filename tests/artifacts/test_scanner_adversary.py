"""Pickles that would run code when loaded yet scan below "high" (or clean): each one must be high.

Nothing here is ever unpickled; every payload would only create the marker file the fixture checks for.
"""

from __future__ import annotations

import io
import pickle
import struct
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from covex.artifacts.scanner import FileScan, scan_file


@pytest.fixture
def marker(tmp_path: Path) -> Iterator[Path]:
    """The file a malicious pickle would create if anything here ever loaded one."""
    path = tmp_path / "pwned"
    yield path
    assert not path.exists(), "a malicious pickle was loaded"


def scan(path: str, data: bytes) -> FileScan:
    return scan_file(path, io.BytesIO(data))


def worst(result: FileScan) -> str:
    order = {"low": 1, "medium": 2, "high": 3}
    return max((f.severity for f in result.findings), key=order.__getitem__, default="clean")


def text(value: str) -> bytes:
    """SHORT_BINUNICODE's longer sibling: BINUNICODE with a 4-byte length."""
    data = value.encode()
    return b"X" + struct.pack("<I", len(data)) + data


def stack_global(module: str, name: str) -> bytes:
    return text(module) + text(name) + b"\x93"


@pytest.mark.parametrize(
    ("module", "name", "args"),
    [
        ("numpy.testing", "runstring", ("import os; os.system('touch {m}')", {})),  # exec(source, globals)
        ("numpy.distutils.exec_command", "exec_command", ("touch {m}",)),  # a shell command
        ("numpy.distutils.fcompiler.gnu", "Popen", (["touch", "{m}"],)),  # subprocess.Popen, re-exported
        ("sklearn.utils._testing", "check_output", (["touch", "{m}"],)),  # subprocess.check_output, re-exported
        ("sklearn.utils._testing", "assert_run_python_script_without_output", ("open('{m}', 'w')",)),
    ],
)
def test_a_known_library_function_that_runs_code_is_high(marker: Path, module: str, name: str, args: Any) -> None:
    filled = tuple(
        a.format(m=marker) if isinstance(a, str) else [x.format(m=marker) for x in a] if isinstance(a, list) else a
        for a in args
    )
    # module.name(*filled): the args tuple pickled on its own (PROTO and STOP cut off), then REDUCE
    data = b"\x80\x04" + stack_global(module, name) + pickle.dumps(filled, protocol=4)[2:-1] + b"R."

    assert "high" == worst(scan("model.pkl", data))


def test_a_copyreg_extension_hides_os_system(marker: Path) -> None:
    # copyreg.add_extension("os", "system", 240), then EXT1 240 is os.system: the walk pushes an unknown, rates nothing.
    data = (
        b"\x80\x04"
        + stack_global("copyreg", "add_extension")
        + text("os")
        + text("system")
        + b"K\xf0\x87R0"
        + b"\x82\xf0"
        + text(f"touch {marker}")
        + b"\x85R."
    )

    assert "high" == worst(scan("model.pkl", data))


def test_a_cloudpickled_class_whose_setstate_runs_code_is_high(marker: Path) -> None:
    cloudpickle = pytest.importorskip("cloudpickle")
    command = f"touch {marker}"

    class Model:  # pickled by value: BUILD calls its __setstate__, a function the pickle built, while loading
        def __setstate__(self, state: dict[str, Any]) -> None:
            __import__("os").system(command)
            self.__dict__.update(state)

    model = Model()
    model.weights = [1.0]
    data = cloudpickle.dumps(model)

    assert "high" == worst(scan("python_model.pkl", data))


def test_a_numpy_object_array_spelled_without_pipe_o_is_scanned(marker: Path) -> None:
    # np.load(allow_pickle=True) reads descr 'O' as dtype object and unpickles the rest of the file.
    header = b"{'descr': 'O', 'fortran_order': False, 'shape': (1,), }"
    header += b" " * (64 - 10 - len(header) - 1) + b"\n"
    payload = b"\x80\x04" + stack_global("os", "system") + text(f"touch {marker}") + b"\x85R."
    data = b"\x93NUMPY\x01\x00" + struct.pack("<H", len(header)) + header + payload

    assert "high" == worst(scan("weights.npy", data))


@pytest.mark.parametrize("name", ["python_model.txt", "model.json", "model.yaml", "model.onnx"])
def test_a_pickle_without_a_proto_opcode_named_as_text_is_scanned(marker: Path, name: str) -> None:
    # MLmodel names the pickle mlflow loads (python_model:, pickled_model:) whatever its extension.
    data = b"cos\nsystem\n(V" + f"touch {marker}".encode() + b"\ntR."

    result = scan(name, data)

    assert "high" == worst(result) or result.error
