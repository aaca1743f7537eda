"""The model a batch job scores with: one version, resolved once, its files verified, loaded once."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from covex.artifacts.manifest import hash_file
from covex.domain.entities import FileEntry, ModelVersion
from covex.domain.errors import ArtifactCorrupted, InvalidInput, InvalidState

if TYPE_CHECKING:
    import pandas as pd

    from covex.client import Client

# Columns every scored row carries besides the predictions: which model and version scored it.
MODEL_COLUMN = "model_name"
VERSION_COLUMN = "model_version"


def verify_files(root: Path, files: list[FileEntry]) -> None:
    """Re-hash every file of a version's local copy; raise ``ArtifactCorrupted`` naming the first that differs."""
    for f in files:
        path = root / f.path
        if not path.is_file():
            raise ArtifactCorrupted(f"{f.path}: missing from the local copy at {root}")
        if hash_file(path) != (f.digest, f.size):
            raise ArtifactCorrupted(f"{f.path}: content does not match its digest {f.digest}")


def resolve(client: Client, uri: str) -> tuple[ModelVersion, list[FileEntry], Path]:
    """Resolve ``uri`` once (an alias that moves later does not change the job) and fetch its verified files."""
    from covex.ml.loading import fetch_model

    version, files = client.get_version_files(uri)
    if version.status != "READY" or not version.manifest_digest:
        raise InvalidState(f"{version.uri} has no uploaded files to score with (status {version.status})")
    # By number from here on: the files fetched are those of the version just resolved.
    return version, files, fetch_model(client, version.uri)


@dataclass
class ScoringModel:
    """A loaded pyfunc model with the version it came from and the input columns its signature names."""

    version: ModelVersion
    pyfunc: Any
    files: list[FileEntry] = field(default_factory=list)
    path: Path | None = None

    @classmethod
    def load(cls, client: Client, uri: str) -> ScoringModel:
        """Resolve, fetch, verify and load ``uri``."""
        from covex.ml.packaging import load_pyfunc

        version, files, path = resolve(client, uri)
        return cls(version, load_pyfunc(path, version.uri), files, path)

    @classmethod
    def from_folder(cls, version: ModelVersion, files: list[FileEntry], path: str | os.PathLike[str]) -> ScoringModel:
        """Verify a copy of the version's files (e.g. shipped to a Spark executor), then load it."""
        from covex.ml.packaging import load_pyfunc

        root = Path(path)
        verify_files(root, files)
        return cls(version, load_pyfunc(root, version.uri), files, root)

    @property
    def input_columns(self) -> list[str] | None:
        """The column names the signature asks for, in its order; None when it names none."""
        schema = self.pyfunc.metadata.get_input_schema()
        if schema is None or not schema.has_input_names():
            return None
        return list(schema.input_names())

    @property
    def input_types(self) -> dict[str, str]:
        """The signature's column types by name (MLflow type names: ``double``, ``long``, ``string``...)."""
        schema = self.pyfunc.metadata.get_input_schema()
        if schema is None or not schema.has_input_names():
            return {}
        return {s.name: getattr(s.type, "name", str(s.type)) for s in schema.inputs}

    @property
    def required_columns(self) -> list[str]:
        """The named input columns the model cannot do without (optional ones may be absent)."""
        schema = self.pyfunc.metadata.get_input_schema()
        if schema is None or not schema.has_input_names():
            return []
        return [s.name for s in schema.inputs if getattr(s, "required", True)]

    def feature_columns(self, available: list[str], columns: list[str] | None, where: str) -> list[str]:
        """The columns to hand the model: ``columns`` if given, else the signature's, else all ``available``.

        Raises ``InvalidInput`` naming the first column the model needs that ``where`` does not have.
        """
        wanted = list(columns) if columns else self.input_columns
        if wanted is None:
            return list(available)
        present = set(available)
        missing = [c for c in wanted if c not in present]
        if missing and not columns:
            missing = [c for c in missing if c in self.required_columns]
            wanted = [c for c in wanted if c in present]
        if missing:
            more = f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""
            raise InvalidInput(
                f"column {missing[0]!r}{more} is not in {where}; it has: {', '.join(available) or 'no columns'}"
            )
        return wanted

    def predict(self, features: pd.DataFrame) -> pd.DataFrame:
        """Predictions for ``features`` as a DataFrame of prediction columns, one row per input row."""
        import warnings

        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                raw = self.pyfunc.predict(features)
        except Exception as exc:  # the model's own error: bad input for it
            from covex.ml.packaging import one_line

            message = one_line(str(exc)) or type(exc).__name__
            raise InvalidInput(f"{self.version.uri} cannot score the input: {message}") from exc
        return prediction_frame(raw, len(features))


def prediction_frame(raw: Any, rows: int) -> pd.DataFrame:
    """Whatever ``predict`` returned (array, Series, DataFrame, list) as a DataFrame with a fresh index.

    One column is named ``prediction``; several are ``prediction_0``, ``prediction_1``, ... unless the
    model named them (a DataFrame's own columns are kept).
    """
    import numpy as np
    import pandas as pd

    if isinstance(raw, pd.DataFrame):
        frame = raw.reset_index(drop=True)
        frame.columns = [str(c) for c in frame.columns]
    elif isinstance(raw, pd.Series):
        frame = pd.DataFrame({"prediction": raw.to_numpy()})
    else:
        values = np.asarray(raw)
        if values.ndim <= 1:
            frame = pd.DataFrame({"prediction": values.reshape(-1)})
        else:
            flat = values.reshape(len(values), -1)
            frame = pd.DataFrame({f"prediction_{i}": flat[:, i] for i in range(flat.shape[1])})
    if len(frame) != rows:
        raise InvalidInput(f"the model returned {len(frame)} predictions for {rows} rows")
    return frame
