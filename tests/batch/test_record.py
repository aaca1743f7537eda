"""A batch run records itself on the version that scored it: RUNNING, then SUCCEEDED or FAILED."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.batch.conftest import Registered, frame


def _runs_to(registered: Registered, target: Path, backend: str = "embedded") -> list:
    with registered.client(backend) as c:
        return [d for d in c.deployments("churn") if d.target == str(target)]


@pytest.mark.parametrize("backend", ["embedded", "http"])
def test_a_run_records_its_version_rows_and_duration(registered: Registered, tmp_path: Path, backend: str) -> None:
    data = tmp_path / "in.parquet"
    frame(250).to_parquet(data, index=False)
    out = tmp_path / "scored.parquet"
    r = registered.cli("batch", "models:/churn@champion", "-i", str(data), "-o", str(out), backend=backend)
    assert 0 == r.exit_code, r.stderr
    [run] = _runs_to(registered, out, backend)
    assert (run.kind, run.status, run.version, run.rows) == ("batch", "SUCCEEDED", 1, 250)
    assert run.duration_s is not None and run.duration_s > 0 and run.stopped_at is not None


def test_a_failed_run_is_recorded_failed_and_no_record_records_nothing(registered: Registered, tmp_path: Path) -> None:
    folder = tmp_path / "data"
    folder.mkdir()
    frame(50).to_csv(folder / "a.csv", index=False)
    frame(50).assign(calls="many").to_csv(folder / "b.csv", index=False)
    out = tmp_path / "scored.parquet"
    assert 2 == registered.cli("batch", "models:/churn/2", "-i", str(folder), "-o", str(out)).exit_code
    [run] = _runs_to(registered, out)
    assert (run.status, run.version) == ("FAILED", 2)
    assert "calls" in run.message
    quiet = tmp_path / "quiet.parquet"
    good = tmp_path / "good.parquet"
    frame(10).to_parquet(good, index=False)
    assert 0 == registered.cli("batch", "models:/churn/2", "-i", str(good), "-o", str(quiet), "--no-record").exit_code
    assert [] == _runs_to(registered, quiet)
