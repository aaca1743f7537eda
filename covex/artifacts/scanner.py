"""Model files scanned without being loaded: what a pickle would import, rated before a version is promoted.

picklescan (the scanner Hugging Face Hub uses) rates each global a pickle imports: safe list, deny list, neither.
This module finds the pickles (plain, joblib, PyTorch, NumPy, in zips, compressed), turns picklescan's ratings
into severities and says at which byte each import sits. Nothing is unpickled; nothing a file names is imported.
"""

from __future__ import annotations

import bz2
import importlib.metadata
import io
import logging
import lzma
import math
import pickletools
import posixpath
import re
import struct
import zlib
from dataclasses import astuple, dataclass, field
from typing import IO, Any, BinaryIO, Literal, NamedTuple

from picklescan.relaxed_zipfile import RelaxedZipFile  # type: ignore[import-untyped]
from picklescan.scanner import SafetyLevel, scan_pickle_bytes  # type: ignore[import-untyped]

from covex.domain.errors import CovexError

SCANNER_NAME = "picklescan"
Severity = Literal["low", "medium", "high"]

# What one file may cost at most, whatever it claims: past a bound, the part not analysed is an error.
# One pickle stream is read up to this, each read counting 128 more: picklescan, which keeps every opcode in
# memory, then keeps some 4 million at most. The arrays joblib writes between opcodes are skipped, not read.
MAX_PICKLE_BYTES = 1 << 30
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
        "types.CodeType",
    }
)
# A known library's function that reads another file or pickle would load what this scan never saw: not low.
_LOADERS = frozenset({"load", "loads", "read_pickle", "load_library"})

_BY_NAME = {"MLmodel": "yaml", "requirements.txt": "text", "conda.yaml": "yaml", "python_env.yaml": "yaml"}
_BY_EXT = {
    **dict.fromkeys(".pkl .pickle .pt .pth .bin .ckpt .dat .data".split(), "pickle"),
    **dict.fromkeys(".txt .md .py .csv .toml .cfg .ini .rst".split(), "text"),
    **{".joblib": "joblib", ".onnx": "onnx", ".safetensors": "safetensors", ".json": "json", ".yaml": "yaml"},
    ".yml": "yaml",
}
_NOT_READ = frozenset({"json", "yaml", "text", "onnx"})  # read by text or protobuf parsers, never unpickled
_DTYPE = re.compile(r"([biufcmMOSUV])(\d+)")  # the type codes numpy's dtype.__reduce__ writes
_REBUILDERS = frozenset({"_reconstructor", "__newobj__", "__newobj_ex__"})
_UNKNOWN, _MARK = object(), pickletools.markobject
_VALUES = [[v] for v in ("int", "int_or_bool", "float", "str", "bytes_or_str")]  # what argument-pushing opcodes push
_CONSTANTS = {o.name for o in pickletools.opcodes if not o.stack_before and [s.name for s in o.stack_after] in _VALUES}
_ARITY = {  # opcode: whether it pops to a mark, what it pops besides, what it pushes
    o.name: (_MARK in o.stack_before, [*o.stack_before, _MARK].index(_MARK), len(o.stack_after))
    for o in pickletools.opcodes
}


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


def scanner_version() -> str:
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


class _Refused(Exception):
    """A part the scanner will not analyse (too large, too deep, unreadable): the file's verdict is an error."""


