"""Versions: create from folders, files or source URIs; metadata; delete; download."""

from __future__ import annotations

from pathlib import Path

import pytest

import covex
from tests.support import read_tree


@pytest.fixture
def churn(client: covex.Client) -> covex.Model:
    return client.create_model("churn")


def test_create_from_folder_and_download(client: covex.Client, churn, tree, tmp_path: Path) -> None:
    src = tree({"model.pkl": b"\x00" * 5000, "conf/MLmodel": "flavors: {}", "conf/deep/x.json": "{}"})
    v = client.create_version("churn", src, metrics={"auc": 0.91}, params={"C": "1.0"}, description="first")
    assert (1, "READY", "None") == (v.version, v.status, v.stage)
    assert (3, 5000 + len("flavors: {}") + 2) == (v.file_count, v.size)
    assert ({"auc": 0.91}, {"C": "1.0"}, "first") == (v.metrics, v.params, v.description)
    assert v.source.startswith("file://")
    out = client.download("models:/churn/1", tmp_path / "out")
    assert read_tree(src) == read_tree(out)
    assert ["conf/MLmodel", "conf/deep/x.json", "model.pkl"] == [f.path for f in client.list_files("churn", 1)]


def test_create_from_single_file(client: covex.Client, churn, tmp_path: Path) -> None:
    f = tmp_path / "model.onnx"
    f.write_bytes(b"onnx")
    v = client.create_version("churn", f)
    assert ["model.onnx"] == [x.path for x in client.list_files(v.uri)]


def test_create_from_source_uri_only(client: covex.Client, churn) -> None:
    v = client.create_version("churn", source="s3://bucket/models/churn/7", run_id="abc", run_link="http://ci/7")
    assert ("READY", 0, "s3://bucket/models/churn/7", "abc") == (v.status, v.file_count, v.source, v.run_id)


def test_nothing_to_create_is_invalid(client: covex.Client, churn) -> None:
    with pytest.raises(covex.InvalidInput, match="source"):
        client.create_version("churn")


def test_numbers_are_sequential_and_never_reused(client: covex.Client, churn, tree) -> None:
    for _ in range(3):
        client.create_version("churn", tree())
    client.delete_version("churn", 3)
    client.delete_version("churn", 2)
    assert 4 == client.create_version("churn", tree()).version
    assert [4, 1] == [v.version for v in client.list_versions("churn")]
    with pytest.raises(covex.NotFound, match="version 3"):
        client.get_version("churn", 3)


def test_identical_files_are_stored_once(client: covex.Client, churn, tree, registry) -> None:
    payload = {"model.pkl": b"same bytes" * 1000}
    a = client.create_version("churn", tree(payload))
    b = client.create_version("churn", tree(payload))
    assert a.manifest_digest == b.manifest_digest
    digest = client.list_files(a.uri)[0].digest
    blobs = registry.service.blobs.list_blobs()
    assert 1 == sum(1 for d in blobs if d == digest)


def test_version_metadata_updates(client: covex.Client, churn, tree) -> None:
    client.create_version("churn", tree(), metrics={"auc": 0.8}, params={"C": "1"}, tags={"a": "1"})
    assert "better" == client.update_version("churn", 1, description="better").description
    assert {"auc": 0.85, "f1": 0.7} == client.log_metrics("churn", 1, {"auc": 0.85, "f1": 0.7}).metrics
    assert {"C": "1", "depth": "3"} == client.log_params("churn", 1, {"depth": "3"}).params
    assert {"a": "1", "b": "2"} == client.set_version_tag("churn", 1, "b", "2").tags
    assert {"b": "2"} == client.delete_version_tag("churn", 1, "a").tags
    with pytest.raises(covex.NotFound):
        client.delete_version_tag("churn", 1, "a")


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"metrics": {"auc": "high"}}, "metrics.auc"),
        ({"tags": {"": "x"}}, "tags"),
        ({"params": {"C": 1}}, "params"),
    ],
)
def test_bad_metadata_creates_nothing(client: covex.Client, churn, tree, kwargs, field) -> None:
    with pytest.raises(covex.InvalidInput, match=field):
        client.create_version("churn", tree(), **kwargs)
    assert [] == client.list_versions("churn").items
    assert 1 == client.create_version("churn", tree()).version


def test_version_of_unknown_model(client: covex.Client, tree) -> None:
    with pytest.raises(covex.NotFound, match="ghost"):
        client.create_version("ghost", tree())


def test_download_of_unknown_version(client: covex.Client, churn, tmp_path: Path) -> None:
    with pytest.raises(covex.NotFound):
        client.download("models:/churn/9", tmp_path)


def test_symlink_outside_folder_is_rejected_before_writing(client: covex.Client, churn, tree, tmp_path: Path) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("do not upload")
    src = tree({"model.pkl": b"w"})
    (src / "leak").symlink_to(secret)
    with pytest.raises(covex.InvalidInput, match="outside"):
        client.create_version("churn", src)
    assert [] == client.list_versions("churn").items


def test_symlink_inside_folder_is_uploaded(client: covex.Client, churn, tree, tmp_path: Path) -> None:
    src = tree({"real.bin": b"abc"})
    (src / "alias.bin").symlink_to(src / "real.bin")
    v = client.create_version("churn", src)
    assert ["alias.bin", "real.bin"] == [f.path for f in client.list_files(v.uri)]


def test_missing_path_is_invalid(client: covex.Client, churn, tmp_path: Path) -> None:
    with pytest.raises(covex.InvalidInput, match="does not exist"):
        client.create_version("churn", tmp_path / "nope")
