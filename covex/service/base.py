"""What every service shares: transactions, the acting principal, permission checks, audit and events.

Each mutation appends its audit record (and its webhook deliveries) in the
transaction that makes the change, as the last step, so the audit chain's head
row is locked only briefly. A refused attempt (``PermissionDenied``) is recorded
in a transaction of its own after the refused one rolled back.
"""

from __future__ import annotations

import copy
import json
import logging
import time
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Self, TypeVar

from sqlalchemy import Connection, Engine, Row, bindparam, insert, select, update
from sqlalchemy.exc import InterfaceError, OperationalError

from covex.artifacts import BlobStore
from covex.domain import audit
from covex.domain.access import RANK, Principal, hash_token
from covex.domain.entities import Model, ModelVersion
from covex.domain.errors import NotFound, PermissionDenied, ServiceUnavailable, Unauthenticated
from covex.domain.names import validate_id, validate_model_name, validate_stage
from covex.domain.signing import Signer
from covex.service.refusals import AnonymousRefusals, Tally
from covex.store import database, queries
from covex.store.prepared import Prepared
from covex.store.schema import (
    audit_head,
    audit_log,
    grants,
    group_members,
    groups,
    model_versions,
    models,
    tokens,
    users,
    webhook_deliveries,
    webhooks,
)

log = logging.getLogger("covex.service")

S = TypeVar("S", bound="ServiceBase")


def now_ms() -> int:
    return time.time_ns() // 1_000_000


class Refused(PermissionDenied):
    """A ``PermissionDenied`` that knows what was attempted, for the audit trail."""

    def __init__(self, message: str, *, action: str, target: str) -> None:
        super().__init__(message)
        self.action = action
        self.target = target


@dataclass(frozen=True)
class Limits:
    """What a registry refuses or cleans up by size and age (from ``Settings``)."""

    max_files: int = 50_000
    pending_timeout: float = 24 * 3600.0
    anonymous_audit_interval: float = 60.0


