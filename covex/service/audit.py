"""Reading the audit trail: list records, verify the hash chain, export it as JSON Lines.

Reading takes admin rights or membership of the group ``auditors`` (people who check the
trail need not be able to change the registry). A refused read is itself audited.
Verify and export stream the trail in one consistent snapshot, in batches, so a trail of
millions of records never sits in memory.
"""

from __future__ import annotations

import base64
import io
import itertools
import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import IO, Any

from sqlalchemy import Connection, select

from covex.domain import audit
from covex.domain.audit import AuditRecord, ChainReport
from covex.domain.entities import Page
from covex.domain.errors import InvalidInput
from covex.domain.names import check_encodable
from covex.service.base import Refused, ServiceBase
from covex.store import search
from covex.store.schema import audit_head, audit_log

AUDITORS = "auditors"
BATCH = 10_000  # rows per fetch while streaming
_COLUMNS = [audit_log.c[name] for name in audit.COLUMNS]


class AuditService(ServiceBase):
    """The tamper-evident audit trail: list, verify, export."""

    def list_records(
        self,
        *,
        target: str | None = None,
        actor: str | None = None,
        action: str | None = None,
        outcome: str | None = None,
        since: int | datetime | None = None,
        until: int | datetime | None = None,
        max_results: int = 100,
        page_token: str | None = None,
    ) -> Page[AuditRecord]:
        """Records newest first, filtered.

        ``target`` matches itself and what lies under it (``model:churn`` also matches
        ``model:churn/3`` and ``model:churn@champion``); ``target`` and ``action`` ending in
        ``*`` match by prefix (``user:*``, ``model.*``). ``since``/``until`` are datetimes or
        epoch milliseconds (``until`` exclusive).
        """
        for field, value in (("target", target), ("actor", actor), ("action", action), ("outcome", outcome)):
            if value is not None:
                check_encodable(value, field)  # the same answer on SQLite and PostgreSQL
        self._require_reader("audit.list")
        limit = search.check_max_results(max_results)
        q = select(*_COLUMNS).order_by(audit_log.c.seq.desc()).limit(limit + 1)
        before_seq = _decode_token(page_token)
        if before_seq is not None:
            q = q.where(audit_log.c.seq < before_seq)
        if target:
            col = audit_log.c.target
            if target.endswith("*"):
                q = q.where(col.startswith(target[:-1], autoescape=True))
            else:
                q = q.where(
                    (col == target)
                    | col.startswith(target + "/", autoescape=True)
                    | col.startswith(target + "@", autoescape=True)
                )
        if action:
            col = audit_log.c.action
            q = q.where(col.startswith(action[:-1], autoescape=True) if action.endswith("*") else col == action)
        if actor:
            q = q.where(audit_log.c.actor == actor)
        if outcome:
            q = q.where(audit_log.c.outcome == outcome)
        if since is not None:
            q = q.where(audit_log.c.timestamp >= _millis(since, "since"))
        if until is not None:
            q = q.where(audit_log.c.timestamp < _millis(until, "until"))
        with self._tx(write=False) as conn:
            rows = conn.execute(q).all()
        items = [AuditRecord.model_validate(row._mapping) for row in rows[:limit]]
        token = _encode_token(items[-1].seq) if len(rows) > limit else None
        return Page[AuditRecord](items=items, next_page_token=token)

    def verify(self, expect_head: str | None = None) -> ChainReport:
        """Recompute the whole chain and compare it with the head; name the first broken record.

        ``expect_head`` (``SEQ:HASH``, a head saved earlier) must still be part of the chain: the
        trail may have grown since, but nothing up to that record changed and nothing was cut.
        """
        saved = None if expect_head is None else audit.parse_head(expect_head)
        self._require_reader("audit.verify")
        with self._snapshot() as conn:
            head = _head(conn)
            report = audit.verify_rows(_stream(conn), head=head)
            if saved is None or not report.ok:
                return report
            stored = conn.execute(select(audit_log.c.hash).where(audit_log.c.seq == saved[0])).scalar_one_or_none()
        return audit.against_saved_head(report, saved, stored)

    def export(self, out: str | os.PathLike[str] | IO[bytes] | IO[str]) -> int:
        """Write the trail as JSON Lines (then a head line) to a path or stream; return the record count."""
        chunks = self.export_chunks()
        if isinstance(out, (str, os.PathLike)):
            with open(out, "wb") as f:
                return _write(chunks, f)
        return _write(chunks, out)

    def export_chunks(self) -> Iterator[bytes]:
        """The export as byte chunks (for streaming over HTTP); rights are checked now, not on first read."""
        self._require_reader("audit.export")
        return self._export_chunks()

    def _export_chunks(self) -> Iterator[bytes]:
        with self._snapshot() as conn:
            head = _head(conn)
            line = audit.export_line
            for batch in _batches(conn):
                yield "".join([line(row) for row in batch]).encode()
            yield audit.head_line(*head).encode()

    @staticmethod
    def verify_file(source: str | os.PathLike[str] | IO[bytes] | IO[str]) -> ChainReport:
        """Verify an export offline (no database): a path or an open stream."""
        return audit.verify_file(source)

    # -- helpers ----------------------------------------------------------------------

    def may_read(self) -> bool:
        """Whether the principal may read the audit trail (admins and members of the auditors group)."""
        return self.principal.is_admin or AUDITORS in self.principal.groups

    def _require_reader(self, action: str) -> None:
        if self.may_read():
            return
        exc = Refused(
            f"{self.principal.name!r} may not read the audit trail: "
            f"it needs admin rights or membership of the group '{AUDITORS}'",
            action=action,
            target="audit",
        )
        self.record_refusal(exc.action, exc.target, exc.message)
        raise exc

    @contextmanager
    def _snapshot(self) -> Iterator[Connection]:
        """A read transaction that sees one moment of the trail, however long it streams."""
        options: dict[str, Any] = {"covex_write": False}
        if self.engine.dialect.name == "postgresql":
            # Read committed would let appends land between reading the head and the rows.
            options.update(isolation_level="REPEATABLE READ", postgresql_readonly=True)
        # SQLite (WAL): a deferred read transaction already reads one snapshot.
        with self.engine.connect().execution_options(**options) as conn, conn.begin():
            yield conn


