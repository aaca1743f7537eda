"""`covex register --config`: the two example pipelines end to end, idempotency, interpolation, bad input."""

from __future__ import annotations

import hashlib
import json
import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

import covex
from covex.cli import app
from covex.ml.config import SOURCE_DIGEST_TAG, load_config, run_config

pytestmark = pytest.mark.filterwarnings(
    # MLflow's hint when it infers a signature with integer columns (the store-sales example has some).
    "ignore:Hint. Inferred schema contains integer column:UserWarning",
    # MLflow warns about its own type hints while importing mlflow.pyfunc.
    "ignore:.*Any type hint is inferred as AnyType:UserWarning",
)


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# -- the examples, on every backend ---------------------------------------------------------------


def test_store_sales_registers_everything_the_config_names(client: covex.Client, trained: dict[str, Path]) -> None:
    root = trained["store_sales"]
    result = run_config(client, root / "registry.yaml", env={"RUN_DATE": "2026-11-23"})
    v = result.version
    assert (True, "store-sales", 1, "READY", "Dev", ["candidate"]) == (
        result.created,
        v.name,
        v.version,
        v.status,
        v.stage,
        v.aliases,
    )
    assert json.loads((root / "out" / "metrics.json").read_text()) == v.metrics
    assert {"alpha": "1.0", "holdout_stores": "12"}.items() <= v.params.items()
    assert {"team": "retail-analytics", "run_date": "2026-11-23", SOURCE_DIGEST_TAG: result.digest}.items() <= (
        v.tags.items()
    )
    assert v.description.startswith("Weekly sales per store") and v.description.endswith("never saw.")
    assert (root / "out" / "model").as_uri() == v.source
    assert "model.skops" in {f.path for f in client.list_files(v.uri)}

    lineage = client.get_lineage(v.uri)
    train, holdout = lineage["datasets"]
    assert ("store-weeks-train", "training", 2496, _sha256(root / "data" / "train.csv")) == (
        train["name"],
        train["role"],
        train["rows"],
        train["digest"],
    )
    assert ("store-weeks-holdout", "evaluation", 624) == (holdout["name"], holdout["role"], holdout["rows"])
    assert (root / "data" / "holdout.csv").as_uri() == holdout["uri"]
    assert "region" in [c["name"] for c in train["columns"]]
    assert None is lineage["git"]  # code_path defaults to the config's folder: not a Git checkout here
    assert "sklearn" in lineage["flavors"]

    profile = client.get_document(v.uri, "profile")
    assert 2496 == profile["rows"] and "categorical" == profile["columns"]["region"]["kind"]
    assert "store_size" in client.get_document(v.uri, "signature")["inputs"]
    card = client.get_card(v.uri)
    assert ["retail-analytics@example.com"] == card["owners"] and card["intended_use"].startswith("Weekly planning")
    assert "## Limitations" in client.render_card(v.uri)


def test_grid_coverage_packages_a_joblib_file(client: covex.Client, trained: dict[str, Path], tmp_path: Path) -> None:
    import joblib

    root = trained["grid_coverage"]
    result = run_config(client, root / "registry.yaml", env={"PIPELINE_RUN_ID": "run-8"})
    v = result.version
    assert ("network/grid-coverage", 1, "Test", ["candidate"], "sklearn") == (
        v.name,
        v.version,
        v.stage,
        v.aliases,
        v.tags["covex.flavor"],
    )
    assert ("run-8", "https://ci.example.com/grid-coverage/run-8") == (v.run_id, v.run_link)
    from_csv = pd.read_csv(root / "out" / "metrics.csv").set_index("name")["value"].to_dict()
    assert {**from_csv, "decision_threshold": 0.5} == pytest.approx(v.metrics)
    assert {"n_estimators": "60", "max_depth": "8", "holdout_share": "0.2"} == v.params
    assert (root / "out" / "model.joblib").as_uri() == v.source
    signature = client.get_document(v.uri, "signature")
    assert "terrain" in signature["inputs"] and "distance_to_tower_km" in signature["inputs"]
    assert 2 == len(client.get_card(v.uri)["owners"])

    example = pd.read_csv(root / "out" / "example.csv")
    loaded = covex.load_model(v.uri, client=client, cache_dir=str(tmp_path / "cache"))
    expected = joblib.load(root / "out" / "model.joblib").predict(example)
    np.testing.assert_array_equal(expected, np.asarray(loaded.predict(example)).ravel())


# -- registering once -----------------------------------------------------------------------------


