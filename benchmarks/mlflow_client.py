"""MLflow's own client against both servers: ``mlflow.MlflowClient`` pointed at Covex's MLflow-compatible
API and at MLflow's server, the same calls on the same data (create a version, get one by alias, search
models by name prefix). Run by ``registry.py`` after the SDK phases, whose models it reads.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

from harness import AUTH_HEADERS, ApiError, Measure, log, run_sequential
from sdk import SdkSizes

MLFLOW_CLIENT_PHASES = ("mlflow_client_create_version", "mlflow_client_get_by_alias", "mlflow_client_search_models")


class MlflowClientOn:
    """``MlflowClient`` with ``url`` as tracking and registry URI."""

    def __init__(self, label: str, url: str) -> None:
        from mlflow import MlflowClient

        self.label = label
        self.client = MlflowClient(tracking_uri=url, registry_uri=url)

    def create_model(self, name: str) -> None:
        self.client.create_registered_model(name)

    def create_version(self, name: str, i: int) -> int:
        mv = self.client.create_model_version(name, source=f"s3://mlflow-client/{name}/{i}", tags={"accuracy": "0.5"})
        return int(mv.version) if self.label != "floor" else i

    def get_by_alias(self, name: str, alias: str) -> int:
        return int(self.client.get_model_version_by_alias(name, alias).version)

    def search_models(self, prefix: str) -> int:
        found = self.client.search_registered_models(filter_string=f"name LIKE '{prefix}%'", max_results=100)
        return len(found) if self.label != "floor" else -1


def _expect(got: int, want: int, what: str) -> int:
    if got != want:
        raise ApiError(f"{what}: got {got}, expected {want}")
    return got


def run_mlflow_client(
    covex_url: str,
    mlflow_url: str | None,
    floor_url: str,
    sizes: SdkSizes,
    prefixes: list[tuple[str, int]],
    alias_version: int,
) -> dict[str, dict[str, dict[str, Any]]]:
    """Each phase with MLflow's client on each server, interleaved phase by phase, and against the floor
    (routes answering fixed bodies: MLflow's client's own cost; its search answers 100 models every time)."""
    # MLflow's client sends MLFLOW_TRACKING_TOKEN to every server; MLflow's (no auth) ignores it.
    os.environ["MLFLOW_TRACKING_TOKEN"] = AUTH_HEADERS.get(covex_url, {}).get("Authorization", "")[7:]
    sides = [MlflowClientOn("Covex", covex_url)] + ([MlflowClientOn("MLflow", mlflow_url)] if mlflow_url else [])
    for side in sides:
        side.create_model("mlflow-client")
        for _ in range(20):  # warm: connection, first statements
            side.get_by_alias("sequential", "champion")
            side.search_models("search-1")

    def creates(side: MlflowClientOn) -> Measure:
        return run_sequential(None, sizes.creates, lambda _, i: side.create_version("mlflow-client", i))

    def gets(side: MlflowClientOn) -> Measure:
        def get(_: Any, __: int) -> int:
            want = 250 if side.label == "floor" else alias_version
            return _expect(side.get_by_alias("sequential", "champion"), want, "@champion")

        return run_sequential(None, sizes.gets, get)

    def searches(side: MlflowClientOn) -> Measure:
        def search(_: Any, i: int) -> int:
            prefix, matches = prefixes[i % len(prefixes)]
            found = side.search_models(prefix)
            return found if found == -1 else _expect(found, min(matches, 100), f"'{prefix}%'")

        return run_sequential(None, sizes.searches, search)

    phases: dict[str, Callable[[MlflowClientOn], Measure]] = dict(
        zip(MLFLOW_CLIENT_PHASES, (creates, gets, searches), strict=True)
    )
    floor = MlflowClientOn("floor", floor_url)
    results: dict[str, dict[str, dict[str, Any]]] = {}
    for name, run in phases.items():
        results[name] = {}
        for side in [*sides, floor]:
            log(f"{name} on {side.label}")
            s = run(side).summary()
            results[name][side.label] = s
            log(f"  {s['ops']} ops: p50 {s['p50_ms']:.3f} ms, p95 {s['p95_ms']:.3f} ms, {s['errors']} errors")
    return results
