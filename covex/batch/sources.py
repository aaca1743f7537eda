"""Inputs of a batch job: a Parquet or CSV file, a folder of them, or a remote URL, read in chunks.

Files are read one after the other, each in record batches (Parquet row groups, CSV blocks) that
are regrouped into chunks of at most ``chunk_rows`` rows, so memory holds about two chunks
whatever the input's size.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from covex.domain.errors import InvalidInput

FORMATS = {".parquet": "parquet", ".pq": "parquet", ".csv": "csv"}
# Signature types (MLflow's DataType names) as Arrow types: CSV columns are read as what the model expects.
ARROW_TYPES = {
    "boolean": "bool_",
    "integer": "int32",
    "long": "int64",
    "float": "float32",
    "double": "float64",
    "string": "string",
}


def _format_of(name: str) -> str | None:
    lowered = name.lower()
    return next((fmt for suffix, fmt in FORMATS.items() if lowered.endswith(suffix)), None)


def _hidden(name: str) -> bool:
    return name.startswith((".", "_"))


@dataclass
class Source:
    """An opened input: its files, their format and the columns of the first one."""

    location: str
    format: str
    paths: list[str]
    filesystem: Any
    column_types: Mapping[str, str]

    def _file_format(self) -> Any:
        import pyarrow as pa  # type: ignore[import-untyped]
        import pyarrow.csv as pacsv  # type: ignore[import-untyped]
        import pyarrow.dataset as ds  # type: ignore[import-untyped]

        if self.format == "parquet":
            return ds.ParquetFileFormat()
        types = {name: getattr(pa, kind)() for name, kind in self.column_types.items()}
        return ds.CsvFileFormat(convert_options=pacsv.ConvertOptions(column_types=types))

    def _fragment(self, path: str) -> Any:
        import pyarrow as pa
        import pyarrow.fs as pafs  # type: ignore[import-untyped]

        filesystem = self.filesystem or pafs.LocalFileSystem()
        try:
            return self._file_format().make_fragment(path, filesystem=filesystem)
        except (pa.ArrowException, OSError) as exc:
            raise unreadable(path, exc) from None

    @property
    def schema(self) -> Any:
        """The Arrow schema of the first file (the others must have its columns)."""
        import pyarrow as pa

        try:
            return self._fragment(self.paths[0]).physical_schema
        except (pa.ArrowException, OSError) as exc:
            raise unreadable(self.paths[0], exc, self._header(self.paths[0])) from None

    def _header(self, path: str) -> list[str] | None:
        """A CSV file's column names, read without types (to name the column a conversion failed in)."""
        if self.format != "csv":
            return None
        import pyarrow as pa

        try:
            return list(Source(self.location, "csv", [path], self.filesystem, {})._fragment(path).physical_schema.names)
        except (InvalidInput, pa.ArrowException, OSError):
            return None

    @property
    def columns(self) -> list[str]:
        return list(self.schema.names)

    def count_rows(self) -> int | None:
        """The number of rows when the files say so cheaply (Parquet footers), else None."""
        if self.format != "parquet":
            return None
        try:
            return sum(int(self._fragment(p).count_rows()) for p in self.paths)
        except InvalidInput:
            return None

    def _batches(self, path: str, wanted: Any, chunk_rows: int) -> Iterator[Any]:
        """One file's record batches of the ``wanted`` columns, read as they are asked for.

        Arrow's dataset scanner reads row groups ahead of a slower consumer (such as a model), so its
        memory would grow with the file; these readers read one batch at a time, and Parquet without
        pre-buffering (which would read ahead every remaining row group's column chunks).
        """
        import pyarrow as pa
        import pyarrow.csv as pacsv
        import pyarrow.fs as pafs
        import pyarrow.parquet as pq  # type: ignore[import-untyped]

        filesystem = self.filesystem or pafs.LocalFileSystem()
        with filesystem.open_input_file(path) as f:
            if self.format == "parquet":
                reader = pq.ParquetFile(f, pre_buffer=False)
                for batch in reader.iter_batches(batch_size=chunk_rows, columns=wanted.names):
                    yield _conform(batch, wanted)
                return
            types = {name: getattr(pa, kind)() for name, kind in self.column_types.items() if name in wanted.names}
            convert = pacsv.ConvertOptions(column_types=types, include_columns=wanted.names)
            stream = pacsv.open_csv(f, convert_options=convert)
            for batch in stream:
                yield _conform(batch, wanted)

    def chunks(self, columns: list[str], chunk_rows: int) -> Iterator[Any]:
        """Tables of ``columns`` of at most ``chunk_rows`` rows, in file order; a bad file is named."""
        import pyarrow as pa

        schema = self.schema
        missing = [c for c in columns if c not in schema.names]
        if missing:
            raise InvalidInput(f"column {missing[0]!r} is not in {self.paths[0]}")
        wanted = pa.schema([schema.field(c) for c in columns])
        pending: list[Any] = []
        held = 0
        for path in self.paths:
            batches = self._batches(path, wanted, chunk_rows)
            while True:
                try:
                    batch = next(batches)
                except StopIteration:
                    break
                except (pa.ArrowException, OSError, ValueError, KeyError) as exc:
                    raise unreadable(path, exc, schema.names) from None
                if batch.num_rows == 0:
                    continue
                pending.append(batch)
                held += batch.num_rows
                while held >= chunk_rows:
                    table = pa.Table.from_batches(pending, schema=wanted)
                    yield table.slice(0, chunk_rows)
                    rest = table.slice(chunk_rows)
                    pending, held = rest.to_batches(), rest.num_rows
        if held:
            yield pa.Table.from_batches(pending, schema=wanted)


