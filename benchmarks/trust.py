"""Trust on a big model: scanning, a version scan through the service, and signed bundles out and in.

The model is one joblib-like pickle of ``--size-mib`` (a dict holding a ``numpy.frombuffer`` array of
random bytes), written opcode by opcode and streamed to disk: nothing is ever loaded. Side by side in
one run, each figure the median of ``--rounds`` rounds with the sides taking turns to go first:

1. ``covex.artifacts.scanner.scan_file`` on the file, against reading it once in 4 MiB chunks and
   against one SHA-256 pass over it;
2. ``client.scan`` of a version holding the file, in an embedded registry (``covex.Client(folder)``);
3. ``client.trust.export_bundle`` against copying the file once (``shutil.copyfile``), and
   ``import_bundle`` into a new registry that trusts the exporter's key against copying it once and
   hashing it once. An import reads the bundle twice by design (a check pass, then a store pass),
   and an embedded registry scans the new version inline when it turns READY.

    .venv/bin/python benchmarks/trust.py                  # 1 GiB: about 80 s, 5 GiB of free disk
    .venv/bin/python benchmarks/trust.py --size-mib 64    # about 10 s

The file lives in the page cache (it was just written): every figure is warm. The last line is one
JSON object; keys ending in ``_ratio`` are Covex's advantage (higher is better).
"""

from __future__ import annotations

import argparse
import gc
import hashlib
import json
import os
import pickle
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from harness import log, machine

import covex
from covex.artifacts.scanner import scan_file
from covex.domain import signing

MIB = 1024 * 1024
CHUNK = 4 * MIB
NAME = "bench-model"


def _text(s: str) -> bytes:
    raw = s.encode()
    return pickle.SHORT_BINUNICODE + bytes([len(raw)]) + raw


def write_model(path: Path, payload: int) -> int:
    """``{"format": ..., "weights": numpy.frombuffer(<payload random bytes>, "uint8")}`` as a protocol-5
    pickle, the bytes streamed in chunks; the file's size."""
    head = pickle.PROTO + bytes([5]) + pickle.EMPTY_DICT + pickle.MARK + _text("format") + _text("covex-bench")
    head += _text("weights") + _text("numpy") + _text("frombuffer") + pickle.STACK_GLOBAL
    head += pickle.BINBYTES8 + payload.to_bytes(8, "little")
    tail = _text("uint8") + pickle.TUPLE2 + pickle.REDUCE + pickle.SETITEMS + pickle.STOP
    with path.open("wb") as f:
        f.write(head)
        left = payload
        while left:
            n = min(CHUNK, left)
            f.write(os.urandom(n))
            left -= n
        f.write(tail)
    return path.stat().st_size


def status_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


def measure(fn: Callable[[], Any]) -> dict[str, Any]:
    """Seconds, result, and the peak resident memory above the start (MiB; NaN where it cannot be reset)."""
    gc.collect()
    os.sync()  # no dirty pages of an earlier step flushed during this one
    try:
        Path("/proc/self/clear_refs").write_text("5")  # resets VmHWM to the current RSS
        before = status_kib("VmRSS")
    except OSError:
        before = -1
    start = time.perf_counter()
    out = fn()
    seconds = time.perf_counter() - start
    peak = (status_kib("VmHWM") - before) / 1024 if before >= 0 else float("nan")
    return {"s": seconds, "out": out, "peak": peak}


