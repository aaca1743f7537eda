"""Covex's ML components: models in the MLflow format, registered and loaded through ``covex.Client``.

    import covex
    from covex.ml import log_model, register_model

    c = covex.Client()
    v = log_model(c, model, "churn", input_example=X.head(), metrics={"auc": 0.91})
    register_model(c, "mlflow_model_dir", "churn")
    covex.load_model("models:/churn/1").predict(X)

Everything here is a client of the SDK, never of the database: it works the same against an
embedded registry and a server. The packages it needs come with the ``ml`` extra.
"""

from covex.ml.config import RegistrationResult, load_config, run_config
from covex.ml.importer import ImportReport, import_from_mlflow
from covex.ml.loading import fetch_model, load_model
from covex.ml.registering import log_model, register_model

__all__ = [
    "ImportReport",
    "RegistrationResult",
    "fetch_model",
    "import_from_mlflow",
    "load_config",
    "load_model",
    "log_model",
    "register_model",
    "run_config",
]
