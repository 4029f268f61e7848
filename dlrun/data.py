"""CSV -> training and validation arrays, through preprocessing fitted on the training rows only."""

from __future__ import annotations

import csv
import hashlib
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from dlrun.errors import DataError
from dlrun.spec import DataSpec

CLASS_LOSSES = ("sparse_categorical_crossentropy",)


@dataclass
class Preprocessing:
    """What was learned from the training rows, applied the same way to every other row."""

    features: list[str]
    """Feature columns, in the model's input order."""
    target: str
    scale: str = "none"
    offset: list[float] = field(default_factory=list)
    """Subtracted from each feature (minimum or mean)."""
    divisor: list[float] = field(default_factory=list)
    """Each feature is divided by this after the offset (range or standard deviation; 1 for a constant)."""
    classes: list[Any] | None = None
    """Target labels in class-id order, for classification with a softmax output; None otherwise."""

    @classmethod
    def fit(cls, frame, features: list[str], target: str, scale: str, classes: list | None) -> Preprocessing:
        """Learn the scaling statistics from the training rows."""
        values = frame[features].to_numpy(dtype="float64")
        if scale == "minmax":
            offset, spread = values.min(axis=0), values.max(axis=0) - values.min(axis=0)
        elif scale == "standard":
            offset, spread = values.mean(axis=0), values.std(axis=0)
        else:
            offset, spread = np.zeros(len(features)), np.ones(len(features))
        spread = np.where(spread > 0, spread, 1.0)  # a constant column scales to 0, never divides by 0
        return cls(features, target, scale, offset.tolist(), spread.tolist(), classes)

    def inputs(self, frame) -> np.ndarray:
        """Return the model's input matrix for rows of a data frame."""
        values = frame[self.features].to_numpy(dtype="float64")
        return ((values - np.asarray(self.offset)) / np.asarray(self.divisor)).astype("float32")

    def targets(self, frame, source: str) -> np.ndarray:
        """Return the training targets: class ids for classification, floats otherwise."""
        column = frame[self.target]
        if self.classes is None:
            return column.to_numpy(dtype="float32")
        index = {label: i for i, label in enumerate(self.classes)}
        unseen = sorted({str(v) for v in column if v not in index})
        if unseen:
            raise DataError(f"{source}: target {self.target!r} has labels not seen in the training rows: "
                            f"{', '.join(unseen[:10])}; the model only knows {self.classes}")
        return column.map(index).to_numpy(dtype="int32")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Preprocessing:
        return cls(**data)


@dataclass
class Prepared:
    """Model-ready arrays and what made them."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_valid: np.ndarray
    y_valid: np.ndarray
    preprocessing: Preprocessing
    sha256: dict[str, str]
    """sha256 of each CSV read, by path."""


def read_header(path: str | Path) -> list[str]:
    """Return a CSV's column names without reading the rest (fast; no pandas)."""
    path = Path(path)
    try:
        with path.open(newline="", encoding="utf-8-sig") as handle:
            header = next(csv.reader(handle), None)
    except FileNotFoundError:
        raise DataError(f"data file not found: {path} (paths in a spec are relative to the spec file's folder)") from None
    if not header:
        raise DataError(f"{path} is empty: a CSV with a header line and at least one row is needed")
    return [name.strip() for name in header]


def select_features(columns: list[str], spec: DataSpec, source: str) -> list[str]:
    """Return the feature columns the spec asks for, checked against a CSV's columns.

    Raises:
        DataError: the target, a feature or a dropped column is not in the CSV, or no feature is left.
    """
    available = ", ".join(columns)
    if spec.target not in columns:
        raise DataError(f"data.target: column {spec.target!r} is not in {source}; its columns are: {available}")
    for key, wanted in (("data.features", spec.features or []), ("data.drop", spec.drop)):
        missing = [c for c in wanted if c not in columns]
        if missing:
            raise DataError(f"{key}: {', '.join(map(repr, missing))} not in {source}; its columns are: {available}")
    if spec.features is not None:
        features = [c for c in spec.features if c not in spec.drop]
    else:
        features = [c for c in columns if c != spec.target and c not in spec.drop]
    if spec.target in features:
        raise DataError(f"data.features: the target {spec.target!r} cannot also be a feature; remove it from data.features")
    if not features:
        raise DataError(f"no feature columns left in {source}: list some in data.features or drop fewer in data.drop")
    return features


