"""Covex against MLflow: ``log_model`` and ``load_model`` of the same trained models, with the bytes each moves.

Both servers run side by side on loopback. Each is reached through its own small TCP proxy (a child
process of this script) that counts the bytes going each way, so both sides are measured the same way.
For each model kind and each repeat, a freshly trained model (the same object for both sides) goes
through these steps; the two sides take turns step by step, and which one starts alternates:

1. ``log_model``                  package the model (MLflow format), upload and register it; each side's defaults
2. ``load_model`` (1st)           Covex: into an empty cache; MLflow: its default (a new temporary folder)
3. ``load_model`` (2nd)           Covex: the cache is re-verified, nothing is downloaded; MLflow: downloads again
4. ``log_model`` (same model)     the same object under a new name, both sides given the same ``pip_requirements``
                                  (MLflow's default infers them in a subprocess; Covex's never does)
5. no HTTP: packaging into a local folder, and ``mlflow.pyfunc.load_model`` of a local folder

A warm-up round with tiny models comes first, so no measurement pays for imports.

Every loaded model must predict exactly what the original does, or the run fails.

Run from the repository root::

    .venv/bin/python benchmarks/models.py            # full run (about 5 minutes)
    .venv/bin/python benchmarks/models.py --quick    # smoke run (about 2.5 minutes)

Progress goes to stderr; the tables go to stdout, and the last line is one JSON object with the
Covex/MLflow ratios of time and bytes for each step. See benchmarks/README.md.
"""

from __future__ import annotations

import abc
import argparse
import contextlib
import gc
import json
import logging
import math
import multiprocessing
import os
import resource
import shutil
import signal
import socket
import statistics
import sys
import tempfile
import threading
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field, fields, replace
from importlib import metadata
from pathlib import Path
from typing import Any

import httpx
from harness import Server, covex_token, cpu_seconds, free_port, log, machine, mlflow_server, settle, tool

SETTLE_TIMEOUT = 120.0  # at start-up: MLflow's job runner keeps both cores busy for 10-20 s
STEP_SETTLE_TIMEOUT = 15.0  # before each timed step
RELAY_BUFFER = 1024 * 1024
TEST_ROWS = 2_000
SECOND_LOAD_MAX_BYTES = 64 * 1024  # the 2nd Covex load may move metadata only
TRUSTED_SKOPS = ["sklearn.tree._tree.Tree"]  # what MLflow needs to load a random forest saved with skops

STEPS = ("log_model", "load_model_1", "load_model_2", "log_model_reqs")
LOCAL_STEPS = ("package_local", "load_local")
STEP_TITLES = {
    "log_model": "log_model",
    "load_model_1": "load_model (1st)",
    "load_model_2": "load_model (2nd)",
    "log_model_reqs": "log_model (same, reqs given)",
    "package_local": "no HTTP: package to a folder",
    "load_local": "no HTTP: pyfunc load of a folder",
}


@dataclass(frozen=True)
class Sizes:
    """The models trained for each repeat."""

    repeats: int = 5
    rf_rows: int = 8_000
    rf_trees: int = 40
    features: int = 20
    lgbm_rows: int = 8_000
    lgbm_trees: int = 100


QUICK = Sizes(repeats=2, rf_rows=3_000, rf_trees=15, lgbm_trees=50)
KINDS = ("rf", "lgbm")


# -- the byte-counting proxy --------------------------------------------------------------------


def _pump(src: socket.socket, dst: socket.socket, counters: Any, slot: int, lock: threading.Lock) -> None:
    """Copy one direction of a connection, counting the bytes before they are passed on."""
    buf = bytearray(RELAY_BUFFER)
    view = memoryview(buf)
    try:
        while n := src.recv_into(buf):
            with lock:
                counters[slot] += n
            dst.sendall(view[:n])
    except OSError:
        pass
    finally:
        with contextlib.suppress(OSError):
            dst.shutdown(socket.SHUT_WR)


