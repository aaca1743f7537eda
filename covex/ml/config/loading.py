"""``load_config``: read a registration config, check it and every file it names; write nothing."""

from __future__ import annotations

import difflib
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from covex.domain.errors import InvalidInput
from covex.domain.names import (
    MAX_ENTRIES,
    MAX_KEY_LENGTH,
    MAX_TEXT_LENGTH,
    MAX_URI_LENGTH,
    validate_alias,
    validate_key,
    validate_model_name,
    validate_ref,
    validate_text,
    validate_value,
)
from covex.domain.uris import SCHEME, ModelRef, parse_model_uri
from covex.domain.yaml_reader import Limits, Loc, YamlProblem, read_yaml
from covex.ml.config.identity import identity_digest
from covex.ml.config.interpolation import interpolator
from covex.ml.config.messages import dotted, located, type_name
from covex.ml.config.readers import check_card, check_lineage, check_profile, describe, read_frame, read_metrics
from covex.ml.config.schema import SECTIONS, Config, DatasetSpec
from covex.ml.registering import COVEX_TAGS, SOURCE_DIGEST_TAG

INPUT_EXAMPLE_ROWS = 5
# Configs may reuse a block with YAML anchors (&train ... *train); the bounds still hold on the expansion.
CONFIG_YAML = Limits(aliases=True, name="config files")
# Far above what the limits on each value allow in all (1000 params of 5000 characters, ...); read no further.
MAX_CONFIG_BYTES = 16 * 1024 * 1024


def load_config(path: str | os.PathLike[str], *, env: Mapping[str, str] | None = None) -> Config:
    """Read and check a registration config; nothing is written.

    Relative paths resolve against the config's folder; ``${NAME}`` and ``${NAME:-default}``
    take values from ``env`` (default: the process environment). Every file the config names
    is opened: the metrics file and the data frames are parsed, datasets and the model are
    hashed. Any problem raises ``InvalidInput`` naming the file, the line and the key.
    """
    given = Path(path)
    label = str(path)
    try:
        with given.expanduser().open("rb") as f:
            # Bounded: --config /dev/zero, or a stray multi-gigabyte file, is refused without filling memory.
            data = f.read(MAX_CONFIG_BYTES + 1)
        if len(data) > MAX_CONFIG_BYTES:
            raise InvalidInput(f"config file {label} is larger than {MAX_CONFIG_BYTES} bytes; config files are smaller")
        text = data.decode("utf-8")
    except FileNotFoundError:
        raise InvalidInput(f"config file {label} does not exist") from None
    except IsADirectoryError:
        raise InvalidInput(f"config file {label} is a folder, not a YAML file") from None
    except UnicodeDecodeError as exc:
        raise InvalidInput(f"config file {label} is not UTF-8 text: {exc.reason}") from None
    except OSError as exc:
        raise InvalidInput(f"cannot read config file {label}: {exc.strerror}") from None
    try:
        document = read_yaml(text, limits=CONFIG_YAML, scalar=interpolator(os.environ if env is None else env))
    except YamlProblem as exc:
        raise located(InvalidInput, label, exc.line, exc.loc, exc.problem) from None
    if document.value is None:
        raise located(InvalidInput, label, 1, (), "the file is empty; it needs at least 'model' and 'model_source'")
    if not isinstance(document.value, dict):
        raise located(InvalidInput, label, 1, (), "the file must be a mapping of keys (model:, model_source: ...)")
    file = given.expanduser().resolve()
    try:
        config = Config.model_validate(document.value, context={"base": file.parent})
    except ValidationError as exc:
        loc, message = _pydantic_message(exc.errors(include_url=False)[0])
        raise located(InvalidInput, label, document.line(loc), loc, message) from None
    config._file, config._label, config._lines = file, label, dict(document.lines)
    _check(config)
    config._digest = identity_digest(config)
    return config


def _check(config: Config) -> None:
    """The checks beyond the schema: names, the metrics file, frames, datasets, the card."""
    try:
        validate_model_name(config.model, "model")
    except InvalidInput as exc:
        raise config.error(("model",), exc.message) from None
    for i, alias in enumerate(config.aliases):
        try:
            validate_alias(alias, (), f"aliases[{i}]")
        except InvalidInput as exc:
            raise config.error(("aliases", i), exc.message) from None
    if config.parent is not None:
        check_parent_uri(config)
    for field in ("params", "tags"):
        for key, value in getattr(config, field).items():
            try:
                validate_key(key, f"{field} key")
                validate_value(value, f"{field}.{key}")
            except InvalidInput as exc:
                raise config.error((field, key), exc.message) from None
    if SOURCE_DIGEST_TAG in config.tags:
        raise config.error(("tags", SOURCE_DIGEST_TAG), "is set by Covex; choose another tag name")
    # Checked here, not when the version is created: a run that fails must write nothing (not even the model).
    for field, limit in (("params", MAX_ENTRIES), ("tags", MAX_ENTRIES - len(COVEX_TAGS))):
        if len(getattr(config, field)) > limit:
            raise config.error((field,), f"holds {len(getattr(config, field))} entries; the limit is {limit}")
    for loc, value, limit in (
        (("description",), config.description, MAX_TEXT_LENGTH),
        (("run", "id"), config.run.id, MAX_KEY_LENGTH),
        (("run", "link"), config.run.link, MAX_URI_LENGTH),
    ):
        try:
            validate_text(value, ".".join(loc), limit)
        except InvalidInput as exc:
            raise config.error(loc, exc.message) from None

    metrics: dict[str, float] = {}
    if config.metrics_file is not None:
        metrics = read_metrics(config, config.metrics_file)
    for key, value in config.metrics.items():
        try:
            validate_key(key, "metrics key")
        except InvalidInput as exc:
            raise config.error(("metrics", key), exc.message) from None
        if key in metrics:
            raise config.error(("metrics", key), "is also in 'metrics_file'; give each metric once")
        metrics[key] = float(value)
    if len(metrics) > MAX_ENTRIES:
        raise config.error(("metrics",), f"holds {len(metrics)} entries; the limit is {MAX_ENTRIES}")
    config._all_metrics = metrics

    if config.input_example is not None:
        if config.model_source.kind not in ("pickle", "joblib"):
            raise config.error(
                ("input_example",),
                "applies to pickle and joblib sources only (an MLflow model keeps its own example and signature)",
            )
        config._example_frame = read_frame(config, ("input_example",), config.input_example).head(INPUT_EXAMPLE_ROWS)
    if config.reference_data is not None:
        config._reference_frame = read_frame(config, ("reference_data",), config.reference_data)
        check_profile(config, config._reference_frame)
    config._datasets = [describe(config, i, spec) for i, spec in enumerate(config.datasets)]
    check_lineage(config, config._datasets)
    config._card = check_card(config)


