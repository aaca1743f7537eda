"""The ``covex`` commands for identity and access: admin bootstrap, whoami, users, groups, tokens, grants."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from datetime import datetime
from typing import Annotated

import typer
from rich.table import Table

from covex.cli import output
from covex.cli.context import client, local_settings, open_local
from covex.client.governance import Access
from covex.domain import errors
from covex.domain.access import Grant, Group, NewToken, Token, User

admin_app = typer.Typer(help="Set up a registry: create its first admin.", no_args_is_help=True)
users_app = typer.Typer(help="Create, list, show, update and delete users and service accounts.", no_args_is_help=True)
groups_app = typer.Typer(help="Create and delete groups; add and remove members.", no_args_is_help=True)
tokens_app = typer.Typer(help="Create, list and revoke API tokens.", no_args_is_help=True)
grants_app = typer.Typer(
    help="Give users and groups roles on models: reader, editor, manager; approver per stage or alias.",
    no_args_is_help=True,
)

Json = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]
Yes = Annotated[bool, typer.Option("--yes", "-y", help="Do not ask.")]


def register(app: typer.Typer) -> None:
    """Add this area's commands and groups to the main app."""
    app.add_typer(admin_app, name="admin")
    app.add_typer(users_app, name="users")
    app.add_typer(groups_app, name="groups")
    app.add_typer(tokens_app, name="tokens")
    app.add_typer(grants_app, name="grants")
    app.command("whoami")(whoami)


def _access() -> Access:
    return client().access


def _when(ms: int | None) -> str:
    return "-" if ms is None else datetime.fromtimestamp(ms / 1000).strftime("%Y-%m-%d %H:%M:%S")


def _confirm(question: str, yes: bool) -> None:
    if yes:
        return
    if not sys.stdin.isatty():
        raise errors.InvalidInput("refusing to delete without confirmation; pass --yes")
    typer.confirm(question, abort=True)


def _print_secret(token: NewToken, as_json: bool) -> None:
    """The secret goes to stdout alone (``export COVEX_TOKEN=$(covex tokens create)``); the warning to stderr."""
    if as_json:
        output.emit_json(token)
        return
    expires = f", expires {_when(token.expires_at)}" if token.expires_at else ""
    output.err_console.print(
        f"Created token {token.id} for {token.user!r}{expires}. Its secret is shown only now; "
        "it is stored as a hash and cannot be shown again:",
        highlight=False,
    )
    print(token.secret)


# -- admin and whoami -------------------------------------------------------------------------


@admin_app.command("bootstrap")
def admin_bootstrap(
    name: Annotated[str, typer.Option("--name", help="Name of the admin user to create.")] = "admin",
    as_json: Json = False,
) -> None:
    """Create the first admin user and print its API token once (on the database itself, not via a server).

    Refused once the registry has an admin: admins then create users and tokens.
    """
    service = open_local(local_settings("admin bootstrap"))
    try:
        token = service.access.bootstrap(name)
    finally:
        service.close()
    _print_secret(token, as_json)


def whoami(as_json: Json = False) -> None:
    """Show who the current token (or the embedded local user) acts as."""
    user = _access().whoami()
    output.emit_json(user) if as_json else _show_user(user)


# -- users ------------------------------------------------------------------------------------


def _users_table(users: Sequence[User]) -> None:
    table = Table("name", "kind", "admin", "disabled", "groups", "created by", "created")
    for u in users:
        table.add_row(
            u.name,
            u.kind,
            "yes" if u.is_admin else "",
            "yes" if u.disabled else "",
            ", ".join(u.groups),
            u.created_by,
            _when(u.creation_timestamp or None),
        )
    output.console.print(table)


def _show_user(u: User) -> None:
    table = Table(show_header=False, box=None)
    for key, value in (
        ("name", u.name),
        ("kind", u.kind),
        ("admin", "yes" if u.is_admin else "no"),
        ("disabled", "yes" if u.disabled else "no"),
        ("groups", ", ".join(u.groups)),
        ("created by", u.created_by),
        ("created", _when(u.creation_timestamp or None)),
    ):
        table.add_row(f"[bold]{key}[/]", value)
    output.console.print(table)


