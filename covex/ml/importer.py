"""Copy registered models from an MLflow tracking server into Covex, keeping MLflow's version numbers.

Each version is downloaded through MLflow's own client into a temporary folder first and only then
created in Covex, so a failure leaves no half-made version. Imported versions carry the tag
``covex.import.source = <tracking uri>#<model>/<version>``; a re-run skips them and imports the rest.
A model's versions are imported in order and the first failure stops that model, so the failed
number stays free for the next run (Covex numbers only increase).
"""

from __future__ import annotations

import math
import tempfile
from collections.abc import Callable, Mapping
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, get_args

import httpx
from pydantic import BaseModel, computed_field

from covex.domain.entities import ModelVersion
from covex.domain.errors import AlreadyExists, CovexError, NotFound, ServiceUnavailable
from covex.ml.registering import register_folder

if TYPE_CHECKING:
    from covex.client import Client

SOURCE_TAG = "covex.import.source"
# MLflow's fixed stages → Covex's configured ones; None means Covex's first stage (where versions start).
DEFAULT_STAGE_MAP: Mapping[str, str | None] = {
    "None": None,
    "Staging": "Test",
    "Production": "Production",
    "Archived": "Archived",
}

Outcome = Literal["copied", "metadata-only", "skipped", "conflict", "failed"]
ImportProgress = Callable[[int, int, str], None]
"""Called with (versions done, versions in all, what is being imported)."""


class VersionResult(BaseModel):
    model: str
    version: int
    outcome: Outcome
    detail: str = ""


class ImportReport(BaseModel):
    """What an import did; ``ok`` is False when a version failed or conflicted."""

    tracking_uri: str
    models: list[str] = []
    versions: list[VersionResult] = []
    aliases: list[str] = []  # set or moved, e.g. "churn@champion -> 3"
    stages: list[str] = []  # moved, e.g. "models:/churn/3 -> Production"
    problems: list[str] = []  # stages and aliases that could not be applied

    @computed_field  # type: ignore[prop-decorator]
    @property
    def counts(self) -> dict[str, int]:
        """Versions per outcome: copied, metadata-only, skipped, conflict, failed."""
        return {o: sum(v.outcome == o for v in self.versions) for o in get_args(Outcome)}

    @computed_field  # type: ignore[prop-decorator]
    @property
    def ok(self) -> bool:
        return not any(v.outcome in ("failed", "conflict") for v in self.versions)


def import_from_mlflow(
    client: Client,
    tracking_uri: str,
    models: list[str] | None = None,
    *,
    stage_map: Mapping[str, str | None] = DEFAULT_STAGE_MAP,
    progress: ImportProgress | None = None,
) -> ImportReport:
    """Copy ``models`` (default: every registered model) with all their versions from MLflow.

    Raises ``ServiceUnavailable`` when MLflow cannot be reached and ``NotFound`` for a model MLflow
    does not have, before anything is written. Failures of single versions are reported, not raised.
    """
    uri = tracking_uri.rstrip("/")
    _check_reachable(uri)
    importer = _Importer(client, uri, stage_map, progress)
    for model, versions in importer.plan(models):
        importer.import_model(model, versions)
    return importer.report


def _check_reachable(uri: str) -> None:
    """Fail fast: MLflow's own client retries a refused connection for minutes."""
    if not uri.startswith(("http://", "https://")):
        return
    try:
        httpx.get(f"{uri}/health", timeout=10)  # any answer will do
    except httpx.HTTPError as exc:
        raise ServiceUnavailable(f"cannot reach MLflow at {uri}: {exc}") from None


def _quoted(name: str) -> str:
    return f'"{name}"' if "'" in name else f"'{name}'"


