"""Register finished models: from a trained object, an MLflow model folder, or an MLflow run."""

from __future__ import annotations

import logging
import os
import re
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from covex.domain.cards import validate_card
from covex.domain.documents import validate_documents
from covex.domain.entities import ModelVersion
from covex.domain.errors import AlreadyExists, CovexError, InvalidInput, NotFound, ServiceUnavailable
from covex.domain.names import validate_metrics, validate_model_name, validate_tags
from covex.extras import needs_extra
from covex.ml.lineage import describe_dataset, git_state
from covex.ml.packaging import check_example, describe_package, save_model
from covex.ml.profile import profile_frame

if TYPE_CHECKING:
    from covex.client import Client

SOURCE_DIGEST_TAG = "covex.source_digest"
FLAVOR_TAG = "covex.flavor"
COVEX_TAGS = (SOURCE_DIGEST_TAG, FLAVOR_TAG)  # tags Covex adds to a registered version

logger = logging.getLogger(__name__)


def _parent_uri(client: Client, parent: str | ModelVersion | None, required: bool) -> str | None:
    """The parent version's URI by number; a missing one is an error only if it is ``required``."""
    if parent is None:
        return None
    if isinstance(parent, ModelVersion):
        return parent.uri
    try:
        return client.get_version(parent).uri
    except NotFound as exc:
        if not required:
            # A pipeline's first run names the champion it will later be retrained from.
            logger.info("parent %s does not exist yet: registering without a parent", parent)
            return None
        hint = " (parent_required=False registers without a parent while there is none)"
        raise NotFound(f"'parent' {parent}: {exc.message}{hint}") from None


def drift_reference(path: Path, frame: Any, label: str) -> dict[str, Any]:
    """What drift monitoring compares with: ``frame``'s bins and counts (the signature's columns when it names
    them), with the model's predictions on it when the model in ``path`` loads here."""
    import pandas as pd

    from covex.batch.model import prediction_frame
    from covex.ml.packaging import load_pyfunc
    from covex.monitoring import reference_of

    frame = frame if isinstance(frame, pd.DataFrame) else pd.DataFrame(frame)
    try:
        pyfunc = load_pyfunc(path, label)
    except (CovexError, ImportError, OSError) as exc:
        logger.warning("the model does not load here, its predictions are not referenced: %s", exc)
        return reference_of(frame)
    schema = pyfunc.metadata.get_input_schema()
    columns = list(schema.input_names()) if schema is not None and schema.has_input_names() else None

    def predict(f: Any) -> Any:
        return prediction_frame(pyfunc.predict(f[columns] if columns else f), len(f))

    return reference_of(frame, predict, columns)


def register_folder(
    client: Client,
    path: Path,
    name: str,
    *,
    source: str | None = None,
    description: str = "",
    tags: Mapping[str, str] | None = None,
    metrics: Mapping[str, float] | None = None,
    params: Mapping[str, str] | None = None,
    datasets: Sequence[Any] | None = None,
    reference_data: Any = None,
    card: Mapping[str, Any] | None = None,
    parent: str | ModelVersion | None = None,
    parent_required: bool = True,
    run_id: str = "",
    run_link: str = "",
    code_path: str | Path | None = None,
    aliases: Sequence[str] = (),
    stage: str | None = None,
    number: int | None = None,
    lineage_fields: Mapping[str, Any] | None = None,
) -> ModelVersion:
    """Create a READY version from an MLflow model folder, with lineage, signature, profile and card.

    ``parent`` (a version or a ``models:/`` URI) is recorded in the lineage by number; when it
    does not exist, ``NotFound`` naming it is raised, or with ``parent_required=False`` the version
    is registered without a parent (a pipeline's first run, before there is a champion).
    ``number`` keeps a version number from elsewhere (imports); ``lineage_fields`` replace or add
    lineage entries (an import knows the training run's Git state; the importer's checkout is not it).
    """
    card_fields = validate_card(dict(card) if card is not None else None)
    # Check the version's own values before the model may be created: bad input leaves nothing behind.
    validate_model_name(name)
    validate_tags(tags, "tags")
    validate_tags(params, "params")
    validate_metrics(metrics)
    described = [describe_dataset(d, i) for i, d in enumerate(datasets or [])]
    package = describe_package(path)
    profile = profile_frame(reference_data) if reference_data is not None else None
    reference = drift_reference(path, reference_data, name) if reference_data is not None else None
    extra = dict(lineage_fields or {})
    parent_uri = _parent_uri(client, parent, parent_required)
    lineage = {
        "git": None if "git" in extra else git_state(code_path),
        "datasets": described,
        "parent": parent_uri,
        "run_id": run_id,
        "run_link": run_link,
        "flavors": package["flavors"],
        "environment": package["environment"],
        **extra,
    }
    documents: dict[str, Any] = {"lineage": lineage}
    if package["signature"] is not None:
        documents["signature"] = package["signature"]
    if profile is not None:
        documents["profile"] = profile
    if reference is not None:
        documents["reference"] = reference
    if card_fields:
        documents["card"] = card_fields
    validate_documents(documents)  # as the registry will: a document it refuses is refused before anything is written
    try:
        client.get_model(name)
    except NotFound:
        try:
            client.create_model(name)
        except AlreadyExists:
            pass
    version = client.create_version(
        name,
        path,
        source=source,
        description=description,
        tags=tags,
        metrics=metrics,
        params=params,
        run_id=run_id,
        run_link=run_link,
        documents=documents,
        number=number,
    )
    for alias in aliases:
        client.set_alias(name, alias, version.version)
    if stage:
        client.transition_stage(name, version.version, stage)
    return client.get_version(name, version.version) if (aliases or stage) else version