class ServiceBase:
    """Shared plumbing of the registry's services. Construct once; ``as_principal`` per caller."""

    def __init__(
        self,
        engine: Engine,
        blobs: BlobStore,
        stages: Sequence[str],
        principal: Principal | str = "",
        request_id: str = "",
        limits: Limits | None = None,
    ) -> None:
        self.engine = engine
        self.limits = limits or Limits()
        # Shared by every copy of this service (``as_principal``, ``with_credentials``).
        self.refusals = AnonymousRefusals(self.limits.anonymous_audit_interval)
        self.source = "local"
        self.blobs = blobs
        # The registry's signing key (``covex.service.signing``; None: it signs nothing), and whether a version
        # is scanned in the caller's thread as it turns READY (a server scans in the background instead).
        self.signer: Signer | None = None
        self.scan_inline = True
        self.stages = list(stages)
        self._principal: Principal | None = (
            Principal.local_admin(principal) if isinstance(principal, str) else principal
        )
        # An API token not checked yet: the first transaction checks it (see ``with_credentials``).
        self._credentials: str | None = None
        self._user: str | None = None
        self._check_every_call = False
        self.request_id = request_id
        self.initial_stage = self.stages[0]
        lowered = {s.lower(): s for s in self.stages}
        self.archive_stage = lowered.get("archived", self.stages[-1])
        self._stage_by_lower = lowered

    @property
    def principal(self) -> Principal:
        """Who this service acts as; a pending API token is checked on first use."""
        if self._principal is None:
            with self._tx(write=False):
                pass
        assert self._principal is not None
        return self._principal

    @principal.setter
    def principal(self, value: Principal) -> None:
        self._principal, self._credentials, self._check_every_call = value, None, False

    @property
    def actor(self) -> str:
        return self.principal.name

    def as_principal(self, principal: Principal, request_id: str = "") -> Self:
        """The same service, acting (and audited) as ``principal``."""
        clone = copy.copy(self)
        clone.principal = principal
        clone.request_id = request_id
        clone.__dict__.pop("_siblings", None)
        return clone

    def with_credentials(
        self,
        token: str | None,
        request_id: str = "",
        *,
        every_call: bool = False,
        source: str = "local",
        user: str | None = None,
    ) -> Self:
        """The same service, acting as the owner of API ``token``.

        The token is checked inside the first transaction the caller's action opens, so
        authentication costs no transaction of its own; a bad token raises ``Unauthenticated``.
        ``every_call`` checks it again in every transaction (a long-lived embedded client:
        revoking the token, disabling the user or changing its groups applies at once).
        ``source`` (the client's address) is what refusals without a valid token are counted by.
        ``user`` (basic auth's user name) must be the token's owner.
        """
        clone = copy.copy(self)
        clone._principal, clone._credentials = None, token or ""
        clone._user = user
        clone._check_every_call = every_call
        clone.request_id = request_id
        clone.source = source
        clone.__dict__.pop("_siblings", None)
        return clone

    def _sibling(self, cls: type[S]) -> S:
        """Another service over the same database, blobs and principal (``self`` when it is one)."""
        if isinstance(self, cls):
            return self
        siblings: dict[type[Any], Any] = self.__dict__.setdefault("_siblings", {})
        if cls not in siblings:
            other = object.__new__(cls)
            other.__dict__.update({k: v for k, v in self.__dict__.items() if k != "_siblings"})
            siblings[cls] = other
        return siblings[cls]  # type: ignore[no-any-return]

    # -- transactions ---------------------------------------------------------------

    @contextmanager
    def _tx(self, write: bool) -> Iterator[Connection]:
        try:
            with database.transaction(self.engine, write=write) as conn:
                conn.info["covex_request_id"] = self.request_id or uuid.uuid4().hex
                if self._principal is None or self._check_every_call:
                    self._principal = _authenticate(conn, self._credentials, self._user)
                    if not self._check_every_call:
                        self._credentials = None
                yield conn
        except Refused as exc:
            if database.may_start_over():  # on the event loop: audit it from the thread that runs the call again
                raise database.WriteWouldWait from None
            self.record_refusal(exc.action, exc.target, exc.message)
            raise
        except Unauthenticated as exc:
            if database.may_start_over():  # the same: auditing it may wait for the write lock
                raise database.WriteWouldWait from None
            self._refuse_anonymous(exc.message)
            raise
        except (OperationalError, InterfaceError) as exc:
            # The database went away or stays locked: say so, the same on every backend; the log has why.
            log.warning("database unavailable: %s", exc)
            raise ServiceUnavailable("the database is unavailable; see the server log") from None

    def record_refusal(self, action: str, target: str, reason: str, *, actor: str | None = None) -> None:
        """Append a refused attempt to the audit trail, in its own transaction."""
        with database.transaction(self.engine, write=True) as conn:
            conn.info["covex_request_id"] = self.request_id or uuid.uuid4().hex
            self._audit(conn, action, target, after={"reason": reason}, outcome="refused", actor=actor)

    def _refuse_anonymous(self, reason: str) -> None:
        """Audit a refusal without a valid token: the first per source and interval, then counts."""
        record, due = self.refusals.admit(self.source, reason, time.monotonic())
        if record or due:
            self._record_anonymous(due, {"reason": reason, "source": self.source} if record else None)

    def flush_refusals(self, *, everything: bool = False) -> int:
        """Record the counts of refusals without a valid token whose interval is over; return how many."""
        due = self.refusals.due(time.monotonic(), everything=everything)
        if due:
            self._record_anonymous(due, None)
        return len(due)

    def _record_anonymous(self, counts: list[Tally], single: dict[str, Any] | None) -> None:
        with database.transaction(self.engine, write=True) as conn:
            conn.info["covex_request_id"] = self.request_id or uuid.uuid4().hex
            for tally in counts:
                after = {
                    "reason": tally.reason,
                    "source": tally.source,
                    "count": tally.count,
                    "interval_s": self.refusals.interval,
                }
                self._audit(conn, "authenticate", "token", after=after, outcome="refused", actor="")
            if single is not None:
                self._audit(conn, "authenticate", "token", after=single, outcome="refused", actor="")

    # -- stages ---------------------------------------------------------------------

    def stage(self, name: str) -> str:
        """The configured stage called ``name`` (case-insensitive), or ``InvalidInput``."""
        if isinstance(name, str) and name.lower() in self._stage_by_lower:
            return self._stage_by_lower[name.lower()]
        return validate_stage(name, self.stages)

    # -- permissions ----------------------------------------------------------------

    def _model_row(self, conn: Connection, name: str, *, lock: bool = False) -> Row[Any]:
        validate_model_name(name)
        # Every change to a model's versions, stages or aliases holds this row lock,
        # so concurrent writers on one model are serialised (SQLite: BEGIN IMMEDIATE).
        q = _MODEL_LOCKED if lock else _MODEL
        row: Row[Any] | None = q.one_or_none(conn, {"name": name})
        if row is None:
            raise NotFound(f"model {name!r} does not exist")
        return row

    def _model_for(self, conn: Connection, name: str, role: str, action: str, *, lock: bool = True) -> Row[Any]:
        """Load model ``name`` (locked, for a change) and check the principal holds ``role`` for ``action``."""
        model = self._model_row(conn, name, lock=lock)
        self.require(conn, model, role, action)
        return model

    def _version_for(
        self, conn: Connection, name: str, version: int, role: str, action: str, *, lock: bool = True
    ) -> tuple[Row[Any], Row[Any]]:
        """Lock the model, check ``role`` for ``action``, load the version: the preamble of a version change."""
        model = self._model_for(conn, name, role, action, lock=lock)
        return model, self._version_row(conn, model, version)

    def _version_row(self, conn: Connection, model: Row[Any], version: int) -> Row[Any]:
        validate_id(version, "version")
        row = conn.execute(queries.VERSION_BY_NUMBER, {"model_id": model.id, "version": version}).one_or_none()
        if row is None:
            raise NotFound(f"version {version} of model {model.name!r} does not exist")
        return row

    def _model(self, conn: Connection, row: Row[Any]) -> Model:
        return queries.load_models(conn, [row])[0]

    def _version(self, conn: Connection, row: Row[Any]) -> ModelVersion:
        return queries.load_versions(conn, [row])[0]

    def _touch_model(self, conn: Connection, model_id: int, now: int) -> None:
        conn.execute(update(models).where(models.c.id == model_id).values(last_updated_timestamp=now))

    def _touch_version(self, conn: Connection, version_id: int, now: int, **values: Any) -> None:
        conn.execute(
            update(model_versions).where(model_versions.c.id == version_id).values(last_updated_timestamp=now, **values)
        )

    def model_role(self, conn: Connection, model_id: int) -> int:
        """The principal's rank on a model: 0 none, 1 reader, 2 editor, 3 manager (admins: 3)."""
        if self.principal.is_admin:
            return RANK["manager"]
        roles = conn.execute(_ROLES, {"subjects": self.principal.subjects, "model_id": model_id}).scalars()
        return max((RANK.get(r, 0) for r in roles), default=0)

    def require(self, conn: Connection, model: Any, role: str, action: str) -> None:
        """Raise ``PermissionDenied`` unless the principal holds ``role`` (or more) on ``model`` (``id``, ``name``)."""
        if self.model_role(conn, model.id) < RANK[role]:
            raise Refused(
                f"{self.principal.name!r} may not {_phrase(action)} on model {model.name!r}: it needs the {role} role",
                action=action,
                target=f"model:{model.name}",
            )

    def require_admin(self, action: str, target: str) -> None:
        if not self.principal.is_admin:
            raise Refused(
                f"{self.principal.name!r} may not {_phrase(action)}: it needs admin rights",
                action=action,
                target=target,
            )

    def readable_model_ids(self, conn: Connection | None = None) -> Any:
        """A subquery of model ids the principal may read, or None when it may read every model."""
        if conn is None:
            with self._tx(write=False) as own:
                return self.readable_model_ids(own)
        if self.principal.is_admin:
            return None
        subjects = self.principal.subjects
        if conn.execute(_READS_ALL, {"subjects": subjects}).first():
            return None
        return select(grants.c.model_id).where(grants.c.subject.in_(subjects), grants.c.role.in_(list(RANK)))

    # -- audit and events -----------------------------------------------------------

    def _audit(
        self,
        conn: Connection,
        action: str,
        target: str,
        before: Any = None,
        after: Any = None,
        *,
        outcome: str = "ok",
        actor: str | None = None,
    ) -> None:
        """Append one record to the hash-chained audit trail, in ``conn``'s transaction."""
        (head,) = _HEAD.all(conn, {})
        record = {
            "seq": head.seq + 1,
            "timestamp": now_ms(),
            "actor": self.principal.name if actor is None else actor,
            "action": action,
            "target": target,
            "outcome": outcome,
            "before": audit.to_json(before),
            "after": audit.to_json(after),
            "request_id": conn.info.get("covex_request_id") or self.request_id,
            "prev_hash": head.hash,
        }
        record["hash"] = audit.record_hash(record)
        _APPEND.all(conn, record)
        _ADVANCE.all(conn, {"new_seq": record["seq"], "new_hash": record["hash"]})

    def _emit(self, conn: Connection, event: str, data: dict[str, Any], model_id: int | None = None) -> None:
        """Queue ``event`` for every webhook subscribed to it (the outbox), in ``conn``'s transaction."""
        q = _WEBHOOKS_GLOBAL if model_id is None else _WEBHOOKS_ON_MODEL
        targets = [r.id for r in q.all(conn, {"model_id": model_id}) if _subscribed(json.loads(r.events), event)]
        if not targets:
            return
        now = now_ms()
        event_id = uuid.uuid4().hex
        payload = json.dumps(
            {"id": event_id, "event": event, "timestamp": now, "actor": self.principal.name, "data": data},
            sort_keys=True,
        )
        conn.execute(
            insert(webhook_deliveries),
            [
                {
                    "webhook_id": w,
                    "event_id": event_id,
                    "event": event,
                    "payload": payload,
                    "status": "pending",
                    "attempts": 0,
                    "next_attempt_at": now,
                    "last_error": "",
                    "creation_timestamp": now,
                }
                for w in targets
            ],
        )


