"""Signed promotions: the registry's key, the keys it trusts, statements about versions, ``verify``.

When a version enters a stage or alias that a policy protects, the registry signs a statement
(``covex.domain.signing``) in the same transaction as the move: model, version, manifest digest,
target, the request with its gate results and reviews, time and key id. The private key lives in
a file or an environment variable (``Settings.signing_key_file`` / ``signing_key_env``), never in
the database; its public half is recorded in ``signing_keys`` the first time it signs, so
statements keep verifying after the key is rotated. A registry without a key signs nothing.
"""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import Connection, Row, delete, insert, select

from covex.artifacts import manifest_digest
from covex.domain import signing as dom
from covex.domain.errors import AlreadyExists, InvalidInput, NotFound
from covex.domain.names import MAX_NAME_LENGTH, validate_id, validate_model_name, validate_text
from covex.domain.signing import SigningKey, Statement, StatementCheck, Verification
from covex.service.base import ServiceBase, now_ms
from covex.service.scans import ScanService
from covex.store import queries
from covex.store.schema import models, request_reviews, transition_requests
from covex.store.trust_schema import bundle_imports, signing_keys, version_statements

_STATEMENTS = select(version_statements, models.c.name.label("model_name")).select_from(
    version_statements.join(models, models.c.id == version_statements.c.model_id)
)


def _key(row: Any) -> SigningKey:
    return SigningKey(
        key_id=row.key_id,
        public_key=row.public_key,
        name=row.name,
        origin=row.origin,
        created_at=row.created_at,
        created_by=row.created_by,
    )


def _statement(row: Any) -> Statement:
    return Statement(
        id=row.id,
        model=row.model_name,
        version=row.version,
        key_id=row.key_id,
        body=row.body,
        signature=row.signature,
        origin=row.origin,
        created_at=row.created_at,
    )


