"""The registry workload of the benchmarks: the same phases through Covex's and MLflow's REST APIs.

1. sequential version creation          4. model search by name prefix among many models
2. concurrent version creation          5. listing the versions of one model with many versions
3. get a version by alias

Used by ``registry.py`` and ``governance.py``; see benchmarks/README.md.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import httpx
from harness import ApiError, Measure, Server, log, ok, run_sequential, run_threads, seed

PHASES = ("sequential_create", "concurrent_create", "get_by_alias", "search_models", "list_versions")


@dataclass(frozen=True)
class Sizes:
    """How much work each phase does."""

    seq_versions: int = 500
    threads: int = 8
    per_thread: int = 100
    alias_gets: int = 2_000
    models: int = 10_000
    searches: int = 500
    list_versions: int = 10_000
    page_size: int = 100
    list_rounds: int = 3
    seed_threads: int = 8
    big_mb: int = 1_024


QUICK = Sizes(
    seq_versions=200,
    per_thread=25,
    alias_gets=500,
    models=1_000,
    searches=200,
    list_versions=1_000,
    big_mb=100,
)


def metric(i: int) -> float:
    return round(0.5 + (i % 500) / 1000, 3)


class Api(Protocol):
    label: str

    def create_model(self, http: httpx.Client, name: str) -> None: ...

    def create_version(self, http: httpx.Client, model: str, i: int) -> int: ...

    def set_alias(self, http: httpx.Client, model: str, alias: str, version: int) -> None: ...

    def get_by_alias(self, http: httpx.Client, model: str, alias: str) -> int: ...

    def search_models(self, http: httpx.Client, prefix: str, max_results: int) -> int: ...

    def list_versions(
        self, http: httpx.Client, model: str, page_size: int, page_token: str | None
    ) -> tuple[list[int], str | None]: ...


class CovexApi:
    """Covex's REST API v1."""

    label = "Covex"

    def create_model(self, http: httpx.Client, name: str) -> None:
        ok(http.post("/api/v1/models", json={"name": name, "description": "", "tags": {}}))

    def create_version(self, http: httpx.Client, model: str, i: int) -> int:
        body = {"source": f"s3://bench/{model}/{i}", "metrics": {"accuracy": metric(i)}}
        return int(ok(http.post(f"/api/v1/models/{model}/-/versions", json=body))["version"])

    def set_alias(self, http: httpx.Client, model: str, alias: str, version: int) -> None:
        ok(http.post(f"/api/v1/models/{model}/-/aliases", json={"alias": alias, "version": version}))

    def get_by_alias(self, http: httpx.Client, model: str, alias: str) -> int:
        return int(ok(http.get("/api/v1/resolve", params={"uri": f"models:/{model}@{alias}"}))["version"])

    def search_models(self, http: httpx.Client, prefix: str, max_results: int) -> int:
        params: dict[str, str | int] = {"filter": f"name LIKE '{prefix}%'", "max_results": max_results}
        return len(ok(http.get("/api/v1/models", params=params))["items"])

    def list_versions(
        self, http: httpx.Client, model: str, page_size: int, page_token: str | None
    ) -> tuple[list[int], str | None]:
        params: dict[str, Any] = {"max_results": page_size}
        if page_token:
            params["page_token"] = page_token
        body = ok(http.get(f"/api/v1/models/{model}/-/versions", params=params))
        return [int(v["version"]) for v in body["items"]], body.get("next_page_token") or None


