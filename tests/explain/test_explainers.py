"""explain(): the explainer that fits each kind of model, contributions that add up, features ranked as built."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest

from covex.domain.errors import InvalidInput
from covex.explain import Explanation, explain
from tests.explain.conftest import FEATURES, Registry, frame

# model, explainer, output, what the model's own object gives for the explained output
CASES = [
    ("forest-regressor", "tree", "prediction", lambda m, x: m.predict(x)),
    ("forest-classifier", "tree", "probability", lambda m, x: m.predict_proba(x)[:, 1]),
    ("xgboost-classifier", "tree", "log_odds", lambda m, x: m.predict(x, output_margin=True)),
    ("lightgbm-regressor", "tree", "prediction", lambda m, x: m.predict(x)),
    ("logistic", "linear", "log_odds", lambda m, x: m.decision_function(x)),
    ("linear", "linear", "prediction", lambda m, x: m.predict(x)),
    ("neighbours", "exact", "prediction", lambda m, x: m.predict(x)),
    ("svc-pipeline", "exact", "probability", lambda m, x: m.predict_proba(x)[:, 1]),
]


def assert_adds_up(e: Explanation, expected: Any) -> None:
    """Each row's contributions plus its base value are the model's own output for that row."""
    np.testing.assert_allclose(expected, e.outputs, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(e.outputs, e.contributions.sum(axis=1) + e.base_values, rtol=1e-5, atol=1e-5)
    assert (e.rows, len(e.features)) == e.contributions.shape
    assert e.additivity_error < 1e-4


@pytest.mark.parametrize(("name", "explainer", "output", "own_output"), CASES, ids=[c[0] for c in CASES])
def test_each_kind_of_model_gets_its_explainer_and_contributions_that_add_up(
    registry: Registry, name: str, explainer: str, output: str, own_output: Any
) -> None:
    model = registry.load(name)
    data = frame(60, seed=2)
    rows = 30 if explainer == "exact" else None  # the model-agnostic explainer scores many masked copies a row

    e = explain(model, data, rows=rows)

    assert (explainer, output) == (e.explainer, e.output)
    assert FEATURES == e.features
    assert_adds_up(e, own_output(registry.trained[name], e.data))
    assert ["a", "b", "c"] == [name for name, _ in e.global_importance()]  # built that way: a strongly, b weakly


def test_tree_contributions_are_shaps_own(registry: Registry, shap: Any) -> None:
    model = registry.load("forest-regressor")
    data = frame(50, seed=3)
    e = explain(model, data)
    direct = shap.TreeExplainer(registry.trained["forest-regressor"]).shap_values(data[FEATURES])
    np.testing.assert_allclose(direct, e.contributions, rtol=1e-9, atol=1e-12)
    assert 0 == e.background_rows  # the tree explainer follows the training data's paths instead


@pytest.mark.parametrize("name", ["forest-classifier", "logistic", "xgboost-classifier"])
@pytest.mark.parametrize("rows", [1, 2, 3])
def test_as_many_rows_as_classes_is_not_mistaken_for_a_base_value_per_row(
    registry: Registry, name: str, rows: int
) -> None:
    e = explain(registry.load(name), frame(rows, seed=6))
    assert e.rows == rows and e.contributions.shape == (rows, len(FEATURES))
    assert len(set(e.base_values.tolist())) == 1  # one expected value, whatever the rows


def test_binary_classifiers_explain_the_positive_class(registry: Registry) -> None:
    e = explain(registry.load("forest-classifier"), frame(20, seed=4))
    assert e.classes is not None
    assert {1} == set(e.classes.tolist())
    assert "class 1" == e.target


def test_multiclass_explains_each_rows_predicted_class(registry: Registry) -> None:
    e = explain(registry.load("forest-multiclass"), frame(80, seed=5))
    probabilities = registry.trained["forest-multiclass"].predict_proba(e.data)
    assert e.classes is not None
    np.testing.assert_array_equal(probabilities.argmax(axis=1), e.classes.astype(int))
    assert_adds_up(e, probabilities.max(axis=1))
    assert ("probability", "predicted class") == (e.output, e.target)
    assert 2 < len(set(e.classes.tolist()))


def test_an_ensemble_shap_cannot_read_goes_to_the_model_agnostic_explainer(registry: Registry) -> None:
    model = registry.load("boosting-multiclass")  # shap's tree explainer takes binary gradient boosting only
    e = explain(model, frame(20, seed=6), background=frame(30, seed=7))
    scores = registry.trained["boosting-multiclass"].decision_function(e.data)
    assert ("exact", "raw", 30) == (e.explainer, e.output, e.background_rows)
    assert_adds_up(e, scores.max(axis=1))


def test_a_function_is_explained_by_its_predictions_with_known_contributions(registry: Registry) -> None:
    """For 4a + b, a's contribution is 4 * (a - mean a of the background), b's is b - mean b, c's is 0."""
    data, background = frame(10, seed=8), frame(40, seed=9)
    e = explain(registry.load("additive-function"), data, background=background)
    expected = np.column_stack([4 * (data.a - background.a.mean()), data.b - background.b.mean(), np.zeros(len(data))])
    assert ("exact", "prediction", None) == (e.explainer, e.output, e.classes)
    np.testing.assert_allclose(expected, e.contributions, atol=1e-9)
    np.testing.assert_allclose(4 * background.a.mean() + background.b.mean(), e.base_values)


