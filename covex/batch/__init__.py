"""Batch scoring: run the version a ``models:/`` URI resolves to over a DataFrame or a large file.

    import covex.batch

    scored = covex.batch.score(df, "models:/churn@champion")        # pandas, in memory
    result = covex.batch.score_file("models:/churn@champion", "data.parquet", "scored.parquet")

Files are streamed in chunks (memory stays bounded whatever their size) and the output appears
only once complete. Everything here reads the registry through ``covex.Client``, so it works the
same against an embedded registry and a server; Spark lives in ``covex.spark``. Needs the ``ml``
extra.
"""

from covex.batch.frames import score
from covex.batch.job import BatchResult, score_file
from covex.batch.model import MODEL_COLUMN, VERSION_COLUMN

__all__ = ["MODEL_COLUMN", "VERSION_COLUMN", "BatchResult", "score", "score_file"]
