"""Use a trained run on new rows: predictions (`dlrun predict`) and metrics (`dlrun evaluate`).

Both read the run's `preprocessing.json` and apply it with `Preprocessing.apply`, exactly as training
did, chunk by chunk so a file of any size fits (a CSV, or Parquet or Feather by its suffix, whatever
the run was trained on); the model is loaded with Keras's safe mode.
"""

from __future__ import annotations

import contextlib
import json
import sys
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from dlrun.data.csvfile import not_found
from dlrun.data.files import FrameWriter, read_header
from dlrun.data.preprocess import Preprocessing, left_out
from dlrun.errors import DataError
from dlrun.runs import layout as runs
from dlrun.runs.reading import read_config
from dlrun.spec.models import is_dataframe

CHUNK_ROWS = 65536
STDOUT = "-"
"""`--out -`: write the predictions as CSV to standard output, as Unix tools read `-`."""


@dataclass
class Trained:
    """A trained run's model, preprocessing and training settings."""

    path: Path
    model: Any
    preprocessing: Preprocessing
    batch_size: int


def load_trained(run_dir: str | Path, data: str | Path | None = None, labelled: bool = False) -> Trained:
    """Load a run directory's model (safe mode) and fitted preprocessing.

    With `data`, the CSV's header is checked against the columns the run needs (the target too when
    `labelled`) before TensorFlow is imported, so a wrong CSV is refused at once.

    Raises:
        DataError: the folder is not a run directory, the run left no model, the CSV lacks a column, or a
            file in the run is empty, truncated, corrupt, or a model Keras's safe mode refuses to load.
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
    if not isinstance(training, dict):
        training = {}
    pre = _read_preprocessing(run_dir / runs.PREPROCESSING, training.get("loss"))
    if data is not None:
        if not is_dataframe(str(data)) and not Path(data).exists():
            raise not_found(data, given=True)
        pre.check_columns(read_header(data, pre.csv), str(data), labelled)
    model = _load_model(run_dir / runs.MODEL)
    return Trained(run_dir, model, pre, int(training.get("batch_size", 32)))


def _read_preprocessing(path: Path, loss: str | None) -> Preprocessing:
    """Read a run's fitted preprocessing, or say in one line why it cannot be used."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DataError(
            f"{path} is not valid JSON ({exc}): the file is damaged (a run killed while writing it, or edited); "
            "train the run again"
        ) from None
    try:
        return Preprocessing.from_dict(data, loss)
    except (KeyError, TypeError, ValueError, AttributeError, IndexError) as exc:
        raise DataError(
            f"{path} does not hold a dlrun preprocessing ({type(exc).__name__}: {exc}); train the run again"
        ) from None


def _load_model(path: Path):
    """Load a model with Keras's safe mode, or say in one line why it cannot be loaded."""
    import zipfile

    from dlrun.backend import import_keras

    keras = import_keras()
    size = path.stat().st_size
    if size == 0 or not zipfile.is_zipfile(path):
        state = "empty" if size == 0 else f"not a complete .keras (zip) file ({size} bytes: truncated or damaged)"
        raise DataError(f"{path} is {state}: it cannot be loaded; train the run again (or resume it)")
    try:
        return keras.saving.load_model(path, safe_mode=True)
    except Exception as exc:  # Keras raises ValueError, OSError, KeyError... for a damaged archive
        text = " ".join(str(exc).split())
        if "safe_mode" in text:
            raise DataError(
                f"{path} holds Python code (a Lambda layer) that Keras's safe mode refuses to load, since loading "
                "it could run arbitrary code; dlrun never saves one, so this model did not come from dlrun train"
            ) from None
        raise DataError(f"{path} cannot be loaded as a Keras model ({type(exc).__name__}: {text[:200]})") from None


@dataclass
class Predicted:
    """What `predict` wrote."""

    out: Path
    rows: int
    skipped: int = 0
    """Rows left without a prediction (an empty cell in a column whose strategy is drop_rows)."""
    unseen: dict[str, int] = field(default_factory=dict)


