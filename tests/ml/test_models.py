"""Models as objects: log_model, load_model, lineage, profile and card, embedded and over HTTP."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

import covex
from covex.ml import log_model
from tests.conftest import Registry

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning", "ignore::UserWarning", "ignore::FutureWarning")


@pytest.fixture(params=["embedded", "http"])
def ml_client(request: pytest.FixtureRequest, registries, tmp_path: Path) -> Iterator[covex.Client]:
    reg: Registry = registries(request.param, "sqlite")
    reg.reset()
    with covex.Client(reg.url, settings=reg.settings, cache_dir=str(tmp_path / "cache")) as c:
        yield c


@pytest.fixture(scope="module")
def data() -> tuple[pd.DataFrame, pd.Series]:
    rng = np.random.default_rng(7)
    x = pd.DataFrame({"tenure": rng.random(300) * 60, "spend": rng.random(300) * 100, "calls": rng.integers(0, 9, 300)})
    y = ((x.tenure < 20) & (x.calls > 3)).astype(int)
    return x, y


def _models(x: pd.DataFrame, y: pd.Series) -> dict[str, Any]:
    import lightgbm
    import xgboost
    from sklearn.ensemble import GradientBoostingClassifier, RandomForestClassifier

    return {
        "random_forest": RandomForestClassifier(n_estimators=8, random_state=0).fit(x, y),
        "gradient_boosting": GradientBoostingClassifier(n_estimators=8, random_state=0).fit(x, y),
        "xgboost": xgboost.XGBClassifier(n_estimators=8, max_depth=3).fit(x, y),
        "lightgbm": lightgbm.LGBMClassifier(n_estimators=8, verbose=-1).fit(x, y),
    }


@pytest.mark.slow
def test_every_flavor_round_trips_with_identical_predictions(ml_client: covex.Client, data) -> None:
    x, y = data
    for name, model in _models(x, y).items():
        v = log_model(ml_client, model, name, input_example=x.head(), metrics={"acc": 0.9})
        assert ("READY", {"acc": 0.9}) == (v.status, v.metrics)
        loaded = covex.load_model(f"models:/{name}/1", client=ml_client)
        np.testing.assert_array_equal(np.asarray(model.predict(x)), np.asarray(loaded.predict(x)).ravel())
        signature = ml_client.get_document(f"models:/{name}/1", "signature")
        assert "tenure" in signature["inputs"]


def test_python_function_model(ml_client: covex.Client, data) -> None:
    x, _ = data

    def score(frame: pd.DataFrame) -> pd.Series:
        return frame["tenure"] * 2 + frame["calls"]

    v = log_model(ml_client, score, "rule", input_example=x.head())
    assert "pyfunc" == v.tags["covex.flavor"]
    loaded = covex.load_model("models:/rule/latest", client=ml_client)
    np.testing.assert_allclose(score(x).to_numpy(), np.asarray(loaded.predict(x)).ravel())


def test_tree_models_register_with_no_extra_arguments(ml_client: covex.Client, data) -> None:
    from sklearn.ensemble import RandomForestRegressor

    x, y = data
    v = log_model(ml_client, RandomForestRegressor(n_estimators=4, random_state=0).fit(x, y), "rf")
    assert ("READY", "sklearn") == (v.status, v.tags["covex.flavor"])
    files = [f.path for f in ml_client.list_files(v.uri)]
    assert "model.skops" in files and "MLmodel" in files and "requirements.txt" in files


def test_second_load_downloads_nothing(ml_client: covex.Client, data, monkeypatch: pytest.MonkeyPatch) -> None:
    from sklearn.linear_model import LogisticRegression

    x, y = data
    log_model(ml_client, LogisticRegression().fit(x, y), "lr", input_example=x.head())
    covex.load_model("models:/lr/1", client=ml_client)
    fetched: list[str] = []
    original = ml_client._backend.read_blob
    monkeypatch.setattr(ml_client._backend, "read_blob", lambda d: fetched.append(d) or original(d))
    model = covex.load_model("models:/lr/1", client=ml_client)
    assert [] == fetched
    assert len(x) == len(model.predict(x))


def test_tampered_cache_or_store_refuses_to_load(ml_client: covex.Client, registry_for, data, tmp_path) -> None:
    from sklearn.linear_model import LogisticRegression

    x, y = data
    v = log_model(ml_client, LogisticRegression().fit(x, y), "lr", input_example=x.head())
    cache = Path(ml_client.settings.cache_dir) / "models" / str(v.manifest_digest)
    covex.load_model(v.uri, client=ml_client)
    # A tampered cached file is detected and fetched again from the registry.
    model_file = next(p for p in cache.iterdir() if p.name.startswith("model."))
    model_file.write_bytes(b"evil")
    covex.load_model(v.uri, client=ml_client)
    assert b"evil" != model_file.read_bytes()
    # A tampered file in the registry's own store refuses to load.
    service = registry_for(ml_client).service
    digest = next(f.digest for f in ml_client.list_files(v.uri) if f.path == model_file.name)
    Path(service.blobs.blob_path(digest)).write_bytes(b"evil")
    model_file.write_bytes(b"evil")
    with pytest.raises(covex.ArtifactCorrupted, match=model_file.name):
        covex.load_model(v.uri, client=ml_client)


@pytest.fixture
def registry_for(registries):
    def find(client: covex.Client) -> Registry:
        backend = "http" if client.settings.is_remote else "embedded"
        return registries(backend, "sqlite")

    return find


def test_unsupported_objects_and_bad_examples_leave_nothing(ml_client: covex.Client, data) -> None:
    from sklearn.linear_model import LogisticRegression

    x, y = data
    with pytest.raises(covex.InvalidInput, match=r"'model' of type builtins\.dict is not supported"):
        log_model(ml_client, {"not": "a model"}, "m")
    with pytest.raises(covex.InvalidInput, match="'input_example' does not fit the model"):
        log_model(ml_client, LogisticRegression().fit(x, y), "m", input_example=pd.DataFrame({"other": [1.0]}))
    with pytest.raises(covex.InvalidInput, match="'card' has unknown fields: colour"):
        log_model(ml_client, LogisticRegression().fit(x, y), "m", card={"colour": "red"})
    assert [] == ml_client.search_versions("name = 'm'").items


def test_lineage_profile_and_card(ml_client: covex.Client, data, tmp_path: Path) -> None:
    from sklearn.linear_model import LogisticRegression

    x, y = data
    repo = tmp_path / "code"
    repo.mkdir()
    git = ["git", "-C", str(repo), "-c", "user.email=t@example.com", "-c", "user.name=t"]
    subprocess.run([*git, "init", "-q", "-b", "main"], check=True)
    (repo / "train.py").write_text("print('train')\n")
    subprocess.run([*git, "add", "."], check=True)
    subprocess.run([*git, "commit", "-qm", "train"], check=True)
    (repo / "train.py").write_text("print('changed')\n")
    commit = subprocess.run([*git, "rev-parse", "HEAD"], check=True, capture_output=True, text=True).stdout.strip()

    first = log_model(ml_client, LogisticRegression().fit(x, y), "churn", input_example=x.head())
    holdout = x.assign(segment=np.where(x.tenure > 30, "loyal", "new"))
    v = log_model(
        ml_client,
        LogisticRegression(C=0.5).fit(x, y),
        "churn",
        input_example=x.head(),
        datasets=[
            {"name": "train", "data": x, "uri": "s3://data/train.parquet"},
            {"name": "holdout", "data": holdout, "role": "evaluation"},
        ],
        reference_data=holdout,
        parent=first.uri,
        run_id="run-42",
        run_link="http://ci/run-42",
        code_path=repo,
        card={"overview": "Predicts churn", "intended_use": "Retention offers", "owners": ["crm-team"]},
        description="Retrained with C=0.5",
    )
    lineage = ml_client.get_lineage(v.uri)
    assert {"commit": commit, "branch": "main", "dirty": True} == {
        k: lineage["git"][k] for k in ("commit", "branch", "dirty")
    }
    assert ("models:/churn/1", "run-42", "http://ci/run-42") == (
        lineage["parent"],
        lineage["run_id"],
        lineage["run_link"],
    )
    train, hold = lineage["datasets"]
    assert ("train", "training", 300, "s3://data/train.parquet") == (
        train["name"],
        train["role"],
        train["rows"],
        train["uri"],
    )
    assert ["tenure", "spend", "calls", "segment"] == [c["name"] for c in hold["columns"]]
    assert 64 == len(train["digest"]) and train["digest"] != hold["digest"]
    assert lineage["environment"]["python"] and any("scikit-learn" in r for r in lineage["environment"]["requirements"])

    profile = ml_client.get_document(v.uri, "profile")
    assert 300 == profile["rows"]
    tenure, segment = profile["columns"]["tenure"], profile["columns"]["segment"]
    assert ("numeric", 300, 0.0) == (tenure["kind"], tenure["count"], tenure["missing_share"])
    assert 20 == len(tenure["histogram"]["counts"]) and 300 == sum(tenure["histogram"]["counts"])
    assert tenure["quantiles"]["0.0"] <= tenure["quantiles"]["0.5"] <= tenure["quantiles"]["1.0"]
    assert "categorical" == segment["kind"] and {"loyal", "new"} == {t["value"] for t in segment["top"]}

    ml_client.set_alias("churn", "champion", v.version)
    ml_client.transition_stage("churn", v.version, "Production")
    assert "Retention offers" == ml_client.get_card(v.uri)["intended_use"]
    ml_client.set_card(v.uri, {"overview": "Predicts churn", "limitations": "Not for B2B"})  # merged in
    card = {"overview": "Predicts churn", "intended_use": "Retention offers", "owners": ["crm-team"]}
    assert {**card, "limitations": "Not for B2B"} == ml_client.get_card(v.uri)
    md = ml_client.render_card("models:/churn@champion")
    for text in (
        "# churn — version 2",
        "## Limitations",
        "Not for B2B",
        "## Signature",
        "tenure",
        "commit `" + commit[:12],
        "Derived from: `models:/churn/1`",
        "alias @champion",
        "| stage | None | Production |",
    ):
        assert text in md
    assert {} == ml_client.get_card("churn", 1)


@pytest.mark.parametrize("flavor", ["lightgbm", "xgboost", "sklearn"])
def test_recorded_requirements_cover_what_loading_imports(flavor: str, data, tmp_path: Path) -> None:
    from covex.ml.packaging import save_model

    x, y = data
    model = {"lightgbm": _models(x, y)["lightgbm"], "xgboost": _models(x, y)["xgboost"]}.get(flavor)
    if model is None:
        from sklearn.linear_model import LinearRegression

        model = LinearRegression().fit(x, y)
    save_model(model, tmp_path / "m")
    names = {line.split("==")[0] for line in (tmp_path / "m" / "requirements.txt").read_text().split()}
    assert {"scikit-learn", "skops"} <= names
    assert flavor == "sklearn" or flavor in names
