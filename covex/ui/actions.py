"""Forms that change a model or a version: description, tags, aliases, stages, card, comments.

Each form is a POST under the page it changes; it calls one service function as the viewer and goes
back to that page with a message saying what happened. The service checks the viewer's role and every
field: a refusal is an error page naming the field or the role it takes.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response

from covex.domain.cards import CARD_FIELDS
from covex.domain.errors import InvalidInput
from covex.domain.policy import TransitionRequest
from covex.service import RegistryService
from covex.ui.session import Viewer
from covex.ui.web import Form, FormData, done, page, templates

router = APIRouter(include_in_schema=False)
templates.globals.update(card_fields=CARD_FIELDS)
MODEL = "/models/{name:path}/-/actions"
VERSION = "/models/{name:path}/-/versions/{number}/actions"


def model_url(name: str) -> str:
    return f"/models/{quote(name, safe='/')}"


def version_url(name: str, number: int) -> str:
    return f"{model_url(name)}/-/versions/{number}"


def version_number(text: str, field: str = "version") -> int:
    """A version number from a URL or a form field (the service checks its range)."""
    text = text.strip()
    if not text.isascii() or not text.isdigit():
        raise InvalidInput(f"'{field}' must be a version number, got {text[:40]!r}")
    return int(text)


@router.get(MODEL + "/{action}")
def model_form(name: str, action: str) -> Response:
    """A form's address opened as a page (say, signing in again after a form): the page the form is on."""
    return RedirectResponse(model_url(name), status_code=303)


@router.get(VERSION + "/{action}")
def version_form(name: str, number: str, action: str) -> Response:
    return RedirectResponse(f"{model_url(name)}/-/versions/{quote(number, safe='')}", status_code=303)


# -- a model ---------------------------------------------------------------------


@router.post(f"{MODEL}/description")
@page
def model_description(request: Request, name: str, form: Form, svc: Viewer) -> Response:
    svc.update_model(name, description=form.get("description", ""))
    return done(request, model_url(name), "Description saved.")


@router.post(f"{MODEL}/tag")
@page
def model_tag(request: Request, name: str, form: Form, svc: Viewer) -> Response:
    key = form.text("key")
    svc.set_model_tag(name, key, form.get("value", ""))
    return done(request, model_url(name), f"Tag {key} set.")


@router.post(f"{MODEL}/tag-delete")
@page
def model_tag_delete(request: Request, name: str, form: Form, svc: Viewer) -> Response:
    key = form.get("key", "")
    svc.delete_model_tag(name, key)
    return done(request, model_url(name), f"Tag {key} deleted.")


@router.post(f"{MODEL}/alias")
@page
def model_alias(request: Request, name: str, form: Form, svc: Viewer) -> Response:
    alias, number = form.text("alias"), version_number(form.get("version", ""))
    return done(request, model_url(name), _aliased(svc, name, number, alias, form.text("comment")))


@router.post(f"{MODEL}/alias-delete")
@page
def model_alias_delete(request: Request, name: str, form: Form, svc: Viewer) -> Response:
    alias = form.text("alias")
    svc.delete_alias(name, alias)
    return done(request, model_url(name), f"Alias @{alias} deleted.")


# -- a version -------------------------------------------------------------------


@router.post(f"{VERSION}/stage")
@page
def version_stage(request: Request, name: str, number: str, form: Form, svc: Viewer) -> Response:
    n = version_number(number)
    archive = form.get("archive_existing") == "on"
    moved = svc.approvals.move_or_request(
        name, n, form.text("stage"), archive_existing=archive, comment=form.text("comment")
    )
    if isinstance(moved, TransitionRequest):
        message = (
            f"Stage {moved.target} is protected: request {moved.id} to move version {n} there is open "
            f"and waits for approval (see Requests)."
        )
    else:
        message = f"Version {n} is in stage {moved.stage}."
    return done(request, version_url(name, n), message)


@router.post(f"{VERSION}/description")
@page
def version_description(request: Request, name: str, number: str, form: Form, svc: Viewer) -> Response:
    n = version_number(number)
    svc.update_version(name, n, description=form.get("description", ""))
    return done(request, version_url(name, n), "Description saved.")


@router.post(f"{VERSION}/tag")
@page
def version_tag(request: Request, name: str, number: str, form: Form, svc: Viewer) -> Response:
    n, key = version_number(number), form.text("key")
    svc.set_version_tag(name, n, key, form.get("value", ""))
    return done(request, version_url(name, n), f"Tag {key} set.")


@router.post(f"{VERSION}/tag-delete")
@page
def version_tag_delete(request: Request, name: str, number: str, form: Form, svc: Viewer) -> Response:
    n, key = version_number(number), form.get("key", "")
    svc.delete_version_tag(name, n, key)
    return done(request, version_url(name, n), f"Tag {key} deleted.")


@router.post(f"{VERSION}/alias")
@page
def version_alias(request: Request, name: str, number: str, form: Form, svc: Viewer) -> Response:
    n, alias = version_number(number), form.text("alias")
    return done(request, version_url(name, n), _aliased(svc, name, n, alias, form.text("comment")))


def _aliased(svc: RegistryService, name: str, n: int, alias: str, comment: str) -> str:
    """Point the alias, or open a request where a policy protects it; the message says which happened."""
    moved = svc.approvals.alias_or_request(name, n, alias, comment=comment)
    if isinstance(moved, TransitionRequest):
        return (
            f"Alias @{alias} is protected: request {moved.id} to point it at version {n} is open "
            f"and waits for approval (see Requests)."
        )
    return f"Alias @{alias} now names version {n}."


@router.post(f"{VERSION}/card")
@page
def version_card(request: Request, name: str, number: str, form: Form, svc: Viewer) -> Response:
    n = version_number(number)
    fields = card_changes(form)
    if not fields:
        raise InvalidInput("'card': fill in or clear at least one field")
    svc.set_card(name, n, fields)
    return done(request, version_url(name, n), f"Card saved ({', '.join(CARD_FIELDS[f] for f in fields)}).")


@router.post(f"{VERSION}/comment")
@page
def version_comment(request: Request, name: str, number: str, form: Form, svc: Viewer) -> Response:
    n = version_number(number)
    svc.approvals.add_comment(name, n, form.get("body", ""))
    return done(request, version_url(name, n), "Comment added.")


def card_changes(form: FormData) -> dict[str, Any]:
    """The card fields a form changes, merged into the card like ``covex card --field``.

    A field left empty keeps its value; a field ticked in ``clear`` is removed. Unknown names are
    passed on for the service to refuse by name. Owners are one per line or separated by commas.
    """
    changes: dict[str, Any] = {}
    for key, value in form.items():
        if key in ("csrf", "clear") or not value.strip():
            continue
        changes[key] = (
            [o.strip() for o in value.replace(",", "\n").splitlines() if o.strip()] if key == "owners" else value
        )
    changes.update(dict.fromkeys(form.all("clear")))
    return changes
