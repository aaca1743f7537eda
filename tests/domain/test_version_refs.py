"""What a version reference may be, said when one is not: numbers, @aliases, configured stages, 'latest'."""

from __future__ import annotations

import pytest

from covex.domain.errors import InvalidInput
from covex.domain.uris import MAX_VERSION, ModelRef, parse_model_uri, version_ref

STAGES = ["None", "Dev", "Test", "Production", "Archived"]


def test_with_the_stages_known_a_word_that_is_none_says_what_fits() -> None:
    with pytest.raises(InvalidInput) as caught:
        version_ref("churn", "abc", STAGES)
    assert caught.value.message == (
        "'version' 'abc' of model 'churn' is not a version: give a version number (3), an alias (@champion), "
        "a stage (None, Dev, Test, Production, Archived) or 'latest'"
    )
    with pytest.raises(InvalidInput, match=r"'abc' is not a version: end it with a version number \(models:/churn/3\)"):
        parse_model_uri("models:/churn/abc", STAGES)


def test_with_the_stages_known_every_good_form_still_resolves() -> None:
    assert ModelRef("churn", "stage", "production") == version_ref("churn", "production", STAGES)
    assert ModelRef("churn", "alias", "champion") == version_ref("churn", "@champion", STAGES)
    assert ModelRef("churn", "latest") == version_ref("churn", "LATEST", STAGES)
    assert ModelRef("churn", "version", "3") == version_ref("churn", "3", STAGES)
    assert ModelRef("team/churn", "stage", "Dev") == parse_model_uri("models:/team/churn/Dev", STAGES)
    assert ModelRef("churn", "stage", "abc") == version_ref("churn", "abc")  # without stages, the service decides


@pytest.mark.parametrize(
    ("name", "hint"),
    [
        ("churn@champion", "did you mean models:/churn@champion?"),
        ("churn/3", "did you mean models:/churn/3?"),
    ],
)
def test_a_uri_without_its_scheme_is_recognised(name: str, hint: str) -> None:
    with pytest.raises(InvalidInput, match=f"'version' is required with model name '{name}'; {hint}"):
        version_ref(name)


def test_a_plain_name_without_a_version_gets_no_uri_hint() -> None:
    with pytest.raises(InvalidInput) as caught:
        version_ref("churn")
    assert "'version' is required with model name 'churn'" == caught.value.message


@pytest.mark.parametrize("number", [0, -1, MAX_VERSION + 1, 10**20])
def test_version_numbers_a_database_cannot_hold_are_refused(number: int) -> None:
    with pytest.raises(InvalidInput, match=f"'version' must be a number from 1 to {MAX_VERSION}, got {number}"):
        version_ref("churn", number)
    if number > 0:
        with pytest.raises(InvalidInput, match="'version' must be a number from 1 to"):
            parse_model_uri(f"models:/churn/{number}")
    assert MAX_VERSION == version_ref("churn", MAX_VERSION).version
