"""dlrun's tables of Keras names match what Keras itself resolves, so they cannot drift apart."""

from __future__ import annotations

import inspect
import itertools
import re

import numpy as np
import pytest

from dlrun.backend import import_keras
from dlrun.spec import names
from dlrun.spec.models import OPTIMIZER_MODELS, TrainingSpec

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


def test_optimizer_classes_match_keras():
    assert {name: type(keras.optimizers.get(name)).__name__ for name in names.OPTIMIZERS} == names.OPTIMIZER_CLASSES


def _argument_doc(name: str, key: str) -> str:
    """Return what Keras's docstring of the optimizer (or of the shared arguments) says about one argument."""
    doc = type(keras.optimizers.get(name)).__doc__ + "\n        " + optimizers.optimizer.base_optimizer_keyword_args
    match = re.search(rf"^\s+{key}:(.*?)(?=^\s+\w+:|\Z)", doc, re.S | re.M)
    assert match, (name, key)
    return " ".join(match.group(1).split())


def test_optimizer_argument_types_match_kerass_docs():
    for name, arguments in names.OPTIMIZERS.items():
        for key in set(arguments) & set(names.OPTIMIZER_ARGUMENT_TYPES):
            words = {"int": r"\b(int|integer|number of)\b", "list[str]": r"\blist of strings\b"}
            doc = _argument_doc(name, key)
            assert re.search(words[names.OPTIMIZER_ARGUMENT_TYPES[key]], doc, re.I), (name, key, doc)


def _config(optimizer) -> dict:
    """Return a Keras optimizer's configuration, less its generated unique name (adam_3)."""
    return {k: v for k, v in optimizer.get_config().items() if k != "name"}


def _built(optimizer):
    return type(keras.optimizers.get(optimizer.name))(**optimizer.kwargs())


@pytest.mark.parametrize("name", sorted(names.OPTIMIZERS))
def test_spec_optimizers_build_what_keras_builds_by_name(name):
    model = OPTIMIZER_MODELS[name]
    assert _config(_built(model(name=name))) == _config(keras.optimizers.get(name))
    explicit = model(name=name, **names.OPTIMIZERS[name])  # every argument spelled out at its default
    assert _config(_built(explicit)) == _config(keras.optimizers.get(name))


def test_whole_numbers_reach_keras_as_the_types_it_checks():
    # SGD refuses an int momentum, and the base optimizer an int learning rate; a spec may write either.
    optimizer = TrainingSpec.model_validate(
        {"loss": "mse", "epochs": 1, "optimizer": {"name": "sgd", "learning_rate": 1, "momentum": 1}}
    ).optimizer
    config = _config(_built(optimizer))
    assert (config["learning_rate"], config["momentum"]) == (1.0, 1.0)


@pytest.mark.parametrize("name", sorted(names.OPTIMIZERS))
def test_optimizer_ranges_are_kerass(name):
    cls = type(keras.optimizers.get(name))
    ranges = {**names.OPTIMIZER_RANGES["*"], **names.OPTIMIZER_RANGES.get(name, {})}
    for key, bounds in ranges.items():
        number = int if names.OPTIMIZER_ARGUMENT_TYPES.get(key) == "int" else float
        for bound, value in bounds.items():
            cls(use_ema=True, **{key: number(value)})  # the bound itself is fine
            with pytest.raises(ValueError):
                cls(use_ema=True, **{key: number(value - 1 if bound == "ge" else value + 1)})


def test_keras_takes_one_clipping_argument():
    for pair in itertools.combinations(names.OPTIMIZER_CLIPPING, 2):
        with pytest.raises(ValueError, match="Only one of"):
            keras.optimizers.SGD(**dict.fromkeys(pair, 1.0))