class _Importer:
    def __init__(
        self, client: Client, uri: str, stage_map: Mapping[str, str | None], progress: ImportProgress | None
    ) -> None:
        from mlflow import MlflowClient

        self.client = client
        self.uri = uri
        self.stage_map = stage_map
        self.progress = progress
        self.total = 0
        self.mlflow = MlflowClient(tracking_uri=uri, registry_uri=uri)
        self.report = ImportReport(tracking_uri=uri)

    def plan(self, names: list[str] | None) -> list[tuple[Any, list[Any]]]:
        """Every model with its versions (oldest first), read before anything is written."""
        from mlflow.exceptions import MlflowException

        try:
            if names:
                models = [self.mlflow.get_registered_model(n) for n in dict.fromkeys(names)]
            else:
                models = _pages(self.mlflow.search_registered_models)
            plan = []
            for m in models:
                found = _pages(partial(self.mlflow.search_model_versions, f"name = {_quoted(m.name)}"))
                plan.append((m, sorted(found, key=lambda v: int(v.version))))
        except MlflowException as exc:
            if exc.error_code == "RESOURCE_DOES_NOT_EXIST":
                raise NotFound(f"MLflow at {self.uri}: {exc.message}") from None
            raise ServiceUnavailable(f"MLflow at {self.uri} failed to list models: {exc.message}") from None
        self.report.models = [m.name for m, _ in plan]
        self.total = sum(len(versions) for _, versions in plan)
        return plan

    def import_model(self, model: Any, versions: list[Any]) -> None:
        try:
            self._ensure_model(model)
        except CovexError as exc:
            for mv in versions:
                self._add(mv, "failed", f"model not created in Covex: {exc.message}")
            return
        existing = _covex_versions(self.client, model.name)
        imported: set[int] = set()
        blocked: int | None = None
        for mv in versions:
            number = int(mv.version)
            if self.progress:
                self.progress(len(self.report.versions), self.total, f"{mv.name} v{number}")
            if blocked is not None:
                self._add(mv, "failed", f"not attempted: version {blocked} failed first")
                continue
            outcome, detail, covex_version = self._import_version(mv, existing.get(number))
            self._add(mv, outcome, detail)
            if covex_version is not None:
                imported.add(number)
                self._apply_stage(mv, covex_version)
            elif outcome == "failed" and number not in existing:
                blocked = number  # importing later numbers first would make this one unusable
        self._apply_aliases(model, imported)
        if self.progress:
            self.progress(len(self.report.versions), self.total, "")

    def _add(self, mv: Any, outcome: Outcome, detail: str) -> None:
        self.report.versions.append(
            VersionResult(model=mv.name, version=int(mv.version), outcome=outcome, detail=detail)
        )

    def _ensure_model(self, model: Any) -> None:
        """Create the model with MLflow's description and tags; on an existing one fill gaps, never overwrite."""
        description, tags = model.description or "", dict(model.tags or {})
        try:
            current = self.client.get_model(model.name)
        except NotFound:
            try:
                self.client.create_model(model.name, description, tags)
                return
            except AlreadyExists:
                current = self.client.get_model(model.name)
        if description and not current.description:
            self.client.update_model(model.name, description=description)
        for key, value in tags.items():
            if key not in current.tags:
                self.client.set_model_tag(model.name, key, value)

    def _import_version(self, mv: Any, have: ModelVersion | None) -> tuple[Outcome, str, ModelVersion | None]:
        """Import one version; the Covex version comes back when it is this import's and READY."""
        from mlflow.exceptions import MlflowException

        number, marker = int(mv.version), f"{self.uri}#{mv.name}/{mv.version}"
        if have is not None:
            if have.tags.get(SOURCE_TAG) != marker:
                return "conflict", f"Covex already has version {number}, not imported from {marker}", None
            if have.status != "READY":
                why = f"an earlier import left it {have.status} ({have.status_message}); its number cannot be reused"
                return "failed", why, None
            return "skipped", "", have  # already imported
        if mv.status == "FAILED_REGISTRATION":
            return "skipped", "MLflow failed to register this version", None
        if mv.status != "READY":
            return "failed", f"MLflow version is {mv.status}; run the import again later", None
        try:
            created, notes = self._copy(mv, marker)
        except AlreadyExists as exc:
            return "conflict", exc.message, None
        except ServiceUnavailable:
            raise  # Covex itself is unreachable: nothing else will work either
        except CovexError as exc:
            return "failed", exc.message, None
        except MlflowException as exc:
            return "failed", f"MLflow: {exc.message}", None
        except Exception as exc:  # noqa: BLE001 - report it and stop this model; the next run retries
            return "failed", f"{type(exc).__name__}: {exc}", None
        return ("copied" if created.file_count else "metadata-only"), "; ".join(notes), created

    def _copy(self, mv: Any, marker: str) -> tuple[ModelVersion, list[str]]:
        """Download the version's files and run data from MLflow, then create it in Covex."""
        import mlflow.artifacts

        notes: list[str] = []
        run = self._run(mv.run_id, notes)
        run_link = mv.run_link or ""
        if run is not None and not run_link:
            run_link = f"{self.uri}/#/experiments/{run.info.experiment_id}/runs/{run.info.run_id}"
        fields: dict[str, Any] = {
            "source": mv.source or marker,
            "description": mv.description or "",
            "tags": {**dict(mv.tags or {}), SOURCE_TAG: marker},
            "metrics": _finite(run.data.metrics if run else {}, notes),
            "params": dict(run.data.params) if run else {},
            "run_id": mv.run_id or "",
            "run_link": run_link,
            "number": int(mv.version),
        }
        lineage = {"git": _git(run.data.tags if run else {}), "mlflow": _origin(mv, self.uri)}
        documents = {"lineage": {**lineage, "run_id": fields["run_id"], "run_link": run_link}}
        download_uri = self.mlflow.get_model_version_download_uri(mv.name, mv.version)
        if not mlflow.artifacts.list_artifacts(artifact_uri=download_uri, tracking_uri=self.uri):
            notes.append(f"MLflow has no files at {download_uri}; recorded the source only")
            return self.client.create_version(mv.name, documents=documents, **fields), notes
        with tempfile.TemporaryDirectory(prefix="covex-mlflow-") as tmp:
            local = Path(
                mlflow.artifacts.download_artifacts(artifact_uri=download_uri, dst_path=tmp, tracking_uri=self.uri)
            )
            if (local / "MLmodel").is_file():
                return register_folder(self.client, local, mv.name, lineage_fields=lineage, **fields), notes
            return self.client.create_version(mv.name, local, documents=documents, **fields), notes

    def _run(self, run_id: str | None, notes: list[str]) -> Any:
        from mlflow.exceptions import MlflowException

        if not run_id:
            return None
        try:
            return self.mlflow.get_run(run_id)
        except MlflowException as exc:
            if exc.error_code != "RESOURCE_DOES_NOT_EXIST":
                raise
            notes.append(f"run {run_id} is gone from MLflow; no metrics or params")
            return None

    def _apply_stage(self, mv: Any, version: ModelVersion) -> None:
        stage = mv.current_stage or "None"
        target = self.stage_map.get(stage, stage) or self.client.stages[0]
        configured = {s.lower(): s for s in self.client.stages}
        if target.lower() not in configured:
            self.report.problems.append(
                f"{version.uri}: stage {target!r} (MLflow {stage!r}) is not configured in Covex "
                f"({', '.join(self.client.stages)}); left in {version.stage}"
            )
        elif version.stage.lower() != target.lower():
            moved = self.client.transition_stage(version.name, version.version, configured[target.lower()])
            self.report.stages.append(f"{moved.uri} -> {moved.stage}")

    def _apply_aliases(self, model: Any, imported: set[int]) -> None:
        aliases = {alias: int(number) for alias, number in dict(model.aliases or {}).items()}
        if not aliases:
            return
        current = self.client.get_model(model.name).aliases
        for alias, number in sorted(aliases.items()):
            where = f"{model.name}@{alias} -> {number}"
            if number not in imported:
                self.report.problems.append(f"{where}: not set, version {number} is not imported")
            elif current.get(alias) != number:
                try:
                    self.client.set_alias(model.name, alias, number)
                    self.report.aliases.append(where)
                except CovexError as exc:
                    self.report.problems.append(f"{where}: not set, {exc.message}")


