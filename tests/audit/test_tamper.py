"""Tampering with the stored trail (SQL straight to the database) and with an export is caught.

Each test owns its database: the shared registries' trails must stay intact for other tests.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from sqlalchemy import Connection, select, text

from covex.domain import audit
from covex.domain.audit import verify_file
from covex.domain.errors import InvalidInput
from covex.service import RegistryService, open_service
from covex.settings import Settings
from covex.store.schema import audit_log
from tests import support

RECORDS = 10
Tamper = Callable[[Connection], None]


def open_registry(url: str, artifacts: Path) -> RegistryService:
    return open_service(Settings(uri=url, artifacts=str(artifacts), user="tester"))


def fill(service: RegistryService, records: int = RECORDS) -> None:
    service.create_model("churn")
    for i in range(records - 1):
        service.set_model_tag("churn", "step", str(i))


@pytest.fixture
def sqlite_service(tmp_path: Path) -> Iterator[RegistryService]:
    service = open_registry(f"sqlite:///{tmp_path / 'covex.db'}", tmp_path / "artifacts")
    fill(service)
    yield service
    service.close()


@pytest.fixture
def postgres_url() -> Iterator[str]:
    reason = support.postgres_available()
    if reason:
        pytest.skip(reason)
    with support.fresh_postgres_database() as url:
        yield url


def tamper(service: RegistryService, change: Tamper) -> None:
    with service.engine.begin() as conn:
        change(conn)


def swap(a: int, b: int) -> Tamper:
    def change(conn: Connection) -> None:
        cols = [c for c in audit.COLUMNS if c != "seq"]
        rows = {r.seq: r for r in conn.execute(select(audit_log).where(audit_log.c.seq.in_([a, b])))}
        for seq, other in ((a, b), (b, a)):
            values = {c: getattr(rows[other], c) for c in cols}
            conn.execute(audit_log.update().where(audit_log.c.seq == seq).values(**values))

    return change


def rehash(seq: int) -> Tamper:
    def change(conn: Connection) -> None:
        row = conn.execute(select(audit_log).where(audit_log.c.seq == seq)).one()
        forged = {**row._mapping, "actor": "mallory"}
        forged["hash"] = audit.record_hash(forged)
        conn.execute(audit_log.update().where(audit_log.c.seq == seq).values(actor="mallory", hash=forged["hash"]))

    return change


def sql(statement: str) -> Tamper:
    return lambda conn: conn.execute(text(statement)) and None


CASES = {
    "altered": (sql("UPDATE audit_log SET actor = 'mallory' WHERE seq = 4"), 4, "record 4 was altered"),
    "altered before": (sql("UPDATE audit_log SET \"before\" = '{}' WHERE seq = 7"), 7, "record 7 was altered"),
    "deleted middle": (sql("DELETE FROM audit_log WHERE seq = 5"), 5, "record 5 is missing"),
    "deleted newest": (sql(f"DELETE FROM audit_log WHERE seq = {RECORDS}"), RECORDS, f"record {RECORDS} was deleted"),
    "swapped": (swap(3, 8), 3, "record 3 does not link to record 2"),
    "rehashed forgery": (rehash(6), 7, "record 6 was replaced or record 7 was altered"),
    "renumbered": (sql("UPDATE audit_log SET seq = 100 WHERE seq = 2"), 2, "record 2 is missing"),
}


def test_an_untouched_trail_verifies(sqlite_service: RegistryService) -> None:
    report = sqlite_service.audit.verify()
    assert (True, RECORDS, RECORDS, True) == (report.ok, report.records, report.last_seq, report.head_checked)


@pytest.mark.parametrize("case", list(CASES))
def test_tampering_in_the_database_is_caught_at_the_first_bad_record(
    case: str, sqlite_service: RegistryService, tmp_path: Path
) -> None:
    change, bad, problem = CASES[case]
    tamper(sqlite_service, change)

    report = sqlite_service.audit.verify()

    assert (False, bad) == (report.ok, report.first_bad_seq)
    assert problem in report.problem
    # An export of the tampered trail carries the break, and the offline check finds the same one.
    path = tmp_path / "trail.jsonl"
    sqlite_service.audit.export(path)
    offline = verify_file(path)
    assert (False, bad) == (offline.ok, offline.first_bad_seq)


def test_an_altered_head_is_caught(sqlite_service: RegistryService) -> None:
    tamper(sqlite_service, sql("UPDATE audit_head SET hash = 'f' WHERE id = 1"))
    report = sqlite_service.audit.verify()
    assert (False, RECORDS) == (report.ok, report.first_bad_seq)


def edit(lines: list[str]) -> list[str]:
    lines[3] = lines[3].replace('"tester"', '"mallory"')
    return lines


def drop(index: int) -> Callable[[list[str]], list[str]]:
    return lambda lines: lines[:index] + lines[index + 1 :]


def swap_lines(lines: list[str]) -> list[str]:
    lines[2], lines[5] = lines[5], lines[2]
    return lines


FILE_CASES = {
    "edited line": (edit, 4, "record 4 was altered"),
    "dropped line": (drop(4), 5, "record 5 is missing"),
    "dropped last record": (drop(RECORDS - 1), RECORDS, f"record {RECORDS} was deleted"),
    "swapped lines": (swap_lines, 3, "record 3 is missing: found record 6 in its place"),
}


@pytest.mark.parametrize("case", list(FILE_CASES))
def test_tampering_with_an_export_is_caught(case: str, sqlite_service: RegistryService, tmp_path: Path) -> None:
    change, bad, problem = FILE_CASES[case]
    path = tmp_path / "trail.jsonl"
    sqlite_service.audit.export(path)
    assert verify_file(path).ok
    path.write_text("".join(change(path.read_text().splitlines(keepends=True))))

    report = verify_file(path)

    assert (False, bad) == (report.ok, report.first_bad_seq)
    assert problem in report.problem


def test_an_export_cut_before_its_head_line_verifies_but_says_the_head_was_not_checked(
    sqlite_service: RegistryService, tmp_path: Path
) -> None:
    path = tmp_path / "trail.jsonl"
    sqlite_service.audit.export(path)
    path.write_text("".join(path.read_text().splitlines(keepends=True)[:-2]))

    report = verify_file(path)

    assert (True, RECORDS - 1, False) == (report.ok, report.records, report.head_checked)


def test_a_missing_file_is_a_clear_error(tmp_path: Path) -> None:
    from covex.domain.errors import InvalidInput

    with pytest.raises(InvalidInput, match="'file'"):
        verify_file(tmp_path / "nope.jsonl")


@pytest.mark.postgres
def test_tampering_on_postgresql_is_caught(postgres_url: str, tmp_path: Path) -> None:
    service = open_registry(postgres_url, tmp_path / "artifacts")
    try:
        fill(service)
        assert service.audit.verify().ok
        tamper(service, swap(2, 9))
        report = service.audit.verify()
        assert (False, 2) == (report.ok, report.first_bad_seq)
        tamper(service, swap(2, 9))
        tamper(service, sql(f"DELETE FROM audit_log WHERE seq = {RECORDS}"))
        assert RECORDS == service.audit.verify().first_bad_seq
    finally:
        service.close()


# -- concurrent writers ---------------------------------------------------------------------

THREADS, EACH = 8, 25


def hammer(services: list[RegistryService]) -> None:
    """THREADS writers, each on its own service, EACH changes apiece, all starting together."""
    start = threading.Barrier(len(services))
    errors: list[BaseException] = []

    def work(i: int, service: RegistryService) -> None:
        try:
            start.wait()
            service.create_model(f"m{i}")
            for j in range(EACH - 1):
                service.set_model_tag(f"m{i}", "j", str(j))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(i, s)) for i, s in enumerate(services)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert [] == errors


def assert_gap_free(service: RegistryService) -> None:
    report = service.audit.verify()
    assert (True, THREADS * EACH) == (report.ok, report.records)
    with service.engine.connect() as conn:
        seqs = conn.execute(select(audit_log.c.seq).order_by(audit_log.c.seq)).scalars().all()
    assert list(range(1, THREADS * EACH + 1)) == seqs


def test_concurrent_writers_on_sqlite_keep_one_gap_free_chain(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'covex.db'}"
    services = [open_registry(url, tmp_path / "artifacts") for _ in range(THREADS)]
    try:
        hammer(services)
        assert_gap_free(services[0])
    finally:
        for s in services:
            s.close()


@pytest.mark.postgres
def test_concurrent_writers_on_postgresql_keep_one_gap_free_chain(postgres_url: str, tmp_path: Path) -> None:
    # One engine (own connection pool) per writer, as separate server processes would have.
    services = [open_registry(postgres_url, tmp_path / "artifacts") for _ in range(THREADS)]
    try:
        hammer(services)
        assert_gap_free(services[0])
    finally:
        for s in services:
            s.close()


# -- a head saved earlier ---------------------------------------------------------------------


def test_a_saved_head_notices_the_end_cut_off_with_the_head_rewound(sqlite_service: RegistryService) -> None:
    saved = sqlite_service.audit.verify().head
    assert f"{RECORDS}:" == saved[: len(str(RECORDS)) + 1]
    sqlite_service.set_model_tag("churn", "later", "x")  # the trail may grow after the head was saved
    assert sqlite_service.audit.verify(saved).saved_head_checked

    def cut(conn: Connection) -> None:
        # Remove the last three records and rewind the head onto the record now last: the chain itself verifies.
        conn.execute(text(f"DELETE FROM audit_log WHERE seq > {RECORDS - 3}"))
        last = conn.execute(select(audit_log.c.hash).where(audit_log.c.seq == RECORDS - 3)).scalar_one()
        conn.execute(text(f"UPDATE audit_head SET seq = {RECORDS - 3}, hash = '{last}' WHERE id = 1"))

    tamper(sqlite_service, cut)
    assert sqlite_service.audit.verify().ok  # without the saved head, nothing shows
    report = sqlite_service.audit.verify(saved)
    assert (False, RECORDS - 2) == (report.ok, report.first_bad_seq)
    assert "before the saved head" in report.problem


def test_a_saved_head_notices_history_rewritten_up_to_it(sqlite_service: RegistryService) -> None:
    saved = sqlite_service.audit.verify().head

    def rewrite(conn: Connection) -> None:
        # Rewrite record 2 and every hash after it: a consistent forged chain, head included.
        rows = conn.execute(select(audit_log).order_by(audit_log.c.seq)).all()
        prev = audit.GENESIS
        for row in rows:
            record = {**row._mapping, "prev_hash": prev}
            if row.seq == 2:
                record["actor"] = "mallory"
            record["hash"] = audit.record_hash(record)
            conn.execute(audit_log.update().where(audit_log.c.seq == row.seq).values(**record))
            prev = record["hash"]
        conn.execute(text(f"UPDATE audit_head SET hash = '{prev}' WHERE id = 1"))

    tamper(sqlite_service, rewrite)
    assert sqlite_service.audit.verify().ok
    report = sqlite_service.audit.verify(saved)
    assert (False, RECORDS) == (report.ok, report.first_bad_seq)
    assert "rewritten" in report.problem


@pytest.mark.parametrize("bad", ["", "12", "x:abc", "3:" + "g" * 64, "-1:" + "0" * 64])
def test_a_saved_head_must_be_seq_colon_hash(sqlite_service: RegistryService, bad: str) -> None:
    with pytest.raises(InvalidInput, match="SEQ:HASH"):
        sqlite_service.audit.verify(bad)
