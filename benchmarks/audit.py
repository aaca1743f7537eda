"""Throughput of ``covex audit verify`` on a trail of 1,000,000 records.

The trail is built fast, not through the service: records with realistic fields are generated,
chained with ``covex.domain.audit.record_hash`` and bulk-inserted into a fresh SQLite file (and a
fresh PostgreSQL database when one answers, with COPY). Then, per database:

1. verify from the database: ``Client(uri).audit.verify()``, what ``covex audit verify`` runs;
2. export to a JSON Lines file: ``Client(uri).audit.export(path)``, what ``covex audit export`` runs;
3. verify the file offline: ``covex.domain.audit.verify_file(path)`` (``covex audit verify --file``).

Each is timed ``--repeats`` times and the median is reported in records/s, with two floors for
reference: streaming the rows without hashing, and SHA-256 alone over the canonical bytes.

Run from the repository root::

    .venv/bin/python benchmarks/audit.py                    # 1,000,000 records (about 4 minutes)
    .venv/bin/python benchmarks/audit.py --records 100000   # smoke run

Progress goes to stderr; the table goes to stdout and its last line is one JSON object.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import random
import shutil
import signal
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

from harness import log, machine

import covex
from covex.domain import audit
from covex.domain.audit import verify_file
from covex.store import database
from covex.store.schema import audit_head, audit_log

PG = os.environ.get("COVEX_BENCH_PG", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
TARGET = 100_000  # records/s from SQLite
BATCH = 20_000

ACTIONS = [
    ("model.create", "model:{m}", None, {"description": "", "tags": {}}),
    ("version.create", "model:{m}/{v}", None, {"files": 3, "source": "s3://bench/x", "status": "PENDING"}),
    ("version.finalize", "model:{m}/{v}", {"status": "PENDING"}, {"status": "READY"}),
    ("stage.transition", "model:{m}/{v}", {"stage": "Dev"}, {"stage": "Production"}),
    ("alias.set", "model:{m}@champion", {"version": 3}, {"version": 4}),
    ("model.tag.set", "model:{m}", None, {"team": "risk"}),
    ("grant.create", "model:{m}", None, {"role": "editor", "scope": "", "subject": "group:ml"}),
]


def records(n: int, seed: int = 7) -> Iterator[tuple[Any, ...]]:
    """``n`` chained rows in ``audit.COLUMNS`` order."""
    rnd = random.Random(seed)
    prev, ts = audit.GENESIS, 1_764_000_000_000
    actors = [f"user{i}" for i in range(50)]
    for seq in range(1, n + 1):
        action, target, before, after = ACTIONS[rnd.randrange(len(ACTIONS))]
        outcome = "ok" if rnd.random() > 0.02 else "refused"
        ts += rnd.randrange(1, 2_000)
        values = (
            seq,
            ts,
            rnd.choice(actors),
            action,
            target.format(m=f"churn-{rnd.randrange(500)}", v=rnd.randrange(1, 40)),
            outcome,
            audit.to_json(before),
            audit.to_json(after) if outcome == "ok" else audit.to_json({"reason": "it needs the editor role"}),
            uuid.UUID(int=rnd.getrandbits(128)).hex,
            prev,
        )
        prev = audit.values_hash(values)
        yield (*values, prev)


def batches(rows: Iterator[tuple[Any, ...]], size: int = BATCH) -> Iterator[list[tuple[Any, ...]]]:
    batch: list[tuple[Any, ...]] = []
    for row in rows:
        batch.append(row)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def build_sqlite(url: str, n: int) -> tuple[int, str]:
    engine = database.create_db_engine(url)
    database.upgrade(engine)
    head = (0, audit.GENESIS)
    with engine.begin() as conn:
        for batch in batches(records(n)):
            conn.execute(audit_log.insert(), [dict(zip(audit.COLUMNS, r, strict=True)) for r in batch])
            head = (batch[-1][0], batch[-1][-1])
        conn.execute(audit_head.update().where(audit_head.c.id == 1).values(seq=head[0], hash=head[1]))
    engine.dispose()
    return head


def build_postgres(url: str, n: int) -> tuple[int, str]:
    engine = database.create_db_engine(url)
    database.upgrade(engine)
    head = (0, audit.GENESIS)
    raw = engine.raw_connection()
    try:
        cur = raw.cursor()
        with cur.copy(f"COPY audit_log ({', '.join(audit.COLUMNS)}) FROM STDIN") as copy:  # type: ignore[attr-defined]
            for row in records(n):
                copy.write_row(row)
                head = (row[0], row[-1])
        cur.execute("UPDATE audit_head SET seq = %s, hash = %s WHERE id = 1", head)
        cur.execute("ANALYZE audit_log")
        raw.commit()
    finally:
        raw.close()
        engine.dispose()
    return head


@contextlib.contextmanager
def fresh_postgres() -> Iterator[str | None]:
    """A new database on the PostgreSQL server at $COVEX_BENCH_PG, dropped afterwards (None if unreachable)."""
    try:
        import psycopg
        from sqlalchemy.engine import make_url

        admin = make_url(PG)
        dsn = dict(host=admin.host, port=admin.port or 5432, user=admin.username, dbname=admin.database)
        with psycopg.connect(**dsn, autocommit=True, connect_timeout=3) as conn:  # type: ignore[arg-type]
            name = f"covex_bench_{uuid.uuid4().hex[:10]}"
            conn.execute(f'CREATE DATABASE "{name}"')
    except Exception as exc:  # noqa: BLE001 - any reason means: skip PostgreSQL
        log(f"PostgreSQL skipped: {exc}")
        yield None
        return
    try:
        yield admin.set(drivername="postgresql+psycopg", database=name).render_as_string(hide_password=False)
    finally:
        with psycopg.connect(**dsn, autocommit=True) as conn:  # type: ignore[arg-type]
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def timed(label: str, repeats: int, fn: Callable[[], Any]) -> tuple[float, float, Any]:
    """Median wall and CPU seconds (this process) of ``repeats`` runs of ``fn``, and its last result.

    On a shared machine the CPU time is the steadier figure: it leaves out waiting for a core.
    """
    walls, cpus, result = [], [], None
    for i in range(repeats):
        start, cpu = time.perf_counter(), time.process_time()
        result = fn()
        walls.append(time.perf_counter() - start)
        cpus.append(time.process_time() - cpu)
        log(f"  {label} run {i + 1}: {walls[-1]:.2f} s wall, {cpus[-1]:.2f} s CPU")
    return statistics.median(walls), statistics.median(cpus), result


def stream_only(client: covex.Client) -> int:
    """Rows fetched the way verify fetches them, without hashing: the database floor."""
    service = client._backend
    count = 0
    with service.audit._snapshot() as conn:  # the same snapshot and batches as verify
        from covex.service.audit import _stream

        for _ in _stream(conn):
            count += 1
    return count


def hash_only(n: int) -> float:
    """Seconds to SHA-256 ``n`` canonical records of typical size (the hashing floor)."""
    sample = [audit.canonical(dict(zip(audit.FIELDS, r, strict=False))) for r in records(1000)]
    sha = hashlib.sha256
    start = time.perf_counter()
    for i in range(n):
        sha(sample[i % 1000]).hexdigest()
    return time.perf_counter() - start


def measure(label: str, uri: str, n: int, head: tuple[int, str], folder: Path, repeats: int) -> dict[str, Any]:
    out: dict[str, Any] = {"database": label, "records": n}
    with covex.Client(uri, artifacts=str(folder / f"artifacts-{label}")) as client:
        wall, cpu, report = timed(f"{label}: verify from the database", repeats, client.audit.verify)
        if not report.ok or report.records != n or (report.last_seq, report.last_hash) != head:
            raise SystemExit(f"{label}: verify did not pass: {report}")
        out["verify_db"], out["verify_db_cpu"] = n / wall, n / cpu
        wall, cpu, _ = timed(f"{label}: stream rows only", repeats, lambda: stream_only(client))
        out["stream_db"], out["stream_db_cpu"] = n / wall, n / cpu
        path = folder / f"trail-{label}.jsonl"
        wall, cpu, count = timed(f"{label}: export", repeats, lambda: client.audit.export(path))
        if count != n:
            raise SystemExit(f"{label}: export wrote {count} records, not {n}")
        out["export"], out["export_cpu"] = n / wall, n / cpu
        out["export_mib"] = path.stat().st_size / 2**20
    wall, cpu, report = timed(f"{label}: verify the file", repeats, lambda: verify_file(path))
    if not report.ok or not report.head_checked or report.records != n:
        raise SystemExit(f"{label}: verify --file did not pass: {report}")
    out["verify_file"], out["verify_file_cpu"] = n / wall, n / cpu
    path.unlink()
    return out


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--records", type=int, default=1_000_000, help="trail length (default 1,000,000)")
    p.add_argument("--repeats", type=int, default=3, help="timed runs per measurement; the median counts")
    p.add_argument("--skip-postgres", action="store_true", help="SQLite only")
    p.add_argument("--keep", action="store_true", help="keep the temporary folder")
    return p.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    # SIGTERM unwinds like Ctrl-C, so the temporary folder and database are removed.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    n = args.records
    folder = Path(tempfile.mkdtemp(prefix="covex-audit-bench-"))
    results: list[dict[str, Any]] = []
    load = [os.getloadavg()[0]]
    try:
        url = f"sqlite:///{folder / 'covex.db'}"
        start = time.perf_counter()
        head = build_sqlite(url, n)
        log(f"SQLite trail of {n:,} records built in {time.perf_counter() - start:.1f} s")
        results.append(measure("sqlite", url, n, head, folder, args.repeats))
        (folder / "covex.db").unlink()
        pg = contextlib.nullcontext(None) if args.skip_postgres else fresh_postgres()
        with pg as pg_url:
            if pg_url is not None:
                start = time.perf_counter()
                head = build_postgres(pg_url, n)
                log(f"PostgreSQL trail of {n:,} records built in {time.perf_counter() - start:.1f} s")
                results.append(measure("postgresql", pg_url, n, head, folder, args.repeats))
        hashing = n / hash_only(n)
    finally:
        if not args.keep:
            shutil.rmtree(folder, ignore_errors=True)
    load.append(os.getloadavg()[0])
    report(results, hashing, n, load)
    return 0 if all(r["verify_db"] >= TARGET for r in results if r["database"] == "sqlite") else 1


def report(results: list[dict[str, Any]], hashing: float, n: int, load: list[float]) -> None:
    info = machine(["sqlalchemy", "psycopg"])
    print(
        f"machine: Python {info['python']}, {info['platform']}, {info['cpus']} CPUs, "
        f"SQLAlchemy {info['sqlalchemy']}, psycopg {info['psycopg']}; load average {load[0]:.2f} → {load[1]:.2f}"
    )
    print(f"audit trail of {n:,} records; records/s (median of the runs) by wall clock and per CPU second\n")
    print(f"{'database':<11}| {'verify (db)':>19} | {'verify --file':>19} | {'export':>19} | {'rows only':>19} | MiB")
    print(f"{'':<11}|" + f" {'wall':>9} {'cpu':>9} |" * 4)
    print("-" * 102)
    for r in results:
        cells = " | ".join(
            f"{r[k]:>9,.0f} {r[k + '_cpu']:>9,.0f}" for k in ("verify_db", "verify_file", "export", "stream_db")
        )
        print(f"{r['database']:<11}| {cells} | {r['export_mib']:.0f}")
    print(f"\nSHA-256 alone over the canonical records: {hashing:,.0f} records/s (one core)")
    sqlite = next(r for r in results if r["database"] == "sqlite")
    verdict = "PASS" if sqlite["verify_db"] >= TARGET else "MISS"
    print(f"target: verify from SQLite ≥ {TARGET:,} records/s (wall)   {verdict}  {sqlite['verify_db']:,.0f}")
    summary = {r["database"]: {k: round(v) for k, v in r.items() if k not in ("database", "records")} for r in results}
    print(json.dumps({"records": n, **summary, "sha256_only": round(hashing)}))


if __name__ == "__main__":
    sys.exit(main())
