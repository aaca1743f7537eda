"""Model files scanned without being loaded: what a pickle would import, rated before a version is promoted.

picklescan (the scanner Hugging Face Hub uses) rates each global a pickle imports: safe list, deny list, neither.
This module finds the pickles (plain, joblib, PyTorch, NumPy, in zips, compressed), turns picklescan's ratings
into severities and says at which byte each import sits. Nothing is unpickled; nothing a file names is imported.
"""

from __future__ import annotations

import ast
import bz2
import functools
import importlib.metadata
import io
import json
import logging
import lzma
import posixpath
import re
import struct
import zlib
from dataclasses import astuple, dataclass
from typing import IO, Any, BinaryIO, Literal, NamedTuple

import yaml
from picklescan.relaxed_zipfile import RelaxedZipFile  # type: ignore[import-untyped]
from picklescan.scanner import SafetyLevel, scan_pickle_bytes  # type: ignore[import-untyped]

from covex.artifacts.pickle_walk import MAX_PICKLE_BYTES, Reader, Refused, Walk
from covex.domain.errors import CovexError

SCANNER_NAME = "picklescan"
Severity = Literal["low", "medium", "high"]

# What one file may cost at most, whatever it claims: past a bound, the part not analysed is an error.
# One pickle stream is read up to this, each read counting 128 more: picklescan, which keeps every opcode in
# memory, then keeps some 4 million at most. The arrays joblib writes between opcodes are skipped, not read.
MAX_INFLATED_BYTES = 256 << 20  # a compressed file (joblib's compress=) is inflated into memory
MAX_NESTED_ZIP_BYTES = 64 << 20  # so is a zip inside a zip
MAX_DEPTH = 3  # containers (zip, compression) inside containers
MAX_MEMBERS = 100_000
MAX_SCHEMA_BYTES = 64 << 20  # a skops file's schema.json

# Suspicious imports from these packages are what ordinary models are made of (estimators, arrays, frames with
# pyarrow's strings, boosters, tensors, containers, dates). The deny list made their dangerous members "high"; the
# rest are "low" so a reviewer sees custom code ("medium") first. Short on purpose: each root widens what is low.
_KNOWN = {*"sklearn numpy scipy pandas pyarrow xgboost lightgbm catboost torch joblib collections datetime".split()}
# What pickle itself writes for plain data under protocols 0-3 (sets, bytes, objects rebuilt by copyreg).
_PLAIN = re.compile(
    r"(builtins|__builtin__)\.(set|frozenset|bytearray|complex|slice|object)|copy_?reg\._reconstructor|_codecs\.encode"
)
# How cloudpickle stores code (every MLflow pyfunc custom model): picklescan denies them, as they build functions.
# Building a function runs nothing; calling one while loading does, and that call is what the walk rates high
# ("calls what it built"). So these are custom code to review (medium), and a custom model stays loadable.
_CODE_BUILDERS = frozenset(
    {
        *(f"cloudpickle.cloudpickle.{n}" for n in ("_builtin_type", "_make_function", "_function_setstate")),
        *(f"cloudpickle.cloudpickle.{n}" for n in ("_make_skeleton_class", "_class_setstate", "_make_cell")),
        *(f"cloudpickle.cloudpickle.{n}" for n in ("_make_empty_cell", "_make_dict_keys", "_make_dict_values")),
        # The modules a function's globals name (time, numpy...), imported by name: nothing in them is called.
        *(f"cloudpickle.cloudpickle.{n}" for n in ("subimport", "dynamic_subimport")),
        "types.CodeType",
    }
)
# What no model needs to import, whatever package it comes from: running code or commands, reaching files,
# imports by name, attribute access by name. A word of the name (split at "_", dots and capitals) starting with
# one of these makes the import high, as do modules for tests and builds (numpy.testing, numpy.distutils, f2py,
# sklearn.utils._testing), which re-export subprocess and exec under other names. Pickle's own unpickle helpers
# (pandas' _unpickle_block) are no such word.
_RISKY_WORDS = tuple(
    "exec eval system popen spawn subprocess run call command shell script compile import getattr setattr delattr "
    "fork kill environ open load save write dump tofile savetxt remove unlink rmtree rename chmod chown symlink "
    "mkdir makedirs extension marshal pickle breakpoint input".split()
)
_RISKY_MODULES = frozenset("testing _testing tests distutils f2py _pytest conftest setuptools pip".split())
_WORD = re.compile(r"[A-Z]?[a-z0-9]+|[A-Z]+(?![a-z])")

