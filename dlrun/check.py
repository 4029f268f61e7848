"""`dlrun check`: load the data and build the real Keras model without training, and warn of likely mistakes."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from dlrun.data.preprocess import left_out, task_of
from dlrun.spec.models import Spec
from dlrun.spec.names import BINARY_LOSSES

RARE = 0.10
"""A binary target whose smaller class is below this share of the training rows is imbalanced."""


@dataclass
class Report:
    """What `dlrun check` shows."""

    summary: str
    rows: dict[str, int]
    classes: dict[str, int] | None
    warnings: list[str]
    notes: list[str] = field(default_factory=list)
    """Facts worth seeing before training: steps per epoch, a schedule's steps in epochs, class weights."""
    left_out: str | None = None
    """The rows left out, in words (`preprocess.left_out`)."""


def likely_mistakes(spec: Spec, targets: np.ndarray, classes: list | None) -> list[str]:
    """Return warnings for a spec whose output layer, loss and target do not fit together.

    Args:
        spec: the experiment.
        targets: the training targets as the model sees them (after any label mapping).
        classes: the class labels for a softmax classifier, None otherwise.
    """
    warnings = []
    loss = spec.training.loss
    output = spec.model.layers[-1]
    activation = getattr(output, "activation", None)
    if activation == "sigmoid" and task_of(loss) == "regression":
        warnings.append(
            f"the output layer is sigmoid (values in 0..1) but the loss {loss!r} is for regression: "
            "for classification use binary_crossentropy; for numbers use a linear output"
        )
    if loss in BINARY_LOSSES:
        distinct = set(np.unique(targets).tolist())
        if not distinct <= {0, 1}:
            shown = ", ".join(map(str, sorted(distinct)[:6]))
            warnings.append(
                f"loss {loss!r} expects targets 0 and 1, but {spec.data.target!r} has {shown}"
                f"{' ...' if len(distinct) > 6 else ''}: use a regression loss (mae) or a 0/1 target"
            )
        if activation != "sigmoid":
            warnings.append(
                f"loss {loss!r} expects probabilities, but the output activation is {activation!r}: "
                "use activation: sigmoid on the last layer"
            )
    if loss == "sparse_categorical_crossentropy" and activation not in ("softmax", None):
        warnings.append(
            f"loss {loss!r} expects class probabilities, but the output activation is {activation!r}: "
            "use activation: softmax on the last layer"
        )
    return warnings


def nonfinite_cells(spec: Spec) -> dict[str, dict[str, tuple[int, list]]]:
    """Return, per CSV, each numeric column's non-finite numbers (a regression target's too): their count
    and the first few (row index, value), by the conversion's own rule (`preprocess.infinite_mask`).

    Training stops at the first such column; this reads the CSVs once more, to name them all at once.
    """
    from dlrun.data.files import read_chunks
    from dlrun.data.fitter import plan_columns
    from dlrun.data.kinds import NUMERIC
    from dlrun.data.preprocess import found_cells, infinite_mask

    data = spec.data
    columns = plan_columns(data, spec.training.loss)
    wanted = {plan.name: True for plan in columns.plans if plan.kind == NUMERIC}
    wanted[data.target] = columns.task == "regression"  # class labels: only what pandas read as a number
    found: dict[str, dict[str, tuple[int, list]]] = {}
    for path in dict.fromkeys(p for p in (data.path, data.validation_path, data.test_path) if p):
        cells: dict[str, tuple[int, list]] = {}
        chunks = read_chunks(path, data.csv, data.chunk_rows, check_ragged=False, text_columns=columns.text_columns)
        for chunk in chunks:
            for name, numeric in wanted.items():
                count, firsts = found_cells(chunk[name], infinite_mask(chunk[name], data.csv, numeric))
                if count:
                    before, shown = cells.get(name, (0, []))
                    cells[name] = (before + count, (shown + firsts)[:3])
        if cells:
            found[path] = cells
    return found


def nonfinite_warnings(spec: Spec) -> list[str]:
    """Return a warning per CSV whose non-finite numbers `data.csv.infinite: missing` reads as missing cells.

    Raises:
        DataError: such numbers when `data.csv.infinite` is error, every column named (the first CSV's).
    """
    from dlrun.data.preprocess import describe_cells, nonfinite_error

    found = nonfinite_cells(spec)
    options = spec.data.csv
    if found and options.infinite == "error":
        path, cells = next(iter(found.items()))
        raise nonfinite_error(path, options, cells)
    return [
        f"{path}: non-finite numbers read as missing cells (data.csv.infinite: missing), then filled or left "
        f"out as data.missing says: {describe_cells(path, options, cells)}"
        for path, cells in found.items()
    ]