def _pages(fetch: Callable[..., Any]) -> list[Any]:
    items: list[Any] = []
    token: str | None = None
    while True:
        page = fetch(page_token=token)
        items.extend(page)
        token = page.token
        if not token:
            return items


def _covex_versions(client: Client, name: str) -> dict[int, ModelVersion]:
    found: dict[int, ModelVersion] = {}
    token: str | None = None
    while True:
        page = client.list_versions(name, max_results=1000, page_token=token)
        found.update((v.version, v) for v in page)
        token = page.next_page_token
        if not token:
            return found


def _git(tags: Mapping[str, str]) -> dict[str, Any] | None:
    """The training code's Git state as MLflow recorded it on the run (not the importer's checkout)."""
    commit = tags.get("mlflow.source.git.commit")
    if not commit:
        return None
    return {
        "commit": commit,
        "branch": tags.get("mlflow.source.git.branch", ""),
        "remote": tags.get("mlflow.source.git.repoURL", ""),
    }


def _origin(mv: Any, uri: str) -> dict[str, Any]:
    """Where the version came from, with what MLflow knew that Covex sets anew (creator, creation time)."""
    return {
        "tracking_uri": uri,
        "name": mv.name,
        "version": int(mv.version),
        "source": mv.source or "",
        "user_id": mv.user_id or "",
        "creation_timestamp": mv.creation_timestamp,
    }


def _finite(metrics: dict[str, float], notes: list[str]) -> dict[str, float]:
    """MLflow keeps NaN and infinite metrics; Covex keeps finite numbers only (JSON has no others)."""
    kept = {k: v for k, v in metrics.items() if math.isfinite(v)}
    dropped = sorted(set(metrics) - set(kept))
    if dropped:
        notes.append(f"metrics {', '.join(dropped)} are NaN or infinite in MLflow; not copied")
    return kept