def _why(label: str, exc: Exception) -> str:
    return f"{label}: {exc if isinstance(exc, _Refused) else f'could not be analysed ({type(exc).__name__}: {exc})'}"


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
            raise _Refused(f"a NumPy header of {length} bytes: not analysed")
        if b"|O" in raw.read(length):  # the dtype of objects, alone or in a record
            _scan_pickle(ctx, label, raw, size, "numpy")
        return "numpy"
    if by_name in _NOT_READ:
        return by_name
    if head.startswith(b"\x04\x22\x4d\x18"):  # lz4, which joblib can write and the standard library cannot read
        raise _Refused("lz4-compressed: not analysed")
    if (inflated := _inflate(head, raw)) is not None:
        if depth >= MAX_DEPTH:
            raise _Refused(f"compressed inside more than {MAX_DEPTH} containers: not analysed")
        return _scan(ctx, label, name, io.BytesIO(inflated), len(inflated), depth + 1)
    raw.seek(start)
    if len(head) >= 9 and head[8:9] == b"{" and int.from_bytes(head[:8], "little") <= size - 8:
        by_name = "safetensors"  # walked as a pickle all the same: a file can be both, and torch.load reads pickles
    return _scan_pickle(ctx, label, raw, size, by_name)


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
                raise _Refused(f"inflates to more than {MAX_INFLATED_BYTES} bytes: not analysed")
    except (OSError, EOFError, zlib.error, lzma.LZMAError):
        pass  # a broken stream: what inflated is scanned (a pickle that breaks off there is reported)
    return bytes(out) if out else None


# BINBYTES, BINBYTES8 and BYTEARRAY8: an opcode, its length (4 or 8 bytes), then that many raw bytes.
_BYTES_OPCODES = frozenset({b"B", b"\x8e", b"\x96"})
SKIPPED_BYTES = 1 << 20


class _Unread:
    """Raw bytes stepped over: only their length is known (what genops checks)."""

    __slots__ = ("n",)

    def __init__(self, n: int) -> None:
        self.n = n

    def __len__(self) -> int:
        return self.n


class _Reader:
    """What genops and picklescan read: never past the end nor the budget, whatever length an opcode claims."""

    def __init__(self, raw: IO[bytes], size: int, budget: int, strict: bool = True) -> None:
        self.raw, self.size, self.budget, self.used, self.strict = raw, size, budget, 0, strict
        self.op = b""

    def _cap(self, n: int) -> int:
        wanted = min(self.size - self.raw.tell(), n if n >= 0 else self.size)
        if self.strict and self.budget - self.used < wanted:  # else picklescan's read ends where the walk's did
            raise _Refused(f"more than {MAX_PICKLE_BYTES} bytes of pickle: not analysed")
        return max(0, min(wanted, self.budget - self.used))

    def read(self, n: int = -1) -> bytes:
        if n > SKIPPED_BYTES and self.op in _BYTES_OPCODES and n <= self.size - self.raw.tell():
            # Raw bytes (an array's buffer): data, never opcodes. Stepped over unread, so a big array
            # costs neither memory nor the budget.
            self.raw.seek(n, io.SEEK_CUR)
            return _Unread(n)  # type: ignore[return-value]
        data = self.raw.read(n if 0 <= n <= 1 << 16 and self.used + n <= self.budget else self._cap(n))
        self.used += 128 + len(data)
        if n == 1:
            self.op = data  # an opcode, or a one-byte length: only a byte opcode's payload is stepped over
        return data

    def readline(self, n: int = -1) -> bytes:
        data = self.raw.readline(min(self._cap(n), 16 << 20))  # the text argument of a protocol-0 opcode
        self.used += 128 + len(data)
        return data

    def __getattr__(self, name: str) -> Any:  # seek and tell
        return getattr(self.raw, name)


class _Ref(NamedTuple):
    module: str
    name: str  # a global a pickle imports


@dataclass(slots=True)
class _Obj:
    """An object a pickle would build: from what, with what, and the state it was then given."""

    func: Any
    args: Any
    state: Any = None
    attrs: dict[str, Any] = field(default_factory=dict)

    def build(self, state: Any) -> None:
        self.state = state
        parts = state if type(state) is tuple and len(state) == 2 else (state,)  # (__dict__, slots) or __dict__
        self.attrs.update(item for part in parts if isinstance(part, dict) for item in part.items())

    def is_joblib_array(self) -> bool:
        cls = self.func
        if isinstance(cls, _Ref) and cls.name in _REBUILDERS and type(self.args) is tuple and self.args:
            cls = self.args[0]
        full = f".{cls.module}.{cls.name}" if isinstance(cls, _Ref) else ""
        return full.endswith(".joblib.numpy_pickle.NumpyArrayWrapper")  # also a copy vendored in another package


