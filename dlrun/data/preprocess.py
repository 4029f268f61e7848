"""Preprocessing learned from the training rows: column kinds, imputation, scaling, one-hot categories.

`Fitter` accumulates statistics chunk by chunk (the whole training frame is one chunk in memory, a
streamed CSV is many), so both ways of reading give the same numbers. `Preprocessing.apply` is the one
place that turns raw rows into model inputs: training, validation, test, evaluate and predict all use it.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from dlrun.errors import DataError
from dlrun.spec.names import BINARY_LOSSES, CLASS_LOSSES

NUMERIC, CATEGORICAL = "numeric", "categorical"
DEFAULT_CATEGORY_FILL = "missing"
_DATE = re.compile(
    r"^\s*(\d{4}[-/.]\d{1,2}[-/.]\d{1,2}|\d{1,2}[-/.]\d{1,2}[-/.]\d{2,4})([ T]\d{1,2}:\d{2}(:\d{2})?.*)?\s*$"
)
_ID_NAME = re.compile(r"(^|[_\s.-])(id|uuid|key|index)$|^(id|idx|index|uuid)$", re.IGNORECASE)


def task_of(loss: str) -> str:
    """Return regression, binary or multiclass: what the loss makes of the target column."""
    if loss in CLASS_LOSSES:
        return "multiclass"
    return "binary" if loss in BINARY_LOSSES else "regression"


def line_of(index) -> int:
    """The CSV line of a row, from pandas' 0-based row number (the header is line 1)."""
    return int(index) + 2


def missing_mask(series) -> np.ndarray:
    """Empty cells: NaN, or text that is blank after stripping spaces."""
    mask = series.isna().to_numpy()
    if series.dtype == object:
        mask |= series.astype(str).str.strip().eq("").to_numpy()
    return mask


def to_numbers(series, name: str, source: str, decimal: str = ".") -> np.ndarray:
    """Return a column as float64, empty cells as NaN.

    Raises:
        DataError: a cell is not a number; the message names the column, the value and its line.
    """
    if series.dtype.kind in "biuf":
        return series.to_numpy(dtype="float64")
    import pandas as pd

    text = series.astype("string").str.strip()
    if decimal == ",":
        text = text.str.replace(",", ".", regex=False)
    numbers = pd.to_numeric(text.replace("", pd.NA), errors="coerce")
    bad = numbers.isna() & text.notna() & text.ne("")
    if bad.any():
        where = bad.to_numpy().nonzero()[0]
        first = series.index[where[0]]
        raise DataError(
            f"{source}: column {name!r} is numeric but line {line_of(first)} holds {series.loc[first]!r}"
            f" ({len(where)} such row{'s' if len(where) > 1 else ''}). Expected a number"
            f"{' with decimal mark ' + repr(decimal) if decimal != '.' else ''}: fix the value, or declare the "
            f"column categorical with data.columns.{name}.kind: categorical"
        )
    return numbers.to_numpy(dtype="float64", na_value=np.nan)


def category_keys(series) -> np.ndarray:
    """Return category values as text (None when empty), so 3, 3.0 and '3' are one category."""
    kind = series.dtype.kind
    if kind in "iu":
        return series.astype(str).to_numpy(dtype=object)
    if kind == "b":
        return series.map(str).to_numpy(dtype=object)
    if kind == "f":
        return np.array(
            [None if v != v else (str(int(v)) if float(v).is_integer() else repr(float(v))) for v in series.to_numpy()],
            dtype=object,
        )
    keys = series.astype("string").str.strip()
    keys = keys.mask(keys.eq(""))
    return keys.astype(object).where(keys.notna(), None).to_numpy(dtype=object)


def label_of(value) -> Any:
    """Return a target label as plain JSON data: 1.0 -> 1, ' yes ' -> 'yes'."""
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return int(value) if float(value).is_integer() else float(value)
    return str(value).strip()