def test_same_config_and_files_register_once(client: covex.Client, copy_of: Callable[[str], Path]) -> None:
    config = copy_of("store_sales")
    env = {"RUN_DATE": "2026-11-23"}
    first = run_config(client, config, env=env)
    again = run_config(client, config, env=env)
    assert (False, first.version.version, first.digest) == (again.created, again.version.version, again.digest)
    assert [1] == [v.version for v in client.list_versions("store-sales").items]

    # The same files in another folder are the same inputs.
    moved = config.parent.parent / "moved"
    shutil.copytree(config.parent, moved)
    assert (False, 1) == (lambda r: (r.created, r.version.version))(
        run_config(client, moved / "registry.yaml", env=env)
    )

    # A changed metric is a new version; another RUN_DATE (a tag) is the same one, its tag updated.
    metrics = config.parent / "out" / "metrics.json"
    metrics.write_text(json.dumps({**json.loads(metrics.read_text()), "rmse": 1.5}))
    changed = run_config(client, config, env=env)
    assert (True, 2, 1.5) == (changed.created, changed.version.version, changed.version.metrics["rmse"])
    later = run_config(client, config, env={"RUN_DATE": "2026-11-30"})
    assert (False, 2, ["tags.run_date"], "2026-11-30") == (
        later.created,
        later.version.version,
        later.updated,
        later.version.tags["run_date"],
    )
    assert [2, 1] == [v.version for v in client.list_versions("store-sales").items]
    back = run_config(client, config, env=env)
    assert (False, 2, "2026-11-23") == (back.created, back.version.version, back.version.tags["run_date"])


def test_run_id_is_provenance_not_identity(client: covex.Client, trained: dict[str, Path]) -> None:
    config = trained["grid_coverage"] / "registry.yaml"
    first = run_config(client, config, env={"PIPELINE_RUN_ID": "try-1"})
    retry = run_config(client, config, env={"PIPELINE_RUN_ID": "try-2"})
    assert (False, first.version.version, "try-1") == (retry.created, retry.version.version, retry.version.run_id)


def test_a_rerun_completes_labels_but_never_undoes_later_changes(
    client: covex.Client, trained: dict[str, Path]
) -> None:
    config = trained["store_sales"] / "registry.yaml"
    first = run_config(client, config, env={})
    client.delete_alias("store-sales", "candidate")
    client.transition_stage("store-sales", 1, "None")
    again = run_config(client, config, env={})
    assert (False, "Dev", ["candidate"]) == (again.created, again.version.stage, again.version.aliases)
    # Promoted since, and the alias moved on to another version: a re-run leaves both alone.
    client.transition_stage("store-sales", 1, "Production")
    other = client.create_version("store-sales", source="s3://elsewhere/model")
    client.set_alias("store-sales", "candidate", other.version)
    again = run_config(client, config, env={})
    assert (False, first.version.version, "Production", []) == (
        again.created,
        again.version.version,
        again.version.stage,
        again.version.aliases,
    )
    assert other.version == client.get_version("models:/store-sales@candidate").version


# -- the command line -----------------------------------------------------------------------------


def test_cli_register_dry_run_then_register_then_again(cli, trained: dict[str, Path]) -> None:
    config = str(trained["store_sales"] / "registry.yaml")
    dry = cli("register", "--config", config, "--dry-run", "--json", env={"RUN_DATE": "2026-11-23"})
    assert 0 == dry.exit_code, dry.stderr
    summary = json.loads(dry.stdout)
    assert (True, "store-sales", "mlflow_model") == (summary["valid"], summary["model"], summary["source"])
    assert 3 == cli("models", "show", "store-sales").exit_code  # nothing written: no such model

    made = cli("register", "-c", config, "--json", env={"RUN_DATE": "2026-11-23"})
    assert 0 == made.exit_code, made.stderr
    out = json.loads(made.stdout)
    assert (True, 1, summary["digest"]) == (out["created"], out["version"]["version"], out["digest"])
    again = cli("register", "-c", config, env={"RUN_DATE": "2026-11-23"})
    assert 0 == again.exit_code and "models:/store-sales/1 already holds these inputs" in again.stdout
    shown = json.loads(cli("versions", "show", "models:/store-sales@candidate", "--json").stdout)
    assert ("Dev", "2026-11-23") == (shown["stage"], shown["tags"]["run_date"])