_BY_NAME = {"MLmodel": "yaml", "requirements.txt": "text", "conda.yaml": "yaml", "python_env.yaml": "yaml"}
_BY_EXT = {
    **dict.fromkeys(".pkl .pickle .pt .pth .bin .ckpt .dat .data".split(), "pickle"),
    **dict.fromkeys(".txt .md .py .csv .toml .cfg .ini .rst".split(), "text"),
    **{".joblib": "joblib", ".onnx": "onnx", ".safetensors": "safetensors", ".json": "json", ".yaml": "yaml"},
    ".yml": "yaml",
}
_NOT_READ = frozenset({"json", "yaml", "text", "onnx"})  # read by text or protobuf parsers, never unpickled


@dataclass(frozen=True)
class Finding:
    """One thing loading a file would import that a reviewer should see."""

    file: str
    operation: str
    global_name: str
    severity: Severity
    offset: int | None
    detail: str

    def to_dict(self) -> dict[str, Any]:
        return dict(zip(("file", "operation", "global", "severity", "offset", "detail"), astuple(self), strict=True))


@dataclass(frozen=True)
class FileScan:
    """One file's part of a verdict: its format, its findings, and why it could not be analysed if so."""

    path: str
    format: str
    findings: tuple[Finding, ...]
    error: str | None


class _Ctx(NamedTuple):  # what one file's scan gathers
    findings: list[Finding]
    errors: list[str]


@functools.cache
def scanner_version() -> str:
    """picklescan's version (read once: reading package metadata costs a millisecond)."""
    return importlib.metadata.version("picklescan")


def scan_file(path: str, stream: BinaryIO) -> FileScan:
    """Sort one file into a format and list what loading it would import; whatever breaks is an error, not a pass."""
    logging.getLogger("picklescan").setLevel(logging.CRITICAL)  # it logs what the findings say, and every joblib array
    fmt, ctx = "unknown", _Ctx([], [])
    try:
        size = stream.seek(0, io.SEEK_END) - stream.seek(0)
        fmt = _scan(ctx, path, path, stream, size, 0)
    except CovexError:
        raise
    except Exception as exc:  # noqa: BLE001 - a hostile file can make a parser raise anything: reported, not passed
        ctx.errors.append(_why(path, exc))
    ctx.findings.sort(key=lambda f: (f.file, f.offset is None, f.offset or 0, f.global_name))
    more = f" (and {len(ctx.errors) - 1} more)" * (len(ctx.errors) > 1)
    return FileScan(path, fmt, tuple(ctx.findings), ctx.errors[0] + more if ctx.errors else None)


def _why(label: str, exc: Exception) -> str:
    return f"{label}: {exc if isinstance(exc, Refused) else f'could not be analysed ({type(exc).__name__}: {exc})'}"


def _scan(ctx: _Ctx, label: str, name: str, raw: IO[bytes], size: int, depth: int) -> str:
    """Format by content first, by name second, then the scan that format needs; returns the format."""
    start, head = raw.tell(), raw.read(16)
    raw.seek(start)
    base = posixpath.basename(name)
    by_name = _BY_NAME.get(base) or _BY_EXT.get(posixpath.splitext(base)[1].lower(), "unknown")
    if head[:1] == b"\x80" and head[1:2] and head[1] <= 5:
        return _scan_pickle(ctx, label, raw, size, "joblib" if by_name == "joblib" else "pickle")
    if head.startswith((b"PK\x03\x04", b"PK\x05\x06")):
        return _scan_zip(ctx, label, name, raw, depth)
    if head.startswith(b"\x93NUMPY"):  # an array of objects is a pickle after the header (np.load(allow_pickle=))
        at = start + (10 if head[6:7] == b"\x01" else 12)
        length = int.from_bytes(head[8 : at - start], "little")
        raw.seek(at)
        if length > 1 << 16:
            raise Refused(f"a NumPy header of {length} bytes: not analysed")
        if not _plain_array(raw.read(length)):  # objects, or a dtype this cannot tell: np.load unpickles the rest
            _scan_pickle(ctx, label, raw, size, "numpy")
        return "numpy"
    if by_name in _NOT_READ:
        # Read as text by whoever reads it as text; a loader that is told to unpickle it (an MLmodel naming it)
        # unpickles it whatever its name. A whole pickle there is scanned as one; text is left as text.
        if Walk(Reader(raw, size, MAX_PICKLE_BYTES, strict=False)).run().pickles == 0:
            raw.seek(start)
            return _scan_text(ctx, label, base, raw, size, by_name)
        raw.seek(start)
        return _scan_pickle(ctx, label, raw, size, "pickle")
    if head.startswith(b"\x04\x22\x4d\x18"):  # lz4, which joblib can write and the standard library cannot read
        raise Refused("lz4-compressed: not analysed")
    if (inflated := _inflate(head, raw)) is not None:
        if depth >= MAX_DEPTH:
            raise Refused(f"compressed inside more than {MAX_DEPTH} containers: not analysed")
        return _scan(ctx, label, name, io.BytesIO(inflated), len(inflated), depth + 1)
    raw.seek(start)
    if len(head) >= 9 and head[8:9] == b"{" and int.from_bytes(head[:8], "little") <= size - 8:
        by_name = "safetensors"  # walked as a pickle all the same: a file can be both, and torch.load reads pickles
    return _scan_pickle(ctx, label, raw, size, by_name)