class MlflowApi:
    """MLflow's REST API 2.0 model registry (the metric goes in a tag: MLflow versions have no metrics)."""

    label = "MLflow"
    base = "/api/2.0/mlflow"

    def create_model(self, http: httpx.Client, name: str) -> None:
        ok(http.post(f"{self.base}/registered-models/create", json={"name": name}))

    def create_version(self, http: httpx.Client, model: str, i: int) -> int:
        body = {
            "name": model,
            "source": f"s3://bench/{model}/{i}",
            "tags": [{"key": "accuracy", "value": str(metric(i))}],
        }
        return int(ok(http.post(f"{self.base}/model-versions/create", json=body))["model_version"]["version"])

    def set_alias(self, http: httpx.Client, model: str, alias: str, version: int) -> None:
        body = {"name": model, "alias": alias, "version": str(version)}
        ok(http.post(f"{self.base}/registered-models/alias", json=body))

    def get_by_alias(self, http: httpx.Client, model: str, alias: str) -> int:
        body = ok(http.get(f"{self.base}/registered-models/alias", params={"name": model, "alias": alias}))
        return int(body["model_version"]["version"])

    def search_models(self, http: httpx.Client, prefix: str, max_results: int) -> int:
        params: dict[str, str | int] = {"filter": f"name LIKE '{prefix}%'", "max_results": max_results}
        return len(ok(http.get(f"{self.base}/registered-models/search", params=params)).get("registered_models", []))

    def list_versions(
        self, http: httpx.Client, model: str, page_size: int, page_token: str | None
    ) -> tuple[list[int], str | None]:
        # Newest first, as Covex lists them.
        params: dict[str, Any] = {
            "filter": f"name='{model}'",
            "max_results": page_size,
            "order_by": "version_number DESC",
        }
        if page_token:
            params["page_token"] = page_token
        body = ok(http.get(f"{self.base}/model-versions/search", params=params))
        return [int(v["version"]) for v in body.get("model_versions", [])], body.get("next_page_token") or None


# -- the registry phases ----------------------------------------------------------------------


@dataclass
class Target:
    api: Api
    server: Server
    http: httpx.Client


def warm_up(t: Target) -> None:
    """Touch every endpoint from a few connections (so every worker process), untimed."""
    api, model = t.api, "warmup"
    api.create_model(t.http, model)

    def touch(http: httpx.Client, i: int) -> None:
        api.create_version(http, model, i)
        api.set_alias(http, model, "warm", 1)
        api.get_by_alias(http, model, "warm")
        api.search_models(http, "warm", 100)
        api.list_versions(http, model, 10, None)

    seed(t.server.url, 32, 8, touch, "warm-up rounds")


def phase_sequential_create(t: Target, sizes: Sizes) -> Measure:
    t.api.create_model(t.http, "sequential")
    return run_sequential(t.http, sizes.seq_versions, lambda http, i: t.api.create_version(http, "sequential", i))