def _runs_built_code(callable_: Any) -> bool:
    """Whether calling this runs what the pickle built: anything built, but a type cloudpickle names
    (``_builtin_type("CodeType")``), which constructs code without running it."""
    if not isinstance(callable_, _Obj):
        return False
    by = callable_.func
    return not (isinstance(by, _Ref) and by.name == "_builtin_type" and by.module.startswith("cloudpickle"))


@dataclass
class _Walk:
    """Pickle after pickle walked as an unpickler reads them, on a simulated stack that builds nothing: it resolves
    STACK_GLOBAL operands however they got there, and tells where joblib put an array's raw bytes between two
    opcodes, so the walk goes on past it (picklescan stops there)."""

    reader: _Reader
    found: dict[tuple[str, str], tuple[str, int | None]] = field(default_factory=dict)  # first opcode, offset
    calls: list[tuple[str, int | None]] = field(default_factory=list)  # calls of what the pickle built: opcode, offset
    imports: int = 0
    pickles: int = 0
    joblib: bool = False
    error: str | None = None
    refused: bool = False
    in_objects: bool = False  # inside the pickle joblib writes for an array of objects (a plain unpickler reads it)

    def run(self) -> _Walk:
        while True:
            start, imports = self.reader.tell(), self.imports
            try:
                self.one()
            except (_Refused, ValueError, EOFError, OverflowError, struct.error) as exc:
                self.refused = isinstance(exc, _Refused)
                if self.refused or self.imports > imports:  # the opcodes before a break ran: their imports may do harm
                    broken = f"the pickle at byte {start} breaks off after importing globals ({exc})"
                    self.error = str(exc) if self.refused else broken
                return self  # else the end, or bytes that are no pickle (a legacy torch file's tensors)

    def one(self) -> None:
        stack: list[Any] = []
        marks: list[int] = []
        memo: dict[Any, Any] = {}
        for op, arg, pos in pickletools.genops(self.reader):  # type: ignore[arg-type]
            name = op.name
            if name in _CONSTANTS:
                stack.append(arg if type(arg) is not str or len(arg) <= 1024 else _UNKNOWN)  # keep no long text
            elif name in ("PUT", "BINPUT", "LONG_BINPUT", "MEMOIZE"):
                memo[len(memo) if name == "MEMOIZE" else arg] = stack[-1] if stack else _UNKNOWN
            elif name in ("GET", "BINGET", "LONG_BINGET"):
                stack.append(memo.get(arg, _UNKNOWN))
            elif name == "MARK":
                marks.append(len(stack))
            elif name == "STOP":
                if len(stack) <= (marks[-1] if marks else 0):
                    raise ValueError("STOP with nothing to return")
                self.pickles += 1
                return
            else:
                marked, pops, pushes = _ARITY[name]
                at = (marks.pop() if marks else 0) if marked else len(stack)
                items = stack[at:]
                del stack[at:]
                args = [_UNKNOWN] * (pops - len(stack)) + stack[max(0, len(stack) - pops) :] if pops else []
                del stack[max(0, len(stack) - pops) :]
                got = self.step(name, arg, pos, args, items)
                stack.extend([_UNKNOWN] * pushes if got is None else got)

    def step(self, name: str, arg: Any, pos: int | None, args: list[Any], items: list[Any]) -> list[Any] | None:
        """What an opcode leaves on the stack where it matters to imports or joblib arrays, else None."""
        if name in ("TUPLE", "EMPTY_TUPLE", "TUPLE1", "TUPLE2", "TUPLE3"):
            return [tuple(items or args)]
        if name in ("EMPTY_DICT", "DICT", "SETITEM", "SETITEMS"):
            target = args[0] if args and isinstance(args[0], dict) else {}
            flat = args[1:] + items
            target.update((k, v) for k, v in zip(flat[::2], flat[1::2], strict=False) if type(k) is str)
            return [target]
        if name in ("GLOBAL", "INST", "STACK_GLOBAL"):
            ref = _Ref(*(arg.split(" ", 1) if arg else [a if type(a) is str else "unknown" for a in args]))
            if all(part.isidentifier() for part in f"{ref.module} {ref.name}".replace(" ", ".").split(".")):
                self.imports += 1  # else nothing can be imported (text or noise read as opcodes)
                self.found.setdefault(ref, (name, pos))
            return [_Obj(ref, tuple(items)) if name == "INST" else ref]
        if name in ("REDUCE", "OBJ") and _runs_built_code(args[0] if args else items[0] if items else None):
            self.calls.append((name, pos))  # a function the pickle built (cloudpickle's code), run while loading
        if name in ("REDUCE", "NEWOBJ", "NEWOBJ_EX", "OBJ"):
            return [_Obj(args[0], args[1]) if args else _Obj(items[0], tuple(items[1:])) if items else _UNKNOWN]
        if name == "BUILD" and isinstance(args[0], _Obj):
            args[0].build(args[1])
            if not self.in_objects and args[0].is_joblib_array():
                self.skip_array(args[0])
        if name in ("BUILD", "DUP"):
            return [args[0]] * (1 if name == "BUILD" else 2)
        if name in ("NONE", "NEWTRUE", "NEWFALSE"):
            return [None if name == "NONE" else name == "NEWTRUE"]
        return None

    def skip_array(self, wrapper: _Obj) -> None:
        """Step over the array joblib wrote right after this wrapper, as joblib's reader reads it."""
        self.joblib = True
        dtype, shape = wrapper.attrs.get("dtype", _UNKNOWN), wrapper.attrs.get("shape")
        ok = isinstance(dtype, _Obj) and type(dtype.args) is tuple and dtype.args and type(dtype.args[0]) is str
        m = _DTYPE.fullmatch(dtype.args[0]) if ok else None
        if m is None or type(shape) is not tuple or not all(type(n) is int and n >= 0 for n in shape):
            raise _Refused("a joblib array whose dtype or shape the scanner cannot read: the rest is not analysed")
        state = dtype.state if type(dtype.state) is tuple else ()
        elsize, flags = (state[5], state[7]) if len(state) >= 8 else (-1, 0)
        if m[1] == "O" or (type(flags) is int and flags & 1):  # an array of objects: a pickle of its own
            self.in_objects = True
            self.one()
            self.in_objects = False
            return
        pad = self.reader.read(1) if wrapper.attrs.get("numpy_array_alignment_bytes") is not None else b"\0"
        itemsize = int(m[2]) * (4 if m[1] == "U" else 1)
        if m[1] in "SUV" and type(elsize) is int and elsize >= 0:  # numpy takes a flexible type's size from the state
            itemsize = elsize
        at, length = self.reader.tell(), (pad or b"\0")[0] + math.prod(shape) * itemsize
        if at + length > self.reader.size:
            raise _Refused(f"a joblib array of {length} bytes at byte {at} runs past the end: the rest is not analysed")
        self.reader.seek(at + length)


