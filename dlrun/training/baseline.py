"""Baselines: what the best constant prediction scores on the validation rows, in the spec's loss and metrics.

A model is only worth its val_loss if it beats always answering the same thing. Each quantity gets the
constant that is best for it, fitted on the training rows (as a model is):

- the training mean for squared-error losses (mse, root_mean_squared_error, poisson, r2_score);
- the training median for absolute-error losses (mae);
- the class priors for cross-entropies (binary: the positive rate; sparse categorical: each class's
  share), and for `auc` and top-k accuracy, which only rank the classes;
- the majority class for accuracies and the counts of a thresholded prediction (precision, recall, ...);
- for any other loss Keras computes per row (huber, log_cosh, mape, msle, hinge, ...), the constant
  that minimizes it on the training rows, found by a search over the targets' range;
- for the rest (correlations, which a constant leaves undefined), the loss's constant.

The constants are scored with Keras's own loss and metric objects (compiled as `model.compile` would,
so `accuracy` resolves as it does in training), on the validation rows, so the numbers compare with
history.csv's `val_` columns. Imported at the end of training only: it needs TensorFlow.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from dlrun.data.prepare import Prepared, prepare
from dlrun.data.preprocess import task_of
from dlrun.errors import DlrunError
from dlrun.runs.layout import CONFIG, file_sha256
from dlrun.spec.loader import load_spec
from dlrun.spec.models import Spec

MEAN = frozenset({"mse", "mean_squared_error", "root_mean_squared_error", "poisson", "r2_score"})
MEDIAN = frozenset({"mae", "mean_absolute_error"})
PRIOR = frozenset(
    {
        "binary_crossentropy",
        "bce",
        "binary_focal_crossentropy",
        "sparse_categorical_crossentropy",
        "auc",
        "sparse_top_k_categorical_accuracy",
    }
)
MAJORITY = frozenset(
    {
        "accuracy",
        "binary_accuracy",
        "sparse_categorical_accuracy",
        "precision",
        "recall",
        "f1_score",
        "f_beta_score",
        "binary_io_u",
        "true_positives",
        "true_negatives",
        "false_positives",
        "false_negatives",
    }
)
SEARCH_POINTS = 101
"""Candidate constants per round of the search: first the training targets' percentiles, then an even
grid between the best one's neighbours: the constant is found to a hundredth of the gap between two
percentiles when the loss has a single minimum (huber, log_cosh, mape, msle and hinge do)."""


@dataclass
class Constant:
    """One constant prediction and why it is the best for a quantity."""

    value: list[float]
    """The model's output for every row (one number, or one probability per class)."""
    rule: str

    def to_dict(self) -> dict[str, Any]:
        value = self.value[0] if len(self.value) == 1 else self.value
        return {"predict": value, "rule": self.rule}


def baseline(spec: Spec, data: Prepared) -> dict[str, Any]:
    """Return summary.json's `baseline` (quantity -> validation score) and `baseline_constants` entries.

    Streamed CSVs get none (`baseline: null`, with why): it would take another pass over the file.
    """
    if data.stream is not None or data.y_train is None or data.y_valid is None:
        return {"baseline": None, "baseline_constants": {"why_none": "not computed for a streamed CSV"}}
    metrics = {metric.column_name: metric.name for metric in spec.training.metrics}  # history column -> Keras name
    quantities = ["loss", *metrics]
    names = {"loss": spec.training.loss, **metrics}
    task = task_of(spec.training.loss)
    width = output_width(spec)
    chosen = {q: constant_for(names[q], task, data.y_train, width, spec.training.loss) for q in quantities}
    values: dict[str, float | None] = {}
    for value in dict.fromkeys(tuple(c.value) for c in chosen.values()):  # one compile per distinct constant
        scores = score(spec, list(value), data.y_valid)
        for q in quantities:
            if tuple(chosen[q].value) == value:
                values[q] = scores.get(q)
    return {"baseline": values, "baseline_constants": {q: chosen[q].to_dict() for q in quantities}}


def constant_for(name: str, task: str, y: np.ndarray, width: int, loss: str) -> Constant:
    """Return the best constant prediction for one loss or metric, fitted on the training targets `y`."""
    if task == "multiclass":
        return _class_constant(name, y, width)
    y = np.asarray(y, dtype="float64")
    binary = task == "binary"
    if name in MEAN or (binary and name in PRIOR):
        rule = "the positive rate of the training rows" if binary else "the mean of the training targets"
        return Constant([float(np.mean(y))], rule)
    if binary and name in MAJORITY:
        rate = float(np.mean(y))
        return Constant([1.0 if rate >= 0.5 else 0.0], f"the majority class of the training rows ({rate:.0%} are 1)")
    if name in MEDIAN:
        rule = "the median of the training targets" + (" (the majority class)" if binary else "")
        return Constant([float(np.median(y))], rule)
    searched = _search(name, y)
    if searched is not None:
        return Constant([searched], f"the constant that minimizes {name} on the training rows")
    if name != loss:
        own = constant_for(loss, task, y, width, loss)
        return Constant(own.value, f"{own.rule}, the loss's constant: {name} has no best constant of its own")
    return Constant([float(np.mean(y))], "the mean of the training targets")


