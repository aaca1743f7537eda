"""Models: create, get, rename, describe, tag, delete, list — on every backend and database."""

from __future__ import annotations

import pytest

import covex


def test_create_and_get(client: covex.Client) -> None:
    created = client.create_model("churn", description="Churn classifier", tags={"team": "crm"})
    got = client.get_model("churn")
    assert created == got
    assert ("churn", "Churn classifier", {"team": "crm"}) == (got.name, got.description, got.tags)
    assert got.latest_version is None
    assert "tester" == got.created_by


def test_namespaced_name(client: covex.Client, tree) -> None:
    client.create_model("team-a/churn.v2")
    client.create_version("team-a/churn.v2", tree())
    assert 1 == client.get_version("models:/team-a/churn.v2/1").version
    assert "team-a/churn.v2" == client.get_model("team-a/churn.v2").name


def test_duplicate_is_already_exists(client: covex.Client) -> None:
    client.create_model("churn")
    with pytest.raises(covex.AlreadyExists, match="churn"):
        client.create_model("churn")


@pytest.mark.parametrize(
    "bad",
    ["", "x" * 257, "a..b", "a/b/c", "tab\tname", "new\nline", "/lead", "-dash", "a/", "sp ace"],
)
def test_invalid_names_name_the_field(client: covex.Client, bad: str) -> None:
    with pytest.raises(covex.InvalidInput, match="'name'"):
        client.create_model(bad)
    assert [] == client.search_models().items


def test_name_of_256_characters_is_fine(client: covex.Client) -> None:
    assert 256 == len(client.create_model("m" * 256).name)


def test_unknown_model_is_not_found(client: covex.Client) -> None:
    with pytest.raises(covex.NotFound, match="nope"):
        client.get_model("nope")
    with pytest.raises(LookupError):
        client.delete_model("nope")


def test_rename_keeps_versions_and_aliases(client: covex.Client, tree) -> None:
    client.create_model("old")
    client.create_version("old", tree())
    client.set_alias("old", "champion", 1)
    renamed = client.rename_model("old", "new")
    assert ("new", {"champion": 1}) == (renamed.name, renamed.aliases)
    assert 1 == client.get_version("models:/new@champion").version
    with pytest.raises(covex.NotFound):
        client.get_model("old")


def test_rename_onto_existing_name_conflicts(client: covex.Client) -> None:
    client.create_model("a")
    client.create_model("b")
    with pytest.raises(covex.AlreadyExists):
        client.rename_model("a", "b")
    with pytest.raises(covex.InvalidInput, match="'new_name'"):
        client.rename_model("a", "bad..name")


def test_update_description_and_tags(client: covex.Client) -> None:
    client.create_model("churn", tags={"a": "1"})
    assert "new" == client.update_model("churn", description="new").description
    assert {"a": "1", "b": "2"} == client.set_model_tag("churn", "b", "2").tags
    assert {"a": "9", "b": "2"} == client.set_model_tag("churn", "a", "9").tags
    assert {"b": "2"} == client.delete_model_tag("churn", "a").tags
    with pytest.raises(covex.NotFound):
        client.delete_model_tag("churn", "a")


def test_delete_model_removes_versions(client: covex.Client, tree) -> None:
    client.create_model("churn")
    client.create_version("churn", tree())
    client.delete_model("churn")
    with pytest.raises(covex.NotFound):
        client.get_version("churn", 1)
    assert [] == client.search_versions().items
    client.create_model("churn")
    assert 1 == client.create_version("churn", tree()).version


def test_list_paginates_with_tokens(client: covex.Client) -> None:
    names = [f"m{i:02d}" for i in range(25)]
    for n in names:
        client.create_model(n)
    seen, token = [], None
    while True:
        page = client.search_models(max_results=10, page_token=token)
        seen += [m.name for m in page]
        token = page.next_page_token
        if token is None:
            break
    assert names == seen
    with pytest.raises(covex.InvalidInput, match="page_token"):
        client.search_models(page_token="garbage!")
    with pytest.raises(covex.InvalidInput, match="max_results"):
        client.search_models(max_results=0)