def test_cli_reports_a_bad_config_with_its_line_and_exit_code_2(cli, trained: dict[str, Path]) -> None:
    bad = trained["store_sales"] / "bad-cli.yaml"
    bad.write_text("model: store-sales\nmodel_source:\n  mlflow_model: ./out/model\nmetrics_file: ./out/nope.json\n")
    r = cli("register", "-c", str(bad))
    assert 2 == r.exit_code
    assert "bad-cli.yaml line 4: 'metrics_file': file ./out/nope.json does not exist" in r.stderr
    assert 3 == cli("models", "show", "store-sales").exit_code


# -- interpolation ----------------------------------------------------------------------------------


HEAD = "model: store-sales\nmodel_source:\n  mlflow_model: ./out/model\n"


def test_environment_variables_are_interpolated(write: Callable[[str], Path]) -> None:
    config = load_config(
        write(
            HEAD + "description: trained on ${RUN_DATE} by ${WHO:-the pipeline}, cost $$5\n"
            "params:\n"
            "  rows: ${ROWS}\n"
            '  quoted: "${ROWS}"\n'
            "  empty: ${EMPTY:-}\n"
            "metrics:\n"
            "  rmse: ${RMSE}\n"
            "tags:\n"
            "  branch: ${BRANCH:-main}\n"
            "  literal: $${NOT_EXPANDED}\n"
            "stage: ${STAGE:-Dev}\n"
        ),
        env={"RUN_DATE": "2026-11-23", "ROWS": "2496", "RMSE": "12.5", "STAGE": "Test", "BRANCH": ""},
    )
    assert "trained on 2026-11-23 by the pipeline, cost $5" == config.description
    assert {"rows": "2496", "quoted": "2496", "empty": ""} == config.params
    assert {"rmse": 12.5} == config.all_metrics
    assert {"branch": "main", "literal": "${NOT_EXPANDED}"} == config.tags  # empty counts as unset with :-
    assert "Test" == config.stage


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (
            HEAD + "tags:\n  day: ${RUN_DAY}\n",
            "line 5: 'tags.day': environment variable RUN_DAY is not set (write ${RUN_DAY:-default}",
        ),
        (HEAD + "description: |\n  first\n  then ${MISSING}\n", "line 6: 'description': environment variable MISSING"),
        (HEAD + "description: ${1X}\n", "line 4: 'description': '${1X}' is not a valid reference"),
        (HEAD + "description: ${OPEN\n", "line 4: 'description': unterminated '${'"),
    ],
)
def test_interpolation_errors_name_the_variable_and_line(write: Callable[[str], Path], body: str, message: str) -> None:
    with pytest.raises(covex.InvalidInput) as caught:
        load_config(write(body), env={})
    assert message in caught.value.message


def _refused(path: Path, line: int, key: str, env: dict[str, str]) -> str:
    with pytest.raises(covex.InvalidInput) as caught:
        load_config(path, env=env)
    assert caught.value.message.startswith(f"{path} line {line}: '{key}'"), caught.value.message
    return caught.value.message


@pytest.mark.parametrize("env", [{}, {"A": "set"}, {"B": "set"}, {"A": "", "B": "set"}])
@pytest.mark.parametrize("value", ["${A:-${B}}", "${A:-${B:-x}}", "${A:-$${B}}", "'x ${A:-y${B}}'"])
def test_a_reference_in_a_default_is_refused_whatever_the_environment(
    write: Callable[[str], Path], value: str, env: dict[str, str]
) -> None:
    message = _refused(write(HEAD + f"tags:\n  day: {value}\n"), 5, "tags.day", env)
    assert "the default of ${A} holds '${': a default is plain text, it cannot hold a reference" in message


def test_a_reference_in_a_default_in_a_block_names_its_own_line(write: Callable[[str], Path]) -> None:
    _refused(write(HEAD + "description: |\n  first\n  then ${A:-x ${B:-y}}\n"), 6, "description", {})


def test_defaults_and_escapes_still_read_as_documented(write: Callable[[str], Path]) -> None:
    config = load_config(
        write(
            HEAD + "tags:\n"
            "  plain: ${A:-some text}\n"
            "  dollar: ${A:-cost $$5 or $6}\n"
            "  literal: $${B} and $$${B}\n"
            "  set: ${B:-unused}\n"
            "  empty: ${A:-}\n"
        ),
        env={"A": "", "B": "bee"},
    )
    assert {
        "plain": "some text",
        "dollar": "cost $5 or $6",
        "literal": "${B} and $bee",
        "set": "bee",
        "empty": "",
    } == config.tags