def test_many_features_use_the_permutation_explainer(registry: Registry) -> None:
    data, background = frame(4, seed=10, extra=7), frame(20, seed=11, extra=7)
    e = explain(registry.load("additive-function-wide"), data, background=background)
    assert ("permutation", 10) == (e.explainer, len(e.features))
    expected_a = 4 * (data.a - background.a.mean())
    np.testing.assert_allclose(expected_a, e.contributions[:, 0], atol=1e-9)  # additive: exact for any permutation
    np.testing.assert_allclose(0, e.contributions[:, 2:], atol=1e-9)
    assert_adds_up(e, 4 * data.a + data.b)


def test_extra_columns_are_ignored_and_the_signature_orders_the_rest(registry: Registry) -> None:
    data = frame(20, seed=12)[["c", "id", "b", "a"]].assign(note="ignored")
    e = explain(registry.load("linear"), data)
    assert FEATURES == e.features == list(e.data.columns)


def test_rows_are_sampled_the_same_way_for_the_same_seed(registry: Registry) -> None:
    model = registry.load("linear")
    data = frame(200, seed=13).set_index("id")
    first, again, other = (explain(model, data, rows=25, seed=s) for s in (1, 1, 2))
    assert 25 == first.rows
    assert list(first.data.index) == list(again.data.index) != list(other.data.index)
    assert list(first.data.index) == sorted(first.data.index)  # kept in input order
    np.testing.assert_array_equal(first.contributions, again.contributions)


def test_numbers_held_as_text_are_read_as_numbers(registry: Registry) -> None:
    data = frame(20, seed=14)
    e = explain(registry.load("linear"), data.assign(a=data.a.astype(str)))
    np.testing.assert_allclose(registry.trained["linear"].predict(data[FEATURES]), e.outputs)


def test_a_missing_column_is_named(registry: Registry) -> None:
    with pytest.raises(InvalidInput, match="column 'b' is not in the data"):
        explain(registry.load("linear"), frame(10).drop(columns="b"))


@pytest.mark.parametrize("name", ["linear", "forest-regressor"])  # the tree explainer does without, but checks it
def test_the_background_must_have_the_columns_too(registry: Registry, name: str) -> None:
    with pytest.raises(InvalidInput, match="column 'c' is not in the background data"):
        explain(registry.load(name), frame(10), background=frame(10).drop(columns="c"))


def test_text_where_the_signature_wants_numbers_is_named(registry: Registry) -> None:
    with pytest.raises(InvalidInput, match=r"column 'a' of the data should hold numbers .*double.*'lots'"):
        explain(registry.load("linear"), frame(3).assign(a=["0.5", "lots", "1"]))


@pytest.mark.parametrize("data", [frame(0), frame(5).iloc[:0]], ids=["no rows", "emptied"])
def test_no_rows_are_refused(registry: Registry, data: pd.DataFrame) -> None:
    with pytest.raises(InvalidInput, match="the data has no rows to explain"):
        explain(registry.load("linear"), data)


def test_an_empty_background_is_refused(registry: Registry) -> None:
    with pytest.raises(InvalidInput, match="the background data has no rows"):
        explain(registry.load("linear"), frame(5), background=frame(0))


@pytest.mark.parametrize("rows", [0, -3, 2.5, True])
def test_rows_must_be_a_positive_whole_number(registry: Registry, rows: Any) -> None:
    with pytest.raises(InvalidInput, match="'rows' must be a positive whole number"):
        explain(registry.load("linear"), frame(5), rows=rows)


def test_a_model_returning_text_is_refused_saying_why(registry: Registry) -> None:
    with pytest.raises(InvalidInput, match=r"returns .* values \(such as '(yes|no)'\).*only numbers can be explained"):
        explain(registry.load("text-function"), frame(5))


def test_a_model_with_two_outputs_is_refused(registry: Registry) -> None:
    with pytest.raises(InvalidInput, match="predicts 2 outputs for each row; an explanation explains one"):
        explain(registry.load("two-outputs"), frame(5))


def test_an_error_inside_shap_is_one_line_naming_the_model(
    registry: Registry, shap: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    def fail(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("the trees are\nnot what they seem")

    monkeypatch.setattr(shap.TreeExplainer, "shap_values", fail)
    with pytest.raises(InvalidInput, match=r"^models:/forest-regressor/1 cannot be explained: RuntimeError: the trees"):
        explain(registry.load("forest-regressor"), frame(5))


def test_contributions_that_do_not_add_up_are_refused_naming_the_row(
    registry: Registry, shap: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = shap.TreeExplainer.shap_values

    def skewed(self: Any, x: Any, **kwargs: Any) -> Any:
        values = np.array(real(self, x, **kwargs))
        values[3, 0] += 0.5
        return values

    monkeypatch.setattr(shap.TreeExplainer, "shap_values", skewed)
    data = frame(10).set_index("id")
    with pytest.raises(InvalidInput, match=r"do not add up .* off by 0\.5 for row 3 \(index 3\)"):
        explain(registry.load("forest-regressor"), data)