def _scan_pickle(ctx: _Ctx, label: str, raw: IO[bytes], size: int, fallback: str) -> str:
    """Walk the stream for offsets and joblib arrays; picklescan rates every import either of them found."""
    start = raw.tell()
    w = _Walk(_Reader(raw, size, MAX_PICKLE_BYTES)).run()
    if w.error:
        ctx.errors.append(f"{label}: {w.error}")
    rated: dict[tuple[str, str], Any] = {}
    if w.imports and not w.refused:
        raw.seek(start)  # picklescan reads on as a plain unpickler would (into a joblib array, where it stops)
        try:
            found = scan_pickle_bytes(_Reader(raw, size, w.reader.used + (1 << 16), strict=False), label).globals
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
        what = "loading it calls a function the pickle itself built: code runs while loading"
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


def _rate(module: str, name: str, safety: Any = None) -> tuple[Severity, str] | None:
    """A severity and a line for a reviewer; picklescan is asked when the walk alone found the import."""
    safety = _classify(module, name) if safety is None else safety
    if safety is SafetyLevel.Suspicious and "." in name and _denied(f"{module}.{name}"):
        safety = SafetyLevel.Dangerous  # protocol 4 reads a dotted name attribute by attribute, through any module
    what = f"loading it imports {module}.{name}"
    if safety is SafetyLevel.Innocuous:
        return None
    if safety is SafetyLevel.Dangerous and f"{module}.{name}" in _CODE_BUILDERS:
        return "medium", f"{what}, which builds Python code (cloudpickle): custom code to review"
    if safety is SafetyLevel.Dangerous:  # "unknown" is picklescan's name for an import it cannot resolve
        why = "a name hidden from the scanner" if "unknown" in (module, name) else "on the deny list: it can run code"
        return "high", f"{what}, {why}"
    if name.rsplit(".", 1)[-1] in _LOADERS:
        return "medium", f"{what}, which reads another file or pickle this scan does not see"
    if module.split(".")[0] in _KNOWN or _PLAIN.fullmatch(f"{module}.{name}"):
        return "low", f"{what}, from a library Covex knows"
    return "medium", f"{what}, which is on neither the safe nor the deny list: custom code to review"


