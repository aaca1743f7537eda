"""Build a registry service from settings: engine, migrations, blob store."""

from __future__ import annotations

from covex.artifacts import BlobStore
from covex.service.base import Limits
from covex.service.registry import RegistryService
from covex.settings import Settings
from covex.store import database


def open_service(settings: Settings, *, migrate: bool = True) -> RegistryService:
    """Connect to the database (applying migrations) and the artifact store."""
    engine = database.create_db_engine(settings.database_url)
    if migrate:
        database.upgrade(engine)
    blobs = BlobStore(settings.artifacts_url, chunk_size=settings.chunk_size, **settings.artifacts_options)
    limits = Limits(max_files=settings.max_files_per_version, pending_timeout=settings.pending_timeout)
    return RegistryService(engine, blobs, settings.stages, principal=settings.user, limits=limits)
