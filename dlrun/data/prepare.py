"""CSV -> training, validation and test data, through preprocessing fitted on the training rows only.

Small CSVs are read whole into arrays; a CSV larger than `data.streaming_above_mb` (or with
`data.streaming: true`) is read in chunks by `dlrun.stream`. Both fit the same `Preprocessing`
(`dlrun.preprocess`), which is saved in the run directory and applied to every row the model sees.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from dlrun.data.columns import (
    csv_options,
    declared_kinds,
    pandas_options,
    read_header,
    select_features,
)
from dlrun.data.preprocess import (
    Encoded,
    Fitter,
    Plan,
    Preprocessing,
    infer_kinds,
    keep_rows,
    missing_mask,
    task_of,
)
from dlrun.errors import DataError
from dlrun.runs.layout import file_sha256
from dlrun.spec.models import CsvOptions, DataSpec

PARTS = ("train", "validation", "test")
_RAGGED = re.compile(r"Expected (\d+) fields in line (\d+), saw (\d+)")


@dataclass
class Prepared:
    """Model-ready data and what made it: arrays in memory, or a `Stream` over the CSV."""

    x_train: np.ndarray | None
    y_train: np.ndarray | None
    x_valid: np.ndarray | None
    y_valid: np.ndarray | None
    preprocessing: Preprocessing
    sha256: dict[str, str]
    """sha256 of each CSV read, by path."""
    x_test: np.ndarray | None = None
    y_test: np.ndarray | None = None
    rows: dict[str, int] = field(default_factory=dict)
    """Rows used per part: train, validation, test."""
    dropped: dict[str, int] = field(default_factory=dict)
    """Rows left out: missing_target (empty target), missing_values (data.missing: drop_rows)."""
    unseen: dict[str, dict[str, int]] = field(default_factory=dict)
    """Per part (validation, test), rows per column whose category was not in the training rows."""
    stream: Any = None
    """A `dlrun.stream.Stream` when the CSV is streamed; None when the arrays above hold the data."""

    @property
    def has_test(self) -> bool:
        return self.rows.get("test", 0) > 0


# --- reading CSVs -------------------------------------------------------------------------------


def read_csv(path: str | Path, options: CsvOptions | dict | None = None):
    """Read a whole CSV into a data frame with the spec's options; column names stripped.

    Raises:
        DataError: the file is missing, empty, undecodable, has the wrong separator or a ragged row.
    """
    chunks = list(read_chunks(path, options, None))
    return chunks[0]


def read_chunks(
    path: str | Path,
    options: CsvOptions | dict | None = None,
    chunk_rows: int | None = 65536,
    check_ragged: bool = True,
) -> Iterator:
    """Yield a CSV's rows as data frames of `chunk_rows` rows (one frame when None), checked as `read_csv`.

    The row index runs on across chunks, so `line_of(index)` is a row's line in the file. Rows with
    too many fields always raise; `check_ragged` also looks for rows with too few (a second scan, done
    only when the last column has empty cells, since that is how pandas shows a short row).
    """
    import pandas as pd

    path, options = Path(path), csv_options(options)
    columns = read_header(path, options)
    try:
        reader = pd.read_csv(path, chunksize=chunk_rows, low_memory=chunk_rows is not None, **pandas_options(options))
        chunks = [reader] if chunk_rows is None else reader
        empty, short_possible = True, False
        for frame in chunks:
            frame.columns = columns
            empty = empty and frame.empty
            short_possible = short_possible or bool(frame[columns[-1]].isna().any())
            if not frame.empty:
                yield frame
    except pd.errors.EmptyDataError:
        raise DataError(f"{path} is empty: a CSV with a header line and at least one row is needed") from None
    except pd.errors.ParserError as exc:
        raise _parser_error(path, str(exc), len(columns)) from None
    except UnicodeDecodeError as exc:
        raise DataError(
            f"cannot read {path} as {options.encoding} text ({exc.reason}); set data.csv.encoding "
            "(latin-1, cp1252, utf-16, ...)"
        ) from None
    if empty:
        raise DataError(f"{path} has a header but no rows: at least one row of data is needed")
    if short_possible and check_ragged:  # pandas fills a short row with NaN without a word; only then look for one
        line = find_ragged_line(path, options, len(columns))
        if line is not None:
            raise _ragged(path, line[0], line[1], len(columns))


def _parser_error(path, message: str, width: int) -> DataError:
    match = _RAGGED.search(message)
    if match:
        return _ragged(path, int(match.group(2)), int(match.group(3)), int(match.group(1)))
    return DataError(f"cannot read {path} as CSV: {message.strip()}; check data.csv (separator, quotechar)")


def _ragged(path, line: int, found: int, width: int) -> DataError:
    return DataError(
        f"{path}: line {line} has {found} field{'s' if found != 1 else ''} but the header has {width} "
        "(a ragged row): fix that line, or quote fields that hold the separator, or check "
        "data.csv.separator and quotechar"
    )


def find_ragged_line(path: str | Path, options: CsvOptions | dict | None, width: int) -> tuple[int, int] | None:
    """Return (line, fields) of the first row whose field count differs from the header's; None if all match."""
    options = csv_options(options)
    with Path(path).open(newline="", encoding=pandas_options(options)["encoding"]) as handle:
        reader = csv.reader(handle, delimiter=options.separator, quotechar=options.quotechar)
        next(reader, None)
        for row in reader:
            if row and len(row) != width:
                return reader.line_num, len(row)
    return None


