"""Optional packages: which extra of ``covex`` brings each, and an error that says so."""

from __future__ import annotations

import importlib.util
from collections.abc import Iterator
from contextlib import contextmanager

from covex.domain.errors import CovexError

# Top-level modules the extras install (pyproject.toml), by the extra that brings them.
EXTRA_OF: dict[str, str] = {
    "matplotlib": "ml",
    "mlflow": "ml",
    "pandas": "ml",
    "pyarrow": "ml",
    "sklearn": "ml",
    "skops": "ml",
    "s3fs": "s3",
    "prometheus_client": "serving",
    "pyspark": "spark",
    "shap": "explain",
}


class MissingExtra(CovexError, ModuleNotFoundError):
    """A feature needs an optional package that is not installed.

    Still a ``ModuleNotFoundError`` (code catching that keeps working); a ``CovexError`` so
    the command line prints it as one line.
    """

    def __init__(self, message: str, name: str | None = None) -> None:
        super().__init__(message)
        self.name = name


@contextmanager
def needs_extra(what: str) -> Iterator[None]:
    """Turn the import error of a missing optional package inside into one naming the extra to install."""
    try:
        yield
    except MissingExtra:
        raise
    except ModuleNotFoundError as exc:
        top = (exc.name or "").partition(".")[0]
        extra = EXTRA_OF.get(top)
        if extra is None:
            raise
        raise MissingExtra(
            f"{what} needs the '{extra}' extra, and {top} is not installed: pip install 'covex[{extra}]'", top
        ) from exc


def require_extra(what: str, extra: str) -> None:
    """Refuse up front, naming the extra, when a package ``extra`` brings is missing (nothing is imported)."""
    for module, of in EXTRA_OF.items():
        if of != extra:
            continue
        try:
            found = importlib.util.find_spec(module) is not None
        except ValueError:  # sys.modules holds None for it: imports of it are blocked
            found = False
        if not found:
            raise MissingExtra(
                f"{what} needs the '{extra}' extra, and {module} is not installed: pip install 'covex[{extra}]'", module
            )
