"""Model cards: set_card merges by default, replaces on request, on every backend."""

from __future__ import annotations

import json

import pytest

import covex


@pytest.fixture
def carded(client: covex.Client) -> covex.ModelVersion:
    client.create_model("churn")
    v = client.create_version("churn", source="s3://b/churn/1")
    client.set_card(v.uri, {"overview": "Predicts churn", "owners": ["crm"]})
    return v


def test_set_card_merges_into_the_card(client: covex.Client, carded: covex.ModelVersion) -> None:
    answer = client.set_card(carded.uri, {"limitations": "Not for B2B", "overview": "Predicts churn monthly"})
    expected = {"overview": "Predicts churn monthly", "owners": ["crm"], "limitations": "Not for B2B"}
    assert expected == answer
    assert expected == client.get_card("churn", 1)


def test_a_field_set_to_none_is_removed(client: covex.Client, carded: covex.ModelVersion) -> None:
    assert {"overview": "Predicts churn"} == client.set_card("churn", {"owners": None}, 1)
    assert {"overview": "Predicts churn"} == client.get_card(carded.uri)


def test_replace_makes_the_given_fields_the_whole_card(client: covex.Client, carded: covex.ModelVersion) -> None:
    assert {"limitations": "Not for B2B"} == client.set_card(carded.uri, {"limitations": "Not for B2B"}, replace=True)
    assert {"limitations": "Not for B2B"} == client.get_card(carded.uri)
    assert {} == client.set_card(carded.uri, {}, replace=True)


def test_merging_into_a_version_without_a_card_starts_from_nothing(client: covex.Client) -> None:
    client.create_model("churn")
    v = client.create_version("churn", source="s3://b/churn/1")
    assert {"overview": "o"} == client.set_card(v.uri, {"overview": "o"})


def test_the_audit_trail_holds_the_card_before_and_after(client: covex.Client, carded: covex.ModelVersion) -> None:
    client.set_card(carded.uri, {"limitations": "Not for B2B"})
    last = client.audit.list_records(action="version.card.set", max_results=1).items[0]
    before, after = (json.loads(text or "null") for text in (last.before, last.after))
    assert {"overview": "Predicts churn", "owners": ["crm"]} == before
    assert {"overview": "Predicts churn", "owners": ["crm"], "limitations": "Not for B2B"} == after


@pytest.mark.parametrize(
    ("card", "replace", "says"),
    [
        ({"colour": "red"}, False, "'card' has unknown fields: colour"),
        ({"colour": None}, False, "'card' has unknown fields: colour"),
        ({"overview": 3}, False, "'card.overview' must be text"),
        ([("overview", "x")], False, "'card' must be a mapping of card fields"),
        (None, False, "'card' must be a mapping"),
        ({None: "x"}, False, "'card' has unknown fields: (None|null)"),
        ({"overview": "x"}, "yes", "'replace' must be true or false"),
    ],
)
def test_bad_input_names_the_field_and_changes_nothing(
    client: covex.Client, carded: covex.ModelVersion, card: object, replace: object, says: str
) -> None:
    with pytest.raises(covex.InvalidInput, match=says):
        client.set_card(carded.uri, card, replace=replace)  # type: ignore[arg-type]
    assert {"overview": "Predicts churn", "owners": ["crm"]} == client.get_card(carded.uri)
