"""The audit trail's records and their hash chain. Pure, but for ``verify_file`` reading the export it is given.

Each record's ``hash`` is the SHA-256 of its canonical JSON form, which holds
every field and the previous record's hash (``prev_hash``); the first record's
``prev_hash`` is 64 zeros. Altering, deleting or reordering any record breaks
the chain at that record, which is what ``verify_chain`` reports.

An export is JSON Lines: one record per line with exactly the stored fields
(``before``/``after`` as the stored JSON text), then one head line
``{"head": {"seq": N, "hash": "..."}}`` that lets ``verify_lines`` notice records
cut off the end.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import os
from collections.abc import Iterable, Iterator, Mapping, Sequence
from json.encoder import encode_basestring_ascii as _quote
from operator import itemgetter
from typing import IO, Any

from pydantic import BaseModel, ConfigDict

from covex.domain.errors import InvalidInput

GENESIS = "0" * 64
FIELDS = ("seq", "timestamp", "actor", "action", "target", "outcome", "before", "after", "request_id", "prev_hash")
COLUMNS = (*FIELDS, "hash")  # a stored row / an exported line, in this order

# canonical() for a record of the usual types (two ints, strings, before/after maybe None), written
# out with json's own string escaper: byte-for-byte what json.dumps gives, about 4x faster.
_CANONICAL = (
    '{"action":%s,"actor":%s,"after":%s,"before":%s,"outcome":%s,"prev_hash":%s,'
    '"request_id":%s,"seq":%d,"target":%s,"timestamp":%d}'
)
_LINE = (
    '{"seq":%d,"timestamp":%d,"actor":%s,"action":%s,"target":%s,"outcome":%s,'
    '"before":%s,"after":%s,"request_id":%s,"prev_hash":%s,"hash":%s}\n'
)
_row_of = itemgetter(*COLUMNS)
_sha256 = hashlib.sha256


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
    """What ``verify`` found: how many records it checked and the first broken one, if any.

    ``head_checked`` says whether the last record was compared with the chain head (the
    store's, or an export's head line); without that check, records cut off the end go unnoticed.
    """

    model_config = ConfigDict(frozen=True)

    ok: bool
    records: int
    last_seq: int
    last_hash: str
    first_bad_seq: int | None = None
    problem: str = ""
    head_checked: bool = False
    saved_head_checked: bool = False

    @property
    def head(self) -> str:
        """The head as ``SEQ:HASH``: save it, and later ``verify --expect-head`` checks nothing before it changed."""
        return f"{self.last_seq}:{self.last_hash}"

    def describe(self) -> str:
        """One line saying what was found."""
        if not self.ok:
            return (
                f"audit chain broken at record {self.first_bad_seq}: {self.problem} "
                f"({self.records} records before it verified)"
            )
        note = "" if self.head_checked else " (no head line: records cut off the end would go unnoticed)"
        saved = "; the saved head is part of it" if self.saved_head_checked else ""
        return f"chain intact: {self.records} records, head {self.head}{saved}{note}"


class MalformedRecord(ValueError):
    """A record source (an export file) holds something that is not a record."""


def canonical(record: Mapping[str, Any]) -> bytes:
    """The bytes a record's hash covers: its fields as compact JSON with sorted keys."""
    return json.dumps({k: record[k] for k in FIELDS}, sort_keys=True, separators=(",", ":")).encode()


def record_hash(record: Mapping[str, Any]) -> str:
    """SHA-256 (hex) of ``canonical(record)``."""
    return values_hash(tuple(record[k] for k in FIELDS))


def values_hash(values: Sequence[Any]) -> str:
    """``record_hash`` of a record given as values in ``FIELDS`` order (a stored row works too)."""
    return _hash(*values[:10])


def _hash(
    seq: Any,
    ts: Any,
    actor: Any,
    action: Any,
    target: Any,
    outcome: Any,
    before: Any,
    after: Any,
    request_id: Any,
    prev: Any,
) -> str:
    if type(seq) is int and type(ts) is int:
        try:
            text = _CANONICAL % (
                _quote(action),
                _quote(actor),
                "null" if after is None else _quote(after),
                "null" if before is None else _quote(before),
                _quote(outcome),
                _quote(prev),
                _quote(request_id),
                seq,
                _quote(target),
                ts,
            )
            return _sha256(text.encode()).hexdigest()
        except TypeError:  # a field that is not a string: the general form decides
            pass
    values = (seq, ts, actor, action, target, outcome, before, after, request_id, prev)
    return _sha256(canonical(dict(zip(FIELDS, values, strict=True)))).hexdigest()


def verify_chain(records: Iterable[Mapping[str, Any]], *, head: tuple[int, str] | None = None) -> ChainReport:
    """Recompute the chain over ``records`` (in stored order) and report the first break.

    ``head`` is the (seq, hash) the store says is last: checking it catches deleted newest records.
    """
    return verify_rows((tuple(r.get(k) for k in COLUMNS) for r in records), head=head)


