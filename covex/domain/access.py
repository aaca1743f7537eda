"""Who is acting, and what each role may do. Pure: no I/O.

Per-model roles are ordered ``reader < editor < manager``; a global ``admin``
may do everything. ``approver`` is separate: it is granted per stage or per
protected alias (scope ``stage:Production`` / ``alias:champion``) and lets its
holder review approval requests for that target.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from typing import Literal

from pydantic import BaseModel, ConfigDict

from covex.domain.errors import InvalidInput

Role = Literal["reader", "editor", "manager", "approver"]
ROLES: tuple[str, ...] = ("reader", "editor", "manager", "approver")
RANK = {"reader": 1, "editor": 2, "manager": 3}
EVERYONE = "everyone"
TOKEN_PREFIX = "cvx_"


@dataclass(frozen=True)
class Principal:
    """The identity a service call acts as: a user or service account, its groups, and admin rights."""

    name: str
    is_admin: bool = False
    groups: tuple[str, ...] = field(default_factory=tuple)
    kind: str = "user"
    # When the token this principal signed in with expires (None: it does not, or no token).
    token_expires_at: int | None = None
    # The token it signed in with (None: no token), so a web session can revoke it when it ends.
    token_id: int | None = None

    @property
    def subjects(self) -> list[str]:
        """Every grant subject that applies to this principal."""
        return [f"user:{self.name}", *(f"group:{g}" for g in self.groups), EVERYONE]

    @classmethod
    def local_admin(cls, name: str) -> Principal:
        """The embedded SDK's default identity: the local user, with admin rights."""
        return cls(name=name, is_admin=True, kind="local")


def hash_token(secret: str) -> str:
    """How API tokens are stored: long random secrets need one SHA-256, not a slow password hash."""
    return hashlib.sha256(secret.encode()).hexdigest()


def check_role(role: str, field_name: str = "role") -> str:
    if role not in ROLES:
        raise InvalidInput(f"'{field_name}' must be one of {', '.join(ROLES)}, got {role!r}")
    return role


def parse_subject(subject: str, field_name: str = "subject") -> str:
    """Normalise ``alice`` / ``user:alice`` / ``group:ml-leads`` / ``everyone`` to a grant subject."""
    if not isinstance(subject, str) or not subject.strip():
        raise InvalidInput(f"'{field_name}' must be 'user:<name>', 'group:<name>' or 'everyone'")
    subject = subject.strip()
    if subject not in (EVERYONE, "*"):
        kind, sep, name = subject.partition(":")
        validate_principal_name(name if sep else subject, field_name)
    if subject in (EVERYONE, "*"):
        return EVERYONE
    kind, sep, name = subject.partition(":")
    if not sep:
        return f"user:{subject}"
    if kind not in ("user", "group") or not name:
        raise InvalidInput(f"'{field_name}' must be 'user:<name>', 'group:<name>' or 'everyone', got {subject!r}")
    return subject


def parse_scope(scope: str | None, role: str, field_name: str = "scope") -> str:
    """Approver grants need ``stage:<Stage>`` or ``alias:<alias>``; other roles take no scope."""
    scope = (scope or "").strip()
    if role != "approver":
        if scope:
            raise InvalidInput(f"'{field_name}' applies to the approver role only")
        return ""
    kind, sep, target = scope.partition(":")
    if not sep or kind not in ("stage", "alias") or not target or "\x00" in target:
        raise InvalidInput(f"'{field_name}' of an approver grant must be 'stage:<Stage>' or 'alias:<alias>'")
    return scope


class _Entity(BaseModel):
    model_config = ConfigDict(frozen=True)


class User(_Entity):
    """A person or a service account."""

    name: str
    kind: Literal["user", "service"] = "user"
    is_admin: bool = False
    disabled: bool = False
    groups: list[str] = []
    created_by: str = ""
    creation_timestamp: int


class Group(_Entity):
    name: str
    description: str = ""
    members: list[str] = []
    creation_timestamp: int


class Token(_Entity):
    """An API token as listed: never its secret."""

    id: int
    user: str
    name: str = ""
    prefix: str
    creation_timestamp: int
    expires_at: int | None = None
    revoked_at: int | None = None


class NewToken(Token):
    """A token just created: ``secret`` is shown this once and stored only as a hash."""

    secret: str


class Grant(_Entity):
    """A role given to a subject on one model (``model`` None: on every model)."""

    id: int
    model: str | None = None
    subject: str
    role: Role
    scope: str = ""
    created_by: str = ""
    creation_timestamp: int


PRINCIPAL_PATTERN = r"[A-Za-z0-9][A-Za-z0-9_.@\-]{0,127}"
_PRINCIPAL_NAME = re.compile(PRINCIPAL_PATTERN)


def validate_principal_name(name: object, field_name: str = "name") -> str:
    """User, service-account and group names: letters, digits and ``_ . @ -``, up to 128 characters."""
    if not isinstance(name, str) or not _PRINCIPAL_NAME.fullmatch(name):
        raise InvalidInput(
            f"'{field_name}' must be 1-128 letters, digits or '_ . @ -', starting with a letter or digit; got {name!r}"
        )
    return name
