"""Stages, aliases and models:/ URIs."""

from __future__ import annotations

import pytest

import covex


@pytest.fixture
def three(client: covex.Client, tree) -> list[covex.ModelVersion]:
    client.create_model("churn")
    return [client.create_version("churn", tree(), metrics={"auc": 0.8 + i / 100}) for i in range(3)]


def test_default_stages(client: covex.Client) -> None:
    assert ["None", "Dev", "Test", "Production", "Archived"] == client.stages


def test_transition_and_archive_existing(client: covex.Client, three) -> None:
    client.transition_stage("churn", 1, "Production")
    client.transition_stage("churn", 2, "production")  # stage names are case-insensitive
    v3 = client.transition_stage("churn", 3, "Production", archive_existing=True)
    assert "Production" == v3.stage
    assert {1: "Archived", 2: "Archived", 3: "Production"} == {
        v.version: v.stage for v in client.list_versions("churn")
    }


def test_without_archive_several_share_a_stage(client: covex.Client, three) -> None:
    client.transition_stage("churn", 1, "Dev")
    client.transition_stage("churn", 2, "Dev")
    assert 2 == client.get_latest_version("churn", "Dev").version
    assert 2 == client.get_version("models:/churn/Dev").version


def test_unknown_stage_is_invalid(client: covex.Client, three) -> None:
    with pytest.raises(covex.InvalidInput, match="'stage'"):
        client.transition_stage("churn", 1, "Prod")


def test_latest(client: covex.Client, three) -> None:
    assert 3 == client.get_version("models:/churn/latest").version
    assert 3 == client.get_latest_version("churn").version
    with pytest.raises(covex.NotFound, match="Production"):
        client.get_latest_version("churn", "Production")


def test_alias_moves_and_resolves(client: covex.Client, three) -> None:
    client.set_alias("churn", "champion", 1)
    client.set_alias("churn", "challenger", 1)
    assert ["challenger", "champion"] == client.get_version("churn", 1).aliases
    client.set_alias("churn", "champion", 2)
    assert ["challenger"] == client.get_version("churn", 1).aliases
    assert 2 == client.get_version("models:/churn@champion").version
    assert 2 == client.get_version("churn", "@champion").version
    assert {"champion": 2, "challenger": 1} == client.get_model("churn").aliases
    client.delete_alias("churn", "champion")
    with pytest.raises(covex.NotFound, match="champion"):
        client.get_version("models:/churn@champion")
    with pytest.raises(covex.NotFound):
        client.delete_alias("churn", "champion")


def test_deleting_a_version_drops_its_aliases(client: covex.Client, three) -> None:
    client.set_alias("churn", "champion", 2)
    client.delete_version("churn", 2)
    assert {} == client.get_model("churn").aliases


@pytest.mark.parametrize("bad", ["7", "v3", "latest", "Production", "none", "has space", "", "@x"])
def test_invalid_alias_names(client: covex.Client, three, bad: str) -> None:
    with pytest.raises(covex.InvalidInput, match="alias"):
        client.set_alias("churn", bad, 1)


def test_alias_to_unknown_version(client: covex.Client, three) -> None:
    with pytest.raises(covex.NotFound):
        client.set_alias("churn", "champion", 99)


@pytest.mark.parametrize("uri", ["churn/1", "models:/", "models:/churn", "models:/churn@", "models:/@x"])
def test_malformed_uris(client: covex.Client, three, uri: str) -> None:
    with pytest.raises(covex.InvalidInput):
        client.get_version(uri)


def test_uris_work_everywhere_a_version_is_expected(client: covex.Client, three, tmp_path) -> None:
    client.set_alias("churn", "champion", 2)
    client.transition_stage("models:/churn@champion", None, "Production")
    assert "Production" == client.get_version("churn", 2).stage
    client.log_metrics("models:/churn/Production", None, {"lift": 1.5})
    assert {"auc": 0.81, "lift": 1.5} == client.get_version("churn", 2).metrics
    out = client.download("models:/churn/Production", tmp_path / "o")
    assert (out / "model.pkl").exists()
