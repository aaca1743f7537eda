"""Scan one model file without loading it: pickles through picklescan, skops through its schema."""

from __future__ import annotations

from dataclasses import dataclass
from importlib.metadata import version
from typing import IO, Any, Literal

SCANNER_NAME = "picklescan"
Severity = Literal["low", "medium", "high"]
ML_MODULES = ("sklearn", "numpy", "scipy", "pandas", "xgboost", "lightgbm", "catboost", "torch", "collections")


def scanner_version() -> str:
    return version("picklescan")


@dataclass(frozen=True)
class Finding:
    file: str
    operation: str
    global_name: str
    severity: Severity
    offset: int | None
    detail: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "file": self.file,
            "operation": self.operation,
            "global": self.global_name,
            "severity": self.severity,
            "offset": self.offset,
            "detail": self.detail,
        }


@dataclass(frozen=True)
class FileScan:
    path: str
    format: str
    findings: tuple[Finding, ...]
    error: str | None = None


def scan_file(path: str, stream: IO[bytes]) -> FileScan:
    from picklescan.scanner import SafetyLevel, scan_bytes  # type: ignore[import-untyped]

    head = stream.read(2)
    stream.seek(0)
    ext = "." + path.rsplit(".", 1)[-1] if "." in path else None
    if not (head[:1] == b"\x80" or head[:2] == b"PK" or ext in (".pkl", ".pickle", ".joblib", ".pt", ".pth")):
        return FileScan(path, "unknown", ())
    result = scan_bytes(stream, path, ext)
    found = []
    for g in result.globals:
        if g.safety == SafetyLevel.Innocuous:
            continue
        name = f"{g.module}.{g.name}"
        if g.safety == SafetyLevel.Dangerous:
            sev: Severity = "high"
        elif g.module.split(".")[0] in ML_MODULES:
            sev = "low"
        else:
            sev = "medium"
        found.append(Finding(path, "import", name, sev, None, f"imports {name} ({g.safety.value})"))
    return FileScan(path, "pickle", tuple(found), "could not be parsed" if result.scan_err else None)