def verify_rows(rows: Iterable[Sequence[Any]], *, head: tuple[int, str] | None = None) -> ChainReport:
    """``verify_chain`` over rows holding the values of ``COLUMNS`` in order (the fast path)."""
    count, last_hash, broken = _walk(rows)
    return broken or check_head(count, last_hash, head)


def verify_lines(lines: Iterable[bytes | str]) -> ChainReport:
    """Verify an export (JSON Lines): the chain, and the head line when there is one."""
    source = _ExportLines(lines)
    count, last_hash, broken = _walk(source)
    return broken or check_head(count, last_hash, source.head)


def verify_file(source: str | os.PathLike[str] | IO[bytes] | IO[str]) -> ChainReport:
    """Verify an export (JSON Lines, as ``export`` writes it) offline: a path or an open stream."""
    if isinstance(source, (str, os.PathLike)):
        try:
            with open(source, "rb") as f:
                return verify_lines(f)
        except OSError as exc:
            raise InvalidInput(f"'file' {os.fspath(source)!r} cannot be read: {exc.strerror}") from None
    return verify_lines(source)


def _walk(rows: Iterable[Sequence[Any]]) -> tuple[int, str, ChainReport | None]:
    """Check each row links to the one before and hashes to its stored hash; stop at the first break."""
    prev, expected = GENESIS, 1
    try:
        for row in rows:
            try:
                seq, ts, actor, action, target, outcome, before, after, request_id, prev_hash, stored = row
            except (TypeError, ValueError):
                return expected - 1, prev, _broken(expected, prev, expected, f"record {expected} is malformed")
            if seq != expected:
                return expected - 1, prev, _broken(expected, prev, expected, _out_of_order(seq, expected))
            if prev_hash != prev:
                problem = (
                    f"record {seq} does not link to record {seq - 1} (its prev_hash differs from that record's "
                    f"hash): record {seq - 1} was replaced or record {seq} was altered"
                    if seq > 1
                    else f"record {seq} does not start the chain (its prev_hash is not {GENESIS[:12]}...)"
                )
                return expected - 1, prev, _broken(expected, prev, seq, problem)
            computed = _hash(seq, ts, actor, action, target, outcome, before, after, request_id, prev_hash)
            if computed != stored:
                problem = f"record {seq} was altered: its fields do not hash to its stored hash"
                return expected - 1, prev, _broken(expected, prev, seq, problem)
            prev = computed
            expected += 1
    except MalformedRecord as exc:
        return expected - 1, prev, _broken(expected, prev, expected, str(exc))
    return expected - 1, prev, None


def _out_of_order(seq: Any, expected: int) -> str:
    if isinstance(seq, int) and not isinstance(seq, bool) and seq > expected:
        gap = f"record {expected} was" if seq == expected + 1 else f"records {expected}..{seq - 1} were"
        return f"record {expected} is missing: found record {seq} in its place ({gap} deleted or moved)"
    return f"record {expected} is missing or out of order: found record {seq!r} in its place"


def check_head(count: int, last_hash: str, head: tuple[int, str] | None) -> ChainReport:
    """The report for an intact run of ``count`` records, compared with ``head`` when given."""
    if head is None:
        return ChainReport(ok=True, records=count, last_seq=count, last_hash=last_hash)
    head_seq, head_hash = head
    if head_seq > count:
        gap = f"record {head_seq} was" if head_seq == count + 1 else f"records {count + 1}..{head_seq} were"
        problem = f"{gap} deleted: the chain head is at {head_seq} but the last record is {count}"
        return _broken(count + 1, last_hash, count + 1, problem, head_checked=True)
    if head_seq < count:
        problem = f"records {head_seq + 1}..{count} lie beyond the chain head ({head_seq}): Covex did not append them"
        return _broken(count + 1, last_hash, head_seq + 1, problem, head_checked=True)
    if head_hash != last_hash:
        problem = (
            f"record {count} does not match the chain head's hash: records were rewritten or the head altered"
            if count
            else "the chain head's hash is not that of an empty chain: the head was altered"
        )
        return _broken(count + 1, last_hash, max(count, 1), problem, head_checked=True)
    return ChainReport(ok=True, records=count, last_seq=count, last_hash=last_hash, head_checked=True)


def parse_head(text: object, field: str = "expect_head") -> tuple[int, str]:
    """A head saved earlier, written ``SEQ:HASH`` (as ``covex audit verify`` prints it)."""
    seq, sep, digest = str(text).strip().partition(":")
    if not sep or not seq.isdigit() or len(seq) > 18 or len(digest) != 64 or set(digest) - set("0123456789abcdef"):
        raise InvalidInput(f"'{field}' must be SEQ:HASH (a record number and its 64-hex hash), got {text!r}")
    return int(seq), digest