def test_cli_dry_run_refuses_a_nested_default(cli, write: Callable[[str], Path]) -> None:
    path = write(HEAD + "run: {id: '${CI_JOB_ID:-${USER}}'}\n")
    r = cli("register", "-c", str(path), "--dry-run", env={"USER": "me"})
    assert 2 == r.exit_code, r.stdout
    assert f"{path} line 4: 'run.id': the default of ${{CI_JOB_ID}} holds '${{'" in r.stderr
    assert 3 == cli("models", "show", "store-sales").exit_code


# -- bad input: named with key and line, nothing written ---------------------------------------------


def _files(root: Path) -> None:
    (root / "out" / "broken.json").write_text('{"rmse": 1.2,')
    (root / "out" / "words.json").write_text('{"rmse": "low"}')
    (root / "out" / "ragged.csv").write_text("name,value\nrmse,1.2\nmae\n")
    (root / "out" / "garbage.pkl").write_bytes(b"not a pickle")
    (root / "out" / "notes.txt").write_text("hello")


BAD = [
    ("missing metrics file", HEAD + "metrics_file: ./out/metrics.jsn\n", 4, "metrics_file", "does not exist"),
    ("broken JSON", HEAD + "metrics_file: ./out/broken.json\n", 4, "metrics_file", "is not valid JSON"),
    ("non-number metric", HEAD + "metrics_file: ./out/words.json\n", 4, "metrics_file", "'rmse' is not a number"),
    ("ragged CSV", HEAD + "metrics_file: ./out/ragged.csv\n", 4, "metrics_file", "row 3 has 1 cells"),
    ("metrics file type", HEAD + "metrics_file: ./out/notes.txt\n", 4, "metrics_file", "must be a .json or .csv"),
    ("metric twice", HEAD + "metrics_file: ./out/metrics.json\nmetrics:\n  rmse: 1\n", 6, "metrics.rmse", "once"),
    ("unknown key", HEAD + "descripton: x\n", 4, "descripton", "unknown key (did you mean 'description'?)"),
    ("unknown nested key", HEAD + "  tracking: x\n", 4, "model_source.tracking", "unknown key"),
    ("missing model", "model_source:\n  mlflow_model: ./out/model\n", 1, "model", "is required"),
    ("missing source", "model: store-sales\n", 1, "model_source", "is required"),
    ("model not text", "model: [a]\nmodel_source: {mlflow_model: ./out/model}\n", 1, "model", "must be text"),
    ("bad model name", "model: a b\nmodel_source: {mlflow_model: ./out/model}\n", 1, "model", "not a valid model"),
    ("metrics not a mapping", HEAD + "metrics: 1.2\n", 4, "metrics", "must be a mapping"),
    ("metric not a number", HEAD + "metrics:\n  rmse: low\n", 5, "metrics.rmse", "must be a number"),
    ("param nested", HEAD + "params:\n  grid:\n    a: 1\n", 5, "params.grid", "must be text or a number"),
    ("datasets not a list", HEAD + "datasets: ./data/train.csv\n", 4, "datasets", "must be a list"),
    ("alias not text", HEAD + "aliases: [1]\n", 4, "aliases[0]", "must be text"),
    ("alias like a version", HEAD + "aliases: [v2]\n", 4, "aliases[0]", "looks like a version number"),
    (
        "both sources",
        "model: store-sales\nmodel_source:\n  mlflow_model: ./out/model\n  pickle: ./out/garbage.pkl\n",
        2,
        "model_source",
        "exactly one of mlflow_model, pickle, joblib or mlflow_run (got mlflow_model and pickle)",
    ),
    ("no source", "model: store-sales\nmodel_source: {flavor: sklearn}\n", 2, "model_source", "(got none)"),
    (
        "missing model file",
        "model: m\nmodel_source:\n  pickle: ./out/model.pkl\n",
        3,
        "model_source.pickle",
        "not exist",
    ),
    ("folder not MLflow", "model: m\nmodel_source:\n  mlflow_model: ./data\n", 2, "model_source", "no MLmodel file"),
    ("flavor for a folder", HEAD + "  flavor: sklearn\n", 2, "model_source", "'flavor' applies to pickle"),
    ("bad run URI", "model: m\nmodel_source: {mlflow_run: ./run}\n", 2, "model_source", "runs:/<run id>"),
    ("example for a folder", HEAD + "input_example: ./data/train.csv\n", 4, "input_example", "pickle and joblib"),
    ("dataset missing", HEAD + "datasets:\n  - name: t\n    path: ./t.csv\n", 6, "datasets[0].path", "not exist"),
    (
        "dataset role",
        HEAD + "datasets:\n  - {name: t, path: ./data/train.csv, role: test}\n",
        5,
        "datasets[0].role",
        "",
    ),
    ("dataset nowhere", HEAD + "datasets:\n  - name: t\n", 5, "datasets[0]", "give the dataset's 'path'"),
    ("reference not a frame", HEAD + "reference_data: ./out/notes.txt\n", 4, "reference_data", "CSV or Parquet"),
    ("card field", HEAD + "card:\n  overveiw: x\n", 5, "card.overveiw", "did you mean 'overview'"),
    ("card owners", HEAD + "card:\n  owners: {a: 1}\n", 5, "card.owners", "must be a list of names"),
    ("reserved tag", HEAD + "tags:\n  covex.source_digest: x\n", 5, "tags.covex.source_digest", "set by Covex"),
    ("duplicate key", HEAD + "model: other\n", 4, "model", "appears twice"),
    ("YAML syntax", HEAD + "tags: {a: [b}\n", 4, "", "not valid YAML"),
    ("not a mapping", "- model\n", 1, "", "must be a mapping of keys"),
    ("parent not a URI", HEAD + "parent: store-sales\n", 4, "parent", "must be a models:/ URI"),
    # Limits the registry would refuse: refused before the model is created.
    ("long description", HEAD + f"description: {'x' * 20_001}\n", 4, "description", "20001 characters"),
    ("long run id", HEAD + f"run: {{id: {'r' * 300}}}\n", 4, "run.id", "300 characters"),
    ("too many params", HEAD + "params: {" + ", ".join(f"p{i}: 1" for i in range(1001)) + "}\n", 4, "params", "1001"),
    ("tags with Covex's", HEAD + "tags: {" + ", ".join(f"t{i}: x" for i in range(999)) + "}\n", 4, "tags", "998"),
]


