"""Explanations of a version's outputs: each feature's SHAP contribution, per row and overall.

    from covex.batch.model import ScoringModel
    from covex.explain import explain
    from covex.explain.plots import write_report

    model = ScoringModel.load(client, "models:/churn@champion")
    e = explain(model, X, background=reference, rows=500)
    e.global_importance()         # [("tenure", 0.21), ("spend", 0.08), ...]
    e.to_record(top=20)           # a small JSON-able summary to keep on the version
    write_report(e, "explanation.html", rows=[0, 1])

    explain_version(client, "models:/churn@champion", X)   # the same, stored on the version

The explainer fits the model: exact tree and linear SHAP for tree ensembles (scikit-learn, XGBoost,
LightGBM) and linear models, the permutation explainer for anything else. Everything here works on a
loaded model and a DataFrame; storing the result is the caller's. Needs the ``explain`` extra (shap).
"""

from covex.explain.explainers import explain
from covex.explain.result import Explanation
from covex.explain.stored import Explained, explain_version

__all__ = ["Explained", "Explanation", "explain", "explain_version"]
