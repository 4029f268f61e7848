"""dlrun's tables of Keras names match what Keras itself resolves, so they cannot drift apart."""

from __future__ import annotations

import inspect
import itertools
import re

import numpy as np
import pytest

from dlrun.backend import import_keras
from dlrun.spec import names
from dlrun.spec.models import (
    METRIC_MODELS,
    OPTIMIZER_MODELS,
    SCHEDULE_MODELS,
    ReduceLROnPlateauSpec,
    TensorBoardSpec,
    TrainingSpec,
)

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


# --- learning-rate schedules, metrics with arguments, callbacks ----------------------------------


def _signature(cls, left_out=("self", "name", "dtype", "kwargs")) -> dict:
    """Return a Keras class's keyword arguments and defaults; REQUIRED where there is no default."""
    parameters = inspect.signature(cls.__init__).parameters
    return {
        key: names.REQUIRED if p.default is p.empty else p.default
        for key, p in parameters.items()
        if key not in left_out
    }


def test_schedules_are_kerass_with_their_arguments_and_defaults():
    schedules = keras.optimizers.schedules
    exported = {
        name
        for name in dir(schedules)
        if isinstance(getattr(schedules, name), type)
        and issubclass(getattr(schedules, name), schedules.LearningRateSchedule)
        and getattr(schedules, name) is not schedules.LearningRateSchedule
    }
    assert set(names.SCHEDULE_CLASSES.values()) == exported
    assert set(names.SCHEDULE_CLASSES) == set(names.SCHEDULES)
    for name, arguments in names.SCHEDULES.items():
        assert _signature(getattr(schedules, names.SCHEDULE_CLASSES[name])) == arguments, name


@pytest.mark.parametrize("name", sorted(names.SCHEDULES))
def test_spec_schedules_build_kerass_schedule(name):
    given = {
        "initial_learning_rate": 0.1,
        "decay_steps": 10,
        "first_decay_steps": 10,
        "decay_rate": 0.5,
        "boundaries": [5, 10],
        "values": [0.1, 0.01, 0.001],
    }
    given = {key: value for key, value in given.items() if key in names.SCHEDULES[name]}
    model = SCHEDULE_MODELS[name](name=name, **given)
    assert model.kwargs() == given  # what the spec gave, no more: Keras fills in its own defaults
    built = getattr(keras.optimizers.schedules, model.keras_class)(**model.kwargs())
    assert float(built(6)) < float(built(0)) == pytest.approx(0.1)


def test_schedule_step_counts_are_kerass_checks():
    # Keras refuses a decay_steps of 0 and a values list that does not fit boundaries, as the spec does.
    with pytest.raises(ValueError, match="decay_steps"):
        keras.optimizers.schedules.ExponentialDecay(0.1, 0, 0.5)
    with pytest.raises(ValueError, match="length of boundaries"):
        keras.optimizers.schedules.PiecewiseConstantDecay([10], [0.1, 0.01, 0.001])


def test_metric_classes_and_arguments_match_keras():
    assert set(names.METRIC_CLASSES) == set(names.METRICS) == set(names.METRIC_ARGUMENTS)
    for name, class_name in names.METRIC_CLASSES.items():
        cls = metrics.ALL_OBJECTS_DICT[name]
        assert cls is getattr(keras.metrics, class_name), name
        actual = _signature(cls)
        actual = {k: list(v) if isinstance(v, tuple) else v for k, v in actual.items()}
        assert actual == names.METRIC_ARGUMENTS[name], name


def _valid(name: str, key: str, default):
    """A value Keras takes for a metric argument, other than its default where one is easy to name."""
    kind = names.METRIC_ARGUMENT_TYPES.get(f"{name}.{key}", names.METRIC_ARGUMENT_TYPES.get(key, "float"))
    if key in names.METRIC_CHOICES:
        return names.METRIC_CHOICES[key][-1]
    if isinstance(default, bool):
        return not default
    examples = {"num_thresholds": 50, "num_labels": 1, "label_weights": [1.0], "target_class_ids": [1], "axis": -1}
    examples |= {"top_k": 1, "class_id": 0, "num_regressors": 2, "ignore_class": 0, "k": 2, "beta": 2.0}
    if key in examples:
        return examples[key]
    if kind.startswith("list[float]"):
        return [0.3, 0.7]
    return 0.3


