"""Data files -> training, validation and test data, through preprocessing fitted on the training rows only.

The top of the data path: small files (CSV, Parquet, Feather: `dlrun.data.files`) are read whole into
arrays here; a file larger than `data.streaming_above_mb` (or with `data.streaming: true`) is read in
chunks by `dlrun.data.stream`.
Both decide the columns with `dlrun.data.fitter.plan_columns` and fit the same `Preprocessing`, which
is saved in the run directory and applied to every row the model sees.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from dlrun.data.files import read_frame
from dlrun.data.fitter import Prepared, check_target, plan_columns
from dlrun.data.preprocess import Encoded, keep_rows
from dlrun.data.stream import prepare_streaming
from dlrun.errors import DataError
from dlrun.runs.layout import file_sha256
from dlrun.spec.models import DataSpec


def streams(spec: DataSpec) -> bool:
    """Tell whether the training file is read in chunks (`data.streaming`, or auto above its size on disk)."""
    if spec.streaming != "auto":
        return bool(spec.streaming)
    try:
        return Path(spec.path).stat().st_size > spec.streaming_above_mb * 1e6
    except OSError:
        return False


def prepare(spec: DataSpec, seed: int, loss: str) -> Prepared:
    """Read the data file(s), split them, fit the preprocessing on the training rows and apply it everywhere.

    Args:
        spec: the spec's data section (paths already absolute).
        seed: seeds the random validation/test split.
        loss: the training loss; it decides whether the target is a number, a binary or a class label.

    Raises:
        DataError: a missing file or column, an unusable column, empty cells, too few rows, ...
    """
    if streams(spec):
        return prepare_streaming(spec, seed, loss)
    columns = plan_columns(spec, loss)
    frame = read_frame(spec.path, spec.csv, columns.text_columns)
    keep, dropped = keep_rows(frame, spec.target, columns.drop_rows, spec.csv, columns.task)
    # the rows training reads, as a stream checks them: a row that drop_rows leaves out is never read
    check_target(frame[keep] if keep.any() else frame, spec, columns.task, spec.path)
    frame = frame[keep]
    fitter = columns.fitter(spec)
    fitter.check_cells(frame)  # before the split, so a message names the file's first bad line and counts them all
    sha = {spec.path: file_sha256(spec.path)}
    parts = {"train": frame}
    sources = {"train": spec.path, "validation": spec.validation_path or spec.path, "test": spec.test_path or spec.path}
    for part, path in (("validation", spec.validation_path), ("test", spec.test_path)):
        if path is not None:
            parts[part] = read_frame(path, spec.csv, columns.text_columns)
            sha[path] = file_sha256(path)
    fractions = {"validation": spec.validation_split, "test": spec.test_split}
    if any(fractions.values()):
        labels = None
        if spec.stratify:  # the spec makes sure the loss is a classification one
            labels = frame[spec.target].to_numpy(dtype=object)
        split = split_rows(len(frame), fractions, seed, labels)
        for part, index in split.items():
            parts[part] = frame.iloc[index]
    fitter.update(parts["train"])
    pre = fitter.finish(columns.features, spec.csv.model_dump(), columns.dropped_columns)
    encoded: dict[str, Encoded] = {}
    for part, rows in parts.items():
        encoded[part] = pre.apply(rows, sources[part], weighted=True)
        if part != "train":
            for key, count in encoded[part].dropped.items():
                dropped[key] += count
    if len(encoded["validation"].x) == 0:
        raise DataError(
            f"{sources['validation']}: no validation rows left (after leaving out empty targets and drop_rows rows)"
        )
    test = encoded.get("test")
    return Prepared(
        encoded["train"].x,
        encoded["train"].y,
        encoded["validation"].x,
        encoded["validation"].y,
        pre,
        sha,
        x_test=test.x if test else None,
        y_test=test.y if test else None,
        rows={part: int(len(e.x)) for part, e in encoded.items()},
        dropped=dropped,
        unseen={part: e.unseen for part, e in encoded.items() if part != "train" and e.unseen},
        w_train=encoded["train"].w,
        w_valid=encoded["validation"].w,
        w_test=test.w if test else None,
        class_counts=dict(fitter.labels),
        warnings=fitter.constant_warnings(),
    )


def split_rows(
    n: int, fractions: dict[str, float | None], seed: int, labels: np.ndarray | None = None
) -> dict[str, np.ndarray]:
    """Split row positions at random (seeded) into train and the held-out parts.

    Validation takes the first rows of a seeded permutation, test the next ones, training the rest;
    with `labels`, each class is split that way on its own, so every part keeps the class shares.

    Raises:
        DataError: a part would be empty.
    """
    order = np.random.default_rng(seed).permutation(n)
    groups = [order] if labels is None else [order[labels[order] == value] for value in _distinct(labels)]
    out: dict[str, list] = {"train": [], "validation": [], "test": []}
    for group in groups:
        start = 0
        for part in ("validation", "test"):
            count = int(round(len(group) * fractions[part])) if fractions.get(part) else 0
            out[part].append(group[start : start + count])
            start += count
        out["train"].append(group[start:])
    split = {part: np.concatenate(chunks) for part, chunks in out.items() if chunks}
    for part in ("validation", "test"):
        if fractions.get(part) and len(split[part]) == 0:
            raise DataError(
                f"data.{part}_split: {fractions[part]} of {n} rows leaves no {part} rows; "
                "use a larger fraction or more rows"
            )
        if not fractions.get(part):
            split.pop(part, None)
    if len(split["train"]) == 0:
        held = ", ".join(f"{p} {len(split[p])}" for p in ("validation", "test") if p in split)
        raise DataError(
            f"data.validation_split: the split of {n} rows leaves {held} and 0 training rows; both need at least one"
        )
    return split


def _distinct(labels: np.ndarray) -> list:
    import pandas as pd

    return list(pd.unique(pd.Series(labels, dtype=object).dropna()))
