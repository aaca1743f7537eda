"""Administration: users and service accounts, groups, API tokens, grants and policies.

Every page and form here is for admins: each first asks the service whether the viewer holds admin
rights (``require_admin``), so another user gets a 403 page even where a list would be readable
through the API. A token's secret is shown once, on the answer to the form that made it.
Webhooks are in ``admin_hooks``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response

from covex.domain.access import ROLES
from covex.domain.errors import InvalidInput, Unauthenticated
from covex.domain.policy import dump_policies
from covex.server.guard import client_address
from covex.service import RegistryService
from covex.ui.session import Viewer
from covex.ui.web import PAGE_SIZE, Form, Slice, done, page, page_of, render

router = APIRouter(include_in_schema=False)
_LINE = re.compile(r"(?:^|; |: )line (\d+): ")


def admin_only(svc: RegistryService, area: str) -> None:
    """Refuse (403) a viewer without admin rights: the admin pages are for admins."""
    svc.require_admin(f"admin.{area}.view", f"admin:{area}")


def confirmed(request: Request, svc: RegistryService, token: str) -> RegistryService:
    """The service acting with ``token``, which must be one of the viewer's own API tokens."""
    base: RegistryService = request.app.state.service
    try:
        mine = base.with_credentials(token.strip() or None, source=client_address(request.scope))
        if mine.principal.name == svc.principal.name:
            return mine
    except Unauthenticated as exc:
        raise InvalidInput(f"'confirm': {exc.message}") from None
    raise InvalidInput("'confirm' must be one of your own API tokens")


def number(value: str, field: str) -> int:
    """A positive whole number from a form or a path, or ``InvalidInput`` naming the field."""
    if not (value.isascii() and value.isdigit()) or len(value) > 18 or int(value) < 1:
        raise InvalidInput(f"'{field}' must be a positive whole number, got {value[:40]!r}")
    return int(value)


def _yes(form: Form, field: str) -> bool:
    value = form.text(field)
    if value not in ("yes", "no"):
        raise InvalidInput(f"'{field}' must be 'yes' or 'no', got {value[:40]!r}")
    return value == "yes"


@router.get("/admin")
@page
def index(request: Request, svc: Viewer) -> Response:
    admin_only(svc, "index")
    return render(request, "admin.html", svc)


# -- users and service accounts -----------------------------------------------------------