_PLAIN_DTYPE = re.compile(r"[<>|=]?(?:[biufc?]\d*|[SUV]\d+|[mM]8(?:\[\w+\])?)")


def _plain_array(header: bytes) -> bool:
    """Whether a .npy header names a dtype of plain values only (so np.load reads no pickle after it)."""
    try:
        parsed = ast.literal_eval(header.decode("latin-1").strip())
    except (ValueError, SyntaxError, MemoryError, RecursionError):
        return False
    return isinstance(parsed, dict) and _plain_dtype(parsed.get("descr"), 0)


def _plain_dtype(descr: Any, depth: int) -> bool:
    if isinstance(descr, str):
        return _PLAIN_DTYPE.fullmatch(descr) is not None
    if isinstance(descr, list) and depth < 8:  # a record: (name, dtype[, shape]) per field
        return all(isinstance(f, tuple) and len(f) in (2, 3) and _plain_dtype(f[1], depth + 1) for f in descr)
    return False


def _names_loader(schema: bytes) -> bool:
    """Whether a zip's schema.json is skops's: some object in it names a ``__loader__`` (escapes and all)."""
    try:
        found = json.loads(schema)
    except (ValueError, RecursionError):
        return False
    stack, seen = [found], 0
    while stack and seen < 1_000_000:
        item, seen = stack.pop(), seen + 1
        if isinstance(item, dict):
            if "__loader__" in item:
                return True
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return False


def _scan_text(ctx: _Ctx, label: str, base: str, raw: IO[bytes], size: int, fmt: str) -> str:
    """Text that is no pickle: an MLmodel naming a loader module to import, or Python source, is code."""
    if base == "MLmodel" and size <= MAX_SCHEMA_BYTES:
        try:
            conf = yaml.safe_load(raw.read(size))
        except yaml.YAMLError as exc:
            raise Refused(f"an MLmodel file that is not YAML ({exc})") from None
        flavor = conf.get("flavors", {}).get("python_function", {}) if isinstance(conf, dict) else {}
        loader = flavor.get("loader_module") if isinstance(flavor, dict) else None
        if isinstance(loader, str) and not loader.startswith("mlflow."):
            what = f"MLflow imports {loader} to load this model: code shipped with it, or any module it names"
            ctx.findings.append(Finding(label, "loader_module", loader, "high", None, what))
    elif base.endswith(".py"):
        what = "Python source shipped with the model: it runs when the model's code imports it"
        ctx.findings.append(Finding(label, "source", "", "medium", None, what))
    return fmt


