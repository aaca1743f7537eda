"""``GET /metrics``: what the scoring server did, in Prometheus's text format (prometheus-client).

With several workers (``--workers N``) every worker writes its values to files in one folder
(``PROMETHEUS_MULTIPROC_DIR``, set by ``covex serve`` before the workers start) and any worker's
``/metrics`` answers for all of them: counters and histograms are summed, and the served-version
gauge has one sample per worker process (``pid`` label), so a worker lagging behind shows.
"""

from __future__ import annotations

import os
from typing import Any

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class Metrics:
    """The serving metrics of this process (shared through files with its sibling workers, if any)."""

    def __init__(self) -> None:
        from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

        self.multiprocess = bool(os.environ.get(MULTIPROC_ENV))
        # Each app its own registry: two servers in one process (tests) do not clash.
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter(
            "covex_serving_requests",
            "Scoring requests answered, by endpoint and status code.",
            ["endpoint", "code"],
            registry=r,
        )
        self.errors = Counter(
            "covex_serving_errors", "Scoring requests refused or failed, by kind.", ["kind"], registry=r
        )
        self.latency = Histogram(
            "covex_serving_request_seconds",
            "Time to answer a scoring request, by endpoint.",
            ["endpoint"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.rows = Counter("covex_serving_rows", "Rows scored.", registry=r)
        self.version = Gauge(
            "covex_serving_model_version",
            "The version being served, by model.",
            ["model"],
            registry=r,
            multiprocess_mode="liveall",
        )
        self.swaps = Counter("covex_serving_swaps", "Switches to another version after the URI moved.", registry=r)
        self.swap_failures = Counter(
            "covex_serving_swap_failures", "Versions that failed to load or warm up (not switched to).", registry=r
        )
        self.log_dropped = Counter(
            "covex_serving_inference_log_dropped",
            "Inference log records dropped (queue full or write failed).",
            registry=r,
        )
        # A second version beside the served one (covex.serving.challenger): --shadow, or --split.
        self.shadow_scored = Counter(
            "covex_serving_shadow_scored", "Answered requests scored again on the shadow version.", registry=r
        )
        self.shadow_skipped = Counter(
            "covex_serving_shadow_skipped",
            "Answered requests the shadow did not score (its queue was full, or no shadow version is loaded).",
            registry=r,
        )
        self.shadow_errors = Counter(
            "covex_serving_shadow_errors",
            "Requests the shadow version raised on (the caller never sees it).",
            registry=r,
        )
        self.shadow_latency = Histogram(
            "covex_serving_shadow_seconds",
            "Time the shadow version took to score a request.",
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.split_requests = Counter(
            "covex_serving_split_requests",
            "Scoring requests routed by --split, by the role of the version that answered.",
            ["role"],
            registry=r,
        )
        self.challenger_version = Gauge(
            "covex_serving_challenger_version",
            "The version of the shadow or split challenger, by model and role.",
            ["model", "role"],
            registry=r,
            multiprocess_mode="liveall",
        )

    def served(self, old: Any, new: Any) -> None:
        """A swap listener: the gauge follows the served version."""
        self.version.labels(new.name).set(new.version)
        if old is not None:
            self.swaps.inc()

    def render(self) -> bytes:
        from prometheus_client import CollectorRegistry, generate_latest
        from prometheus_client.multiprocess import MultiProcessCollector

        if not self.multiprocess:
            return generate_latest(self.registry)
        merged = CollectorRegistry()
        MultiProcessCollector(merged)  # type: ignore[no-untyped-call]
        return generate_latest(merged)