@pytest.mark.parametrize(("body", "line", "key", "message"), [b[1:] for b in BAD], ids=[b[0] for b in BAD])
def test_bad_config_names_key_and_line_and_writes_nothing(
    embedded: covex.Client, write: Callable[[str], Path], body: str, line: int, key: str, message: str
) -> None:
    path = write(body)
    _files(path.parent)
    with pytest.raises(covex.InvalidInput) as caught:
        run_config(embedded, path, env={})
    text = caught.value.message
    where = f"{path} line {line}: '{key}'" if key else f"{path} line {line}: "
    assert text.startswith(where), text
    assert message in text
    assert ([], []) == (embedded.search_models().items, embedded.search_versions().items)


@pytest.mark.parametrize(
    ("body", "error", "line", "key", "message"),
    [
        (HEAD + "stage: Staging\n", covex.InvalidInput, 4, "stage", "'Staging' is not a stage; stages are None, Dev"),
        (HEAD + "aliases: [production]\n", covex.InvalidInput, 4, "aliases[0]", "is a stage name"),
        (HEAD + "parent: models:/store-sales@champion\n", covex.NotFound, 4, "parent", "store-sales"),
        (
            "model: m\nmodel_source:\n  pickle: ./out/garbage.pkl\n",
            covex.InvalidInput,
            3,
            "model_source.pickle",
            "cannot load out/garbage.pkl: UnpicklingError",
        ),
    ],
)
def test_problems_only_the_registry_or_the_model_reveal_write_nothing(
    embedded: covex.Client,
    write: Callable[[str], Path],
    body: str,
    error: type[covex.CovexError],
    line: int,
    key: str,
    message: str,
) -> None:
    path = write(body)
    _files(path.parent)
    load_config(path, env={})  # the file itself is fine
    with pytest.raises(error) as caught:
        run_config(embedded, path, env={})
    assert caught.value.message.startswith(f"{path} line {line}: '{key}'"), caught.value.message
    assert message in caught.value.message
    assert ([], []) == (embedded.search_models().items, embedded.search_versions().items)


def test_missing_config_file(tmp_path: Path) -> None:
    with pytest.raises(covex.InvalidInput, match=r"config file .*nope\.yaml does not exist"):
        load_config(tmp_path / "nope.yaml")


