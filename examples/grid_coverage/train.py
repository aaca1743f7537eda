"""Grid-level coverage: classify 1 km grid cells as covered or not (generated data); write what `covex register` reads.

    python examples/grid_coverage/train.py
    covex register --config examples/grid_coverage/registry.yaml

Writes, next to this script (or under --root):
    data/cells_train.csv, data/cells_holdout.csv   grid cells with their features and label (CSV)
    out/model.joblib                              the fitted scikit-learn pipeline (joblib)
    out/example.csv                               a few cells without the label: the input example
    out/metrics.csv                               holdout metrics as name,value rows
The data are generated (seeded), so the script needs no download and runs in a few seconds.
"""

from __future__ import annotations

import argparse
import csv
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

HERE = Path(__file__).resolve().parent
FEATURES = ["tower_density", "distance_to_tower_km", "population_density", "elevation_m", "terrain"]
TARGET = "covered"
TERRAINS = ["urban", "flat", "hills", "forest", "mountain"]
N_ESTIMATORS = 60
MAX_DEPTH = 8


def generate(seed: int = 11, cells: int = 4000) -> pd.DataFrame:
    """One row per grid cell: towers per km², distance to the nearest tower, people per km², terrain."""
    rng = np.random.default_rng(seed)
    terrain = rng.choice(TERRAINS, cells, p=[0.15, 0.35, 0.2, 0.2, 0.1])
    urban = terrain == "urban"
    towers = rng.gamma(shape=np.where(urban, 4.0, 0.8), scale=np.where(urban, 1.0, 0.35))
    distance = rng.exponential(1 / (towers + 0.15)).clip(0.05, 25)
    population = rng.lognormal(np.where(urban, 8.0, 4.5), 0.9)
    elevation = rng.gamma(2.0, np.select([terrain == "mountain", terrain == "hills"], [900.0, 250.0], 60.0))
    attenuation = pd.Series(terrain).map({"urban": 0.6, "flat": 0.0, "hills": 0.9, "forest": 0.7, "mountain": 1.8})
    signal = 2.2 * np.log1p(towers) - 0.9 * distance - attenuation.to_numpy() - elevation / 2500
    covered = (signal + rng.normal(0, 0.5, cells) > -0.8).astype(int)
    return pd.DataFrame(
        {
            "cell_id": [f"G{i:05d}" for i in range(cells)],
            "tower_density": towers.round(3),
            "distance_to_tower_km": distance.round(3),
            "population_density": population.round(1),
            "elevation_m": elevation.round(0),
            "terrain": terrain,
            TARGET: covered,
        }
    )


def build_model() -> Any:
    from sklearn.compose import make_column_transformer
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder

    columns = make_column_transformer((OneHotEncoder(handle_unknown="ignore"), ["terrain"]), remainder="passthrough")
    forest = RandomForestClassifier(n_estimators=N_ESTIMATORS, max_depth=MAX_DEPTH, random_state=0, n_jobs=1)
    return make_pipeline(columns, forest)


def train(root: Path = HERE, seed: int = 11) -> dict[str, Any]:
    """Generate the cells, fit, evaluate on a held-out fifth, and write data/ and out/ under ``root``."""
    import joblib
    from sklearn.metrics import accuracy_score, f1_score, precision_score, recall_score, roc_auc_score

    frame = generate(seed)
    holdout_mask = np.random.default_rng(seed + 1).random(len(frame)) < 0.2
    train_df, holdout = frame[~holdout_mask], frame[holdout_mask]
    model = build_model().fit(train_df[FEATURES], train_df[TARGET])
    probability = model.predict_proba(holdout[FEATURES])[:, 1]
    predicted = (probability >= 0.5).astype(int)
    truth = holdout[TARGET]
    metrics = {
        "accuracy": accuracy_score(truth, predicted),
        "roc_auc": roc_auc_score(truth, probability),
        "f1": f1_score(truth, predicted),
        "precision": precision_score(truth, predicted),
        "recall": recall_score(truth, predicted),
        "coverage_rate": float(truth.mean()),
    }
    data, out = root / "data", root / "out"
    data.mkdir(parents=True, exist_ok=True)
    out.mkdir(parents=True, exist_ok=True)
    train_df.to_csv(data / "cells_train.csv", index=False)
    holdout.to_csv(data / "cells_holdout.csv", index=False)
    holdout[FEATURES].head(5).to_csv(out / "example.csv", index=False)
    joblib.dump(model, out / "model.joblib")
    with (out / "metrics.csv").open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["name", "value"])
        writer.writerows((name, f"{value:.6f}") for name, value in metrics.items())
    return {"metrics": metrics, "model": out / "model.joblib", "train_rows": len(train_df)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--root", type=Path, default=HERE, help="Folder to write data/ and out/ into.")
    parser.add_argument("--seed", type=int, default=11)
    args = parser.parse_args()
    result = train(args.root, args.seed)
    shown = ", ".join(f"{k}={v:.3f}" for k, v in result["metrics"].items())
    print(f"wrote {result['model']} ({result['train_rows']} training cells); holdout {shown}")


if __name__ == "__main__":
    main()
