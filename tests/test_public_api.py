"""The package's public surface is deliberate: this list changes only on purpose."""

from __future__ import annotations

import importlib
import subprocess
import sys
from types import ModuleType

import pytest

import covex
import covex.client
import covex.ml
from covex.settings import Settings

PACKAGES = ["covex", "covex.client", "covex.evaluation", "covex.explain", "covex.ml", "covex.monitoring"]
# Dunder names a package may export (httpx exports ``__version__`` the same way).
EXPORTED_DUNDERS = {"__version__"}


def test_exported_members() -> None:
    assert [
        "AlreadyExists",
        "ArtifactCorrupted",
        "Client",
        "CovexError",
        "Deployment",
        "Evaluation",
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
        "MonitorResult",
        "NotFound",
        "Page",
        "PermissionDenied",
        "RequestTooLarge",
        "ServiceUnavailable",
        "Settings",
        "SignatureInvalid",
        "StorageFull",
        "StorageUnavailable",
        "TooManyRequests",
        "Unauthenticated",
        "UnsafeModel",
        "__version__",
        "load_model",
        "parse_model_uri",
    ] == covex.__all__


def test_client_exported_members() -> None:
    assert ["Access", "Approvals", "Audit", "Client", "Monitoring", "Webhooks"] == covex.client.__all__


def test_monitoring_exported_members() -> None:
    import covex.monitoring

    assert ["add_labels", "check", "make_reference", "reference_of", "run_all"] == covex.monitoring.__all__


def test_evaluation_and_explain_exported_members() -> None:
    import covex.evaluation
    import covex.explain

    assert ["Comparison", "compare", "compare_online"] == covex.evaluation.__all__
    assert ["Explained", "Explanation", "explain", "explain_version"] == covex.explain.__all__


def test_ml_exported_members() -> None:
    assert [
        "ImportReport",
        "RegistrationResult",
        "fetch_model",
        "import_from_mlflow",
        "load_config",
        "load_model",
        "log_model",
        "register_model",
        "run_config",
    ] == covex.ml.__all__


def _public(module: ModuleType) -> list[str]:
    """The names a user finds on ``module``: what it defines or re-exports from Covex, not submodules or typing."""

    def from_covex(value: object) -> bool:
        return str(getattr(value, "__module__", None) or module.__name__).split(".")[0] == "covex"

    return sorted(
        name
        for name, value in vars(module).items()
        if (not name.startswith("_") or name in EXPORTED_DUNDERS)
        and not isinstance(value, ModuleType)
        and from_covex(value)
    )


@pytest.mark.parametrize("package", PACKAGES)
def test_all_public_names_are_exported_and_sorted(package: str) -> None:
    module = importlib.import_module(package)
    assert sorted(module.__all__) == module.__all__
    assert _public(module) == module.__all__


@pytest.mark.parametrize("package", PACKAGES)
def test_every_exported_name_imports(package: str) -> None:
    """``from <package> import <name>`` works for each name, in a fresh interpreter (no import order helps)."""
    names = ", ".join(importlib.import_module(package).__all__)
    subprocess.run([sys.executable, "-c", f"from {package} import {names}"], check=True)


def test_a_name_missing_from_all_is_noticed() -> None:
    module = ModuleType("covex.fake")
    module.__dict__.update(Client=covex.Client, Any=object, settings=covex.settings, _private=1)
    module.__all__ = []
    assert ["Client"] == _public(module)


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
