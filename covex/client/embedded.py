"""The embedded backend: the registry service in this process, opened on first use.

A read never creates a registry: reading from a data folder that holds none raises
``NotFound`` and leaves the disk as it was, so a mistyped path or a command run in the
wrong directory says so instead of answering from a new, empty registry. The first
write creates it (and tells ``on_create``).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from covex.domain.deployments import Deployment
from covex.domain.entities import FileEntry, FsckReport, GcReport, Model, ModelEvent, ModelVersion, Page
from covex.domain.evaluations import Evaluation
from covex.domain.uris import ModelRef
from covex.settings import Settings

if TYPE_CHECKING:
    from covex.domain.entities import NewVersion
    from covex.service import RegistryService

# Methods of the service and of its areas (access, approvals, audit, webhooks) that only read.
# Every other method may write, and so may create the registry; a read left off this list
# would create an empty registry where the caller only meant to look.
_READ_PREFIXES = ("get_", "list_", "search_", "read_")
_READS = frozenset(
    {
        "ping",
        "history",
        "missing_blobs",
        "blob_local_path",
        "gc",  # a registry that does not exist has nothing to collect
        "fsck",  # nor anything to check
        "needs_bootstrap",
        "whoami",
        "inbox",
        "placement",
        "applicable_policies",
        "verify",
        "export",
        "export_chunks",
        "monitor_status",
        "latest_scan",
        "check_loadable",
        "verify_version",
        "export_bundle",
    }
)


def is_read(method: str) -> bool:
    """Whether the service method ``method`` only reads (so must not create a registry)."""
    return method.startswith(_READ_PREFIXES) or method in _READS


class EmbeddedBackend:
    """The ``Backend`` of an embedded client: a ``RegistryService`` opened lazily.

    ``token`` makes the service act as the token's owner, checked on every call (a
    long-lived client sees revocations at once). A token can only belong to a registry
    that exists, so with one a write never creates a registry either.
    """

    def __init__(
        self, settings: Settings, *, token: str | None = None, on_create: Callable[[str], None] | None = None
    ) -> None:
        self.settings = settings
        self._token = token
        self._on_create = on_create
        self._service: RegistryService | None = None
        self._lock = threading.Lock()

    @property
    def location(self) -> str:
        from covex.service.factory import registry_location

        return registry_location(self.settings)

    def service(self, *, create: bool) -> RegistryService:
        """The open service; opening it creates the registry only if ``create``."""
        if self._service is not None:
            return self._service
        from covex.service.factory import open_service, registry_exists

        create = create and not self._token
        with self._lock:
            if self._service is None:
                created = create and not registry_exists(self.settings)
                service = open_service(self.settings, create=create)
                if self._token:
                    try:
                        service = service.with_credentials(self._token, every_call=True)
                    except BaseException:
                        service.close()
                        raise
                self._service = service
                if created and self._on_create is not None:
                    self._on_create(self.location)
            return self._service

    def init(self) -> bool:
        """Open the registry, creating it if needed; True if this call created it."""
        from covex.service.factory import registry_exists

        existed = self._service is not None or registry_exists(self.settings)
        self.service(create=True)
        return not existed

    def _read(self) -> RegistryService:
        return self.service(create=False)

    def _write(self) -> RegistryService:
        return self.service(create=True)

    # -- the Backend protocol ---------------------------------------------------------

    @property
    def stages(self) -> list[str]:
        return list(self.settings.stages)  # settings decide them: no need to open anything

    @property
    def access(self) -> Any:
        return _Area(self, "access")

    @property
    def approvals(self) -> Any:
        return _Area(self, "approvals")

    @property
    def audit(self) -> Any:
        return _Area(self, "audit")

    @property
    def webhooks(self) -> Any:
        return _Area(self, "webhooks")

    @property
    def monitoring(self) -> Any:
        return _Area(self, "monitoring")

    @property
    def trust(self) -> Any:
        return _Area(self, "trust")

    def close(self) -> None:
        with self._lock:
            service, self._service = self._service, None
        if service is not None:
            service.close()

    def ping(self) -> None:
        self._read().ping()

    def create_model(self, name: str, description: str = "", tags: Mapping[str, str] | None = None) -> Model:
        return self._write().create_model(name, description, tags)

    def get_model(self, name: str) -> Model:
        return self._read().get_model(name)

    def rename_model(self, name: str, new_name: str) -> Model:
        return self._write().rename_model(name, new_name)

    def update_model(self, name: str, *, description: str | None = None, new_name: str | None = None) -> Model:
        return self._write().update_model(name, description=description, new_name=new_name)

    def set_model_tag(self, name: str, key: str, value: str) -> Model:
        return self._write().set_model_tag(name, key, value)

    def delete_model_tag(self, name: str, key: str) -> Model:
        return self._write().delete_model_tag(name, key)

    def delete_model(self, name: str) -> None:
        self._write().delete_model(name)

    def search_models(
        self,
        filter: str | None = None,
        order_by: Sequence[str] | None = None,
        max_results: int = 100,
        page_token: str | None = None,
    ) -> Page[Model]:
        return self._read().search_models(filter, order_by, max_results, page_token)

    def create_version(self, name: str, new: NewVersion) -> ModelVersion:
        return self._write().create_version(name, new)

    def finalize_version(self, name: str, version: int) -> ModelVersion:
        return self._write().finalize_version(name, version)

    def fail_version(self, name: str, version: int, message: str) -> ModelVersion:
        return self._write().fail_version(name, version, message)

    def get_version(self, ref: ModelRef) -> ModelVersion:
        return self._read().get_version(ref)

    def list_files(self, ref: ModelRef) -> tuple[ModelVersion, list[FileEntry]]:
        return self._read().list_files(ref)

    def search_versions(
        self,
        filter: str | None = None,
        order_by: Sequence[str] | None = None,
        max_results: int = 100,
        page_token: str | None = None,
        *,
        model: str | None = None,
    ) -> Page[ModelVersion]:
        return self._read().search_versions(filter, order_by, max_results, page_token, model=model)

    def update_version(self, name: str, version: int, *, description: str) -> ModelVersion:
        return self._write().update_version(name, version, description=description)

    def start_deployment(
        self,
        name: str,
        version: int,
        kind: str,
        target: str,
        *,
        status: str | None = None,
        message: str = "",
        log_location: str | None = None,
    ) -> Deployment:
        return self._write().start_deployment(
            name, version, kind, target, status=status, message=message, log_location=log_location
        )

    def update_deployment(
        self,
        deployment_id: int,
        *,
        status: str | None = None,
        version: int | None = None,
        message: str | None = None,
        rows: int | None = None,
        duration_s: float | None = None,
    ) -> Deployment:
        return self._write().update_deployment(
            deployment_id, status=status, version=version, message=message, rows=rows, duration_s=duration_s
        )

    def get_deployment(self, deployment_id: int) -> Deployment:
        return self._read().get_deployment(deployment_id)

    def list_deployments(
        self, name: str | None = None, version: int | None = None, *, active: bool = False
    ) -> list[Deployment]:
        return self._read().list_deployments(name, version, active=active)

    def record_evaluation(
        self,
        name: str,
        version: int,
        *,
        kind: str,
        key: str,
        data_digest: str,
        source: str,
        rows: int,
        body: dict[str, Any],
        data_tags: list[str] | None = None,
    ) -> Evaluation:
        return self._write().record_evaluation(
            name,
            version,
            kind=kind,
            key=key,
            data_digest=data_digest,
            source=source,
            rows=rows,
            body=body,
            data_tags=data_tags,
        )

    def get_evaluation(self, evaluation_id: int) -> Evaluation:
        return self._read().get_evaluation(evaluation_id)

    def list_evaluations(
        self,
        name: str,
        version: int | None = None,
        *,
        kind: str | None = None,
        key: str | None = None,
        max_results: int = 100,
    ) -> list[Evaluation]:
        return self._read().list_evaluations(name, version, kind=kind, key=key, max_results=max_results)

    def set_version_tag(self, name: str, version: int, key: str, value: str) -> ModelVersion:
        return self._write().set_version_tag(name, version, key, value)

    def delete_version_tag(self, name: str, version: int, key: str) -> ModelVersion:
        return self._write().delete_version_tag(name, version, key)

    def log_metrics(self, name: str, version: int, metrics: Mapping[str, float]) -> ModelVersion:
        return self._write().log_metrics(name, version, metrics)

    def log_params(self, name: str, version: int, params: Mapping[str, str]) -> ModelVersion:
        return self._write().log_params(name, version, params)

    def delete_version(self, name: str, version: int) -> None:
        self._write().delete_version(name, version)

    def transition_stage(
        self, name: str, version: int, stage: str, *, archive_existing: bool = False, comment: str = ""
    ) -> ModelVersion:
        return self._write().transition_stage(name, version, stage, archive_existing=archive_existing, comment=comment)

    def set_alias(self, name: str, alias: str, version: int, *, comment: str = "") -> ModelVersion:
        return self._write().set_alias(name, alias, version, comment=comment)

    def delete_alias(self, name: str, alias: str) -> None:
        self._write().delete_alias(name, alias)

    def get_document(self, ref: ModelRef, kind: str) -> dict[str, Any]:
        return self._read().get_document(ref, kind)

    def set_card(self, name: str, version: int, card: Mapping[str, Any], *, replace: bool = False) -> dict[str, Any]:
        return self._write().set_card(name, version, card, replace=replace)

    def history(self, name: str, version: int | None = None) -> list[ModelEvent]:
        return self._read().history(name, version)

    def missing_blobs(self, digests: Sequence[str]) -> list[str]:
        return self._read().missing_blobs(digests)

    def put_blob(self, digest: str, size: int, chunks: Iterable[bytes]) -> None:
        self._write().put_blob(digest, size, chunks)

    def read_blob(self, digest: str) -> Iterator[bytes]:
        return self._read().read_blob(digest)

    def gc(self, *, apply: bool = False, grace_seconds: float = 3600.0) -> GcReport:
        return self._read().gc(apply=apply, grace_seconds=grace_seconds)

    def fsck(self, *, after: str | None = None, limit: int = 10) -> FsckReport:
        return self._read().fsck(after=after, limit=limit)


class _Area:
    """One area of the service (``access``, ``approvals``...), opened like the rest on first use."""

    def __init__(self, backend: EmbeddedBackend, area: str) -> None:
        self._backend = backend
        self._area = area

    def __getattr__(self, method: str) -> Any:
        if method.startswith("__"):
            raise AttributeError(method)
        opened = self._backend._service
        if opened is not None:
            return getattr(getattr(opened, self._area), method)

        def call(*args: Any, **kwargs: Any) -> Any:
            service = self._backend.service(create=not is_read(method))
            return getattr(getattr(service, self._area), method)(*args, **kwargs)

        return call