def log_model(
    client: Client,
    model: Any,
    name: str,
    *,
    input_example: Any = None,
    flavor: str | None = None,
    pip_requirements: list[str] | None = None,
    **kwargs: Any,
) -> ModelVersion:
    """Package a trained model in the MLflow format and register it as the next version of ``name``.

    ``model``: a scikit-learn, XGBoost or LightGBM estimator, an ``mlflow.pyfunc.PythonModel``
    or a function taking a DataFrame. ``input_example`` infers the signature and is run through
    the packaged model. Other keyword arguments: ``metrics``, ``params``, ``tags``,
    ``description``, ``datasets``, ``reference_data`` (a DataFrame: profiled, and the drift reference),
    ``card``,
    ``parent`` (with ``parent_required=False``: recorded only if it exists), ``run_id``,
    ``run_link``, ``code_path``, ``aliases``, ``stage``, ``source``.

    Raises ``MissingExtra`` naming the ``ml`` extra when its packages are not installed.
    """
    with needs_extra("log_model"):
        return _log_model(
            client, model, name, input_example=input_example, flavor=flavor, pip_requirements=pip_requirements, **kwargs
        )


def _log_model(
    client: Client,
    model: Any,
    name: str,
    *,
    input_example: Any,
    flavor: str | None,
    pip_requirements: list[str] | None,
    **kwargs: Any,
) -> ModelVersion:
    with tempfile.TemporaryDirectory(prefix="covex-model-") as tmp:
        path = Path(tmp) / "model"
        used = save_model(model, path, input_example=input_example, flavor=flavor, pip_requirements=pip_requirements)
        if input_example is not None:
            check_example(path, input_example)
        tags = {FLAVOR_TAG: used, **dict(kwargs.pop("tags", None) or {})}
        # The packaging folder is temporary: record what the model was made from instead.
        kwargs.setdefault("source", f"python:{type(model).__module__}.{type(model).__qualname__}")
        return register_folder(client, path, name, tags=tags, **kwargs)


_RUN_URI = re.compile(r"runs:/([0-9a-fA-F]+)/(.*)")


def register_model(
    client: Client,
    model_uri: str | os.PathLike[str],
    name: str,
    *,
    tracking_uri: str | None = None,
    **kwargs: Any,
) -> ModelVersion:
    """Register an existing MLflow model: a local folder, ``runs:/<id>/<path>`` or any MLflow model URI.

    ``tracking_uri`` names the MLflow server for run URIs; other keyword arguments as ``log_model``.
    Raises ``MissingExtra`` naming the ``ml`` extra when its packages are not installed.
    """
    with needs_extra("register_model"):
        return _register_model(client, model_uri, name, tracking_uri=tracking_uri, **kwargs)


def _register_model(
    client: Client, model_uri: str | os.PathLike[str], name: str, *, tracking_uri: str | None, **kwargs: Any
) -> ModelVersion:
    local = Path(str(model_uri)).expanduser()
    if local.is_dir():
        return register_folder(client, local, name, source=local.resolve().as_uri(), **kwargs)
    uri = str(model_uri)
    run = _RUN_URI.fullmatch(uri)
    if run:
        kwargs.setdefault("run_id", run.group(1))
        if tracking_uri and tracking_uri.startswith(("http://", "https://")):
            kwargs.setdefault("run_link", f"{tracking_uri.rstrip('/')}/#/runs/{run.group(1)}")
    with tempfile.TemporaryDirectory(prefix="covex-import-") as tmp:
        path = _download_mlflow(uri, Path(tmp), tracking_uri)
        return register_folder(client, path, name, source=uri, **kwargs)


def _download_mlflow(uri: str, dst: Path, tracking_uri: str | None) -> Path:
    import mlflow.artifacts
    from mlflow.exceptions import MlflowException

    if "://" not in uri and ":/" not in uri:
        raise InvalidInput(f"'model_uri' {uri!r} is neither a local MLflow model folder nor an MLflow URI")
    try:
        return Path(mlflow.artifacts.download_artifacts(artifact_uri=uri, dst_path=str(dst), tracking_uri=tracking_uri))
    except MlflowException as exc:
        raise InvalidInput(f"cannot fetch {uri!r} from MLflow: {exc.message}") from None
    except OSError as exc:
        raise ServiceUnavailable(f"cannot fetch {uri!r} from MLflow at {tracking_uri}: {exc}") from None
