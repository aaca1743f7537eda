"""Monitoring records over HTTP: the same methods as ``covex.service.monitoring.MonitoringService``."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from covex.domain.monitoring import MonitorResult

if TYPE_CHECKING:
    from covex.client.http import HttpBackend

API = "/api/v1"


def _m(name: str) -> str:
    from covex.client.http import model_path

    return f"{model_path(name)}/-/monitoring"


class HttpMonitoring:
    """Monitor configs, drift references and check results, on a Covex server."""

    def __init__(self, backend: HttpBackend) -> None:
        self.backend = backend

    def set_monitor_config(self, name: str, text: str) -> str:
        body = self.backend._call("PUT", f"{_m(name)}/config", json={"config": text})
        return str(body["config"])

    def get_monitor_config(self, name: str) -> str:
        return str(self.backend._call("GET", f"{_m(name)}/config")["config"])

    def set_reference(self, name: str, version: int, reference: Mapping[str, Any]) -> dict[str, Any]:
        path = f"{_m(name)}/versions/{int(version)}/reference"
        return dict(self.backend._call("PUT", path, json={"reference": dict(reference)})["reference"])

    def record_result(
        self,
        name: str,
        version: int,
        *,
        status: str,
        source: str,
        rows: int,
        body: Mapping[str, Any],
        window_start: int | None = None,
        window_end: int | None = None,
    ) -> MonitorResult:
        payload = {
            "status": status,
            "source": source,
            "rows": rows,
            "body": dict(body),
            "window_start": window_start,
            "window_end": window_end,
        }
        path = f"{_m(name)}/versions/{int(version)}/results"
        return MonitorResult.model_validate(self.backend._call("POST", path, json=payload))

    def list_results(self, name: str, version: int | None = None, *, max_results: int = 100) -> list[MonitorResult]:
        params: dict[str, Any] = {"max_results": max_results}
        if version is not None:
            params["version"] = version
        body = self.backend._call("GET", f"{_m(name)}/results", params=params)
        return [MonitorResult.model_validate(r) for r in body["results"]]

    def get_result(self, result_id: int) -> MonitorResult:
        return MonitorResult.model_validate(self.backend._call("GET", f"{API}/monitoring/results/{int(result_id)}"))

    def monitor_status(self, name: str | None = None) -> list[MonitorResult]:
        params = {"model": name} if name is not None else {}
        body = self.backend._call("GET", f"{API}/monitoring/status", params=params)
        return [MonitorResult.model_validate(r) for r in body["results"]]