@router.get("/admin/users")
@page
def users(request: Request, svc: Viewer, q: str = "", page: str = "") -> Response:
    admin_only(svc, "users")
    q = q.strip()
    number = min(max(1, int(page) if page.isascii() and page.isdigit() and len(page) < 10 else 1), 10**6)
    found, total = svc.access.find_users(q, offset=(number - 1) * PAGE_SIZE, limit=PAGE_SIZE)
    if not found and total:  # past the end: the last page
        number = -(-total // PAGE_SIZE)
        found, total = svc.access.find_users(q, offset=(number - 1) * PAGE_SIZE, limit=PAGE_SIZE)
    shown = Slice(found, number, total)
    return render(request, "admin_users.html", svc, users=found, slice=shown, q=q)


@router.post("/admin/users")
@page
def create_user(request: Request, svc: Viewer, form: Form) -> Response:
    admin_only(svc, "users")
    kind = form.text("kind") or "user"
    made = svc.access.create_user(form.text("name"), kind=kind, admin=form.get("admin") == "yes")
    what = "service account" if made.kind == "service" else "user"
    return done(request, "/admin/users", f"Created {what} {made.name}.")


@router.post("/admin/users/{name}/admin")
@page
def set_admin(request: Request, name: str, svc: Viewer, form: Form) -> Response:
    admin_only(svc, "users")
    made = svc.access.update_user(name, admin=_yes(form, "admin"))
    return done(request, "/admin/users", f"{made.name} is {'now' if made.is_admin else 'no longer'} an admin.")


@router.post("/admin/users/{name}/disabled")
@page
def set_disabled(request: Request, name: str, svc: Viewer, form: Form) -> Response:
    admin_only(svc, "users")
    made = svc.access.update_user(name, disabled=_yes(form, "disabled"))
    return done(request, "/admin/users", f"{made.name} is {'disabled' if made.disabled else 'enabled'}.")


@router.post("/admin/users/{name}/delete")
@page
def delete_user(request: Request, name: str, svc: Viewer, form: Form) -> Response:
    admin_only(svc, "users")
    svc.access.delete_user(name)
    return done(request, "/admin/users", f"Deleted {name} with its tokens, memberships and grants.")


# -- groups -------------------------------------------------------------------------------


@router.get("/admin/groups")
@page
def groups(request: Request, svc: Viewer) -> Response:
    admin_only(svc, "groups")
    return render(request, "admin_groups.html", svc, groups=svc.access.list_groups())


@router.post("/admin/groups")
@page
def create_group(request: Request, svc: Viewer, form: Form) -> Response:
    admin_only(svc, "groups")
    made = svc.access.create_group(form.text("name"), form.text("description"))
    return done(request, "/admin/groups", f"Created group {made.name}.")


@router.post("/admin/groups/{name}/delete")
@page
def delete_group(request: Request, name: str, svc: Viewer, form: Form) -> Response:
    admin_only(svc, "groups")
    svc.access.delete_group(name)
    return done(request, "/admin/groups", f"Deleted group {name} and its grants.")


@router.post("/admin/groups/{name}/members")
@page
def add_member(request: Request, name: str, svc: Viewer, form: Form) -> Response:
    admin_only(svc, "groups")
    user = form.text("user")
    svc.access.add_member(name, user)
    return done(request, "/admin/groups", f"Added {user} to {name}.")


@router.post("/admin/groups/{name}/members/remove")
@page
def remove_member(request: Request, name: str, svc: Viewer, form: Form) -> Response:
    admin_only(svc, "groups")
    user = form.text("user")
    svc.access.remove_member(name, user)
    return done(request, "/admin/groups", f"Removed {user} from {name}.")


# -- tokens -------------------------------------------------------------------------------


@router.get("/admin/tokens")
@page
def tokens(request: Request, svc: Viewer, user: str = "", page: str = "") -> Response:
    admin_only(svc, "tokens")
    found = page_of(svc.access.list_tokens(user.strip() or None), page)
    names = [u.name for u in svc.access.list_users() if not u.disabled]
    return render(request, "admin_tokens.html", svc, tokens=found.items, slice=found, owner=user, users=names)


@router.post("/admin/tokens")
@page
def create_token(request: Request, svc: Viewer, form: Form) -> Response:
    admin_only(svc, "tokens")
    days = form.text("expires_in_days")
    try:
        expires = float(days) if days else None
    except ValueError:
        raise InvalidInput(f"'expires_in_days' must be a number of days, got {days[:40]!r}") from None
    # A web session's token expires within hours and cannot make a lasting one: the token is made with the
    # admin's own API token, asked for again, so a copied session cookie cannot mint credentials either.
    made = confirmed(request, svc, form.get("confirm", "")).access.create_token(
        form.text("user"), name=form.text("name"), expires_in_days=expires
    )
    # Rendered, not redirected: the secret exists only in this answer (never a cookie, URL or log).
    return render(request, "admin_secret.html", svc, status=201, token=made, secret=made.secret, settle="/admin/tokens")


@router.post("/admin/tokens/{token_id}/revoke")
@page
def revoke_token(request: Request, token_id: str, svc: Viewer, form: Form) -> Response:
    admin_only(svc, "tokens")
    found = number(token_id, "id")
    svc.access.revoke_token(found)
    return done(request, "/admin/tokens", f"Revoked token {found}: it no longer works.")


# -- grants -------------------------------------------------------------------------------


@router.get("/admin/grants")
@page
def grants(request: Request, svc: Viewer, model: str = "", subject: str = "", page: str = "") -> Response:
    admin_only(svc, "grants")
    found = page_of(svc.access.list_grants(model=model.strip() or None, subject=subject.strip() or None), page)
    context: dict[str, Any] = {
        "grants": found.items,
        "slice": found,
        "model": model,
        "subject": subject,
        "roles": ROLES,
        "stages": svc.stages,
    }
    return render(request, "admin_grants.html", svc, **context)


@router.post("/admin/grants")
@page
def grant(request: Request, svc: Viewer, form: Form) -> Response:
    admin_only(svc, "grants")
    model = form.text("model") or None
    made = svc.access.grant(form.text("subject"), form.text("role"), model=model, scope=form.text("scope"))
    where = f"model {made.model}" if made.model else "every model"
    return done(request, "/admin/grants", f"Granted {made.role} on {where} to {made.subject}.")


@router.post("/admin/grants/{grant_id}/revoke")
@page
def revoke_grant(request: Request, grant_id: str, svc: Viewer, form: Form) -> Response:
    admin_only(svc, "grants")
    found = number(grant_id, "id")
    svc.access.revoke_grant(found)
    return done(request, "/admin/grants", f"Revoked grant {found}.")


# -- policies -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Problem:
    """One problem of a policy file: its line (0 when the message names none) and what is wrong there."""

    line: int
    message: str
    text: str = ""  # the file's line itself


def problems(message: str, text: str) -> list[Problem]:
    """The problems in the service's message (``... line 3: unknown key ...; line 7: ...``), each at its line."""
    found = list(_LINE.finditer(message))
    if not found:
        return [Problem(0, message)]
    lines = text.splitlines()
    out = []
    for i, match in enumerate(found):
        end = found[i + 1].start() if i + 1 < len(found) else len(message)
        line = int(match.group(1))
        said = message[match.end() : end].strip()
        out.append(Problem(line, said, lines[line - 1] if 0 < line <= len(lines) else ""))
    return out


@router.get("/admin/policies")
@page
def policies(request: Request, svc: Viewer) -> Response:
    admin_only(svc, "policies")
    found = svc.approvals.list_policies()
    text = dump_policies(found) if found else "policies: []\n"
    return render(request, "admin_policies.html", svc, policies=found, text=text, replace=True)


@router.post("/admin/policies")
@page
def apply_policies(request: Request, svc: Viewer, form: Form) -> Response:
    admin_only(svc, "policies")
    text, replace = form.get("text", ""), form.get("replace") == "yes"
    try:
        applied = svc.approvals.apply_policy_file(text, replace=replace)
    except InvalidInput as exc:
        found = svc.approvals.list_policies()
        context: dict[str, Any] = {
            "policies": found,
            "text": text,
            "replace": replace,
            "problems": problems(exc.message, text),
        }
        return render(request, "admin_policies.html", svc, status=400, **context)
    count = len(applied)
    return done(request, "/admin/policies", f"Applied {count} polic{'y' if count == 1 else 'ies'}.")
