"""The cost of governance: authentication, permission checks and the audit trail.

Two measurements, each a ratio taken in one run on the same machine:

1. The registry workload of ``registry.py`` (create versions one by one and from 8 threads, get
   by alias, search, list) against three Covex servers side by side, phase by phase:
   ``governed`` requires API tokens (the caller is an editor, not an admin, so every call runs
   the full permission check) and audits every change, as Covex does; ``no-auth`` is
   ``covex server --no-auth`` (it still audits); ``bare`` is ``--no-auth`` with the audit append
   replaced by a no-op (``unaudited.py``; Covex itself cannot turn its trail off). governed/bare
   is the whole cost of governance; governed/no-auth the cost of authentication and permissions.
2. The audit trail alone: version creation in-process on one SQLite file, with the trail and
   with the audit append replaced by a no-op, interleaved in rounds.

Run from the repository root::

    .venv/bin/python benchmarks/governance.py            # registry sizes of registry.py (about 4 minutes)
    .venv/bin/python benchmarks/governance.py --quick    # smaller (about 1 minute)

The last line of stdout is one JSON object with every ratio. Target: governance costs under 20%
(governed/bare throughput ratio of at least 0.83 in every phase).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import random
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import harness
import httpx
import workload
from harness import Server, free_port, log, machine

TARGET_SLOWDOWN = 0.20
CHUNKS = 10
LIST_ROUNDS = 6
AUDIT_ROUNDS = 5
AUDIT_VERSIONS = 300


def bare_server(tmp: Path) -> Server:
    """``covex server --no-auth`` without the audit append."""
    port = free_port()
    data = tmp / "bare-data"
    argv = [sys.executable, str(Path(__file__).parent / "unaudited.py"), "--uri", str(data), "server"]
    argv += ["--host", "127.0.0.1", "--port", str(port), "--no-auth"]
    return Server("bare", argv, port, "/ready", tmp / "bare.log")


def interleaved(
    targets: list[workload.Target], chunks: int, chunk: Callable[[workload.Target, int], harness.Measure]
) -> Any:
    """Run a phase in ``chunks`` slices per server, rotating which server goes first.

    Servers measured one after the other drift apart (load, caches, writeback of the previous
    one's data); slicing and rotating spreads that over all three alike.
    """
    totals = {t.api.label: harness.Measure() for t in targets}
    for c in range(chunks):
        k = c % len(targets)
        for t in targets[k:] + targets[:k]:
            m = chunk(t, c)
            totals[t.api.label].merge(m)
            totals[t.api.label].seconds += m.seconds
    return {label: m.summary() for label, m in totals.items()}


def registry_ratios(tmp: Path, sizes: workload.Sizes, seed: int) -> dict[str, dict[str, dict[str, Any]]]:
    governed = harness.covex_server(tmp, 1, auth=True, editor="bench", label="governed")
    without = harness.covex_server(tmp, 1, auth=False, label="no-auth")
    servers = [governed, without, bare_server(tmp)]
    with harness.running(servers), contextlib.ExitStack() as clients:
        targets = []
        for s in servers:
            api = workload.CovexApi()
            api.label = s.label
            targets.append(workload.Target(api, s, clients.enter_context(harness.http_client(s.url))))
        for t in targets:
            log(f"warming up {t.api.label}")
            workload.warm_up(t)
            t.api.create_model(t.http, "sequential")
            t.api.create_model(t.http, "concurrent")
            t.api.create_model(t.http, "listing")
        results: dict[str, dict[str, dict[str, Any]]] = {}

        per = sizes.seq_versions // CHUNKS
        log("sequential_create")
        results["sequential_create"] = interleaved(
            targets,
            CHUNKS,
            lambda t, c: harness.run_sequential(
                t.http, per, lambda http, i: t.api.create_version(http, "sequential", c * per + i)
            ),
        )
        log("concurrent_create")
        results["concurrent_create"] = interleaved(
            targets,
            CHUNKS,
            lambda t, c: harness.run_threads(
                t.server.url,
                sizes.threads,
                max(1, sizes.per_thread // CHUNKS),
                lambda http, i: t.api.create_version(http, "concurrent", i),
            ),
        )
        for t in targets:
            t.api.set_alias(t.http, "sequential", "champion", 1)
        per = sizes.alias_gets // CHUNKS
        log("get_by_alias")
        results["get_by_alias"] = interleaved(
            targets, CHUNKS, lambda t, c: harness.run_sequential(t.http, per, lambda http, i: _champion(t, http))
        )
        names = workload.model_names(sizes.models)
        prefixes = workload.search_prefixes(sizes.models, sizes.searches, random.Random(seed))
        for t in targets:
            harness.seed(t.server.url, len(names), sizes.seed_threads, _creator(t, names), "models")
        per = len(prefixes) // CHUNKS
        log("search_models")
        results["search_models"] = interleaved(
            targets,
            CHUNKS,
            lambda t, c: harness.run_sequential(t.http, per, lambda http, i: _search(t, http, prefixes[c * per + i])),
        )
        total = sizes.list_versions
        for t in targets:
            harness.seed(t.server.url, total, sizes.seed_threads, _versions(t, "listing"), "versions")
        log("list_versions")
        results["list_versions"] = interleaved(
            targets,
            LIST_ROUNDS,
            lambda t, c: harness.run_sequential(t.http, 1, lambda http, i: _list_all(t, http, total)),
        )
        return results


def _champion(t: workload.Target, http: httpx.Client) -> int:
    got = t.api.get_by_alias(http, "sequential", "champion")
    if got != 1:
        raise harness.ApiError(f"@champion resolved to {got}, expected 1")
    return got


def _creator(t: workload.Target, names: list[str]) -> harness.Op:
    return lambda http, i: t.api.create_model(http, names[i])


def _versions(t: workload.Target, model: str) -> harness.Op:
    return lambda http, i: t.api.create_version(http, model, i)


def _search(t: workload.Target, http: httpx.Client, prefix_matches: tuple[str, int]) -> int:
    prefix, matches = prefix_matches
    got = t.api.search_models(http, prefix, 100)
    if got != min(matches, 100):
        raise harness.ApiError(f"'{prefix}%' found {got} models, expected {min(matches, 100)}")
    return got


def _list_all(t: workload.Target, http: httpx.Client, total: int) -> int:
    """One full listing, newest first, 100 per page (one timed operation per listing)."""
    token: str | None = None
    expected = total
    for _ in range(total // 100 + 1):
        versions, token = t.api.list_versions(http, "listing", 100, token)
        if versions != list(range(expected, max(expected - 100, 0), -1)):
            raise harness.ApiError(f"a page held {versions[:3]}..., expected from {expected}")
        expected -= len(versions)
        if token is None:
            break
    if expected != 0:
        raise harness.ApiError(f"the listing ended {expected} versions early")
    return total


def audit_cost(tmp: Path, versions: int, rounds: int) -> dict[str, Any]:
    """Versions per second with and without the audit append, interleaved so drift hits both alike."""
    from covex.domain.entities import NewVersion
    from covex.service import open_service
    from covex.service.base import ServiceBase
    from covex.settings import Settings

    real = ServiceBase._audit

    def no_audit(*_args: Any, **_kwargs: Any) -> None:
        return None

    service = open_service(Settings(uri=str(tmp / "audit-data")))
    rates: dict[str, list[float]] = {"audited": [], "unaudited": []}
    try:
        for r in range(rounds):
            for label in ("audited", "unaudited"):
                ServiceBase._audit = real if label == "audited" else no_audit  # type: ignore[method-assign]
                name = f"{label}-{r}"
                service.create_model(name)
                start = time.perf_counter()
                for i in range(versions):
                    service.create_version(name, NewVersion(source=f"s3://bench/{i}", metrics={"auc": i / versions}))
                rates[label].append(versions / (time.perf_counter() - start))
    finally:
        ServiceBase._audit = real  # type: ignore[method-assign]
        service.close()
    audited, unaudited = statistics.median(rates["audited"]), statistics.median(rates["unaudited"])
    return {
        "versions_per_round": versions,
        "rounds": rounds,
        "audited_per_s": round(audited, 1),
        "unaudited_per_s": round(unaudited, 1),
        "ratio": round(audited / unaudited, 3),
    }


def report(results: dict[str, Any]) -> list[str]:
    lines: list[str] = []
    reg = results["registry"]
    head = (
        f"{'phase':<18} | {'governed/s':>10} {'p50 ms':>7} | {'no-auth/s':>9} {'p50 ms':>7} | "
        f"{'bare/s':>7} {'p50 ms':>7} | {'gov/bare':>8} {'gov/no-auth':>11} | cost"
    )
    lines += [head, "-" * len(head)]
    ratios: dict[str, float] = {}
    for phase in workload.PHASES:
        g, n, b = (reg[phase][k] for k in ("governed", "no-auth", "bare"))
        total, auth = g["ops_per_s"] / b["ops_per_s"], g["ops_per_s"] / n["ops_per_s"]
        ratios[phase] = round(total, 3)
        ratios[f"{phase}_auth_only"] = round(auth, 3)
        cost = 1 / total - 1
        lines.append(
            f"{phase:<18} | {g['ops_per_s']:>10.1f} {g['p50_ms']:>7.2f} | {n['ops_per_s']:>9.1f} {n['p50_ms']:>7.2f} | "
            f"{b['ops_per_s']:>7.1f} {b['p50_ms']:>7.2f} | {total:>8.3f} {auth:>11.3f} | "
            f"{cost:+.1%} {'PASS' if cost < TARGET_SLOWDOWN else 'MISS'}"
        )
    audit = results["audit"]
    lines += [
        "",
        f"audit trail, in-process create_version on SQLite "
        f"({audit['rounds']} rounds of {audit['versions_per_round']}):",
        f"  audited {audit['audited_per_s']:.0f}/s, without the append {audit['unaudited_per_s']:.0f}/s: "
        f"ratio {audit['ratio']:.3f} (cost {1 / audit['ratio'] - 1:+.1%})",
    ]
    ratios["audit_in_process"] = audit["ratio"]
    lines.append(json.dumps(ratios))
    return lines


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    p.add_argument("--quick", action="store_true", help="smaller workload")
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--out", type=Path, help="also write the results as JSON here")
    args = p.parse_args(argv)
    sizes = workload.QUICK if args.quick else workload.Sizes()
    tmp = Path(tempfile.mkdtemp(prefix="covex-governance-"))
    results: dict[str, Any] = {"machine": machine(("covex", "httpx")), "quick": args.quick}
    try:
        results["registry"] = registry_ratios(tmp, sizes, args.seed)
        log("audit trail in-process")
        n = AUDIT_VERSIONS // 3 if args.quick else AUDIT_VERSIONS
        results["audit"] = audit_cost(tmp, n, AUDIT_ROUNDS)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    lines = report(results)
    results["ratios"] = json.loads(lines[-1])
    if args.out:
        args.out.write_text(json.dumps(results, indent=2) + "\n")
    print("\n".join(lines), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