def medians(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """The median seconds and peak of several runs of one step, with the last run's result."""
    return {
        "s": statistics.median(m["s"] for m in runs),
        "out": runs[-1]["out"],
        "peak": statistics.median(m["peak"] for m in runs),
    }


def read_file(path: Path, hashed: bool) -> str:
    """Read the file once in 4 MiB chunks; with ``hashed``, its SHA-256 too."""
    h = hashlib.sha256()
    with path.open("rb", buffering=0) as f:
        while chunk := f.read(CHUNK):
            if hashed:
                h.update(chunk)
    return h.hexdigest()


def scan(path: Path) -> Any:
    with path.open("rb") as f:
        return scan_file(path.name, f)


def export(client: covex.Client, version: int, out: Path) -> int:
    with out.open("wb") as f:
        return client.trust.export_bundle(NAME, version, f)


def import_into(root: Path, public_key: str, bundle: Path) -> dict[str, Any]:
    client = covex.Client(root)
    try:
        client.trust.trust_key("dev", public_key)
        with bundle.open("rb") as f:
            return measure(lambda: client.trust.import_bundle(f))
    finally:
        client.close()


def rounds(n: int, steps: dict[str, Callable[[], Any]], on_round: Callable[[], None] | None = None) -> dict[str, Any]:
    """Each step once per round, the order turned round every round; medians of seconds and peaks."""
    seen: dict[str, list[dict[str, Any]]] = {k: [] for k in steps}
    for i in range(n):
        for name in list(steps) if i % 2 == 0 else list(reversed(steps)):
            seen[name].append(measure(steps[name]))
        if on_round:
            on_round()
    return {k: medians(v) for k, v in seen.items()}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size-mib", type=int, default=1024, help="size of the model's pickle (default 1024)")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args(argv)
    root = Path(tempfile.mkdtemp(prefix="covex-trust-"))
    r: dict[str, Any] = {"machine": machine(["covex", "picklescan", "numpy", "cryptography"])}
    try:
        model_dir = root / "model"
        model_dir.mkdir()
        model = model_dir / "model.joblib"
        log(f"writing a {args.size_mib} MiB pickle")
        r["size"] = write_model(model, args.size_mib * MIB)
        log("scan_file against a read and a SHA-256 pass")
        read, sha256 = (lambda: read_file(model, False)), (lambda: read_file(model, True))
        r["file"] = rounds(args.rounds, {"read": read, "sha256": sha256, "scan": lambda: scan(model)})
        key = root / "signing.pem"
        key.write_bytes(signing.generate()[0])
        a = covex.Client(root / "registry-a", signing_key_file=str(key))
        try:
            log("create_version and client.scan")
            a.create_model(NAME)
            r["create"] = measure(lambda: a.create_version(NAME, model_dir))
            version = r["create"]["out"].version
            uri = f"models:/{NAME}/{version}"
            r["service"] = rounds(args.rounds, {"scan": lambda: a.scan(uri)})
            public = next(k.public_key for k in a.trust.list_keys() if k.origin == "own")
            bundle, floor_copy = root / "model.cvxb", root / "copy.joblib"
            log("export_bundle and import_bundle against a copy")
            imports: list[dict[str, Any]] = []

            def one_import() -> None:
                target = root / f"registry-b{len(imports)}"
                imports.append(import_into(target, public, bundle))
                shutil.rmtree(target)

            r["bundle"] = rounds(
                args.rounds,
                {"copy": lambda: shutil.copyfile(model, floor_copy), "export": lambda: export(a, version, bundle)},
                on_round=one_import,
            )
            r["import"] = medians(imports)
            r["bundle_size"] = bundle.stat().st_size
        finally:
            a.close()
    finally:
        shutil.rmtree(root, ignore_errors=True)
    report(r, args.size_mib, args.rounds)
    return 0


def report(r: dict[str, Any], size_mib: int, n: int) -> None:
    size, f, service, b, imp = r["size"], r["file"], r["service"]["scan"], r["bundle"], r["import"]
    mib = size / MIB

    def rate(s: float, over: float = mib) -> float:
        return over / s

    rows = [
        ("floor: read in 4 MiB chunks", f["read"]),
        ("floor: read + SHA-256", f["sha256"]),
        ("scan_file (picklescan, no load)", f["scan"]),
        ("client.scan (embedded service)", service),
        ("create_version (hash, store, scan)", r["create"]),
        ("floor: shutil.copyfile", b["copy"]),
        ("export_bundle", b["export"]),
        ("import_bundle (check, store, scan)", imp),
    ]
    print(f"trust: one {mib:,.1f} MiB pickle, median of {n} rounds, the file in the page cache")
    print("machine:", ", ".join(f"{k} {v}" for k, v in r["machine"].items()))
    print(f"{'step':<38} {'seconds':>9} {'MiB/s':>9} {'peak RSS +MiB':>14}")
    print("-" * 73)
    for label, m in rows:
        print(f"{label:<38} {m['s']:>9.3f} {rate(m['s']):>9.1f} {m['peak']:>14.1f}")
    found = f["scan"]["out"]
    report_ = service["out"]
    overhead = r["bundle_size"] - size
    print(f"scan_file: {found.format}, {len(found.findings)} finding(s): {[x.global_name for x in found.findings]}")
    print(f"client.scan: {report_.verdict} (max severity {report_.max_severity})")
    print(f"bundle: {r['bundle_size']:,} bytes = the model + {overhead:,} bytes ({100 * overhead / size:.4f}%)")
    print(f"import: version {imp['out'].version}, {imp['out'].statements} statement(s)")
    summary = {
        "size_mib": size_mib,
        "read_mib_s": round(rate(f["read"]["s"]), 1),
        "sha256_mib_s": round(rate(f["sha256"]["s"]), 1),
        "scan_mib_s": round(rate(f["scan"]["s"]), 1),
        "scan_vs_read_ratio": round(f["read"]["s"] / f["scan"]["s"], 3),
        "scan_vs_sha256_ratio": round(f["sha256"]["s"] / f["scan"]["s"], 3),
        "scan_peak_mib": round(f["scan"]["peak"], 1),
        "service_scan_s": round(service["s"], 3),
        "service_scan_mib_s": round(rate(service["s"]), 1),
        "create_version_mib_s": round(rate(r["create"]["s"]), 1),
        "export_mib_s": round(rate(b["export"]["s"]), 1),
        "import_mib_s": round(rate(imp["s"], r["bundle_size"] / MIB), 1),
        "bundle_overhead_bytes": overhead,
        "export_ratio": round(b["copy"]["s"] / b["export"]["s"], 3),
        "import_ratio": round((b["copy"]["s"] + f["sha256"]["s"]) / imp["s"], 3),
        "import_peak_mib": round(imp["peak"], 1),
    }
    print(json.dumps(summary))


if __name__ == "__main__":
    sys.exit(main())
