"""The client's calls about records kept on versions by the processes around the registry:
deployments (where a version runs) and evaluations (what it scored on named data)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from covex.domain.deployments import Deployment
from covex.domain.evaluations import Evaluation

if TYPE_CHECKING:
    from covex.client.backend import Backend


class RecordsMixin:
    """Part of ``covex.Client``: deployments and evaluations."""

    _backend: Backend

    if TYPE_CHECKING:  # covex.Client's

        def _number(self, name_or_uri: str, version: int | str | None) -> tuple[str, int]: ...

    # -- deployments ----------------------------------------------------------------

    def start_deployment(
        self,
        name_or_uri: str,
        kind: str,
        target: str,
        version: int | str | None = None,
        *,
        status: str | None = None,
        message: str = "",
        log_location: str | None = None,
    ) -> Deployment:
        """Record that the version ``name_or_uri`` resolves to starts running as ``kind`` ('serving' at the
        URL ``target``, or 'batch' writing to ``target``); the reader role on the model is enough.
        ``log_location``: where it writes its inference log (monitoring reads it from there)."""
        name, number = self._number(name_or_uri, version)
        return self._backend.start_deployment(
            name, number, kind, target, status=status, message=message, log_location=log_location
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
        """Heartbeat a deployment, changing what is given: its status, the version it serves now, counts."""
        return self._backend.update_deployment(
            deployment_id, status=status, version=version, message=message, rows=rows, duration_s=duration_s
        )

    def get_deployment(self, deployment_id: int) -> Deployment:
        return self._backend.get_deployment(deployment_id)

    def deployments(
        self, name: str | None = None, version: int | None = None, *, active: bool = False
    ) -> list[Deployment]:
        """Where versions run, newest first: of one model (and version), or of every model you may read."""
        return self._backend.list_deployments(name, version, active=active)

    # -- evaluations ----------------------------------------------------------------

    def record_evaluation(
        self,
        name_or_uri: str,
        *,
        kind: str,
        key: str,
        data_digest: str,
        source: str,
        rows: int,
        body: Mapping[str, Any],
        data_tags: Sequence[str] = (),
        version: int | str | None = None,
    ) -> Evaluation:
        """Store an evaluation of a version (``covex.evaluation`` and ``covex.explain`` make them); editor role."""
        name, number = self._number(name_or_uri, version)
        return self._backend.record_evaluation(
            name,
            number,
            kind=kind,
            key=key,
            data_digest=data_digest,
            source=source,
            rows=rows,
            body=dict(body),
            data_tags=list(data_tags),
        )

    def evaluations(
        self,
        name_or_uri: str,
        version: int | str | None = None,
        *,
        kind: str | None = None,
        key: str | None = None,
        max_results: int = 100,
    ) -> list[Evaluation]:
        """Evaluations, newest first: of the version a URI names, or of every version of a model (a bare name).

        ``kind`` keeps one kind (``offline``, ``online``, ``explanation``); ``key`` one evaluation's history.
        """
        if name_or_uri.startswith("models:/") or version is not None:
            name, number = self._number(name_or_uri, version)
            return self._backend.list_evaluations(name, number, kind=kind, key=key, max_results=max_results)
        return self._backend.list_evaluations(name_or_uri, None, kind=kind, key=key, max_results=max_results)

    def get_evaluation(self, evaluation_id: int) -> Evaluation:
        return self._backend.get_evaluation(evaluation_id)