@users_app.command("create")
def users_create(
    name: str,
    service: Annotated[bool, typer.Option("--service", help="A service account (for CI, pipelines).")] = False,
    admin: Annotated[bool, typer.Option("--admin", help="With global admin rights.")] = False,
    as_json: Json = False,
) -> None:
    """Create a user or service account (admins only); then `covex tokens create --user NAME`."""
    u = _access().create_user(name, kind="service" if service else "user", admin=admin)
    output.emit_json(u) if as_json else output.console.print(f"created {u.kind} {u.name}", highlight=False)


@users_app.command("list")
def users_list(as_json: Json = False) -> None:
    """List users and service accounts."""
    users = _access().list_users()
    output.emit_json(users) if as_json else _users_table(users)


@users_app.command("show")
def users_show(name: str, as_json: Json = False) -> None:
    """Show one user."""
    u = _access().get_user(name)
    output.emit_json(u) if as_json else _show_user(u)


@users_app.command("update")
def users_update(
    name: str,
    admin: Annotated[bool | None, typer.Option("--admin/--no-admin", help="Grant or take admin rights.")] = None,
    disable: Annotated[
        bool | None, typer.Option("--disable/--enable", help="Disable (its tokens stop working) or enable.")
    ] = None,
    as_json: Json = False,
) -> None:
    """Grant or take admin rights; disable or enable a user (admins only)."""
    u = _access().update_user(name, admin=admin, disabled=disable)
    if as_json:
        output.emit_json(u)
        return
    state = ", ".join(x for x in ("admin" if u.is_admin else "", "disabled" if u.disabled else "") if x)
    output.console.print(f"updated {u.name}" + (f" ({state})" if state else ""), highlight=False)


@users_app.command("delete")
def users_delete(name: str, yes: Yes = False) -> None:
    """Delete a user with its tokens, memberships and grants (admins only)."""
    _confirm(f"Delete user {name!r} with its tokens and grants?", yes)
    _access().delete_user(name)
    output.console.print(f"deleted user {name}", highlight=False)


# -- groups -----------------------------------------------------------------------------------


def _groups_table(groups: Sequence[Group]) -> None:
    table = Table("name", "members", "description", "created")
    for g in groups:
        table.add_row(g.name, ", ".join(g.members), g.description[:60], _when(g.creation_timestamp))
    output.console.print(table)


@groups_app.command("create")
def groups_create(
    name: str, description: Annotated[str, typer.Option("--description", "-d")] = "", as_json: Json = False
) -> None:
    """Create a group (admins only)."""
    g = _access().create_group(name, description)
    output.emit_json(g) if as_json else output.console.print(f"created group {g.name}", highlight=False)


@groups_app.command("list")
def groups_list(as_json: Json = False) -> None:
    """List groups with their members."""
    groups = _access().list_groups()
    output.emit_json(groups) if as_json else _groups_table(groups)


@groups_app.command("show")
def groups_show(name: str, as_json: Json = False) -> None:
    """Show one group with its members."""
    g = _access().get_group(name)
    output.emit_json(g) if as_json else _groups_table([g])


@groups_app.command("delete")
def groups_delete(name: str, yes: Yes = False) -> None:
    """Delete a group and the grants given to it (admins only)."""
    _confirm(f"Delete group {name!r} and its grants?", yes)
    _access().delete_group(name)
    output.console.print(f"deleted group {name}", highlight=False)


@groups_app.command("add-member")
def groups_add_member(group: str, user: str) -> None:
    """Add a user to a group (admins only)."""
    _access().add_member(group, user)
    output.console.print(f"added {user} to {group}", highlight=False)


@groups_app.command("remove-member")
def groups_remove_member(group: str, user: str) -> None:
    """Remove a user from a group (admins only)."""
    _access().remove_member(group, user)
    output.console.print(f"removed {user} from {group}", highlight=False)


