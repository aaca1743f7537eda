"""Drift statistics on stored bins: what a check needs without reading the training data again.

A numeric column's reference is its quantile bin edges (at most ``bins`` bins of about equal mass,
the outer two open-ended) with the reference's counts per bin, and its minimum and maximum; a
categorical column's is its category counts. Current data is bucketised on the same edges
(``np.searchsorted`` + ``np.bincount``), so counts from chunks, files or Spark partitions add up
(``merge``), and every statistic below is computed from two count vectors:

- PSI (population stability index), the usual reading: < 0.1 stable, 0.1-0.25 moderate, >= 0.25 shifted;
- Jensen-Shannon distance (base 2: 0 identical, 1 disjoint);
- Kolmogorov-Smirnov on the binned distribution functions (a lower bound of the exact statistic,
  equal to it when every distinct value has its own bin), with its asymptotic p-value; at large
  sample sizes the p-value is tiny for shifts too small to matter, so thresholds read the statistic;
- Wasserstein distance, integrating the difference of the distribution functions over the bins
  (exact when the values sit on the bin edges; the outer bins end at the reference's min and max,
  widened to the current data's);
- chi-squared test of the two category count vectors (categorical columns).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

# Proportions are clipped here before PSI's logarithm: an empty bin on one side would make it infinite.
PSI_FLOOR = 1e-4
DEFAULT_BINS = 10
SEARCH_ABOVE = 64  # edges: beyond this many, bucketise by binary search


@dataclass(frozen=True)
class NumericReference:
    """Bin edges (interior, ascending), the reference's counts per bin (``len(edges) + 1``), min and max."""

    edges: tuple[float, ...]
    counts: tuple[int, ...]
    low: float
    high: float

    @classmethod
    def from_values(cls, values: Any, bins: int = DEFAULT_BINS) -> NumericReference:
        """Quantile bins of the finite ``values`` (at most ``bins``; fewer where values repeat)."""
        import numpy as np

        array = _finite(values)
        if array.size == 0:
            raise ValueError("no finite values to make a reference of")
        quantiles = np.quantile(array, np.linspace(0, 1, bins + 1)[1:-1])
        low = float(array.min())
        edges = tuple(float(e) for e in np.unique(quantiles) if e > low)  # an edge at the minimum: an empty bin
        if not edges:  # one value only: a bin of its own, so that any other value is seen to be elsewhere
            above = float(np.nextafter(low, np.inf))
            edges = (low, above) if np.isfinite(above) else (low,)
        return cls(edges, tuple(bucketise(array, edges)), low, float(array.max()))

    def current(self, values: Any) -> list[int]:
        """Counts of the finite ``values`` on this reference's bins."""
        return bucketise(_finite(values), self.edges)


def _finite(values: Any) -> Any:
    import numpy as np

    array = np.asarray(values, dtype=float).ravel()
    return array[np.isfinite(array)]


def bucketise(values: Any, edges: Sequence[float]) -> list[int]:
    """Counts of the (non-NaN) ``values`` per bin: (-inf, e0), [e0, e1), ..., [e_last, inf).

    A value's bin is the number of edges at or below it. With the few edges a reference has, adding
    up one comparison per edge is several times faster than ``np.searchsorted``'s binary search
    (each comparison is one branch-free pass over the values); it counts exactly the same.
    """
    import numpy as np

    array = np.asarray(values, dtype=float)
    if len(edges) > SEARCH_ABOVE:
        index = np.searchsorted(np.asarray(edges, dtype=float), array, side="right")
    else:
        index = np.zeros(array.shape, dtype=np.uint8)
        for edge in edges:
            index += array >= edge
    return [int(c) for c in np.bincount(index.ravel(), minlength=len(edges) + 1)]


def category_counts(values: Iterable[Any]) -> dict[str, int]:
    """Counts per category (as text), missing values left out.

    Counted on the values as they are (pandas' hash table, no text made per row), then named as text:
    ``1`` and ``"1"`` are one category, as they are once written to a file and read back.
    """
    import pandas as pd

    series = values if isinstance(values, pd.Series) else pd.Series(list(values), dtype=object)
    out: dict[str, int] = {}
    for key, n in series.value_counts(dropna=True).items():
        name = storable(str(key))
        out[name] = out.get(name, 0) + int(n)
    return out


