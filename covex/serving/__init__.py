"""Real-time scoring of the version a ``models:/`` URI points to (``covex serve``).

    from covex.serving import ServeOptions, create_app
    app = create_app(ServeOptions(uri="models:/churn@champion"))   # an ASGI app

It reads the registry only through ``covex.Client`` (embedded or a server alike), verifies every
file's digest before loading, follows the URI as it moves (hot swap), and speaks MLflow's scoring
protocol (``POST /invocations``) and the Open Inference Protocol (``/v2/...``).
"""

from covex.serving.app import create_app
from covex.serving.holder import ModelHolder, Served
from covex.serving.options import ServeOptions
from covex.serving.runner import run

__all__ = ["ModelHolder", "ServeOptions", "Served", "create_app", "run"]
