"""Use a trained run on new rows: predictions (`dlrun predict`) and metrics (`dlrun evaluate`).

Both read the run's `preprocessing.json` and apply it with `Preprocessing.apply`, exactly as training
did, chunk by chunk so a file of any size fits (a CSV, or Parquet or Feather by its suffix, whatever
the run was trained on); the model is loaded with Keras's safe mode.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from dlrun.data.files import FrameWriter, read_chunks
from dlrun.data.preprocess import Preprocessing
from dlrun.errors import DataError
from dlrun.runs import layout as runs
from dlrun.runs.reading import read_config

CHUNK_ROWS = 65536


@dataclass
class Trained:
    """A trained run's model, preprocessing and training settings."""

    path: Path
    model: Any
    preprocessing: Preprocessing
    batch_size: int


def load_trained(run_dir: str | Path) -> Trained:
    """Load a run directory's model (safe mode) and fitted preprocessing.

    Raises:
        DataError: the folder is not a run directory, or the run left no model.
    """
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise DataError(f"run directory not found: {run_dir} (runs are under runs/<name>/<timestamp>/)")
    for name in (runs.PREPROCESSING, runs.MODEL):
        if not (run_dir / name).is_file():
            raise DataError(
                f"{run_dir} has no {name}: give a run directory whose training finished (runs/<name>/<timestamp>/)"
            )
    training = read_config(run_dir).get("training", {})
    pre = Preprocessing.from_dict(
        json.loads((run_dir / runs.PREPROCESSING).read_text(encoding="utf-8")), training.get("loss")
    )
    from dlrun.backend import import_keras

    keras = import_keras()
    model = keras.saving.load_model(run_dir / runs.MODEL, safe_mode=True)
    return Trained(run_dir, model, pre, int(training.get("batch_size", 32)))


@dataclass
class Predicted:
    """What `predict` wrote."""

    out: Path
    rows: int
    skipped: int = 0
    """Rows left without a prediction (an empty cell in a column whose strategy is drop_rows)."""
    unseen: dict[str, int] = field(default_factory=dict)


def predict(run_dir: str | Path, data: str | Path, out: str | Path, threshold: float = 0.5) -> Predicted:
    """Write the data file's rows plus the model's predictions to `out` (CSV, Parquet or Feather by its suffix).

    Regression adds `prediction`; binary adds `probability` (of the second label) and `prediction`
    (the label at `threshold`); multi-class adds `probability_<label>` per class and `prediction`.

    Raises:
        DataError: a missing column, a value of the wrong type, an empty cell the run refuses, ...
    """
    if not 0 < threshold < 1:
        raise DataError(f"--threshold {threshold} is not a probability between 0 and 1 (exclusive); try 0.5")
    run = load_trained(run_dir)
    pre = run.preprocessing
    out = Path(out)
    written = skipped = 0
    unseen: Counter = Counter()
    writer = FrameWriter(out, pre.csv)
    for chunk in read_chunks(data, pre.csv, CHUNK_ROWS):
        encoded = pre.apply(chunk, str(data), labelled=False)
        unseen.update(encoded.unseen)
        outputs = (
            run.model.predict(encoded.x, batch_size=max(run.batch_size, 1024), verbose=0)
            if len(encoded.x)
            else np.zeros((0, 1), "float32")
        )
        result = chunk.copy()
        for name, values in _prediction_columns(pre, outputs, threshold).items():
            column = np.full(len(chunk), None, dtype=object) if values.dtype == object else np.full(len(chunk), np.nan)
            column[encoded.kept] = values
            result[_free_name(name, chunk.columns)] = column
        writer.write(result)
        written += int(encoded.kept.sum())
        skipped += int((~encoded.kept).sum())
    writer.close()
    return Predicted(out, written, skipped, dict(unseen))


def _prediction_columns(pre: Preprocessing, outputs: np.ndarray, threshold: float) -> dict[str, np.ndarray]:
    if pre.task == "regression":
        if outputs.shape[1] == 1:
            return {"prediction": outputs[:, 0].astype("float64")}
        return {f"prediction_{i}": outputs[:, i].astype("float64") for i in range(outputs.shape[1])}
    if pre.task == "binary":
        labels = pre.labels or [0, 1]
        probability = outputs[:, 0].astype("float64")
        chosen = np.array(labels, dtype=object)[(probability >= threshold).astype(int)]
        return {"probability": probability, "prediction": chosen}
    columns = {f"probability_{label}": outputs[:, i].astype("float64") for i, label in enumerate(pre.classes)}
    columns["prediction"] = (
        np.array(pre.classes, dtype=object)[outputs.argmax(axis=1)] if len(outputs) else np.zeros(0, dtype=object)
    )
    return columns


def _free_name(name: str, taken) -> str:
    while name in taken:
        name = f"predicted_{name}"
    return name


@dataclass
class Evaluation:
    """The loss and metrics of a run's model on a labelled CSV."""

    metrics: dict[str, float]
    rows: int
    dropped: dict[str, int]
    unseen: dict[str, int]

    def to_dict(self) -> dict[str, Any]:
        return {
            "metrics": self.metrics,
            "rows": self.rows,
            "dropped_rows": self.dropped,
            "unseen_categories": self.unseen,
        }


def evaluate(run_dir: str | Path, data: str | Path) -> Evaluation:
    """Compute the loss and every compiled metric on a labelled data file, batched as in training.

    Raises:
        DataError: a missing column (the target included), a value of the wrong type, no usable rows, ...
    """
    from dlrun.data.stream import batch_dataset, encoded_batches

    run = load_trained(run_dir)
    pre = run.preprocessing
    unseen: Counter = Counter()
    dropped: Counter = Counter()
    rows = 0
    for chunk in read_chunks(data, pre.csv, CHUNK_ROWS):  # checks every row before the model sees one
        encoded = pre.apply(chunk, str(data))
        rows += len(encoded.x)
        dropped.update(encoded.dropped)
    if rows == 0:
        raise DataError(f"{data}: no rows to evaluate (every row has an empty target {pre.target!r} or a dropped cell)")

    def batches():
        return encoded_batches(
            read_chunks(data, pre.csv, CHUNK_ROWS, check_ragged=False), pre, str(data), run.batch_size, unseen=unseen
        )

    steps = -(-rows // run.batch_size)  # known, so Keras does not warn when the generator ends
    results = run.model.evaluate(batch_dataset(batches, pre), steps=steps, verbose=0, return_dict=True)
    return Evaluation({k: float(v) for k, v in results.items()}, rows, dict(dropped), dict(unseen))