@dataclass
class Column:
    """One feature column and what was learned about it."""

    name: str
    kind: str
    """numeric or categorical."""
    missing: str = "error"
    """What happens to an empty cell: mean, median, most_frequent, constant, drop_rows or error."""
    fill_value: float | str | None = None
    """The value an empty cell becomes (learned for mean, median, most_frequent)."""
    scale: str = "none"
    offset: float = 0.0
    """Subtracted from a numeric value (minimum or mean)."""
    divisor: float = 1.0
    """A numeric value is divided by this after the offset (range or std; 1 for a constant column)."""
    categories: list[str] = field(default_factory=list)
    """Categories seen in the training rows, one model input each; any other value is all zeros."""

    @property
    def inputs(self) -> list[str]:
        return [f"{self.name}={c}" for c in self.categories] if self.kind == CATEGORICAL else [self.name]


@dataclass
class Encoded:
    """Rows turned into model inputs, and what happened to the ones that could not be used."""

    x: np.ndarray
    y: np.ndarray | None
    kept: np.ndarray
    """Which of the given rows are in x (rows with an empty target or a drop_rows cell are not)."""
    dropped: dict[str, int]
    unseen: dict[str, int]
    """Per categorical column, rows whose value was not a training category (encoded as all zeros)."""


@dataclass
class Preprocessing:
    """What was learned from the training rows, applied the same way to every other row."""

    features: list[str]
    """Feature columns, in the model's input order."""
    target: str
    columns: list[Column] = field(default_factory=list)
    """How each feature column becomes model inputs, in `features` order."""
    classes: list[Any] | None = None
    """Target labels in class-id order, for classification with a softmax output; None otherwise."""
    task: str = "regression"
    """regression, binary or multiclass."""
    labels: list[Any] | None = None
    """A binary target's two original labels, for 0 and 1; None when the target is already 0/1."""
    csv: dict[str, str] = field(default_factory=dict)
    """How the CSVs were read (separator, decimal, encoding, quotechar); new CSVs are read the same way."""
    dropped_columns: list[str] = field(default_factory=list)
    """Columns of the training CSV that the model does not use."""

    @property
    def input_names(self) -> list[str]:
        """Names of the model's inputs: a numeric column, or `column=category` per one-hot input."""
        return [name for column in self.columns for name in column.inputs]

    @property
    def width(self) -> int:
        return len(self.input_names)

    @property
    def decimal(self) -> str:
        return self.csv.get("decimal", ".")

    def apply(self, frame, source: str, labelled: bool = True) -> Encoded:
        """Turn raw rows into model inputs (and targets when `labelled`).

        Rows with an empty target, or an empty cell in a drop_rows column, are left out and counted.

        Raises:
            DataError: a required column is missing, a numeric cell holds text, an empty cell in a
                column whose strategy is error, or a label the model does not know.
        """
        self.check_columns(list(frame.columns), source, labelled)
        kept, dropped = keep_rows(
            frame, self.target if labelled else None, [c.name for c in self.columns if c.missing == "drop_rows"]
        )
        rows = frame[kept] if not kept.all() else frame
        parts, unseen = [], {}
        for column in self.columns:
            if column.kind == NUMERIC:
                parts.append(self._numeric(column, rows[column.name], source)[:, None])
            else:
                onehot, n_unseen = self._categorical(column, rows[column.name], source)
                parts.append(onehot)
                if n_unseen:
                    unseen[column.name] = n_unseen
        x = np.hstack(parts).astype("float32") if parts else np.zeros((len(rows), 0), "float32")
        y = self.targets(rows, source) if labelled else None
        return Encoded(x, y, kept, dropped, unseen)

    def check_columns(self, columns: list, source: str, labelled: bool = True) -> None:
        """Refuse a CSV that lacks a feature column, or (when `labelled`) the target.

        Raises:
            DataError: the missing columns, and for a missing target that predicting needs none.
        """
        absent = [c for c in self.features if c not in columns]
        if absent:
            raise DataError(
                f"{source} lacks column{'s' if len(absent) > 1 else ''} {', '.join(map(repr, absent))} "
                f"that the model needs; its columns are: {', '.join(map(str, columns))}"
            )
        if labelled and self.target not in columns:
            raise DataError(
                f"{source} lacks the target column {self.target!r}, the labels evaluate scores the model's "
                f"predictions against; `dlrun predict` needs no target, for rows without labels"
            )

    def _numeric(self, column: Column, series, source: str) -> np.ndarray:
        values = to_numbers(series, column.name, source, self.decimal)
        gaps = np.isnan(values)
        if gaps.any():
            _refuse_missing(column, series, gaps, source)
            values = np.where(gaps, float(column.fill_value), values)
        return (values - column.offset) / column.divisor

    def _categorical(self, column: Column, series, source: str) -> tuple[np.ndarray, int]:
        import pandas as pd

        keys = category_keys(series)
        gaps = pd.isna(keys)
        if gaps.any():
            _refuse_missing(column, series, gaps, source)
            keys = np.where(gaps, str(column.fill_value), keys)
        codes = pd.Index(column.categories).get_indexer(keys)  # -1: not a training category
        onehot = np.zeros((len(keys), len(column.categories)), "float32")
        known = codes >= 0
        onehot[np.nonzero(known)[0], codes[known]] = 1.0
        return onehot, int((~known).sum())

    def inputs(self, frame, source: str = "data") -> np.ndarray:
        """Return the model's input matrix for rows of a data frame (rows are never dropped here)."""
        return self.apply(frame, source, labelled=False).x

    def targets(self, frame, source: str) -> np.ndarray:
        """Return the training targets: class ids for classification, floats otherwise."""
        column = frame[self.target]
        if self.task == "regression":
            return to_numbers(column, self.target, source, self.decimal).astype("float32")
        import pandas as pd

        names = self.classes if self.task == "multiclass" else (self.labels or [0, 1])
        index = {label: i for i, label in enumerate(names)}
        codes, uniques = pd.factorize(column)  # label_of once per distinct value, not per row
        labels = [label_of(v) for v in uniques]
        unseen = sorted({str(v) for v in labels if v not in index})
        if unseen:
            known = ", ".join(map(str, names[:10])) + (f", ... ({len(names)} in all)" if len(names) > 10 else "")
            hint = (
                (
                    f"; {len(names)} classes looks like a number to predict: use a regression loss such as mae "
                    "with a one-unit linear output"
                )
                if len(names) > 20
                else ""
            )
            raise DataError(
                f"{source}: target {self.target!r} has labels not seen in the training rows: "
                f"{', '.join(unseen[:10])}; the model only knows {known}{hint}"
            )
        ids = np.array([index[v] for v in labels], dtype="int64")[codes] if len(codes) else np.zeros(0, "int64")
        return ids.astype("int32" if self.task == "multiclass" else "float32")

    def to_dict(self) -> dict[str, Any]:
        """Return plain data for preprocessing.json: each column shows only the fields its kind uses."""
        data = asdict(self)
        unused = {NUMERIC: ("categories",), CATEGORICAL: ("scale", "offset", "divisor")}
        data["columns"] = [{k: v for k, v in c.items() if k not in unused[c["kind"]]} for c in data["columns"]]
        data["inputs"] = self.input_names
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any], loss: str | None = None) -> Preprocessing:
        """Rebuild from preprocessing.json; `loss` tells the task of files written before columns existed."""
        data = {k: v for k, v in data.items() if k != "inputs"}
        if "columns" not in data:  # the first format: numeric features, one offset and divisor each
            scale = data.pop("scale", "none")
            data["columns"] = [
                Column(name, NUMERIC, "error", None, scale, offset, divisor)
                for name, offset, divisor in zip(data["features"], data.pop("offset", []), data.pop("divisor", []))
            ]
            data["task"] = "multiclass" if data.get("classes") is not None else task_of(loss or "mse")
            return cls(**data)
        data["columns"] = [Column(**c) for c in data["columns"]]
        return cls(**data)