def _inflate(head: bytes, raw: IO[bytes]) -> bytes | None:
    """A compressed stream (joblib's compress= writes zlib, gzip, bz2, xz or lzma) inflated, or None if it is none."""
    zlib_header = len(head) > 1 and head[0] == 0x78 and (head[0] << 8 | head[1]) % 31 == 0
    unpack: Any = zlib.decompressobj(47) if zlib_header or head.startswith(b"\x1f\x8b") else None  # zlib or gzip
    unpack = bz2.BZ2Decompressor() if head.startswith(b"BZh") else unpack
    unpack = lzma.LZMADecompressor() if head.startswith((b"\xfd7zXZ\x00", b"]\x00\x00")) else unpack
    out = bytearray()
    try:
        while unpack and not unpack.eof and (chunk := raw.read(1 << 16)):
            out += unpack.decompress(chunk, MAX_INFLATED_BYTES + 1 - len(out))  # a byte over the bound is enough
            if len(out) > MAX_INFLATED_BYTES:
                raise Refused(f"inflates to more than {MAX_INFLATED_BYTES} bytes: not analysed")
    except (OSError, EOFError, zlib.error, lzma.LZMAError):
        pass  # a broken stream: what inflated is scanned (a pickle that breaks off there is reported)
    return bytes(out) if out else None


def _scan_pickle(ctx: _Ctx, label: str, raw: IO[bytes], size: int, fallback: str) -> str:
    """Walk the stream for offsets and joblib arrays; picklescan rates every import either of them found."""
    start = raw.tell()
    w = Walk(Reader(raw, size, MAX_PICKLE_BYTES)).run()
    if w.error:
        ctx.errors.append(f"{label}: {w.error}")
    rated: dict[tuple[str, str], Any] = {}
    if w.imports and not w.refused:
        raw.seek(start)  # picklescan reads on as a plain unpickler would (into a joblib array, where it stops)
        try:
            found = scan_pickle_bytes(Reader(raw, size, w.reader.used + (1 << 16), strict=False), label).globals
            rated = {(g.module, g.name): g.safety for g in found}
        except ValueError as exc:
            ctx.errors.append(f"{label}: picklescan could not read it ({exc})")
    # None: seen by the walk alone. Seen by picklescan alone: kept if denied (its look-back misreads nested memos)
    rated = {k: v for k, v in {**dict.fromkeys(w.found), **rated}.items() if k in w.found or v is SafetyLevel.Dangerous}
    for (module, name), safety in rated.items():
        if rating := _rate(module, name, safety):
            op, pos = w.found.get((module, name), ("STACK_GLOBAL" if "unknown" in (module, name) else "import", None))
            ctx.findings.append(Finding(label, op, f"{module}.{name}", rating[0], pos, rating[1]))
    for op, pos in w.calls:
        what = (
            "loading it imports through copyreg's extension registry, which hides what it imports"
            if op.startswith("EXT")
            else "loading it runs code the pickle itself built (a function it calls, or a method of a class it builds)"
        )
        ctx.findings.append(Finding(label, op, "", "high", pos, what))
    if not (w.pickles or w.imports) or fallback == "joblib":
        return fallback
    return "joblib" if w.joblib else "cloudpickle" if any(m.startswith("cloudpickle") for m, _ in rated) else "pickle"


def _classify(module: str, name: str) -> Any:
    """picklescan's verdict on one import, asked with a pickle of just that import: its lists stay its own."""
    parts = [p.encode("utf-8", "surrogatepass") for p in (module, name)]
    data = b"\x80\x04" + b"".join(b"X" + struct.pack("<I", len(p)) + p for p in parts) + b"\x93."
    found = scan_pickle_bytes(io.BytesIO(data), "import").globals
    return found[0].safety if found else SafetyLevel.Dangerous


def _denied(path: str) -> bool:
    """Whether a dotted path reaches what picklescan denies: numpy's "f2py.os.system" is os.system."""
    p = path.split(".")
    pairs = [(".".join(p[i:j]), ".".join(p[j:])) for j in range(len(p)) for i in range(j)]
    return any(_classify(*pair) is SafetyLevel.Dangerous for pair in pairs)


def _risky(module: str, name: str) -> bool:
    """Whether an import names what no model needs (``numpy.testing.runstring``, ``...gnu.Popen``)."""
    if _PLAIN.fullmatch(f"{module}.{name}") or f"{module}.{name}" in _CODE_BUILDERS:
        return False
    if any(part in _RISKY_MODULES for part in f"{module}.{name}".split(".")):
        return True
    words = [w.lower() for part in name.split(".") for w in _WORD.findall(part)]
    return any(w.startswith(_RISKY_WORDS) and not w.startswith("unpickle") for w in words)


