"""`dlrun init`: a commented starter spec inferred from a CSV and its target column."""

from __future__ import annotations

import csv
import os
from dataclasses import dataclass
from pathlib import Path

from dlrun.errors import DataError

MAX_CLASSES = 10  # an integer target with at most this many distinct values is taken as class labels
MAX_CATEGORIES = 50  # a text feature with more distinct values is free text or an id


@dataclass
class Task:
    """What the target asks of the network's output layer and loss."""

    kind: str
    """regression, binary or multiclass."""
    classes: list
    output: str
    loss: str
    metrics: list[str]
    why: str


def infer_task(values: list) -> Task:
    """Decide regression, binary or multi-class from a target column's non-empty values."""
    distinct = sorted(set(values), key=lambda v: (isinstance(v, str), v))
    numeric = not any(isinstance(v, str) for v in distinct)
    integral = numeric and all(float(v).is_integer() for v in distinct)
    if len(distinct) == 2:
        return Task(
            "binary",
            distinct,
            "{type: dense, units: 1, activation: sigmoid}",
            "binary_crossentropy",
            ["binary_accuracy"],
            f"two distinct values ({distinct[0]!r}, {distinct[1]!r}): binary classification",
        )
    if not numeric or (integral and len(distinct) <= MAX_CLASSES):
        reason = "text labels" if not numeric else f"{len(distinct)} distinct whole numbers"
        return Task(
            "multiclass",
            distinct,
            f"{{type: dense, units: {len(distinct)}, activation: softmax}}",
            "sparse_categorical_crossentropy",
            ["sparse_categorical_accuracy"],
            f"{reason}: multi-class classification into {len(distinct)} classes"
            + (" (if these are amounts, not classes, use the regression output: units 1, loss mae)" if numeric else ""),
        )
    return Task(
        "regression",
        [],
        "{type: dense, units: 1}",
        "mae",
        ["mse"],
        "numbers: regression (a linear output, mean absolute error)",
    )


def read_columns(csv_path: Path) -> tuple[dict[str, list], int]:
    """Read a CSV into columns of parsed values (numbers where they parse, text otherwise, None if empty).

    The standard library is enough here and keeps `dlrun init` fast: no pandas import.
    """
    try:
        with csv_path.open(newline="", encoding="utf-8-sig") as handle:
            rows = list(csv.reader(handle))
    except FileNotFoundError:
        raise DataError(f"data file not found: {csv_path}") from None
    except (UnicodeDecodeError, csv.Error, IsADirectoryError) as exc:
        raise DataError(f"cannot read {csv_path} as CSV: {exc}") from None
    if not rows or not rows[0]:
        raise DataError(f"{csv_path} is empty: a CSV with a header line and rows is needed")
    header = [name.strip() for name in rows[0]]
    columns: dict[str, list] = {name: [] for name in header}
    for line, row in enumerate(rows[1:], start=2):
        if len(row) != len(header):
            if not row:
                continue
            raise DataError(f"{csv_path}, line {line}: {len(row)} fields where the header has {len(header)}")
        for name, cell in zip(header, row):
            columns[name].append(_parse(cell))
    return columns, len(rows) - 1


def _parse(cell: str):
    cell = cell.strip()
    if cell == "" or cell.lower() in ("na", "nan", "null", "none"):
        return None
    try:
        number = float(cell)
    except ValueError:
        return cell
    return int(number) if number.is_integer() and "." not in cell and "e" not in cell.lower() else number


def starter_spec(csv_path: Path, target: str, spec_path: Path) -> str:
    """Return the text of a starter spec for `csv_path`, to be written at `spec_path`.

    Raises:
        DataError: the CSV cannot be read, or has no such target column or no usable feature.
    """
    columns, n_rows = read_columns(csv_path)
    if target not in columns:
        raise DataError(f"--target: column {target!r} is not in {csv_path}; its columns are: {', '.join(columns)}")
    labels = [v for v in columns[target] if v is not None]
    if not labels:
        raise DataError(f"--target: column {target!r} in {csv_path} is empty; pick the column to predict")
    task = infer_task(labels)
    features, dropped, gaps = [], [], []
    for column, values in columns.items():
        if column == target:
            continue
        present = [v for v in values if v is not None]
        text = {v for v in present if isinstance(v, str)}
        if not present:
            dropped.append((column, "empty"))
        elif text and len(set(present)) > MAX_CATEGORIES:
            dropped.append((column, f"text with {len(set(present))} distinct values: an id or free text"))
        else:
            features.append(column)
            if len(present) < len(values):
                gaps.append(column)
    if not features:
        raise DataError(f"{csv_path} has no usable feature columns besides {target!r}")
    data_path = Path(os.path.relpath(csv_path.resolve(), spec_path.resolve().parent)).as_posix()
    name = csv_path.stem.replace(" ", "-")
    lines = [
        f"# Starter spec written by `dlrun init` for {csv_path.name} ({n_rows} rows).",
        f"# Target {target!r}: {task.why}.",
        "# Check it with `dlrun check SPEC`, then train with `dlrun train SPEC`.",
        f"name: {name}",
        "seed: 0",
        "data:",
        f"  path: {data_path}",
        f"  target: {target}",
        "  features:",
        *[f"    - {c}" for c in features],
    ]
    if dropped:
        lines += ["  drop:  # left out:", *[f"    - {c}  # {why}" for c, why in dropped]]
    lines += [
        "  validation_split: 0.2",
        *(["  stratify: true  # keep each class's share in the validation rows"] if task.kind != "regression" else []),
        "  scale: standard  # numeric features to mean 0, variance 1 (fitted on the training rows)",
    ]
    if gaps:
        lines += [f"  missing: median  # empty cells in {', '.join(gaps)}"]
    hidden = 64 if len(features) > 16 else 32
    lines += [
        "model:",
        "  layers:",
        f"    - {{type: dense, units: {hidden}, activation: relu}}",
        "    - {type: dropout, rate: 0.2}",
        f"    - {{type: dense, units: {hidden // 2}, activation: relu}}",
        f"    - {task.output}  # {task.kind} output",
        "training:",
        "  optimizer: {name: adam, learning_rate: 0.001}",
        f"  loss: {task.loss}",
        f"  metrics: [{', '.join(task.metrics)}]",
        f"  batch_size: {256 if n_rows > 20000 else 32}",
        "  epochs: 500",
        "  early_stopping:  # stop when val_loss has not improved for 20 epochs; keep the best weights",
        "    monitor: val_loss",
        "    min_delta: 0.0001",
        "    patience: 20",
        "    restore_best_weights: true",
    ]
    return "\n".join(lines) + "\n"
