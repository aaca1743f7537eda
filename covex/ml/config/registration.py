"""Registering a loaded config through the SDK, once: a re-run finds its version and brings it up to date."""

from __future__ import annotations

import os
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict

from covex.domain.entities import ModelVersion
from covex.domain.errors import InvalidInput, NotFound, PermissionDenied
from covex.domain.names import validate_alias
from covex.domain.yaml_reader import Loc
from covex.ml.config.loading import check_parent_uri, load_config, parent_loc
from covex.ml.config.placement import Move, place
from covex.ml.config.readers import shown_path
from covex.ml.config.schema import Config
from covex.ml.registering import SOURCE_DIGEST_TAG, log_model, register_model

if TYPE_CHECKING:
    from covex.client import Client

RACE_WAIT_SECONDS = 300.0  # how long a run that lost a race waits for the winner's upload


class Change(BaseModel):
    """One value a re-run wrote onto the version it found: ``field`` is ``description``, ``card`` or ``tags.<key>``.

    ``before`` is None for a tag the version did not have.
    """

    model_config = ConfigDict(frozen=True)

    field: str
    before: Any = None
    after: Any = None


class RegistrationResult(BaseModel):
    """What ``run_config`` did.

    ``created``: a new version, or the one an earlier run registered (same identity digest).
    ``updated``: what a re-run changed on that version (``description``, ``card``, ``tags.<key>``),
    and ``changes`` the same with the values before and after.
    ``moves``: what became of each alias and the stage the config names. ``notes``: things
    worth telling that are not errors (an optional parent that does not exist yet).
    """

    model_config = ConfigDict(frozen=True)

    version: ModelVersion
    created: bool
    digest: str
    updated: list[str] = []
    changes: list[Change] = []
    moves: list[Move] = []
    notes: list[str] = []

    @property
    def refused(self) -> list[Move]:
        """The protected places the version could not even ask for: it does not meet their policy."""
        return [m for m in self.moves if m.outcome == "refused"]


@dataclass(frozen=True)
class RegistryCheck:
    """What the registry says about a config: the stage as the registry spells it, the parent found."""

    stage: str | None
    parent: ModelVersion | None
    notes: tuple[str, ...] = ()


def check_against_registry(client: Client, config: Config) -> RegistryCheck:
    """The checks that need the registry (stage names, aliases, the parent); writes nothing."""
    stages = client.stages
    stage = None
    if config.stage is not None:
        by_lower = {s.lower(): s for s in stages}
        stage = by_lower.get(config.stage.lower())
        if stage is None:
            raise config.error(("stage",), f"{config.stage!r} is not a stage; stages are {', '.join(stages)}")
    for i, alias in enumerate(config.aliases):
        try:
            validate_alias(alias, stages, f"aliases[{i}]")
        except InvalidInput as exc:
            raise config.error(("aliases", i), exc.message) from None
    parent = None
    notes: list[str] = []
    if config.parent is not None:
        check_parent_uri(config, stages)  # a stage in it is known only now
        try:
            parent = client.get_version(config.parent.uri)
        except NotFound as exc:
            if config.parent.required:
                hint = " (a first run may write parent: {uri: ..., required: false})"
                raise config.error(("parent",), exc.message + hint, NotFound) from None
            notes.append(f"parent {config.parent.uri} does not exist yet: registered without a parent")
        except InvalidInput as exc:
            raise config.error(parent_loc(config), exc.message) from None
        except PermissionDenied as exc:
            raise config.error(("parent",), exc.message, PermissionDenied) from None
    return RegistryCheck(stage, parent, tuple(notes))


def find_registered(client: Client, config: Config) -> ModelVersion | None:
    """The newest READY version with the config's identity digest (an earlier run registered it), if any."""
    query = f"name = '{config.model}' AND status = 'READY' AND tags.`{SOURCE_DIGEST_TAG}` = '{config.digest()}'"
    page = client.search_versions(query, order_by=["version DESC"], max_results=1)
    return page.items[0] if page.items else None


def _first_of_a_race(client: Client, config: Config, ours: ModelVersion) -> tuple[ModelVersion, str | None]:
    """The version to report when runs of one config raced: the lowest-numbered one with its identity.

    Runs started together each find nothing and register a version. Every run then looks for an
    earlier version with the same identity digest (PENDING ones too); one that exists wins, and
    this run's version is deleted (a manager may) or, failing that, named in a note.
    """
    query = f"name = '{config.model}' AND status != 'FAILED' AND tags.`{SOURCE_DIGEST_TAG}` = '{config.digest()}'"
    page = client.search_versions(query, order_by=["version ASC"], max_results=1)
    first = page.items[0] if page.items else ours
    if first.version >= ours.version:
        return ours, None
    deadline = time.monotonic() + RACE_WAIT_SECONDS
    while first.status == "PENDING" and time.monotonic() < deadline:
        time.sleep(0.2)  # the other run is still uploading its files
        first = client.get_version(first.name, first.version)
    if first.status != "READY":
        return ours, None  # the earlier run failed or is stuck: this run's version stands
    try:
        client.delete_version(ours.name, ours.version)
    except PermissionDenied:
        return first, (
            f"a run of the same config registered these inputs first as {first.uri}; "
            f"{ours.uri} duplicates it (deleting it needs a manager)"
        )
    return first, None


