"""``covex whoami|users|groups|tokens|grants``, invoked as a user would (embedded and against a server)."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from tests.conftest import Registry
from tests.support import CliResult

Run = Callable[..., CliResult]


@pytest.fixture(params=["embedded", "http"])
def covex(request: pytest.FixtureRequest, registries) -> Run:
    reg: Registry = registries(request.param, "sqlite")
    reg.reset()
    return reg.cli


def test_help_lists_the_access_commands(covex: Run) -> None:
    out = covex("--help").stdout
    for word in ("admin", "whoami", "users", "groups", "tokens", "grants"):
        assert word in out


def test_users_and_groups(covex: Run) -> None:
    assert 0 == covex("users", "create", "alice").exit_code
    ci = covex("users", "create", "ci", "--service", "--json").json()
    assert ("ci", "service") == (ci["name"], ci["kind"])  # type: ignore[index]
    assert "alice" in covex("users", "list").stdout
    assert 0 == covex("groups", "create", "crm", "-d", "CRM team").exit_code
    assert 0 == covex("groups", "add-member", "crm", "alice").exit_code
    assert ["alice"] == covex("groups", "show", "crm", "--json").json()["members"]  # type: ignore[index]
    assert ["crm"] == covex("users", "show", "alice", "--json").json()["groups"]  # type: ignore[index]
    assert 0 == covex("groups", "remove-member", "crm", "alice").exit_code
    shown = covex("users", "update", "alice", "--admin", "--disable", "--json").json()
    assert (True, True) == (shown["is_admin"], shown["disabled"])  # type: ignore[index]
    assert "updated alice (admin)" == covex("users", "update", "alice", "--enable").stdout.strip()
    assert 0 == covex("users", "delete", "alice", "--yes").exit_code
    assert 0 == covex("groups", "delete", "crm", "--yes").exit_code
    gone = covex("users", "show", "alice")
    assert (3, True) == (gone.exit_code, "does not exist" in gone.stderr)


def test_delete_without_yes_refuses_in_a_script(covex: Run) -> None:
    covex("users", "create", "alice")
    r = covex("users", "delete", "alice")
    assert (2, True) == (r.exit_code, "--yes" in r.stderr)


def test_tokens_secret_is_printed_once(covex: Run) -> None:
    covex("users", "create", "alice")
    r = covex("tokens", "create", "--user", "alice", "--name", "laptop", "--expires-in-days", "30")
    assert 0 == r.exit_code, r.stderr
    secret = r.stdout.strip()
    assert secret.startswith("cvx_")
    assert "shown only now" in r.stderr and "cannot be shown again" in r.stderr

    me = covex("whoami", "--json", token=secret).json()
    assert "alice" == me["name"]  # type: ignore[index]

    listed = covex("tokens", "list", "--user", "alice", "--json").json()
    assert ["laptop"] == [t["name"] for t in listed]  # type: ignore[union-attr, index]
    assert secret not in covex("tokens", "list", "--user", "alice").stdout
    as_json = covex("tokens", "create", "--json", token=secret).json()
    assert ("alice", True) == (as_json["user"], as_json["secret"].startswith("cvx_"))  # type: ignore[index]

    token_id = str(listed[0]["id"])  # type: ignore[index]
    assert 0 == covex("tokens", "revoke", token_id).exit_code
    r = covex("whoami", token=secret)
    assert (5, True) == (r.exit_code, "revoked" in r.stderr)


def test_grants(covex: Run) -> None:
    covex("models", "create", "churn")
    covex("users", "create", "alice")
    r = covex("grants", "add", "alice", "editor", "--model", "churn")
    assert (0, True) == (r.exit_code, "granted editor on model churn to user:alice" in r.stdout)
    approver = covex("grants", "add", "alice", "approver", "-m", "churn", "--scope", "stage:Production", "--json")
    assert "stage:Production" == approver.json()["scope"]  # type: ignore[index]
    listed = covex("grants", "list", "--subject", "user:alice", "--json").json()
    assert ["editor", "approver"] == [g["role"] for g in listed]  # type: ignore[union-attr, index]
    assert "approver" in covex("grants", "list", "--model", "churn").stdout
    assert 0 == covex("grants", "revoke", str(listed[0]["id"])).exit_code  # type: ignore[index]
    bad = covex("grants", "add", "alice", "boss", "--model", "churn")
    assert (2, True) == (bad.exit_code, "'role'" in bad.stderr)


def test_refusals_exit_5(covex: Run) -> None:
    covex("users", "create", "alice")
    secret = covex("tokens", "create", "--user", "alice").stdout.strip()
    r = covex("users", "create", "mallory", token=secret)
    assert (5, True) == (r.exit_code, "admin rights" in r.stderr)
