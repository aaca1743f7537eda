"""Where a model came from: the training code's Git state and the datasets it saw."""

from __future__ import annotations

import hashlib
import subprocess
from pathlib import Path
from typing import Any

from covex.domain.errors import InvalidInput


def _git(args: list[str], cwd: Path) -> str | None:
    try:
        out = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, timeout=10, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() if out.returncode == 0 else None


def git_state(path: str | Path | None = None) -> dict[str, Any] | None:
    """Commit, branch, remote and dirty flag of the Git checkout holding ``path`` (default: cwd)."""
    cwd = Path(path or Path.cwd()).resolve()
    if cwd.is_file():
        cwd = cwd.parent
    commit = _git(["rev-parse", "HEAD"], cwd)
    if not commit:
        return None
    status = _git(["status", "--porcelain", "--untracked-files=no"], cwd)
    return {
        "commit": commit,
        "branch": _git(["rev-parse", "--abbrev-ref", "HEAD"], cwd) or "",
        "dirty": bool(status),
        "remote": _git(["config", "--get", "remote.origin.url"], cwd) or "",
    }


def frame_digest(frame: Any) -> str:
    """A digest of a DataFrame's column names, types and every value (hex): the same rows give the same digest."""
    import pandas as pd

    h = hashlib.sha256()
    h.update("\0".join(f"{c}:{t}" for c, t in frame.dtypes.astype(str).items()).encode())
    h.update(pd.util.hash_pandas_object(frame, index=True).to_numpy().tobytes())
    return h.hexdigest()


def _file_digest(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(1024 * 1024):
            h.update(chunk)
    return h.hexdigest()


def describe_dataset(spec: Any, index: int = 0) -> dict[str, Any]:
    """Normalise a dataset description.

    ``spec`` is a dict with ``name`` and any of ``data`` (a pandas DataFrame),
    ``path`` (a local CSV or Parquet file), ``uri``, ``role`` (``training`` or
    ``evaluation``), ``digest``, ``rows``, ``columns``. Content digests, row counts and
    column types are computed from ``data`` or ``path`` when given.
    """
    import pandas as pd

    field = f"datasets[{index}]"
    if isinstance(spec, pd.DataFrame):
        spec = {"name": f"dataset{index}", "data": spec}
    if not isinstance(spec, dict):
        raise InvalidInput(f"'{field}' must be a mapping with at least 'name'")
    unknown = set(spec) - {"name", "data", "path", "uri", "role", "digest", "rows", "columns"}
    if unknown:
        raise InvalidInput(f"'{field}' has unknown keys: {', '.join(sorted(unknown))}")
    name = spec.get("name")
    if not isinstance(name, str) or not name:
        raise InvalidInput(f"'{field}.name' must be a non-empty string")
    role = spec.get("role", "training")
    if role not in ("training", "evaluation"):
        raise InvalidInput(f"'{field}.role' must be 'training' or 'evaluation', got {role!r}")
    out: dict[str, Any] = {"name": name, "role": role, "uri": str(spec.get("uri") or "")}
    frame = spec.get("data")
    path = spec.get("path")
    if frame is None and path is not None:
        p = Path(path)
        if not p.is_file():
            raise InvalidInput(f"'{field}.path' {str(path)!r} is not a file")
        out["uri"] = out["uri"] or p.resolve().as_uri()
        out["digest"] = _file_digest(p)
        if p.suffix.lower() in (".csv", ".parquet", ".pq"):
            try:
                frame = pd.read_parquet(p) if p.suffix.lower() != ".csv" else pd.read_csv(p)
            except (ValueError, OSError, pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
                raise InvalidInput(f"'{field}.path' {str(path)!r} cannot be read: {exc}") from None
    if frame is not None:
        if not isinstance(frame, pd.DataFrame):
            raise InvalidInput(f"'{field}.data' must be a pandas DataFrame")
        out.setdefault("digest", frame_digest(frame))
        out["rows"] = len(frame)
        out["columns"] = [{"name": str(c), "type": str(t)} for c, t in frame.dtypes.items()]
    for key in ("digest", "rows", "columns"):
        if key in spec and key not in out:
            out[key] = spec[key]
    return out