def _scan_zip(ctx: _Ctx, label: str, name: str, raw: IO[bytes], depth: int) -> str:
    """Every member scanned as a file of its own; a member that cannot be read is an error, the others still run."""
    if depth >= MAX_DEPTH:
        raise _Refused(f"an archive inside more than {MAX_DEPTH} containers: not analysed")
    if depth:  # a member or an inflated stream: opened from memory, within a bound
        if len(data := raw.read(MAX_NESTED_ZIP_BYTES + 1)) > MAX_NESTED_ZIP_BYTES:
            raise _Refused(f"an archive inside another, larger than {MAX_NESTED_ZIP_BYTES} bytes: not analysed")
        raw = io.BytesIO(data)
    try:
        archive = RelaxedZipFile(raw)  # picklescan's: as forgiving as torch.load's reader
        infos = [i for i in archive.infolist() if not i.is_dir()][: MAX_MEMBERS + 1]
    except Exception as exc:
        raise _Refused(f"an archive that cannot be opened ({exc})") from exc
    if len(infos) > MAX_MEMBERS:
        raise _Refused(f"an archive of more than {MAX_MEMBERS} members: not analysed")
    names = {i.filename: i.file_size for i in infos}
    fmt = "pytorch" if any(n == "data.pkl" or n.endswith("/data.pkl") for n in names) else "zip"
    fmt = "numpy" if names and all(n.endswith(".npy") for n in names) else fmt
    skops = names.get("schema.json", 1 << 62) <= MAX_SCHEMA_BYTES and b'"__loader__"' in archive.read("schema.json")
    fmt = "skops" if name.lower().endswith(".skops") or skops else fmt
    for info in infos:
        try:
            if info.flag_bits & 0x1:
                raise _Refused("encrypted: not analysed")
            with archive.open(info) as stream:
                _scan(ctx, f"{label}:{info.filename}", info.filename, stream, info.file_size, depth + 1)
        except CovexError:
            raise
        except Exception as exc:  # noqa: BLE001 - one unreadable member must not keep the others unscanned
            ctx.errors.append(_why(f"{label}:{info.filename}", exc))
    if fmt != "skops":
        return fmt
    if names.get("schema.json", 1 << 62) > MAX_SCHEMA_BYTES:  # what skops would import, read from its schema
        raise _Refused(f"a skops file without a schema.json of at most {MAX_SCHEMA_BYTES} bytes: not analysed")
    try:
        from skops.io import get_untrusted_types

        raw.seek(0)
        untrusted = get_untrusted_types(file=raw)
    except ImportError:
        raise _Refused(
            "skops is not installed here (pip install 'covex[ml]'): the types this file would load are unknown"
        ) from None
    except Exception as exc:
        raise _Refused(f"skops could not read its schema ({type(exc).__name__}: {exc})") from exc
    for path in untrusted:
        module, _, attr = path.rpartition(".")
        if rating := _rate(module, attr, SafetyLevel.Dangerous if _denied(path) else SafetyLevel.Suspicious):
            ctx.findings.append(Finding(label, "skops type", path, rating[0], None, rating[1]))
    return fmt
