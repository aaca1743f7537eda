"""The files a config names, read and checked: metrics files, data frames, datasets; and the card."""

from __future__ import annotations

import csv
import difflib
import io
import json
import math
import re
from pathlib import Path
from typing import Any

from covex.domain.cards import CARD_FIELDS, validate_card
from covex.domain.documents import validate_documents
from covex.domain.errors import InvalidInput
from covex.domain.names import validate_key
from covex.domain.yaml_reader import Loc
from covex.ml.config.messages import type_name
from covex.ml.config.schema import Config, DatasetSpec

FRAME_SUFFIXES = (".csv", ".parquet", ".pq")


def shown_path(config: Config, path: Path) -> str:
    """The path as written in the config, for messages."""
    try:
        return str(path.relative_to(config.file.parent))
    except ValueError:
        return str(path)


def read_metrics(config: Config, path: Path) -> dict[str, float]:
    loc: Loc = ("metrics_file",)
    shown = shown_path(config, path)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise config.error(loc, f"cannot read {shown}: {exc}") from None
    suffix = path.suffix.lower()
    if suffix == ".json":
        metrics = _metrics_from_json(config, shown, text)
    elif suffix == ".csv":
        metrics = _metrics_from_csv(config, shown, text)
    else:
        raise config.error(loc, f"{shown} must be a .json or .csv file")
    if not metrics:
        raise config.error(loc, f"{shown} holds no metrics")
    for key in metrics:
        try:
            validate_key(key, "metric name")
        except InvalidInput as exc:
            raise config.error(loc, f"{shown}: {exc.message}") from None
    return metrics


def _number(config: Config, shown: str, name: str, value: Any) -> float:
    loc: Loc = ("metrics_file",)
    if isinstance(value, bool) or value is None or isinstance(value, dict | list):
        raise config.error(loc, f"{shown}: metric {name!r} is not a number (got {json.dumps(value)})")
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise config.error(loc, f"{shown}: metric {name!r} is not a number (got {value!r})") from None
    if not math.isfinite(number):
        raise config.error(loc, f"{shown}: metric {name!r} is not a finite number (got {value!r})")
    return number


def _metrics_from_json(config: Config, shown: str, text: str) -> dict[str, float]:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise config.error(
            ("metrics_file",), f"{shown} is not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}"
        ) from None
    if not isinstance(data, dict):
        raise config.error(("metrics_file",), f"{shown} must hold a JSON object of metric names to numbers")
    out: dict[str, float] = {}

    def walk(prefix: str, obj: dict[str, Any]) -> None:
        for key, value in obj.items():
            name = f"{prefix}{key}"
            if isinstance(value, dict):
                walk(f"{name}.", value)
            else:
                out[name] = _number(config, shown, name, value)

    walk("", data)
    return out


def _metrics_from_csv(config: Config, shown: str, text: str) -> dict[str, float]:
    rows = [row for row in csv.reader(io.StringIO(text)) if any(cell.strip() for cell in row)]
    rows = [[cell.strip() for cell in row] for row in rows]
    loc: Loc = ("metrics_file",)
    if not rows:
        raise config.error(loc, f"{shown} is empty")
    header = [cell.lower() for cell in rows[0]]
    if header in (["name", "value"], ["metric", "value"], ["key", "value"]):
        body = rows[1:]
    elif len(rows) == 2 and len(rows[0]) == len(rows[1]) and not _numeric(rows[0][0]):
        if len(rows[0]) == 2 and _numeric(rows[1][1]) and not _numeric(rows[1][0]):
            body = rows  # two name,value rows without a header
        else:
            return {name: _number(config, shown, name, value) for name, value in zip(rows[0], rows[1], strict=True)}
    else:
        body = rows
    out: dict[str, float] = {}
    for i, row in enumerate(body):
        if len(row) != 2:
            raise config.error(
                loc,
                f"{shown} must have name,value rows (or one header row of names and one row of values); "
                f"row {i + 1 + (len(rows) - len(body))} has {len(row)} cells",
            )
        if row[0] in out:
            raise config.error(loc, f"{shown}: metric {row[0]!r} appears twice")
        out[row[0]] = _number(config, shown, row[0], row[1])
    return out


