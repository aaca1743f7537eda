"""Monitoring records (configs, references, results), the same on every backend and database."""

from __future__ import annotations

from typing import Any

import pytest

import covex
from tests.conftest import Registry

REFERENCE: dict[str, Any] = {
    "version": 1,
    "rows": 100,
    "columns": {
        "age": {"kind": "numeric", "edges": [30.0, 50.0], "counts": [30, 40, 30], "low": 18.0, "high": 90.0,
                "std": 15.0, "missing": 0},
        "city": {"kind": "categorical", "counts": {"Oslo": 60, "Rome": 40}, "other": 0, "missing": 2},
    },
}  # fmt: skip


@pytest.fixture
def churn(client: covex.Client, tree) -> covex.Client:
    client.create_model("churn")
    client.create_version("churn", tree())
    client.create_version("churn", tree())
    return client


def record(c: covex.Client, status: str, version: int = 1, **body: Any) -> covex.MonitorResult:
    return c.monitoring.record_result("churn", version, status=status, source="test", rows=500, body=body)


def test_a_reference_is_stored_replaced_and_read_as_a_document(churn: covex.Client) -> None:
    assert REFERENCE == churn.monitoring.set_reference("churn", 1, REFERENCE)
    assert REFERENCE == churn.get_document("models:/churn/1", "reference")
    changed = {**REFERENCE, "rows": 7}
    churn.monitoring.set_reference("churn", 1, changed)
    assert 7 == churn.get_document("models:/churn/1", "reference")["rows"]
    with pytest.raises(covex.NotFound):
        churn.get_document("models:/churn/2", "reference")


@pytest.mark.parametrize(
    ("reference", "says"),
    [
        ({**REFERENCE, "version": 2}, "'reference.version' must be 1"),
        ({**REFERENCE, "rows": -1}, "'reference.rows'"),
        ({**REFERENCE, "columns": []}, "'reference.columns' must be a mapping"),
        ({**REFERENCE, "columns": {"a": {"kind": "numeric", "edges": [1.0], "counts": [1]}}}, "one more count"),
        ({**REFERENCE, "columns": {"a": {"kind": "numeric", "edges": [2.0, 1.0], "counts": [1, 1, 1], "low": 0,
                                         "high": 3, "std": 1}}}, "must rise strictly"),
        ({**REFERENCE, "columns": {"a": {"kind": "numeric", "edges": [], "counts": [1], "low": 0, "high": "x",
                                         "std": 1}}}, "'reference.columns.a.high'"),
        ({**REFERENCE, "columns": {"a": {"kind": "text"}}}, "numeric or categorical"),
        ({**REFERENCE, "columns": {"a": {"kind": "categorical", "counts": {"x": -2}}}}, "'reference.columns.a.counts'"),
    ],
)  # fmt: skip
def test_a_bad_reference_is_refused_by_name(churn: covex.Client, reference: dict[str, Any], says: str) -> None:
    with pytest.raises(covex.InvalidInput, match=says):
        churn.monitoring.set_reference("churn", 1, reference)
    with pytest.raises(covex.NotFound):
        churn.get_document("models:/churn/1", "reference")


def test_results_keep_their_history_and_status_is_the_latest_per_version(churn: covex.Client) -> None:
    first = record(churn, "OK", drifted=[])
    second = record(churn, "DRIFT", drifted=["age"])
    other = record(churn, "WARNING", version=2)
    assert (second.name, second.version, second.status, second.rows, second.body["drifted"]) == (
        "churn", 1, "DRIFT", 500, ["age"],
    )  # fmt: skip
    assert [second.id, first.id] == [r.id for r in churn.monitoring.list_results("churn", 1)]
    assert [other.id, second.id, first.id] == [r.id for r in churn.monitoring.list_results("churn")]
    assert [other.id, second.id] == [r.id for r in churn.monitoring.monitor_status("churn")]
    assert {other.id, second.id} <= {r.id for r in churn.monitoring.monitor_status()}
    assert second == churn.monitoring.get_result(second.id)
    assert [second.id] == [r.id for r in churn.monitoring.list_results("churn", 1, max_results=1)]


def test_a_change_of_status_is_audited_and_announced(churn: covex.Client) -> None:
    hook = churn.webhooks.create_webhook("https://hooks.example.com/x", ["monitor.*"])
    first = record(churn, "OK")
    record(churn, "OK")  # no change: no event
    record(churn, "WARNING")  # audited, announced by none of the three events
    record(churn, "DRIFT", drifted=["age"])
    record(churn, "NOT_ENOUGH_DATA")  # a quiet night: no event, and the next DRIFT is no news
    record(churn, "DRIFT", drifted=["age"])
    record(churn, "DEGRADED", degraded=["accuracy"])
    record(churn, "NOT_ENOUGH_DATA")
    record(churn, "OK")
    events = [d.event for d in reversed(churn.webhooks.list_deliveries(hook.id).items)]
    assert ["monitor.drift_detected", "monitor.performance_degraded", "monitor.recovered"] == events
    payload = churn.webhooks.list_deliveries(hook.id).items[-1]
    assert payload.event == "monitor.drift_detected"
    records = churn.audit.list_records(since=first.created_at, max_results=50).items
    assert 9 == len([r for r in records if r.action == "monitor.result"])


