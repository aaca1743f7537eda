"""How a registration config names a problem: the file, the line, the key, and what a value was."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from covex.domain.errors import CovexError
from covex.domain.yaml_reader import Loc


def dotted(loc: Loc) -> str:
    """``("datasets", 0, "path")`` as ``datasets[0].path``."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else part
    return out


def located(cls: type[CovexError], label: str, line: int, loc: Loc, message: str) -> CovexError:
    """``registry.yaml line 14: 'metrics_file': <message>`` (the key is left out when the message starts with it)."""
    key = dotted(loc)
    if not key or message.startswith(f"'{key}'"):
        return cls(f"{label} line {line}: {message}")
    return cls(f"{label} line {line}: '{key}': {message}")


def type_name(value: Any) -> str:
    """What a YAML value was, in words a config's author recognises (with how to fix the usual slip)."""
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    if value is None:
        return "nothing (null)"
    if isinstance(value, bool):
        return f"{str(value).lower()} (a boolean)"
    if isinstance(value, int | float):
        return f"{value} (a number; quote it to make it text)"
    if isinstance(value, date | datetime):
        return f"{value} (a date; quote it to make it text)"
    return f"{value!r}"
