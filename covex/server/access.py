"""Routes of API v1 for identity and access: users, groups, API tokens and grants."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated

from fastapi import APIRouter, Response
from pydantic import BaseModel, Field

from covex.domain.access import Grant, Group, NewToken, Token, User
from covex.domain.names import MAX_NAME_LENGTH
from covex.server.routes import API, ERRORS, Service, render
from covex.server.schemas import Principal, PrincipalIn, RequestBody, Text, text

router = APIRouter(tags=["access"], responses=ERRORS)


# -- request bodies ---------------------------------------------------------------------


class CreateUser(RequestBody):
    name: Principal
    kind: str = "user"
    admin: bool = False


class UpdateUser(RequestBody):
    admin: bool | None = None
    disabled: bool | None = None


class CreateGroup(RequestBody):
    name: Principal
    description: Text = ""


class AddMember(RequestBody):
    user: Principal


class CreateToken(RequestBody):
    user: Principal | None = None
    name: Annotated[str, Field(json_schema_extra=text(MAX_NAME_LENGTH))] = ""
    expires_in_days: float | None = None


class CreateGrant(RequestBody):
    subject: str
    role: str
    model: str | None = None
    scope: str = ""


def _list(items: Sequence[BaseModel]) -> Response:
    # Like ``render``: serialise once with pydantic-core.
    body = b"[" + b",".join(i.model_dump_json().encode() for i in items) + b"]"
    return Response(body, media_type="application/json")


def _no_content() -> Response:
    return Response(status_code=204)


# -- who am I -----------------------------------------------------------------------------


@router.get(f"{API}/whoami", response_model=User)
def whoami(svc: Service) -> Response:
    """The user the token belongs to."""
    return render(svc.access.whoami())


# -- users --------------------------------------------------------------------------------


@router.get(f"{API}/users", response_model=list[User])
def list_users(svc: Service) -> Response:
    return _list(svc.access.list_users())


@router.post(f"{API}/users", response_model=User, status_code=201)
def create_user(body: CreateUser, svc: Service) -> Response:
    """Create a user or a service account (``kind: service``); admins only."""
    return render(svc.access.create_user(body.name, kind=body.kind, admin=body.admin), 201)


@router.get(f"{API}/users/{{name}}", response_model=User)
def get_user(name: PrincipalIn, svc: Service) -> Response:
    return render(svc.access.get_user(name))


@router.patch(f"{API}/users/{{name}}", response_model=User)
def update_user(name: PrincipalIn, body: UpdateUser, svc: Service) -> Response:
    """Grant or take admin rights; disable or enable the user."""
    return render(svc.access.update_user(name, admin=body.admin, disabled=body.disabled))


@router.delete(f"{API}/users/{{name}}", status_code=204)
def delete_user(name: PrincipalIn, svc: Service) -> Response:
    svc.access.delete_user(name)
    return _no_content()


# -- groups -------------------------------------------------------------------------------


@router.get(f"{API}/groups", response_model=list[Group])
def list_groups(svc: Service) -> Response:
    return _list(svc.access.list_groups())


@router.post(f"{API}/groups", response_model=Group, status_code=201)
def create_group(body: CreateGroup, svc: Service) -> Response:
    return render(svc.access.create_group(body.name, body.description), 201)


@router.get(f"{API}/groups/{{name}}", response_model=Group)
def get_group(name: PrincipalIn, svc: Service) -> Response:
    return render(svc.access.get_group(name))


@router.delete(f"{API}/groups/{{name}}", status_code=204)
def delete_group(name: PrincipalIn, svc: Service) -> Response:
    svc.access.delete_group(name)
    return _no_content()


@router.post(f"{API}/groups/{{name}}/members", response_model=Group)
def add_member(name: PrincipalIn, body: AddMember, svc: Service) -> Response:
    return render(svc.access.add_member(name, body.user))


@router.delete(f"{API}/groups/{{name}}/members/{{user}}", response_model=Group)
def remove_member(name: str, user: str, svc: Service) -> Response:
    return render(svc.access.remove_member(name, user))


# -- tokens -------------------------------------------------------------------------------


@router.get(f"{API}/tokens", response_model=list[Token])
def list_tokens(svc: Service, user: str | None = None) -> Response:
    """Your tokens, or (admins) everyone's or one user's; never their secrets."""
    return _list(svc.access.list_tokens(user))


@router.post(f"{API}/tokens", response_model=NewToken, status_code=201)
def create_token(body: CreateToken, svc: Service) -> Response:
    """Create a token; its ``secret`` is in this response only and stored as a hash."""
    return render(svc.access.create_token(body.user, name=body.name, expires_in_days=body.expires_in_days), 201)


@router.delete(f"{API}/tokens/{{token_id}}", status_code=204)
def revoke_token(token_id: int, svc: Service) -> Response:
    """Revoke a token; it stops working at once."""
    svc.access.revoke_token(token_id)
    return _no_content()


# -- grants -------------------------------------------------------------------------------


@router.get(f"{API}/grants", response_model=list[Grant])
def list_grants(svc: Service, model: str | None = None, subject: str | None = None) -> Response:
    return _list(svc.access.list_grants(model=model, subject=subject))


@router.post(f"{API}/grants", response_model=Grant, status_code=201)
def create_grant(body: CreateGrant, svc: Service) -> Response:
    """Give a subject (``user:<name>``, ``group:<name>``, ``everyone``) a role on a model or on all."""
    return render(svc.access.grant(body.subject, body.role, model=body.model, scope=body.scope), 201)


@router.delete(f"{API}/grants/{{grant_id}}", status_code=204)
def revoke_grant(grant_id: int, svc: Service) -> Response:
    svc.access.revoke_grant(grant_id)
    return _no_content()
