"""Drift statistics on stored bins, checked by hand and against scipy's exact versions."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from covex.monitoring.drift import (
    NumericReference,
    bucketise,
    category_counts,
    chi_squared,
    js_distance,
    ks_binned,
    merge,
    psi,
    wasserstein_binned,
)


def test_psi_by_hand() -> None:
    # p = (0.5, 0.5), q = (0.25, 0.75): (0.25 - 0.5) ln(0.5) + (0.75 - 0.5) ln(1.5)
    assert psi([50, 50], [25, 75]) == pytest.approx(-0.25 * math.log(0.5) + 0.25 * math.log(1.5))
    assert 0.0 == psi([10, 20, 30], [1, 2, 3])
    assert psi([100, 0], [50, 50]) > 0.25  # an empty bin is clipped, not infinite


def test_js_distance_by_hand_and_bounds() -> None:
    assert 0.0 == pytest.approx(js_distance([1, 2, 3], [2, 4, 6]))
    assert 1.0 == pytest.approx(js_distance([1, 0], [0, 1]))
    # p = (1, 0), q = (0.5, 0.5): m = (0.75, 0.25); JS divergence in bits, then its square root.
    kl = lambda a, b: sum(x * math.log2(x / y) for x, y in zip(a, b, strict=True) if x > 0)  # noqa: E731
    divergence = 0.5 * kl([1, 0], [0.75, 0.25]) + 0.5 * kl([0.5, 0.5], [0.75, 0.25])
    assert js_distance([2, 0], [1, 1]) == pytest.approx(math.sqrt(divergence))


def integer_samples() -> st.SearchStrategy[list[int]]:
    return st.lists(st.integers(0, 12), min_size=5, max_size=200)


def on_every_value(reference: list[int], current: list[int]) -> NumericReference:
    """Bins with an edge at every distinct value but the smallest: the binned statistics are exact."""
    values = sorted(set(reference) | set(current))
    edges = tuple(float(v) for v in values[1:])
    return NumericReference(edges, tuple(bucketise(reference, edges)), float(min(reference)), float(max(reference)))


@settings(max_examples=200, deadline=None)
@given(integer_samples(), integer_samples())
def test_ks_and_wasserstein_equal_scipys_when_every_value_has_its_bin(reference: list[int], current: list[int]) -> None:
    ref = on_every_value(reference, current)
    cur = ref.current(current)
    ks = ks_binned(ref.counts, cur)
    assert ks.statistic == pytest.approx(stats.ks_2samp(reference, current, method="asymp").statistic, abs=1e-12)
    low, high = float(min(current)), float(max(current))
    assert wasserstein_binned(ref, cur, low, high) == pytest.approx(
        stats.wasserstein_distance(reference, current), abs=1e-9
    )


def test_ks_p_value_is_small_for_a_shift_and_large_for_the_same_distribution() -> None:
    rng = np.random.default_rng(0)
    base = rng.normal(size=20_000)
    ref = NumericReference.from_values(base, bins=20)
    same = ks_binned(ref.counts, ref.current(rng.normal(size=20_000)))
    shifted = ks_binned(ref.counts, ref.current(rng.normal(0.2, 1, size=20_000)))
    assert same.p_value > 0.01 and shifted.p_value < 1e-10
    assert shifted.statistic == pytest.approx(
        stats.ks_2samp(base, rng.normal(0.2, 1, size=20_000), method="asymp").statistic, abs=0.02
    )


def test_quantile_bins_hold_about_equal_mass_and_chunks_merge() -> None:
    rng = np.random.default_rng(1)
    values = rng.exponential(size=10_000)
    ref = NumericReference.from_values(values, bins=10)
    assert 9 == len(ref.edges) and all(900 <= c <= 1100 for c in ref.counts)
    assert sum(ref.counts) == 10_000 and (ref.low, ref.high) == (values.min(), values.max())
    chunks = np.array_split(values, 7)
    assert list(ref.counts) == merge(*(ref.current(c) for c in chunks))
    assert psi(ref.counts, ref.current(values)) == 0.0
    assert 0.1 < psi(ref.counts, ref.current(values * 1.5)) < psi(ref.counts, ref.current(values * 3))


def test_repeated_values_give_fewer_bins_and_non_finite_values_are_left_out() -> None:
    ref = NumericReference.from_values([1.0] * 50 + [2.0] * 50 + [math.nan, math.inf])
    assert len(ref.edges) <= 2 and sum(ref.counts) == 100
    assert 3 == ref.current([5.0, 7.0, math.nan, 9.0])[-1]
    with pytest.raises(ValueError, match="no finite values"):
        NumericReference.from_values([math.nan])


def test_chi_squared_equals_scipys_and_new_categories_count() -> None:
    reference = category_counts(["a"] * 50 + ["b"] * 30 + [None] * 5)
    current = category_counts(["a"] * 20 + ["b"] * 40 + ["c"] * 10)
    assert {"a": 50, "b": 30} == reference
    result = chi_squared(reference, current)
    expected = stats.chi2_contingency([[50, 30, 0], [20, 40, 10]], correction=False)
    assert (result.statistic, result.p_value) == pytest.approx((expected.statistic, expected.pvalue))
    assert ["a", "b", "c"] == result.categories
    assert 1.0 == chi_squared({"a": 5}, {"a": 9}).p_value  # one category: nothing to test


def test_a_constant_reference_has_a_bin_of_its_own() -> None:
    ref = NumericReference.from_values([5.0] * 100)
    assert (0, 100, 0) == ref.counts
    assert psi(ref.counts, ref.current([500.0] * 100)) > 1
    assert psi(ref.counts, ref.current([5.0] * 100)) == 0.0
