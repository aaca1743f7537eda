"""A pickle walked as an unpickler reads it, on a simulated stack that builds nothing (``covex.artifacts.scanner``).

The walk finds every global a pickle imports and where, resolves STACK_GLOBAL operands however they got on
the stack, steps over the raw arrays joblib writes between opcodes and over raw byte payloads, and notes
the calls that run code the pickle itself built. Nothing is imported or unpickled.
"""

from __future__ import annotations

import io
import math
import pickletools
import re
import struct
from dataclasses import dataclass, field
from typing import IO, Any, NamedTuple

MAX_PICKLE_BYTES = 1 << 30


class Refused(Exception):
    """A part the scanner will not analyse (too large, too deep, unreadable): the file's verdict is an error."""


_DTYPE = re.compile(r"([biufcmMOSUV])(\d+)")  # the type codes numpy's dtype.__reduce__ writes
_REBUILDERS = frozenset({"_reconstructor", "__newobj__", "__newobj_ex__"})
_UNKNOWN, _MARK = object(), pickletools.markobject
_VALUES = [[v] for v in ("int", "int_or_bool", "float", "str", "bytes_or_str")]  # what argument-pushing opcodes push
_CONSTANTS = {o.name for o in pickletools.opcodes if not o.stack_before and [s.name for s in o.stack_after] in _VALUES}
_ARITY = {  # opcode: whether it pops to a mark, what it pops besides, what it pushes
    o.name: (_MARK in o.stack_before, [*o.stack_before, _MARK].index(_MARK), len(o.stack_after))
    for o in pickletools.opcodes
}


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


class Reader:
    """What genops and picklescan read: never past the end nor the budget, whatever length an opcode claims."""

    def __init__(self, raw: IO[bytes], size: int, budget: int, strict: bool = True) -> None:
        self.raw, self.size, self.budget, self.used, self.strict = raw, size, budget, 0, strict
        self.op = b""

    def _cap(self, n: int) -> int:
        wanted = min(self.size - self.raw.tell(), n if n >= 0 else self.size)
        if self.strict and self.budget - self.used < wanted:  # else picklescan's read ends where the walk's did
            raise Refused(f"more than {self.budget} bytes of pickle: not analysed")
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


# Methods a class's instance has called while it is unpickled or soon after (BUILD, SETITEM, APPEND, NEWOBJ,
# dict keys, collection; not __init__, which unpickling never calls): defined on a class the pickle itself
# builds (cloudpickle by value), they are its code.
_TRIGGERED = frozenset(
    "__setstate__ __setitem__ __new__ __init_subclass__ __set_name__ __del__ __hash__ __eq__ __getattr__ "
    "__getattribute__ __setattr__ append extend".split()
)


def _defines_triggered(values: list[Any], depth: int = 0) -> bool:
    """Whether a class body among these (a dict of a built class's members) defines such a method."""
    for v in values:
        if isinstance(v, dict) and any(k in _TRIGGERED and isinstance(v[k], _Obj) for k in v):
            return True  # a member built by the pickle: a function (cloudpickle), not a plain value
        if isinstance(v, tuple) and depth < 3 and _defines_triggered(list(v), depth + 1):
            return True
    return False


def _runs_built_code(callable_: Any) -> bool:
    """Whether calling this runs what the pickle built: anything built, but a type cloudpickle names
    (``_builtin_type("CodeType")``), which constructs code without running it."""
    if not isinstance(callable_, _Obj):
        return False
    by = callable_.func
    return not (isinstance(by, _Ref) and by.name == "_builtin_type" and by.module.startswith("cloudpickle"))


@dataclass
class Walk:
    """Pickle after pickle walked as an unpickler reads them, on a simulated stack that builds nothing: it resolves
    STACK_GLOBAL operands however they got there, and tells where joblib put an array's raw bytes between two
    opcodes, so the walk goes on past it (picklescan stops there)."""

    reader: Reader
    found: dict[tuple[str, str], tuple[str, int | None]] = field(default_factory=dict)  # first opcode, offset
    calls: list[tuple[str, int | None]] = field(default_factory=list)  # calls of what the pickle built: opcode, offset
    imports: int = 0
    pickles: int = 0
    joblib: bool = False
    error: str | None = None
    refused: bool = False
    in_objects: bool = False  # inside the pickle joblib writes for an array of objects (a plain unpickler reads it)

    def run(self) -> Walk:
        while True:
            start, imports = self.reader.tell(), self.imports
            try:
                self.one()
            except (Refused, ValueError, EOFError, OverflowError, struct.error) as exc:
                self.refused = isinstance(exc, Refused)
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
        if name in ("EXT1", "EXT2", "EXT4"):
            self.calls.append((name, pos))  # an import through copyreg's registry: what it is cannot be seen here
        if name in ("REDUCE", "OBJ") and _runs_built_code(args[0] if args else items[0] if items else None):
            self.calls.append((name, pos))  # a function the pickle built (cloudpickle's code), run while loading
        if name in ("REDUCE", "OBJ") and _defines_triggered(args + items):
            self.calls.append((name, pos))  # a class whose methods unpickling itself calls (BUILD: __setstate__)
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
            raise Refused("a joblib array whose dtype or shape the scanner cannot read: the rest is not analysed")
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
            raise Refused(f"a joblib array of {length} bytes at byte {at} runs past the end: the rest is not analysed")
        self.reader.seek(at + length)
