"""The rows an explanation is about: the model's columns in its signature's order, checked, sampled, and as numbers.

SHAP masks a feature by putting another row's value in its place, so it works on a matrix of
numbers. ``Codec`` turns a frame into one (text, categorical and boolean columns as category codes,
missing values as NaN) and a masked matrix back into the frame the model takes, with the column
types it had.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from covex.domain.errors import InvalidInput

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

    from covex.batch.model import ScoringModel

# Rows of background data SHAP averages over: enough for stable base values, few enough that every
# masked evaluation (one per background row) stays cheap.
BACKGROUND_ROWS = 100
# Signature types whose columns must hold numbers (MLflow type names).
NUMERIC_TYPES = frozenset({"double", "float", "long", "integer"})


def feature_frame(model: ScoringModel, data: Any, where: str, columns: list[str] | None = None) -> pd.DataFrame:
    """The columns of ``data`` the model takes, in its signature's order (others are ignored).

    ``columns`` insists on exactly those (the background data must have the explained data's).
    Raises ``InvalidInput`` naming a missing column, a column that should hold numbers and does
    not, or ``data`` with no rows.
    """
    import pandas as pd

    if not isinstance(data, pd.DataFrame):
        raise InvalidInput(f"{where} must be a pandas DataFrame, got {type(data).__name__}")
    frame = data.rename(columns=str) if not all(isinstance(c, str) for c in data.columns) else data
    twice = frame.columns[frame.columns.duplicated()]
    if len(twice):
        raise InvalidInput(f"{where} has two columns named {str(twice[0])!r}")
    wanted = model.feature_columns(list(frame.columns), columns, where)
    if not wanted:
        raise InvalidInput(f"{where} has no columns for the model")
    if len(frame) == 0:
        raise InvalidInput(f"{where} has no rows to explain")
    frame = frame[wanted]
    types = model.input_types
    converted = {}
    for name in wanted:
        if types.get(name) in NUMERIC_TYPES:
            column = frame[name]
            numbers = _numbers(column, name, types[name], where)
            if numbers is not column:
                converted[name] = numbers
    return frame.assign(**converted) if converted else frame


def _numbers(column: pd.Series, name: str, kind: str, where: str) -> pd.Series:
    """``column`` as numbers (text such as ``"3.5"`` read as numbers); ``InvalidInput`` naming a value that is not."""
    import pandas as pd
    from pandas.api.types import is_bool_dtype, is_numeric_dtype

    if is_numeric_dtype(column.dtype) and not is_bool_dtype(column.dtype):
        return column
    numbers = pd.to_numeric(column, errors="coerce")
    bad = numbers.isna() & column.notna()
    if bad.any():
        value = column[bad].iloc[0]
        raise InvalidInput(f"column {name!r} of {where} should hold numbers (the signature says {kind}), not {value!r}")
    return numbers


def sample(frame: pd.DataFrame, rows: int | None, seed: int) -> pd.DataFrame:
    """``rows`` rows of ``frame`` chosen at random with ``seed`` (the same every time), in their original order."""
    import numpy as np

    if rows is None:
        return frame
    if isinstance(rows, bool) or not isinstance(rows, int | np.integer) or rows < 1:
        raise InvalidInput(f"'rows' must be a positive whole number, got {rows!r}")
    if rows >= len(frame):
        return frame
    chosen = np.sort(np.random.default_rng(seed).choice(len(frame), size=int(rows), replace=False))
    return frame.iloc[chosen]


def background_frame(
    model: ScoringModel, data: pd.DataFrame, background: Any, seed: int, limit: int = BACKGROUND_ROWS
) -> pd.DataFrame:
    """The rows SHAP compares with: ``background`` (such as reference data), else ``data``; at most ``limit``."""
    if background is None:
        return sample(data, limit, seed)
    frame = feature_frame(model, background, "the background data", list(data.columns))
    return sample(frame, limit, seed)


def _is_number_column(dtype: Any) -> bool:
    from pandas.api.types import is_bool_dtype, is_numeric_dtype

    return bool(is_numeric_dtype(dtype)) and not is_bool_dtype(dtype)


class Codec:
    """Frames with these columns as float matrices SHAP can mask, and masked matrices back as frames.

    Number columns are their values; every other column (text, categorical, boolean, dates) is the
    position of its value among the values seen in ``frames``, and a missing value is NaN either way.
    Masking only moves values between rows, so every code decodes to a value the column held.
    """

    def __init__(self, frames: Sequence[pd.DataFrame]) -> None:
        import pandas as pd

        first = frames[0]
        self.columns = list(first.columns)
        self.dtypes = dict(first.dtypes)
        self.categories: dict[str, pd.Index] = {}
        for name in self.columns:
            if not _is_number_column(self.dtypes[name]):
                values = pd.concat([f[name].astype(object) for f in frames], ignore_index=True).dropna()
                self.categories[name] = pd.Index(pd.unique(values.to_numpy(dtype=object)), dtype=object)

    def encode(self, frame: pd.DataFrame) -> np.ndarray:
        """``frame`` as a rows by columns float matrix."""
        import numpy as np
        import pandas as pd

        out = np.empty((len(frame), len(self.columns)), dtype=np.float64)
        for j, name in enumerate(self.columns):
            column = frame[name]
            if name in self.categories:
                codes = pd.Categorical(column.astype(object), categories=self.categories[name]).codes
                out[:, j] = np.where(codes < 0, np.nan, codes)
            else:
                out[:, j] = column.to_numpy(dtype=np.float64, na_value=np.nan)
        return out

    def decode(self, matrix: np.ndarray) -> pd.DataFrame:
        """A matrix of encoded rows as the frame the model takes, each column with its original type where it fits."""
        import numpy as np
        import pandas as pd

        columns: dict[str, Any] = {}
        for j, name in enumerate(self.columns):
            values = matrix[:, j]
            missing = np.isnan(values)
            if name in self.categories:
                categories = self.categories[name].to_numpy(dtype=object)
                decoded = np.empty(len(values), dtype=object)
                decoded[~missing] = categories[values[~missing].astype(np.int64)] if len(categories) else None
                decoded[missing] = None
                column = pd.Series(decoded, dtype=object)
            else:
                column = pd.Series(values)
            columns[name] = _restore(column, self.dtypes[name], bool(missing.any()))
        return pd.DataFrame(columns)


def _restore(column: pd.Series, dtype: Any, missing: bool) -> pd.Series:
    """``column`` as ``dtype`` when it converts as it is (an integer column with a NaN stays float)."""
    import numpy as np

    if column.dtype == dtype or (missing and isinstance(dtype, np.dtype) and dtype.kind in "biu"):
        return column
    try:
        return column.astype(dtype)
    except (TypeError, ValueError):
        return column
