"""SDK to SDK: ``covex.Client`` against ``mlflow.MlflowClient``, over HTTP and in-process.

What a user's code pays per call, client library included: the same workload as the raw-HTTP
phases (create a version, get one by alias, search models by name prefix), then a get by alias
without any server: Covex's embedded client on the server's own SQLite file against MLflow's
``SqlAlchemyStore`` on MLflow's. Run by ``registry.py`` after the raw-HTTP phases, whose data it reads.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness import AUTH_HEADERS, ApiError, Measure, log, run_sequential

SDK_PHASES = ("sdk_create_version", "sdk_get_by_alias", "sdk_search_models", "embedded_get_by_alias")


@dataclass(frozen=True)
class SdkSizes:
    creates: int = 300
    gets: int = 1_000
    searches: int = 300
    embedded_gets: int = 3_000


QUICK_SDK = SdkSizes(creates=100, gets=300, searches=100, embedded_gets=1_000)


class CovexSdk:
    label = "Covex"

    def __init__(self, url: str, data: Path) -> None:
        import covex

        token = AUTH_HEADERS.get(url, {}).get("Authorization", "").removeprefix("Bearer ") or None
        self.client = covex.Client(url, token=token)
        self.embedded = covex.Client(str(data))

    def create_model(self, name: str) -> None:
        self.client.create_model(name)

    def create_version(self, name: str, i: int) -> int:
        return self.client.create_version(name, source=f"s3://sdk/{name}/{i}", metrics={"accuracy": 0.5}).version

    def get_by_alias(self, name: str, alias: str) -> int:
        return self.client.get_version(f"models:/{name}@{alias}").version

    def search_models(self, prefix: str) -> int:
        return len(self.client.search_models(f"name LIKE '{prefix}%'", max_results=100).items)

    def embedded_get_by_alias(self, name: str, alias: str) -> int:
        return self.embedded.get_version(f"models:/{name}@{alias}").version

    def close(self) -> None:
        self.client.close()
        self.embedded.close()


class MlflowSdk:
    label = "MLflow"

    def __init__(self, url: str, db: Path) -> None:
        from mlflow import MlflowClient
        from mlflow.store.model_registry.sqlalchemy_store import SqlAlchemyStore

        self.client = MlflowClient(tracking_uri=url, registry_uri=url)
        self.store = SqlAlchemyStore(f"sqlite:///{db}")

    def create_model(self, name: str) -> None:
        self.client.create_registered_model(name)

    def create_version(self, name: str, i: int) -> int:
        mv = self.client.create_model_version(name, source=f"s3://sdk/{name}/{i}", tags={"accuracy": "0.5"})
        return int(mv.version)

    def get_by_alias(self, name: str, alias: str) -> int:
        return int(self.client.get_model_version_by_alias(name, alias).version)

    def search_models(self, prefix: str) -> int:
        return len(self.client.search_registered_models(filter_string=f"name LIKE '{prefix}%'", max_results=100))

    def embedded_get_by_alias(self, name: str, alias: str) -> int:
        return int(self.store.get_model_version_by_alias(name, alias).version)

    def close(self) -> None:
        self.store.engine.dispose()


def _expect(got: int, want: int, what: str) -> int:
    if got != want:
        raise ApiError(f"{what}: got {got}, expected {want}")
    return got


def run_sdk(
    sdks: list[Any], sizes: SdkSizes, prefixes: list[tuple[str, int]], alias_version: int
) -> dict[str, dict[str, dict[str, Any]]]:
    """Each SDK phase on each side, interleaved phase by phase; the alias and the models exist already."""
    for sdk in sdks:
        sdk.create_model("sdk")
        for _ in range(20):  # warm: imports, connection, first statements
            sdk.get_by_alias("sequential", "champion")
            sdk.embedded_get_by_alias("sequential", "champion")
            sdk.search_models("search-1")

    def creates(sdk: Any) -> Measure:
        return run_sequential(None, sizes.creates, lambda _, i: sdk.create_version("sdk", i))

    def gets(sdk: Any) -> Measure:
        def get(_: Any, __: int) -> int:
            return _expect(sdk.get_by_alias("sequential", "champion"), alias_version, "@champion")

        return run_sequential(None, sizes.gets, get)

    def searches(sdk: Any) -> Measure:
        def search(_: Any, i: int) -> int:
            prefix, matches = prefixes[i % len(prefixes)]
            return _expect(sdk.search_models(prefix), min(matches, 100), f"'{prefix}%'")

        return run_sequential(None, sizes.searches, search)

    def embedded(sdk: Any) -> Measure:
        def get(_: Any, __: int) -> int:
            return _expect(sdk.embedded_get_by_alias("sequential", "champion"), alias_version, "@champion")

        return run_sequential(None, sizes.embedded_gets, get)

    phases: dict[str, Callable[[Any], Measure]] = dict(
        zip(SDK_PHASES, (creates, gets, searches, embedded), strict=True)
    )
    results: dict[str, dict[str, dict[str, Any]]] = {}
    for name, run in phases.items():
        results[name] = {}
        for sdk in sdks:
            log(f"{name} on {sdk.label}")
            s = run(sdk).summary()
            results[name][sdk.label] = s
            log(f"  {s['ops']} ops: p50 {s['p50_ms']:.3f} ms, p95 {s['p95_ms']:.3f} ms, {s['errors']} errors")
    return results