def _refuse_missing(column: Column, series, gaps: np.ndarray, source: str) -> None:
    if column.missing in ("error", "drop_rows"):  # drop_rows rows are gone before this; error means stop
        lines = ", ".join(str(line_of(i)) for i in series.index[gaps][:5])
        raise DataError(
            f"missing (NaN) values in {source}: {column.name!r} ({int(gaps.sum())} rows) on line {lines}"
            f"{', ...' if gaps.sum() > 5 else ''}. Choose a strategy with data.missing (or "
            f"data.columns.{column.name}.missing): mean, median, most_frequent, constant, drop_rows; "
            f"or leave the column out with data.drop"
        )


def keep_rows(frame, target: str | None, drop_row_columns: list[str]) -> tuple[np.ndarray, dict[str, int]]:
    """Return which rows to use, leaving out empty targets and empty cells in drop_rows columns."""
    keep = np.ones(len(frame), bool)
    dropped = {"missing_target": 0, "missing_values": 0}
    if target is not None:
        gaps = missing_mask(frame[target])
        dropped["missing_target"] = int(gaps.sum())
        keep &= ~gaps
    for name in drop_row_columns:
        gaps = missing_mask(frame[name]) & keep
        dropped["missing_values"] += int(gaps.sum())
        keep &= ~gaps
    return keep, dropped


