"""Baselines: the best constant for each loss and metric, scored by Keras as history.csv's values are."""

from __future__ import annotations

import numpy as np
import pytest

from dlrun.data.prepare import prepare
from dlrun.spec.loader import load_spec
from dlrun.training.baseline import baseline, constant_for, score

from conftest import CONFIGS, binary_spec, make_binary_csv, write_spec

RNG = np.random.default_rng(0)
NUMBERS = RNG.gamma(2.0, 50.0, size=301).astype("float32")  # skewed: mean and median differ
LABELS = (RNG.random(200) < 0.3).astype("float32")
CLASSES = np.repeat(np.arange(3), [10, 25, 15]).astype("int32")


@pytest.mark.parametrize(
    ("name", "task", "y", "expected"),
    [
        ("mse", "regression", NUMBERS, [float(np.mean(NUMBERS.astype("float64")))]),
        ("root_mean_squared_error", "regression", NUMBERS, [float(np.mean(NUMBERS.astype("float64")))]),
        ("mae", "regression", NUMBERS, [float(np.median(NUMBERS))]),
        ("binary_crossentropy", "binary", LABELS, [float(LABELS.mean())]),
        ("auc", "binary", LABELS, [float(LABELS.mean())]),
        ("binary_accuracy", "binary", LABELS, [0.0]),
        ("precision", "binary", LABELS, [0.0]),
        ("sparse_categorical_crossentropy", "multiclass", CLASSES, [0.2, 0.5, 0.3]),
        ("sparse_categorical_accuracy", "multiclass", CLASSES, [0.0, 1.0, 0.0]),
        ("accuracy", "multiclass", CLASSES, [0.0, 1.0, 0.0]),
    ],
)
def test_each_quantity_gets_its_best_constant(name, task, y, expected):
    assert constant_for(name, task, y, 3, name).value == pytest.approx(expected)


def test_other_losses_get_the_constant_that_minimizes_them():
    huber = constant_for("huber", "regression", NUMBERS, 1, "huber")
    assert "minimizes huber" in huber.rule

    def mean_huber(c: float) -> float:
        error = np.abs(NUMBERS.astype("float64") - c)
        return float(np.mean(np.where(error <= 1, 0.5 * error**2, error - 0.5)))

    found = huber.value[0]
    for other in (np.mean(NUMBERS), np.median(NUMBERS), found - 0.5, found + 0.5):
        assert mean_huber(found) <= mean_huber(other) + 1e-6


def test_a_metric_without_a_best_constant_borrows_the_loss_one():
    constant = constant_for("pearson_correlation", "regression", NUMBERS, 1, "mae")
    assert constant.value == [float(np.median(NUMBERS))] and "the loss's constant" in constant.rule


def test_scores_match_the_formulas_on_the_validation_rows(tmp_path):
    make_binary_csv(tmp_path / "data.csv", rows=200)
    spec = load_spec(write_spec(tmp_path, binary_spec(metrics=["binary_accuracy", "mse", "mae", "auc"])))
    data = prepare(spec.data, spec.seed, spec.training.loss)
    entries = baseline(spec, data)
    p = float(np.mean(data.y_train))
    y = data.y_valid.astype("float64")
    majority = 1.0 if p >= 0.5 else 0.0
    values = entries["baseline"]
    assert values["loss"] == pytest.approx(-np.mean(y * np.log(p) + (1 - y) * np.log(1 - p)), rel=1e-5)
    assert values["binary_accuracy"] == pytest.approx(np.mean(y == majority))
    assert values["mse"] == pytest.approx(np.mean((y - p) ** 2), rel=1e-5)
    assert values["mae"] == pytest.approx(np.mean(np.abs(y - float(np.median(data.y_train)))), rel=1e-5)
    assert values["auc"] == pytest.approx(0.5)
    constants = entries["baseline_constants"]
    assert constants["loss"] == {"predict": pytest.approx(p), "rule": "the positive rate of the training rows"}
    assert constants["binary_accuracy"]["predict"] == majority


def test_regression_and_multiclass_baselines_of_the_bundled_configs():
    for config, check in (
        ("01_single_neuron.yaml", lambda d: np.mean(np.abs(d.y_valid - np.median(d.y_train)))),
        (
            "07_multiclass_wine.yaml",
            lambda d: -np.mean(np.log((np.bincount(d.y_train, minlength=3) / len(d.y_train))[d.y_valid])),
        ),
    ):
        spec = load_spec(CONFIGS / config)
        data = prepare(spec.data, spec.seed, spec.training.loss)
        assert baseline(spec, data)["baseline"]["loss"] == pytest.approx(check(data), rel=1e-5), config


def test_a_metric_keras_cannot_compute_on_the_targets_scores_none_and_the_others_still_score(tmp_path, monkeypatch):
    from dlrun.training import fit

    make_binary_csv(tmp_path / "data.csv")
    spec = load_spec(write_spec(tmp_path, binary_spec(metrics=["binary_accuracy", "binary_crossentropy"])))
    data = prepare(spec.data, spec.seed, spec.training.loss)
    scores = score(spec, [0.5], data.y_valid)
    assert scores["binary_crossentropy"] == pytest.approx(np.log(2), rel=1e-5)  # targets reach Keras as (rows, 1)

    built = fit.keras_metric

    def failing(keras, metric, task):  # a metric Keras cannot compute on these targets
        if metric.name != "binary_crossentropy":
            return built(keras, metric, task)

        class Fails(keras.metrics.Metric):
            def update_state(self, *args, **kwargs):
                raise ValueError("shapes do not match")

            def result(self):
                return 0.0

        return Fails(name="binary_crossentropy")

    monkeypatch.setattr(fit, "keras_metric", failing)
    scores = score(spec, [0.5], data.y_valid)
    assert scores["binary_crossentropy"] is None
    assert scores["loss"] == pytest.approx(np.log(2), rel=1e-5) and scores["binary_accuracy"] is not None