# -- metrics files and requirements ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "text", "expected"),
    [
        ("m.csv", "name,value\nrmse,1.5\nmae,0.5\n", {"rmse": 1.5, "mae": 0.5}),
        ("m.csv", "rmse,1.5\nmae,0.5\n", {"rmse": 1.5, "mae": 0.5}),
        ("m.csv", "rmse,mae,r2\n1.5,0.5,0.9\n", {"rmse": 1.5, "mae": 0.5, "r2": 0.9}),
        ("m.csv", "rmse,mae\n1.5,0.5\n", {"rmse": 1.5, "mae": 0.5}),
        (
            "m.json",
            '{"rmse": 1.5, "holdout": {"auc": 0.9, "n": 10}}',
            {"rmse": 1.5, "holdout.auc": 0.9, "holdout.n": 10},
        ),
    ],
)
def test_metrics_file_formats(write: Callable[[str], Path], name: str, text: str, expected: dict[str, float]) -> None:
    path = write(HEAD + f"metrics_file: ./{name}\n")
    (path.parent / name).write_text(text)
    assert expected == load_config(path, env={}).all_metrics


def test_requirements_file_for_a_pickled_model(embedded: covex.Client, copy_of: Callable[[str], Path]) -> None:
    config = copy_of("grid_coverage")
    (config.parent / "requirements.txt").write_text("# pinned by the pipeline\nscikit-learn\npandas  # frames\n")
    text = config.read_text().replace(
        "  # pip_requirements: ./out/requirements.txt", "  pip_requirements: ./requirements.txt"
    )
    config.write_text(text)
    loaded = load_config(config, env={})
    assert ["scikit-learn", "pandas"] == loaded.model_source.pip_requirements
    v = run_config(embedded, config, env={}).version
    recorded = embedded.get_lineage(v.uri)["environment"]["requirements"]
    assert ["scikit-learn", "pandas"] == [r for r in recorded if not r.startswith("mlflow")]


@pytest.mark.slow
def test_a_model_from_an_mlflow_run(embedded: covex.Client, tmp_path: Path) -> None:
    import mlflow.sklearn
    from mlflow import MlflowClient
    from sklearn.linear_model import LinearRegression

    tracking = f"sqlite:///{tmp_path / 'mlflow.db'}"
    mlflow_client = MlflowClient(tracking_uri=tracking)
    experiment = mlflow_client.create_experiment("sales", artifact_location=(tmp_path / "artifacts").as_uri())
    run = mlflow_client.create_run(experiment)
    x = pd.DataFrame({"size": [1.0, 2.0, 3.0]})
    mlflow.sklearn.save_model(
        LinearRegression().fit(x, [2.0, 4.0, 6.0]),
        str(tmp_path / "model"),
        input_example=x,
        pip_requirements=["scikit-learn"],
    )
    mlflow_client.log_artifacts(run.info.run_id, str(tmp_path / "model"), "model")
    config = tmp_path / "registry.yaml"
    config.write_text(
        f"model: from-run\nmodel_source:\n  mlflow_run: runs:/{run.info.run_id}/model\n  tracking_uri: {tracking}\n"
    )
    first = run_config(embedded, config, env={})
    v = first.version
    assert (True, f"runs:/{run.info.run_id}/model", run.info.run_id, "") == (
        first.created,
        v.source,
        v.run_id,
        v.run_link,
    )
    assert "size" in embedded.get_document(v.uri, "signature")["inputs"]
    assert (False, 1) == (lambda r: (r.created, r.version.version))(run_config(embedded, config, env={}))


def test_cli_dry_run_checks_the_stage_against_the_registry(cli, copy_of: Callable[[str], Path]) -> None:
    config = copy_of("store_sales")  # a private copy: the shared example must stay as it is for other tests
    config.write_text(config.read_text().replace("stage: Dev", "stage: Staging"))
    dry = cli("register", "--config", str(config), "--dry-run", env={"RUN_DATE": "2026-11-23"})
    assert (2, True) == (dry.exit_code, "'stage': 'Staging' is not a stage" in dry.stderr)


def test_register_creates_a_registry_where_there_is_none(copy_of: Callable[[str], Path], tmp_path: Path) -> None:
    fresh = tmp_path / "fresh-registry"
    env = {"COVEX_URI": str(fresh), "RUN_DATE": "2026-11-23", "COLUMNS": "300"}
    config = str(copy_of("store_sales"))
    made = CliRunner().invoke(app, ["register", "--config", config], env=env)
    assert 0 == made.exit_code, made.stderr
    assert f"created a new Covex registry at {fresh}" in made.stderr
    assert "models:/store-sales/1" in made.stdout
