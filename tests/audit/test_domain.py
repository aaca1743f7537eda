"""The hash chain, pure: every kind of tampering breaks it at the record it touched."""

from __future__ import annotations

import hashlib
import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from covex.domain import audit
from covex.domain.audit import COLUMNS, FIELDS, GENESIS


def chain(n: int) -> list[dict[str, Any]]:
    records: list[dict[str, Any]] = []
    prev = GENESIS
    for seq in range(1, n + 1):
        r: dict[str, Any] = {
            "seq": seq,
            "timestamp": 1_700_000_000_000 + seq,
            "actor": "alice" if seq % 2 else "bob",
            "action": "model.tag.set",
            "target": f"model:churn/{seq}",
            "outcome": "ok",
            "before": None if seq % 3 else audit.to_json({"team": "a"}),
            "after": audit.to_json({"team": f"ü-{seq}"}),
            "request_id": f"req-{seq}",
            "prev_hash": prev,
        }
        r["hash"] = prev = audit.record_hash(r)
        records.append(r)
    return records


def head(records: list[dict[str, Any]]) -> tuple[int, str]:
    return (records[-1]["seq"], records[-1]["hash"]) if records else (0, GENESIS)


def rehash(record: dict[str, Any]) -> None:
    record["hash"] = audit.record_hash(record)


def test_an_intact_chain_verifies() -> None:
    records = chain(10)
    report = audit.verify_chain(records, head=head(records))
    expected = audit.ChainReport(ok=True, records=10, last_seq=10, last_hash=records[-1]["hash"], head_checked=True)
    assert expected == report


def test_an_empty_chain_verifies_against_the_initial_head() -> None:
    assert audit.verify_chain([], head=(0, GENESIS)).ok


def test_an_altered_field_is_caught_at_its_record() -> None:
    records = chain(10)
    original = head(records)
    records[4]["actor"] = "mallory"
    report = audit.verify_chain(records, head=original)
    assert (False, 5, 4) == (report.ok, report.first_bad_seq, report.records)
    assert "record 5 was altered" in report.problem


def test_a_deleted_middle_record_is_caught() -> None:
    records = chain(10)
    original = head(records)
    del records[3]
    report = audit.verify_chain(records, head=original)
    assert 4 == report.first_bad_seq
    assert "record 4 is missing: found record 5 in its place (record 4 was deleted or moved)" == report.problem


def test_deleted_newest_records_are_caught_by_the_head() -> None:
    records = chain(10)
    original = head(records)
    report = audit.verify_chain(records[:8], head=original)
    assert (False, 9) == (report.ok, report.first_bad_seq)
    assert "records 9..10 were deleted" in report.problem
    # Without a head, the cut cannot be seen: the report says it did not check.
    unchecked = audit.verify_chain(records[:8])
    assert (True, False) == (unchecked.ok, unchecked.head_checked)


def test_reordered_records_are_caught() -> None:
    records = chain(10)
    original = head(records)
    records[2], records[6] = records[6], records[2]
    report = audit.verify_chain(records, head=original)
    assert 3 == report.first_bad_seq
    assert "found record 7 in its place" in report.problem


def test_swapped_contents_with_kept_seqs_are_caught() -> None:
    records = chain(10)
    original = head(records)
    a, b = records[2], records[6]
    for key in COLUMNS[1:]:
        a[key], b[key] = b[key], a[key]
    report = audit.verify_chain(records, head=original)
    assert 3 == report.first_bad_seq
    assert "record 3 does not link to record 2" in report.problem


def test_a_rehashed_forgery_breaks_the_next_link() -> None:
    records = chain(10)
    original = head(records)
    records[4]["after"] = audit.to_json({"team": "forged"})
    rehash(records[4])
    report = audit.verify_chain(records, head=original)
    assert 6 == report.first_bad_seq
    assert "record 5 was replaced or record 6 was altered" in report.problem