def imbalance_warning(spec: Spec, balance: dict[str, int] | None) -> str | None:
    """Warn of a binary target whose smaller class is rare, when nothing weighs or stratifies it."""
    if not balance or len(balance) != 2:
        return None
    if spec.training.class_weight is not None or spec.data.weight_column is not None or spec.data.stratify:
        return None
    label, count = min(balance.items(), key=lambda item: item[1])
    total = sum(balance.values())
    if count / total >= RARE:
        return None
    return (
        f"class {label} is {count / total:.1%} of the training rows ({count} of {total}): a model can score "
        f"{1 - count / total:.0%} accuracy by never predicting it. Set training.class_weight: balanced (or "
        "data.weight_column), data.stratify: true so every split keeps its share, and watch a metric such as "
        "{name: auc, curve: PR}"
    )


def training_notes(spec: Spec, train_rows: int, class_weight: dict[str, float] | None) -> list[str]:
    """Say how many optimizer steps an epoch is, a schedule's steps in epochs, and the class weights."""
    training = spec.training
    steps = math.ceil(train_rows / training.batch_size)
    notes = [f"Steps per epoch: {steps} ({train_rows} training rows / batch_size {training.batch_size})"]
    schedule = training.optimizer.schedule
    if schedule is not None:
        spans = []
        for key, value in schedule.steps().items():
            counts = value if isinstance(value, list) else [value]
            epochs = ", ".join(f"{count / steps:.3g}" for count in counts)
            spans.append(f"{key} {value} = {epochs} epochs")
        total = steps * training.epochs
        notes.append(
            f"Learning rate: {schedule.name} over optimizer steps; {'; '.join(spans)}"
            f"{'; ' if spans else ''}training.epochs {training.epochs} = {total} steps at most"
        )
    if class_weight is not None:
        shown = ", ".join(f"{label} {weight:.4g}" for label, weight in class_weight.items())
        how = "balanced: rows / (classes * rows of the class)" if training.class_weight == "balanced" else "as given"
        notes.append(f"Class weights: {shown} ({how})")
    return notes


def check(spec: Spec) -> Report:
    """Prepare the data, build and compile the model as `train` would, without fitting it.

    Raises:
        DataError: the CSV cannot be used as the spec says (non-finite numbers: every column named), or the
            output layer does not fit its classes.
    """
    from dlrun.backend import import_keras
    from dlrun.data.fitter import class_weights, weights_by_label
    from dlrun.data.prepare import prepare
    from dlrun.model import check_output_width
    from dlrun.training.callbacks import require_tensorboard
    from dlrun.training.fit import compile_model

    nonfinite = nonfinite_warnings(spec)
    keras = import_keras()
    require_tensorboard(spec.training)
    data = prepare(spec.data, spec.seed, spec.training.loss)
    check_output_width(spec.model, spec.data.target, data.preprocessing.classes)  # the error train gives
    weights = class_weights(spec.training.class_weight, data.preprocessing, data.class_counts)
    keras.utils.set_random_seed(spec.seed)
    model = compile_model(spec, data.preprocessing.width)
    lines: list[str] = []
    model.summary(print_fn=lambda text, **_: lines.append(text), line_length=80)
    classes = data.preprocessing.classes
    y = data.y_train if data.y_train is not None else np.empty(0)
    balance = None
    if classes is not None or spec.training.loss in BINARY_LOSSES:
        labels = classes if classes is not None else data.preprocessing.labels
        values, counts = np.unique(y, return_counts=True)
        balance = {
            str(labels[int(v)] if labels is not None and int(v) < len(labels) else _plain(v)): int(c)
            for v, c in zip(values, counts)
        }
    warnings = nonfinite + data.warnings + likely_mistakes(spec, y, classes)
    rare = imbalance_warning(spec, balance)
    notes = training_notes(spec, data.rows["train"], weights_by_label(weights, data.preprocessing))
    warnings += [rare] if rare else []
    return Report("\n".join(lines), data.rows, balance, warnings, notes, left_out(data.dropped, spec.data.target))


def _plain(value: Any) -> Any:
    value = value.item() if hasattr(value, "item") else value
    return int(value) if isinstance(value, float) and value.is_integer() else value
