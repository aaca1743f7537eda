"""Covex against MLflow: the model registry over raw HTTP and SDK to SDK, transfers, and scaling.

In one run, on loopback, side by side:

1. the registry workload through each REST API (``workload.py``: sequential and concurrent creates,
   get by alias, search, list), next to the empty-endpoint floor of the same HTTP stack (``floor.py``);
2. SDK to SDK: ``covex.Client`` against ``mlflow.MlflowClient``, and in-process reads (``sdk.py``); then
   MLflow's own client against both servers, Covex through its MLflow-compatible API (``mlflow_client.py``);
3. one big file up and down through each server's SDK, against one core's SHA-256 (``transfers.py``);
4. ``covex server --workers 1`` and ``2`` on PostgreSQL under concurrent load (``scaling.py``).

Run from the repository root::

    .venv/bin/python benchmarks/registry.py            # full run (about 6 minutes)
    .venv/bin/python benchmarks/registry.py --quick    # smoke run (about 3 minutes)

Progress goes to stderr; the tables go to stdout and the last line is one JSON object: keys ending
in ``_ratio`` are Covex's advantage (higher is better). See benchmarks/README.md.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import shutil
import signal
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

from harness import Measure, Server, covex_server, free_port, http_client, log, machine, mlflow_server, ok, running
from harness import run_sequential as sequential
from mlflow_client import MLFLOW_CLIENT_PHASES, run_mlflow_client
from scaling import QUICK_SCALE, ScaleSizes, postgres_available, run_scaling
from sdk import QUICK_SDK, SDK_PHASES, CovexSdk, MlflowSdk, SdkSizes, run_sdk
from transfers import run_transfers
from workload import PHASES, QUICK, Api, CovexApi, MlflowApi, Sizes, Target, run_registry, search_prefixes, warm_up

RATIO_TARGET = 10.0
MLFLOW_CLIENT_TARGET = 5.0  # MLflow's client on Covex against on MLflow's server
FLOOR_TARGET = 2.0  # get by alias and search: p50 at most this many times the floor's
EMBEDDED_TARGET_MS = 0.1
TRANSFER_TARGET = 0.6  # of one core's SHA-256 throughput
MEMORY_TARGET_MB = 100.0


def floor_server(tmp: Path) -> Server:
    port = free_port()
    argv = [sys.executable, str(Path(__file__).parent / "floor.py"), "--port", str(port)]
    return Server("floor", argv, port, "/health", tmp / "floor.log")


def measure_floor(floor: Server, count: int, path: str = "/floor") -> Measure:
    with http_client(floor.url) as http:
        for _ in range(200):
            ok(http.get(path))
        return sequential(http, count, lambda h, _: len(ok(h.get(path))))


# -- report -----------------------------------------------------------------------------------


def verdict(passed: bool) -> str:
    return "PASS" if passed else "MISS"


def fmt(value: float | None, digits: int = 2) -> str:
    return "-" if value is None or value != value else f"{value:.{digits}f}"


def _ratio(a: float | None, b: float | None) -> float | None:
    return round(a / b, 2) if a and b and a == a and b == b else None


def summary(results: dict[str, Any]) -> dict[str, Any]:
    """The last line: ``*_ratio`` keys are Covex's advantage; the others are Covex's own figures."""
    out: dict[str, Any] = {}
    reg = results.get("registry", {})
    for phase in PHASES if reg else ():
        out[f"{phase}_ratio"] = _ratio(reg[phase]["Covex"]["ops_per_s"], reg[phase].get("MLflow", {}).get("ops_per_s"))
    floor = results.get("floor")
    if reg and floor:
        for phase in ("get_by_alias", "search_models"):
            out[f"{phase}_over_floor"] = _ratio(reg[phase]["Covex"]["p50_ms"], floor["p50_ms"])
    page = results.get("page_floor")
    if reg and page:
        out["search_models_over_page_floor"] = _ratio(reg["search_models"]["Covex"]["p50_ms"], page["p50_ms"])
    sdk = results.get("sdk", {})
    for phase in SDK_PHASES if sdk else ():
        out[f"{phase}_ratio"] = _ratio(sdk[phase]["Covex"]["ops_per_s"], sdk[phase].get("MLflow", {}).get("ops_per_s"))
    through = results.get("mlflow_client", {})
    for phase in MLFLOW_CLIENT_PHASES if through else ():
        out[f"{phase}_ratio"] = _ratio(
            through[phase]["Covex"]["ops_per_s"], through[phase].get("MLflow", {}).get("ops_per_s")
        )
    for phase in MLFLOW_CLIENT_PHASES if through else ():
        row = through[phase]
        out[f"{phase}_over_floor"] = _ratio(row["Covex"]["p50_ms"], row["floor"]["p50_ms"])
        # The most any server could reach with MLflow's client: MLflow's own p50 over the client's floor.
        if "MLflow" in row:
            out[f"{phase}_ceiling"] = _ratio(row["MLflow"]["p50_ms"], row["floor"]["p50_ms"])
    if sdk:
        out["embedded_get_by_alias_ms"] = sdk["embedded_get_by_alias"]["Covex"]["p50_ms"]
    big = results.get("big")
    if big:
        c, m = big["Covex"], big.get("MLflow", {})
        out["upload_ratio"] = _ratio(c["upload_mib_s"], m.get("upload_mib_s"))
        out["download_ratio"] = _ratio(c["download_mib_s"], m.get("download_mib_s"))
        out["upload_vs_sha256"], out["download_vs_sha256"] = c["upload_vs_sha256"], c["download_vs_sha256"]
        out["upload_vs_write"], out["download_vs_write"] = c["upload_vs_write"], c["download_vs_write"]
        out["server_growth_mib"] = c["server_growth_mib"]
    scale = results.get("scaling")
    if scale and "1" in scale and "2" in scale:
        for what in ("get", "create"):
            out[f"{what}_2_workers_over_1"] = _ratio(scale["2"][what]["ops_per_s"], scale["1"][what]["ops_per_s"])
    return out


def _latency_table(title: str, rows: dict[str, dict[str, dict[str, Any]]], phases: Sequence[str]) -> list[str]:
    head = (
        f"{title:<22} | {'Covex ops/s':>11} {'p50 ms':>7} {'p95 ms':>7} {'p99 ms':>7} | "
        f"{'MLflow ops/s':>12} {'p50 ms':>7} {'p95 ms':>7} {'p99 ms':>7} | {'ratio':>6}"
    )
    lines = [head, "-" * len(head)]
    for phase in phases:
        c, m = rows[phase].get("Covex", {}), rows[phase].get("MLflow", {})
        errors = [f"{label} {row['errors']} errors" for label, row in rows[phase].items() if row["errors"]]
        lines.append(
            f"{phase:<22} | {fmt(c.get('ops_per_s'), 1):>11} {fmt(c.get('p50_ms')):>7} {fmt(c.get('p95_ms')):>7} "
            f"{fmt(c.get('p99_ms')):>7} | {fmt(m.get('ops_per_s'), 1):>12} {fmt(m.get('p50_ms')):>7} "
            f"{fmt(m.get('p95_ms')):>7} {fmt(m.get('p99_ms')):>7} | "
            f"{fmt(_ratio(c.get('ops_per_s'), m.get('ops_per_s')), 1):>6}"
            + (f"  ({', '.join(errors)})" if errors else "")
        )
    return lines


def report(results: dict[str, Any]) -> list[str]:
    s = summary(results)
    lines: list[str] = []
    targets: list[str] = []
    reg, floor = results.get("registry"), results.get("floor")
    if reg:
        lines += ["raw HTTP, one keep-alive httpx.Client per server (ratio: Covex ops/s over MLflow's)"]
        lines += _latency_table("phase", reg, PHASES)
        for label in ("Covex", "MLflow"):
            lines += [
                f"{label} concurrent_create: {n}" for n in reg["concurrent_create"].get(label, {}).get("notes", [])
            ]
        for phase in PHASES:
            r = s[f"{phase}_ratio"]
            shown = "n/a (no MLflow run)" if r is None else f"{verdict(r >= RATIO_TARGET)}  {r:.1f}x"
            targets.append(f"  {phase + ' throughput >= 10x MLflow':<46} {shown}")
    if reg and floor:
        lines += [
            "",
            f"empty-endpoint floor (floor.py, same stack): p50 {floor['p50_ms']:.3f} ms, p95 {floor['p95_ms']:.3f} ms",
        ]
        for phase in ("get_by_alias", "search_models"):
            x = s[f"{phase}_over_floor"]
            lines.append(f"  {phase}: p50 {reg[phase]['Covex']['p50_ms']:.3f} ms = {x:.2f}x the floor")
            targets.append(f"  {phase + ' p50 <= 2x the floor':<46} {verdict(x <= FLOOR_TARGET)}  {x:.2f}x")
        page = results.get("page_floor")
        if page:
            lines.append(
                f"  the same stack answering a fixed page of 100 models (/floor/page): p50 {page['p50_ms']:.3f} ms;"
                f" search_models = {s['search_models_over_page_floor']:.2f}x that"
            )
    sdk = results.get("sdk")
    if sdk:
        lines += [
            "",
            "SDK to SDK: covex.Client vs mlflow.MlflowClient; embedded: covex.Client(folder) vs SqlAlchemyStore",
        ]
        lines += _latency_table("call", sdk, SDK_PHASES)
        e = s["embedded_get_by_alias_ms"]
        targets.append(f"  {'embedded get by alias p50 <= 0.1 ms':<46} {verdict(e <= EMBEDDED_TARGET_MS)}  {e:.3f} ms")
        r = s["sdk_create_version_ratio"]
        if r is not None:
            targets.append(f"  {'SDK create version >= 10x MLflow':<46} {verdict(r >= RATIO_TARGET)}  {r:.1f}x")
    through = results.get("mlflow_client")
    if through:
        lines += ["", "MLflow's client (mlflow.MlflowClient) on each server: Covex's MLflow-compatible API vs MLflow's"]
        lines += _latency_table("call", through, MLFLOW_CLIENT_PHASES)
        lines.append("  MLflow's client against routes answering fixed bodies (its own cost, p50):")
        for phase in MLFLOW_CLIENT_PHASES:
            f = through[phase]["floor"]["p50_ms"]
            ceiling = s.get(f"{phase}_ceiling")
            lines.append(
                f"    {phase}: {f:.3f} ms; Covex = {s[f'{phase}_over_floor']:.2f}x that"
                + (f"; a server answering in no time would be {ceiling:.1f}x MLflow's" if ceiling else "")
            )
        for phase in MLFLOW_CLIENT_PHASES:
            r = s[f"{phase}_ratio"]
            if r is not None:
                targets.append(f"  {phase + ' >= 5x MLflow':<46} {verdict(r >= MLFLOW_CLIENT_TARGET)}  {r:.1f}x")
    big = results.get("big")
    if big:
        lines += [
            "",
            f"big file: {big['size_mib']} MiB through each SDK (MiB/s, median of {big['rounds']} rounds); "
            f"one core's SHA-256: {big['sha256_mib_s']:.0f}; writing a copy on the same disk: {big['write_mib_s']:.0f}",
        ]
        for label in ("Covex", "MLflow"):
            if label in big:
                b = big[label]
                lines.append(
                    f"  {label:<7} upload {b['upload_mib_s']:>6.0f} ({b['upload_vs_sha256']:.2f}x sha256)  "
                    f"download {b['download_mib_s']:>6.0f} ({b['download_vs_sha256']:.2f}x sha256, "
                    f"{b['download_vs_write']:.2f}x write; upload {b['upload_vs_write']:.2f}x write)  "
                    f"server RSS growth {b['server_growth_mib']:.1f} MiB"
                    + ("" if b["peak_reset"] else " (peak not reset)")
                )
        for key in ("upload_vs_sha256", "download_vs_sha256"):
            targets.append(
                f"  {key.replace('_vs_', ' >= 0.6x ') + ' (Covex)':<46} "
                f"{verdict(s[key] >= TRANSFER_TARGET)}  {s[key]:.2f}x"
            )
        g = s["server_growth_mib"]
        targets.append(f"  {'server RSS growth < 100 MB (Covex)':<46} {verdict(g < MEMORY_TARGET_MB)}  {g:.1f} MiB")
    scale = results.get("scaling")
    if scale:
        lines += ["", f"covex server --workers N on PostgreSQL, {scale['clients']} client processes at once:"]
        for workers in [k for k in scale if k != "clients"]:
            row = scale[workers]
            lines.append(
                f"  {workers} worker(s): get by alias {row['get']['ops_per_s']:>7.0f}/s "
                f"(p50 {row['get']['p50_ms']:.2f} ms)  "
                f"create version {row['create']['ops_per_s']:>6.0f}/s (p50 {row['create']['p50_ms']:.2f} ms)"
                + ("" if not (row["get"]["errors"] or row["create"]["errors"]) else "  ERRORS")
            )
        for what in ("get", "create"):
            r = s.get(f"{what}_2_workers_over_1")
            if r is not None:
                targets.append(f"  {what + ': 2 workers over 1 (2 cores, shared with clients)':<46} {r:.2f}x")
    lines += ["", "targets:", *targets, json.dumps(s)]
    return lines


# -- main -------------------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="small sizes for a smoke run")
    p.add_argument("--skip-mlflow", action="store_true", help="run Covex alone (no ratios)")
    p.add_argument("--skip-big", action="store_true", help="skip the big-file transfers")
    p.add_argument("--skip-registry", action="store_true", help="skip the registry phases (raw HTTP and SDK)")
    p.add_argument("--skip-scaling", action="store_true", help="skip the PostgreSQL workers phase")
    p.add_argument("--big-mb", type=int, help="size of the big file in MiB (default 1024, 100 with --quick)")
    p.add_argument("--covex-workers", type=int, default=1, help="Covex server processes (default 1, its default)")
    p.add_argument("--mlflow-workers", type=int, help="MLflow server workers (default: MLflow's own, 4)")
    p.add_argument("--seed", type=int, default=20240601, help="seed of the search prefixes")
    p.add_argument("--out", type=Path, help="also write every number as JSON to this file")
    p.add_argument("--keep", action="store_true", help="keep the temporary folder (data and server logs)")
    return p.parse_args(argv)


def _terminate(signum: int, _frame: object) -> None:
    raise SystemExit(128 + signum)  # unwinds through the finally blocks that stop the servers


def run_side_by_side(args: argparse.Namespace, sizes: Sizes, tmp: Path, results: dict[str, Any]) -> None:
    covex = covex_server(tmp, args.covex_workers)
    mlflow = None if args.skip_mlflow else mlflow_server(tmp, args.mlflow_workers)
    floor = floor_server(tmp)
    servers = [s for s in (covex, mlflow, floor) if s is not None]
    results["servers"] = {s.label: " ".join(s.argv) for s in servers}
    with running(servers), contextlib.ExitStack() as clients:
        apis: list[Api] = [CovexApi()] + ([MlflowApi()] if mlflow else [])
        targets = [
            Target(api, s, clients.enter_context(http_client(s.url))) for api, s in zip(apis, servers, strict=False)
        ]
        if not args.skip_registry:
            for t in targets:
                log(f"warming up {t.api.label}")
                warm_up(t)
            floor_m = measure_floor(floor, sizes.alias_gets)
            page_m = measure_floor(floor, sizes.searches, "/floor/page")
            results["registry"] = run_registry(targets, sizes, args.seed)
            floor_m.merge(measure_floor(floor, sizes.alias_gets))  # before and after: drift hits both
            page_m.merge(measure_floor(floor, sizes.searches, "/floor/page"))
            results["floor"], results["page_floor"] = floor_m.summary(), page_m.summary()
            prefixes = search_prefixes(sizes.models, sizes.searches, random.Random(args.seed))
            sdks: list[Any] = [CovexSdk(covex.url, tmp / "covex-data")]
            if mlflow:
                sdks.append(MlflowSdk(mlflow.url, tmp / "mlflow.db"))
            try:
                sdk_sizes = QUICK_SDK if args.quick else SdkSizes()
                results["sdk"] = run_sdk(sdks, sdk_sizes, prefixes, max(1, sizes.seq_versions // 2))
                results["mlflow_client"] = run_mlflow_client(
                    covex.url,
                    mlflow.url if mlflow else None,
                    floor.url,
                    sdk_sizes,
                    prefixes,
                    max(1, sizes.seq_versions // 2),
                )
            finally:
                for sdk in sdks:
                    sdk.close()
        if not args.skip_big:
            results["big"] = run_transfers(covex, mlflow, tmp, sizes.big_mb)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, _terminate)
    sizes = QUICK if args.quick else Sizes()
    if args.big_mb is not None:
        sizes = replace(sizes, big_mb=args.big_mb)
    tmp = Path(tempfile.mkdtemp(prefix="covex-bench-"))
    log(f"temporary folder {tmp}")
    results: dict[str, Any] = {
        "machine": machine(("covex", "mlflow", "httpx", "fastapi", "uvicorn", "sqlalchemy")),
        "sizes": asdict(sizes),
        "quick": args.quick,
    }
    results["machine"]["load_average_at_start"] = os.getloadavg()
    try:
        if not (args.skip_registry and args.skip_big):
            run_side_by_side(args, sizes, tmp, results)
        if not args.skip_scaling:
            if postgres_available():
                results["scaling"] = run_scaling(tmp, QUICK_SCALE if args.quick else ScaleSizes())
            else:
                log("no PostgreSQL at 127.0.0.1:5432: the workers phase is skipped")
    finally:
        if args.keep:
            log(f"kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    results["machine"]["load_average_at_end"] = os.getloadavg()
    lines = report(results)
    results["summary"] = json.loads(lines[-1])
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(results, indent=2) + "\n")
        log(f"wrote {args.out}")
    print("\n".join(lines), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
