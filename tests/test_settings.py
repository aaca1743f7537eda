"""Where a registry keeps its files by default: never in a folder another registry uses."""

from __future__ import annotations

from pathlib import Path

import pytest

import covex
from covex.settings import Settings


def test_each_sqlite_file_gets_its_own_artifacts_folder(tmp_path: Path) -> None:
    assert str(tmp_path / "artifacts") == Settings(uri=str(tmp_path)).artifacts_url
    assert str(tmp_path / "artifacts") == Settings(uri=f"sqlite:///{tmp_path / 'covex.db'}").artifacts_url
    assert str(tmp_path / "reg-artifacts") == Settings(uri=f"sqlite:///{tmp_path / 'reg.db'}").artifacts_url
    assert str(tmp_path / "reg2-artifacts") == Settings(uri=f"sqlite:///{tmp_path / 'reg2.db'}").artifacts_url


def test_gc_of_one_registry_never_deletes_the_files_of_another_beside_it(tmp_path: Path) -> None:
    model_dir = tmp_path / "model"
    model_dir.mkdir()
    (model_dir / "m.bin").write_bytes(b"weights")
    with (
        covex.Client(f"sqlite:///{tmp_path / 'reg.db'}") as one,
        covex.Client(f"sqlite:///{tmp_path / 'reg2.db'}") as two,
    ):
        one.create_model("sq")
        one.create_version("sq", model_dir)
        two.init()
        assert [] == two.gc(apply=True, grace_seconds=0).unreferenced
        assert [] == one.fsck().missing


def test_mlflow_stages_default_to_the_stages_that_exist_and_refuse_unknown_ones() -> None:
    assert {"None": "None", "Staging": "Test", "Production": "Production", "Archived": "Archived"} == (
        Settings().mlflow_stage_map
    )
    assert {"None": "draft", "Production": "Production"} == Settings(stages=["draft", "Production"]).mlflow_stage_map
    assert "Dev" == Settings(mlflow_stages={"Staging": "Dev"}).mlflow_stage_map["Staging"]
    with pytest.raises(ValueError, match="Staging=Nope"):
        Settings(mlflow_stages={"Staging": "Nope"})