def check_threshold(threshold: float) -> None:
    """Refuse a binary threshold that is not a probability strictly between 0 and 1."""
    if not 0 < threshold < 1:
        raise DataError(f"--threshold {threshold} is not a probability between 0 and 1 (exclusive); try 0.5")


def predict(run_dir: str | Path, data: str | Path, out: str | Path, threshold: float = 0.5) -> Predicted:
    """Write the data file's rows plus the model's predictions to `out` (CSV, Parquet or Feather by its suffix;
    `-` is CSV on standard output).

    Regression adds `prediction`; binary adds `probability` (of the second label) and `prediction`
    (the label at `threshold`); multi-class adds `probability_<label>` per class and `prediction`.

    Raises:
        DataError: a missing column, a value of the wrong type, an empty cell the run refuses, ...
    """
    check_threshold(threshold)
    run = load_trained(run_dir, data)
    pre = run.preprocessing
    to_stdout = str(out) == STDOUT
    out = Path(out)
    with contextlib.ExitStack() as stack:
        if to_stdout:
            writer = FrameWriter(out, pre.csv, stream=sys.stdout)
        else:
            # a half-written predictions file never appears; its suffix (kept by tmp) says CSV, Parquet or Feather
            writer = FrameWriter(stack.enter_context(runs.atomic_path(out, parents=True)), pre.csv)
        stack.enter_context(writer)
        written, skipped, unseen = _write_predictions(run, data, writer, threshold)
    return Predicted(out, written, skipped, dict(unseen))


class _Collected:
    """A writer that keeps the frames it is given (`predictions`)."""

    def __init__(self):
        self.frames: list = []

    def write(self, frame) -> None:
        self.frames.append(frame)


def predictions(run: Trained, data: str | Path, threshold: float = 0.5):
    """Return the data's rows with the model's predictions added, as a DataFrame (what `predict` writes)."""
    import pandas as pd

    run.preprocessing.check_columns(read_header(data, run.preprocessing.csv), str(data), labelled=False)
    collected = _Collected()
    _write_predictions(run, data, collected, threshold)
    return pd.concat(collected.frames, ignore_index=True) if len(collected.frames) > 1 else collected.frames[0]


def _write_predictions(
    run: Trained, data: str | Path, writer: FrameWriter, threshold: float
) -> tuple[int, int, Counter]:
    """Write each chunk of the data file with its predictions; return the rows predicted and skipped, and unseen
    categories."""
    pre = run.preprocessing
    written = skipped = 0
    unseen: Counter = Counter()
    for chunk in pre.read_chunks(data, CHUNK_ROWS):
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
    return written, skipped, unseen


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
    target: str | None = None

    @property
    def left_out(self) -> str | None:
        """The rows left out, in words (`preprocess.left_out`)."""
        return left_out(self.dropped, self.target)

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

    run = load_trained(run_dir, data, labelled=True)
    pre = run.preprocessing
    unseen: Counter = Counter()
    dropped: Counter = Counter()
    rows = 0
    for chunk in pre.read_chunks(data, CHUNK_ROWS):  # checks every row before the model sees one
        encoded = pre.apply(chunk, str(data))
        rows += len(encoded.x)
        dropped.update(encoded.dropped)
    if rows == 0:
        raise DataError(f"{data}: no rows to evaluate (every row has an empty target {pre.target!r} or a dropped cell)")

    def batches():
        return encoded_batches(
            pre.read_chunks(data, CHUNK_ROWS, check_ragged=False), pre, str(data), run.batch_size, unseen=unseen
        )

    steps = -(-rows // run.batch_size)  # known, so Keras does not warn when the generator ends
    results = run.model.evaluate(batch_dataset(batches, pre), steps=steps, verbose=0, return_dict=True)
    return Evaluation({k: float(v) for k, v in results.items()}, rows, dict(dropped), dict(unseen), pre.target)
