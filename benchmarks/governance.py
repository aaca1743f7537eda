"""The cost of governance: authentication, permission checks and the audit trail.

Two measurements, each a ratio taken in one run on the same machine:

1. The registry workload of ``registry.py`` (create versions one by one and from 8 threads, get
   by alias, search, list) against two Covex servers side by side: one requiring API tokens
   (the caller is an editor, not an admin, so every call runs the full permission check) and
   one started with ``--no-auth``. Both audit every change: the trail cannot be switched off.
2. The audit trail alone: version creation in-process on one SQLite file, with the trail and
   with the audit append replaced by a no-op (in this benchmark only), interleaved in rounds.

Run from the repository root::

    .venv/bin/python benchmarks/governance.py            # registry sizes of registry.py (about 4 minutes)
    .venv/bin/python benchmarks/governance.py --quick    # smaller (about 1 minute)

The last line of stdout is one JSON object with every ratio. Target: governance costs under 20%
(auth/no-auth throughput ratio of at least 0.83 in every phase).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import registry as core
from servers import log, machine

TARGET_SLOWDOWN = 0.20
AUDIT_ROUNDS = 5
AUDIT_VERSIONS = 300


def registry_ratios(tmp: Path, sizes: core.Sizes, seed: int) -> dict[str, dict[str, dict[str, Any]]]:
    with_auth = core.covex_server(tmp, 1, auth=True, editor="bench", label="auth")
    without = core.covex_server(tmp, 1, auth=False, label="no-auth")
    servers = [with_auth, without]
    with core.running(servers), contextlib.ExitStack() as clients:
        targets = []
        for s in servers:
            api = core.CovexApi()
            api.label = s.label
            targets.append(core.Target(api, s, clients.enter_context(core.http_client(s.url))))
        for t in targets:
            log(f"warming up {t.api.label}")
            core.warm_up(t)
        return core.run_registry(targets, sizes, seed)


def audit_cost(tmp: Path, versions: int, rounds: int) -> dict[str, Any]:
    """Versions per second with and without the audit append, interleaved so drift hits both alike."""
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
                    service.create_version(name, source=f"s3://bench/{i}", metrics={"auc": i / versions})
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
        f"{'phase':<18} | {'auth ops/s':>10} {'p50 ms':>7} | {'no-auth ops/s':>13} {'p50 ms':>7} | {'ratio':>6} | cost"
    )
    lines += [head, "-" * len(head)]
    ratios: dict[str, float] = {}
    for phase in core.PHASES:
        a, n = reg[phase]["auth"], reg[phase]["no-auth"]
        ratio = a["ops_per_s"] / n["ops_per_s"]
        ratios[phase] = round(ratio, 3)
        cost = 1 / ratio - 1
        lines.append(
            f"{phase:<18} | {a['ops_per_s']:>10.1f} {a['p50_ms']:>7.2f} | "
            f"{n['ops_per_s']:>13.1f} {n['p50_ms']:>7.2f} | "
            f"{ratio:>6.3f} | {cost:+.1%} {'PASS' if cost < TARGET_SLOWDOWN else 'MISS'}"
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
    sizes = core.QUICK if args.quick else core.Sizes()
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
