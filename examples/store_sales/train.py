"""Store-level weekly sales: train a regression on generated data and write what `covex register` reads.

    python examples/store_sales/train.py
    covex register --config examples/store_sales/registry.yaml

Writes, next to this script (or under --root):
    data/train.csv, data/holdout.csv   the training and evaluation frames (CSV)
    out/model/                         the model as an MLflow model folder
    out/metrics.json                   metrics on stores the model never saw: {"rmse": ..., "mae": ..., "r2": ...}
The data are generated (seeded), so the script needs no download and runs in a few seconds.
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

HERE = Path(__file__).resolve().parent
FEATURES = ["store_size", "region", "week_of_year", "promo", "holiday"]
TARGET = "weekly_sales"
HOLDOUT_STORES = 12
ALPHA = 1.0
REGIONS = ["north", "south", "east", "west"]
HOLIDAY_WEEKS = {1, 14, 22, 35, 47, 51, 52}


def generate(seed: int = 7, stores: int = 60, weeks: int = 52) -> pd.DataFrame:
    """One row per store and week: size, region, promotion and holiday flags, and the sales that followed."""
    rng = np.random.default_rng(seed)
    size = rng.uniform(800, 6000, stores).round(0)
    region = rng.choice(REGIONS, stores)
    region_effect = {"north": 0.9, "south": 1.1, "east": 1.0, "west": 1.05}
    store = np.repeat(np.arange(stores), weeks)
    week = np.tile(np.arange(1, weeks + 1), stores)
    promo = (rng.random(stores * weeks) < 0.3).astype(int)
    holiday = np.isin(week, list(HOLIDAY_WEEKS)).astype(int)
    season = 1 + 0.15 * np.sin(2 * np.pi * (week - 10) / 52)
    base = 9.5 * size[store] * np.array([region_effect[r] for r in region[store]]) * season
    sales = base * (1 + 0.12 * promo + 0.25 * holiday) + rng.normal(0, 2500, stores * weeks)
    return pd.DataFrame(
        {
            "store_id": store,
            "store_size": size[store],
            "region": region[store],
            "week_of_year": week,
            "promo": promo,
            "holiday": holiday,
            TARGET: sales.round(2),
        }
    )


def build_model() -> Any:
    from sklearn.compose import make_column_transformer
    from sklearn.linear_model import Ridge
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    columns = make_column_transformer(
        (OneHotEncoder(handle_unknown="ignore"), ["region", "week_of_year"]),
        (StandardScaler(), ["store_size", "promo", "holiday"]),
    )
    return make_pipeline(columns, Ridge(alpha=ALPHA))


def requirements() -> list[str]:
    import sklearn

    return [f"scikit-learn=={sklearn.__version__}", f"pandas=={pd.__version__}", f"numpy=={np.__version__}"]


def train(root: Path = HERE, seed: int = 7) -> dict[str, Any]:
    """Generate the data, fit, evaluate on held-out stores, and write data/ and out/ under ``root``."""
    import mlflow.sklearn
    from sklearn.metrics import mean_absolute_error, mean_squared_error, r2_score

    frame = generate(seed)
    held_out = frame["store_id"] >= frame["store_id"].max() + 1 - HOLDOUT_STORES
    train_df, holdout = frame[~held_out], frame[held_out]
    model = build_model().fit(train_df[FEATURES], train_df[TARGET])
    predicted = model.predict(holdout[FEATURES])
    metrics = {
        "rmse": round(float(np.sqrt(mean_squared_error(holdout[TARGET], predicted))), 4),
        "mae": round(float(mean_absolute_error(holdout[TARGET], predicted)), 4),
        "r2": round(float(r2_score(holdout[TARGET], predicted)), 6),
    }
    data, out = root / "data", root / "out"
    data.mkdir(parents=True, exist_ok=True)
    out.mkdir(parents=True, exist_ok=True)
    train_df.to_csv(data / "train.csv", index=False)
    holdout.to_csv(data / "holdout.csv", index=False)
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    shutil.rmtree(out / "model", ignore_errors=True)  # MLflow refuses to write into an existing folder
    mlflow.sklearn.save_model(
        model,
        str(out / "model"),
        input_example=holdout[FEATURES].head(5),
        pip_requirements=requirements(),
    )
    return {"metrics": metrics, "model": out / "model", "train_rows": len(train_df), "holdout_rows": len(holdout)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--root", type=Path, default=HERE, help="Folder to write data/ and out/ into.")
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    result = train(args.root, args.seed)
    print(f"wrote {result['model']} ({result['train_rows']} training rows); holdout metrics {result['metrics']}")


if __name__ == "__main__":
    main()
