"""``POST /explain`` (``covex serve --explain``): each feature's SHAP contribution to each row's output,
with the base value, for the version that answers the request.

The body is what ``/invocations`` takes (a table: ``dataframe_split``, ``dataframe_records``, CSV,
Parquet). Tree ensembles are explained on their own paths; linear and other models against a
background drawn once per version from its data profile or drift reference (``covex.explain.stored``):
a version without either explains only with the tree explainer, since one row is no background.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any

from covex.explain.stored import BACKGROUND_ROWS
from covex.serving.errors import BadInput

MAX_ROWS = 1000  # a model-agnostic explanation costs hundreds of model calls a row

if TYPE_CHECKING:
    from covex.serving.holder import Served


class Explaining:
    """The explanations of one serving process: a background per served version, made on first use."""

    def __init__(self, client_factory: Any) -> None:
        self._client_factory = client_factory
        self._backgrounds: dict[str, Any] = {}
        self._lock = threading.Lock()

    def background(self, served: Served, columns: list[str]) -> Any:
        """Rows drawn from ``served``'s drift reference (None when it has none), kept per version."""
        from covex.explain.stored import background_of

        with self._lock:
            if served.uri in self._backgrounds:
                return self._backgrounds[served.uri]
        client = self._client_factory()
        try:
            found = background_of(client, served.uri, columns, BACKGROUND_ROWS, seed=0)
        finally:
            client.close()
        with self._lock:
            self._backgrounds[served.uri] = found
        return found

    def explain(self, served: Served, data: Any) -> dict[str, Any]:
        """The explanation document of ``data`` (a DataFrame) on ``served``."""
        import warnings

        import pandas as pd

        from covex.batch.model import ScoringModel
        from covex.domain.entities import ModelVersion
        from covex.domain.errors import InvalidInput
        from covex.explain import explain
        from covex.explain.targets import plan_for

        if not isinstance(data, pd.DataFrame):
            raise BadInput(
                "/explain takes a table with column names (dataframe_split, dataframe_records, CSV, Parquet)"
            )
        if len(data) > MAX_ROWS:
            raise BadInput(
                f"/explain explains at most {MAX_ROWS} rows a request, got {len(data)}: "
                "use 'covex batch --explain' for more"
            )
        version = ModelVersion(
            name=served.name,
            version=served.version,
            status="READY",
            stage="",
            creation_timestamp=0,
            last_updated_timestamp=0,
        )
        model = ScoringModel(version, served.model)
        try:
            columns = model.feature_columns(list(data.columns), None, "the request")
            background = self.background(served, columns)
            if background is None and plan_for(model).explainer != "tree":
                raise BadInput(
                    f"{served.uri} has no data profile or drift reference to explain against (only tree ensembles "
                    "explain without one): register it with reference_data= or run 'covex monitor reference'"
                )
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                e = explain(model, data, background=background)
        except BadInput:
            raise
        except InvalidInput as exc:
            raise BadInput(str(exc)) from None
        return {
            "model": served.name,
            "version": served.version,
            "explainer": e.explainer,
            "output": e.output,
            "features": e.features,
            "base_values": e.base_values.tolist(),
            "outputs": e.outputs.tolist(),
            "contributions": e.contributions.tolist(),
            "classes": None if e.classes is None else [str(c) for c in e.classes],
        }