def all_versions(t: Target, model: str, expected: int) -> list[int]:
    found: list[int] = []
    token: str | None = None
    for _ in range(expected // 1000 + 2):
        page, token = t.api.list_versions(t.http, model, 1000, token)
        found += page
        if token is None:
            break
    return found


def phase_concurrent_create(t: Target, sizes: Sizes) -> Measure:
    model = "concurrent"
    t.api.create_model(t.http, model)
    m = run_threads(t.server.url, sizes.threads, sizes.per_thread, lambda http, i: t.api.create_version(http, model, i))
    total = sizes.threads * sizes.per_thread
    expected = set(range(1, total + 1))
    returned: list[int] = m.values
    duplicates = len(returned) - len(set(returned))
    missing = sorted(expected - set(returned))
    listed = all_versions(t, model, total)
    problems = []
    if duplicates:
        problems.append(f"{duplicates} duplicate version numbers returned")
    if missing:
        problems.append(f"{len(missing)} numbers missing from 1..{total} (first: {missing[:5]})")
    if sorted(listed) != sorted(returned):
        problems.append(f"listing shows {len(listed)} versions ({len(set(listed))} distinct), {len(returned)} created")
    if problems:
        m.notes.append("version numbers NOT unique and gap-free: " + "; ".join(problems))
    else:
        m.notes.append(f"version numbers unique and gap-free (1..{total}, confirmed by listing)")
    return m


def phase_get_by_alias(t: Target, sizes: Sizes) -> Measure:
    model, version = "sequential", max(1, sizes.seq_versions // 2)
    t.api.set_alias(t.http, model, "champion", version)

    def get(http: httpx.Client, _: int) -> int:
        got = t.api.get_by_alias(http, model, "champion")
        if got != version:
            raise ApiError(f"@champion resolved to {got}, expected {version}")
        return got

    return run_sequential(t.http, sizes.alias_gets, get)


def model_names(count: int) -> list[str]:
    width = len(str(count - 1))
    return [f"search-{i:0{width}d}" for i in range(count)]


def search_prefixes(count: int, searches: int, rng: random.Random) -> list[tuple[str, int]]:
    """Varied prefixes (matching tens of percent of the models down to one) with their match counts."""
    names = model_names(count)
    width = len(str(count - 1))
    out = []
    for _ in range(searches):
        digits = rng.randint(1, width)
        prefix = rng.choice(names)[: len("search-") + digits]
        out.append((prefix, sum(1 for n in names if n.startswith(prefix))))
    return out


def phase_search_models(t: Target, sizes: Sizes, prefixes: list[tuple[str, int]]) -> Measure:
    names = model_names(sizes.models)
    seed(t.server.url, len(names), sizes.seed_threads, lambda http, i: t.api.create_model(http, names[i]), "models")

    def search(http: httpx.Client, i: int) -> int:
        prefix, matches = prefixes[i]
        got = t.api.search_models(http, prefix, 100)
        if got != min(matches, 100):
            raise ApiError(f"'{prefix}%' found {got} models, expected {min(matches, 100)}")
        return got

    m = run_sequential(t.http, len(prefixes), search)
    m.notes.append(f"{len(prefixes)} searches among {sizes.models} models, max_results=100")
    return m


def phase_list_versions(t: Target, sizes: Sizes) -> Measure:
    model, total, size = "listing", sizes.list_versions, sizes.page_size
    t.api.create_model(t.http, model)
    seed(t.server.url, total, sizes.seed_threads, lambda http, i: t.api.create_version(http, model, i), "versions")
    pages = math.ceil(total / size)
    state: dict[str, Any] = {"token": None, "seen": 0, "next": total}

    def page(http: httpx.Client, i: int) -> int:
        if i % pages == 0:
            state.update(token=None, seen=0, next=total)
        versions, token = t.api.list_versions(http, model, size, state["token"])
        want = list(range(state["next"], max(state["next"] - size, 0), -1))
        if versions != want:
            state["token"] = None  # the next pages of this round are lost; they fail too
            raise ApiError(f"page {i % pages} held {versions[:3]}..., expected {want[:3]}...")
        state.update(token=token, seen=state["seen"] + len(versions), next=state["next"] - len(versions))
        if (token is None) != (i % pages == pages - 1):
            raise ApiError(f"page {i % pages} of {pages}: next_page_token is {token!r}")
        return len(versions)

    m = run_sequential(t.http, pages * sizes.list_rounds, page)
    m.notes.append(f"{sizes.list_rounds} listings of {total} versions, {pages} pages of {size}; latency per page")
    return m


def run_registry(targets: list[Target], sizes: Sizes, seed_value: int) -> dict[str, dict[str, dict[str, Any]]]:
    """Every phase on every target, interleaved phase by phase so that machine drift hits both alike."""
    prefixes = search_prefixes(sizes.models, sizes.searches, random.Random(seed_value))
    phases: dict[str, Callable[[Target], Measure]] = {
        "sequential_create": lambda t: phase_sequential_create(t, sizes),
        "concurrent_create": lambda t: phase_concurrent_create(t, sizes),
        "get_by_alias": lambda t: phase_get_by_alias(t, sizes),
        "search_models": lambda t: phase_search_models(t, sizes, prefixes),
        "list_versions": lambda t: phase_list_versions(t, sizes),
    }
    results: dict[str, dict[str, dict[str, Any]]] = {}
    for name, run in phases.items():
        results[name] = {}
        for t in targets:
            log(f"{name} on {t.api.label}")
            m = run(t)
            s = m.summary()
            results[name][t.api.label] = s
            log(
                f"  {s['ops']} ops in {s['seconds']:.2f} s: {s['ops_per_s']:.1f}/s, p50 {s['p50_ms']:.2f} ms, "
                f"p95 {s['p95_ms']:.2f} ms, p99 {s['p99_ms']:.2f} ms, {s['errors']} errors"
                + (f" (first: {s['first_error']})" if s["errors"] else "")
            )
            for note in m.notes:
                log(f"  {note}")
    return results
