"""Outputs of a batch job: written under a temporary name beside the final one, renamed when complete.

A job that fails halfway leaves nothing under the final name (and removes its temporary file),
and an existing output is replaced only when asked to.
"""

from __future__ import annotations

import os
import shutil
import uuid
from pathlib import Path
from types import TracebackType
from typing import Any

from covex.domain.errors import AlreadyExists, InvalidInput

# Endings that promise another format than the Parquet a job writes.
OTHER_FORMATS = frozenset({".csv", ".tsv", ".json", ".jsonl", ".txt", ".xlsx", ".avro", ".orc", ".feather"})


class Destination:
    """Where a job's output goes: checked up front, written at ``partial``, moved into place by ``commit``."""

    def __init__(self, output: str | os.PathLike[str], *, overwrite: bool = False) -> None:
        text = os.fspath(output)
        if "://" in text and not text.startswith("file://"):
            raise InvalidInput(f"output {text!r}: batch output must be a local path (a file or folder name)")
        self.path = Path(text.removeprefix("file://")).expanduser().absolute()
        if self.path.suffix.lower() in OTHER_FORMATS:
            raise InvalidInput(
                f"output {text!r}: batch output is Parquet; name it .parquet (or a folder), not {self.path.suffix}"
            )
        self.overwrite = overwrite
        if not self.path.parent.is_dir():
            raise InvalidInput(f"output {text!r}: folder {str(self.path.parent)!r} does not exist")
        if self.path.exists() and not overwrite:
            raise AlreadyExists(f"output {text!r} exists already; pass --overwrite (overwrite=True) to replace it")
        if self.path.exists() and not os.access(self.path.parent, os.W_OK):
            raise InvalidInput(f"output {text!r}: folder {str(self.path.parent)!r} is not writable")
        self.partial = self.path.with_name(f".{self.path.name}.covex-partial-{uuid.uuid4().hex[:12]}")

    def commit(self) -> Path:
        """Move the finished output into place (replacing an old one only with ``overwrite``)."""
        if self.path.exists():
            if not self.overwrite:
                raise AlreadyExists(f"output {str(self.path)!r} appeared while the job ran; the result is not kept")
            if self.path.is_dir() and not self.path.is_symlink():
                # A folder cannot be replaced in one step: move it aside first, so a crash leaves one of the two.
                aside = self.path.with_name(f".{self.path.name}.covex-old-{uuid.uuid4().hex[:12]}")
                self.path.rename(aside)
                self.partial.rename(self.path)
                shutil.rmtree(aside, ignore_errors=True)
                return self.path
        os.replace(self.partial, self.path)
        return self.path

    def discard(self) -> None:
        """Remove whatever was written at the temporary name."""
        if self.partial.is_dir() and not self.partial.is_symlink():
            shutil.rmtree(self.partial, ignore_errors=True)
        else:
            self.partial.unlink(missing_ok=True)


class ParquetSink:
    """One Parquet file written table by table; every table is cast to the first one's schema."""

    def __init__(self, destination: Destination) -> None:
        self.destination = destination
        self._writer: Any = None
        self.schema: Any = None
        self.rows = 0

    def __enter__(self) -> ParquetSink:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        if self._writer is not None:
            self._writer.close()
        if kind is not None:
            self.destination.discard()

    def write(self, table: Any) -> None:
        import pyarrow as pa  # type: ignore[import-untyped]
        import pyarrow.parquet as pq  # type: ignore[import-untyped]

        if self._writer is None:
            self.schema = table.schema
            self._writer = pq.ParquetWriter(str(self.destination.partial), self.schema)
        elif table.schema != self.schema:
            try:
                table = table.cast(self.schema)
            except (pa.ArrowException, ValueError) as exc:
                raise InvalidInput(
                    f"the predictions of rows {self.rows}..{self.rows + table.num_rows - 1} do not have the types "
                    f"of the earlier ones ({exc})"
                ) from None
        self._writer.write_table(table)
        self.rows += table.num_rows

    def commit(self, empty_schema: Any) -> Path:
        """Close the file and move it into place (an input without rows gives a file of ``empty_schema``)."""
        import pyarrow.parquet as pq

        if self._writer is None:
            self._writer = pq.ParquetWriter(str(self.destination.partial), empty_schema)
        self._writer.close()
        self._writer = None
        return self.destination.commit()
