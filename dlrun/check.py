"""`dlrun check`: load the data and build the real Keras model without training, and warn of likely mistakes."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from dlrun.data.preprocess import task_of
from dlrun.spec.models import Spec
from dlrun.spec.names import BINARY_LOSSES


@dataclass
class Report:
    """What `dlrun check` shows."""

    summary: str
    rows: dict[str, int]
    classes: dict[str, int] | None
    warnings: list[str]


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


def check(spec: Spec) -> Report:
    """Prepare the data, build and compile the model as `train` would, without fitting it.

    Raises:
        DataError: the CSV cannot be used as the spec says, or the output layer does not fit its classes.
    """
    from dlrun.backend import import_keras
    from dlrun.data.prepare import prepare
    from dlrun.model import check_output_width
    from dlrun.training.fit import compile_model

    keras = import_keras()
    data = prepare(spec.data, spec.seed, spec.training.loss)
    check_output_width(spec.model, spec.data.target, data.preprocessing.classes)  # the error train gives
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
    return Report("\n".join(lines), data.rows, balance, likely_mistakes(spec, y, classes))


def _plain(value: Any) -> Any:
    value = value.item() if hasattr(value, "item") else value
    return int(value) if isinstance(value, float) and value.is_integer() else value