@pytest.mark.parametrize("name", sorted(names.METRICS))
def test_every_metric_argument_reaches_kerass_class(name):
    arguments = names.METRIC_ARGUMENTS[name]
    given = {key: _valid(name, key, default) for key, default in arguments.items()}
    if "num_labels" in given:
        given["multi_label"] = True
    model = METRIC_MODELS[name](name=name, **given)
    metric = getattr(keras.metrics, names.METRIC_CLASSES[name])(name=model.column_name, **model.kwargs())
    config = {**getattr(metric, "_fn_kwargs", {}), **metric.get_config()}  # a wrapped function keeps its kwargs
    for key, value in given.items():
        if name == "auc" and key == "num_thresholds":
            continue  # given thresholds replace num_thresholds, as the argument's description says
        kept = config[key] if key in config else getattr(metric, key)
        if isinstance(value, list):
            assert list(np.ravel(kept)) == pytest.approx(value), (name, key, kept)
        else:
            assert kept == value, (name, key, kept)


def test_metric_choices_are_what_keras_accepts():
    builders = {
        "curve": lambda v: keras.metrics.AUC(curve=v),
        "summation_method": lambda v: keras.metrics.AUC(summation_method=v),
        "average": lambda v: keras.metrics.F1Score(average=v),
        "class_aggregation": lambda v: keras.metrics.R2Score(class_aggregation=v),
    }
    assert set(builders) == set(names.METRIC_CHOICES)
    for key, build in builders.items():
        for choice in names.METRIC_CHOICES[key]:
            build(choice)
        with pytest.raises(ValueError):
            build("nonsense")


@pytest.mark.parametrize("key", sorted(names.METRIC_RANGES))
def test_metric_ranges_are_kerass(key):
    metric, _, argument = key.rpartition(".")
    metric = metric or next(
        name
        for name, arguments in names.METRIC_ARGUMENTS.items()
        if argument in arguments and f"{name}.{argument}" not in names.METRIC_RANGES
    )
    cls = getattr(keras.metrics, names.METRIC_CLASSES[metric])
    number = int if names.METRIC_ARGUMENT_TYPES.get(argument) == "int" else float
    for bound, value in names.METRIC_RANGES[key].items():
        inside = {"ge": value, "le": value, "gt": value + 1, "lt": value - 1}[bound]
        outside = {"ge": value - 1, "le": value + 1, "gt": value, "lt": value}[bound]
        cls(**{argument: number(inside)})
        with pytest.raises(ValueError):
            cls(**{argument: number(outside)})


def _score(name: str, y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """Score predictions with the metric Keras compiles for `name` (accuracy: sparse for several outputs)."""
    metric = keras.metrics.SparseCategoricalAccuracy() if name == "accuracy" else keras.metrics.get(name)
    metric = metric if isinstance(metric, keras.metrics.Metric) else keras.metrics.MeanMetricWrapper(metric)
    metric.update_state(y_true, y_pred)
    return float(np.ravel(keras.ops.convert_to_numpy(metric.result()))[0])


def test_class_id_metrics_are_the_ones_keras_scores_on_class_ids():
    ids = np.array([0, 1, 2, 1, 0, 2], dtype="int32")
    softmax = np.random.default_rng(0).dirichlet(np.ones(3), size=6).astype("float32")
    for name in sorted(names.METRICS):
        if name in names.CLASS_ID_METRICS:
            assert np.isfinite(_score(name, ids, softmax)), name
        elif name in names.ONE_HOT_METRICS:
            continue  # Keras runs them on class ids, reading the ids as one-hot rows: checked below
        else:
            with pytest.raises(Exception):  # noqa: B017 (shape errors of several kinds)
                _score(name, ids, softmax)
    # categorical_accuracy reads the class ids as one one-hot row: right predictions score 1/3, not 1.
    right = (np.eye(3)[ids] * 0.9 + 0.1 / 3).astype("float32")
    assert _score("sparse_categorical_accuracy", ids, right) == 1.0
    assert _score("categorical_accuracy", ids, right) == pytest.approx(1 / 3)


def test_reduce_lr_on_plateau_and_tensorboard_specs_are_kerass_arguments():
    plateau = _signature(keras.callbacks.ReduceLROnPlateau, ("self", "verbose", "kwargs"))
    assert {key: field.default for key, field in ReduceLROnPlateauSpec.model_fields.items()} == plateau
    board = _signature(keras.callbacks.TensorBoard, ("self",))
    ours = {key: field.default for key, field in TensorBoardSpec.model_fields.items()}
    assert set(board) - set(ours) == {"log_dir", "embeddings_freq", "embeddings_metadata"}  # dlrun's; no embeddings
    assert ours == {key: board[key] for key in ours}
