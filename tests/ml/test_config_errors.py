"""`covex register --config`: every problem a registration would meet is found with the file, named by line and key.

Checked while loading (so `--dry-run` finds it) and before anything is written: the parent's URI,
the card and the documents the version will hold, by the registry's own rules.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

import covex
from covex.domain.cards import MAX_OWNERS
from covex.domain.documents import MAX_DOCUMENT_LENGTH
from covex.domain.names import MAX_NAME_LENGTH, MAX_TEXT_LENGTH
from covex.ml.config import load_config, run_config
from covex.ml.config.loading import MAX_CONFIG_BYTES

pytestmark = pytest.mark.filterwarnings(
    "ignore:Hint. Inferred schema contains integer column:UserWarning",
    "ignore:.*Any type hint is inferred as AnyType:UserWarning",
)

HEAD = "model: store-sales\nmodel_source:\n  mlflow_model: ./out/model\n"


def _refused(path: Path, line: int, key: str, env: dict[str, str] | None = None) -> str:
    """Load ``path``: it must be refused at ``line`` naming ``key``; returns the message."""
    with pytest.raises(covex.InvalidInput) as caught:
        load_config(path, env=env or {})
    message = caught.value.message
    assert message.startswith(f"{path} line {line}: '{key}'"), message
    return message


def _nothing_written(client: covex.Client) -> None:
    assert ([], []) == (client.search_models().items, client.search_versions().items)


# -- the parent's URI ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("parent", "line", "key", "message"),
    [
        ('parent: "models:/bad name/3"\n', 4, "parent", "'bad name' is not a valid model name"),
        ("parent: models:/a/b/c/1\n", 4, "parent", "may contain at most one '/'"),
        ("parent: models:/store-sales@v3\n", 4, "parent", "'v3' looks like a version number"),
        ("parent: models:/store-sales@latest\n", 4, "parent", "'latest' is reserved"),
        ('parent: "models:/store-sales@a b"\n', 4, "parent", "'a b' is not valid"),
        ("parent: models:/store-sales/0\n", 4, "parent", "must be a number from 1 to"),
        ("parent: models:/store-sales\n", 4, "parent", "'models:/store-sales' must name a version"),
        ("parent:\n  required: false\n  uri: models:/x/y/z/1\n", 6, "parent.uri", "at most one '/'"),
        ("parent: store-sales\n", 4, "parent", "must be a models:/ URI such as models:/store-sales@champion"),
    ],
)
def test_a_parent_uri_that_names_no_version_is_refused_while_loading(
    write: Callable[[str], Path], parent: str, line: int, key: str, message: str
) -> None:
    assert message in _refused(write(HEAD + parent), line, key)


def test_a_parent_in_a_stage_the_registry_does_not_have_is_refused_before_writing(
    embedded: covex.Client, write: Callable[[str], Path]
) -> None:
    path = write(HEAD + "parent:\n  uri: models:/store-sales/Staging\n  required: false\n")
    load_config(path, env={})  # which stages exist is the registry's to say
    with pytest.raises(covex.InvalidInput) as caught:
        run_config(embedded, path, env={})
    assert caught.value.message.startswith(
        f"{path} line 5: 'parent.uri': 'models:/store-sales/Staging': 'Staging' is not a version"
    ), caught.value.message
    _nothing_written(embedded)


def test_cli_dry_run_refuses_a_bad_parent_with_file_and_line(cli: Callable[..., Any], write) -> None:
    path = write(HEAD + 'parent: "models:/bad name@champion"\n')
    for dry in (["--dry-run"], []):
        r = cli("register", "-c", str(path), *dry)
        assert 2 == r.exit_code, r.stdout
        assert f"{path} line 4: 'parent': 'models:/bad name@champion' is not a version's URI" in r.stderr
    assert 3 == cli("models", "show", "store-sales").exit_code


# -- the card, by the registry's own limits -------------------------------------------------------


def _owners(n: int) -> str:
    return "card:\n  owners:\n" + "".join(f"    - owner{i}@example.com\n" for i in range(n))


@pytest.mark.parametrize(
    ("card", "line", "key", "message"),
    [
        (_owners(MAX_OWNERS + 1), 5, "card.owners", f"lists {MAX_OWNERS + 1} owners; the limit is {MAX_OWNERS}"),
        (
            f"card:\n  overview: {'x' * (MAX_TEXT_LENGTH + 1)}\n",
            5,
            "card.overview",
            f"is {MAX_TEXT_LENGTH + 1} characters long; the limit is {MAX_TEXT_LENGTH}",
        ),
        (
            f"card:\n  owners:\n    - a\n    - b\n    - {'o' * (MAX_NAME_LENGTH + 1)}\n",
            8,
            "card.owners[2]",
            f"is {MAX_NAME_LENGTH + 1} characters long; the limit is {MAX_NAME_LENGTH}",
        ),
        ('card:\n  intended_use: ok\n  limitations: "a\\0b"\n', 6, "card.limitations", "must not contain NUL"),
        ('card:\n  overview: "\\ud800"\n', 5, "card.overview", "lone surrogate"),
        ("card:\n  owners: [a, 5]\n", 5, "card.owners[1]", "must be text, got 5"),
        (
            # Within every field's limit, yet more than the registry stores as one document (JSON escapes each).
            "card:\n"
            + "".join(f"  {f}: {'中' * MAX_TEXT_LENGTH}\n" for f in ("overview", "intended_use", "training_data"))
            + "".join(f"  {f}: {'中' * MAX_TEXT_LENGTH}\n" for f in ("evaluation_data", "metrics", "limitations"))
            + "".join(f"  {f}: {'中' * MAX_TEXT_LENGTH}\n" for f in ("out_of_scope_use", "ethical_considerations"))
            + f"  owners: [{', '.join(['中' * MAX_NAME_LENGTH] * MAX_OWNERS)}]\n",
            4,
            "card",
            f"characters as JSON; the limit is {MAX_DOCUMENT_LENGTH}",
        ),
    ],
    ids=["owners", "overview", "one owner", "NUL", "surrogate", "owner not text", "document"],
)
def test_the_card_is_checked_with_the_registry_limits_while_loading(
    embedded: covex.Client, write: Callable[[str], Path], card: str, line: int, key: str, message: str
) -> None:
    path = write(HEAD + card)
    assert message in _refused(path, line, key)
    with pytest.raises(covex.InvalidInput):
        run_config(embedded, path, env={})
    _nothing_written(embedded)


def test_a_card_at_the_limits_is_registered(embedded: covex.Client, write: Callable[[str], Path]) -> None:
    path = write(HEAD + _owners(MAX_OWNERS) + f"  overview: {'x' * MAX_TEXT_LENGTH}\n")
    result = run_config(embedded, path, env={})
    card = embedded.get_card("store-sales", result.version.version)
    assert (MAX_OWNERS, MAX_TEXT_LENGTH) == (len(card["owners"]), len(card["overview"]))


def test_cli_dry_run_refuses_too_many_owners_with_file_and_line(cli: Callable[..., Any], write) -> None:
    path = write(HEAD + _owners(MAX_OWNERS + 1))
    r = cli("register", "-c", str(path), "--dry-run")
    assert 2 == r.exit_code, r.stdout
    assert f"{path} line 5: 'card.owners' lists {MAX_OWNERS + 1} owners; the limit is {MAX_OWNERS}" in r.stderr
    assert 3 == cli("models", "show", "store-sales").exit_code


# -- other values the registry would refuse, or the reader could not take ----------------------------


@pytest.mark.parametrize(
    ("body", "line", "key", "message"),
    [
        (HEAD + "metrics:\n  x: 0x" + "f" * 400 + "\n", 5, "metrics.x", "must be a finite number, got one too large"),
        (HEAD + "tags:\n  x: " + "9" * 5000 + "\n", 5, "tags.x", "more than 4300 digits (quote it to make it text)"),
        (HEAD + "metrics_file: 5\n", 4, "metrics_file", "must be a path (text), got 5"),
        (HEAD + "reference_data: [a]\n", 4, "reference_data", "must be a path (text), got a list"),
        ("model: m\nmodel_source: {pickle: 5}\n", 2, "model_source.pickle", "must be a path (text)"),
        (HEAD + 'datasets:\n  - {name: t, uri: "x\\ud800"}\n', 5, "datasets[0].uri", "lone surrogate"),
        (HEAD + 'datasets:\n  - {name: t, uri: x}\n  - {name: "t\\0", uri: y}\n', 6, "datasets[1].name", "NUL"),
    ],
    ids=["huge integer metric", "huge integer tag", "path a number", "path a list", "model path", "surrogate", "NUL"],
)
def test_values_no_reader_or_registry_takes_are_named_by_line(
    embedded: covex.Client, write: Callable[[str], Path], body: str, line: int, key: str, message: str
) -> None:
    path = write(body)
    assert message in _refused(path, line, key)
    with pytest.raises(covex.InvalidInput):
        run_config(embedded, path, env={})
    _nothing_written(embedded)


def test_datasets_too_large_for_the_lineage_are_refused_before_writing(
    embedded: covex.Client, write: Callable[[str], Path]
) -> None:
    # Each URI is fine alone; the lineage document holding them all is more than the registry stores.
    uris = "".join(f"  - {{name: d{i}, uri: 's3://bucket/{'u' * 200_000}'}}\n" for i in range(6))
    path = write(HEAD + "datasets:\n" + uris)
    message = _refused(path, 4, "datasets")
    assert "cannot be stored in the version's lineage: 'lineage' is" in message
    assert f"the limit is {MAX_DOCUMENT_LENGTH}" in message
    with pytest.raises(covex.InvalidInput):
        run_config(embedded, path, env={})
    _nothing_written(embedded)


def test_reference_data_whose_profile_is_too_large_is_refused_before_writing(
    embedded: covex.Client, write: Callable[[str], Path]
) -> None:
    path = write(HEAD + "reference_data: ./wide.csv\n")
    columns = [f"c{i}" for i in range(1500)]  # each column's profile: quantiles, histogram...
    pd.DataFrame(np.random.default_rng(0).random((20, len(columns))), columns=columns).to_csv(
        path.parent / "wide.csv", index=False
    )
    message = _refused(path, 4, "reference_data")
    assert "the profile of wide.csv cannot be stored: 'profile' is" in message
    with pytest.raises(covex.InvalidInput):
        run_config(embedded, path, env={})
    _nothing_written(embedded)


def test_a_config_file_too_large_is_refused_without_reading_it_all(tmp_path: Path) -> None:
    path = tmp_path / "registry.yaml"
    with path.open("wb") as f:
        f.truncate(MAX_CONFIG_BYTES + 1)  # sparse: nothing to write, still too large
    with pytest.raises(covex.InvalidInput, match=f"config file .*registry.yaml is larger than {MAX_CONFIG_BYTES}"):
        load_config(path)


def test_reference_data_whose_profile_the_registry_refuses_is_named_before_writing(
    embedded: covex.Client, write: Callable[[str], Path]
) -> None:
    path = write(HEAD + "reference_data: ./nul.csv\n")
    (path.parent / "nul.csv").write_bytes(b"a,b\n1,x\x00y\n2,z\n")  # a category value no database stores
    message = _refused(path, 4, "reference_data")
    assert "the profile of nul.csv cannot be stored: 'columns.b.top[0].value' must not contain NUL" in message
    with pytest.raises(covex.InvalidInput):
        run_config(embedded, path, env={})
    _nothing_written(embedded)
