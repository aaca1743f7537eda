"""LIKE and ILIKE of tracking searches: the same answers as a brute-force matcher, in linear time."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from covex.domain.errors import InvalidInput
from covex.domain.filters import MAX_FILTER_LENGTH
from covex.domain.tracking import like, matches, parse_filter


def _reference(value: str, pattern: str) -> bool:
    """SQL LIKE by dynamic programming over (characters of value read, characters of pattern read)."""
    reach = [True] + [False] * len(value)  # reach[i]: value[:i] matches the pattern read so far
    for c in pattern:
        if c == "%":
            reach = [any(reach[: i + 1]) for i in range(len(value) + 1)]
        else:
            reach = [False] + [reach[i] and (c == "_" or c == value[i]) for i in range(len(value))]
    return reach[-1]


@settings(max_examples=600, deadline=None)
@given(st.text("ab", max_size=12), st.text("ab%_", max_size=10))
def test_like_answers_as_the_brute_force_matcher(value: str, pattern: str) -> None:
    assert like(value, pattern) is _reference(value, pattern)


@settings(max_examples=300, deadline=None)
@given(st.text("aAb\n\\", max_size=10), st.text("aAb%_\n\\", max_size=8))
def test_ilike_casefolds_both_and_newlines_and_backslashes_are_plain(value: str, pattern: str) -> None:
    assert like(value, pattern) is _reference(value, pattern)
    assert like(value, pattern, fold=True) is _reference(value.casefold(), pattern.casefold())


def test_examples() -> None:
    assert like("churn-model", "churn%") and like("churn-model", "%model") and like("churn-model", "c_urn%m_del")
    assert not like("churn-model", "churn") and not like("ab", "a_b") and not like("abc", "%b")
    assert like("a%b", "a\\%b") is False and like("a\\xb", "a\\%b")  # no escape character: \ is plain
    assert like("CHURN", "ch%", fold=True) and not like("CHURN", "ch%")
    assert like("aXbXc", "%b%") and like("", "%") and like("", "") and not like("", "_")


def test_the_catastrophic_patterns_are_linear() -> None:
    """Each took seconds to hours as a backtracking regex; now milliseconds (no timing asserted: a hang shows)."""
    value = "a" * 10_000
    assert not like(value, "%%%%%%%%b")
    assert not like(value, "%a%a%a%a%a%a%a%a%b")
    assert not like(value, "%" + "_" * 50 + "%" + "a_" * 2000 + "b%")
    assert not like(value, "%" + "a" * 3000 + "_b")
    assert like(value, "%" + "a_" * 4000 + "%", fold=True)


def test_matches_uses_like_for_attributes_and_tags() -> None:
    fields = {"attributes": {"run_name": "a" * 250}, "tags": {"t": "x" * 8000}}
    assert not matches(parse_filter("attributes.run_name LIKE '%%%%%b'"), fields)
    assert matches(parse_filter("tags.t ILIKE '%X%' and run_name like 'a%'"), fields)


def test_a_long_filter_is_refused_and_not_echoed() -> None:
    with pytest.raises(InvalidInput, match="limit is 10000") as long:
        parse_filter("run_name = '" + "x" * MAX_FILTER_LENGTH + "'")
    assert len(long.value.message) < 200
    with pytest.raises(InvalidInput) as bad:
        parse_filter("run_name ~ '" + "y" * 5000 + "'")
    assert len(bad.value.message) < 300 and "5013 characters" in bad.value.message


def test_and_splits_clauses_among_many_spaces_quickly() -> None:
    assert len(parse_filter("a = 1   AND\tb = 2 and c='x'")) == 3
    with pytest.raises(InvalidInput):
        parse_filter("a" + " " * 9_990 + "b")
