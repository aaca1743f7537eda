"""An embedded ``covex.Client`` opens its registry on first use: reads never create one, the first write does."""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import Any

import pytest

import covex
from covex.client.backend import Backend
from covex.client.embedded import EmbeddedBackend, is_read
from covex.domain.uris import ModelRef
from covex.settings import Settings
from tests import support

# The Backend methods that write: each may create the registry. Everything else must not.
WRITES = {
    "create_model",
    "rename_model",
    "update_model",
    "set_model_tag",
    "delete_model_tag",
    "delete_model",
    "create_version",
    "finalize_version",
    "fail_version",
    "update_version",
    "set_version_tag",
    "delete_version_tag",
    "log_metrics",
    "log_params",
    "delete_version",
    "transition_stage",
    "set_alias",
    "delete_alias",
    "set_card",
    "put_blob",
    "start_deployment",
    "update_deployment",
    "record_evaluation",
}
REF = ModelRef("churn", "version", "1")
ARGS: dict[str, tuple[Any, ...]] = {
    "get_model": ("churn",),
    "search_models": (),
    "get_version": (REF,),
    "list_files": (REF,),
    "search_versions": (),
    "get_document": (REF, "card"),
    "history": ("churn",),
    "get_deployment": (1,),
    "list_deployments": (),
    "get_evaluation": (1,),
    "list_evaluations": ("churn",),
    "missing_blobs": (["0" * 64],),
    "read_blob": ("0" * 64,),
    "gc": (),
    "fsck": (),
    "ping": (),
}


def backend_methods() -> list[str]:
    return sorted(
        name
        for name, member in inspect.getmembers(Backend)
        if not name.startswith("_") and inspect.isfunction(member) and name != "close"
    )


def test_every_backend_method_is_a_read_or_a_write() -> None:
    assert WRITES | set(ARGS) == set(backend_methods())
    assert not any(is_read(m) for m in WRITES)
    assert all(is_read(m) for m in ARGS)


@pytest.mark.parametrize("method", sorted(ARGS))
def test_a_read_of_a_registry_that_is_not_there_says_so_and_creates_nothing(tmp_path: Path, method: str) -> None:
    folder = tmp_path / "typo"
    backend = EmbeddedBackend(Settings(uri=str(folder)))
    with pytest.raises(covex.NotFound, match=f"no Covex registry at {folder}: create one with 'covex init"):
        result = getattr(backend, method)(*ARGS[method])
        list(result) if method == "read_blob" else None  # a generator reads on first use
    backend.close()
    assert [] == list(tmp_path.iterdir())


@pytest.mark.parametrize(
    "read",
    [
        lambda c: c.access.whoami(),
        lambda c: c.access.list_users(),
        lambda c: c.approvals.list_policies(),
        lambda c: c.approvals.inbox(),
        lambda c: c.audit.verify(),
        lambda c: c.webhooks.list_webhooks(),
        lambda c: c.monitoring.monitor_status(),
        lambda c: c.monitoring.get_monitor_config("churn"),
        lambda c: c.get_card("churn", 1),
        lambda c: c.render_card("models:/churn@champion"),
        lambda c: c.download("models:/churn/1", "out"),
    ],
)
def test_reads_through_every_area_create_nothing(tmp_path: Path, read: Any) -> None:
    with covex.Client(tmp_path / "data") as c, pytest.raises(covex.NotFound, match="no Covex registry at"):
        read(c)
    assert not (tmp_path / "data").exists()


def test_the_first_write_creates_the_registry_and_says_where(tmp_path: Path) -> None:
    folder = tmp_path / "data"
    told: list[str] = []
    with covex.Client(folder, on_create=told.append) as c:
        assert not folder.exists()  # a client alone creates nothing
        assert ["None", "Dev", "Test", "Production", "Archived"] == c.stages  # from settings, not the database
        assert not folder.exists()
        c.create_model("churn")
        assert [str(folder)] == told
        assert "churn" == c.get_model("churn").name
        c.create_model("fraud")
        assert [str(folder)] == told  # said once
    with covex.Client(folder, on_create=told.append) as again:
        assert ["churn", "fraud"] == [m.name for m in again.search_models(order_by=["name"]).items]
    assert [str(folder)] == told


