"""Identity and access: users, service accounts, groups, API tokens and grants."""

from __future__ import annotations

import secrets
from typing import Any

from sqlalchemy import Connection, Row, and_, delete, func, insert, select, true, update
from sqlalchemy.exc import IntegrityError

from covex.domain.access import (
    EVERYONE,
    TOKEN_PREFIX,
    Grant,
    Group,
    NewToken,
    Token,
    User,
    check_role,
    hash_token,
    parse_scope,
    parse_subject,
    validate_principal_name,
)
from covex.domain.errors import AlreadyExists, InvalidInput, InvalidState, NotFound
from covex.domain.names import MAX_NAME_LENGTH, validate_id, validate_model_name, validate_target, validate_text
from covex.service.base import ServiceBase, now_ms
from covex.store.schema import grants, group_members, groups, models, tokens, users

DAY_MS = 86_400_000
MAX_TOKEN_DAYS = 36_500


class AccessService(ServiceBase):
    """Users, groups, tokens and grants. Most changes take admin rights; grants on a model take its manager."""

    # -- the first admin -------------------------------------------------------------

    def bootstrap(self, name: str = "admin") -> NewToken:
        """Create the first admin and its token; refused once any admin exists."""
        validate_principal_name(name)
        try:
            with self._tx(write=True) as conn:
                if conn.execute(select(users.c.id).where(users.c.is_admin.is_(True)).limit(1)).first():
                    raise InvalidState("Covex already has an admin; create tokens with 'covex tokens create'")
                if conn.execute(select(users.c.id).where(users.c.name == name)).first():
                    raise AlreadyExists(f"user {name!r} already exists")
                self._insert_user(conn, name, "user", True)
                token = self._insert_token(conn, name, "bootstrap", None)
                self._audit(conn, "user.bootstrap", f"user:{name}", None, {"is_admin": True, "token": token.id})
                return token
        except IntegrityError:
            # Another process bootstrapped at the same moment.
            raise InvalidState("Covex already has an admin; create tokens with 'covex tokens create'") from None

    def bootstrap_admin(self, name: str = "admin") -> NewToken | None:
        """On a server's first start, create the admin ``name`` and its token; None once any admin exists.

        Several server processes may start at once on one database: one creates the admin, the
        others get None (they lost the race, which is no error).
        """
        if not self.needs_bootstrap():
            return None
        try:
            return self.bootstrap(name)
        except InvalidState:  # another process bootstrapped between the check and the insert
            return None

    def needs_bootstrap(self) -> bool:
        """True while no admin exists."""
        with self._tx(write=False) as conn:
            return conn.execute(select(users.c.id).where(users.c.is_admin.is_(True)).limit(1)).first() is None

    def whoami(self) -> User:
        """The acting user (the embedded local admin is not stored, so it is described as is)."""
        with self._tx(write=False) as conn:
            row = conn.execute(select(users).where(users.c.name == self.actor)).one_or_none()
            if row is None:
                return User(name=self.actor, is_admin=self.principal.is_admin, creation_timestamp=0)
            return self._users(conn, [row])[0]

    # -- users ----------------------------------------------------------------------

    def create_user(self, name: str, *, kind: str = "user", admin: bool = False) -> User:
        """Create a user or a service account (admins only)."""
        validate_principal_name(name)
        if kind not in ("user", "service"):
            raise InvalidInput(f"'kind' must be 'user' or 'service', got {kind!r}")
        if not isinstance(admin, bool):
            raise InvalidInput("'admin' must be true or false")
        try:
            with self._tx(write=True) as conn:
                self.require_admin("user.create", f"user:{name}")
                if conn.execute(select(users.c.id).where(users.c.name == name)).first():
                    raise AlreadyExists(f"user {name!r} already exists")
                self._insert_user(conn, name, kind, admin)
                self._audit(conn, "user.create", f"user:{name}", None, {"kind": kind, "is_admin": admin})
                return self._users(conn, [self._user_row(conn, name)])[0]
        except IntegrityError:
            raise AlreadyExists(f"user {name!r} already exists") from None

    def list_users(self) -> list[User]:
        with self._tx(write=False) as conn:
            return self._users(conn, conn.execute(select(users).order_by(users.c.name)).all())

    def find_users(self, contains: str = "", *, offset: int = 0, limit: int = 50) -> tuple[list[User], int]:
        """One page of the users whose name holds ``contains`` (any case), by name, and how many match."""
        contains = validate_text(contains, "contains", MAX_NAME_LENGTH)
        for field, value, low in (("offset", offset, 0), ("limit", limit, 1)):
            if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= 10**9:
                raise InvalidInput(f"'{field}' must be a whole number from {low}, got {value!r}")
        q = select(users)
        if contains:
            q = q.where(func.lower(users.c.name).contains(contains.lower(), autoescape=True))
        with self._tx(write=False) as conn:
            total = conn.execute(select(func.count()).select_from(q.subquery())).scalar_one()
            rows = conn.execute(q.order_by(users.c.name).offset(offset).limit(min(limit, 1000))).all()
            return self._users(conn, rows), total

    def get_user(self, name: str) -> User:
        validate_principal_name(name, "name")
        with self._tx(write=False) as conn:
            return self._users(conn, [self._user_row(conn, name)])[0]

    def update_user(self, name: str, *, admin: bool | None = None, disabled: bool | None = None) -> User:
        """Grant or take admin rights, disable or enable a user (admins only)."""
        validate_principal_name(name, "name")
        values: dict[str, Any] = {}
        if admin is not None:
            values["is_admin"] = bool(admin)
        if disabled is not None:
            values["disabled"] = bool(disabled)
        if not values:
            raise InvalidInput("give 'admin' or 'disabled'")
        with self._tx(write=True) as conn:
            self.require_admin("user.update", f"user:{name}")
            row = self._user_row(conn, name)
            if (values.get("is_admin") is False or values.get("disabled")) and row.is_admin:
                self._keep_one_admin(conn, row.id)
            conn.execute(update(users).where(users.c.id == row.id).values(**values))
            before = {k: bool(getattr(row, k)) for k in values}
            self._audit(conn, "user.update", f"user:{name}", before, values)
            return self._users(conn, [self._user_row(conn, name)])[0]

    def delete_user(self, name: str) -> None:
        """Delete a user with its tokens, memberships and grants (admins only)."""
        validate_principal_name(name, "name")
        with self._tx(write=True) as conn:
            self.require_admin("user.delete", f"user:{name}")
            row = self._user_row(conn, name)
            if row.is_admin:
                self._keep_one_admin(conn, row.id)
            conn.execute(delete(grants).where(grants.c.subject == f"user:{name}"))
            conn.execute(delete(users).where(users.c.id == row.id))
            self._audit(conn, "user.delete", f"user:{name}", {"kind": row.kind, "is_admin": bool(row.is_admin)}, None)

    def _keep_one_admin(self, conn: Connection, leaving: int) -> None:
        others = conn.execute(
            select(func.count())
            .select_from(users)
            .where(users.c.is_admin.is_(True), users.c.disabled.is_(False), users.c.id != leaving)
        ).scalar_one()
        if not others:
            raise InvalidState("this is the last active admin; make another admin first")

    def _insert_user(self, conn: Connection, name: str, kind: str, admin: bool) -> int:
        return int(
            conn.execute(
                insert(users)
                .values(
                    name=name,
                    kind=kind,
                    is_admin=admin,
                    disabled=False,
                    created_by=self.actor,
                    creation_timestamp=now_ms(),
                )
                .returning(users.c.id)
            ).scalar_one()
        )

    def _user_row(self, conn: Connection, name: str) -> Row[Any]:
        row = conn.execute(select(users).where(users.c.name == name)).one_or_none()
        if row is None:
            raise NotFound(f"user {name!r} does not exist")
        return row

    def _users(self, conn: Connection, rows: list[Row[Any]] | Any) -> list[User]:
        rows = list(rows)
        member: dict[int, list[str]] = {r.id: [] for r in rows}
        if rows:
            for user_id, group in conn.execute(
                select(group_members.c.user_id, groups.c.name)
                .join(groups, groups.c.id == group_members.c.group_id)
                .where(group_members.c.user_id.in_(list(member)))
                .order_by(groups.c.name)
            ):
                member[user_id].append(group)
        return [
            User(
                name=r.name,
                kind=r.kind,
                is_admin=bool(r.is_admin),
                disabled=bool(r.disabled),
                groups=member[r.id],
                created_by=r.created_by,
                creation_timestamp=r.creation_timestamp,
            )
            for r in rows
        ]

    # -- groups ---------------------------------------------------------------------

    def create_group(self, name: str, description: str = "") -> Group:
        validate_principal_name(name)
        description = validate_text(description, "description")
        try:
            with self._tx(write=True) as conn:
                self.require_admin("group.create", f"group:{name}")
                if conn.execute(select(groups.c.id).where(groups.c.name == name)).first():
                    raise AlreadyExists(f"group {name!r} already exists")
                conn.execute(insert(groups).values(name=name, description=description, creation_timestamp=now_ms()))
                self._audit(conn, "group.create", f"group:{name}", None, {"description": description})
                return self._group(conn, name)
        except IntegrityError:
            raise AlreadyExists(f"group {name!r} already exists") from None

    def delete_group(self, name: str) -> None:
        validate_principal_name(name, "name")
        with self._tx(write=True) as conn:
            self.require_admin("group.delete", f"group:{name}")
            row = self._group_row(conn, name)
            conn.execute(delete(grants).where(grants.c.subject == f"group:{name}"))
            conn.execute(delete(groups).where(groups.c.id == row.id))
            self._audit(conn, "group.delete", f"group:{name}", {"description": row.description}, None)

    def list_groups(self) -> list[Group]:
        with self._tx(write=False) as conn:
            names = conn.execute(select(groups.c.name).order_by(groups.c.name)).scalars().all()
            return [self._group(conn, n) for n in names]

    def get_group(self, name: str) -> Group:
        validate_principal_name(name, "name")
        with self._tx(write=False) as conn:
            return self._group(conn, name)

    def add_member(self, group: str, user: str) -> Group:
        validate_principal_name(group, "group")
        validate_principal_name(user, "user")
        with self._tx(write=True) as conn:
            self.require_admin("group.member.add", f"group:{group}")
            g, u = self._group_row(conn, group), self._user_row(conn, user)
            exists = conn.execute(
                select(group_members).where(group_members.c.group_id == g.id, group_members.c.user_id == u.id)
            ).first()
            if exists is None:
                conn.execute(insert(group_members).values(group_id=g.id, user_id=u.id))
                self._audit(conn, "group.member.add", f"group:{group}", None, {"user": user})
            return self._group(conn, group)

    def remove_member(self, group: str, user: str) -> Group:
        validate_principal_name(group, "group")
        validate_principal_name(user, "user")
        with self._tx(write=True) as conn:
            self.require_admin("group.member.remove", f"group:{group}")
            g, u = self._group_row(conn, group), self._user_row(conn, user)
            gone = conn.execute(
                delete(group_members).where(group_members.c.group_id == g.id, group_members.c.user_id == u.id)
            )
            if gone.rowcount == 0:
                raise NotFound(f"user {user!r} is not in group {group!r}")
            self._audit(conn, "group.member.remove", f"group:{group}", {"user": user}, None)
            return self._group(conn, group)

    def _group_row(self, conn: Connection, name: str) -> Row[Any]:
        row = conn.execute(select(groups).where(groups.c.name == name)).one_or_none()
        if row is None:
            raise NotFound(f"group {name!r} does not exist")
        return row

    def _group(self, conn: Connection, name: str) -> Group:
        row = self._group_row(conn, name)
        members = conn.execute(
            select(users.c.name)
            .join(group_members, group_members.c.user_id == users.c.id)
            .where(group_members.c.group_id == row.id)
            .order_by(users.c.name)
        ).scalars()
        return Group(
            name=row.name, description=row.description, members=list(members), creation_timestamp=row.creation_timestamp
        )

    # -- tokens ---------------------------------------------------------------------

    def create_token(
        self, user: str | None = None, *, name: str = "", expires_in_days: float | None = None
    ) -> NewToken:
        """Create an API token for yourself, or (admins) for anyone; its secret is returned this once."""
        user = self.actor if user is None else validate_principal_name(user, "user")
        name = validate_text(name, "name", MAX_NAME_LENGTH)
        expires_at = None
        if expires_in_days is not None:
            if (
                isinstance(expires_in_days, bool)
                or not isinstance(expires_in_days, int | float)
                or not 0 < expires_in_days <= MAX_TOKEN_DAYS
            ):
                raise InvalidInput(
                    f"'expires_in_days' must be a number above 0 and at most {MAX_TOKEN_DAYS}, got {expires_in_days!r}"
                )
            expires_at = now_ms() + int(expires_in_days * DAY_MS)
        with self._tx(write=True) as conn:
            if user != self.actor:
                self.require_admin("token.create", f"user:{user}")
            # A token never outlives the token that made it: a short-lived credential cannot mint a lasting one.
            parent = self.principal.token_expires_at
            if parent is not None and (expires_at is None or expires_at > parent):
                expires_at = parent
            token = self._insert_token(conn, user, name, expires_at)
            self._audit(
                conn, "token.create", f"user:{user}", None, {"token": token.id, "name": name, "expires_at": expires_at}
            )
            return token

    def list_tokens(self, user: str | None = None) -> list[Token]:
        """Your tokens, or (admins) anyone's; never their secrets."""
        with self._tx(write=False) as conn:
            q = select(tokens, users.c.name.label("user")).join(users, users.c.id == tokens.c.user_id)
            if user is not None:
                if user != self.actor:
                    self.require_admin("token.list", f"user:{user}")
                q = q.where(users.c.name == user)
            elif not self.principal.is_admin:
                q = q.where(users.c.name == self.actor)
            return [_token(r) for r in conn.execute(q.order_by(tokens.c.id))]

    def revoke_token(self, token_id: int) -> None:
        """Revoke one of your tokens, or (admins) anyone's. It stops working at once."""
        validate_id(token_id, "id")
        with self._tx(write=True) as conn:
            row = conn.execute(
                select(tokens.c.revoked_at, users.c.name.label("user"))
                .join(users, users.c.id == tokens.c.user_id)
                .where(tokens.c.id == token_id)
            ).one_or_none()
            if row is None:
                raise NotFound(f"token {token_id} does not exist")
            if row.user != self.actor:
                self.require_admin("token.revoke", f"user:{row.user}")
            if row.revoked_at is None:
                conn.execute(update(tokens).where(tokens.c.id == token_id).values(revoked_at=now_ms()))
                self._audit(conn, "token.revoke", f"user:{row.user}", {"token": token_id}, {"revoked": True})

    def _insert_token(self, conn: Connection, user: str, name: str, expires_at: int | None) -> NewToken:
        row = self._user_row(conn, user)
        if row.disabled:
            raise InvalidState(f"user {user!r} is disabled")
        secret = TOKEN_PREFIX + secrets.token_urlsafe(32)
        now = now_ms()
        token_id = conn.execute(
            insert(tokens)
            .values(
                user_id=row.id,
                name=name,
                token_hash=hash_token(secret),
                prefix=secret[:12],
                creation_timestamp=now,
                expires_at=expires_at,
                revoked_at=None,
            )
            .returning(tokens.c.id)
        ).scalar_one()
        return NewToken(
            id=token_id,
            user=user,
            name=name,
            prefix=secret[:12],
            creation_timestamp=now,
            expires_at=expires_at,
            secret=secret,
        )

    # -- grants ---------------------------------------------------------------------

    def grant(self, subject: str, role: str, *, model: str | None = None, scope: str = "") -> Grant:
        """Give ``subject`` a role on ``model`` (None: every model).

        A model's managers grant reader, editor and manager on it; admins grant anything,
        including approver rights (``scope`` ``stage:<Stage>`` or ``alias:<alias>``).
        """
        if model is not None:
            validate_model_name(model, "model")
        subject = parse_subject(subject)
        check_role(role)
        scope = parse_scope(scope, role)
        if scope:  # an approver's stage or alias: one that can exist here
            kind, target = scope.split(":", 1)
            scope = ":".join(validate_target(kind, target, self.stages))
        with self._tx(write=True) as conn:
            model_row = self._grant_target(conn, model, "grant.create", role)
            self._check_subject(conn, subject)
            model_id = None if model_row is None else model_row.id
            existing = conn.execute(
                select(grants.c.id).where(
                    grants.c.model_id.is_(None) if model_id is None else grants.c.model_id == model_id,
                    grants.c.subject == subject,
                    grants.c.role == role,
                    grants.c.scope == scope,
                )
            ).scalar_one_or_none()
            if existing is None:
                existing = conn.execute(
                    insert(grants)
                    .values(
                        model_id=model_id,
                        subject=subject,
                        role=role,
                        scope=scope,
                        created_by=self.actor,
                        creation_timestamp=now_ms(),
                    )
                    .returning(grants.c.id)
                ).scalar_one()
                after = {"subject": subject, "role": role, "scope": scope, "grant": existing}
                self._audit(conn, "grant.create", _grant_target(model), None, after)
            return self._grants(conn, grants.c.id == existing)[0]

    def revoke_grant(self, grant_id: int) -> None:
        """Remove a grant (its model's manager, or an admin for grants on every model)."""
        validate_id(grant_id, "id")
        with self._tx(write=True) as conn:
            found = self._grants(conn, grants.c.id == grant_id)
            if not found:
                raise NotFound(f"grant {grant_id} does not exist")
            g = found[0]
            self._grant_target(conn, g.model, "grant.delete", g.role)
            conn.execute(delete(grants).where(grants.c.id == grant_id))
            before = {"subject": g.subject, "role": g.role, "scope": g.scope, "grant": g.id}
            self._audit(conn, "grant.delete", _grant_target(g.model), before, None)

    def list_grants(self, *, model: str | None = None, subject: str | None = None) -> list[Grant]:
        """Grants on one model (and on every model), or of one subject; non-admins see models they may read."""
        if model is not None:
            validate_model_name(model, "model")
        readable = self.readable_model_ids() if model is None else None
        with self._tx(write=False) as conn:
            conds: list[Any] = []
            if readable is not None:
                conds.append(grants.c.model_id.is_(None) | grants.c.model_id.in_(readable))
            if model is not None:
                row = self._model_row(conn, model)
                self.require(conn, row, "reader", "grant.list")
                conds.append((grants.c.model_id == row.id) | grants.c.model_id.is_(None))
            if subject is not None:
                conds.append(grants.c.subject == parse_subject(subject))
            return self._grants(conn, and_(true(), *conds))

    def _grant_target(self, conn: Connection, model: str | None, action: str, role: str = "") -> Row[Any] | None:
        if model is None or model == "*":
            self.require_admin(action, "model:*")
            return None
        if role == "approver":
            # Managers would otherwise make themselves approvers of their own models' promotions.
            self.require_admin(action, f"model:{model}")
        row = self._model_row(conn, model, lock=True)
        self.require(conn, row, "manager", action)
        return row

    def _check_subject(self, conn: Connection, subject: str) -> None:
        if subject == EVERYONE:
            return
        kind, _, name = subject.partition(":")
        table = users if kind == "user" else groups
        if conn.execute(select(table.c.id).where(table.c.name == name)).first() is None:
            raise NotFound(f"{kind} {name!r} does not exist")

    def _grants(self, conn: Connection, cond: Any) -> list[Grant]:
        rows = conn.execute(
            select(grants, models.c.name.label("model"))
            .outerjoin(models, models.c.id == grants.c.model_id)
            .where(cond)
            .order_by(grants.c.id)
        )
        return [
            Grant(
                id=r.id,
                model=r.model,
                subject=r.subject,
                role=r.role,
                scope=r.scope,
                created_by=r.created_by,
                creation_timestamp=r.creation_timestamp,
            )
            for r in rows
        ]


def _grant_target(model: str | None) -> str:
    return "model:*" if model in (None, "*") else f"model:{model}"


def _token(r: Row[Any]) -> Token:
    return Token(
        id=r.id,
        user=r.user,
        name=r.name,
        prefix=r.prefix,
        creation_timestamp=r.creation_timestamp,
        expires_at=r.expires_at,
        revoked_at=r.revoked_at,
    )


__all__ = ["AccessService"]
