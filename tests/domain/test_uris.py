from __future__ import annotations

import pytest

from covex.domain.errors import InvalidInput
from covex.domain.uris import ModelRef, parse_model_uri, version_ref


@pytest.mark.parametrize(
    ("uri", "ref"),
    [
        ("models:/churn/3", ModelRef("churn", "version", "3")),
        ("models:/churn/007", ModelRef("churn", "version", "7")),
        ("models:/churn@champion", ModelRef("churn", "alias", "champion")),
        ("models:/churn/Production", ModelRef("churn", "stage", "Production")),
        ("models:/churn/latest", ModelRef("churn", "latest")),
        ("models:/team/churn/2", ModelRef("team/churn", "version", "2")),
        ("models:/team/churn@best", ModelRef("team/churn", "alias", "best")),
        ("models:///churn/1", ModelRef("churn", "version", "1")),
    ],
)
def test_parse(uri: str, ref: ModelRef) -> None:
    assert ref == parse_model_uri(uri)


@pytest.mark.parametrize(
    "uri", ["churn/1", "models:/", "models:/churn", "models:/churn@", "models:/@a", "models:/a@b/c"]
)
def test_malformed(uri: str) -> None:
    with pytest.raises(InvalidInput, match="'uri'"):
        parse_model_uri(uri)


def test_round_trip() -> None:
    for text in ("models:/a/1", "models:/a@x", "models:/a/Dev", "models:/a/latest"):
        assert text == str(parse_model_uri(text))


def test_version_ref_from_name() -> None:
    assert ModelRef("a", "version", "2") == version_ref("a", 2)
    assert ModelRef("a", "version", "2") == version_ref("a", "2")
    assert ModelRef("a", "alias", "x") == version_ref("a", "@x")
    assert ModelRef("a", "stage", "Dev") == version_ref("a", "Dev")
    assert ModelRef("a", "latest") == version_ref("a", "latest")
    for bad in (None, 0, -1, True):
        with pytest.raises(InvalidInput, match="version"):
            version_ref("a", bad)
    with pytest.raises(InvalidInput, match="not both"):
        version_ref("models:/a/1", 1)
