"""`covex register --config` in a real pipeline: protected places, an optional parent, labels that change daily."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import covex
from covex.ml import log_model
from covex.ml.config import Change, load_config, run_config
from tests.conftest import Registry

pytestmark = pytest.mark.filterwarnings(
    "ignore:Hint. Inferred schema contains integer column:UserWarning",
    "ignore:.*Any type hint is inferred as AnyType:UserWarning",
)

ROOT = Path(__file__).resolve().parents[2]
DAY = {"RUN_DATE": "2026-11-23"}
NEXT_DAY = {"RUN_DATE": "2026-11-24"}


def _retrain(config: Path, rmse: float) -> None:
    """A retrained model: other metrics, so other inputs."""
    metrics = config.parent / "out" / "metrics.json"
    metrics.write_text(json.dumps({**json.loads(metrics.read_text()), "rmse": rmse}))


def _protect_dev(client: covex.Client, gate: str) -> None:
    client.approvals.set_policy("stage", "Dev", {"approvals": 1, "gates": [gate], "forbid_self_approval": False})


# -- a protected stage: a request, once ---------------------------------------------------------


def test_a_protected_stage_opens_one_request_that_reruns_find(client: covex.Client, copy_of) -> None:
    config = copy_of("store_sales")
    _protect_dev(client, "metrics.rmse <= 1000000")
    first = run_config(client, config, env=DAY)
    candidate, dev = first.moves
    assert (True, "None", ["candidate"]) == (first.created, first.version.stage, first.version.aliases)
    assert ("alias", "candidate", "moved") == (candidate.target_kind, candidate.target, candidate.outcome)
    assert ("stage", "Dev", "requested", []) == (dev.target_kind, dev.target, dev.outcome, first.refused)
    assert dev.request is not None
    assert ("OPEN", 1, [("metrics.rmse <= 1000000", True)]) == (
        dev.request.status,
        dev.request.approvals_needed,
        [(g.gate, g.passed) for g in dev.request.gates],
    )

    again = run_config(client, config, env=DAY)
    pending = again.moves[1]
    assert (False, 1, "pending", dev.request.id) == (
        again.created,
        again.version.version,
        pending.outcome,
        pending.request.id if pending.request else None,
    )
    assert [dev.request.id] == [r.id for r in client.approvals.list_requests("store-sales")]
    assert [1] == [v.version for v in client.list_versions("store-sales").items]

    # Approved: the version is in Dev, and a rerun has nothing left to ask for.
    client.approvals.approve(dev.request.id, "looks right")
    done = run_config(client, config, env=DAY)
    assert ("Dev", ["already", "already"]) == (done.version.stage, [m.outcome for m in done.moves])
    assert 1 == len(client.approvals.list_requests("store-sales"))


def test_a_protected_alias_is_asked_for_like_a_stage(client: covex.Client, copy_of) -> None:
    config = copy_of("store_sales")
    client.approvals.set_policy("alias", "candidate", {"approvals": 1, "forbid_self_approval": False})
    first = run_config(client, config, env=DAY)
    candidate, dev = first.moves
    assert ("requested", "moved", "Dev", []) == (
        candidate.outcome,
        dev.outcome,
        first.version.stage,
        first.version.aliases,
    )
    assert candidate.request is not None and "candidate" == candidate.request.target
    again = run_config(client, config, env=DAY)
    assert ("pending", candidate.request.id) == (
        again.moves[0].outcome,
        again.moves[0].request.id if again.moves[0].request else None,
    )
    client.approvals.approve(candidate.request.id)
    assert ["candidate"] == run_config(client, config, env=DAY).version.aliases
    assert [candidate.request.id] == [r.id for r in client.approvals.list_requests("store-sales")]


def test_a_policy_for_this_model_only_is_asked_for_too(client: covex.Client, copy_of) -> None:
    client.create_model("store-sales")
    client.approvals.set_policy("stage", "Dev", {"approvals": 1}, model="store-sales")
    client.approvals.set_policy("stage", "Dev", {"approvals": 1}, model="other")
    first = run_config(client, copy_of("store_sales"), env=DAY)
    dev = first.moves[1]
    assert ("requested", "None") == (dev.outcome, first.version.stage)
    assert dev.request is not None and "Dev" == dev.request.target


def test_a_version_failing_the_gates_is_registered_and_refused_every_run(client: covex.Client, copy_of) -> None:
    config = copy_of("store_sales")
    _protect_dev(client, "metrics.rmse <= 1")
    for created in (True, False):
        result = run_config(client, config, env=DAY)
        [refused] = result.refused
        assert (created, 1, "None", "stage", "Dev") == (
            result.created,
            result.version.version,
            result.version.stage,
            refused.target_kind,
            refused.target,
        )
        assert "does not meet the policy of stage 'Dev': metrics.rmse <= 1 (value" in refused.message
    assert [] == client.approvals.list_requests("store-sales")


def test_cli_prints_the_request_and_its_gates_and_exits_4_when_refused(
    cli: Callable[..., Any], copy_of, tmp_path: Path
) -> None:
    config = str(copy_of("store_sales"))
    policies = tmp_path / "policies.yaml"
    policies.write_text("policies:\n  - stage: Dev\n    approvals: 1\n    gates: [metrics.rmse <= 1000000]\n")
    assert 0 == cli("policies", "apply", str(policies)).exit_code

    made = cli("register", "-c", config, env=DAY)
    assert 0 == made.exit_code, made.stderr
    opened = re.search(r"stage 'Dev' is protected by a policy: opened request (\d+) \(needs 1 approval\)", made.stdout)
    assert opened is not None, made.stdout
    assert "  passed: metrics.rmse <= 1000000 (" in made.stdout

    again = cli("register", "-c", config, "--json", env=DAY)
    assert 0 == again.exit_code, again.stderr
    out = json.loads(again.stdout)
    [dev] = [m for m in out["moves"] if m["target_kind"] == "stage"]
    assert (False, 1, "pending", int(opened[1]), "OPEN", True) == (
        out["created"],
        out["version"]["version"],
        dev["outcome"],
        dev["request"]["id"],
        dev["request"]["status"],
        dev["request"]["gates"][0]["passed"],
    )
    listed = json.loads(cli("requests", "list", "--json").stdout)
    assert [int(opened[1])] == [r["id"] for r in listed]

    policies.write_text("policies:\n  - stage: Dev\n    approvals: 1\n    gates: [metrics.rmse <= 1]\n")
    assert 0 == cli("policies", "apply", str(policies)).exit_code
    _retrain(Path(config), 2.5)
    refused = cli("register", "-c", config, env=DAY)
    assert 4 == refused.exit_code
    assert "created models:/store-sales/2" in refused.stdout
    assert (
        "error: models:/store-sales/2 is registered, but not in stage 'Dev': version 2 of 'store-sales' does not "
        "meet the policy of stage 'Dev': metrics.rmse <= 1 (value 2.5, threshold 1)"
    ) in refused.stderr


# -- parent: required or not -----------------------------------------------------------------------


def test_an_optional_parent_is_left_out_until_it_exists(client: covex.Client, copy_of) -> None:
    config = copy_of("store_sales")  # the example names parent {uri: models:/store-sales@champion, required: false}
    first = run_config(client, config, env=DAY)
    assert (True, None) == (first.created, client.get_lineage(first.version.uri)["parent"])
    assert ["parent models:/store-sales@champion does not exist yet: registered without a parent"] == first.notes
    assert [] == run_config(client, config, env=DAY).notes  # nothing registered: nothing to say about a parent

    client.set_alias("store-sales", "champion", 1)
    _retrain(config, 99.0)
    retrained = run_config(client, config, env=DAY)
    assert (True, 2, [], "models:/store-sales/1") == (
        retrained.created,
        retrained.version.version,
        retrained.notes,
        client.get_lineage(retrained.version.uri)["parent"],
    )


def test_a_required_parent_that_is_missing_names_the_key_and_line(client: covex.Client, copy_of) -> None:
    config = copy_of("store_sales")
    text = config.read_text()
    config.write_text(text.replace("parent: {uri: models:/store-sales@champion, required: false}", "parent: x"))
    line = 1 + config.read_text().splitlines().index("parent: x")
    for parent in ("models:/store-sales@champion", "{uri: models:/store-sales@champion}"):
        config.write_text(text.replace("{uri: models:/store-sales@champion, required: false}", parent))
        with pytest.raises(covex.NotFound) as caught:
            run_config(client, config, env=DAY)
        assert caught.value.message.startswith(f"{config} line {line}: 'parent': model 'store-sales' does not exist")
        assert "required: false" in caught.value.message
    assert [] == client.search_models().items

    config.write_text(text.replace("required: false", "required: maybe"))
    with pytest.raises(covex.InvalidInput, match=rf"line {line}: 'parent.required': must be true or false"):
        load_config(config, env=DAY)


# -- identity: what the model is, not how it is labelled ---------------------------------------------


def test_a_rerun_with_new_labels_updates_them_on_the_same_version_audited(client: covex.Client, copy_of) -> None:
    config = copy_of("store_sales")
    first = run_config(client, config, env=DAY)
    since = int(time.time() * 1000)
    client.set_card("store-sales", {**client.get_card("store-sales", 1), "ethical_considerations": "none known"}, 1)

    text = config.read_text()
    config.write_text(
        text.replace("  pipeline: store-sales-weekly\n", "  pipeline: store-sales-weekly\n  owner: ana\n")
        .replace("Weekly sales per store from", "Sales per store and week from")
        .replace("owners: [retail-analytics@example.com]", "owners: [forecasting@example.com]")
    )
    again = run_config(client, config, env=NEXT_DAY)
    v = again.version
    assert (False, first.digest, 1) == (again.created, again.digest, v.version)
    assert ["description", "tags.owner", "tags.run_date", "card"] == again.updated
    assert Change(field="tags.run_date", before="2026-11-23", after="2026-11-24") in again.changes
    assert Change(field="tags.owner", before=None, after="ana") in again.changes
    assert ("2026-11-24", "ana") == (v.tags["run_date"], v.tags["owner"])
    assert v.description.startswith("Sales per store and week")
    card = client.get_card(v.uri)
    # The config's card fields are written; a field added on the version since stays.
    assert (["forecasting@example.com"], "none known") == (card["owners"], card["ethical_considerations"])
    assert [1] == [x.version for x in client.list_versions("store-sales").items]

    records = client.audit.list_records(target="model:store-sales/1", since=since, max_results=50).items
    tagged = [json.loads(r.after or "{}") for r in records if r.action == "version.tag.set"]
    assert {"run_date": "2026-11-24"} in tagged and {"owner": "ana"} in tagged
    assert {"version.update", "version.tag.set"} <= {r.action for r in records}
    assert 1 == len(client.list_versions("store-sales").items)
    assert [] == run_config(client, config, env=NEXT_DAY).changes  # nothing differs any more


def test_cli_says_what_a_rerun_changed(cli: Callable[..., Any], copy_of) -> None:
    config = str(copy_of("store_sales"))
    assert 0 == cli("register", "-c", config, env=DAY).exit_code
    again = cli("register", "-c", config, env=NEXT_DAY)
    assert 0 == again.exit_code, again.stderr
    assert "models:/store-sales/1 already holds these inputs" in again.stdout
    assert "updated tags.run_date on models:/store-sales/1: '2026-11-23' -> '2026-11-24'" in again.stdout
    shown = json.loads(cli("versions", "show", "models:/store-sales/1", "--json").stdout)
    assert "2026-11-24" == shown["tags"]["run_date"]


# -- the README's sample config ------------------------------------------------------------------------


def _readme_sample() -> str:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    section = text.split("## Registering from a config file", 1)[1]
    found = re.search(r"```yaml\n(.*?)```", section, re.S)
    assert found is not None
    return found[1]


def test_the_readme_sample_config_registers_on_the_first_and_every_later_run(client: covex.Client, copy_of) -> None:
    config = copy_of("store_sales").parent / "sample.yaml"
    config.write_text(_readme_sample())
    first = run_config(client, config, env={})
    assert (True, 1, "Dev", ["candidate"], None) == (
        first.created,
        first.version.version,
        first.version.stage,
        first.version.aliases,
        client.get_lineage(first.version.uri)["parent"],
    )
    assert ("manual", 0.5) == (first.version.tags["run_date"], first.version.metrics["threshold"])
    again = run_config(client, config, env={"RUN_DATE": "2026-11-24"})
    assert (False, 1, ["tags.run_date"]) == (again.created, again.version.version, again.updated)

    client.set_alias("store-sales", "champion", 1)
    _retrain(config, 99.0)
    later = run_config(client, config, env={})
    assert (True, 2, "models:/store-sales/1") == (
        later.created,
        later.version.version,
        client.get_lineage(later.version.uri)["parent"],
    )


# -- log_model ------------------------------------------------------------------------------------------


@pytest.fixture
def fresh(cli_registry: Registry) -> Any:
    with cli_registry.client() as c:
        yield c


def test_log_model_parent_may_be_optional(fresh: covex.Client) -> None:
    import pandas as pd
    from sklearn.linear_model import LinearRegression

    x = pd.DataFrame({"size": [1.0, 2.0, 3.0, 4.0]})
    model = LinearRegression().fit(x, [2.0, 4.0, 6.0, 8.0])
    with pytest.raises(covex.NotFound) as caught:
        log_model(fresh, model, "churn", parent="models:/churn@champion")
    assert "'parent' models:/churn@champion: model 'churn' does not exist (parent_required=False" in (
        caught.value.message
    )
    assert [] == fresh.search_models().items  # nothing written

    first = log_model(fresh, model, "churn", parent="models:/churn@champion", parent_required=False)
    assert None is fresh.get_lineage(first.uri)["parent"]
    fresh.set_alias("churn", "champion", first.version)
    second = log_model(fresh, model, "churn", parent="models:/churn@champion", parent_required=False)
    assert "models:/churn/1" == fresh.get_lineage(second.uri)["parent"]


# -- runs of one config at the same time ---------------------------------------------------------


@pytest.mark.slow
def test_runs_of_one_config_started_together_register_one_version(copy_of, tmp_path: Path) -> None:
    import os
    import subprocess
    import sys

    config = copy_of("store_sales")
    data = tmp_path / "registry"
    with covex.Client(data) as c:
        c.create_model("store-sales")
    argv = [sys.executable, "-m", "covex", "--uri", str(data), "register", "--config", str(config), "--json"]
    env = {**os.environ, **DAY}
    runs = [subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE) for _ in range(3)]
    outs = [p.communicate(timeout=600) for p in runs]
    assert [0, 0, 0] == [p.returncode for p in runs], [err.decode() for _, err in outs]
    reported = {json.loads(out)["version"]["version"] for out, _ in outs}
    with covex.Client(data) as c:
        versions = [v.version for v in c.search_versions("name = 'store-sales'").items]
        assert ([1], {1}) == (versions, reported)
        assert 1 == c.get_version("store-sales", "@candidate").version
    assert 1 == sum(json.loads(out)["created"] for out, _ in outs)