# -- tokens -----------------------------------------------------------------------------------


@tokens_app.command("create")
def tokens_create(
    user: Annotated[str | None, typer.Option("--user", "-u", help="For this user (admins only); default you.")] = None,
    name: Annotated[str, typer.Option("--name", "-n", help="What the token is for, e.g. 'ci'.")] = "",
    expires_in_days: Annotated[
        float | None, typer.Option("--expires-in-days", help="Stop working after this many days.")
    ] = None,
    as_json: Json = False,
) -> None:
    """Create an API token and print its secret once (it is stored only as a hash)."""
    _print_secret(_access().create_token(user, name=name, expires_in_days=expires_in_days), as_json)


@tokens_app.command("list")
def tokens_list(
    user: Annotated[str | None, typer.Option("--user", "-u", help="One user's tokens (admins only).")] = None,
    as_json: Json = False,
) -> None:
    """List API tokens (never their secrets): yours, or everyone's for admins."""
    tokens: list[Token] = _access().list_tokens(user)
    if as_json:
        output.emit_json(tokens)
        return
    table = Table("id", "user", "name", "prefix", "created", "expires", "revoked")
    for t in tokens:
        table.add_row(
            str(t.id),
            t.user,
            t.name,
            t.prefix + "…",
            _when(t.creation_timestamp),
            _when(t.expires_at),
            _when(t.revoked_at),
        )
    output.console.print(table)


@tokens_app.command("revoke")
def tokens_revoke(
    token_id: Annotated[int, typer.Argument(metavar="ID", help="The id `covex tokens list` shows.")],
) -> None:
    """Revoke an API token: it stops working at once."""
    _access().revoke_token(token_id)
    output.console.print(f"revoked token {token_id}")


# -- grants -----------------------------------------------------------------------------------


@grants_app.command("add")
def grants_add(
    subject: Annotated[str, typer.Argument(help="user:NAME, group:NAME, everyone, or a user's NAME")],
    role: Annotated[str, typer.Argument(help="reader, editor, manager or approver")],
    model: Annotated[
        str | None, typer.Option("--model", "-m", help="On this model; without it, on every model (admins only).")
    ] = None,
    scope: Annotated[
        str, typer.Option("--scope", help="For approver: stage:STAGE or alias:ALIAS, e.g. stage:Production.")
    ] = "",
    as_json: Json = False,
) -> None:
    """Give a user or group a role on a model (its managers) or on every model (admins)."""
    g = _access().grant(subject, role, model=model, scope=scope)
    if as_json:
        output.emit_json(g)
        return
    where = f"model {g.model}" if g.model else "every model"
    output.console.print(
        f"granted {g.role}{f' ({g.scope})' if g.scope else ''} on {where} to {g.subject} (grant {g.id})",
        highlight=False,
    )


@grants_app.command("list")
def grants_list(
    model: Annotated[
        str | None, typer.Option("--model", "-m", help="Grants on this model (and on every model).")
    ] = None,
    subject: Annotated[str | None, typer.Option("--subject", "-s", help="Grants of user:NAME or group:NAME.")] = None,
    as_json: Json = False,
) -> None:
    """List grants."""
    grants: list[Grant] = _access().list_grants(model=model, subject=subject)
    if as_json:
        output.emit_json(grants)
        return
    table = Table("id", "subject", "role", "scope", "model", "by", "created")
    for g in grants:
        table.add_row(str(g.id), g.subject, g.role, g.scope, g.model or "*", g.created_by, _when(g.creation_timestamp))
    output.console.print(table)


@grants_app.command("revoke")
def grants_revoke(
    grant_id: Annotated[int, typer.Argument(metavar="ID", help="The id `covex grants list` shows.")],
) -> None:
    """Remove a grant."""
    _access().revoke_grant(grant_id)
    output.console.print(f"revoked grant {grant_id}")
