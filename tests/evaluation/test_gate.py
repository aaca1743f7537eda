"""The evaluation gate: a promotion waits for a fair comparison that finds the version better."""

from __future__ import annotations

from pathlib import Path

import pytest

import covex
from covex.domain.errors import InvalidInput
from covex.domain.gates import EvaluationGate, parse_gate
from covex.evaluation import compare
from tests.evaluation.conftest import Registered

GATE = "evaluation.auc beats champion on holdout p < 0.05"


def test_the_gate_parses_and_bad_ones_are_named() -> None:
    assert parse_gate(GATE) == EvaluationGate(GATE, "roc_auc", "holdout", 0.05)
    assert parse_gate("evaluation.rmse beats champion") == EvaluationGate("evaluation.rmse beats champion", "rmse")
    for bad in (
        "evaluation.auc beats",
        "evaluation.auc beats champion p < 2",
        "evaluation.auc > 0.8",
        "evaluation.aucc beats champion",
    ):
        with pytest.raises(InvalidInput, match="evaluation"):
            parse_gate(bad)


def test_promotion_waits_for_a_significant_win_on_tagged_data(registered: Registered, holdout: Path) -> None:
    with registered.client("http") as c:
        c.set_alias("churn", "gated", 2)  # the noise-only model holds @gated before the policy exists
        c.approvals.set_policy("alias", "gated", {"approvals": 0, "gates": [GATE]}, model="churn")
        try:
            with pytest.raises(covex.InvalidState, match="no evaluation of version 1 against the champion, version 2"):
                c.approvals.create_request("churn", 1, alias="gated")
            compare(c, ["models:/churn/2", "models:/churn/1"], str(holdout), "churned", resamples=20, data_tags=["q3"])
            with pytest.raises(covex.InvalidState, match="tagged 'holdout'"):
                c.approvals.create_request("churn", 1, alias="gated")
            compare(
                c, ["models:/churn/2", "models:/churn/1"], str(holdout), "churned", resamples=20, data_tags=["holdout"]
            )
            request = c.approvals.create_request("churn", 1, alias="gated")
            assert request.status == "APPLIED"
            (result,) = request.gates
            assert result.passed and "DeLong" in result.message and "better" in result.message
            # Now the champion is v1; v3 is as good, not better: refused, with the numbers.
            compare(
                c, ["models:/churn/1", "models:/churn/3"], str(holdout), "churned", resamples=20, data_tags=["holdout"]
            )
            with pytest.raises(covex.InvalidState, match=r"p=0\.\d+ >= 0\.05"):
                c.approvals.create_request("churn", 3, alias="gated")
        finally:
            c.approvals.delete_policy("alias", "gated", model="churn")
            c.delete_alias("churn", "gated")