def against_saved_head(report: ChainReport, saved: tuple[int, str], stored_hash: str | None) -> ChainReport:
    """Check an intact chain against a head saved earlier: the trail may have grown since, never changed.

    ``stored_hash`` is the hash the verified chain holds at the saved head's record (None: no such record).
    """
    if not report.ok:
        return report
    seq, digest = saved
    if seq == 0:
        stored_hash = GENESIS
    if stored_hash is None:
        problem = (
            f"the trail ends at record {report.last_seq}, before the saved head {seq}: records were cut off the end "
            "and the chain head rewound"
        )
        return report.model_copy(update={"ok": False, "first_bad_seq": report.last_seq + 1, "problem": problem})
    if stored_hash != digest:
        problem = f"record {seq} differs from the saved head: the trail up to it was rewritten"
        return report.model_copy(update={"ok": False, "first_bad_seq": max(seq, 1), "problem": problem})
    return report.model_copy(update={"saved_head_checked": True})


def _broken(expected: int, last_hash: str, bad: int, problem: str, *, head_checked: bool = False) -> ChainReport:
    # ``expected`` is the seq the walk was at: every record before it verified.
    return ChainReport(
        ok=False,
        records=expected - 1,
        last_seq=expected - 1,
        last_hash=last_hash,
        first_bad_seq=bad,
        problem=problem,
        head_checked=head_checked,
    )


def to_json(value: Any) -> str | None:
    """How before/after values are stored: compact JSON (None stays None)."""
    if value is None:
        return None
    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)


def export_line(row: Sequence[Any]) -> str:
    """One exported JSON line (with its newline) for a stored row in ``COLUMNS`` order."""
    seq, ts, actor, action, target, outcome, before, after, request_id, prev, hash_ = row
    if type(seq) is int and type(ts) is int:
        try:
            return _LINE % (
                seq,
                ts,
                _quote(actor),
                _quote(action),
                _quote(target),
                _quote(outcome),
                "null" if before is None else _quote(before),
                "null" if after is None else _quote(after),
                _quote(request_id),
                _quote(prev),
                _quote(hash_),
            )
        except TypeError:
            pass
    return json.dumps(dict(zip(COLUMNS, row, strict=True)), separators=(",", ":")) + "\n"


def head_line(seq: int, hash_: str) -> str:
    """The export's last line: the chain head it was taken at."""
    return json.dumps({"head": {"seq": seq, "hash": hash_}}, separators=(",", ":")) + "\n"


class _ExportLines:
    """Rows of an export, parsed a batch of lines at a time; remembers the head line."""

    BATCH = 10_000

    def __init__(self, lines: Iterable[bytes | str]) -> None:
        self.lines = lines
        self.head: tuple[int, str] | None = None

    def __iter__(self) -> Iterator[tuple[Any, ...]]:
        it = iter(self.lines)
        first = 1
        while batch := list(itertools.islice(it, self.BATCH)):
            for number, data in _parse(batch, first):
                row = self._row(data, number)
                if row is not None:
                    yield row
            first += len(batch)

    def _row(self, data: Any, number: int) -> tuple[Any, ...] | None:
        if type(data) is not dict:
            raise MalformedRecord(f"line {number} is not a JSON object")
        if self.head is not None:
            raise MalformedRecord(f"line {number} follows the head line")
        if len(data) == len(COLUMNS):
            try:
                return tuple(_row_of(data))
            except KeyError:
                pass
        elif len(data) == 1 and "head" in data:
            self.head = _parse_head(data["head"], number)
            return None
        raise MalformedRecord(f"line {number} does not hold exactly the fields {', '.join(COLUMNS)}")


def _parse(batch: list[Any], first: int) -> Iterable[tuple[int, Any]]:
    """(line number, JSON value) of each non-blank line of ``batch``, whose first line is number ``first``."""
    # One json.loads over the batch as an array is about twice as fast as one per line.
    joined = b"[" + b",".join(batch) + b"]" if isinstance(batch[0], bytes) else "[" + ",".join(batch) + "]"
    try:
        values = json.loads(joined)
    except ValueError:
        values = None
    if values is not None and len(values) == len(batch):
        return enumerate(values, first)
    # Not one JSON value per line somewhere (or a blank line): line by line, to name the culprit.
    return _parse_each(batch, first)


def _parse_each(batch: list[Any], first: int) -> Iterator[tuple[int, Any]]:
    for number, line in enumerate(batch, first):
        try:
            value = json.loads(line)
        except ValueError:
            if line.strip():
                raise MalformedRecord(f"line {number} is not JSON") from None
            continue
        yield number, value


def _parse_head(value: Any, number: int) -> tuple[int, str]:
    if isinstance(value, dict) and type(value.get("seq")) is int and isinstance(value.get("hash"), str):
        return value["seq"], value["hash"]
    raise MalformedRecord(f'line {number}: the head line must be {{"head": {{"seq": N, "hash": "..."}}}}')
