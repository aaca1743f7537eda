"""Frames as the float matrices SHAP masks, and back: every column type survives the round trip."""

from __future__ import annotations

import numpy as np
import pandas as pd

from covex.explain.frames import Codec, sample


def mixed(rows: int = 6) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "number": np.linspace(0, 1, rows),
            "count": np.arange(rows, dtype=np.int64),
            "small": np.arange(rows, dtype=np.float32),
            "text": ["red", "green", None, "red", "blue", "green"][:rows],
            "category": pd.Categorical(["x", "y", "x", None, "y", "x"][:rows]),
            "flag": [True, False, True, True, False, False][:rows],
            "maybe": pd.array([1, None, 3, 4, None, 6][:rows], dtype="Int64"),
            "missing": [0.5, np.nan, 1.5, np.nan, 2.5, 3.0][:rows],
        }
    )


def test_a_frame_survives_encoding_with_its_column_types() -> None:
    frame = mixed()
    codec = Codec([frame])
    matrix = codec.encode(frame)
    assert (6, 8) == matrix.shape
    assert np.float64 == matrix.dtype
    pd.testing.assert_frame_equal(frame, codec.decode(matrix))


def test_text_is_coded_by_the_values_seen_and_missing_values_are_nan() -> None:
    frame = mixed()
    codec = Codec([frame])
    matrix = codec.encode(frame)
    text = matrix[:, list(frame.columns).index("text")]
    assert np.isnan(text[2])
    assert text[0] == text[3] != text[1]


def test_values_only_in_the_background_decode_too() -> None:
    data, background = mixed(2), mixed(6)
    codec = Codec([data, background])
    decoded = codec.decode(codec.encode(background))
    assert list(background["text"]) == list(decoded["text"])


def test_masked_rows_mix_values_of_different_rows() -> None:
    frame = mixed()
    codec = Codec([frame])
    matrix = codec.encode(frame)
    masked = matrix[[0]].copy()
    masked[0, 3] = matrix[4, 3]  # the text of row 4 in row 0
    decoded = codec.decode(masked)
    assert ("blue", 0.0) == (decoded["text"][0], decoded["number"][0])


def test_sampling_keeps_input_order_and_all_rows_when_asked_for_more() -> None:
    frame = pd.DataFrame({"a": range(100)})
    picked = sample(frame, 10, seed=3)
    assert 10 == len(picked) and list(picked.a) == sorted(picked.a)
    assert frame is sample(frame, 500, seed=3)
