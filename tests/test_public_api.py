"""The package's public surface is deliberate: this list changes only on purpose."""

from __future__ import annotations

import subprocess
import sys

import covex
from covex.settings import Settings


def test_exported_members() -> None:
    assert [
        "AlreadyExists",
        "ArtifactCorrupted",
        "Client",
        "CovexError",
        "FileEntry",
        "GcReport",
        "HeadersTooLarge",
        "InternalError",
        "InvalidInput",
        "InvalidState",
        "Model",
        "ModelEvent",
        "ModelRef",
        "ModelVersion",
        "NotFound",
        "Page",
        "PermissionDenied",
        "RequestTooLarge",
        "ServiceUnavailable",
        "Settings",
        "StorageFull",
        "StorageUnavailable",
        "TooManyRequests",
        "Unauthenticated",
        "__version__",
        "load_model",
        "parse_model_uri",
    ] == covex.__all__


def test_errors_subclass_the_builtin_a_user_would_catch() -> None:
    assert issubclass(covex.NotFound, LookupError)
    assert issubclass(covex.InvalidInput, ValueError)
    assert issubclass(covex.PermissionDenied, PermissionError)
    assert all(issubclass(getattr(covex, n), covex.CovexError) for n in ("NotFound", "AlreadyExists", "InvalidState"))


def test_import_has_no_side_effects() -> None:
    code = (
        "import logging, sys, covex\n"
        "assert not logging.getLogger().handlers\n"
        "assert 'sqlalchemy' not in sys.modules  # the embedded backend loads on first use"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_settings_from_environment(monkeypatch, tmp_path) -> None:
    monkeypatch.setenv("COVEX_URI", str(tmp_path))
    monkeypatch.setenv("COVEX_STAGES", "Staging, Prod ,Retired")
    s = Settings()
    assert ["Staging", "Prod", "Retired"] == s.stages
    assert s.database_url.startswith("sqlite:///") and s.database_url.endswith("covex.db")
    assert str(tmp_path / "artifacts") == s.artifacts_url
    with covex.Client() as c:
        assert ["Staging", "Prod", "Retired"] == c.stages
        c.create_model("m")
        assert "Staging" == c.create_version("m", source="s3://x").stage
