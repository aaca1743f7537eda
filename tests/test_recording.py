"""A deployment's record kept by the process that runs the version: start, heartbeats, swaps, end."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest

from covex.recording import DeploymentRecord
from tests.conftest import Registry


def wait_until(condition: Callable[[], bool], timeout: float = 60) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.02)
    return condition()


@pytest.fixture(params=["embedded", "http"])
def reg(request: pytest.FixtureRequest, registries) -> Registry:
    r: Registry = registries(request.param, "sqlite")
    r.reset()
    with r.client() as c:
        c.create_model("churn")
        c.create_version("churn", source="s3://b/1")
        c.create_version("churn", source="s3://b/2")
        c.set_alias("churn", "champion", 1)
    return r


def test_a_server_records_heartbeats_swaps_and_stops(reg: Registry) -> None:
    with reg.client() as c:
        rec = DeploymentRecord(c, "models:/churn@champion", "serving", "http://h:8081", heartbeat_seconds=0.05)
        first = rec.start()
        assert first is not None and (first.version, first.status) == (1, "STARTING")
        assert wait_until(lambda: c.get_deployment(first.id).heartbeat_at > first.heartbeat_at)
        assert rec.update(status="SERVING") is not None
        assert rec.swapped(2, "alias moved") is not None
        assert (c.get_deployment(first.id).version, c.get_deployment(first.id).message) == (2, "alias moved")
        ended = rec.end("STOPPED")
        assert ended is not None and ended.status == "STOPPED"
        beat = c.get_deployment(first.id).heartbeat_at
        time.sleep(0.2)
        assert beat == c.get_deployment(first.id).heartbeat_at  # no beat after the end


def test_a_batch_block_ends_succeeded_or_failed(reg: Registry) -> None:
    with reg.client() as c:
        with DeploymentRecord(c, "models:/churn/2", "batch", "out.parquet") as rec:
            rec.update(rows=10)
        assert rec.deployment is not None
        d = c.get_deployment(rec.deployment.id)
        assert ("SUCCEEDED", 10) == (d.status, d.rows)
        with pytest.raises(ValueError, match="bad column"):
            with DeploymentRecord(c, "models:/churn/2", "batch", "out2.parquet") as failing:
                raise ValueError("bad column")
        assert failing.deployment is not None
        d = c.get_deployment(failing.deployment.id)
        assert (d.status, d.message) == ("FAILED", "ValueError: bad column")
        with DeploymentRecord(c, "models:/churn/2", "batch", "out3.parquet") as done:
            done.end("SUCCEEDED", rows=5, duration_s=1.5)  # ended by the caller: kept as it said
        assert done.deployment is not None and (5, 1.5) == (done.deployment.rows, done.deployment.duration_s)


def test_recording_never_stops_the_work_and_starts_once_it_may(reg: Registry, caplog) -> None:
    with reg.client() as admin:
        admin.access.create_user("svc")
        token = admin.access.create_token("svc", name="t").secret
        with reg.client_with(token) as svc:
            rec = DeploymentRecord(svc, "models:/churn/1", "serving", "http://h:1", heartbeat_seconds=0.05)
            assert rec.start() is None  # may not read the model yet: logged, not raised
            assert "could not record the deployment" in caplog.text
            admin.access.grant("user:svc", "reader", model="churn")
            assert wait_until(lambda: rec.deployment is not None)  # the next beat starts it
            assert [rec.deployment.id] == [d.id for d in admin.deployments("churn")]
            rec.end("STOPPED")