def test_a_config_is_validated_stored_as_written_and_reset(churn: covex.Client) -> None:
    assert "" == churn.monitoring.get_monitor_config("churn")
    text = "# nightly\nwindow: 12h\nmin_rows: 50\ncolumns:\n  age: {method: ks, warn: 0.05, drift: 0.1}\n"
    assert text == churn.monitoring.set_monitor_config("churn", text)
    assert text == churn.monitoring.get_monitor_config("churn")
    with pytest.raises(covex.InvalidInput, match=r"line 2: 'min_rows' must be a whole number"):
        churn.monitoring.set_monitor_config("churn", "window: 1h\nmin_rows: -3\n")
    assert text == churn.monitoring.get_monitor_config("churn")  # a refused config changes nothing
    churn.monitoring.set_monitor_config("churn", "")
    assert "" == churn.monitoring.get_monitor_config("churn")


@pytest.mark.parametrize(
    ("call", "says"),
    [
        (lambda c: record(c, "FINE"), "'status' must be one of OK, WARNING"),
        (lambda c: c.monitoring.record_result("churn", 1, status="OK", source="", rows=1, body={}), "'source'"),
        (lambda c: c.monitoring.record_result("churn", 1, status="OK", source="x", rows=-1, body={}), "'rows'"),
        (lambda c: c.monitoring.record_result("churn", 1, status="OK", source="x", rows=1, body={"v": float("nan")}),
         "'body' is not valid JSON"),
        (lambda c: c.monitoring.record_result("churn", 1, status="OK", source="x", rows=1, body={},
                                              window_start=10, window_end=5), "'window_end' is before"),
        (lambda c: c.monitoring.record_result("churn", 1, status="OK", source="x", rows=1, body={"x": "y" * 5_000_000}),
         "the limit is"),
        (lambda c: c.monitoring.list_results("churn", max_results=0), "'max_results'"),
        (lambda c: record(c, "OK", drifted=[1, 2]), "'body.drifted' must be a list of text"),
        (lambda c: record(c, "OK", performance={"preliminary": [1, 2]}), "'body.performance.preliminary'"),
        (lambda c: record(c, "OK", performance={"metrics": {"accuracy": 0.9}}),
         "'body.performance.metrics.accuracy' must be of type object"),
        (lambda c: record(c, "OK", features={"a": {"value": "high"}}), "'body.features.a.value' must be of type"),
        (lambda c: record(c, "OK", features={"a": {"plot": {"reference": [1], "current": []}}}), "as many reference"),
        (lambda c: c.monitoring.set_monitor_config("churn", "thresholds:\n  psi: {warn: 0.3, drift: 0.2}\n"),
         "line 2: 'thresholds.psi': drift must be at least warn"),
    ],
)  # fmt: skip
def test_bad_input_is_refused_by_name(churn: covex.Client, call, says: str) -> None:
    with pytest.raises(covex.InvalidInput, match=says):
        call(churn)
    assert [] == churn.monitoring.list_results("churn")


def test_missing_things_are_not_found(churn: covex.Client) -> None:
    with pytest.raises(covex.NotFound, match="version 9"):
        record(churn, "OK", version=9)
    with pytest.raises(covex.NotFound, match="monitoring result"):
        churn.monitoring.get_result(10**9)
    with pytest.raises(covex.NotFound):
        churn.monitoring.monitor_status("nope")


def test_a_reader_reads_results_but_may_not_write_them(registry: Registry, churn: covex.Client) -> None:
    record(churn, "OK")
    reader = registry.user("ann")
    churn.access.grant("ann", "reader", model="churn")
    assert 1 == len(reader.monitoring.list_results("churn"))
    for write in (
        lambda: record(reader, "DRIFT"),
        lambda: reader.monitoring.set_monitor_config("churn", "window: 1h\n"),
        lambda: reader.monitoring.set_reference("churn", 1, REFERENCE),
    ):
        with pytest.raises(covex.PermissionDenied):
            write()


def test_a_policy_requiring_monitoring_keeps_a_drifting_version_out(churn: covex.Client) -> None:
    churn.approvals.set_policy("stage", "Production", {"require": ["monitoring"]})
    try:
        fresh = churn.approvals.create_request("churn", 2, stage="Production")  # never checked: nothing shows drift
        assert [("require monitoring", True, "not monitored yet")] == [
            (g.gate, g.passed, g.message) for g in fresh.gates
        ]
        record(churn, "OK")
        record(churn, "DRIFT", drifted=["age"])
        with pytest.raises(covex.InvalidState, match=r"require monitoring \(version 1 is DRIFT\)"):
            churn.approvals.create_request("churn", 1, stage="Production")
        record(churn, "WARNING")
        passed = churn.approvals.create_request("churn", 1, stage="Production")
        assert "monitoring says WARNING" == passed.gates[0].message
    finally:
        churn.approvals.delete_policy("stage", "Production")
