"""The audit trail's records and their hash chain. Pure: no I/O.

Each record's ``hash`` is the SHA-256 of its canonical JSON form, which holds
every field and the previous record's hash (``prev_hash``); the first record's
``prev_hash`` is 64 zeros. Altering, deleting or reordering any record breaks
the chain at that record, which is what ``verify_chain`` reports.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from typing import Any

from pydantic import BaseModel, ConfigDict

GENESIS = "0" * 64
FIELDS = ("seq", "timestamp", "actor", "action", "target", "outcome", "before", "after", "request_id", "prev_hash")


class AuditRecord(BaseModel):
    """One audited action: who did what to which target, what changed, and whether it was refused."""

    model_config = ConfigDict(frozen=True)

    seq: int
    timestamp: int
    actor: str
    action: str
    target: str
    outcome: str
    before: str | None = None  # JSON text, exactly as hashed
    after: str | None = None
    request_id: str
    prev_hash: str
    hash: str


class ChainReport(BaseModel):
    """What ``verify`` found: how many records it checked and the first broken one, if any."""

    model_config = ConfigDict(frozen=True)

    ok: bool
    records: int
    last_seq: int
    last_hash: str
    first_bad_seq: int | None = None
    problem: str = ""


def canonical(record: Mapping[str, Any]) -> bytes:
    """The bytes a record's hash covers: its fields as compact JSON with sorted keys."""
    return json.dumps({k: record[k] for k in FIELDS}, sort_keys=True, separators=(",", ":")).encode()


def record_hash(record: Mapping[str, Any]) -> str:
    return hashlib.sha256(canonical(record)).hexdigest()


def verify_chain(records: Iterable[Mapping[str, Any]], *, head: tuple[int, str] | None = None) -> ChainReport:
    """Recompute the chain over ``records`` (in stored order) and report the first break.

    ``head`` is the (seq, hash) the store says is last: checking it catches deleted newest records.
    """
    expected_prev, expected_seq, count = GENESIS, 1, 0
    last_seq = 0
    for r in records:
        count += 1
        seq = r.get("seq")
        if seq != expected_seq:
            problem = (
                f"record {seq} is out of order or records before it were deleted (expected {expected_seq})"
                if isinstance(seq, int) and seq > expected_seq
                else f"record {seq} is out of order (expected {expected_seq})"
            )
            return _broken(count - 1, last_seq, expected_prev, expected_seq, problem)
        if r.get("prev_hash") != expected_prev:
            return _broken(count - 1, last_seq, expected_prev, seq, f"record {seq} does not link to record {seq - 1}")
        try:
            computed = record_hash(r)
        except (KeyError, TypeError, ValueError):
            return _broken(count - 1, last_seq, expected_prev, seq, f"record {seq} is malformed")
        if computed != r.get("hash"):
            return _broken(count - 1, last_seq, expected_prev, seq, f"record {seq} was altered (hash mismatch)")
        expected_prev, expected_seq, last_seq = computed, seq + 1, seq
    if head is not None and head != (last_seq, expected_prev):
        head_seq, _ = head
        if head_seq > last_seq:
            problem = f"records {last_seq + 1}..{head_seq} were deleted (the chain head is at {head_seq})"
        else:
            problem = f"the chain head ({head_seq}) does not match the last record ({last_seq})"
        return _broken(count, last_seq, expected_prev, last_seq + 1, problem)
    return ChainReport(ok=True, records=count, last_seq=last_seq, last_hash=expected_prev)


def _broken(checked: int, last_seq: int, last_hash: str, bad: int, problem: str) -> ChainReport:
    return ChainReport(
        ok=False, records=checked, last_seq=last_seq, last_hash=last_hash, first_bad_seq=bad, problem=problem
    )


def to_json(value: Any) -> str | None:
    """How before/after values are stored: compact JSON (None stays None)."""
    if value is None:
        return None
    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)
