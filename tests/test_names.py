"""dlrun's tables of Keras names match what Keras itself resolves, so they cannot drift apart."""

from __future__ import annotations

import inspect

import numpy as np
import pytest

from dlrun.backend import import_keras
from dlrun.spec import names

keras = import_keras()
from keras.src import activations, initializers, losses, metrics, optimizers  # noqa: E402

# Registry entries that exist but cannot be used by name alone (they need arguments or are base classes).
NOT_BY_NAME = {
    "optimizers": {"lossscaleoptimizer", "multioptimizer", "optimizer", "optimizermap"},
    "metrics": {
        "io_u",
        "mean",
        "mean_io_u",
        "mean_metric_wrapper",
        "metric",
        "one_hot_io_u",
        "one_hot_mean_io_u",
        "precision_at_recall",
        "recall_at_precision",
        "sensitivity_at_specificity",
        "specificity_at_sensitivity",
        "sum",
    },
    "initializers": {"constant", "initializer", "stft"},
    # threshold needs arguments; glu halves the width, which Keras's Dense does not account for in
    # its output shape, so any layer after it is built for the wrong width.
    "activations": {"threshold", "glu"},
    "losses": set(),
}


def registry(module) -> set[str]:
    return {name for name in module.ALL_OBJECTS_DICT if name.islower()}


@pytest.mark.parametrize(
    ("kind", "module", "known"),
    [
        ("activations", activations, names.ACTIVATIONS),
        ("initializers", initializers, names.INITIALIZERS),
        ("losses", losses, names.LOSSES),
        ("metrics", metrics, set(names.METRICS)),
        ("optimizers", optimizers, set(names.OPTIMIZERS)),
    ],
)
def test_known_names_are_exactly_kerass_usable_names(kind, module, known):
    assert set(known) == registry(module) - NOT_BY_NAME[kind]


def test_every_activation_runs_in_a_dense_layer():
    x = np.ones((2, 3), dtype="float32")
    for name in sorted(names.ACTIVATIONS):
        assert keras.layers.Dense(4, activation=name)(x).shape == (2, 4), name


def test_metric_directions_match_keras():
    for name, direction in names.METRICS.items():
        expected = {"up": "max", "down": "min", None: None}[getattr(keras.metrics.get(name), "_direction", None)]
        assert direction == expected, name


def test_optimizer_arguments_and_defaults_match_keras():
    for name, kwargs in names.OPTIMIZERS.items():
        cls = type(keras.optimizers.get(name))
        signature = inspect.signature(cls.__init__).parameters
        actual = {k: p.default for k, p in signature.items() if k not in ("self", "kwargs", "name")}
        assert kwargs == actual, name


def test_closest_suggests_the_intended_name():
    assert names.closest("rellu", names.ACTIVATIONS) == "relu"
    assert names.closest("binary_crosentropy", names.LOSSES) == "binary_crossentropy"
    assert names.closest("zzzz", names.LOSSES) is None
