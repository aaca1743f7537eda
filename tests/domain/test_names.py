from __future__ import annotations

import pytest

from covex.domain.errors import InvalidInput
from covex.domain.names import validate_alias, validate_artifact_path, validate_model_name


@pytest.mark.parametrize("good", ["churn", "Churn_2.v-1", "team/churn", "a" * 256, "9lives"])
def test_good_model_names(good: str) -> None:
    assert good == validate_model_name(good)


@pytest.mark.parametrize("bad", ["", "a" * 257, "a..b", "a/b/c", "a\x00", "a\x7f", ".hidden", "a/-", "é", None, 3])
def test_bad_model_names(bad: object) -> None:
    with pytest.raises(InvalidInput, match="'name'"):
        validate_model_name(bad)


@pytest.mark.parametrize("bad", ["1", "v2", "V10", "latest", "LATEST", "Production", "dev", "a b", "-x", ""])
def test_bad_aliases(bad: str) -> None:
    with pytest.raises(InvalidInput, match="'alias'"):
        validate_alias(bad, ["None", "Dev", "Production"])


@pytest.mark.parametrize(("path", "normal"), [("a/b.txt", "a/b.txt"), ("./a//b", "a/b"), ("x", "x")])
def test_artifact_paths(path: str, normal: str) -> None:
    assert normal == validate_artifact_path(path)


@pytest.mark.parametrize("bad", ["../x", "a/../../x", "/etc/passwd", "C:/x", "a\\b", ".", "", "a/\x01"])
def test_bad_artifact_paths(bad: str) -> None:
    with pytest.raises(InvalidInput, match="'path'"):
        validate_artifact_path(bad)
