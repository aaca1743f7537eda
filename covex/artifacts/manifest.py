"""Manifests: the list of a version's files, read from a folder and digested."""

from __future__ import annotations

import hashlib
import os
import stat
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from covex.domain.entities import FileEntry
from covex.domain.errors import InvalidInput
from covex.domain.names import validate_artifact_path


def manifest_digest(files: Sequence[FileEntry]) -> str:
    """The digest that identifies a version's contents: paths, digests, sizes, modes."""
    h = hashlib.sha256()
    for f in sorted(files, key=lambda f: f.path):
        h.update(f"{f.path}\0{f.digest}\0{f.size}\0{f.mode:o}\n".encode())
    return h.hexdigest()


def hash_stream(f: IO[bytes], chunk_size: int = 1024 * 1024) -> tuple[str, int]:
    """SHA-256 and size of what ``f`` holds from where it stands, read ``chunk_size`` bytes at a time."""
    h = hashlib.sha256()
    size = 0
    while chunk := f.read(chunk_size):
        h.update(chunk)
        size += len(chunk)
    return h.hexdigest(), size


def hash_file(path: Path, chunk_size: int = 1024 * 1024) -> tuple[str, int]:
    with path.open("rb") as f:
        return hash_stream(f, chunk_size)


@dataclass(frozen=True)
class LocalFile:
    """A file to upload: where it is on disk and its manifest entry."""

    local: Path
    entry: FileEntry


def scan(source: str | os.PathLike[str], chunk_size: int = 1024 * 1024) -> list[LocalFile]:
    """Hash every file under a folder (or one file) for upload.

    A symbolic link to a file inside the folder is uploaded as that file; a link to a
    folder inside it is skipped (its files are uploaded under their real paths); a
    link leading outside is rejected before a byte is written.
    """
    root = Path(source).expanduser()
    if not root.exists():
        raise InvalidInput(f"'path' {str(source)!r} does not exist")
    if root.is_file():
        digest, size = hash_file(root, chunk_size)
        return [
            LocalFile(
                root, FileEntry(path=validate_artifact_path(root.name), digest=digest, size=size, mode=_mode(root))
            )
        ]
    real_root = root.resolve()
    files: list[LocalFile] = []
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        here = Path(dirpath)
        for name in list(dirnames):
            d = here / name
            if d.is_symlink():
                _check_inside(d, real_root)
        for name in filenames:
            p = here / name
            if p.is_symlink():
                _check_inside(p, real_root)
            if not p.is_file():
                continue
            rel = p.relative_to(root).as_posix()
            digest, size = hash_file(p, chunk_size)
            files.append(
                LocalFile(p, FileEntry(path=validate_artifact_path(rel), digest=digest, size=size, mode=_mode(p)))
            )
    if not files:
        raise InvalidInput(f"'path' {str(source)!r} holds no files")
    files.sort(key=lambda f: f.entry.path)
    return files


def _check_inside(link: Path, real_root: Path) -> None:
    target = link.resolve()
    if target != real_root and real_root not in target.parents:
        raise InvalidInput(f"'path' {str(link)!r} is a symbolic link leading outside the uploaded folder")


def _mode(path: Path) -> int:
    return 0o755 if path.stat().st_mode & stat.S_IXUSR else 0o644