def _head(conn: Connection) -> tuple[int, str]:
    row = conn.execute(select(audit_head.c.seq, audit_head.c.hash).where(audit_head.c.id == 1)).one()
    return int(row.seq), str(row.hash)


def _stream(conn: Connection) -> Iterator[Any]:
    """Every row in seq order, as plain tuples."""
    return itertools.chain.from_iterable(_batches(conn))


def _batches(conn: Connection) -> Iterator[list[Any]]:
    """Every row in seq order, as lists of up to ``BATCH`` plain tuples.

    The driver's own cursor: SQLAlchemy's Row objects would cost as much as the hashing
    (about 3 us a row). On PostgreSQL a named (server-side) cursor keeps memory flat.
    """
    sql = str(select(*_COLUMNS).order_by(audit_log.c.seq).compile(dialect=conn.dialect))
    driver = conn.connection.driver_connection
    assert driver is not None
    if conn.dialect.name == "postgresql":
        cursor = driver.cursor(name="covex_audit_stream")
        cursor.itersize = BATCH
    else:
        cursor = driver.cursor()
        cursor.arraysize = BATCH
    try:
        cursor.execute(sql)
        while rows := cursor.fetchmany(BATCH):
            yield rows
    finally:
        cursor.close()


def _write(chunks: Iterator[bytes], out: IO[bytes] | IO[str]) -> int:
    count = -1  # the head line is not a record
    text = isinstance(out, io.TextIOBase)
    for chunk in chunks:
        count += chunk.count(b"\n")
        out.write(chunk.decode() if text else chunk)  # type: ignore[arg-type]
    out.flush()
    return count


def _millis(value: int | datetime, field: str) -> int:
    if isinstance(value, datetime):
        return int(value.timestamp() * 1000)
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidInput(f"'{field}' must be a datetime or epoch milliseconds, got {value!r}")
    return value


def _encode_token(seq: int) -> str:
    return base64.urlsafe_b64encode(json.dumps({"before_seq": seq}).encode()).decode().rstrip("=")


def _decode_token(token: str | None) -> int | None:
    if not token:
        return None
    try:
        padded = token + "=" * (-len(token) % 4)
        seq = json.loads(base64.urlsafe_b64decode(padded.encode()))["before_seq"]
        if type(seq) is not int:
            raise ValueError
        return seq
    except (ValueError, KeyError, TypeError):
        raise InvalidInput("'page_token' is not a token this server issued") from None
