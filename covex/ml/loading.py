"""Load registered models as MLflow pyfunc models, verified and cached by content digest."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

from covex.artifacts import hash_file
from covex.domain.entities import FileEntry
from covex.domain.errors import ArtifactCorrupted, InvalidState

if TYPE_CHECKING:
    from covex.client import Client


def _verify(root: Path, files: list[FileEntry]) -> None:
    for f in files:
        path = root / f.path
        if not path.is_file():
            raise ArtifactCorrupted(f"{f.path}: missing from the local copy")
        digest, size = hash_file(path)
        if (digest, size) != (f.digest, f.size):
            raise ArtifactCorrupted(f"{f.path}: content does not match its digest {f.digest}")


def fetch_model(
    client: Client, uri: str, cache_dir: str | os.PathLike[str] | None = None, *, override_scan: str = ""
) -> Path:
    """Return a local folder holding the version's verified files, downloading only on a cache miss.

    The cache is keyed by the version's manifest digest, so versions with identical
    contents share one copy, and every file is re-hashed before it is handed out. A version
    whose latest scan found high-severity findings (or could not analyse a file) raises
    ``UnsafeModel`` unless ``override_scan`` gives a reason, which the registry audits.
    """
    version, files = client.get_version_files(uri)
    if version.status != "READY" or not version.manifest_digest:
        raise InvalidState(f"{version.uri} has no uploaded files to load (status {version.status})")
    client.trust.check_loadable(version.name, version.version, override=override_scan)
    cache = Path(cache_dir or client.settings.cache_dir).expanduser() / "models"
    target = cache / version.manifest_digest
    if target.is_dir():
        try:
            _verify(target, files)
            return target
        except ArtifactCorrupted:
            shutil.rmtree(target, ignore_errors=True)
    cache.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".partial-", dir=cache))
    try:
        client.download_files(files, staging)
        try:
            staging.rename(target)
        except OSError:  # another process filled the cache meanwhile
            shutil.rmtree(staging, ignore_errors=True)
            _verify(target, files)
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)
    return target


def load_model(
    uri: str,
    *,
    client: Client | None = None,
    cache_dir: str | os.PathLike[str] | None = None,
    override_scan: str = "",
) -> Any:
    """Load ``models:/...`` as an MLflow pyfunc model; files are verified before deserialising.

    A version whose latest scan found high-severity findings is refused (``UnsafeModel``) unless
    ``override_scan`` gives the reason to load it anyway; the override is audited.
    """
    from covex.client import Client
    from covex.ml.packaging import load_pyfunc

    own = client is None
    c = client or Client()
    try:
        return load_pyfunc(fetch_model(c, uri, cache_dir, override_scan=override_scan), uri)
    finally:
        if own:
            c.close()
