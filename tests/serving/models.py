"""A function model for the serving tests: doubles ``x``, sleeps ``sleep`` seconds, raises on a negative ``x``."""

from __future__ import annotations

import time
from typing import Any

import pandas as pd

ECHO_EXAMPLE = pd.DataFrame({"x": [1.0, 2.0], "sleep": [0.0, 0.0], "kind": ["a", "b"]})


def echo(frame: Any) -> Any:
    if (frame["x"] < 0).any():
        raise ValueError("x must not be negative")
    pause = float(frame["sleep"].max())
    if pause > 0:
        time.sleep(pause)
    return pd.DataFrame({"double": frame["x"] * 2, "kind": frame["kind"]})