# --- inferring what each column is ------------------------------------------------------------


def infer_kinds(
    frame, features: list[str], declared: dict[str, str], max_categories: int, source: str, decimal: str = "."
) -> dict[str, str]:
    """Decide numeric or categorical for each feature column from the training rows.

    Raises:
        DataError: naming every column that cannot be used as is (empty, free text, dates, ids), with the fix.
    """
    kinds, problems = {}, []
    empty = [name for name in features if missing_mask(frame[name]).all()]
    if empty:
        raise DataError(
            f"column{'s' if len(empty) > 1 else ''} {', '.join(map(repr, empty))} "
            f"{'are' if len(empty) > 1 else 'is'} empty in every training row of {source}: leave "
            f"{'them' if len(empty) > 1 else 'it'} out with data.drop: [{', '.join(empty)}]"
        )
    for name in features:
        series = frame[name]
        present = series[~missing_mask(series)]
        if declared.get(name):
            kinds[name] = declared[name]
            continue
        kind, problem = _infer(name, present, max_categories, decimal)
        if problem:
            problems.append((name, problem))
        else:
            kinds[name] = kind
    if problems:
        listed = "; ".join(f"{name!r}: {why}" for name, why in problems)
        names = ", ".join(name for name, _ in problems)
        raise DataError(
            f"non-numeric feature column(s) in {source} that cannot be used as they are: {listed}. "
            f"Leave {'them' if len(problems) > 1 else 'it'} out with data.drop: [{names}], or declare "
            f"how to use a column with data.columns.<name>.kind: categorical (or numeric)"
        )
    return kinds


def _infer(name: str, present, max_categories: int, decimal: str) -> tuple[str, str | None]:
    import pandas as pd

    if present.dtype.kind in "biuf":
        if _looks_like_id(name, present):
            return NUMERIC, f"looks like an id (a different whole number in every row, e.g. {present.iloc[0]!r})"
        return NUMERIC, None
    text = present.astype(str).str.strip()
    numbers = pd.to_numeric(text.str.replace(",", ".", regex=False) if decimal == "," else text, errors="coerce")
    if numbers.notna().mean() >= 0.9:
        return NUMERIC, None  # mostly numbers: the odd text cell is reported with its line when converted
    sample = text.iloc[:1000]
    if sample.str.match(_DATE).mean() >= 0.9:
        return CATEGORICAL, f"holds dates (e.g. {text.iloc[0]!r}); derive numeric columns from them, or drop it"
    distinct = text.nunique()
    if distinct == len(text) and len(text) > 2:
        return CATEGORICAL, f"looks like an id or names (a different value in every row, e.g. {text.iloc[0]!r})"
    if distinct > max_categories or (len(text) >= 20 and distinct > len(text) / 2):
        return CATEGORICAL, (
            f"looks like free text ({distinct} distinct values in {len(text)} rows, e.g. "
            f"{text.iloc[0]!r}; data.max_categories is {max_categories})"
        )
    return CATEGORICAL, None


def _looks_like_id(name: str, present) -> bool:
    if present.dtype.kind not in "iu" or len(present) < 10 or present.nunique() != len(present):
        return False
    ordered = np.sort(present.to_numpy())
    return bool(_ID_NAME.search(name)) or bool((np.diff(ordered) == 1).all())


# --- fitting, chunk by chunk --------------------------------------------------------------------