def _numeric(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def read_frame(config: Config, loc: Loc, path: Path) -> Any:
    import pandas as pd

    shown = shown_path(config, path)
    suffix = path.suffix.lower()
    if suffix not in FRAME_SUFFIXES:
        raise config.error(loc, f"{shown} must be a CSV or Parquet file (.csv, .parquet)")
    try:
        frame = pd.read_csv(path) if suffix == ".csv" else pd.read_parquet(path)
    except Exception as exc:  # noqa: BLE001 - pandas and pyarrow raise many kinds
        raise config.error(loc, f"cannot read {shown}: {type(exc).__name__}: {exc}") from None
    if frame.empty:
        raise config.error(loc, f"{shown} has no rows")
    return frame


def describe(config: Config, index: int, spec: DatasetSpec) -> dict[str, Any]:
    from covex.ml.lineage import describe_dataset

    raw: dict[str, Any] = {"name": spec.name, "role": spec.role}
    for key in ("uri", "digest", "rows"):
        if getattr(spec, key) is not None:
            raw[key] = getattr(spec, key)
    if spec.path is not None:
        raw["path"] = str(spec.path)
    try:
        return describe_dataset(raw, index)
    except InvalidInput as exc:
        raise config.error(("datasets", index), exc.message) from None
    except Exception as exc:  # noqa: BLE001 - pandas and pyarrow raise many kinds
        shown = shown_path(config, spec.path) if spec.path else spec.name
        raise config.error(("datasets", index, "path"), f"cannot read {shown}: {type(exc).__name__}: {exc}") from None


def check_card(config: Config) -> dict[str, Any]:
    """The card as the registry would store it, checked by the registry's own rules, each problem at its line."""
    if config.card is None:
        return {}
    for key, value in config.card.items():
        loc: Loc = ("card", key)
        if key not in CARD_FIELDS:
            hint = difflib.get_close_matches(key, list(CARD_FIELDS), n=1)
            did = f" (did you mean '{hint[0]}'?)" if hint else ""
            raise config.error(loc, f"unknown card field{did}; known fields: {', '.join(CARD_FIELDS)}")
        if key == "owners":
            owners = [value] if isinstance(value, str) else value
            if not isinstance(owners, list):
                raise config.error(loc, f"must be a list of names, got {type_name(value)}")
            for i, owner in enumerate(owners):
                if not isinstance(owner, str):
                    raise config.error((*loc, i), f"must be text, got {type_name(owner)}")
        elif not isinstance(value, str):
            raise config.error(loc, f"must be text, got {type_name(value)}")
        try:
            validate_card({key: value})
        except InvalidInput as exc:
            raise config.error(_card_problem_at(config, key, value), exc.message) from None
    card = validate_card(dict(config.card))
    try:
        validate_documents({"card": card})
    except InvalidInput as exc:
        raise config.error(("card",), _as_written(exc.message, "card")) from None
    return card


def _card_problem_at(config: Config, key: str, value: Any) -> Loc:
    """The card field the registry refused; for ``owners``, the first owner it refuses on its own, if any."""
    if key == "owners" and isinstance(value, list):
        for i, owner in enumerate(value):
            try:
                validate_card({"owners": [owner]})
            except InvalidInput:
                return ("card", "owners", i)
    return ("card", key)


def check_lineage(config: Config, datasets: list[dict[str, Any]]) -> None:
    """The datasets as the version's lineage will hold them, checked by the registry's rules for that document."""
    try:
        validate_documents({"lineage": {"datasets": datasets}})
    except InvalidInput as exc:
        message = _as_written(exc.message, "lineage")
        item = re.match(r"'datasets\[(\d+)\](?:\.(\w+))?'", message)
        if item is None:
            raise config.error(("datasets",), f"cannot be stored in the version's lineage: {message}") from None
        loc: Loc = ("datasets", int(item.group(1)), *([item.group(2)] if item.group(2) else []))
        raise config.error(loc, message) from None


def check_profile(config: Config, frame: Any) -> None:
    """The reference data's profile (drift monitoring's baseline), checked as the registry will check it."""
    from covex.ml.profile import profile_frame

    try:
        validate_documents({"profile": profile_frame(frame)})
    except InvalidInput as exc:
        shown = shown_path(config, config.reference_data) if config.reference_data else "the reference data"
        message = _as_written(exc.message, "profile")
        raise config.error(("reference_data",), f"the profile of {shown} cannot be stored: {message}") from None


def _as_written(message: str, kind: str) -> str:
    """A document's message in the config's words: ``'documents.lineage.datasets[0]'`` as ``'datasets[0]'``."""
    prefix = f"'documents.{kind}"
    if not message.startswith(prefix):
        return message
    rest = message[len(prefix) :]
    return "'" + rest[1:] if rest.startswith(".") else f"'{kind}{rest}"