def parent_loc(config: Config) -> Loc:
    """Where the parent's URI is written: ``parent.uri``, or ``parent`` itself (``parent: models:/...``)."""
    return ("parent", "uri") if ("parent", "uri") in config._lines else ("parent",)


def check_parent_uri(config: Config, stages: Sequence[str] | None = None) -> ModelRef:
    """The parent's URI, parsed and each part checked as a lookup would check it; else the error names the line.

    Without ``stages`` (the registry's, not known while loading) a stage in the URI is left to the
    registry check; its model name is checked all the same.
    """
    assert config.parent is not None
    uri = config.parent.uri
    if not uri.startswith(SCHEME):
        raise config.error(
            parent_loc(config), f"must be a models:/ URI such as models:/{config.model}@champion, got {uri!r}"
        )
    try:
        ref = parse_model_uri(uri, stages)
        # The checks every lookup makes; a stage waits for the registry's list of stages.
        validate_ref(ref if stages is not None or ref.kind != "stage" else ModelRef(ref.name, "latest"), stages or ())
    except InvalidInput as exc:
        said = f"'uri' {uri!r}"  # how the URI parser starts its messages; the config names the key itself
        if exc.message.startswith(said):
            raise config.error(parent_loc(config), f"{uri!r}{exc.message.removeprefix(said)}") from None
        raise config.error(parent_loc(config), f"{uri!r} is not a version's URI: {exc.message}") from None
    return ref


# -- pydantic's errors, in the config's words -------------------------------------------------

_EXAMPLES: dict[Loc, str] = {
    ("model_source",): " such as {mlflow_model: ./out/model}",
    ("run",): " such as {id: ..., link: ...}",
    ("parent",): " such as {uri: models:/name@champion, required: false}, or a models:/ URI",
}


def _section_for(loc: Loc) -> type[BaseModel] | None:
    if not loc:
        return Config
    if len(loc) == 1 and isinstance(loc[0], str):
        return SECTIONS.get(loc[0])
    if len(loc) == 2 and loc[0] == "datasets" and isinstance(loc[1], int):
        return DatasetSpec
    return None


def _pydantic_message(err: Mapping[str, Any]) -> tuple[Loc, str]:
    loc: Loc = tuple(p for p in err["loc"] if p != "[key]")
    kind = err["type"]
    value = err.get("input")
    if kind == "extra_forbidden":
        section = _section_for(loc[:-1])
        known = list(section.model_fields) if section else []
        hint = difflib.get_close_matches(str(loc[-1]), known, n=1)
        message = "unknown key"
        if hint:
            message += f" (did you mean '{hint[0]}'?)"
        if known:
            message += f"; known keys here: {', '.join(known)}"
        return loc, message
    if kind == "missing":
        return loc, f"'{dotted(loc)}' is required"
    if kind == "string_type":
        return loc, f"must be text, got {type_name(value)}"
    if kind == "string_unicode":
        return loc, "is not valid Unicode text (it holds a lone surrogate)"
    if kind == "path_type":
        return loc, f"must be a path (text), got {type_name(value)}"
    if kind in ("dict_type", "model_type", "model_attributes_type"):
        return loc, f"must be a mapping (key: value){_EXAMPLES.get(loc, '')}, got {type_name(value)}"
    if kind == "list_type":
        return loc, f"must be a list, got {type_name(value)}"
    if kind in ("int_type", "int_parsing", "int_from_float"):
        return loc, f"must be a whole number, got {type_name(value)}"
    if kind == "bool_type":
        return loc, f"must be true or false, got {type_name(value)}"
    if kind == "string_too_short":
        return loc, "must not be empty"
    if kind == "value_error":
        error = err.get("ctx", {}).get("error")
        return loc, str(error) if error is not None else str(err["msg"])
    if kind == "literal_error":
        return loc, f"{err['msg'][0].lower()}{err['msg'][1:]}, got {type_name(value)}"
    message = str(err["msg"])
    return loc, message[:1].lower() + message[1:]