def _relay(client: socket.socket, target: int, counters: Any, base: int, lock: threading.Lock) -> None:
    try:
        upstream = socket.create_connection(("127.0.0.1", target), timeout=10)
    except OSError:
        client.close()
        return
    upstream.settimeout(None)
    for s in (client, upstream):
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    with lock:
        counters[base + 2] += 1
    up = threading.Thread(target=_pump, args=(client, upstream, counters, base, lock), daemon=True)
    up.start()
    _pump(upstream, client, counters, base + 1, lock)
    up.join()
    client.close()
    upstream.close()


def _accept(listener: socket.socket, target: int, counters: Any, base: int, lock: threading.Lock) -> None:
    while True:
        client, _ = listener.accept()
        threading.Thread(target=_relay, args=(client, target, counters, base, lock), daemon=True).start()


def _proxy_main(targets: list[int], counters: Any, reply: Any) -> None:
    """The proxy process: one listener per target port; exits when its parent is gone."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    parent = os.getppid()
    lock = threading.Lock()
    ports = []
    for i, target in enumerate(targets):
        listener = socket.create_server(("127.0.0.1", 0), backlog=128)
        ports.append(int(listener.getsockname()[1]))
        threading.Thread(target=_accept, args=(listener, target, counters, 3 * i, lock), daemon=True).start()
    reply.send(ports)
    reply.close()
    while os.getppid() == parent:
        time.sleep(0.5)
    os._exit(0)


@dataclass(frozen=True)
class Traffic:
    up: int = 0  # client to server, headers included
    down: int = 0  # server to client
    connections: int = 0

    def __sub__(self, other: Traffic) -> Traffic:
        return Traffic(self.up - other.up, self.down - other.down, self.connections - other.connections)


class ByteProxy:
    """A TCP proxy on 127.0.0.1 in front of each target port, counting bytes in both directions.

    It runs in a child process (forked before anything heavy is imported), so relaying costs the
    client process neither GIL time nor memory. Counters live in shared memory and are read without
    a lock: a byte is counted before it is passed on, so once a response has arrived, it is counted.
    """

    def __init__(self, targets: list[int]) -> None:
        ctx = multiprocessing.get_context("fork")
        self.counters = ctx.RawArray("Q", 3 * len(targets))
        receive, send = ctx.Pipe(duplex=False)
        self.proc = ctx.Process(target=_proxy_main, args=(targets, self.counters, send), daemon=True)
        self.proc.start()
        send.close()
        if not receive.poll(30):
            self.stop()
            raise RuntimeError("the byte-counting proxy did not start")
        self.ports: list[int] = receive.recv()
        receive.close()

    def url(self, i: int) -> str:
        return f"http://127.0.0.1:{self.ports[i]}"

    def traffic(self, i: int) -> Traffic:
        return Traffic(*self.counters[3 * i : 3 * i + 3])

    def stop(self) -> None:
        if self.proc.is_alive():
            self.proc.terminate()
            self.proc.join(5)
        if self.proc.is_alive():
            self.proc.kill()
            self.proc.join(5)


# -- servers ------------------------------------------------------------------------------------


def covex_server(tmp: Path) -> Server:
    port = free_port()
    argv = [str(tool("covex")), "--uri", str(tmp / "covex-data"), "server", "--host", "127.0.0.1", "--port", str(port)]
    # The SDK in this process reads its token from the environment, as a user's would.
    os.environ["COVEX_TOKEN"] = covex_token(tmp / "covex-data")
    return Server("Covex", argv, port, "/ready", tmp / "covex.log")


def own_cpu_seconds() -> float:
    """CPU time of this process plus its finished children (MLflow infers requirements in a subprocess)."""
    me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


# -- models -------------------------------------------------------------------------------------


@dataclass
class Trained:
    kind: str
    description: str
    model: Any
    example: Any  # the input_example both sides get
    test: Any  # rows to predict on
    expected: Any  # what the original model predicts on them


def train(kind: str, sizes: Sizes, seed: int) -> Trained:
    import pandas as pd
    from sklearn.datasets import make_regression

    rows = sizes.rf_rows if kind == "rf" else sizes.lgbm_rows
    x, y = make_regression(n_samples=rows + TEST_ROWS, n_features=sizes.features, noise=10.0, random_state=seed)
    frame = pd.DataFrame(x, columns=[f"f{i}" for i in range(sizes.features)])
    train_x, test_x, train_y = frame.iloc[:rows], frame.iloc[rows:], y[:rows]
    model: Any
    if kind == "rf":
        from sklearn.ensemble import RandomForestRegressor

        model = RandomForestRegressor(n_estimators=sizes.rf_trees, random_state=seed, n_jobs=2).fit(train_x, train_y)
        model.set_params(n_jobs=None)  # trained on both cores; stored with the default
        description = f"scikit-learn RandomForestRegressor, {sizes.rf_trees} trees"
    else:
        import lightgbm

        model = lightgbm.LGBMRegressor(n_estimators=sizes.lgbm_trees, random_state=seed, verbose=-1)
        model.fit(train_x, train_y)
        description = f"LightGBM LGBMRegressor, {sizes.lgbm_trees} trees"
    description += f", {rows:,} rows x {sizes.features} features"
    return Trained(kind, description, model, train_x.head(5), test_x, model.predict(test_x))


def requirements(kind: str) -> list[str]:
    """What a fresh environment needs to load the package: the same list goes to both sides in step 4."""

    def pin(package: str) -> str:
        return f"{package}=={metadata.version(package)}"

    # Both flavors store these scikit-learn-API models with skops.
    packages = ["mlflow", "scikit-learn", "skops"] + (["lightgbm"] if kind == "lgbm" else [])
    return [pin(p) for p in packages]


def check_predictions(loaded: Any, t: Trained, what: str) -> None:
    import numpy as np

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        got = np.asarray(loaded.predict(t.test)).ravel()
    want = np.asarray(t.expected).ravel()
    if got.shape != want.shape or not np.array_equal(got, want):
        diff = float(np.max(np.abs(got - want))) if got.shape == want.shape else math.nan
        raise RuntimeError(f"{what}: predictions differ from the original model (max abs difference {diff})")


def folder_size(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


# -- the two sides ------------------------------------------------------------------------------


@dataclass
class Step:
    """One measured step on one side."""

    seconds: float = math.nan
    up: int = 0
    down: int = 0
    connections: int = 0
    requests: int = 0
    blob_requests: int = 0  # Covex only: GET or PUT /api/v1/blobs/<digest>
    client_cpu: float = math.nan
    server_cpu: float = math.nan


class RequestCount:
    """Requests a client sent, counted where it sends them (for the table; bytes come from the proxy)."""

    def __init__(self) -> None:
        self.total = 0
        self.blobs = 0

    def add(self, path: str) -> None:
        self.total += 1
        if "/api/v1/blobs/" in path and not path.endswith("/missing"):
            self.blobs += 1


class Side(abc.ABC):
    label = ""

    def __init__(self, server: Server, proxy: ByteProxy, index: int, tmp: Path) -> None:
        self.server, self.proxy, self.index, self.tmp = server, proxy, index, tmp
        self.url = proxy.url(index)
        self.requests = RequestCount()

    def measure(self, fn: Callable[[], Any], into: dict[str, Step], step: str) -> Any:
        """Run ``fn`` once, timing it and counting what it sent and received."""
        gc.collect()
        traffic, requests, blobs = self.proxy.traffic(self.index), self.requests.total, self.requests.blobs
        client_cpu, server_cpu = own_cpu_seconds(), cpu_seconds(self.server.pid)
        start = time.perf_counter()
        result = fn()
        seconds = time.perf_counter() - start
        moved = self.proxy.traffic(self.index) - traffic
        into[step] = Step(
            seconds=seconds,
            up=moved.up,
            down=moved.down,
            connections=moved.connections,
            requests=self.requests.total - requests,
            blob_requests=self.requests.blobs - blobs,
            client_cpu=own_cpu_seconds() - client_cpu,
            server_cpu=cpu_seconds(self.server.pid) - server_cpu,
        )
        return result

    def close(self) -> None:  # noqa: B027 (an optional hook, not abstract)
        """Release what the side holds; nothing by default."""

    # each side: log (returns a model URI and the package size), load, package locally
    @abc.abstractmethod
    def log_model(
        self, t: Trained, name: str, into: dict[str, Step], step: str, reqs: list[str] | None = None
    ) -> tuple[str, int]: ...

    @abc.abstractmethod
    def load_model(self, uri: str, cache: Path, into: dict[str, Step], step: str) -> Any: ...

    @abc.abstractmethod
    def package(self, t: Trained, path: Path, into: dict[str, Step]) -> None: ...


class CovexSide(Side):
    label = "Covex"

    def __init__(self, server: Server, proxy: ByteProxy, index: int, tmp: Path) -> None:
        import covex

        super().__init__(server, proxy, index, tmp)
        self.client = covex.Client(self.url, cache_dir=str(tmp / "covex-cache"))
        http: httpx.Client = self.client._backend.http  # type: ignore[attr-defined]
        http.event_hooks = {"request": [lambda r: self.requests.add(r.url.path)], "response": []}

    def close(self) -> None:
        self.client.close()

    def log_model(
        self, t: Trained, name: str, into: dict[str, Step], step: str, reqs: list[str] | None = None
    ) -> tuple[str, int]:
        from covex.ml import log_model

        def run() -> Any:
            return log_model(self.client, t.model, name, input_example=t.example, pip_requirements=reqs)

        v = self.measure(run, into, step)
        if v.status != "READY":
            raise RuntimeError(f"Covex log_model of {name} ended {v.status}")
        return v.uri, sum(f.size for f in self.client.list_files(v.uri))

    def load_model(self, uri: str, cache: Path, into: dict[str, Step], step: str) -> Any:
        import covex

        return self.measure(lambda: covex.load_model(uri, client=self.client, cache_dir=str(cache)), into, step)

    def package(self, t: Trained, path: Path, into: dict[str, Step]) -> None:
        # What Covex's log_model does before it talks to the server.
        from covex.ml.packaging import check_example, save_model

        def run() -> None:
            save_model(t.model, path, input_example=t.example)
            check_example(path, t.example)

        self.measure(run, into, "package_local")


class MlflowSide(Side):
    label = "MLflow"

    def __init__(self, server: Server, proxy: ByteProxy, index: int, tmp: Path) -> None:
        import mlflow
        import requests.adapters

        super().__init__(server, proxy, index, tmp)
        mlflow.set_tracking_uri(self.url)
        # MLflow sets its loggers up when imported: silence its INFO lines ("Waiting up to 300 seconds ...").
        for name in ("mlflow", "mlflow.store.model_registry.abstract_store", "mlflow.tracking._model_registry"):
            logging.getLogger(name).setLevel(logging.ERROR)
        # Count requests where MLflow's client sends them (it uses requests for REST and artifacts).
        original = requests.adapters.HTTPAdapter.send
        counter = self.requests

        def send(adapter: Any, request: Any, *args: Any, **kwargs: Any) -> Any:
            counter.add(str(request.path_url))
            return original(adapter, request, *args, **kwargs)

        self._restore = (requests.adapters.HTTPAdapter, original)
        requests.adapters.HTTPAdapter.send = send  # type: ignore[method-assign,assignment]

    def close(self) -> None:
        cls, original = self._restore
        cls.send = original  # type: ignore[method-assign]

    @staticmethod
    def flavor(t: Trained) -> tuple[Any, dict[str, Any]]:
        import mlflow.lightgbm
        import mlflow.sklearn

        if t.kind == "rf":
            # MLflow 3 saves scikit-learn models with skops by default, as Covex does; a forest's
            # Tree type must be trusted explicitly (Covex works that list out by itself).
            return mlflow.sklearn, {"skops_trusted_types": TRUSTED_SKOPS}
        return mlflow.lightgbm, {}

    def log_model(
        self, t: Trained, name: str, into: dict[str, Step], step: str, reqs: list[str] | None = None
    ) -> tuple[str, int]:
        import mlflow

        module, extra = self.flavor(t)

        def run() -> Any:
            return module.log_model(
                t.model,
                name="model",
                registered_model_name=name,
                input_example=t.example,
                pip_requirements=reqs,
                **extra,
            )

        with mlflow.start_run():  # the run itself is not timed: Covex has none
            info = self.measure(run, into, step)
        if int(info.registered_model_version) != 1:
            raise RuntimeError(f"MLflow registered {name} as version {info.registered_model_version}")
        stored = [p for p in (self.tmp / "mlartifacts").rglob(info.model_id) if p.is_dir()]
        if len(stored) != 1:
            raise RuntimeError(f"MLflow's artifacts for {info.model_id} are not under {self.tmp / 'mlartifacts'}")
        return f"models:/{name}/1", folder_size(stored[0])

    def load_model(self, uri: str, cache: Path, into: dict[str, Step], step: str) -> Any:
        import mlflow.pyfunc

        def run() -> Any:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                return mlflow.pyfunc.load_model(uri)  # MLflow's default: a new temporary folder each time

        return self.measure(run, into, step)

    def package(self, t: Trained, path: Path, into: dict[str, Step]) -> None:
        module, extra = self.flavor(t)

        def run() -> None:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                module.save_model(t.model, str(path), input_example=t.example, **extra)

        self.measure(run, into, "package_local")


def load_local(side: Side, path: Path, into: dict[str, Step]) -> Any:
    import mlflow.pyfunc

    def run() -> Any:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return mlflow.pyfunc.load_model(str(path))

    return side.measure(run, into, "load_local")


# -- the run ------------------------------------------------------------------------------------


@dataclass
class Repeat:
    """Everything measured for one model kind in one repeat, per side."""

    steps: dict[str, dict[str, Step]] = field(default_factory=dict)  # side -> step -> measurement
    package_bytes: dict[str, int] = field(default_factory=dict)


def run_repeat(sides: list[Side], t: Trained, r: int, servers: Sequence[Server]) -> Repeat:
    """One repeat: every step on both sides, the sides taking turns step by step (who starts alternates)."""
    out = Repeat()
    order = sides if r % 2 else sides[::-1]
    name = f"{t.kind}-r{r}"
    steps = {side.label: out.steps.setdefault(side.label, {}) for side in sides}
    uris: dict[str, str] = {}

    def what(side: Side, step: str) -> str:
        return f"{side.label} {t.kind} repeat {r} {step}"

    for side in order:
        settle(servers, STEP_SETTLE_TIMEOUT)
        uris[side.label], out.package_bytes[side.label] = side.log_model(t, name, steps[side.label], "log_model")
    for step in ("load_model_1", "load_model_2"):
        for side in order:
            settle(servers, STEP_SETTLE_TIMEOUT)
            cache = side.tmp / "covex-cache" / name  # Covex: empty for the 1st load, filled for the 2nd
            loaded = side.load_model(uris[side.label], cache, steps[side.label], step)
            check_predictions(loaded, t, what(side, step))
            del loaded
    for side in order:
        settle(servers, STEP_SETTLE_TIMEOUT)
        side.log_model(t, f"{name}-reqs", steps[side.label], "log_model_reqs", requirements(t.kind))
    for side in order:
        local = side.tmp / "local" / f"{side.label}-{name}"
        settle(servers, STEP_SETTLE_TIMEOUT)
        side.package(t, local, steps[side.label])
        loaded = load_local(side, local, steps[side.label])
        check_predictions(loaded, t, what(side, "local package"))
        del loaded
        shutil.rmtree(local, ignore_errors=True)

    for side in sides:
        package, s = out.package_bytes[side.label], steps[side.label]
        log(
            f"  {side.label:<6} log {s['log_model'].seconds:6.2f} s ({mb(s['log_model'].up)} up) | "
            f"load {s['load_model_1'].seconds:5.2f} s ({mb(s['load_model_1'].down)} down), "
            f"again {s['load_model_2'].seconds:5.2f} s ({mb(s['load_model_2'].down)} down) | "
            f"same, reqs given {s['log_model_reqs'].seconds:5.2f} s ({mb(s['log_model_reqs'].up)} up) | "
            f"package {mb(package)}"
        )
        # The proxy must have seen the model's bytes, or a side went around it.
        if s["log_model"].up < package or s["load_model_1"].down < package:
            raise RuntimeError(
                f"{what(side, 'log/load')}: the proxy saw fewer bytes than the {package}-byte package: "
                "a side bypassed it"
            )
    return out


def warm_up(sides: list[Side], tmp: Path) -> None:
    """Log and load a tiny model of each kind on each side, untimed, so that no measurement pays for imports."""
    tiny = Sizes(rf_rows=300, rf_trees=3, lgbm_rows=300, lgbm_trees=5)
    for kind in KINDS:
        t = train(kind, tiny, seed=7)
        for side in sides:
            scratch: dict[str, Step] = {}
            uri, _ = side.log_model(t, f"warmup-{kind}", scratch, "log_model")
            side.log_model(t, f"warmup-{kind}-reqs", scratch, "log_model", requirements(kind))
            for _ in range(2):
                check_predictions(side.load_model(uri, tmp / "covex-cache" / "warmup", scratch, "load"), t, "warm-up")
            side.package(t, tmp / "local" / f"warmup-{side.label}-{kind}", scratch)
            load_local(side, tmp / "local" / f"warmup-{side.label}-{kind}", scratch)
    shutil.rmtree(tmp / "local", ignore_errors=True)


def run_all(sides: list[Side], servers: Sequence[Server], sizes: Sizes, kinds: Sequence[str]) -> dict[str, Any]:
    results: dict[str, Any] = {}
    for kind in kinds:
        repeats: list[Repeat] = []
        description = ""
        for r in range(1, sizes.repeats + 1):
            log(f"{kind} repeat {r}/{sizes.repeats}: training")
            t = train(kind, sizes, seed=1000 * r + len(kind))
            description = t.description
            repeats.append(run_repeat(sides, t, r, servers))
            del t
        results[kind] = summarise(repeats, [s.label for s in sides], description)
    return results


def median(values: Sequence[float]) -> float:
    clean = [v for v in values if not math.isnan(v)]
    return statistics.median(clean) if clean else math.nan


def summarise(repeats: list[Repeat], labels: list[str], description: str) -> dict[str, Any]:
    steps: dict[str, dict[str, dict[str, float]]] = {}
    for step in (*STEPS, *LOCAL_STEPS):
        steps[step] = {}
        for label in labels:
            runs = [rep.steps[label][step] for rep in repeats]
            steps[step][label] = {f.name: median([getattr(x, f.name) for x in runs]) for f in fields(Step)}
            steps[step][label]["seconds_all"] = [round(x.seconds, 3) for x in runs]  # type: ignore[assignment]
    return {
        "description": description,
        "repeats": len(repeats),
        "package_bytes": {label: int(median([rep.package_bytes[label] for rep in repeats])) for label in labels},
        "steps": steps,
        "covex_second_load": [asdict(rep.steps["Covex"]["load_model_2"]) for rep in repeats],
    }


# -- report -------------------------------------------------------------------------------------


def mb(n: float) -> str:
    """Bytes for the table: MB (10^6) above 100 kB, else kB."""
    if math.isnan(n):
        return "-"
    return f"{n / 1e6:.2f} MB" if n >= 100_000 else f"{n / 1e3:.1f} kB"


def ratio(a: float, b: float) -> float | None:
    if math.isnan(a) or math.isnan(b) or b <= 0:
        return None
    return round(a / b, 3)


def fmt_ratio(r: float | None) -> str:
    return "-" if r is None else f"{r:.2f}"


def ratios(results: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for kind, res in results.items():
        out[kind] = {}
        for step in (*STEPS, *LOCAL_STEPS):
            c, m = res["steps"][step]["Covex"], res["steps"][step]["MLflow"]
            entry: dict[str, Any] = {
                "covex_s": round(c["seconds"], 3),
                "mlflow_s": round(m["seconds"], 3),
                "time": ratio(c["seconds"], m["seconds"]),
            }
            if step in STEPS:
                cb, mb_ = int(c["up"] + c["down"]), int(m["up"] + m["down"])
                entry.update(covex_bytes=cb, mlflow_bytes=mb_, bytes=ratio(cb, mb_))
            out[kind][step] = entry
    return out


def report(results: dict[str, Any]) -> tuple[list[str], dict[str, Any]]:
    lines: list[str] = []
    rs = ratios(results)
    checks: dict[str, Any] = {}
    for kind, res in results.items():
        pkg = res["package_bytes"]
        lines += [
            f"{kind}: {res['description']}; package {mb(pkg['Covex'])} (Covex), {mb(pkg['MLflow'])} (MLflow); "
            f"median of {res['repeats']} repeats; ratio = Covex / MLflow (below 1: Covex is faster / moves less)",
            "",
        ]
        head = (
            f"{'step':<32} | {'Covex s':>7} {'up':>9} {'down':>9} {'req':>4} | "
            f"{'MLflow s':>8} {'up':>9} {'down':>9} {'req':>4} | {'time':>5} {'bytes':>5}"
        )
        lines += [head, "-" * len(head)]
        for step in (*STEPS, *LOCAL_STEPS):
            c, m = res["steps"][step]["Covex"], res["steps"][step]["MLflow"]
            r = rs[kind][step]
            if step in STEPS:
                cells_c = f"{c['seconds']:>7.3f} {mb(c['up']):>9} {mb(c['down']):>9} {c['requests']:>4.0f}"
                cells_m = f"{m['seconds']:>8.3f} {mb(m['up']):>9} {mb(m['down']):>9} {m['requests']:>4.0f}"
            else:
                cells_c = f"{c['seconds']:>7.3f} {'':>9} {'':>9} {'':>4}"
                cells_m = f"{m['seconds']:>8.3f} {'':>9} {'':>9} {'':>4}"
            lines.append(
                f"{STEP_TITLES[step]:<32} | {cells_c} | {cells_m} | {fmt_ratio(r['time']):>5} "
                f"{fmt_ratio(r.get('bytes')):>5}"
            )
        lines += ["", "where the time goes (median CPU seconds during the step: client process, server tree)"]
        for step in STEPS:
            c, m = res["steps"][step]["Covex"], res["steps"][step]["MLflow"]
            lines.append(
                f"  {STEP_TITLES[step]:<30} Covex {c['seconds']:6.2f} s wall: client {c['client_cpu']:5.2f}, "
                f"server {c['server_cpu']:5.2f} | MLflow {m['seconds']:6.2f} s wall: client {m['client_cpu']:5.2f}, "
                f"server {m['server_cpu']:5.2f}"
            )
        second = res["covex_second_load"]
        worst = max(x["up"] + x["down"] for x in second)
        blobs = max(x["blob_requests"] for x in second)
        ok = blobs == 0 and worst <= SECOND_LOAD_MAX_BYTES
        checks[kind] = {"covex_load_2_max_bytes": worst, "covex_load_2_blob_requests": blobs, "ok": ok}
        lines += [
            "",
            f"  Covex load_model (2nd): {'PASS' if ok else 'FAIL'}: {blobs} blob downloads, at most {mb(worst)} "
            f"moved in any repeat (metadata only), against {mb(pkg['Covex'])} of model files",
            "  every loaded model predicted exactly what the original did (checked on "
            f"{TEST_ROWS:,} rows after each load)",
            "",
        ]
    summary = {**rs, "checks": checks}
    lines.append(json.dumps(summary))
    return lines, summary


# -- main ---------------------------------------------------------------------------------------


@contextlib.contextmanager
def running(servers: list[Server]) -> Iterator[None]:
    """Start the servers together, wait until each answers and is idle, and always stop them."""
    try:
        for s in servers:
            log(f"starting {s.label}: {' '.join(s.argv)}")
            s.start()
        for s in servers:
            s.wait_ready()
            log(f"{s.label} ready at {s.url} (pid {s.pid})")
        settle(servers, SETTLE_TIMEOUT, loud=True)
        yield
    finally:
        for s in servers:
            s.stop()
        log("servers stopped")


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="smaller models and 2 repeats, for a smoke run")
    p.add_argument("--repeats", type=int, help="repeats of each measurement (default 5, 2 with --quick)")
    p.add_argument("--models", default=",".join(KINDS), help="which models, comma-separated: rf, lgbm (default both)")
    p.add_argument("--out", type=Path, help="also write every number as JSON to this file")
    p.add_argument("--keep", action="store_true", help="keep the temporary folder (data and server logs)")
    args = p.parse_args(argv)
    args.kinds = [k.strip() for k in args.models.split(",") if k.strip()]
    if not args.kinds or set(args.kinds) - set(KINDS):
        p.error(f"--models takes a comma-separated subset of {', '.join(KINDS)}")
    if args.repeats is not None and not 1 <= args.repeats <= 50:
        p.error("--repeats must be between 1 and 50")
    return args


def _terminate(signum: int, _frame: object) -> None:
    raise SystemExit(128 + signum)  # unwinds through the finally blocks that stop the servers


def quiet_libraries(scratch: Path) -> None:
    # Set before MLflow is imported: no telemetry (nothing but loopback is reachable anyway), no progress
    # bars, and every temporary folder (MLflow downloads into one per load) inside our own.
    os.environ.update(
        MLFLOW_DISABLE_TELEMETRY="true",
        DO_NOT_TRACK="true",
        MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR="false",
        TMPDIR=str(scratch),
    )
    tempfile.tempdir = str(scratch)
    warnings.filterwarnings("ignore")
    logging.getLogger("mlflow").setLevel(logging.ERROR)
    logging.getLogger("alembic").setLevel(logging.ERROR)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, _terminate)
    sizes = QUICK if args.quick else Sizes()
    if args.repeats is not None:
        sizes = replace(sizes, repeats=args.repeats)
    tmp = Path(tempfile.mkdtemp(prefix="covex-bench-models-"))
    log(f"temporary folder {tmp}")
    (tmp / "scratch").mkdir()
    results: dict[str, Any] = {
        "machine": machine(("covex", "mlflow", "scikit-learn", "lightgbm", "skops", "httpx")),
        "sizes": asdict(sizes),
        "quick": args.quick,
    }
    results["machine"]["load_average_at_start"] = os.getloadavg()
    servers = [covex_server(tmp), mlflow_server(tmp, None)]
    results["servers"] = {s.label: " ".join(s.argv) for s in servers}
    proxy: ByteProxy | None = None
    sides: list[Side] = []
    try:
        # Forked now, before MLflow and scikit-learn are imported and before any thread exists.
        proxy = ByteProxy([s.port for s in servers])
        log(f"byte-counting proxies on ports {proxy.ports} -> {[s.port for s in servers]}")
        quiet_libraries(tmp / "scratch")
        # MLflow prints run links when a run ends: stdout is kept for the table.
        with running(servers), contextlib.redirect_stdout(sys.stderr):
            sides = [CovexSide(servers[0], proxy, 0, tmp), MlflowSide(servers[1], proxy, 1, tmp)]
            log("warming up both sides with tiny models (untimed)")
            warm_up(sides, tmp)
            results["models"] = run_all(sides, servers, sizes, args.kinds)
    finally:
        for side in sides:
            side.close()
        if proxy is not None:
            proxy.stop()
        if args.keep:
            log(f"kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    results["machine"]["load_average_at_end"] = os.getloadavg()
    lines, summary = report(results["models"])
    results["summary"] = summary
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(results, indent=2) + "\n")
        log(f"wrote {args.out}")
    print("\n".join(lines), flush=True)
    return 0 if all(c["ok"] for c in summary["checks"].values()) else 1


if __name__ == "__main__":
    sys.exit(main())