def _authenticate(conn: Connection, secret: str | None, user: str | None = None) -> Principal:
    """The principal an API token belongs to (who must be ``user`` when given), or ``Unauthenticated``."""
    if not secret:
        raise Unauthenticated("no API token: send 'Authorization: Bearer <token>'")
    rows = _TOKEN.all(conn, {"token_hash": hash_token(secret)})  # one row per group
    if not rows:
        raise Unauthenticated("the API token is not valid")
    row = rows[0]
    if row.revoked_at is not None:
        raise Unauthenticated("the API token was revoked")
    if row.expires_at is not None and row.expires_at <= now_ms():
        raise Unauthenticated("the API token has expired")
    if user is not None and user != row.name:
        raise Unauthenticated("the password is not an API token of that user")
    if row.disabled:
        raise Unauthenticated(f"user {row.name!r} is disabled")
    return Principal(
        name=row.name,
        is_admin=bool(row.is_admin),
        groups=tuple(sorted(r.group_name for r in rows if r.group_name is not None)),
        kind=row.kind,
        token_expires_at=row.expires_at,
        token_id=row.token_id,
    )


# Statements built once: building them per call costs more than running them.
_TOKEN = Prepared(
    select(
        tokens.c.id.label("token_id"),
        tokens.c.expires_at,
        tokens.c.revoked_at,
        users.c.name,
        users.c.kind,
        users.c.is_admin,
        users.c.disabled,
        groups.c.name.label("group_name"),
    )
    .select_from(
        tokens.join(users, users.c.id == tokens.c.user_id)
        .outerjoin(group_members, group_members.c.user_id == users.c.id)
        .outerjoin(groups, groups.c.id == group_members.c.group_id)
    )
    .where(tokens.c.token_hash == bindparam("token_hash"))
)
_READS_ALL = (
    select(grants.c.id)
    .where(
        grants.c.subject.in_(bindparam("subjects", expanding=True)),
        grants.c.model_id.is_(None),
        grants.c.role.in_(list(RANK)),
    )
    .limit(1)
)
_MODEL = Prepared(queries.MODEL_BY_NAME)
_MODEL_LOCKED = Prepared(queries.MODEL_BY_NAME_LOCKED)
_HEAD = Prepared(select(audit_head.c.seq, audit_head.c.hash).where(audit_head.c.id == 1).with_for_update())
_APPEND = Prepared(
    insert(audit_log),
    keys=(
        "seq",
        "timestamp",
        "actor",
        "action",
        "target",
        "outcome",
        "before",
        "after",
        "request_id",
        "prev_hash",
        "hash",
    ),
)
_ADVANCE = Prepared(
    update(audit_head).where(audit_head.c.id == 1).values(seq=bindparam("new_seq"), hash=bindparam("new_hash"))
)
# Active webhooks hearing of a change: to any model (global ones), or to model ``model_id``.
_WEBHOOKS_GLOBAL = Prepared(
    select(webhooks.c.id, webhooks.c.events).where(webhooks.c.active.is_(True), webhooks.c.model_id.is_(None))
)
_WEBHOOKS_ON_MODEL = Prepared(
    select(webhooks.c.id, webhooks.c.events).where(
        webhooks.c.active.is_(True), webhooks.c.model_id.is_(None) | (webhooks.c.model_id == bindparam("model_id"))
    )
)
_ROLES = select(grants.c.role).where(
    grants.c.subject.in_(bindparam("subjects", expanding=True)),
    (grants.c.model_id == bindparam("model_id")) | grants.c.model_id.is_(None),
)


def _phrase(action: str) -> str:
    """``version.tag.set`` → ``set version tag``: an audit action read as words."""
    *what, verb = action.replace("_", " ").split(".")
    return " ".join([verb, *what]) if what else verb


def _subscribed(events: list[str], event: str) -> bool:
    return "*" in events or event in events or f"{event.split('.')[0]}.*" in events