def _conform(batch: Any, wanted: Any) -> Any:
    """``batch`` with the columns and types of the first file (a later file's column order or types may differ)."""
    missing = [name for name in wanted.names if name not in batch.schema.names]
    if missing:
        raise InvalidInput(f"column {missing[0]!r} is missing")
    batch = batch.select(wanted.names)
    return batch if batch.schema == wanted else batch.cast(wanted)


def unreadable(path: str, exc: BaseException, names: list[str] | None = None) -> InvalidInput:
    """One line saying which input file cannot be read and why (Arrow's reason: for CSV, the row and column)."""
    text = str(exc).strip()
    reason = getattr(exc, "strerror", None) or (text.splitlines()[0] if text else type(exc).__name__)
    reason = re.sub(r"^Could not open \w+ input source '[^']*': (Invalid: )?", "", reason)
    if names:
        # Arrow counts CSV columns from 0; a user reads names (and rows from 1, the header being row 1).
        reason = re.sub(
            r"CSV column #(\d+)",
            lambda m: f"column {names[int(m[1])]!r}" if int(m[1]) < len(names) else m[0],
            reason,
        )
    return InvalidInput(f"input file {path!r} cannot be read: {reason}")


def open_source(location: str, column_types: Mapping[str, str] | None = None) -> Source:
    """Find the files of ``location`` (a file, a folder, or a URL fsspec knows) and their format.

    ``column_types`` (column -> MLflow type name) fixes the types of CSV columns instead of inferring them.
    """
    types = {k: ARROW_TYPES[v] for k, v in (column_types or {}).items() if v in ARROW_TYPES}
    if "://" in location and not location.startswith("file://"):
        return _open_remote(location, types)
    path = Path(location.removeprefix("file://")).expanduser()
    if not path.exists():
        raise InvalidInput(f"input {location!r} does not exist")
    if path.is_dir():
        found = sorted(
            str(p)
            for p in path.rglob("*")
            if p.is_file() and not any(_hidden(part) for part in p.relative_to(path).parts)
        )
        return _source(location, [p for p in found if _format_of(p)], None, types)
    return _source(location, [str(path)], None, types)


def _open_remote(location: str, types: dict[str, str]) -> Source:
    from fsspec.core import url_to_fs

    from covex.extras import needs_extra

    with needs_extra(f"reading {location!r}"):
        fs, root = url_to_fs(location)
    try:
        if fs.isdir(root):
            listed = sorted(p for p in fs.find(root) if not any(_hidden(part) for part in p[len(root) :].split("/")))
            paths = [p for p in listed if _format_of(p)]
        elif fs.exists(root):
            paths = [root]
        else:
            raise InvalidInput(f"input {location!r} does not exist")
    except OSError as exc:
        raise InvalidInput(f"input {location!r} cannot be listed: {exc}") from None
    import pyarrow.fs as pafs

    return _source(location, paths, pafs.PyFileSystem(pafs.FSSpecHandler(fs)), types)


def _source(location: str, paths: list[str], filesystem: Any, types: dict[str, str]) -> Source:
    if not paths:
        raise InvalidInput(f"input {location!r} holds no .parquet or .csv files")
    formats = {_format_of(p) for p in paths}
    if None in formats:
        raise InvalidInput(f"input {location!r} is neither .parquet nor .csv; name a file with one of those endings")
    if len(formats) > 1:
        raise InvalidInput(f"input {location!r} mixes Parquet and CSV files; give a folder of one kind")
    return Source(location, formats.pop() or "", paths, filesystem, types)