class SigningService(ServiceBase):
    """The registry's signing key, trusted keys, and statements about versions."""

    # -- keys ---------------------------------------------------------------------------

    def list_keys(self) -> list[SigningKey]:
        """The registry's own public keys (newest first) and the keys it trusts; any signed-in caller."""
        with self._tx(write=False) as conn:
            rows = conn.execute(select(signing_keys).order_by(signing_keys.c.origin, signing_keys.c.created_at.desc()))
            found = [_key(r) for r in rows]
        current = self._current_key()
        if current is not None and current.key_id not in {k.key_id for k in found}:
            found.insert(0, current)  # recorded the first time it signs
        return found

    def trust_key(self, name: str, public_key: str) -> SigningKey:
        """Trust another registry's public key (base64 or PEM) for its statements and bundles; the admin's."""
        name = validate_text(name, "name", MAX_NAME_LENGTH, required=True)
        public = dom.public_key_of(public_key)
        key_id = dom.key_id_of_text(public)
        with self._tx(write=True) as conn:
            self.require_admin("key.trust", f"key:{key_id}")
            found = conn.execute(select(signing_keys).where(signing_keys.c.key_id == key_id)).one_or_none()
            if found is not None:
                raise AlreadyExists(f"key {key_id} is known already ({found.origin}, {found.name!r})")
            values = {"key_id": key_id, "public_key": public, "name": name, "origin": "trusted"}
            conn.execute(insert(signing_keys).values(**values, created_at=now_ms(), created_by=self.actor))
            self._audit(conn, "key.trust", f"key:{key_id}", None, {"name": name, "public_key": public})
            return _key(conn.execute(select(signing_keys).where(signing_keys.c.key_id == key_id)).one())

    def untrust_key(self, key_id: str) -> None:
        """Stop trusting a key: another registry's, or an earlier key of this one (a rotated key that leaked);
        statements it signed no longer verify. The key signing now stays."""
        key_id = validate_text(key_id, "key_id", 64, required=True)
        with self._tx(write=True) as conn:
            self.require_admin("key.untrust", f"key:{key_id}")
            found = conn.execute(select(signing_keys).where(signing_keys.c.key_id == key_id)).one_or_none()
            if found is None:
                raise NotFound(f"key {key_id!r} is not known here")
            if self.signer is not None and key_id == self.signer.key_id:
                # Earlier own keys may go (a rotated key that leaked); the one signing now stays.
                raise InvalidInput(f"key {key_id!r} is the one this registry signs with now")
            conn.execute(delete(signing_keys).where(signing_keys.c.key_id == key_id))
            self._audit(conn, "key.untrust", f"key:{key_id}", {"name": found.name}, None)

    def _own_key(self, conn: Connection) -> None:
        """Record the signer's public key the first time it signs (in a write transaction)."""
        if self.signer is None:
            return
        known = conn.execute(select(signing_keys.c.origin).where(signing_keys.c.key_id == self.signer.key_id))
        if known.scalar_one_or_none() is None:
            values = {"key_id": self.signer.key_id, "public_key": self.signer.public_key, "origin": "own"}
            conn.execute(
                insert(signing_keys).values(**values, name="this registry", created_at=now_ms(), created_by="covex")
            )
            # A new key (the first, or a rotation): worth a record, as statements now verify with it.
            self._audit(conn, "key.record", f"key:{self.signer.key_id}", None, {"public_key": self.signer.public_key})

    def known_keys(self, conn: Connection) -> dict[str, SigningKey]:
        """Every key whose signatures verify here: recorded ones and the key signing now (in any transaction:
        nothing is written)."""
        known = {r.key_id: _key(r) for r in conn.execute(select(signing_keys))}
        current = self._current_key()
        if current is not None:
            known.setdefault(current.key_id, current)
        return known

    def _current_key(self) -> SigningKey | None:
        if self.signer is None:
            return None
        values = {"key_id": self.signer.key_id, "public_key": self.signer.public_key, "name": "this registry"}
        return SigningKey(**values, origin="own", created_at=0, created_by="covex")

    # -- statements ---------------------------------------------------------------------

    def sign_promotion(
        self, conn: Connection, model: Row[Any], row: Row[Any], kind: str, target: str, request_id: int | None
    ) -> None:
        """Sign that ``row`` entered a protected stage or alias, in the move's transaction (no key: nothing)."""
        if self.signer is None:
            return
        self._own_key(conn)
        body = {
            "type": dom.PROMOTION,
            "model": model.name,
            "version": row.version,
            "manifest_digest": row.manifest_digest,
            "source": row.source,
            "target_kind": kind,
            "target": target,
            "moved_by": self.actor,
            "request": None if request_id is None else self._request_facts(conn, request_id),
            "scan": self._scan_facts(conn, row.id),
            "signed_at": now_ms(),
            "key_id": self.signer.key_id,
        }
        text = dom.canonical(body)
        values = {"model_id": model.id, "version_id": row.id, "version": row.version, "key_id": self.signer.key_id}
        conn.execute(
            insert(version_statements).values(
                **values, body=text, signature=self.signer.sign(text), origin="signed", created_at=body["signed_at"]
            )
        )

    def _scan_facts(self, conn: Connection, version_id: int) -> dict[str, Any] | None:
        """The latest scan of the version's files as the move found it."""
        scan = self._sibling(ScanService).latest_scan_of(conn, version_id)
        if scan is None:
            return None
        keys = ("id", "verdict", "max_severity", "scanner", "scanner_version", "finished_at", "accepted_by")
        return {k: getattr(scan, k) for k in keys}

    @staticmethod
    def _request_facts(conn: Connection, request_id: int) -> dict[str, Any]:
        r = conn.execute(select(transition_requests).where(transition_requests.c.id == request_id)).one()
        reviews = conn.execute(
            select(request_reviews).where(request_reviews.c.request_id == request_id).order_by(request_reviews.c.id)
        )
        policy = json.loads(r.policy or "{}")  # the rules the request was judged by
        return {
            "id": r.id,
            "kind": r.kind,
            "approvals_needed": int(policy.get("approvals", 0)),
            "forbid_self_approval": bool(policy.get("forbid_self_approval", True)),
            "requester": r.requester,
            "comment": r.comment,
            "policy_scope": r.policy_scope,
            "gates": json.loads(r.gates or "[]"),
            "reviews": [
                {"reviewer": v.reviewer, "decision": v.decision, "comment": v.comment, "timestamp": v.timestamp}
                for v in reviews
            ],
        }

    def list_statements(self, name: str, version: int) -> list[Statement]:
        """The signed statements about a version, oldest first; the reader role."""
        validate_model_name(name)
        validate_id(version, "version")
        with self._tx(write=False) as conn:
            _, row = self._version_for(conn, name, version, "reader", "statement.read", lock=False)
            return self.statements_of(conn, row.id)

    def statements_of(self, conn: Connection, version_id: int) -> list[Statement]:
        q = _STATEMENTS.where(version_statements.c.version_id == version_id).order_by(version_statements.c.id)
        return [_statement(r) for r in conn.execute(q)]

    def verify_version(self, name: str, version: int) -> Verification:
        """Check every statement about a version against the keys this registry trusts, and hash every file
        again against the manifest; the reader role."""
        validate_model_name(name)
        validate_id(version, "version")
        with self._tx(write=False) as conn:
            _, row = self._version_for(conn, name, version, "reader", "version.verify", lock=False)
            files = queries.load_files(conn, row.id)
            statements = self.statements_of(conn, row.id)
            keys = self.known_keys(conn)
            imported = conn.execute(
                select(bundle_imports.c.history).where(bundle_imports.c.version_id == row.id)
            ).scalar_one_or_none()
        origin = None
        if imported is not None:
            model_name, _, number = json.loads(imported).get("source", "").rpartition("/")
            origin = {"model": model_name, "version": int(number) if number.isdigit() else None}
        problems = []
        if files and manifest_digest(files) != row.manifest_digest:
            problems.append("the file list does not match the version's manifest digest")
        for f in files:
            found = self.blobs.hash_blob(f.digest)
            if found is None:
                problems.append(f"{f.path}: missing from the store")
            elif found != (f.digest, f.size):
                problems.append(f"{f.path}: stored bytes hash to {found[0][:12]}…, not {f.digest[:12]}…")
        here = {"model": name, "version": version, "manifest_digest": row.manifest_digest}
        checks = []
        for s in statements:
            content = s.content
            # An imported statement was signed elsewhere, about the version there (the bundle's source).
            expected = {**here, **(origin or {})} if s.origin == "imported" else here
            if "source" in content:
                expected = {**expected, "source": row.source}
            reason = dom.check_statement(content, s.body, s.signature, keys.get(s.key_id), expected)
            where = f"{content.get('target_kind')} {content.get('target')}"
            if s.origin == "imported":
                where += f" (signed for {content.get('model')}/{content.get('version')} where it was promoted)"
            checks.append(
                StatementCheck(
                    id=s.id,
                    key_id=s.key_id,
                    target=where,
                    signed_at=content.get("signed_at"),
                    valid=not reason,
                    reason=reason,
                )
            )
        return Verification(
            model=name,
            version=version,
            manifest_digest=row.manifest_digest,
            files_checked=len(files),
            problems=problems,
            statements=checks,
        )