def _rate(module: str, name: str, safety: Any = None) -> tuple[Severity, str] | None:
    """A severity and a line for a reviewer; picklescan is asked when the walk alone found the import."""
    safety = _classify(module, name) if safety is None else safety
    if safety is SafetyLevel.Suspicious and "." in name and _denied(f"{module}.{name}"):
        safety = SafetyLevel.Dangerous  # protocol 4 reads a dotted name attribute by attribute, through any module
    what = f"loading it imports {module}.{name}"
    if safety is SafetyLevel.Innocuous:
        return None
    if safety is not SafetyLevel.Dangerous and _risky(module, name):
        return "high", f"{what}, which can run code or reach files: nothing a model needs"
    if safety is SafetyLevel.Dangerous and f"{module}.{name}" in _CODE_BUILDERS:
        return "medium", f"{what}, which builds Python code (cloudpickle): custom code to review"
    if safety is SafetyLevel.Dangerous:  # "unknown" is picklescan's name for an import it cannot resolve
        why = "a name hidden from the scanner" if "unknown" in (module, name) else "on the deny list: it can run code"
        return "high", f"{what}, {why}"
    if module.split(".")[0] in _KNOWN or _PLAIN.fullmatch(f"{module}.{name}"):
        return "low", f"{what}, from a library Covex knows"
    return "medium", f"{what}, which is on neither the safe nor the deny list: custom code to review"


def _scan_zip(ctx: _Ctx, label: str, name: str, raw: IO[bytes], depth: int) -> str:
    """Every member scanned as a file of its own; a member that cannot be read is an error, the others still run."""
    if depth >= MAX_DEPTH:
        raise Refused(f"an archive inside more than {MAX_DEPTH} containers: not analysed")
    if depth:  # a member or an inflated stream: opened from memory, within a bound
        if len(data := raw.read(MAX_NESTED_ZIP_BYTES + 1)) > MAX_NESTED_ZIP_BYTES:
            raise Refused(f"an archive inside another, larger than {MAX_NESTED_ZIP_BYTES} bytes: not analysed")
        raw = io.BytesIO(data)
    try:
        archive = RelaxedZipFile(raw)  # picklescan's: as forgiving as torch.load's reader
        infos = [i for i in archive.infolist() if not i.is_dir()][: MAX_MEMBERS + 1]
    except Exception as exc:
        raise Refused(f"an archive that cannot be opened ({exc})") from exc
    if len(infos) > MAX_MEMBERS:
        raise Refused(f"an archive of more than {MAX_MEMBERS} members: not analysed")
    names = {i.filename: i.file_size for i in infos}
    fmt = "pytorch" if any(n == "data.pkl" or n.endswith("/data.pkl") for n in names) else "zip"
    fmt = "numpy" if names and all(n.endswith(".npy") for n in names) else fmt
    skops = names.get("schema.json", 1 << 62) <= MAX_SCHEMA_BYTES and _names_loader(archive.read("schema.json"))
    fmt = "skops" if name.lower().endswith(".skops") or skops else fmt
    for info in infos:
        try:
            if info.flag_bits & 0x1:
                raise Refused("encrypted: not analysed")
            with archive.open(info) as stream:
                _scan(ctx, f"{label}:{info.filename}", info.filename, stream, info.file_size, depth + 1)
        except CovexError:
            raise
        except Exception as exc:  # noqa: BLE001 - one unreadable member must not keep the others unscanned
            ctx.errors.append(_why(f"{label}:{info.filename}", exc))
    if fmt != "skops":
        return fmt
    if names.get("schema.json", 1 << 62) > MAX_SCHEMA_BYTES:  # what skops would import, read from its schema
        raise Refused(f"a skops file without a schema.json of at most {MAX_SCHEMA_BYTES} bytes: not analysed")
    try:
        from skops.io import get_untrusted_types

        raw.seek(0)
        untrusted = get_untrusted_types(file=raw)
    except ImportError:
        raise Refused(
            "skops is not installed here (pip install 'covex[ml]'): the types this file would load are unknown"
        ) from None
    except Exception as exc:
        raise Refused(f"skops could not read its schema ({type(exc).__name__}: {exc})") from exc
    for path in untrusted:
        module, _, attr = path.rpartition(".")
        if rating := _rate(module, attr, SafetyLevel.Dangerous if _denied(path) else SafetyLevel.Suspicious):
            ctx.findings.append(Finding(label, "skops type", path, rating[0], None, rating[1]))
    return fmt
