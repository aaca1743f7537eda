"""Package trained model objects in the MLflow model format, so they load anywhere MLflow does."""

from __future__ import annotations

import inspect
import warnings
from pathlib import Path
from typing import Any

from covex.domain.errors import InvalidInput, InvalidState

FLAVORS = ("sklearn", "xgboost", "lightgbm", "pyfunc")
# Types skops may deserialise without asking: only those the user's own, in-memory model is made of,
# and only from these packages. Loading happens after every file's digest matches the registry.
TRUSTED_TYPE_PREFIXES = ("sklearn.", "numpy.", "scipy.")


def detect_flavor(model: Any) -> str:
    """Name the MLflow flavor for ``model``, or raise ``InvalidInput``."""
    import mlflow.pyfunc

    if isinstance(model, mlflow.pyfunc.PythonModel) or inspect.isfunction(model):
        return "pyfunc"
    root = type(model).__module__.split(".")[0]
    if root == "xgboost":
        return "xgboost"
    if root == "lightgbm":
        return "lightgbm"
    try:
        from sklearn.base import BaseEstimator

        if isinstance(model, BaseEstimator) and hasattr(model, "predict"):
            return "sklearn"
    except ImportError:  # pragma: no cover - scikit-learn is a dependency of the ml extra
        pass
    raise InvalidInput(
        f"'model' of type {type(model).__module__}.{type(model).__qualname__} is not supported; "
        "give a scikit-learn estimator, an XGBoost or LightGBM model, an mlflow.pyfunc.PythonModel, "
        "or a function taking a DataFrame and returning predictions"
    )


def skops_trusted_types(model: Any) -> list[str]:
    """The non-default types skops would refuse to load for this model, restricted to known packages."""
    import skops.io

    found = skops.io.get_untrusted_types(data=skops.io.dumps(model))
    refused = [t for t in found if not t.startswith(TRUSTED_TYPE_PREFIXES)]
    if refused:
        raise InvalidInput(
            f"'model' contains types Covex does not trust for safe loading: {', '.join(refused)}; "
            "wrap it in an mlflow.pyfunc.PythonModel to store it with cloudpickle instead"
        )
    return list(found)


class _FunctionModel:
    """Adapter making a plain function a PythonModel (built lazily so mlflow loads only when used)."""

    @staticmethod
    def wrap(fn: Any) -> Any:
        import mlflow.pyfunc

        class FunctionModel(mlflow.pyfunc.PythonModel):  # type: ignore[misc,name-defined]
            def __init__(self, fn: Any) -> None:
                self.fn = fn

            # No annotations: MLflow reads predict's type hints as an input schema.
            def predict(self, context, model_input, params=None):  # type: ignore[no-untyped-def]
                return self.fn(model_input)

        return FunctionModel(fn)


def save_model(
    model: Any,
    path: Path,
    *,
    input_example: Any = None,
    flavor: str | None = None,
    pip_requirements: list[str] | None = None,
) -> str:
    """Write ``model`` as an MLflow model folder at ``path``; return the flavor used."""
    flavor = flavor or detect_flavor(model)
    if flavor not in FLAVORS:
        raise InvalidInput(f"'flavor' must be one of {', '.join(FLAVORS)}, got {flavor!r}")
    if pip_requirements is None:
        # The flavor's own requirements pinned to what is installed: MLflow's inference would load
        # the model in a subprocess to watch its imports, which costs seconds per model.
        pip_requirements = default_requirements(flavor, model)
    common: dict[str, Any] = {"input_example": input_example, "pip_requirements": pip_requirements}
    with warnings.catch_warnings():
        # MLflow warns about optional integrations (pydantic, setuptools) that do not concern users here.
        warnings.simplefilter("ignore")
        if flavor == "sklearn":
            import mlflow.sklearn

            mlflow.sklearn.save_model(model, str(path), skops_trusted_types=skops_trusted_types(model), **common)
        elif flavor == "xgboost":
            import mlflow.xgboost

            mlflow.xgboost.save_model(model, str(path), **common)
        elif flavor == "lightgbm":
            import mlflow.lightgbm

            mlflow.lightgbm.save_model(model, str(path), **common)
        else:
            import mlflow.pyfunc

            python_model = model if isinstance(model, mlflow.pyfunc.PythonModel) else _FunctionModel.wrap(model)
            mlflow.pyfunc.save_model(str(path), python_model=python_model, **common)
    return flavor


def default_requirements(flavor: str, model: Any = None) -> list[str]:
    """The packages loading this model needs, pinned to the installed versions."""
    import importlib

    module = importlib.import_module(f"mlflow.{flavor}")
    requirements: list[str] = list(module.get_default_pip_requirements())
    names = {r.split("==")[0].lower() for r in requirements}
    extra = []
    if flavor == "pyfunc":
        extra += ["pandas", "numpy"]
    if _is_sklearn_estimator(model):
        # scikit-learn-style wrappers (including XGBoost's and LightGBM's) are stored with skops.
        extra += ["scikit-learn", "skops"]
    requirements += [f"{name}=={_version(name)}" for name in extra if name.lower() not in names]
    return requirements


def _is_sklearn_estimator(model: Any) -> bool:
    try:
        from sklearn.base import BaseEstimator
    except ImportError:  # pragma: no cover - scikit-learn is a dependency of the ml extra
        return False
    return isinstance(model, BaseEstimator)


def _version(package: str) -> str:
    from importlib.metadata import version

    return version(package)


def one_line(text: str, limit: int = 300) -> str:
    """A multi-line error message as one line (scikit-learn names the columns at fault on later lines)."""
    joined = " ".join(line.strip() for line in text.strip().splitlines() if line.strip())
    return joined if len(joined) <= limit else joined[: limit - 3] + "..."


def load_pyfunc(path: Path, label: str = "the version") -> Any:
    """The MLflow pyfunc model in ``path``; ``InvalidState`` when the folder holds no MLflow model."""
    import mlflow.pyfunc

    if not (Path(path) / "MLmodel").is_file():
        raise InvalidState(
            f"{label} is not an MLflow model (its files have no MLmodel file): versions registered with "
            "covex.ml.log_model or register_model can be loaded, served and scored"
        )

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return mlflow.pyfunc.load_model(str(path))


def check_example(path: Path, input_example: Any) -> Any:
    """Load the packaged model back and predict on the example; return the predictions."""
    model = load_pyfunc(path)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return model.predict(input_example)
    except Exception as exc:  # noqa: BLE001 - any failure means the example does not fit
        raise InvalidInput(f"'input_example' does not fit the model: {type(exc).__name__}: {exc}") from None


def describe_package(path: Path) -> dict[str, Any]:
    """Flavors, signature and environment recorded in an MLflow model folder."""
    from mlflow.models import Model

    if not (path / "MLmodel").is_file():
        raise InvalidInput(f"'{path}' is not an MLflow model folder (no MLmodel file)")
    mlmodel = Model.load(str(path / "MLmodel"))
    requirements = []
    req = path / "requirements.txt"
    if req.is_file():
        requirements = [line.strip() for line in req.read_text().splitlines() if line.strip()]
    python_version = ""
    env = path / "python_env.yaml"
    if env.is_file():
        import yaml

        python_version = str((yaml.safe_load(env.read_text()) or {}).get("python", ""))
    return {
        "flavors": sorted(mlmodel.flavors),
        "signature": mlmodel.signature.to_dict() if mlmodel.signature else None,
        "environment": {"python": python_version, "requirements": requirements},
    }
