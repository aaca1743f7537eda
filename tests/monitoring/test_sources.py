"""Where current data comes from: the inference log in a window, a file with its predictions beside it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace

import pandas as pd
import pytest

from covex.domain.errors import InvalidInput
from covex.monitoring.monitor import Window
from covex.monitoring.sources import file_chunks, log_chunks, parse_time
from covex.serving.inference_log import InferenceLog


def write_log(folder: Path, name: str, version: int, requests: list[pd.DataFrame]) -> None:
    writer = InferenceLog(str(folder), interval=0.05)
    writer.start()
    served = SimpleNamespace(name=name, version=version)
    for i, frame in enumerate(requests):
        writer.record(f"r{i}", served, SimpleNamespace(data=frame, rows=len(frame)), list(range(len(frame))), 0.001,
                      endpoint="invocations")  # fmt: skip
    writer.close()


def test_the_log_of_a_namespaced_model_reads_back_row_by_row(tmp_path: Path) -> None:
    frames = [pd.DataFrame({"x": [1.0, 2.0], "kind": ["a", "b"]}), pd.DataFrame({"x": [3.0], "kind": ["c"]})]
    write_log(tmp_path, "team/churn", 3, frames)
    write_log(tmp_path, "team/churn", 4, frames)  # another version: not read
    now = datetime.now(UTC)
    (chunk,) = list(log_chunks(str(tmp_path), "team/churn", 3, now - timedelta(hours=1), now + timedelta(minutes=1)))
    assert [1.0, 2.0, 3.0] == chunk.features["x"].tolist()
    assert [0, 1, 0] == chunk.predictions["prediction"].tolist()
    assert [("r0", 0), ("r0", 1), ("r1", 0)] == list(chunk.keys.itertuples(index=False, name=None))
    assert [] == list(log_chunks(str(tmp_path), "team/churn", 3, now - timedelta(days=3), now - timedelta(days=2)))
    assert [] == list(log_chunks(str(tmp_path), "nobody", 1, now - timedelta(hours=1), now))


def test_a_predictions_file_must_match_the_data_row_for_row(tmp_path: Path) -> None:
    data = tmp_path / "in.parquet"
    pd.DataFrame({"id": range(5), "x": range(5)}).to_parquet(data)
    scored = tmp_path / "out.parquet"
    pd.DataFrame({"id": range(5), "prediction": [1, 0, 1, 0, 1]}).to_parquet(scored)
    (chunk,) = list(file_chunks(str(data), predictions=str(scored)))
    assert ["prediction"] == list(chunk.predictions.columns)
    short = tmp_path / "short.parquet"
    pd.DataFrame({"id": range(3), "prediction": [1, 0, 1]}).to_parquet(short)
    with pytest.raises(InvalidInput, match="does not have the same number of rows"):
        list(file_chunks(str(data), predictions=str(short)))
    with pytest.raises(InvalidInput, match="adds no column"):
        list(file_chunks(str(data), predictions=str(data)))
    with pytest.raises(InvalidInput, match="prediction column 'p' is not in"):
        list(file_chunks(str(data), prediction_columns=["p"]))


@pytest.mark.parametrize(
    ("since", "start", "end", "says"),
    [
        ("soon", None, None, "'since' must be a duration"),
        ("1h", "2026-01-01", None, "either as 'since' or as 'from'/'to'"),
        (None, "2026-02-01", "2026-01-01", "start must be before its end"),
        (None, "yesterday", None, "'from' must be an ISO 8601 time"),
    ],
)
def test_bad_windows_are_refused(since: str | None, start: str | None, end: str | None, says: str) -> None:
    with pytest.raises(InvalidInput, match=says):
        Window.of(since, start, end, 3600)


def test_times_without_a_zone_are_utc() -> None:
    assert datetime(2026, 12, 1, 8, tzinfo=UTC) == parse_time("2026-12-01T08:00", "from")
    assert Window.of(None, "2026-12-01", "2026-12-02", 60).start == datetime(2026, 12, 1, tzinfo=UTC)


def test_a_window_ending_in_the_year_9999_is_refused() -> None:
    with pytest.raises(InvalidInput, match="before the year 9999"):
        Window.of("1d", None, "9999-12-31T23:00", 60)