def prepare(spec: DataSpec, seed: int, loss: str) -> Prepared:
    """Read the CSV(s), split, check and scale them: everything `fit` needs.

    Args:
        spec: the spec's data section (paths already absolute).
        seed: seeds the random validation split.
        loss: the training loss; a sparse categorical one maps target labels to class ids.

    Raises:
        DataError: a missing file or column, a non-numeric feature, NaN values, too few rows.
    """
    frame, digest = _read_csv(spec.path)
    features = select_features(list(frame.columns), spec, spec.path)
    _check_columns(frame, features, spec, spec.path)
    sha = {spec.path: digest}
    if spec.validation_path is not None:
        valid, sha[spec.validation_path] = _read_csv(spec.validation_path)
        missing = [c for c in [*features, spec.target] if c not in valid.columns]
        if missing:
            raise DataError(f"data.validation_path: {', '.join(map(repr, missing))} not in {spec.validation_path}; "
                            f"its columns are: {', '.join(valid.columns)}")
        _check_columns(valid, features, spec, spec.validation_path)
        train = frame
    else:
        order = np.random.default_rng(seed).permutation(len(frame))
        n_valid = int(round(len(frame) * spec.validation_split))
        if n_valid < 1 or n_valid >= len(frame):
            raise DataError(f"data.validation_split: {spec.validation_split} of {len(frame)} rows leaves "
                            f"{n_valid} validation and {len(frame) - n_valid} training rows; both need at least one")
        valid, train = frame.iloc[order[:n_valid]], frame.iloc[order[n_valid:]]
    classes = _classes(train, spec.target, loss, spec.path)
    pre = Preprocessing.fit(train, features, spec.target, spec.scale, classes)
    source = spec.validation_path or spec.path
    return Prepared(pre.inputs(train), pre.targets(train, spec.path), pre.inputs(valid), pre.targets(valid, source), pre, sha)


def _classes(train, target: str, loss: str, source: str) -> list | None:
    column = train[target]
    numeric = column.dtype.kind in "biuf"
    if loss not in CLASS_LOSSES:
        if not numeric:
            raise DataError(
                f"data.target: column {target!r} in {source} holds text like {column.iloc[0]!r}; loss {loss!r} needs "
                f"numbers. For class labels use loss: sparse_categorical_crossentropy with a softmax output layer"
            )
        return None
    labels = sorted(column.unique().tolist(), key=lambda v: (str(type(v)), v))
    return [v.item() if hasattr(v, "item") else v for v in labels]


def _read_csv(path: str):
    import pandas as pd

    file = Path(path)
    try:
        raw = file.read_bytes()
    except FileNotFoundError:
        raise DataError(f"data file not found: {file} (paths in a spec are relative to the spec file's folder)") from None
    except IsADirectoryError:
        raise DataError(f"{file} is a folder, not a CSV file") from None
    try:
        frame = pd.read_csv(file, encoding="utf-8-sig")
    except pd.errors.EmptyDataError:
        raise DataError(f"{file} is empty: a CSV with a header line and at least one row is needed") from None
    except (pd.errors.ParserError, UnicodeDecodeError, ValueError) as exc:
        raise DataError(f"cannot read {file} as CSV: {str(exc).strip()}") from None
    if frame.empty:
        raise DataError(f"{file} has a header but no rows: at least one row of data is needed")
    frame.columns = [str(c).strip() for c in frame.columns]
    return frame, hashlib.sha256(raw).hexdigest()


def _check_columns(frame, features: list[str], spec: DataSpec, source: str) -> None:
    text = [c for c in features if frame[c].dtype.kind not in "biuf"]
    if text:
        examples = "; ".join(f"{c!r} (e.g. {frame[c].dropna().iloc[0]!r})" if frame[c].notna().any() else repr(c)
                             for c in text[:5])
        raise DataError(f"non-numeric feature column(s) in {source}: {examples}. Leave them out with "
                        f"data.drop: [{', '.join(text)}], or list only numeric columns in data.features")
    counts = frame[[*features, spec.target]].isna().sum()
    gaps = {c: int(n) for c, n in counts.items() if n}
    if gaps:
        listed = ", ".join(f"{c!r} ({n} rows)" for c, n in gaps.items())
        raise DataError(f"missing (NaN) values in {source}: {listed}. Fill or remove those rows, "
                        f"or leave feature columns out with data.drop")