def _class_constant(name: str, y: np.ndarray, width: int) -> Constant:
    shares = np.bincount(np.asarray(y, dtype="int64"), minlength=width)[:width] / max(len(y), 1)
    if name in MAJORITY:
        top = int(np.argmax(shares))
        return Constant(
            [1.0 if i == top else 0.0 for i in range(width)],
            f"the majority class of the training rows (class {top}, {shares[top]:.0%})",
        )
    return Constant([float(s) for s in shares], "each class's share of the training rows (the class priors)")


def _search(name: str, y: np.ndarray) -> float | None:
    """Minimize a Keras loss over constants on the training targets; None when Keras has no such loss."""
    from dlrun.backend import import_keras

    keras = import_keras()
    try:
        function = keras.losses.get(name)
    except ValueError:
        return None
    if not callable(function) or isinstance(function, type):
        return None
    true = y.reshape(-1, 1).astype("float32")

    def mean_loss(candidate: float) -> float:
        guess = np.full_like(true, candidate)
        return float(np.mean(keras.ops.convert_to_numpy(function(true, guess))))

    grid = np.unique(np.quantile(y, np.linspace(0, 1, SEARCH_POINTS)))
    scores = [mean_loss(c) for c in grid]
    best = int(np.nanargmin(scores))
    low, high = grid[max(best - 1, 0)], grid[min(best + 1, len(grid) - 1)]
    fine = np.linspace(low, high, SEARCH_POINTS)
    scores = [mean_loss(c) for c in fine]
    return float(fine[int(np.nanargmin(scores))])


def score(spec: Spec, constant: list[float], y_valid: np.ndarray) -> dict[str, float | None]:
    """Score one constant prediction on the validation targets with the spec's compiled loss and metrics.

    A metric Keras cannot compute on these targets (it would fail training the same way) scores None,
    and so do the others only if they fail on their own: each is then tried alone.
    """
    metrics = list(spec.training.metrics)
    try:
        return _score(spec.training.loss, metrics, constant, y_valid)
    except Exception:  # noqa: BLE001  (Keras raises ValueError, TypeError or TF errors; the run must still end)
        pass
    results: dict[str, float | None] = {}
    for chosen in ([], *([m] for m in metrics)):
        try:
            results |= _score(spec.training.loss, chosen, constant, y_valid)
        except Exception:  # noqa: BLE001
            results |= {q: None for q in [m.column_name for m in chosen] or ["loss"]}
    return results


def _score(loss: str, metrics: list, constant: list[float], y_valid: np.ndarray) -> dict[str, float | None]:
    """Score a constant with the loss and the spec metrics, each built as training builds it (its column name)."""
    from dlrun.backend import import_keras
    from dlrun.data.preprocess import target_shape
    from dlrun.training.fit import keras_metric

    keras = import_keras()
    task = task_of(loss)
    model = keras.Sequential([keras.Input((1,)), keras.layers.Dense(len(constant))])
    model.compile(loss=loss, metrics=[keras_metric(keras, metric, task) for metric in metrics])
    y_valid = np.asarray(y_valid).reshape(-1, *target_shape(task))
    predictions = np.tile(np.asarray(constant, dtype="float32"), (len(y_valid), 1))
    results = {"loss": model.compute_loss(x=None, y=y_valid, y_pred=predictions)}
    results |= {k: v for k, v in model.compute_metrics(None, y_valid, predictions).items() if k != "loss"}
    return {key: _finite(value) for key, value in results.items()}


def output_width(spec: Spec) -> int:
    return [layer for layer in spec.model.layers if layer.type == "dense"][-1].units


def _finite(value) -> float | None:
    """A score as a number; None for NaN, infinity, or a per-class array (f1_score without `average`)."""
    array = np.asarray(value)
    if array.size != 1:
        return None
    number = float(array.reshape(()))
    return number if math.isfinite(number) else None


def recompute(run_dir: Path, summary: dict[str, Any]) -> tuple[dict[str, Any] | None, str]:
    """Compute the baseline of a run trained before baselines existed, if its CSVs are unchanged.

    Nothing is written: the run directory stays as training left it.

    Returns:
        The baseline entries (as `baseline` returns them) or None, and a sentence saying what was done.
    """
    if summary.get("streaming"):
        return None, "no baseline: not computed for a streamed CSV"
    hashes = summary.get("data_sha256")
    if not isinstance(hashes, dict) or not hashes:
        return None, "no baseline: the summary does not record the CSVs' sha256, so they cannot be checked"
    for path, sha in hashes.items():
        if not Path(path).is_file():
            return None, f"no baseline: {path} is gone"
        if file_sha256(path) != sha:
            return None, f"no baseline: {path} changed since training (its sha256 differs)"
    try:
        spec = load_spec(Path(run_dir) / CONFIG)
        entries = baseline(spec, prepare(spec.data, spec.seed, spec.training.loss))
    except DlrunError as exc:  # a config today's dlrun no longer accepts: read the curves without a baseline
        return None, f"no baseline: {exc}"
    if entries["baseline"] is None:
        return None, f"no baseline: {entries['baseline_constants']['why_none']}"
    return entries, f"baseline recomputed: {', '.join(hashes)} is unchanged since training (same sha256)"