def test_init_creates_once(tmp_path: Path) -> None:
    folder = tmp_path / "data"
    with covex.Client(folder) as c:
        assert (True, str(folder)) == (c.init(), c.location)
        assert [] == c.search_models().items
    with covex.Client(folder) as c:
        assert c.init() is False


def test_init_is_refused_for_a_server() -> None:
    with (
        covex.Client("http://127.0.0.1:9") as c,
        pytest.raises(covex.InvalidInput, match="is a server; it creates its own registry"),
    ):
        c.init()


def test_a_sqlite_url_behaves_like_a_data_folder(tmp_path: Path) -> None:
    """sqlite:///path names a file SQLite would create empty on connecting: a read must not."""
    url = f"sqlite:///{tmp_path / 'sub' / 'covex.db'}"
    with covex.Client(url) as c:
        with pytest.raises(covex.NotFound, match=f"no Covex registry at {tmp_path / 'sub' / 'covex.db'}"):
            c.search_models()
        assert [] == list(tmp_path.iterdir())
        c.create_model("churn")
    assert (tmp_path / "sub" / "covex.db").is_file()


def test_a_token_never_creates_a_registry(tmp_path: Path) -> None:
    """A token belongs to a registry that exists; with one, even a write finds none rather than making one."""
    with covex.Client(tmp_path / "data", token="cvx_" + "A" * 43) as c:  # constructing checks nothing yet
        with pytest.raises(covex.NotFound, match="no Covex registry"):
            c.create_model("churn")
        with pytest.raises(covex.NotFound, match="no Covex registry"):
            c.access.whoami()
    assert not (tmp_path / "data").exists()


def test_a_bad_token_on_an_existing_registry_is_still_refused(tmp_path: Path) -> None:
    with covex.Client(tmp_path / "data") as admin:
        admin.init()
    with (
        covex.Client(tmp_path / "data", token="cvx_" + "A" * 43) as c,
        pytest.raises(covex.Unauthenticated, match="not valid"),
    ):
        c.search_models()


@pytest.mark.parametrize(
    ("where", "message"),
    [
        ("/proc/covex-registry", "cannot create a Covex registry at /proc/covex-registry"),
        ("a-file/data", "a-file is a file, not a folder"),
    ],
)
def test_a_registry_that_cannot_be_made_is_invalid_input(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, where: str, message: str
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "a-file").write_text("not a folder")
    with covex.Client(where) as c, pytest.raises(covex.InvalidInput, match=message):
        c.create_model("churn")


def test_postgres_without_artifacts_is_invalid_input() -> None:
    with (
        covex.Client("postgresql+psycopg://nobody@127.0.0.1:1/none") as c,
        pytest.raises(covex.InvalidInput, match="COVEX_ARTIFACTS must be set"),
    ):
        c.search_models()


# -- downloads: the destination is checked before anything is fetched ----------------------


@pytest.fixture
def registry_with_a_version(tmp_path: Path) -> covex.Client:
    c = covex.Client(tmp_path / "data")
    c.create_model("churn")
    c.create_version("churn", support.make_tree(tmp_path / "model", {"model.pkl": b"w", "sub/x.txt": b"x"}))
    return c


@pytest.mark.parametrize(
    ("dst", "message"),
    [
        ("afile", "'dst' 'afile' is a file; give a folder"),
        ("afile/below", "'dst' 'afile/below' is under .*afile, which is a file"),
        ("/proc/covex-download", "cannot create folder /proc/covex-download"),
    ],
)
def test_a_download_into_a_place_that_is_no_folder_is_invalid_input(
    registry_with_a_version: covex.Client, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, dst: str, message: str
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "afile").write_text("keep me")
    with registry_with_a_version as c, pytest.raises(covex.InvalidInput, match=message):
        c.download("models:/churn/1", dst)
    assert "keep me" == (tmp_path / "afile").read_text()


def test_a_file_in_the_way_inside_the_folder_is_one_error(
    registry_with_a_version: covex.Client, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    (out / "sub").mkdir(parents=True)
    (out / "model.pkl").mkdir()  # a folder where the version has a file
    with registry_with_a_version as c, pytest.raises(covex.CovexError, match=f"cannot write {out / 'model.pkl'}"):
        c.download("models:/churn/1", out)
    assert [] == [p.name for p in out.rglob("*.covex-partial")]