def test_a_rewritten_tail_is_caught_by_the_head() -> None:
    records = chain(10)
    original = head(records)
    records[8]["actor"] = "mallory"
    rehash(records[8])
    records[9]["prev_hash"] = records[8]["hash"]
    rehash(records[9])
    report = audit.verify_chain(records, head=original)
    assert (False, 10) == (report.ok, report.first_bad_seq)
    assert "does not match the chain head" in report.problem


def test_records_beyond_the_head_are_caught() -> None:
    records = chain(10)
    report = audit.verify_chain(records, head=(8, records[7]["hash"]))
    assert 9 == report.first_bad_seq
    assert "beyond the chain head" in report.problem


def test_a_first_record_that_does_not_start_the_chain_is_caught() -> None:
    records = chain(3)
    records[0]["prev_hash"] = "f" * 64
    rehash(records[0])
    assert 1 == audit.verify_chain(records).first_bad_seq


text = st.text(st.characters(codec="utf-8") | st.sampled_from(['"', "\\", "\n", "\x00", "\u2028", "é"]))


@given(
    seq=st.integers(min_value=0, max_value=2**62),
    ts=st.integers(min_value=0, max_value=2**62),
    strings=st.lists(text, min_size=6, max_size=6),
    before=st.none() | text,
    after=st.none() | text,
)
def test_the_fast_hash_is_the_canonical_hash(
    seq: int, ts: int, strings: list[str], before: str | None, after: str | None
) -> None:
    actor, action, target, outcome, request_id, prev = strings
    values = (seq, ts, actor, action, target, outcome, before, after, request_id, prev)
    record = dict(zip(FIELDS, values, strict=True))
    assert hashlib.sha256(audit.canonical(record)).hexdigest() == audit.values_hash(values)
    # An export line holds exactly the stored values.
    line = audit.export_line((*values, "h"))
    assert {**record, "hash": "h"} == json.loads(line)


def test_unusual_types_fall_back_to_the_canonical_form() -> None:
    record = dict(chain(1)[0], seq=True, timestamp=1.5, actor=None)
    assert hashlib.sha256(audit.canonical(record)).hexdigest() == audit.values_hash(tuple(record[k] for k in FIELDS))


# -- export lines ---------------------------------------------------------------------------


def export(records: list[dict[str, Any]]) -> list[str]:
    lines = [audit.export_line(tuple(r[k] for k in COLUMNS)) for r in records]
    return [*lines, audit.head_line(*head(records))]


def test_an_export_verifies_with_its_head_line() -> None:
    records = chain(5)
    report = audit.verify_lines(export(records))
    assert (True, 5, True) == (report.ok, report.records, report.head_checked)
    assert report.ok == audit.verify_lines(line.encode() for line in export(records)).ok


def test_an_export_cut_short_is_caught_by_its_head_line() -> None:
    lines = export(chain(5))
    del lines[-2]
    report = audit.verify_lines(lines)
    assert (False, 5) == (report.ok, report.first_bad_seq)


def test_malformed_export_lines_are_named() -> None:
    lines = export(chain(3))
    cases = {
        "line 2 is not JSON": [lines[0], "{nope\n", *lines[1:]],
        "line 2 is not a JSON object": [lines[0], "[1]\n", *lines[1:]],
        "line 2 does not hold exactly the fields": [lines[0], lines[1].replace('"seq"', '"sek"'), *lines[2:]],
        "line 5 follows the head line": [*lines, lines[0]],
        "the head line must be": [*lines[:3], '{"head": {"seq": "3"}}\n'],
    }
    for problem, bad in cases.items():
        report = audit.verify_lines(bad)
        assert not report.ok
        assert problem in report.problem


def test_lines_are_named_across_batches_and_blank_lines_are_skipped(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(audit._ExportLines, "BATCH", 2)
    lines = export(chain(4))
    assert audit.verify_lines([lines[0], "\n", *lines[1:]]).ok
    report = audit.verify_lines([*lines[:3], "{nope\n", *lines[3:]])
    assert (4, "line 4 is not JSON") == (report.first_bad_seq, report.problem)