MAX_NAME = 200


def storable(text: str) -> str:
    """Text every database stores and every reader shows: NUL and lone surrogates escaped, at most 200 characters.

    Category values and column names are data: a check records them whatever they hold.
    """
    if "\x00" in text:
        text = text.replace("\x00", "\\x00")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        text = text.encode("utf-8", "backslashreplace").decode("utf-8")
    return text if len(text) <= MAX_NAME else text[: MAX_NAME - 1] + "…"


def merge(*counts: Sequence[int]) -> list[int]:
    """Counts of chunks added bin by bin."""
    return [sum(column) for column in zip(*counts, strict=True)]


def aligned(reference: Mapping[str, int], current: Mapping[str, int]) -> tuple[list[str], list[int], list[int]]:
    """Both category count vectors over the union of their categories (new ones count 0 in the reference)."""
    names = sorted(set(reference) | set(current))
    return names, [reference.get(n, 0) for n in names], [current.get(n, 0) for n in names]


def _shares(counts: Sequence[int]) -> Any:
    import numpy as np

    array = np.asarray(counts, dtype=float)
    total = array.sum()
    if total <= 0:
        raise ValueError("no values to compare")
    return array / total


def psi(reference: Sequence[int], current: Sequence[int]) -> float:
    """Population stability index of two count vectors over the same bins."""
    import numpy as np

    p = np.clip(_shares(reference), PSI_FLOOR, None)
    q = np.clip(_shares(current), PSI_FLOOR, None)
    return float(np.sum((q - p) * np.log(q / p)))


def js_distance(reference: Sequence[int], current: Sequence[int]) -> float:
    """Jensen-Shannon distance (base 2) of two count vectors over the same bins."""
    from scipy.spatial.distance import jensenshannon

    return float(jensenshannon(_shares(reference), _shares(current), base=2))


@dataclass(frozen=True)
class KSResult:
    statistic: float
    p_value: float


def ks_binned(reference: Sequence[int], current: Sequence[int]) -> KSResult:
    """Two-sample Kolmogorov-Smirnov statistic at the bin edges, with its asymptotic p-value."""
    import numpy as np
    from scipy.stats import kstwo

    n, m = int(np.sum(reference)), int(np.sum(current))
    statistic = float(np.max(np.abs(np.cumsum(_shares(reference)) - np.cumsum(_shares(current)))))
    effective = max(1, round(n * m / (n + m)))
    return KSResult(statistic, float(kstwo.sf(statistic, effective)))


def wasserstein_binned(ref: NumericReference, current: Sequence[int], low: float, high: float) -> float:
    """Wasserstein-1 distance of the binned distributions; ``low``/``high``: the current data's min and max."""
    import numpy as np

    bounds = np.asarray([min(ref.low, low), *ref.edges, max(ref.high, high)], dtype=float)
    # From the lower bound to the first edge the distribution functions hold bin 0's share, from edge i
    # to edge i+1 the shares of bins 0..i+1; past the last edge both are 1.
    gap = np.abs(np.cumsum(_shares(ref.counts)) - np.cumsum(_shares(current)))[:-1]
    return float(np.sum(gap * np.diff(bounds)[:-1]))


@dataclass(frozen=True)
class ChiSquaredResult:
    statistic: float
    p_value: float
    categories: list[str] = field(default_factory=list)


def chi_squared(reference: Mapping[str, int], current: Mapping[str, int]) -> ChiSquaredResult:
    """Chi-squared test of independence of the two category count vectors (categories in neither dropped)."""
    import numpy as np
    from scipy.stats import chi2_contingency

    names, ref, cur = aligned(reference, current)
    table = np.asarray([ref, cur], dtype=float)
    keep = table.sum(axis=0) > 0
    if keep.sum() < 2:
        return ChiSquaredResult(0.0, 1.0, [n for n, k in zip(names, keep, strict=True) if k])
    result = chi2_contingency(table[:, keep], correction=False)
    return ChiSquaredResult(
        float(result.statistic), float(result.pvalue), [n for n, k in zip(names, keep, strict=True) if k]
    )
