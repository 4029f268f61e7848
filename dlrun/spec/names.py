"""The Keras names a spec may use, known without importing TensorFlow.

`tests/test_names.py` compares every table here with Keras's own registries, so they cannot drift.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable

ACTIVATIONS = frozenset(
    {
        "celu",
        "elu",
        "exponential",
        "gelu",
        "hard_shrink",
        "hard_sigmoid",
        "hard_silu",
        "hard_swish",
        "hard_tanh",
        "leaky_relu",
        "linear",
        "log_sigmoid",
        "log_softmax",
        "mish",
        "relu",
        "relu6",
        "selu",
        "sigmoid",
        "silu",
        "soft_shrink",
        "softmax",
        "softplus",
        "softsign",
        "sparse_plus",
        "sparse_sigmoid",
        "sparsemax",
        "squareplus",
        "swish",
        "tanh",
        "tanh_shrink",
    }
)

INITIALIZERS = frozenset(
    {
        "glorot_normal",
        "glorot_uniform",
        "he_normal",
        "he_uniform",
        "identity",
        "lecun_normal",
        "lecun_uniform",
        "normal",
        "one",
        "ones",
        "orthogonal",
        "random_normal",
        "random_uniform",
        "truncated_normal",
        "uniform",
        "variance_scaling",
        "zero",
        "zeros",
    }
)

LOSSES = frozenset(
    {
        "bce",
        "binary_crossentropy",
        "binary_focal_crossentropy",
        "categorical_crossentropy",
        "categorical_focal_crossentropy",
        "categorical_hinge",
        "circle",
        "cosine_similarity",
        "ctc",
        "dice",
        "hinge",
        "huber",
        "kl_divergence",
        "kld",
        "log_cosh",
        "mae",
        "mape",
        "mean_absolute_error",
        "mean_absolute_percentage_error",
        "mean_squared_error",
        "mean_squared_logarithmic_error",
        "mse",
        "msle",
        "poisson",
        "sparse_categorical_crossentropy",
        "squared_hinge",
        "tversky",
    }
)

# What a loss makes of the one target column: two classes (0/1 or two labels), or class ids for a
# softmax; every other loss predicts a number.
BINARY_LOSSES = ("binary_crossentropy", "bce", "binary_focal_crossentropy")
CLASS_LOSSES = ("sparse_categorical_crossentropy",)


def task_of(loss: str) -> str:
    """Return regression, binary or multiclass: what the loss makes of the target column."""
    if loss in CLASS_LOSSES:
        return "multiclass"
    return "binary" if loss in BINARY_LOSSES else "regression"


# Metric name -> which way is better ("max"/"min"), from each Keras metric's `_direction`;
# None where Keras does not say (counts), so early stopping on it needs an explicit mode.
METRICS: dict[str, str | None] = {
    "accuracy": "max",
    "auc": "max",
    "bce": "min",
    "binary_accuracy": "max",
    "binary_crossentropy": "min",
    "binary_io_u": "max",
    "categorical_accuracy": "max",
    "categorical_crossentropy": "min",
    "categorical_hinge": "min",
    "concordance_correlation": "max",
    "cosine_similarity": "max",
    "f1_score": "max",
    "f_beta_score": "max",
    "false_negatives": None,
    "false_positives": None,
    "hinge": "min",
    "kl_divergence": "min",
    "log_cosh_error": "min",
    "mae": "min",
    "mape": "min",
    "mean_absolute_error": "min",
    "mean_absolute_percentage_error": "min",
    "mean_squared_error": "min",
    "mean_squared_logarithmic_error": "min",
    "mse": "min",
    "msle": "min",
    "pearson_correlation": "max",
    "poisson": "min",
    "precision": "max",
    "r2_score": "max",
    "recall": "max",
    "root_mean_squared_error": "min",
    "sparse_categorical_accuracy": "max",
    "sparse_categorical_crossentropy": "min",
    "sparse_top_k_categorical_accuracy": "max",
    "squared_hinge": "min",
    "top_k_categorical_accuracy": "max",
    "true_negatives": None,
    "true_positives": None,
}

_COMMON_OPTIMIZER_ARGS = {
    "weight_decay": None,
    "clipnorm": None,
    "clipvalue": None,
    "global_clipnorm": None,
    "use_ema": False,
    "ema_momentum": 0.99,
    "ema_overwrite_frequency": None,
    "loss_scale_factor": None,
    "gradient_accumulation_steps": None,
}

# Optimizer name -> its keyword arguments and their Keras defaults.
OPTIMIZERS: dict[str, dict[str, object]] = {
    "adadelta": {"learning_rate": 0.001, "rho": 0.95, "epsilon": 1e-07, **_COMMON_OPTIMIZER_ARGS},
    "adafactor": {
        "learning_rate": 0.001,
        "beta_2_decay": -0.8,
        "epsilon_1": 1e-30,
        "epsilon_2": 0.001,
        "clip_threshold": 1.0,
        "relative_step": True,
        **_COMMON_OPTIMIZER_ARGS,
    },
    "adagrad": {
        "learning_rate": 0.001,
        "initial_accumulator_value": 0.1,
        "epsilon": 1e-07,
        **_COMMON_OPTIMIZER_ARGS,
    },
    "adam": {
        "learning_rate": 0.001,
        "beta_1": 0.9,
        "beta_2": 0.999,
        "epsilon": 1e-07,
        "amsgrad": False,
        **_COMMON_OPTIMIZER_ARGS,
    },
    "adamax": {
        "learning_rate": 0.001,
        "beta_1": 0.9,
        "beta_2": 0.999,
        "epsilon": 1e-07,
        **_COMMON_OPTIMIZER_ARGS,
    },
    "adamw": {
        "learning_rate": 0.001,
        "beta_1": 0.9,
        "beta_2": 0.999,
        "epsilon": 1e-07,
        "amsgrad": False,
        **_COMMON_OPTIMIZER_ARGS,
        "weight_decay": 0.004,
    },
    "ftrl": {
        "learning_rate": 0.001,
        "learning_rate_power": -0.5,
        "initial_accumulator_value": 0.1,
        "l1_regularization_strength": 0.0,
        "l2_regularization_strength": 0.0,
        "l2_shrinkage_regularization_strength": 0.0,
        "beta": 0.0,
        **_COMMON_OPTIMIZER_ARGS,
    },
    "lion": {"learning_rate": 0.001, "beta_1": 0.9, "beta_2": 0.99, **_COMMON_OPTIMIZER_ARGS},
    "muon": {
        "learning_rate": 0.001,
        "adam_beta_1": 0.9,
        "adam_beta_2": 0.999,
        "adam_weight_decay": 0.004,
        "epsilon": 1e-07,
        **_COMMON_OPTIMIZER_ARGS,
        "weight_decay": 0.004,
        "exclude_layers": None,
        "exclude_embeddings": True,
        "muon_a": 3.4445,
        "muon_b": -4.775,
        "muon_c": 2.0315,
        "adam_lr_ratio": 1,
        "momentum": 0.95,
        "ns_steps": 5,
        "nesterov": True,
        "rms_rate": 0.2,
    },
    "nadam": {
        "learning_rate": 0.001,
        "beta_1": 0.9,
        "beta_2": 0.999,
        "epsilon": 1e-07,
        **_COMMON_OPTIMIZER_ARGS,
    },
    "rmsprop": {
        "learning_rate": 0.001,
        "rho": 0.9,
        "momentum": 0.0,
        "epsilon": 1e-07,
        "centered": False,
        **_COMMON_OPTIMIZER_ARGS,
    },
    "schedulefreeadamw": {
        "learning_rate": 0.0025,
        "beta_1": 0.9,
        "beta_2": 0.999,
        "epsilon": 1e-08,
        "warmup_steps": 0,
        **_COMMON_OPTIMIZER_ARGS,
    },
    "sgd": {"learning_rate": 0.01, "momentum": 0.0, "nesterov": False, **_COMMON_OPTIMIZER_ARGS},
}

# Optimizer name -> its Keras class, for the docs of each optimizer's spec model.
OPTIMIZER_CLASSES = {
    "adadelta": "Adadelta",
    "adafactor": "Adafactor",
    "adagrad": "Adagrad",
    "adam": "Adam",
    "adamax": "Adamax",
    "adamw": "AdamW",
    "ftrl": "Ftrl",
    "lion": "Lion",
    "muon": "Muon",
    "nadam": "Nadam",
    "rmsprop": "RMSprop",
    "schedulefreeadamw": "ScheduleFreeAdamW",
    "sgd": "SGD",
}

# The optimizer arguments whose type their Keras default does not tell: counts of steps (Keras wants an
# int, default 5 or None) and a list of names. Every other argument is a bool where its default is one,
# else a float (`adam_lr_ratio` defaults to 1 but is a ratio).
OPTIMIZER_ARGUMENT_TYPES = {
    "ema_overwrite_frequency": "int",
    "gradient_accumulation_steps": "int",
    "ns_steps": "int",
    "warmup_steps": "int",
    "exclude_layers": "list[str]",
}

# The ranges Keras's optimizer constructors enforce (they raise ValueError outside them), as pydantic
# bounds, so `dlrun validate` finds what training would fail on; "*" holds those of every optimizer.
# Keras checks the EMA arguments only with use_ema=True, and lets a falsy 0 through; a spec does not.
OPTIMIZER_RANGES: dict[str, dict[str, dict[str, float]]] = {
    "*": {
        "ema_momentum": {"ge": 0, "le": 1},
        "ema_overwrite_frequency": {"ge": 0},
        "gradient_accumulation_steps": {"ge": 2},
    },
    "sgd": {"momentum": {"ge": 0, "le": 1}},
    "ftrl": {
        "learning_rate_power": {"le": 0},
        "initial_accumulator_value": {"ge": 0},
        "l1_regularization_strength": {"ge": 0},
        "l2_regularization_strength": {"ge": 0},
        "l2_shrinkage_regularization_strength": {"ge": 0},
    },
}

# Keras clips gradients one way: an optimizer takes at most one of these.
OPTIMIZER_CLIPPING = ("clipnorm", "clipvalue", "global_clipnorm")


# --- learning-rate schedules ------------------------------------------------------------------

REQUIRED = ...
"""Marks a Keras argument without a default: the spec must give it."""

# Schedule name (Keras 2's `tf.compat.v1.train` function names, snake_case) -> its keyword arguments
# and their Keras defaults, less `name` (the TensorFlow op name). Every step count is in optimizer steps,
# one per batch, counted over the whole fit.
SCHEDULES: dict[str, dict[str, object]] = {
    "cosine_decay": {
        "initial_learning_rate": REQUIRED,
        "decay_steps": REQUIRED,
        "alpha": 0.0,
        "warmup_target": None,
        "warmup_steps": 0,
    },
    "cosine_decay_restarts": {
        "initial_learning_rate": REQUIRED,
        "first_decay_steps": REQUIRED,
        "t_mul": 2.0,
        "m_mul": 1.0,
        "alpha": 0.0,
    },
    "exponential_decay": {
        "initial_learning_rate": REQUIRED,
        "decay_steps": REQUIRED,
        "decay_rate": REQUIRED,
        "staircase": False,
    },
    "inverse_time_decay": {
        "initial_learning_rate": REQUIRED,
        "decay_steps": REQUIRED,
        "decay_rate": REQUIRED,
        "staircase": False,
    },
    "piecewise_constant": {"boundaries": REQUIRED, "values": REQUIRED},
    "polynomial_decay": {
        "initial_learning_rate": REQUIRED,
        "decay_steps": REQUIRED,
        "end_learning_rate": 0.0001,
        "power": 1.0,
        "cycle": False,
    },
}

# Schedule name -> its class in `keras.optimizers.schedules`.
SCHEDULE_CLASSES = {
    "cosine_decay": "CosineDecay",
    "cosine_decay_restarts": "CosineDecayRestarts",
    "exponential_decay": "ExponentialDecay",
    "inverse_time_decay": "InverseTimeDecay",
    "piecewise_constant": "PiecewiseConstantDecay",
    "polynomial_decay": "PolynomialDecay",
}

# The schedule arguments whose type their Keras default does not tell; every other one is a bool where
# its default is one, else a float.
SCHEDULE_ARGUMENT_TYPES = {
    "decay_steps": "int",
    "first_decay_steps": "int",
    "warmup_steps": "int",
    "boundaries": "list[int]",
    "values": "list[float]",
}

# Ranges of the schedule arguments: the step counts Keras checks (> 0), and learning rates above 0 as
# for an optimizer's learning_rate; rates and multipliers that would make the learning rate negative or
# grow without bound are refused too.
SCHEDULE_RANGES: dict[str, dict[str, float]] = {
    "initial_learning_rate": {"gt": 0},
    "decay_steps": {"gt": 0},
    "first_decay_steps": {"gt": 0},
    "warmup_steps": {"ge": 0},
    "warmup_target": {"gt": 0},
    "alpha": {"ge": 0, "le": 1},
    "end_learning_rate": {"ge": 0},
    "decay_rate": {"gt": 0},
    "power": {"gt": 0},
    "t_mul": {"gt": 0},
    "m_mul": {"gt": 0},
}

# The schedule arguments counted in optimizer steps, which `dlrun check` converts to epochs.
SCHEDULE_STEP_ARGUMENTS = ("decay_steps", "first_decay_steps", "warmup_steps", "boundaries")

# --- metrics with arguments ------------------------------------------------------------------

# Metric name -> its class in `keras.metrics` (the one Keras builds for the name).
METRIC_CLASSES = {
    "accuracy": "Accuracy",
    "auc": "AUC",
    "bce": "BinaryCrossentropy",
    "binary_accuracy": "BinaryAccuracy",
    "binary_crossentropy": "BinaryCrossentropy",
    "binary_io_u": "BinaryIoU",
    "categorical_accuracy": "CategoricalAccuracy",
    "categorical_crossentropy": "CategoricalCrossentropy",
    "categorical_hinge": "CategoricalHinge",
    "concordance_correlation": "ConcordanceCorrelation",
    "cosine_similarity": "CosineSimilarity",
    "f1_score": "F1Score",
    "f_beta_score": "FBetaScore",
    "false_negatives": "FalseNegatives",
    "false_positives": "FalsePositives",
    "hinge": "Hinge",
    "kl_divergence": "KLDivergence",
    "log_cosh_error": "LogCoshError",
    "mae": "MeanAbsoluteError",
    "mape": "MeanAbsolutePercentageError",
    "mean_absolute_error": "MeanAbsoluteError",
    "mean_absolute_percentage_error": "MeanAbsolutePercentageError",
    "mean_squared_error": "MeanSquaredError",
    "mean_squared_logarithmic_error": "MeanSquaredLogarithmicError",
    "mse": "MeanSquaredError",
    "msle": "MeanSquaredLogarithmicError",
    "pearson_correlation": "PearsonCorrelation",
    "poisson": "Poisson",
    "precision": "Precision",
    "r2_score": "R2Score",
    "recall": "Recall",
    "root_mean_squared_error": "RootMeanSquaredError",
    "sparse_categorical_accuracy": "SparseCategoricalAccuracy",
    "sparse_categorical_crossentropy": "SparseCategoricalCrossentropy",
    "sparse_top_k_categorical_accuracy": "SparseTopKCategoricalAccuracy",
    "squared_hinge": "SquaredHinge",
    "top_k_categorical_accuracy": "TopKCategoricalAccuracy",
    "true_negatives": "TrueNegatives",
    "true_positives": "TruePositives",
}

_CROSSENTROPY = {"from_logits": False, "label_smoothing": 0}
_CONFUSION = {"thresholds": None}

# Metric name -> the keyword arguments of its Keras class and their Keras defaults, less `name` and
# `dtype` (a metric's column is `column`, see the spec).
METRIC_ARGUMENTS: dict[str, dict[str, object]] = {
    **{name: {} for name in METRIC_CLASSES},
    "auc": {
        "num_thresholds": 200,
        "curve": "ROC",
        "summation_method": "interpolation",
        "thresholds": None,
        "multi_label": False,
        "num_labels": None,
        "label_weights": None,
        "from_logits": False,
    },
    "bce": _CROSSENTROPY,
    "binary_accuracy": {"threshold": 0.5},
    "binary_crossentropy": _CROSSENTROPY,
    "binary_io_u": {"target_class_ids": [0, 1], "threshold": 0.5},
    "categorical_crossentropy": {**_CROSSENTROPY, "axis": -1},
    "concordance_correlation": {"axis": -1},
    "cosine_similarity": {"axis": -1},
    "f1_score": {"average": None, "threshold": None},
    "f_beta_score": {"average": None, "beta": 1.0, "threshold": None},
    "false_negatives": _CONFUSION,
    "false_positives": _CONFUSION,
    "pearson_correlation": {"axis": -1},
    "precision": {"thresholds": None, "top_k": None, "class_id": None},
    "r2_score": {"class_aggregation": "uniform_average", "num_regressors": 0},
    "recall": {"thresholds": None, "top_k": None, "class_id": None},
    "sparse_categorical_crossentropy": {"from_logits": False, "ignore_class": None, "axis": -1},
    "sparse_top_k_categorical_accuracy": {"k": 5, "from_sorted_ids": False},
    "top_k_categorical_accuracy": {"k": 5},
    "true_negatives": _CONFUSION,
    "true_positives": _CONFUSION,
}

# Where dlrun's default differs from Keras's, so that the metric is one number per epoch for a model
# with one output: F-scores average over the outputs (Keras's None gives one value per output) and
# mark a row positive above 0.5 (Keras's None marks the largest output of each row, which for a single
# output is every row).
METRIC_DEFAULTS = {
    "f1_score": {"average": "micro", "threshold": 0.5},
    "f_beta_score": {"average": "micro", "threshold": 0.5},
}

# The metric arguments whose type their Keras default does not tell ("metric.argument" for one
# metric's own); every other one is a bool where its default is one, else a float. A list of
# thresholds, or no average, would log a list of values per epoch, which history.csv cannot hold.
METRIC_ARGUMENT_TYPES = {
    "num_thresholds": "int",
    "num_labels": "int | None",
    "auc.thresholds": "list[float] | None",
    "thresholds": "float | None",
    "label_weights": "list[float] | None",
    "target_class_ids": "list[int]",
    "axis": "int",
    "top_k": "int | None",
    "class_id": "int | None",
    "num_regressors": "int",
    "ignore_class": "int | None",
    "k": "int",
    "threshold": "float",
    "f1_score.threshold": "float",
    "f_beta_score.threshold": "float",
}

# The text arguments and their choices, as Keras's constructors accept them.
METRIC_CHOICES = {
    "curve": ("ROC", "PR"),
    "summation_method": ("interpolation", "minoring", "majoring"),
    "average": ("micro", "macro", "weighted"),
    "class_aggregation": ("uniform_average", "variance_weighted_average"),
}

# The ranges Keras's metric constructors enforce (they raise ValueError outside them), as pydantic
# bounds; "metric.argument" for one metric's own (AUC takes any thresholds: with from_logits they are logits).
METRIC_RANGES: dict[str, dict[str, float]] = {
    "num_thresholds": {"gt": 1},
    "thresholds": {"ge": 0, "le": 1},
    "auc.thresholds": {},
    "beta": {"gt": 0},
    "f1_score.threshold": {"gt": 0, "le": 1},
    "f_beta_score.threshold": {"gt": 0, "le": 1},
}

# The metrics that read class ids (sparse_categorical_crossentropy's targets) against one output per
# class; every other metric compares each output with a target of the same width (one output: a number
# or 0/1), so it cannot score a softmax over class ids, and these cannot score one output.
CLASS_ID_METRICS = frozenset(
    {"accuracy", "sparse_categorical_accuracy", "sparse_categorical_crossentropy", "sparse_top_k_categorical_accuracy"}
)
ANY_OUTPUT_METRICS = frozenset({"accuracy"})
"""Metrics Keras adapts to the output: `accuracy` is binary for one output, sparse categorical for several."""
ONE_HOT_METRICS = frozenset(
    {"categorical_accuracy", "categorical_crossentropy", "categorical_hinge", "top_k_categorical_accuracy"}
)
"""Metrics that read one-hot targets, which dlrun never feeds (class ids, or one target column)."""

# Old or short spellings that string similarity cannot find (Keras 2's `lr`, for instance).
ALIASES = {
    "lr": "learning_rate",
    "acc": "accuracy",
    "bn": "batch_normalization",
    "batchnorm": "batch_normalization",
    "batch_norm": "batch_normalization",
    "fc": "dense",
    "linear": "dense",
}


def closest(name: str, choices: Iterable[str]) -> str | None:
    """Return the valid name closest to a misspelled one, or None when nothing is close."""
    choices = list(choices)
    if ALIASES.get(name) in choices:
        return ALIASES[name]
    matches = difflib.get_close_matches(name, sorted(choices), n=1, cutoff=0.6)
    return matches[0] if matches else None


FEW = 15  # up to this many valid names are listed in full even when one of them is suggested


def unknown_name(kind: str, name: object, choices: Iterable[str]) -> str:
    """Say that `name` is not a known `kind`, suggest the closest one, and list a few valid ones."""
    choices = sorted(choices)
    guess = closest(name, choices) if isinstance(name, str) else None
    if guess and len(choices) > FEW:
        return f"unknown {kind} {name!r}. Did you mean {guess!r}? (`dlrun schema` lists every valid name)"
    hint = f" Did you mean {guess!r}?" if guess else ""
    return f"unknown {kind} {name!r}.{hint} Expected one of: {', '.join(choices)}"
