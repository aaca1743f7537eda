"""Users, groups, API tokens and grants over HTTP: the methods of ``AccessService``."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from covex.client.http import segment
from covex.domain.access import Grant, Group, NewToken, Token, User, validate_principal_name

if TYPE_CHECKING:
    from covex.client.http import HttpBackend

API = "/api/v1"


def _q(name: str, field: str = "name") -> str:
    return segment(validate_principal_name(name, field))


class HttpAccess:
    """``client.access`` against a Covex server."""

    def __init__(self, backend: HttpBackend) -> None:
        self._backend = backend

    def _call(self, method: str, path: str, **kwargs: Any) -> Any:
        return self._backend._call(method, f"{API}{path}", **kwargs)

    def whoami(self) -> User:
        """The user the client's token belongs to."""
        return User.model_validate(self._call("GET", "/whoami"))

    # -- users ----------------------------------------------------------------------

    def create_user(self, name: str, *, kind: str = "user", admin: bool = False) -> User:
        """Create a user or a service account (admins only)."""
        return User.model_validate(self._call("POST", "/users", json={"name": name, "kind": kind, "admin": admin}))

    def list_users(self) -> list[User]:
        return [User.model_validate(u) for u in self._call("GET", "/users")]

    def get_user(self, name: str) -> User:
        return User.model_validate(self._call("GET", f"/users/{_q(name)}"))

    def update_user(self, name: str, *, admin: bool | None = None, disabled: bool | None = None) -> User:
        """Grant or take admin rights, disable or enable a user (admins only)."""
        body = {k: v for k, v in (("admin", admin), ("disabled", disabled)) if v is not None}
        return User.model_validate(self._call("PATCH", f"/users/{_q(name)}", json=body))

    def delete_user(self, name: str) -> None:
        self._call("DELETE", f"/users/{_q(name)}")

    # -- groups ---------------------------------------------------------------------

    def create_group(self, name: str, description: str = "") -> Group:
        return Group.model_validate(self._call("POST", "/groups", json={"name": name, "description": description}))

    def delete_group(self, name: str) -> None:
        self._call("DELETE", f"/groups/{_q(name)}")

    def list_groups(self) -> list[Group]:
        return [Group.model_validate(g) for g in self._call("GET", "/groups")]

    def get_group(self, name: str) -> Group:
        return Group.model_validate(self._call("GET", f"/groups/{_q(name)}"))

    def add_member(self, group: str, user: str) -> Group:
        return Group.model_validate(self._call("POST", f"/groups/{_q(group, 'group')}/members", json={"user": user}))

    def remove_member(self, group: str, user: str) -> Group:
        return Group.model_validate(self._call("DELETE", f"/groups/{_q(group, 'group')}/members/{_q(user, 'user')}"))

    # -- tokens ---------------------------------------------------------------------

    def create_token(
        self, user: str | None = None, *, name: str = "", expires_in_days: float | None = None
    ) -> NewToken:
        """Create an API token for yourself, or (admins) for anyone; its secret is returned this once."""
        body = {"user": user, "name": name, "expires_in_days": expires_in_days}
        return NewToken.model_validate(self._call("POST", "/tokens", json=body))

    def list_tokens(self, user: str | None = None) -> list[Token]:
        """Your tokens, or (admins) anyone's; never their secrets."""
        params = {"user": user} if user is not None else {}
        return [Token.model_validate(t) for t in self._call("GET", "/tokens", params=params)]

    def revoke_token(self, token_id: int) -> None:
        """Revoke a token; it stops working at once."""
        self._call("DELETE", f"/tokens/{int(token_id)}")

    # -- grants ---------------------------------------------------------------------

    def grant(self, subject: str, role: str, *, model: str | None = None, scope: str = "") -> Grant:
        """Give ``subject`` a role on ``model`` (None: every model, admins only)."""
        body = {"subject": subject, "role": role, "model": model, "scope": scope}
        return Grant.model_validate(self._call("POST", "/grants", json=body))

    def revoke_grant(self, grant_id: int) -> None:
        self._call("DELETE", f"/grants/{int(grant_id)}")

    def list_grants(self, *, model: str | None = None, subject: str | None = None) -> list[Grant]:
        """Grants on one model (and on every model), or of one subject."""
        params = {k: v for k, v in (("model", model), ("subject", subject)) if v is not None}
        return [Grant.model_validate(g) for g in self._call("GET", "/grants", params=params)]


__all__ = ["HttpAccess"]