@dataclass
class Plan:
    """How a column is to be fitted, before the data is seen."""

    name: str
    kind: str
    missing: str
    fill_value: float | int | str | None
    scale: str


class Fitter:
    """Accumulate training-row statistics chunk by chunk; `finish` turns them into a `Preprocessing`.

    Numeric columns keep count, mean, squared deviations, min and max (merged exactly across chunks);
    categorical columns keep value counts. Median and most_frequent of a numeric column need every
    value, so they are refused when streaming (`keep_values=False`).
    """

    def __init__(
        self,
        plans: list[Plan],
        target: str,
        task: str,
        source: str,
        decimal: str = ".",
        keep_values: bool = True,
        max_categories: int = 50,
        inferred: set[str] | None = None,
    ):
        self.plans, self.target, self.task, self.source, self.decimal = plans, target, task, source, decimal
        self.max_categories, self.inferred = max_categories, inferred or set()
        self.stats: dict[str, dict[str, Any]] = {}
        for plan in plans:
            if plan.kind == CATEGORICAL and plan.missing in ("mean", "median"):
                raise DataError(
                    f"data.columns.{plan.name}.missing: {plan.missing} does not apply to categorical "
                    f"column {plan.name!r}; use most_frequent, constant, drop_rows or error"
                )
            if plan.kind == NUMERIC and isinstance(plan.fill_value, str) and plan.missing == "constant":
                raise DataError(
                    f"data.columns.{plan.name}.fill_value: numeric column {plan.name!r} cannot be filled "
                    f"with text {plan.fill_value!r}; give a number"
                )
            if plan.kind == NUMERIC and plan.missing in ("median", "most_frequent") and not keep_values:
                raise DataError(
                    f"data.columns.{plan.name}.missing: {plan.missing} needs every value of {plan.name!r} "
                    "in memory, which streaming avoids; use mean or constant, or set data.streaming: false"
                )
            self.stats[plan.name] = (
                {
                    "n": 0,
                    "mean": 0.0,
                    "m2": 0.0,
                    "min": math.inf,
                    "max": -math.inf,
                    "gaps": 0,
                    "values": [] if plan.missing in ("median", "most_frequent") else None,
                }
                if plan.kind == NUMERIC
                else {"counts": Counter(), "gaps": 0}
            )
        self.labels: Counter = Counter()
        self.rows = 0

    def update(self, frame) -> None:
        """Add training rows (already free of empty targets and drop_rows gaps) to the statistics."""
        self.rows += len(frame)
        for plan in self.plans:
            stats, series = self.stats[plan.name], frame[plan.name]
            if plan.kind == NUMERIC:
                values = to_numbers(series, plan.name, self.source, self.decimal)
                present = values[~np.isnan(values)]
                stats["gaps"] += len(values) - len(present)
                if stats["values"] is not None:
                    stats["values"].append(present)
                if len(present):
                    _merge(stats, present)
            else:
                counts = series_counts(category_keys(series))
                stats["gaps"] += len(series) - sum(counts.values())
                stats["counts"].update(counts)
                if plan.name in self.inferred and len(stats["counts"]) > self.max_categories:
                    raise DataError(
                        f"column in {self.source} that cannot be used as model input: {plan.name!r} looks like free "
                        f"text (more than {self.max_categories} distinct values, data.max_categories). Leave it out "
                        f"with data.drop: [{plan.name}], or declare it with data.columns.{plan.name}.kind: categorical"
                    )
        if self.task != "regression":
            for value, count in series_counts(frame[self.target].to_numpy(dtype=object)).items():
                self.labels[label_of(value)] += count
        else:
            to_numbers(frame[self.target], self.target, self.source, self.decimal)

    def finish(self, features: list[str], csv: dict[str, str], dropped_columns: list[str]) -> Preprocessing:
        """Return the fitted preprocessing.

        Raises:
            DataError: no training rows, an empty column, a classification target with a single class.
        """
        if self.rows == 0:
            raise DataError(
                f"{self.source}: no training rows left (after leaving out empty targets and "
                "drop_rows rows); check the target column and data.missing"
            )
        columns = [self._column(plan) for plan in self.plans]
        classes = labels = None
        if self.task != "regression":
            found = sorted(self.labels, key=lambda v: (str(type(v)), v))
            if len(found) < 2:
                raise DataError(
                    f"data.target: column {self.target!r} in {self.source} has a single class "
                    f"({found[0]!r}) in the training rows; a classifier needs at least two. Check the target column "
                    "or the split"
                )
            if self.task == "multiclass":
                classes = found
            elif len(found) > 2:
                raise DataError(
                    f"data.target: column {self.target!r} in {self.source} has {len(found)} classes "
                    f"({', '.join(map(str, found[:10]))}) but a binary loss needs two; use loss: "
                    "sparse_categorical_crossentropy with a softmax output layer"
                )
            elif found != [0, 1]:
                labels = found
        return Preprocessing(features, self.target, columns, classes, self.task, labels, csv, dropped_columns)

    def _column(self, plan: Plan) -> Column:
        stats = self.stats[plan.name]
        column = Column(plan.name, plan.kind, plan.missing)
        if plan.kind == CATEGORICAL:
            counts: Counter = stats["counts"]
            if not counts:
                raise DataError(
                    f"column {plan.name!r} is empty in every training row of {self.source}: leave it out "
                    f"with data.drop: [{plan.name}]"
                )
            column.categories = sorted(counts)
            if plan.missing == "most_frequent":
                column.fill_value = max(sorted(counts), key=lambda k: counts[k])
            elif plan.missing == "constant":
                fill = plan.fill_value if plan.fill_value is not None else DEFAULT_CATEGORY_FILL
                column.fill_value = category_keys(_series([fill]))[0]
            return column
        if stats["n"] == 0:
            raise DataError(
                f"column {plan.name!r} is empty in every training row of {self.source}: leave it out "
                f"with data.drop: [{plan.name}]"
            )
        fill = None
        if plan.missing == "mean":
            fill = stats["mean"]
        elif plan.missing == "median":
            fill = float(np.median(np.concatenate(stats["values"])))
        elif plan.missing == "most_frequent":
            values, counts = np.unique(np.concatenate(stats["values"]), return_counts=True)
            fill = float(values[np.argmax(counts)])  # ties: the smallest value
        elif plan.missing == "constant":
            fill = float(plan.fill_value) if plan.fill_value is not None else 0.0
        column.fill_value = fill
        n, mean, m2, low, high = stats["n"], stats["mean"], stats["m2"], stats["min"], stats["max"]
        if fill is not None and stats["gaps"]:
            # The scaler sees the imputed column (as an imputer followed by a scaler would).
            _merge(stats, np.full(stats["gaps"], fill))
            n, mean, m2, low, high = stats["n"], stats["mean"], stats["m2"], stats["min"], stats["max"]
        column.scale = plan.scale
        if plan.scale == "minmax":
            column.offset, spread = low, high - low
        elif plan.scale == "standard":
            column.offset, spread = mean, math.sqrt(m2 / n)
        else:
            spread = 1.0
        column.divisor = spread if spread > 0 else 1.0  # a constant column scales to 0, never divides by 0
        return column


def _merge(stats: dict[str, Any], values: np.ndarray) -> None:
    """Merge a batch of values into running count/mean/M2/min/max (Chan et al.'s parallel update)."""
    n_b = len(values)
    mean_b = float(values.mean())
    m2_b = float(((values - mean_b) ** 2).sum())
    n_a, mean_a = stats["n"], stats["mean"]
    n = n_a + n_b
    delta = mean_b - mean_a
    stats["mean"] = mean_a + delta * n_b / n
    stats["m2"] += m2_b + delta * delta * n_a * n_b / n
    stats["n"] = n
    stats["min"] = min(stats["min"], float(values.min()))
    stats["max"] = max(stats["max"], float(values.max()))


def series_counts(values: np.ndarray) -> dict:
    """Count the non-empty values of an object array (fast, through pandas)."""
    import pandas as pd

    return {k: int(v) for k, v in pd.Series(values, dtype=object).value_counts(dropna=True).items()}


def _series(values: list):
    import pandas as pd

    return pd.Series(values)