# --- columns ------------------------------------------------------------------------------------


def plans_for(spec: DataSpec, kinds: dict[str, str]) -> list[Plan]:
    """Combine inferred kinds with the spec's per-column and data-set-wide settings."""
    plans = []
    for name, kind in kinds.items():
        column = spec.columns.get(name)
        missing = (column.missing if column else None) or spec.missing
        if kind == "categorical" and missing in ("mean", "median") and not (column and column.missing):
            missing = "most_frequent"  # a data-set-wide mean/median means the most frequent category here
        fill = column.fill_value if column is not None and column.fill_value is not None else spec.fill_value
        scale = (column.scale if column else None) or spec.scale
        plans.append(Plan(name, kind, missing, fill, scale))
    return plans


def drop_row_columns(spec: DataSpec, features: list[str]) -> list[str]:
    """Feature columns whose empty cells remove the row (known before the data is seen)."""
    return [
        c for c in features if ((spec.columns[c].missing if c in spec.columns else None) or spec.missing) == "drop_rows"
    ]


def check_target(frame, spec: DataSpec, task: str, source: str) -> None:
    """Refuse a target that is empty everywhere, or text when the loss needs numbers."""
    column = frame[spec.target]
    present = column[~missing_mask(column)]
    if present.empty:
        raise DataError(
            f"data.target: column {spec.target!r} is empty in every row of {source}; there is nothing "
            "to learn from. Check data.target and data.csv.separator"
        )
    if task == "regression" and present.dtype.kind not in "biuf":
        import pandas as pd

        if pd.to_numeric(present.astype(str).str.strip(), errors="coerce").notna().mean() < 0.9:
            raise DataError(
                f"data.target: column {spec.target!r} in {source} holds text like {present.iloc[0]!r}; the loss "
                "needs numbers. For class labels use loss: sparse_categorical_crossentropy with a softmax output "
                "layer (or binary_crossentropy for two classes)"
            )


# --- preparing --------------------------------------------------------------------------------------


def streams(spec: DataSpec) -> bool:
    """Tell whether the training CSV is read in chunks (`data.streaming`, or auto above a size)."""
    if spec.streaming != "auto":
        return bool(spec.streaming)
    try:
        return Path(spec.path).stat().st_size > spec.streaming_above_mb * 1e6
    except OSError:
        return False


def prepare(spec: DataSpec, seed: int, loss: str) -> Prepared:
    """Read the CSV(s), split them, fit the preprocessing on the training rows and apply it everywhere.

    Args:
        spec: the spec's data section (paths already absolute).
        seed: seeds the random validation/test split.
        loss: the training loss; it decides whether the target is a number, a binary or a class label.

    Raises:
        DataError: a missing file or column, an unusable column, empty cells, too few rows, ...
    """
    if streams(spec):
        from dlrun.data.stream import prepare_streaming

        return prepare_streaming(spec, seed, loss)
    task = task_of(loss)
    frame = read_csv(spec.path, spec.csv)
    features = select_features(list(frame.columns), spec, spec.path)
    check_target(frame, spec, task, spec.path)
    keep, dropped = keep_rows(frame, spec.target, drop_row_columns(spec, features))
    frame = frame[keep]
    sha = {spec.path: file_sha256(spec.path)}
    parts = {"train": frame}
    sources = {"train": spec.path, "validation": spec.validation_path or spec.path, "test": spec.test_path or spec.path}
    for part, path in (("validation", spec.validation_path), ("test", spec.test_path)):
        if path is not None:
            parts[part] = read_csv(path, spec.csv)
            sha[path] = file_sha256(path)
    fractions = {"validation": spec.validation_split, "test": spec.test_split}
    if any(fractions.values()):
        labels = None
        if spec.stratify:  # the spec makes sure the loss is a classification one
            labels = frame[spec.target].to_numpy(dtype=object)
        split = split_rows(len(frame), fractions, seed, labels)
        for part, index in split.items():
            parts[part] = frame.iloc[index]
    train = parts["train"]
    kinds = infer_kinds(train, features, declared_kinds(spec), spec.max_categories, spec.path, spec.csv.decimal)
    fitter = Fitter(
        plans_for(spec, kinds),
        spec.target,
        task,
        spec.path,
        spec.csv.decimal,
        max_categories=spec.max_categories,
        inferred=set(kinds) - set(declared_kinds(spec)),
    )
    fitter.update(train)
    pre = fitter.finish(
        features, spec.csv.model_dump(), [c for c in frame.columns if c not in features and c != spec.target]
    )
    encoded: dict[str, Encoded] = {}
    for part, rows in parts.items():
        encoded[part] = pre.apply(rows, sources[part])
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
