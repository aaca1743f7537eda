"""Build a registry service from settings: engine, migrations, blob store."""

from __future__ import annotations

import os
import shlex
from pathlib import Path

from covex.artifacts import BlobStore
from covex.domain import signing
from covex.domain.errors import InvalidInput, NotFound
from covex.domain.signing import Signer
from covex.service.base import Limits
from covex.service.registry import RegistryService
from covex.settings import DEFAULT_DATA_DIR, Settings
from covex.store import database


def registry_file(settings: Settings) -> Path | None:
    """The SQLite file an embedded registry lives in; None for a server database (or SQLite in memory).

    Only a SQLite file can be made by mistake: connecting to a missing one creates it empty,
    so a typo in a path would quietly become a new registry. A PostgreSQL database is created
    by whoever runs it, so connecting to it decides nothing.
    """
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    if settings.is_remote:
        return None
    try:
        url = make_url(settings.database_url)
    except ArgumentError:
        return None  # create_db_engine says what is wrong with it
    if url.get_backend_name() != "sqlite" or not url.database or url.database == ":memory:":
        return None
    return Path(url.database).expanduser()


def registry_location(settings: Settings) -> str:
    """Where the registry is, as a person would name it: the data folder, the SQLite file, or the URL."""
    if "://" not in settings.uri:
        return str(Path(settings.uri).expanduser().resolve())
    file = registry_file(settings)
    if file is not None:
        return str(file.resolve())
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        return make_url(settings.uri).render_as_string(hide_password=True)
    except ArgumentError:
        return settings.uri


def registry_exists(settings: Settings) -> bool:
    """Whether opening ``settings`` finds a registry rather than creating one (always true for server databases)."""
    file = registry_file(settings)
    return file is None or file.is_file()


def open_service(settings: Settings, *, migrate: bool = True, create: bool = True) -> RegistryService:
    """Connect to the database (applying migrations) and the artifact store.

    With ``create=False`` a registry in a SQLite file that does not exist yet raises ``NotFound``
    and nothing is written to disk; with ``create`` (the default) it is made, folder and all.
    """
    if not create and not registry_exists(settings):
        where = registry_location(settings)
        init = "covex init" if settings.uri == DEFAULT_DATA_DIR else f"covex init {shlex.quote(settings.uri)}"
        raise NotFound(
            f"no Covex registry at {where}: create one with '{init}' or any write (such as creating a model), "
            "or point --uri / COVEX_URI at an existing registry"
        )
    try:
        artifacts = settings.artifacts_url
    except ValueError as exc:
        raise InvalidInput(str(exc)) from None
    try:
        engine = database.create_db_engine(settings.database_url)
        if migrate:
            database.upgrade(engine)
        try:
            blobs = BlobStore(artifacts, chunk_size=settings.chunk_size, **settings.artifacts_options)
        except ImportError as exc:
            # fsspec names the package a storage URL needs (s3fs for s3://).
            extra = " (for s3:// storage: pip install 'covex[s3]')" if artifacts.startswith("s3://") else ""
            raise InvalidInput(
                f"'artifacts' {artifacts!r} needs a package that is not installed: {exc}{extra}"
            ) from None
    except OSError as exc:
        # The data folder (or the artifacts folder) cannot be made: a file in the way, a read-only
        # or pseudo file system, no permission.
        in_the_way = _file_in_the_way(Path(exc.filename)) if exc.filename else None
        if in_the_way is not None:
            reason = f"{in_the_way} is a file, not a folder"
        else:
            reason = f"{exc.strerror or exc}" + (f" ({exc.filename})" if exc.filename else "")
        raise InvalidInput(f"cannot create a Covex registry at {registry_location(settings)}: {reason}") from None
    limits = Limits(
        max_files=settings.max_files_per_version,
        pending_timeout=settings.pending_timeout,
        anonymous_audit_interval=settings.anonymous_audit_interval,
    )
    service = RegistryService(engine, blobs, settings.stages, principal=settings.user, limits=limits)
    service.signer = load_signer(settings)
    return service


def load_signer(settings: Settings) -> Signer | None:
    """The registry's signing key, from the file or the environment variable the settings name."""
    if settings.signing_key_file and settings.signing_key_env:
        raise InvalidInput("give one of 'signing_key_file' and 'signing_key_env', not both")
    if settings.signing_key_file:
        path = Path(settings.signing_key_file).expanduser()
        try:
            pem = path.read_bytes()
        except OSError as exc:
            raise InvalidInput(f"'signing_key_file' {str(path)!r} cannot be read: {exc.strerror or exc}") from None
        return signing.load_signer(pem, f"'signing_key_file' {str(path)!r}")
    if settings.signing_key_env:
        text = os.environ.get(settings.signing_key_env)
        if not text:
            raise InvalidInput(f"'signing_key_env' names {settings.signing_key_env!r}, which is not set")
        return signing.load_signer(text.encode(), f"the environment variable {settings.signing_key_env!r}")
    return None


def schema_revision(service: RegistryService) -> str | None:
    """The migration the registry's database is at (None before the first)."""
    return database.current_revision(service.engine)


def _file_in_the_way(path: Path) -> Path | None:
    """The file where ``path`` or a folder above it should be, if there is one."""
    for place in (path, *path.parents):
        if place.exists():
            return None if place.is_dir() else place
    return None
