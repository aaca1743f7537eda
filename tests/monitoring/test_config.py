"""The monitor config: documented defaults, and every problem of a bad one named with its line."""

from __future__ import annotations

import pytest

from covex.domain.errors import InvalidInput
from covex.domain.monitoring import THRESHOLDS, MonitorConfig, Rule, parse_duration, parse_monitor_config


def test_an_empty_config_is_the_defaults() -> None:
    assert MonitorConfig() == parse_monitor_config("") == parse_monitor_config("# nothing yet\n")
    config = MonitorConfig()
    assert (86400.0, 100, 0.5, "psi", "psi") == (
        config.window_s, config.min_rows, config.drift_share, config.numeric, config.categorical,
    )  # fmt: skip
    assert Rule(method="psi", warn=0.1, drift=0.25) == config.rule("age", "numeric")


def test_a_full_config_reads_as_written() -> None:
    config = parse_monitor_config(
        """
window: 7d
min_rows: 1000
drift_share: 0.3
features: [age, city]
methods: {numeric: wasserstein, categorical: js}
thresholds:
  wasserstein: {warn: 0.2, drift: 0.4}
columns:
  city: {method: chi2, warn: 0.01, drift: 0.001}
predictions: {method: ks}
performance: {task: classification, metrics: [roc_auc, f1], tolerance: 0.02, positive: 1}
"""
    )
    assert (7 * 86400.0, 1000, 0.3, ("age", "city")) == (
        config.window_s, config.min_rows, config.drift_share, config.features,
    )  # fmt: skip
    assert Rule(method="wasserstein", warn=0.2, drift=0.4) == config.rule("age", "numeric")
    assert Rule(method="chi2", warn=0.01, drift=0.001) == config.rule("city", "categorical")
    assert Rule(method="ks", warn=THRESHOLDS["ks"][0], drift=THRESHOLDS["ks"][1]) == config.prediction_rule("numeric")
    assert (("roc_auc", "f1"), 0.02, "1") == (
        config.performance.metrics, config.performance.tolerance, config.performance.positive,
    )  # fmt: skip


def test_every_problem_is_named_with_its_line_and_nothing_is_kept() -> None:
    text = """window: soon
min_rows: 0
methods:
  numeric: chi2
  text: psi
thresholds:
  psi: {warn: 0.5, drift: 0.1}
  magic: {warn: 1}
columns:
  age: {method: ks, warn: 2}
performance: {metrics: [auc], task: ranking}
colour: blue
"""
    with pytest.raises(InvalidInput) as caught:
        parse_monitor_config(text)
    message = caught.value.message
    assert message.startswith("monitor config rejected: line 1: 'window' must be a duration")
    for expected in (
        "line 2: 'min_rows' must be a whole number of at least 1",
        "line 4: 'methods.numeric' must be one of psi, js, ks, wasserstein, got 'chi2'",
        "line 5: 'methods' has keys numeric and categorical, not 'text'",
        "line 7: 'thresholds.psi': drift must be at least warn",
        "line 8: unknown method 'magic'",
        "line 10: 'columns.age.warn' must be a number from 0 to 1",
        "line 11: unknown metric 'auc'",
        "line 11: 'performance.task' must be one of classification, regression",
        "line 12: unknown setting 'colour'",
    ):
        assert expected in message


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("- a\n- b\n", "line 1: the config must be a mapping"),
        ("window: &w 1h\nmore: *w\n", "aliases are not allowed"),
        ("features: []\n", "'features' must be a list of column names"),
        ("drift_share: 1.5\n", "'drift_share' must be a number from 0 to 1"),
        ("window: 400d\n", "at most a year"),
        ("drift_share: 0\n", "'drift_share' must be more than 0"),
        ("thresholds:\n  psi: {method: js, warn: 0.1}\n", "line 2: 'thresholds.psi' sets the thresholds of psi"),
        ("a: [\n", "line"),
        ("window: 1h\nmin_rows: \x88\n", "line 2: not valid YAML: character #x0088 is not allowed"),
    ],
)
def test_bad_configs_are_refused(text: str, says: str) -> None:
    with pytest.raises(InvalidInput, match=says):
        parse_monitor_config(text)


@pytest.mark.parametrize(("text", "seconds"), [("90s", 90), ("30m", 1800), ("24h", 86400), ("7d", 604800), (60, 60)])
def test_durations(text: object, seconds: float) -> None:
    assert seconds == parse_duration(text, "since")


@pytest.mark.parametrize("text", ["", "1y", "-1h", "0s", "h", True, None])
def test_bad_durations(text: object) -> None:
    with pytest.raises(InvalidInput, match="'since'"):
        parse_duration(text, "since")