def _bring_up_to_date(client: Client, config: Config, version: ModelVersion) -> tuple[ModelVersion, list[Change]]:
    """Write what the config says about the version (tags, description, card) where it differs.

    Only what the config states: a tag or card field it does not name, or a description or card
    it leaves out, stays as it is on the version. Each change is an ordinary, audited SDK call.
    """
    name, number = version.name, version.version
    changed: list[Change] = []
    if config.states("description") and config.description != version.description:
        described = version.description
        version = client.update_version(name, number, description=config.description)
        changed.append(Change(field="description", before=described, after=config.description))
    for key, value in config.tags.items():
        tagged = version.tags.get(key)
        if tagged != value:
            version = client.set_version_tag(name, number, key, value)
            changed.append(Change(field=f"tags.{key}", before=tagged, after=value))
    if config.card is not None:
        card = client.get_card(name, number)
        # Like tags: the fields the config names are written, others added since (covex card --field) stay.
        merged = {**card, **config.card_fields}
        if card != merged:
            client.set_card(name, merged, number)
            changed.append(Change(field="card", before=card, after=merged))
    return version, changed


def _load_pickled(config: Config, path: Path, kind: str) -> Any:
    try:
        if kind == "joblib":
            import joblib  # type: ignore[import-untyped]

            return joblib.load(path)
        import pickle

        with path.open("rb") as f:
            # The user's own model file, named in their own config: loading it is the point.
            return pickle.load(f)
    except Exception as exc:  # noqa: BLE001 - unpickling can raise anything
        raise config.error(
            ("model_source", kind), f"cannot load {shown_path(config, path)}: {type(exc).__name__}: {exc}"
        ) from None


def _create(client: Client, config: Config, parent: ModelVersion | None) -> ModelVersion:
    """A new READY version from the config's source; aliases and stage are placed afterwards."""
    kwargs: dict[str, Any] = {
        "description": config.description,
        "tags": {**config.tags, SOURCE_DIGEST_TAG: config.digest()},
        "metrics": config.all_metrics,
        "params": config.params,
        "datasets": config.described_datasets,
        "reference_data": config.reference_frame,
        "card": config.card_fields or None,
        "parent": parent,
        "code_path": config.code_path or config.file.parent,
    }
    if config.run.id:
        kwargs["run_id"] = config.run.id
    if config.run.link:
        kwargs["run_link"] = config.run.link
    source = config.model_source
    kind = source.kind
    try:
        if source.mlflow_model is not None:
            return register_model(client, source.mlflow_model, config.model, **kwargs)
        if source.mlflow_run is not None:
            if not (source.tracking_uri or "").startswith(("http://", "https://")):
                kwargs.setdefault("run_link", "")  # a link into the MLflow UI exists only on a tracking server
            return register_model(client, source.mlflow_run, config.model, tracking_uri=source.tracking_uri, **kwargs)
        file = source.pickle or source.joblib
        assert file is not None
        return log_model(
            client,
            _load_pickled(config, file, kind),
            config.model,
            input_example=config.example_frame,
            flavor=source.flavor,
            pip_requirements=source.pip_requirements,
            source=file.as_uri(),
            **kwargs,
        )
    except InvalidInput as exc:
        if exc.message.startswith(config.label):
            raise
        loc: Loc = ("input_example",) if exc.message.startswith("'input_example'") else ("model_source", kind)
        raise config.error(loc, exc.message) from None


def register_config(client: Client, config: Config) -> RegistrationResult:
    """Register a loaded config, or find and update the version an earlier run registered.

    A version whose model files, metrics, params and datasets match the config's (its identity
    digest) is the same version: the config's tags, description and card are written onto it
    instead of registering another. Aliases and the stage are then placed (``place``); a
    protected one gets an approval request, and one the version may not even ask for is in
    ``refused``.
    """
    if not client.settings.is_remote:
        client.init()  # registering writes: like any first write, it creates a registry that is not there yet
    checked = check_against_registry(client, config)
    existing = find_registered(client, config)
    changes: list[Change] = []
    raced: str | None = None
    if existing is not None:
        version, changes = _bring_up_to_date(client, config, existing)
    else:
        ours = _create(client, config, checked.parent)
        version, raced = _first_of_a_race(client, config, ours)
        if version.version != ours.version:
            existing = version  # another run of this config registered it first: report that one
    moves = place(client, version, aliases=config.aliases, stage=checked.stage, new=existing is None)
    if any(m.outcome == "moved" for m in moves):
        version = client.get_version(version.name, version.version)
    return RegistrationResult(
        version=version,
        created=existing is None,
        digest=config.digest(),
        updated=[c.field for c in changes],
        changes=changes,
        moves=moves,
        # About the version made now: a version found again keeps the lineage it was registered with.
        notes=(list(checked.notes) if existing is None else []) + ([raced] if raced else []),
    )


def run_config(
    client: Client, path: str | os.PathLike[str], *, env: Mapping[str, str] | None = None
) -> RegistrationResult:
    """Validate the config at ``path`` (nothing is written if it is wrong), then register it once.

    The same model files, metrics, params and datasets return the version registered before
    (``created=False``), with the config's tags, description and card written onto it.
    """
    return register_config(client, load_config(path, env=env))
